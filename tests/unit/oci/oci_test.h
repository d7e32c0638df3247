/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the oci unit tests: reading test documents and checking failures. */
#ifndef BERTH_OCI_TEST_H
#define BERTH_OCI_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <berth/buf.h>
#include <berth/errors.h>

/* Read tests/data/oci/<name> into a fresh buffer (the caller disposes it). */
static inline berth_buf oci_read(const char *name)
{
    berth_buf b = BERTH_BUF_INIT;
    char path[1024], chunk[4096];
    size_t n;
    FILE *f;

    snprintf(path, sizeof(path), "%s/oci/%s", BERTH_TEST_DATA, name);
    f = fopen(path, "rb");
    assert_non_null(f);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        assert_int_equal(berth_buf_put(&b, chunk, n), 0);
    }
    fclose(f);
    return b;
}

/* Assert that a call failed with `code` and that the message starts with `field`. */
#define assert_fails(rc, code, field)                                                              \
    do {                                                                                           \
        int rc_ = (rc);                                                                            \
        if (rc_ != (code) || strncmp(berth_error_last(), (field), strlen(field)) != 0) {           \
            print_error("got %d '%s', want %d '%s...'\n", rc_, berth_error_last(), (code),         \
                        (field));                                                                  \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

#endif
