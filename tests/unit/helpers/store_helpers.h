/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the store's unit tests: a store over the mem backend pair as a cmocka
 * fixture, bytes pushed through an upload session, and the text of a one-layer image manifest.
 * Every step is asserted, so a test that uses them fails where the step failed.
 */
#ifndef BERTH_TEST_STORE_HELPERS_H
#define BERTH_TEST_STORE_HELPERS_H

#include <berth/store.h>
#include <berth/sys/blob_backend.h>
#include <berth/sys/meta_backend.h>

#include <stddef.h>

/* A store over a new mem blob backend and a new mem metadata backend. */
typedef struct mem_store {
    berth_store *store;
    berth_blob_backend *blobs; /* owned by the store */
    berth_meta_backend *meta;  /* owned by the store */
} mem_store;

/**
 * cmocka setup: a mem_store, in *state, for a test and mem_store_teardown().
 * @param state  cmocka's state @return 0
 */
int mem_store_setup(void **state);

/**
 * cmocka teardown: free the mem_store of mem_store_setup() (its store frees the backends).
 * @param state  cmocka's state @return 0
 */
int mem_store_teardown(void **state);

/**
 * Upload `data` (a C string) to `repo` of `s` in one session and commit it.
 * @return its sha256 digest
 */
berth_digest store_push_blob(berth_store *s, const char *repo, const char *data);

/**
 * The text of an OCI image manifest of the config `config` (of `config_len` bytes) and the one
 * tar layer `layer` (of `layer_len` bytes), with `extra` (NULL: nothing) inserted before the
 * closing brace, e.g. ",\"annotations\":{...}".
 * @return a static buffer, overwritten by the next call
 */
char *oci_image_manifest(const berth_digest *config, size_t config_len, const berth_digest *layer,
                         size_t layer_len, const char *extra);

#endif
