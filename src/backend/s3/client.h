/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small S3 client over libcurl (internal to the s3 backend): the dozen calls the blob
 * backend needs, signed with sigv4.c.
 *
 * Connections: a client keeps a pool of idle curl easy handles (each with its connection
 * cache); a request takes one, from any thread, and gives it back. Timeouts: connect (5 s by
 * default) and low speed (under 1 byte/s for 30 s). Retries: requests that are safe to repeat are
 * retried on a connection error or a 5xx status, a bounded number of times with doubling backoff,
 * never after a timeout and never once a sink has had bytes. Errors: BERTH_ENETWORK (unreachable,
 * timed out, broken off, or 5xx after the retries), BERTH_ENOTFOUND (404: no such key, upload or
 * bucket), BERTH_EEXISTS (412 of a conditional write), BERTH_ERANGE (416), BERTH_ENOSPACE (507,
 * quota), BERTH_EUNAUTHORIZED (no credentials), BERTH_EIO (anything else); messages name the
 * operation and S3's error code, never a URL, a key or a credential.
 *
 * Credentials are the AWS SDKs': AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN),
 * else the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials),
 * profile AWS_PROFILE (default "default"). They are read once, by berth__s3_new().
 *
 * Every function may be called from many threads at once.
 */
#ifndef BERTH_BACKEND_S3_CLIENT_H
#define BERTH_BACKEND_S3_CLIENT_H

#include <berth/common.h>
#include <berth/sys/blob_backend.h>

typedef struct berth__s3 berth__s3;

typedef struct berth__s3_config {
    const char *endpoint; /* "http://host:port" or "https://host" (no path) */
    const char *bucket;
    const char *region;         /* NULL: "us-east-1" */
    bool path_style;            /* host/bucket/key instead of bucket.host/key */
    unsigned connect_timeout_s; /* 0: 5 */
    unsigned low_speed_time_s;  /* 0: 30 */
    unsigned retries;           /* extra attempts of safe requests; 0: none */
    unsigned list_page;         /* max-keys of list requests; 0: the service's (1000) */
} berth__s3_config;

/** One part of a multipart upload, for berth__s3_mpu_complete(). */
typedef struct berth__s3_part {
    unsigned number;
    const char *etag; /* as S3 gave it, quotes included */
} berth__s3_part;

/** Object metadata. */
typedef struct berth__s3_stat {
    uint64_t size;
    int64_t mtime; /* Unix seconds, 0 when not known */
} berth__s3_stat;

/** ListObjectsV2 callback: one object; non-zero stops the walk and is returned. */
typedef int (*berth__s3_object_cb)(const char *key, uint64_t size, int64_t mtime, void *payload);

/** ListMultipartUploads callback: one upload in progress; non-zero stops and is returned. */
typedef int (*berth__s3_upload_cb)(const char *key, const char *upload_id, int64_t initiated,
                                   void *payload);

/**
 * A client of `cfg` (the strings are copied), with credentials read from the environment or
 * the shared credentials file.
 * @param out  receives the client; free with berth__s3_free()
 * @return 0, BERTH_EINVALID (bad endpoint or bucket), BERTH_EUNAUTHORIZED (no credentials),
 *         BERTH_ENOMEM
 */
int berth__s3_new(berth__s3 **out, const berth__s3_config *cfg);

/** Free a client; NULL is fine. */
void berth__s3_free(berth__s3 *c);

/** HeadObject. @return 0, BERTH_ENOTFOUND, BERTH_ENETWORK, BERTH_EIO */
int berth__s3_head(berth__s3 *c, const char *key, berth__s3_stat *out);

/**
 * GetObject of `len` bytes from `offset` (UINT64_MAX: to the end; offset 0 and UINT64_MAX:
 * no Range), streamed into `sink`.
 * @return 0, BERTH_ENOTFOUND, BERTH_ERANGE (416), the sink's code, BERTH_ENETWORK, BERTH_EIO
 */
int berth__s3_get(berth__s3 *c, const char *key, uint64_t offset, uint64_t len,
                  berth_blob_sink sink, void *payload);

/**
 * PutObject of `len` bytes from memory; with `if_none_match`, only when the key does not
 * exist (If-None-Match: *). A service that answers 501 to the condition (OpenStack Swift's
 * s3api) gets, from then on, a HEAD and an unconditional PUT instead: not atomic, so two
 * writers racing on one key may both succeed (harmless where the key names its content).
 * @return 0, BERTH_EEXISTS (412, or the HEAD found it: it exists), BERTH_ENOSPACE,
 *         BERTH_ENETWORK, BERTH_EIO
 */
int berth__s3_put(berth__s3 *c, const char *key, const void *data, size_t len, bool if_none_match);

/** DeleteObject (S3 answers 204 for a missing key too). @return 0, BERTH_ENETWORK, BERTH_EIO */
int berth__s3_delete(berth__s3 *c, const char *key);

/**
 * CopyObject `src` to `dst` in the bucket (up to 5 GiB), after a HeadObject of `src` for its
 * size: this copy and UploadPartCopy may keep silent for the low-speed time plus 1 s per 16 MiB
 * (the service answers when done; Swift's s3api sends nothing meanwhile).
 * @return 0, BERTH_ENOTFOUND, ...
 */
int berth__s3_copy(berth__s3 *c, const char *dst, const char *src);

/** CreateMultipartUpload. @param upload_id_out  freed with free() @return 0, ... */
int berth__s3_mpu_create(berth__s3 *c, const char *key, char **upload_id_out);

/**
 * UploadPart `number` (1..10000) of `len` bytes.
 * @param etag_out  receives the part's ETag, freed with free()
 * @return 0, BERTH_ENOTFOUND (no such upload), BERTH_ENOSPACE, BERTH_ENETWORK, BERTH_EIO
 */
int berth__s3_mpu_part(berth__s3 *c, const char *key, const char *upload_id, unsigned number,
                       const void *data, size_t len, char **etag_out);

/** Gives up to `max` bytes of a streamed body into `out`: the count, or 0 to abort the request. */
typedef size_t (*berth__s3_body_cb)(char *out, size_t max, void *payload);

/**
 * UploadPart `number` of exactly `len` bytes pulled from `body` as they come (the callback may
 * wait for them), so that the upload overlaps whatever produces them. Never retried (the
 * bytes cannot be asked for twice): the caller keeps them to upload again.
 * @return as berth__s3_mpu_part(); BERTH_ENETWORK also when `body` aborted the request
 */
int berth__s3_mpu_part_stream(berth__s3 *c, const char *key, const char *upload_id, unsigned number,
                              size_t len, berth__s3_body_cb body, void *payload, char **etag_out);

/**
 * UploadPartCopy: part `number` is bytes [offset, offset+len) of object `src`.
 * @return as berth__s3_mpu_part()
 */
int berth__s3_mpu_part_copy(berth__s3 *c, const char *key, const char *upload_id, unsigned number,
                            const char *src, uint64_t offset, uint64_t len, char **etag_out);

/**
 * CompleteMultipartUpload with `parts` (ascending numbers).
 * @return 0, BERTH_ENOTFOUND (no such upload), BERTH_EINVALID (S3 refused the part list:
 *         InvalidPart, InvalidPartOrder, EntityTooSmall), BERTH_ENETWORK, BERTH_EIO
 */
int berth__s3_mpu_complete(berth__s3 *c, const char *key, const char *upload_id,
                           const berth__s3_part *parts, size_t nparts);

/** AbortMultipartUpload. @return 0, BERTH_ENOTFOUND, BERTH_ENETWORK, BERTH_EIO */
int berth__s3_mpu_abort(berth__s3 *c, const char *key, const char *upload_id);

/**
 * ListParts, first page only (enough to tell whether an upload exists).
 * @return 0, BERTH_ENOTFOUND (no such upload), BERTH_ENETWORK, BERTH_EIO
 */
int berth__s3_mpu_exists(berth__s3 *c, const char *key, const char *upload_id);

/** ListParts callback: one part; non-zero stops the walk and is returned. */
typedef int (*berth__s3_part_cb)(unsigned number, const char *etag, uint64_t size, void *payload);

/**
 * ListParts of an upload, every page, in ascending part numbers.
 * @return 0, the callback's code, BERTH_ENOTFOUND (no such upload), BERTH_ENETWORK, BERTH_EIO
 */
int berth__s3_mpu_parts(berth__s3 *c, const char *key, const char *upload_id, berth__s3_part_cb cb,
                        void *payload);

/** ListMultipartUploads under `prefix`, every page. @return 0, the callback's code, ... */
int berth__s3_mpu_list(berth__s3 *c, const char *prefix, berth__s3_upload_cb cb, void *payload);

/** ListObjectsV2 under `prefix`, every page. @return 0, the callback's code, ... */
int berth__s3_list(berth__s3 *c, const char *prefix, berth__s3_object_cb cb, void *payload);

/**
 * A presigned GET of `key` valid for `seconds`, against `public_endpoint` when not NULL (same
 * form as the endpoint), else the client's endpoint.
 * @param url_out  freed with free()
 * @return 0, BERTH_EINVALID (bad public endpoint), BERTH_ENOMEM
 */
int berth__s3_presign_get(berth__s3 *c, const char *key, unsigned seconds,
                          const char *public_endpoint, char **url_out);

/**
 * The requests of operation `op` ("UploadPart", "GetObject", ... as S3 names them) this client
 * has made since it was created (a retried request counts once), for tests and metrics.
 * @return the count; 0 for an unknown operation or a NULL client
 */
uint64_t berth__s3_count(berth__s3 *c, const char *op);

#endif
