/* SPDX-License-Identifier: Apache-2.0 */
/*
 * print_descriptors: read an OCI/Docker manifest or index from a file and print what it
 * points at, one descriptor a line: mediaType, digest, size and platform.
 *
 *     example_print_descriptors tests/data/oci/index.json
 *
 * This is the public API as a newcomer first meets it: one include, a parse call that
 * returns 0 or a negative code, berth_error_last() for the reason, and a free function.
 */
#include <berth/berth.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    berth_buf text = BERTH_BUF_INIT; /* a growable, NUL-terminated buffer */
    berth_document_info *info = NULL;
    char chunk[4096];
    size_t i, n;
    FILE *f;
    int status = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: %s MANIFEST-OR-INDEX.json\n", argv[0]);
        return 2;
    }
    if (!(f = fopen(argv[1], "rb"))) {
        perror(argv[1]);
        return 1;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (berth_buf_put(&text, chunk, n) < 0) {
            break;
        }
    }
    fclose(f);

    /* Parse and validate any manifest or index; the kind comes from its mediaType or shape.
     * (berth_manifest_parse() and berth_index_parse() give the full structs instead.) */
    if (berth_document_inspect(&info, NULL, text.ptr, text.len) < 0) {
        fprintf(stderr, "%s: %s\n", argv[1], berth_error_last());
        goto out;
    }
    printf("%s\n", info->media_type);
    /* refs: the config then the layers of a manifest, or the manifests of an index */
    for (i = 0; i < info->nrefs; i++) {
        const berth_descriptor *d = &info->refs[i];
        printf("  %s %s %lld", d->media_type, d->digest.str, (long long)d->size);
        if (d->platform) {
            printf(" %s/%s%s%s", d->platform->os, d->platform->architecture,
                   d->platform->variant ? "/" : "",
                   d->platform->variant ? d->platform->variant : "");
        }
        printf("\n");
    }
    status = 0;
out:
    berth_document_info_free(info);
    berth_buf_dispose(&text);
    return status;
}
