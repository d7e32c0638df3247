/* SPDX-License-Identifier: Apache-2.0 */
/*
 * berth-remote.so's one export: the table of its functions (remote.h). Everything else in the
 * module is hidden (built with hidden visibility), so its own calls never leave it, and what it
 * needs of the rest of berth (buffers, errors, digests, documents) it takes from the program.
 */
#include "remote/remote.h"
#include "remote_build.h"

__attribute__((visibility("default"))) extern const berth__remote_ops berth__remote;

const berth__remote_ops berth__remote = {
    .version = BERTH__REMOTE_VERSION,
    .size = sizeof(berth__remote_ops),
    .build = BERTH__REMOTE_BUILD,
    .client_new = berth_client_new,
    .client_free = berth_client_free,
    .client_interrupt = berth_client_interrupt,
    .client_interrupted = berth_client_interrupted,
    .client_retry_after = berth_client_retry_after,
    .client_content_length = berth_client_content_length,
    .client_transport_version = berth_client_transport_version,
    .client_ping = berth_client_ping,
    .client_get_manifest = berth_client_get_manifest,
    .client_head_manifest = berth_client_head_manifest,
    .client_get_blob = berth_client_get_blob,
    .client_get_blob_unhashed = berth_client_get_blob_unhashed,
    .client_head_blob = berth_client_head_blob,
    .client_push_blob_file = berth_client_push_blob_file,
    .client_push_blob_mem = berth_client_push_blob_mem,
    .client_push_manifest = berth_client_push_manifest,
    .client_list_tags = berth_client_list_tags,
    .client_catalog = berth_client_catalog,
    .client_delete_manifest = berth_client_delete_manifest,
    .client_referrers = berth_client_referrers,
    .copy = berth_copy,
    .s3_blob_backend_new = berth_s3_blob_backend_new,
    .pg_meta_backend_new = berth_pg_meta_backend_new,
    .db_schema_latest = berth_db_schema_latest,
    .db_schema_version = berth_db_schema_version,
    .db_migrate = berth_db_migrate,
};
