/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the store's unit tests (store_helpers.h). */
#include "helpers/store_helpers.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "backend/mem/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mem_store_setup(void **state)
{
    mem_store *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(berth_mem_blob_backend_new(&f->blobs), 0);
    assert_int_equal(berth_mem_meta_backend_new(&f->meta), 0);
    assert_int_equal(berth_store_open_backends(&f->store, f->blobs, f->meta, NULL), 0);
    *state = f;
    return 0;
}

int mem_store_teardown(void **state)
{
    mem_store *f = *state;
    berth_store_free(f->store);
    free(f);
    return 0;
}

berth_digest store_push_blob(berth_store *s, const char *repo, const char *data)
{
    berth_upload *u = NULL;
    berth_digest d;
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, data, strlen(data)), 0);
    assert_int_equal(berth_store_upload_new(&u, s, repo, NULL), 0);
    assert_int_equal(berth_upload_write(u, data, strlen(data)), 0);
    assert_int_equal(berth_upload_commit(u, &d), 0);
    return d;
}

char *oci_image_manifest(const berth_digest *config, size_t config_len, const berth_digest *layer,
                         size_t layer_len, const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf),
             "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
             "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
             "\"digest\":\"%s\",\"size\":%zu},"
             "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
             "\"digest\":\"%s\",\"size\":%zu}]%s}",
             config->str, config_len, layer->str, layer_len, extra ? extra : "");
    return buf;
}
