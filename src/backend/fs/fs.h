/* placeholder until the fs backends land: the lead's expected interface */
#ifndef BERTH_BACKEND_FS_H
#define BERTH_BACKEND_FS_H
#include <berth/store.h>
typedef struct berth_fs_options { bool fsync; bool lock; bool read_only; size_t cache_bytes; } berth_fs_options;
int berth_fs_backends_open(berth_blob_backend **blobs_out, berth_meta_backend **meta_out, const char *root, const berth_fs_options *opts);
int berth_fs_fsck(berth_blob_backend *b, berth_meta_backend *m, bool repair, berth_fsck_cb cb, void *payload, berth_fsck_stats *stats);
int berth_fs_du(berth_blob_backend *b, berth_meta_backend *m, berth_du_cb cb, void *payload, uint64_t *total_out);
#endif
