/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The s3 blob backend: blobs in any S3-compatible bucket (AWS S3, Ceph RGW, MinIO, ...).
 *
 * Layout under `prefix` in the bucket:
 *   blobs/<alg>/<hex>            one object per blob, written once
 *   uploads/<id>/data            the multipart upload of write session <id> (completed there
 *                                only at commit, then copied to its blob key and deleted)
 *   uploads/<id>/tail-<random>   a staged segment of a session: bytes after its last part
 *                                that were too few for a part, written by one sync()
 * A write session is an S3 multipart upload with parts of 5 MiB to part_size (8 MiB by
 * default, doubled every 1,000 parts; the last may be smaller): a writer's buffer becomes a
 * part when it fills or, holding 5 MiB or more, at sync(); fewer bytes are staged at sync() as a
 * segment object that the next part takes in. The state text sync() returns (JSON) names the upload
 * id, the part count and sizes with a chain of the parts' ETags, and the segments, so that any
 * process continues the session.
 */
#ifndef BERTH_BACKEND_S3_S3_H
#define BERTH_BACKEND_S3_S3_H

#include <berth/sys/blob_backend.h>

/** Settings of an s3 blob backend (the strings are copied). */
typedef struct berth_s3_options {
    const char *endpoint;        /* "http://127.0.0.1:7480", "https://s3.eu-west-1.amazonaws.com" */
    const char *bucket;          /* an existing bucket */
    const char *region;          /* NULL: "us-east-1" */
    const char *prefix;          /* key prefix, NULL or "" for none; "/" is appended if missing */
    bool path_style;             /* endpoint/bucket/key rather than bucket.endpoint/key */
    bool redirect;               /* url() gives presigned GETs (else BERTH_EUNSUPPORTED) */
    const char *public_endpoint; /* endpoint in presigned URLs; NULL: `endpoint` */
    unsigned redirect_seconds;   /* validity of presigned URLs when url() is asked for 0 s
                                    (0: 600); at most 7 days */
    size_t part_size;            /* bytes of a write session's first parts (the memory a writer
                                    holds is about twice this): 5 MiB to 5 GiB; 0: 8 MiB */
    unsigned part_growth;        /* parts between doublings of the part size (so that 10,000
                                    parts reach S3's largest object); 0: 1,000 */
} berth_s3_options;

/**
 * A new s3 blob backend. Credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
 * (+ AWS_SESSION_TOKEN) or the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, default
 * ~/.aws/credentials; profile AWS_PROFILE, default "default"). Nothing is sent to the service
 * here: an unreachable endpoint shows as BERTH_ENETWORK on the first call.
 * @param out   receives the backend; free with its `free` member
 * @return 0; BERTH_EINVALID (endpoint or public endpoint not scheme://host[:port], no bucket,
 *         part_size out of range);
 *         BERTH_EUNAUTHORIZED (no credentials found); BERTH_ENOMEM
 */
int berth_s3_blob_backend_new(berth_blob_backend **out, const berth_s3_options *opts);

struct berth__s3;

/**
 * The S3 client of an s3 blob backend (borrowed: it goes with the backend), for its request
 * counts (berth__s3_count in client.h) in tests and metrics. `b` must be an s3 backend.
 */
struct berth__s3 *berth__s3_backend_client(berth_blob_backend *b);

#endif
