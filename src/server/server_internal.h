/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by the files of src/server/: the per-request state, the router's result,
 * the error table and the helpers that queue responses. One berth__req lives from the URI
 * callback of libmicrohttpd to its request-completed callback, always on one thread.
 */
#ifndef BERTH_SERVER_INTERNAL_H
#define BERTH_SERVER_INTERNAL_H

#include <berth/buf.h>
#include <berth/digest.h>
#include <berth/range.h>
#include <berth/reference.h>
#include <berth/server.h>
#include <berth/store.h>

#include <microhttpd.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <time.h>

#include "server/ops/acl.h"
#include "server/ops/htpasswd.h"
#include "server/ops/metrics.h"
#include "server/ops/ratelimit.h"
#include "server/ops/token.h"
#include "server/proxy.h"

/** The API errors of the distribution spec (plus UNKNOWN for a failure of the server). */
typedef enum berth__api_error {
    BERTH_API_BLOB_UNKNOWN,
    BERTH_API_BLOB_UPLOAD_INVALID,
    BERTH_API_BLOB_UPLOAD_UNKNOWN,
    BERTH_API_DIGEST_INVALID,
    BERTH_API_MANIFEST_BLOB_UNKNOWN,
    BERTH_API_MANIFEST_INVALID,
    BERTH_API_MANIFEST_UNKNOWN,
    BERTH_API_NAME_INVALID,
    BERTH_API_NAME_UNKNOWN,
    BERTH_API_SIZE_INVALID,
    BERTH_API_UNAUTHORIZED,
    BERTH_API_DENIED,
    BERTH_API_UNSUPPORTED,
    BERTH_API_TOOMANYREQUESTS,
    BERTH_API_UNAVAILABLE,
    BERTH_API_UNKNOWN,
} berth__api_error;

/**
 * What an operation was doing when it failed: the same berth code means different API errors
 * in different places (ENOTFOUND is MANIFEST_UNKNOWN on a GET, MANIFEST_BLOB_UNKNOWN on a PUT).
 */
typedef enum berth__op {
    BERTH_OP_ANY = 0,
    BERTH_OP_NAME,         /* validating a repository name */
    BERTH_OP_DIGEST,       /* validating a digest of the path or query */
    BERTH_OP_TAG,          /* validating a tag */
    BERTH_OP_ROUTE,        /* no such endpoint */
    BERTH_OP_METHOD,       /* endpoint without that method */
    BERTH_OP_BLOB,         /* blob GET, HEAD, DELETE */
    BERTH_OP_UPLOAD,       /* opening, writing, cancelling an upload session */
    BERTH_OP_UPLOAD_NEW,   /* starting an upload session (limits of open sessions) */
    BERTH_OP_UPLOAD_RANGE, /* a chunk that does not continue the session */
    BERTH_OP_COMMIT,       /* closing an upload with its digest */
    BERTH_OP_MANIFEST_GET, /* manifest GET, HEAD, DELETE */
    BERTH_OP_MANIFEST_PUT, /* manifest PUT */
    BERTH_OP_REPO,         /* tags list, referrers: the repository must exist */
    BERTH_OP_QUERY,        /* a bad query parameter (n, last) */
    BERTH_OP_HTTP,         /* request framing (RFC 9112): the connection is closed after */
} berth__op;

typedef enum berth__method {
    BERTH_M_OTHER = 0,
    BERTH_M_GET,
    BERTH_M_HEAD,
    BERTH_M_PUT,
    BERTH_M_POST,
    BERTH_M_PATCH,
    BERTH_M_DELETE,
} berth__method;

typedef enum berth__route {
    BERTH_R_NONE = 0,
    BERTH_R_BASE,      /* /v2/ */
    BERTH_R_CATALOG,   /* /v2/_catalog */
    BERTH_R_TAGS,      /* /v2/<name>/tags/list */
    BERTH_R_MANIFEST,  /* /v2/<name>/manifests/<ref> */
    BERTH_R_BLOB,      /* /v2/<name>/blobs/<digest> */
    BERTH_R_UPLOADS,   /* /v2/<name>/blobs/uploads/ */
    BERTH_R_UPLOAD,    /* /v2/<name>/blobs/uploads/<id> */
    BERTH_R_REFERRERS, /* /v2/<name>/referrers/<digest> */
} berth__route;

/** Longest last path segment kept (a tag, a digest or an upload id). */
#define BERTH__REF_MAX 255

/** Most connections the default limit allows, whatever the descriptor limit. */
#define BERTH__CONNECTIONS_MAX 65536u
/** The listen backlog asked for (the kernel caps it at net.core.somaxconn). */
#define BERTH__LISTEN_BACKLOG 4096

/** The listener's account of connections (listener.c). */
typedef struct berth__listener berth__listener;
typedef struct berth__conn berth__conn;

/** One connection on its way to a worker (listener.c -> worker.c). */
typedef struct berth__handoff {
    berth__conn *conn;
    int fd;
    socklen_t addrlen;
    struct sockaddr_storage addr;
} berth__handoff;

/**
 * One worker: a thread of berth's own running one libmicrohttpd daemon in its external epoll
 * mode (worker.c). The listener queues new connections to it and wakes it; the worker adds
 * them to its daemon itself (MHD_add_connection from the daemon's own thread) and runs it.
 * A new connection goes to a worker that is not stuck inside a handler (see listener.c), so a
 * request doing slow I/O holds up its own worker's connections, never the new ones.
 */
typedef struct berth__worker {
    struct berth_server *srv;
    struct MHD_Daemon *daemon;
    atomic_int_fast64_t busy_since; /* ms, CLOCK_MONOTONIC, while inside a callback; 0 outside */
    atomic_uint conns;              /* connections it holds */
    pthread_t thread;
    bool running;
    int ep;                /* epoll of the daemon's epoll fd and `wake` */
    int wake;              /* eventfd: connections queued, or stop */
    pthread_mutex_t lock;  /* the queue and `stop` */
    berth__handoff *queue; /* `qcap` entries: room for every connection the server may hold */
    size_t queued, qcap;
    bool stop;
} berth__worker;

/** Verified bearer tokens, keyed by the SHA-256 of the token (auth.c). */
typedef struct berth__token_cache berth__token_cache;

struct berth_server {
    berth__worker *workers; /* opts.threads of them */
    unsigned nworkers;
    berth__listener *listener;
    berth_store *store;
    berth_server_options opts;
    uint16_t port;

    /* operations (ops.c, auth.c); all NULL / zero without a configuration */
    const berth_config *cfg;
    berth_metrics *metrics; /* always present */
    berth_acl *acl;
    berth_htpasswd *htpasswd;
    berth_token_key *token_key;
    berth__token_cache *tokens;
    berth_ratelimit *ratelimit;
    bool auth;         /* Basic or token authentication on: every /v2/ request is checked */
    bool bearer;       /* token authentication (auth.token.realm) */
    bool json_log;     /* log.format: json */
    bool mtls;         /* tls.client_ca: verify the client certificate of every request */
    uint64_t body_max; /* limits.body_size; 0: none */
    uint64_t uploads_max;
    atomic_uint_fast64_t uploads; /* upload requests streaming now */
    atomic_bool ready;
    unsigned timeout_header;           /* seconds for a request's line and headers */
    unsigned timeout_read;             /* seconds without a body byte */
    unsigned timeout_write;            /* seconds without a response byte sent */
    unsigned timeout_default;          /* MHD's inactivity timeout: max(timeout_write, idle) */
    unsigned per_address;              /* connections per client address; 0: no cap */
    char *tls_cert, *tls_key, *tls_ca; /* PEM text read at start */

    /* the pull-through cache (proxy.c); NULL without proxy.upstreams */
    berth__proxy *proxy;

    /* the web UI (ui.c, ui_api.c); NULL with ui.enabled false */
    struct berth__ui *ui;

    /* the maintenance thread: online gc and the storage gauges */
    pthread_t maint;
    bool maint_running;
    bool maint_stop;
    pthread_mutex_t maint_lock;
    pthread_cond_t maint_cond;
};

/** What the request body is being fed to. */
typedef enum berth__sink {
    BERTH_SINK_NONE = 0, /* no body expected: bytes are counted and dropped */
    BERTH_SINK_BUF,      /* a manifest: buffered up to the limit */
    BERTH_SINK_UPLOAD,   /* a blob: streamed into an upload session */
} berth__sink;

typedef struct berth__req {
    berth_server *srv;
    struct MHD_Connection *conn;
    berth__conn *lc; /* the listener's record of the connection (may be NULL) */
    char *uri;       /* as received, with the query: routed on and logged */
    struct timespec start;
    berth__method method;
    const char *method_name;
    berth__route route;
    char name[BERTH_NAME_MAX + 1];
    char ref[BERTH__REF_MAX + 1];
    bool begun;       /* the first access-handler call happened */
    bool early;       /* routed on the first call, before the body (see handle) */
    bool responded;   /* a response is queued */
    bool close_after; /* the response closes the connection */
    unsigned status;  /* status of the queued response */
    uint64_t bytes;   /* body bytes of the queued response */

    /* request body */
    berth__sink sink;
    berth_buf body;
    berth_upload *upload;
    uint64_t received; /* body bytes seen */
    bool has_crange;   /* PATCH carried a Content-Range */
    berth_byte_range crange;
    bool has_digest; /* ?digest= */
    berth_digest digest;

    /* operations */
    berth_metrics_route mroute; /* the route counted in the metrics */
    char user[128];             /* authenticated user ("" anonymous) */
    bool authenticated;
    bool no_mount;          /* the caller may not pull the mount's source: plain upload instead */
    bool counted_upload;    /* counted in srv->uploads */
    char *www_authenticate; /* challenge of a 401, owned */
    uint64_t retry_after;   /* Retry-After of a 429 (0: none) */
    const char *allow;      /* Allow of a 405 when not the route's (static text; NULL) */

    /* a failure while the body streamed, answered once the body is read */
    int fail_code; /* 0: none */
    berth__op fail_op;
    char fail_msg[256];
} berth__req;

/* ---- errors.c ----------------------------------------------------------------------- */

/** The spec's code string of an API error, e.g. "BLOB_UNKNOWN". */
const char *berth__api_error_code(berth__api_error e);

/**
 * Map a berth error code met while doing `op` to an HTTP status and API error: the one table
 * of the server. Codes the table does not know give 500 UNKNOWN.
 */
void berth__error_map(unsigned *status_out, berth__api_error *api_out, berth__op op, int code);

/**
 * Append the spec's error document {"errors":[{"code":..,"message":..,"detail":{}}]} to `out`
 * (berth_error_response_serialize()), with `message` (NULL or "" for the code's default text;
 * bytes that are not UTF-8 become U+FFFD; never sent for UNKNOWN, which logs it instead).
 * @return 0 or the buffer's error
 */
int berth__error_document(berth_buf *out, berth__api_error e, const char *message);

/* ---- server.c: responses --------------------------------------------------------------- */

/**
 * Queue `resp` (taking it over: it is destroyed here) with `status`, after adding the
 * headers every response carries. @return the MHD result
 */
enum MHD_Result berth__respond(berth__req *r, unsigned status, struct MHD_Response *resp);

/** Queue an empty response with `status`, plus optional Location. @return the MHD result */
enum MHD_Result berth__respond_empty(berth__req *r, unsigned status, const char *location);

/**
 * Add the headers describing an upload session: Location, Range `0-<last byte>` (0-0 when
 * empty), Blob-Upload-Session-ID and its legacy twin Docker-Upload-UUID.
 */
void berth__session_headers(struct MHD_Response *resp, const berth__req *r, const char *id,
                            uint64_t size);

/**
 * Queue the error of `code` met during `op`, with berth_error_last() as message unless `msg`
 * is given. @return the MHD result
 */
enum MHD_Result berth__respond_error(berth__req *r, berth__op op, int code, const char *msg);

/* The spec's error document for `code` under `op` (berth__error_map), `msg` or the thread's
   last error as its message, as a new response with its Content-Type; its status and length
   go to the out-parameters. NULL when out of memory. */
struct MHD_Response *berth__error_response(unsigned *status_out, size_t *len_out, berth__op op,
                                           int code, const char *msg);

/* Retry-After: the request's retry_after seconds, or 1. */
void berth__retry_after(struct MHD_Response *resp, const berth__req *r);

/** Remember a failure during body streaming (with berth_error_last()) to answer at the end. */
void berth__req_fail(berth__req *r, berth__op op, int code);

/** A query argument of the request, or NULL. Borrowed from MHD. */
const char *berth__query(berth__req *r, const char *key);

/**
 * Every value of query parameter `key` (`?tag=a&tag=b`), in order: the first `max` into `out`
 * (borrowed from MHD). @return how many there are, which may exceed `max`
 */
size_t berth__query_all(berth__req *r, const char *key, const char **out, size_t max);

/** A request header, or NULL. Borrowed from MHD. */
const char *berth__header(berth__req *r, const char *key);

/* ---- ops.c, auth.c: operations -------------------------------------------------------- */

/** Build the operations state of `srv` from srv->cfg (metrics even without one). */
int berth__ops_start(berth_server *srv);

/** Start the maintenance thread (gc every gc.interval, storage gauges). @return 0 or error */
int berth__maint_start(berth_server *srv);

/** Stop and join the maintenance thread; fine when it never started. */
void berth__maint_stop(berth_server *srv);

/** Release the operations state. */
void berth__ops_free(berth_server *srv);

/**
 * Answer the endpoints outside /v2/ (/metrics, /healthz, /readyz, /token) when `url` is one.
 * @return true when handled (`*ret` holds the MHD result)
 */
bool berth__ops_route(berth__req *r, const char *url, enum MHD_Result *ret);

/**
 * Rate limit, limits, client certificate, authentication and authorization of a routed /v2/
 * request. @return true when the request may proceed; false when an error was queued
 * (`*ret` holds the MHD result)
 */
bool berth__ops_admit(berth__req *r, enum MHD_Result *ret);

/** Rate limit and client certificate only (for the endpoints outside /v2/). */
bool berth__ops_gate(berth__req *r, enum MHD_Result *ret);

/**
 * Verify `Basic` credentials against the htpasswd file (failed logins throttled per client
 * address) into r->user. @return as berth_htpasswd_check_header(): 0, BERTH_EUNAUTHORIZED,
 * BERTH_EBUSY (refused unverified)
 */
int berth__check_basic(berth__req *r, const char *authz);

/** Whether the caller of `r` may pull `repo` (catalog filtering). */
bool berth__ops_may_pull(const berth__req *r, const char *repo);

/** The client's address as text ("-" when unknown). */
void berth__client_address(const berth__req *r, char *out, size_t size);

/** Write the access-log line of a finished request and count it in the metrics. */
void berth__ops_completed(berth__req *r, bool aborted);

/** On the calling thread, gather access-log lines until berth__access_log_flush() (on) or
    write each at once (off, the default); switching writes what is gathered. */
void berth__access_log_buffer(bool on);

/** Write the access-log lines the calling thread has gathered. */
void berth__access_log_flush(void);

/** GET /token: berth's own token endpoint (server_auth.c). */
enum MHD_Result berth__token_endpoint(berth__req *r);

/** Token cache (server_auth.c). */
int berth__token_cache_new(berth__token_cache **out, size_t slots);
void berth__token_cache_free(berth__token_cache *c);

/* ---- listener.c: connections -------------------------------------------------------- */

/** The phases of a connection that the listener times (see listener.c). */
typedef enum berth__phase {
    BERTH__PHASE_HEAD,     /* request line received, headers arriving */
    BERTH__PHASE_BODY,     /* the handler runs, the body streams in */
    BERTH__PHASE_WORK,     /* the body is in: the server's turn (commit, hashing) */
    BERTH__PHASE_RESPONSE, /* an answer is queued */
    BERTH__PHASE_IDLE,     /* the request is complete: waiting for the next one */
} berth__phase;

/** Create the listening socket and the connection table (no thread yet). @return 0 or error */
int berth__listener_start(berth_server *srv, const struct sockaddr *sa, socklen_t salen);

/** The port the listening socket is bound to. @return 0 or BERTH_EIO */
int berth__listener_port(berth_server *srv, uint16_t *port);

/** Start the accept thread, once the daemon exists. @return 0 or BERTH_EIO */
int berth__listener_run(berth_server *srv);

/**
 * Stop accepting, close idle connections, wait up to `drain_ms` for the others to finish,
 * then cut what is left and join the accept thread. The daemon must still run.
 */
void berth__listener_drain(berth_server *srv, unsigned drain_ms);

/** Free the listener, after the daemon stopped; NULL listener is fine. */
void berth__listener_free(berth_server *srv);

/** MHD_OPTION_NOTIFY_CONNECTION: ties MHD's connections to the listener's records. */
void berth__conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe);

/** Milliseconds of CLOCK_MONOTONIC_COARSE (cheap: for the workers' busy stamps). */
int64_t berth__now_ms(void);

/**
 * Record that the connection of a request entered `phase`; `body`: the request announced a body
 * (BODY phase: MHD's inactivity timeout becomes timeouts.read until the response).
 */
void berth__conn_phase(berth_server *srv, berth__conn *c, struct MHD_Connection *conn,
                       berth__phase phase, bool body);

/** The listener's record of an MHD connection (NULL if none). Look it up once per request. */
berth__conn *berth__conn_of(struct MHD_Connection *conn);

/** Record that `n` body bytes of a request arrived on its connection (progress, see reap). */
void berth__conn_progress(berth__conn *c, size_t n);

/** Give back the record of a connection libmicrohttpd refused (it closed the socket). */
void berth__conn_refused(berth_server *srv, berth__conn *c);

/**
 * Queue connection `c` (socket `fd`, peer `addr`) for worker `w` and wake it.
 * @return 0, or BERTH_EBUSY when its queue is full (the caller still owns the socket)
 */
int berth__worker_hand(berth__worker *w, berth__conn *c, int fd,
                       const struct sockaddr_storage *addr, socklen_t addrlen);

/** Start worker `w` (its daemon exists). @return 0 or BERTH_EIO */
int berth__worker_start(berth__worker *w);

/** Stop and join worker `w`, before its daemon is stopped; fine when it never started. */
void berth__worker_stop(berth__worker *w);

/** Whether the response about to be queued should close its connection (rotation, drain). */
bool berth__conn_closing(berth_server *srv, berth__conn *c);

/* ---- api_*.c: handlers. begin runs on the first call; finish once the body is read. ---- */

enum MHD_Result berth__api_manifest(berth__req *r); /* GET, HEAD, DELETE */
enum MHD_Result berth__api_manifest_put_begin(berth__req *r);
enum MHD_Result berth__api_manifest_put_finish(berth__req *r);
enum MHD_Result berth__api_blob(berth__req *r);         /* GET, HEAD, DELETE */
enum MHD_Result berth__api_upload_get(berth__req *r);   /* GET, DELETE on a session */
enum MHD_Result berth__api_upload_begin(berth__req *r); /* POST, PATCH, PUT */
enum MHD_Result berth__api_upload_finish(berth__req *r);
enum MHD_Result berth__api_tags(berth__req *r);
enum MHD_Result berth__api_catalog(berth__req *r);
enum MHD_Result berth__api_referrers(berth__req *r);

#endif
