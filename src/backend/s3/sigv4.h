/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AWS Signature Version 4 (internal to the s3 backend), signed with OpenSSL's HMAC-SHA256.
 *
 * Why not libcurl's CURLOPT_AWS_SIGV4 (7.88, Debian 12): it does not add x-amz-content-sha256,
 * signs the query exactly as given (an unsorted or unencoded query is refused with 403), orders
 * x-amz-copy-source-range wrongly and cannot presign. Here the caller hands over the decoded
 * parts of a request, and the same functions build both what is signed and what is sent (the
 * path and query of the URL come from berth__sigv4_uri_encode()/berth__sigv4_query()), so the
 * two cannot differ. Proven against AWS's published test vectors
 * (tests/unit/backend/test_s3_sigv4.c).
 *
 * Encoding is S3's: the path is encoded once (not twice as other services do) and never
 * normalised ("." and ".." segments stay), '/' is kept in the path and encoded in the query.
 */
#ifndef BERTH_BACKEND_S3_SIGV4_H
#define BERTH_BACKEND_S3_SIGV4_H

#include <berth/buf.h>
#include <berth/common.h>

#include <time.h>

/** SHA-256 of the empty string, the payload hash of a bodiless request. */
#define BERTH_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/** The payload hash of a request whose body is not signed. */
#define BERTH_SIGV4_UNSIGNED "UNSIGNED-PAYLOAD"

/** A query parameter or a header, decoded; `value` may be "" (never NULL). */
typedef struct berth__sigv4_pair {
    const char *name;
    const char *value;
} berth__sigv4_pair;

/** Credentials; `session_token` NULL when there is none. */
typedef struct berth__sigv4_creds {
    const char *access_key;
    const char *secret_key;
    const char *session_token;
} berth__sigv4_creds;

/**
 * A request to sign. `path` is decoded ("/bucket/a b"); `query` holds decoded names and values
 * in any order; `headers` are the headers to sign (names in any case, in any order, duplicates
 * joined with ',' in the order given) and must include "host" and, for a header-signed
 * request, "x-amz-date" (and S3's "x-amz-content-sha256"). `payload_hash` is the lowercase hex
 * SHA-256 of the body or BERTH_SIGV4_UNSIGNED.
 */
typedef struct berth__sigv4_request {
    const char *method;
    const char *path;
    const berth__sigv4_pair *query;
    size_t nquery;
    const berth__sigv4_pair *headers;
    size_t nheaders;
    const char *payload_hash;
} berth__sigv4_request;

/**
 * Append `len` bytes of `s` percent-encoded as SigV4 wants: every byte but A-Z a-z 0-9 - . _ ~
 * as %XY (uppercase hex), and '/' kept when `keep_slash`.
 * @return 0, BERTH_ENOMEM, BERTH_ETOOBIG
 */
int berth__sigv4_uri_encode(berth_buf *out, const char *s, size_t len, bool keep_slash);

/**
 * Append the canonical query string of `query` (names and values encoded, sorted by encoded
 * name then value, joined with '&'; "name=" for an empty value). This is also the query to
 * send. @return 0, BERTH_ENOMEM, BERTH_ETOOBIG
 */
int berth__sigv4_query(berth_buf *out, const berth__sigv4_pair *query, size_t nquery);

/**
 * Append the canonical request of `r` (the six lines SigV4 hashes), and into `signed_out`
 * (may be NULL) the SignedHeaders list ("host;x-amz-date").
 * @return 0, BERTH_ENOMEM, BERTH_EINVALID (a header without a name)
 */
int berth__sigv4_canonical_request(berth_buf *out, berth_buf *signed_out,
                                   const berth__sigv4_request *r);

/**
 * The Authorization header value of `r` ("AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
 * Signature=..."), appended to `out`.
 * @param amz_date  the request's x-amz-date, "YYYYMMDDTHHMMSSZ" (its first 8 bytes are the
 *                  scope's date)
 * @param service   "s3" for S3
 * @return 0, BERTH_ENOMEM, BERTH_EINVALID (a bad date), BERTH_ERROR (OpenSSL failed)
 */
int berth__sigv4_authorization(berth_buf *out, const berth__sigv4_request *r, const char *amz_date,
                               const char *region, const char *service,
                               const berth__sigv4_creds *creds);

/**
 * Presign `method` `path` (decoded) for `host` (exactly as sent in the Host header, with a
 * non-default port): appends to `query_out` the whole query string of the presigned URL (the
 * given `query` plus X-Amz-Algorithm, -Credential, -Date, -Expires, -SignedHeaders=host,
 * -Security-Token when the credentials have one, then -Signature), to be put after '?' in
 * the URL whose path is the encoded `path`. The payload is UNSIGNED-PAYLOAD.
 * @return 0, BERTH_ENOMEM, BERTH_EINVALID, BERTH_ERROR
 */
int berth__sigv4_presign(berth_buf *query_out, const char *method, const char *path,
                         const berth__sigv4_pair *query, size_t nquery, const char *host,
                         const char *amz_date, unsigned expires, const char *region,
                         const char *service, const berth__sigv4_creds *creds);

/** Format `t` (Unix seconds, UTC) as an x-amz-date "YYYYMMDDTHHMMSSZ" into `out`. */
void berth__sigv4_date(char out[17], time_t t);

/** Lowercase hex SHA-256 of `len` bytes into `out` (65 bytes with the NUL). @return 0, -1 */
int berth__sigv4_sha256_hex(char out[65], const void *data, size_t len);

#endif
