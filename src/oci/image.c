/* SPDX-License-Identifier: Apache-2.0 */
/*
 * oci/image.c: the image configuration (config.md): runtime config, rootfs, history.
 * Times are checked against RFC 3339 and kept as written; diff_ids are parsed digests.
 */
#include <stdlib.h>
#include <string.h>

#include "berth/errors.h"
#include "berth/image.h"
#include "oci/json.h"

static const char *const image_known[] = {
    "created", "author", "architecture", "os",      "os.version", "os.features",
    "variant", "config", "rootfs",       "history", NULL};
static const char *const rootfs_known[] = {"type", "diff_ids", NULL};
static const char *const history_known[] = {"created", "created_by",  "author",
                                            "comment", "empty_layer", NULL};
static const char *const runtime_known[] = {
    "User",       "ExposedPorts", "Env",        "Entrypoint",  "Cmd", "Volumes",
    "WorkingDir", "Labels",       "StopSignal", "ArgsEscaped", NULL};

bool berth_time_valid(const char *s)
{
    return berth__rfc3339_valid(s);
}

static void runtime_free(berth_runtime_config *c)
{
    if (!c) {
        return;
    }
    free(c->user);
    berth_strlist_dispose(&c->exposed_ports);
    berth_strlist_dispose(&c->env);
    berth_strlist_dispose(&c->entrypoint);
    berth_strlist_dispose(&c->cmd);
    berth_strlist_dispose(&c->volumes);
    free(c->working_dir);
    berth_map_dispose(&c->labels);
    free(c->stop_signal);
    free(c->extra);
    free(c);
}

static void history_dispose(berth_history *h)
{
    free(h->created);
    free(h->created_by);
    free(h->author);
    free(h->comment);
    free(h->extra);
}

void berth_image_free(berth_image *img)
{
    size_t i;

    if (!img) {
        return;
    }
    free(img->created);
    free(img->author);
    free(img->architecture);
    free(img->os);
    free(img->os_version);
    berth_strlist_dispose(&img->os_features);
    free(img->variant);
    runtime_free(img->config);
    free(img->rootfs_type);
    free(img->diff_ids);
    free(img->rootfs_extra);
    for (i = 0; i < img->nhistory; i++) {
        history_dispose(&img->history[i]);
    }
    free(img->history);
    free(img->extra);
    free(img);
}

static int runtime_from_json(berth_runtime_config *c, const json_t *v)
{
    int rc;

    if ((rc = berth__json_str(&c->user, v, "User", false)) < 0 ||
        (rc = berth__json_keyset(&c->exposed_ports, v, "ExposedPorts")) < 0 ||
        (rc = berth__json_strlist(&c->env, v, "Env")) < 0 ||
        (rc = berth__json_strlist(&c->entrypoint, v, "Entrypoint")) < 0 ||
        (rc = berth__json_strlist(&c->cmd, v, "Cmd")) < 0 ||
        (rc = berth__json_keyset(&c->volumes, v, "Volumes")) < 0 ||
        (rc = berth__json_str(&c->working_dir, v, "WorkingDir", false)) < 0 ||
        (rc = berth__json_map(&c->labels, v, "Labels")) < 0 ||
        (rc = berth__json_str(&c->stop_signal, v, "StopSignal", false)) < 0 ||
        (rc = berth__json_bool(&c->args_escaped, &c->has_args_escaped, v, "ArgsEscaped")) < 0) {
        return rc;
    }
    return berth__json_extra(&c->extra, v, runtime_known);
}

static int history_from_json(berth_history *h, const json_t *v)
{
    int rc;

    if ((rc = berth__json_want_object(v, "history entry")) < 0) {
        return rc;
    }
    if ((rc = berth__json_str(&h->created, v, "created", false)) < 0 ||
        (rc = berth__json_str(&h->created_by, v, "created_by", false)) < 0 ||
        (rc = berth__json_str(&h->author, v, "author", false)) < 0 ||
        (rc = berth__json_str(&h->comment, v, "comment", false)) < 0 ||
        (rc = berth__json_bool(&h->empty_layer, &h->has_empty_layer, v, "empty_layer")) < 0) {
        return rc;
    }
    return berth__json_extra(&h->extra, v, history_known);
}

static int rootfs_from_json(berth_image *img, const json_t *root)
{
    const json_t *v = json_object_get(root, "rootfs"), *ids;
    size_t i, n;
    int rc;

    if (!v) {
        return berth_error_set(BERTH_EINVALID, "rootfs: required");
    }
    if ((rc = berth__json_want_object(v, "rootfs")) < 0) {
        return rc;
    }
    if ((rc = berth__json_str(&img->rootfs_type, v, "type", true)) < 0) {
        goto out;
    }
    ids = json_object_get(v, "diff_ids");
    if (!ids) {
        rc = berth_error_set(BERTH_EINVALID, "diff_ids: required");
        goto out;
    }
    if (!json_is_array(ids)) {
        rc = berth_error_set(BERTH_EINVALID, "diff_ids: not an array");
        goto out;
    }
    n = json_array_size(ids);
    if (n && !(img->diff_ids = calloc(n, sizeof(berth_digest)))) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < n; i++) {
        const json_t *e = json_array_get(ids, i);
        if (!json_is_string(e)) {
            rc = berth_error_set(BERTH_EINVALID, "diff_ids[%zu]: not a string", i);
            goto out;
        }
        if ((rc = berth_digest_parse(&img->diff_ids[i], json_string_value(e),
                                     json_string_length(e))) < 0) {
            berth_error_prefix("diff_ids[%zu]: ", i);
            goto out;
        }
        img->ndiff_ids++;
    }
    rc = berth__json_extra(&img->rootfs_extra, v, rootfs_known);
out:
    if (rc < 0) {
        berth_error_prefix("rootfs.");
    }
    return rc;
}

static int image_from_json(berth_image *img, const json_t *root)
{
    const json_t *v;
    size_t i, n;
    int rc;

    if ((rc = berth__json_str(&img->created, root, "created", false)) < 0 ||
        (rc = berth__json_str(&img->author, root, "author", false)) < 0 ||
        (rc = berth__json_str(&img->architecture, root, "architecture", true)) < 0 ||
        (rc = berth__json_str(&img->os, root, "os", true)) < 0 ||
        (rc = berth__json_str(&img->os_version, root, "os.version", false)) < 0 ||
        (rc = berth__json_strlist(&img->os_features, root, "os.features")) < 0 ||
        (rc = berth__json_str(&img->variant, root, "variant", false)) < 0) {
        return rc;
    }
    if ((v = json_object_get(root, "config")) != NULL && !json_is_null(v)) {
        if ((rc = berth__json_want_object(v, "config")) < 0) {
            return rc;
        }
        if (!(img->config = calloc(1, sizeof(*img->config)))) {
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        if ((rc = runtime_from_json(img->config, v)) < 0) {
            berth_error_prefix("config.");
            return rc;
        }
    }
    if ((rc = rootfs_from_json(img, root)) < 0) {
        return rc;
    }
    if ((v = json_object_get(root, "history")) != NULL && !json_is_null(v)) {
        if (!json_is_array(v)) {
            return berth_error_set(BERTH_EINVALID, "history: not an array");
        }
        n = json_array_size(v);
        if (n && !(img->history = calloc(n, sizeof(berth_history)))) {
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        for (i = 0; i < n; i++) {
            img->nhistory = i + 1;
            if ((rc = history_from_json(&img->history[i], json_array_get(v, i))) < 0) {
                berth_error_prefix(
                    json_is_object(json_array_get(v, i)) ? "history[%zu]." : "history[%zu]: ", i);
                return rc;
            }
        }
    }
    return berth__json_extra(&img->extra, root, image_known);
}

int berth_image_validate(const berth_image *img)
{
    size_t i;

    if (!img) {
        return berth_error_set(BERTH_EINVALID, "no image configuration");
    }
    if (!img->architecture || !*img->architecture) {
        return berth_error_set(BERTH_EINVALID, "architecture: required");
    }
    if (!img->os || !*img->os) {
        return berth_error_set(BERTH_EINVALID, "os: required");
    }
    if (img->created && !berth__rfc3339_valid(img->created)) {
        return berth_error_set(BERTH_EINVALID, "created: '%.100s' is not an RFC 3339 time",
                               img->created);
    }
    if (!img->rootfs_type || strcmp(img->rootfs_type, "layers") != 0) {
        return berth_error_set(BERTH_EINVALID, "rootfs.type: must be \"layers\"");
    }
    for (i = 0; i < img->ndiff_ids; i++) {
        if (img->diff_ids[i].alg == BERTH_DIGEST_NONE) {
            return berth_error_set(BERTH_EINVALID, "rootfs.diff_ids[%zu]: no digest", i);
        }
    }
    for (i = 0; i < img->nhistory; i++) {
        const char *t = img->history[i].created;
        if (t && !berth__rfc3339_valid(t)) {
            return berth_error_set(BERTH_EINVALID,
                                   "history[%zu].created: '%.100s' is not an RFC 3339 time", i, t);
        }
    }
    return 0;
}

static int image_fill(void *doc, const json_t *root)
{
    int rc = image_from_json(doc, root);
    return rc < 0 ? rc : berth_image_validate(doc);
}

static void image_free(void *doc)
{
    berth_image_free(doc);
}

int berth_image_parse(berth_image **out, const char *json, size_t len)
{
    int rc;

    *out = berth__json_parse_doc(&rc, json, len, sizeof(berth_image), image_fill, image_free);
    return rc;
}

static json_t *runtime_to_json(const berth_runtime_config *c, int *rc)
{
    json_t *o = json_object();

    if (!o) {
        *rc = BERTH_ENOMEM;
        return NULL;
    }
    berth__json_set_str(o, "User", c->user, rc);
    berth__json_set_keyset(o, "ExposedPorts", &c->exposed_ports, rc);
    berth__json_set_strlist(o, "Env", &c->env, rc);
    berth__json_set_strlist(o, "Entrypoint", &c->entrypoint, rc);
    berth__json_set_strlist(o, "Cmd", &c->cmd, rc);
    berth__json_set_keyset(o, "Volumes", &c->volumes, rc);
    berth__json_set_str(o, "WorkingDir", c->working_dir, rc);
    berth__json_set_map(o, "Labels", &c->labels, rc);
    berth__json_set_str(o, "StopSignal", c->stop_signal, rc);
    if (c->has_args_escaped) {
        berth__json_set(o, "ArgsEscaped", json_boolean(c->args_escaped), rc);
    }
    berth__json_put_extra(o, c->extra, rc);
    return o;
}

static json_t *history_to_json(const berth_history *h, int *rc)
{
    json_t *o = json_object();

    if (!o) {
        *rc = BERTH_ENOMEM;
        return NULL;
    }
    berth__json_set_str(o, "created", h->created, rc);
    berth__json_set_str(o, "created_by", h->created_by, rc);
    berth__json_set_str(o, "author", h->author, rc);
    berth__json_set_str(o, "comment", h->comment, rc);
    if (h->has_empty_layer) {
        berth__json_set(o, "empty_layer", json_boolean(h->empty_layer), rc);
    }
    berth__json_put_extra(o, h->extra, rc);
    return o;
}

int berth_image_serialize(berth_buf *out, const berth_image *img)
{
    json_t *o = json_object(), *rootfs = json_object(), *ids = json_array(), *hist = NULL;
    size_t i;
    int rc = 0;

    if (!o || !rootfs || !ids) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    berth__json_set_str(o, "created", img->created, &rc);
    berth__json_set_str(o, "author", img->author, &rc);
    berth__json_set_str(o, "architecture", img->architecture, &rc);
    berth__json_set_str(o, "os", img->os, &rc);
    berth__json_set_str(o, "os.version", img->os_version, &rc);
    berth__json_set_strlist(o, "os.features", &img->os_features, &rc);
    berth__json_set_str(o, "variant", img->variant, &rc);
    if (img->config) {
        berth__json_set(o, "config", runtime_to_json(img->config, &rc), &rc);
    }
    berth__json_set_str(rootfs, "type", img->rootfs_type, &rc);
    for (i = 0; i < img->ndiff_ids; i++) {
        if (json_array_append_new(ids, json_string(img->diff_ids[i].str)) != 0) {
            rc = BERTH_ENOMEM;
        }
    }
    berth__json_set(rootfs, "diff_ids", ids, &rc);
    ids = NULL;
    berth__json_put_extra(rootfs, img->rootfs_extra, &rc);
    berth__json_set(o, "rootfs", rootfs, &rc);
    rootfs = NULL;
    if (img->nhistory) {
        hist = json_array();
        for (i = 0; hist && i < img->nhistory; i++) {
            if (json_array_append_new(hist, history_to_json(&img->history[i], &rc)) != 0) {
                rc = BERTH_ENOMEM;
            }
        }
        berth__json_set(o, "history", hist, &rc);
    }
    berth__json_put_extra(o, img->extra, &rc);
    if (rc == 0) {
        rc = berth__json_dump(out, o);
    }
out:
    json_decref(o);
    json_decref(rootfs);
    json_decref(ids);
    return rc < 0 ? berth_error_set(rc, "out of memory") : 0;
}
