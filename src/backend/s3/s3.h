/* placeholder (the s3 branch replaces it) */
#ifndef BERTH_BACKEND_S3_H
#define BERTH_BACKEND_S3_H
#include <berth/sys/blob_backend.h>
typedef struct berth_s3_options { const char *endpoint, *bucket, *region, *prefix; bool path_style; bool redirect; const char *public_endpoint; unsigned redirect_seconds; } berth_s3_options;
int berth_s3_blob_backend_new(berth_blob_backend **out, const berth_s3_options *opts);
#endif
