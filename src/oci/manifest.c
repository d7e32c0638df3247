/* SPDX-License-Identifier: Apache-2.0 */
/*
 * oci/manifest.c: the image manifest (OCI and Docker schema2) and the versioned header.
 * Parsing reads members by type, then berth_manifest_validate() checks the spec's MUSTs; a
 * Docker manifest shares the struct and is told apart by its mediaType.
 */
#include <stdlib.h>
#include <string.h>

#include "berth/errors.h"
#include "berth/manifest.h"
#include "berth/mediatype.h"
#include "oci/json.h"

static const char *const manifest_known[] = {"schemaVersion", "mediaType", "artifactType", "config",
                                             "layers",        "subject",   "annotations",  NULL};
static const char *const versioned_known[] = {"schemaVersion", NULL};

/* ---- versioned ---- */

void berth_versioned_free(berth_versioned *v)
{
    if (v) {
        free(v->extra);
        free(v);
    }
}

static int versioned_fill(void *doc, const json_t *root)
{
    berth_versioned *v = doc;
    int rc;

    if ((rc = berth__json_size(&v->schema_version, NULL, root, "schemaVersion", true)) < 0) {
        return rc;
    }
    return berth__json_extra(&v->extra, root, versioned_known);
}

static void versioned_free(void *doc)
{
    berth_versioned_free(doc);
}

int berth_versioned_parse(berth_versioned **out, const char *json, size_t len)
{
    int rc;

    *out = berth__json_parse_doc(&rc, json, len, sizeof(berth_versioned), versioned_fill,
                                 versioned_free);
    return rc;
}

int berth_versioned_serialize(berth_buf *out, const berth_versioned *v)
{
    json_t *o = json_object();
    int rc = 0;

    if (o) {
        berth__json_set(o, "schemaVersion", json_integer(v->schema_version), &rc);
        berth__json_put_extra(o, v->extra, &rc);
    }
    return berth__json_finish(out, o, rc);
}

/* ---- manifest ---- */

void berth_manifest_free(berth_manifest *m)
{
    if (!m) {
        return;
    }
    free(m->media_type);
    free(m->artifact_type);
    berth_descriptor_dispose(&m->config);
    berth__descriptors_free(m->layers, m->nlayers);
    berth_descriptor_free(m->subject);
    berth_map_dispose(&m->annotations);
    free(m->extra);
    free(m);
}

bool berth_manifest_is_docker(const berth_manifest *m)
{
    return m && m->media_type && strcmp(m->media_type, BERTH_MEDIA_DOCKER_MANIFEST) == 0;
}

/* Read a single-descriptor member (config, subject) into `d`, prefixing errors with `key`. */
static int member_descriptor(berth_descriptor *d, const json_t *root, const char *key)
{
    const json_t *v = json_object_get(root, key);
    int rc = berth__descriptor_from_json(d, v);

    if (rc < 0) {
        berth_error_prefix(json_is_object(v) ? "%s." : "%s: ", key);
    }
    return rc;
}

int berth__manifest_from_json(berth_manifest *m, const json_t *root)
{
    int rc;

    if ((rc = berth__json_doc_common(&m->schema_version, &m->media_type, &m->artifact_type,
                                     &m->subject, root)) < 0) {
        return rc;
    }
    if (!json_object_get(root, "config")) {
        return berth_error_set(BERTH_EINVALID, "config: required");
    }
    if ((rc = member_descriptor(&m->config, root, "config")) < 0) {
        return rc;
    }
    if ((rc = berth__descriptors_from_json(&m->layers, &m->nlayers, root, "layers", true)) < 0) {
        return rc;
    }
    if ((rc = berth__json_map(&m->annotations, root, "annotations")) < 0 ||
        (rc = berth__json_extra(&m->extra, root, manifest_known)) < 0) {
        return rc;
    }
    return berth_manifest_validate(m);
}

int berth_manifest_validate(const berth_manifest *m)
{
    bool docker;
    int rc;

    if (!m) {
        return berth_error_set(BERTH_EINVALID, "no manifest");
    }
    docker = berth_manifest_is_docker(m);
    if ((rc = berth__doc_common_validate(m->schema_version, m->media_type, docker,
                                         BERTH_MEDIA_OCI_MANIFEST, "manifest", m->artifact_type,
                                         m->subject)) < 0) {
        return rc;
    }
    if ((rc = berth_descriptor_validate(&m->config)) < 0) {
        berth_error_prefix("config.");
        return rc;
    }
    if (!docker && !m->artifact_type && m->config.media_type &&
        strcmp(m->config.media_type, BERTH_MEDIA_OCI_EMPTY) == 0) {
        return berth_error_set(BERTH_EINVALID, "artifactType: required when config.mediaType is %s",
                               BERTH_MEDIA_OCI_EMPTY);
    }
    return berth__descriptors_validate(m->layers, m->nlayers, "layers");
}

static int manifest_fill(void *doc, const json_t *root)
{
    return berth__manifest_from_json(doc, root);
}

static void manifest_free(void *doc)
{
    berth_manifest_free(doc);
}

int berth_manifest_parse(berth_manifest **out, const char *json, size_t len)
{
    int rc;

    *out =
        berth__json_parse_doc(&rc, json, len, sizeof(berth_manifest), manifest_fill, manifest_free);
    return rc;
}

int berth_manifest_serialize(berth_buf *out, const berth_manifest *m)
{
    json_t *o = json_object();
    int rc = 0;

    if (o) {
        berth__json_set(o, "schemaVersion", json_integer(m->schema_version), &rc);
        berth__json_set_str(o, "mediaType", m->media_type, &rc);
        berth__json_set_str(o, "artifactType", m->artifact_type, &rc);
        berth__json_set(o, "config", berth__descriptor_to_json(&m->config, &rc), &rc);
        berth__json_set_descriptors(o, "layers", m->layers, m->nlayers, &rc);
        if (m->subject) {
            berth__json_set(o, "subject", berth__descriptor_to_json(m->subject, &rc), &rc);
        }
        berth__json_set_map(o, "annotations", &m->annotations, &rc);
        berth__json_put_extra(o, m->extra, &rc);
    }
    return berth__json_finish(out, o, rc);
}
