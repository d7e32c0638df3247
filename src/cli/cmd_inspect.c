/* SPDX-License-Identifier: Apache-2.0 */
/* berth inspect: show a manifest (pretty or raw) or the image config of a reference. */
#include "cli/cli.h"
#include "cli/client_opts.h"
#include "cli/client_ref.h"

#include <berth/client.h>
#include <berth/document.h>
#include <berth/errors.h>
#include <berth/reference.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char help[] =
    "usage: berth inspect REF [--raw] [--config] [options]\n"
    "\n"
    "Show the manifest REF names ([docker://]HOST[:PORT]/NAME[:TAG][@DIGEST] or\n"
    "oci:PATH[:TAG]; a layout of one named image needs no tag):\n"
    "its digest, media type and the document, indented.\n"
    "  --raw                   print the manifest's exact bytes\n"
    "  --config                print the image config instead (with\n"
    "                          --raw, its exact bytes)\n"
    "  --platform OS/ARCH[/V]  for an index, pick that image for --config\n"
    "On a terminal, control bytes of what the registry sent are shown as \\u00XX\n"
    "(LF and TAB as they are); piped, the output is exact.\n" CLI_CLIENT_OPTS_HELP;

/* Write bytes a registry or a layout supplied. On a terminal the control bytes that could drive
 * it are written as \u00XX: C0 but LF and TAB, DEL, and C1 (U+0080..U+009F in UTF-8), so that
 * a hostile config cannot retitle, clear or rewrite the screen; in a JSON string that is the
 * same character (a raw one is not even valid JSON). Off a terminal the bytes are exact: scripts
 * pipe them. */
static void put_bytes(const char *data, size_t len, bool tty)
{
    const unsigned char *p = (const unsigned char *)data;
    if (!tty) {
        fwrite(data, 1, len, stdout);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        if ((p[i] < 0x20 && p[i] != '\n' && p[i] != '\t') || p[i] == 0x7f) {
            printf("\\u%04x", p[i]);
        } else if (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f) {
            printf("\\u%04x", p[i + 1]);
            i++;
        } else {
            putchar(p[i]);
        }
    }
}

static void print_pretty(const char *data, size_t len, bool tty)
{
    json_error_t jerr;
    json_t *root = json_loadb(data, len, 0, &jerr);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (text) {
        put_bytes(text, strlen(text), tty);
    } else {
        put_bytes(data, len, tty);
    }
    printf("\n");
    free(text);
    json_decref(root);
}

/* Fetch a manifest or blob from the registry or layout the reference names. */
typedef cli_target target;

static int get_manifest(berth_client *c, const target *t, const berth_digest *d, berth_buf *body,
                        char **ctype, berth_digest *got)
{
    if (t->lref) {
        if (d) {
            *ctype = NULL;
            *got = *d;
            return berth_layout_read_blob(t->lref->path, d, body);
        }
        return berth_layout_get_manifest(t->lref->path, t->lref->tag, body, ctype, got);
    }
    return berth_client_get_manifest(c, t->ref->registry, t->ref->repository,
                                     d ? d->str : cli_ref_name(t->ref), body, ctype, got);
}

static int to_buf(const void *data, size_t len, void *payload)
{
    return berth_buf_put(payload, data, len);
}

int cmd_inspect(int argc, char **argv)
{
    cli_client_opts co = {0};
    berth_client *c = NULL;
    target t = {0};
    berth_buf body = BERTH_BUF_INIT_MAX(BERTH_CLIENT_MANIFEST_MAX);
    berth_buf child = BERTH_BUF_INIT_MAX(BERTH_CLIENT_MANIFEST_MAX);
    berth_buf cfg = BERTH_BUF_INIT_MAX(64u * 1024u * 1024u);
    berth_document_info *doc = NULL, *cdoc = NULL;
    char *ctype = NULL, *cctype = NULL;
    const char *refarg = NULL, *platform = NULL;
    bool raw = false, config = false, tty = isatty(STDOUT_FILENO) != 0;
    berth_digest d;
    int ret = 2;

    if (cli_wants_help(argc, argv)) {
        fputs(help, stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        int k = cli_client_opt(&co, "inspect", argc, argv, &i);
        if (k < 0) {
            goto out;
        }
        if (k > 0) {
            continue;
        }
        if (strcmp(argv[i], "--raw") == 0) {
            raw = true;
        } else if (strcmp(argv[i], "--config") == 0) {
            config = true;
        } else if (strcmp(argv[i], "--platform") == 0 && i + 1 < argc) {
            platform = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "berth inspect: unknown option %s\n", argv[i]);
            goto out;
        } else if (!refarg) {
            refarg = argv[i];
        } else {
            fprintf(stderr, "berth inspect: too many arguments\n");
            goto out;
        }
    }
    if (!refarg) {
        fputs(help, stderr);
        goto out;
    }
    ret = 1;
    if (cli_target_parse(&t, "inspect", refarg) < 0) {
        goto out;
    }
    if (cli_client_open(&c, &co, "inspect") < 0) {
        goto out;
    }
    if (get_manifest(c, &t, NULL, &body, &ctype, &d) < 0) {
        cli_client_fail("inspect");
        goto out;
    }
    if (!config) {
        if (raw) {
            put_bytes(body.ptr, body.len, tty);
        } else {
            if (berth_client_inspect_manifest(&doc, ctype, body.ptr, body.len) == 0) {
                printf("Digest:    %s\nMediaType: %s\nSize:      %zu\n", d.str, doc->media_type,
                       body.len);
            } else {
                printf("Digest:    %s\nSize:      %zu\n", d.str, body.len);
            }
            print_pretty(body.ptr, body.len, tty);
        }
        ret = 0;
        goto out;
    }
    if (berth_client_inspect_manifest(&doc, ctype, body.ptr, body.len) < 0) {
        cli_client_fail("inspect");
        goto out;
    }
    const berth_document_info *img = doc;
    if (berth_document_kind_is_index(doc->kind)) {
        const berth_descriptor *pick = NULL;
        for (size_t i = 0; i < doc->nrefs && !pick; i++) {
            const berth_descriptor *r = &doc->refs[i];
            if (!platform
                    ? (r->platform && r->platform->os && strcmp(r->platform->os, "unknown") != 0)
                    : berth_client_platform_matches(r, platform)) {
                pick = r;
            }
        }
        if (!pick) {
            fprintf(stderr, "berth inspect: %s: an index with no image for %s\n", refarg,
                    platform ? platform : "any platform");
            goto out;
        }
        berth_digest cd = pick->digest, got;
        if (get_manifest(c, &t, &cd, &child, &cctype, &got) < 0 ||
            berth_client_inspect_manifest(&cdoc, pick->media_type, child.ptr, child.len) < 0) {
            cli_client_fail("inspect");
            goto out;
        }
        img = cdoc;
    }
    if (berth_document_kind_is_index(img->kind) || img->nrefs == 0) {
        fprintf(stderr, "berth inspect: %s: no image config\n", refarg);
        goto out;
    }
    int rc = t.lref ? berth_layout_read_blob(t.lref->path, &img->refs[0].digest, &cfg)
                    : berth_client_get_blob(c, t.ref->registry, t.ref->repository,
                                            &img->refs[0].digest, img->refs[0].size, to_buf, &cfg);
    if (rc < 0) {
        cli_client_fail("inspect");
        goto out;
    }
    if (raw) {
        put_bytes(cfg.ptr, cfg.len, tty);
    } else {
        print_pretty(cfg.ptr, cfg.len, tty);
    }
    ret = 0;
out:
    berth_document_info_free(doc);
    berth_document_info_free(cdoc);
    free(ctype);
    free(cctype);
    berth_buf_dispose(&body);
    berth_buf_dispose(&child);
    berth_buf_dispose(&cfg);
    cli_target_dispose(&t);
    berth_client_free(c);
    cli_client_opts_dispose(&co);
    return ret;
}
