/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server's one table from berth error codes to the distribution spec's errors. Handlers
 * never pick a status or an error code themselves: they say what they were doing (a berth__op)
 * and what failed (a berth code), and the table answers. A row with BERTH_OP_ANY applies when
 * no row of the specific operation matches.
 */
#include "server/server_internal.h"

#include "base/log.h"
#include "oci/json.h"

#include <berth/api.h>
#include <berth/errors.h>

#include <string.h>

static const struct {
    const char *code;
    const char *message;
} api_errors[] = {
    [BERTH_API_BLOB_UNKNOWN] = {"BLOB_UNKNOWN", "blob unknown to registry"},
    [BERTH_API_BLOB_UPLOAD_INVALID] = {"BLOB_UPLOAD_INVALID", "blob upload invalid"},
    [BERTH_API_BLOB_UPLOAD_UNKNOWN] = {"BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry"},
    [BERTH_API_DIGEST_INVALID] = {"DIGEST_INVALID",
                                  "provided digest did not match uploaded content"},
    [BERTH_API_MANIFEST_BLOB_UNKNOWN] =
        {"MANIFEST_BLOB_UNKNOWN", "manifest references a manifest or blob unknown to registry"},
    [BERTH_API_MANIFEST_INVALID] = {"MANIFEST_INVALID", "manifest invalid"},
    [BERTH_API_MANIFEST_UNKNOWN] = {"MANIFEST_UNKNOWN", "manifest unknown to registry"},
    [BERTH_API_NAME_INVALID] = {"NAME_INVALID", "invalid repository name"},
    [BERTH_API_NAME_UNKNOWN] = {"NAME_UNKNOWN", "repository name not known to registry"},
    [BERTH_API_SIZE_INVALID] = {"SIZE_INVALID", "provided length did not match content length"},
    [BERTH_API_UNAUTHORIZED] = {"UNAUTHORIZED", "authentication required"},
    [BERTH_API_DENIED] = {"DENIED", "requested access to the resource is denied"},
    [BERTH_API_UNSUPPORTED] = {"UNSUPPORTED", "the operation is unsupported"},
    [BERTH_API_TOOMANYREQUESTS] = {"TOOMANYREQUESTS", "too many requests"},
    [BERTH_API_UNAVAILABLE] = {"UNAVAILABLE", "service unavailable"},
    [BERTH_API_UNKNOWN] = {"UNKNOWN", "unknown error"},
};

static const struct {
    berth__op op;
    int code;
    unsigned status;
    berth__api_error api;
} table[] = {
    /* validation of the path and query */
    {BERTH_OP_NAME, BERTH_EINVALID, 400, BERTH_API_NAME_INVALID},
    {BERTH_OP_DIGEST, BERTH_EINVALID, 400, BERTH_API_DIGEST_INVALID},
    {BERTH_OP_DIGEST, BERTH_EUNSUPPORTED, 400, BERTH_API_DIGEST_INVALID},
    {BERTH_OP_TAG, BERTH_EINVALID, 400, BERTH_API_MANIFEST_INVALID},
    {BERTH_OP_ROUTE, BERTH_ENOTFOUND, 404, BERTH_API_UNSUPPORTED},
    {BERTH_OP_METHOD, BERTH_EUNSUPPORTED, 405, BERTH_API_UNSUPPORTED},
    {BERTH_OP_QUERY, BERTH_EINVALID, 400, BERTH_API_UNSUPPORTED},
    {BERTH_OP_HTTP, BERTH_EINVALID, 400, BERTH_API_UNSUPPORTED},
    {BERTH_OP_HTTP, BERTH_EUNSUPPORTED, 501, BERTH_API_UNSUPPORTED},
    /* blobs */
    {BERTH_OP_BLOB, BERTH_ENOTFOUND, 404, BERTH_API_BLOB_UNKNOWN},
    {BERTH_OP_BLOB, BERTH_ERANGE, 416, BERTH_API_BLOB_UNKNOWN},
    /* uploads */
    {BERTH_OP_UPLOAD, BERTH_ENOTFOUND, 404, BERTH_API_BLOB_UPLOAD_UNKNOWN},
    {BERTH_OP_UPLOAD, BERTH_EINVALID, 400, BERTH_API_BLOB_UPLOAD_INVALID},
    {BERTH_OP_UPLOAD, BERTH_ERANGE, 416, BERTH_API_BLOB_UPLOAD_INVALID},
    {BERTH_OP_UPLOAD, BERTH_ETOOBIG, 413, BERTH_API_SIZE_INVALID},
    {BERTH_OP_UPLOAD, BERTH_EMISMATCH, 400, BERTH_API_SIZE_INVALID},
    {BERTH_OP_UPLOAD_RANGE, BERTH_ERANGE, 416, BERTH_API_BLOB_UPLOAD_INVALID},
    /* too many open sessions (in all, in the repository, of the user or address) */
    {BERTH_OP_UPLOAD_NEW, BERTH_EBUSY, 429, BERTH_API_TOOMANYREQUESTS},
    /* the spec's 416 covers a malformed Content-Range as well as a chunk out of order */
    {BERTH_OP_UPLOAD_RANGE, BERTH_EINVALID, 416, BERTH_API_BLOB_UPLOAD_INVALID},
    {BERTH_OP_COMMIT, BERTH_EMISMATCH, 400, BERTH_API_DIGEST_INVALID},
    {BERTH_OP_COMMIT, BERTH_EUNSUPPORTED, 400, BERTH_API_DIGEST_INVALID},
    {BERTH_OP_COMMIT, BERTH_EINVALID, 400, BERTH_API_DIGEST_INVALID},
    {BERTH_OP_COMMIT, BERTH_ENOTFOUND, 404, BERTH_API_BLOB_UPLOAD_UNKNOWN},
    /* manifests */
    {BERTH_OP_MANIFEST_GET, BERTH_ENOTFOUND, 404, BERTH_API_MANIFEST_UNKNOWN},
    {BERTH_OP_MANIFEST_GET, BERTH_EINVALID, 400, BERTH_API_MANIFEST_INVALID},
    {BERTH_OP_MANIFEST_PUT, BERTH_ENOTFOUND, 400, BERTH_API_MANIFEST_BLOB_UNKNOWN},
    {BERTH_OP_MANIFEST_PUT, BERTH_EINVALID, 400, BERTH_API_MANIFEST_INVALID},
    {BERTH_OP_MANIFEST_PUT, BERTH_EUNSUPPORTED, 400, BERTH_API_MANIFEST_INVALID},
    {BERTH_OP_MANIFEST_PUT, BERTH_EMISMATCH, 400, BERTH_API_DIGEST_INVALID},
    {BERTH_OP_MANIFEST_PUT, BERTH_ETOOBIG, 413, BERTH_API_SIZE_INVALID},
    /* repositories */
    {BERTH_OP_REPO, BERTH_ENOTFOUND, 404, BERTH_API_NAME_UNKNOWN},
    /* anywhere */
    {BERTH_OP_ANY, BERTH_EUNAUTHORIZED, 401, BERTH_API_UNAUTHORIZED},
    {BERTH_OP_ANY, BERTH_EDENIED, 403, BERTH_API_DENIED},
    /* busy: a session another request holds (or a replica killed a moment ago held, until
     * PostgreSQL notices its connection gone), a table full: come back after Retry-After */
    {BERTH_OP_ANY, BERTH_EBUSY, 429, BERTH_API_TOOMANYREQUESTS},
    {BERTH_OP_ANY, BERTH_EUNSUPPORTED, 405, BERTH_API_UNSUPPORTED},
    {BERTH_OP_ANY, BERTH_ETOOBIG, 413, BERTH_API_SIZE_INVALID},
    /* the registry's storage is full: not the client's fault (507 Insufficient Storage) */
    {BERTH_OP_ANY, BERTH_ENOSPACE, 507, BERTH_API_UNKNOWN},
    /* a storage engine (PostgreSQL, the object store) cannot be reached: try again later */
    {BERTH_OP_ANY, BERTH_ENETWORK, 503, BERTH_API_UNAVAILABLE},
    /* a delete that would leave a manifest naming absent content */
    {BERTH_OP_ANY, BERTH_EINUSE, 409, BERTH_API_DENIED},
};

const char *berth__api_error_code(berth__api_error e)
{
    if ((unsigned)e > BERTH_API_UNKNOWN) {
        e = BERTH_API_UNKNOWN;
    }
    return api_errors[e].code;
}

void berth__error_map(unsigned *status_out, berth__api_error *api_out, berth__op op, int code)
{
    size_t i;

    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (table[i].op == op && table[i].code == code) {
            goto found;
        }
    }
    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (table[i].op == BERTH_OP_ANY && table[i].code == code) {
            goto found;
        }
    }
    *status_out = 500;
    *api_out = BERTH_API_UNKNOWN;
    return;
found:
    *status_out = table[i].status;
    *api_out = table[i].api;
}

int berth__error_document(berth_buf *out, berth__api_error e, const char *message)
{
    berth_buf repaired = BERTH_BUF_INIT;
    berth_error_info info;
    berth_error_response doc = {&info, 1, NULL};
    size_t len;
    int error = 0;

    if ((unsigned)e > BERTH_API_UNKNOWN) {
        e = BERTH_API_UNKNOWN;
    }
    if (e == BERTH_API_UNKNOWN && message && *message) {
        /* a server failure: its detail (paths of the store, errno text) goes to the log, not
           to the client */
        berth__log(BERTH_LOG_WARN, "server error: %s", message);
        message = NULL;
    }
    if (!message || !*message) {
        message = api_errors[e].message;
    }
    /* a message may quote what the client sent: made UTF-8, so that it is JSON */
    len = strlen(message);
    if (berth__utf8_valid_prefix(message, len) != len) {
        if ((error = berth__utf8_repair(&repaired, message, len)) < 0) {
            goto out;
        }
        message = repaired.ptr;
    }
    info = (berth_error_info){
        .code = (char *)(uintptr_t)api_errors[e].code,
        .message = (char *)(uintptr_t)message,
        .detail = (char *)(uintptr_t) "{}",
        .extra = NULL,
    };
    error = berth_error_response_serialize(out, &doc);
out:
    berth_buf_dispose(&repaired);
    return error;
}
