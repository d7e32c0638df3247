/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proxy.c: the pull-through cache. Each configured upstream (proxy.upstreams) claims the
 * repositories under its prefix: `PREFIX/NAME` here is `NAME` there (Docker Hub's `library/`
 * for a one-component NAME). A pull under a prefix is answered from the store, which this file
 * fills first through the store's ordinary paths (an upload session committed under the digest,
 * a manifest put with its tag), so that gc, tags/list, referrers and everything else see cached
 * content as any other. Manifests are stored sparse (cmd_serve adds each prefix to the store's
 * sparse repositories): an index is cached without every platform's layers, which are fetched
 * when pulled.
 *
 * - By digest: present -> served, zero upstream calls. Absent -> fetched, verified, stored.
 *   A manifest is served once stored; a blob is streamed to every client asking while it is
 *   fetched (section "blobs"), its last byte held back until the whole blob matched its
 *   digest: bytes that fail it are never stored nor served as a complete response.
 * - By tag: served while fresh (ttl since the last check in this process; tags matching
 *   immutable_tags never revalidate); past it, one HEAD: same digest -> fresh again; another
 *   -> the manifest is fetched by digest and the tag moves. An upstream failure (connection,
 *   timeout, 5xx, 429, refused access) serves the cached tag with a log line; a 429 also stops
 *   every request to that upstream until its Retry-After has passed.
 * - One fetch per object: requests for the same missing object share one upstream request
 *   (tables of fetches in flight keyed by what they fetch); a manifest's waiter then reads the
 *   store, a blob's reads the fetched bytes as they are written. Across replicas (a metadata
 * backend shared by several processes: PostgreSQL), the fetch of this process first takes the
 *   store's lock named after the object (section "replicas"): a replica that finds it held
 *   waits for the holder, then serves what the holder stored, or fetches when it stored
 *   nothing (it failed, or died: its lock went with its connection).
 *
 * The metrics (hits, misses, revalidations, stale serves, upstream errors, bytes) are per
 * upstream, in ops/metrics.c. Messages sent to clients name the prefix, never the upstream's
 * URL; the log has the detail.
 */
#include "server/proxy.h"

#include "server/server_internal.h"

#include "base/htab.h"
#include "base/log.h"

#include <berth/client.h>
#include <berth/config.h>
#include <berth/document.h>
#include <berth/errors.h>
#include <berth/index.h>

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/** Longest upstream repository name: NAME with Docker Hub's `library/`. */
#define REMOTE_MAX (BERTH_NAME_MAX + 16)

typedef struct upstream {
    size_t index;                     /* in the metrics */
    const berth_config_upstream *cfg; /* borrowed from srv->cfg */
    const char *registry;             /* what the client is told ("docker.io" for Docker Hub) */
    bool docker_hub;
    berth_client *client;
    pthread_mutex_t mu;  /* the two below */
    int64_t wait_until;  /* CLOCK_MONOTONIC seconds: a 429 asked not to come back before */
    berth__htab checked; /* "NAME\nTAG" -> checked_tag: when this process last checked it */
    berth__htab pulled;  /* "NAME\nDIGEST" -> checked_tag: when a manifest was last pulled
                            (wall-clock seconds), for eviction over max_size */
} upstream;

typedef struct checked_tag {
    int64_t at; /* CLOCK_MONOTONIC seconds */
    char key[]; /* the table's key */
} checked_tag;

/* One upstream fetch in flight, and the requests waiting for its result. */
typedef struct flight {
    struct flight *next;
    char *key;
    unsigned refs; /* the fetcher and its waiters */
    bool done;
    int result;
    char msg[256];
} flight;

struct berth__proxy {
    berth_server *srv;
    upstream *ups;
    size_t nups;
    pthread_mutex_t mu; /* flights */
    pthread_cond_t cv;  /* flights, fetching */
    flight *flights;
    struct blob_flight *bflights; /* blob fetches in flight */
    unsigned fetching;            /* blob fetch threads running */
    atomic_bool stopping;         /* the server stops: fetches end */
};

static int64_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

static void count(const berth__proxy *p, const upstream *u, berth_metrics_proxy c, uint64_t n)
{
    berth_metrics_proxy_add(p->srv->metrics, u->index, c, n);
}

/* ---- lifecycle ------------------------------------------------------------------------- */

static void free_checked(void *value, void *payload)
{
    (void)payload;
    free(value);
}

void berth__proxy_free(berth_server *srv)
{
    berth__proxy *p = srv ? srv->proxy : NULL;

    if (!p) {
        return;
    }
    /* the blob fetches still running end at their next bytes (or their upstream's timeout) */
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    while (p->fetching > 0) {
        pthread_cond_wait(&p->cv, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->nups; i++) {
        berth_client_free(p->ups[i].client);
        berth__htab_foreach(&p->ups[i].checked, free_checked, NULL);
        berth__htab_dispose(&p->ups[i].checked);
        berth__htab_foreach(&p->ups[i].pulled, free_checked, NULL);
        berth__htab_dispose(&p->ups[i].pulled);
        pthread_mutex_destroy(&p->ups[i].mu);
    }
    free(p->ups);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    srv->proxy = NULL;
}

/* Docker Hub: by prefix, or by the host of its API. */
static bool is_docker_hub(const berth_config_upstream *c)
{
    return strcmp(c->prefix, "docker.io") == 0 ||
           strcmp(c->registry, "registry-1.docker.io") == 0 ||
           strcmp(c->registry, "index.docker.io") == 0 || strcmp(c->registry, "docker.io") == 0;
}

int berth__proxy_start(berth_server *srv)
{
    const berth_config *cfg = srv->cfg;
    const char **names = NULL;
    berth__proxy *p = NULL;
    int error = 0;

    if (!cfg || cfg->proxy.upstreams_count == 0) {
        return 0;
    }
    if (!(p = calloc(1, sizeof(*p))) ||
        !(p->ups = calloc(cfg->proxy.upstreams_count, sizeof(*p->ups))) ||
        !(names = calloc(cfg->proxy.upstreams_count, sizeof(*names)))) {
        free(p ? p->ups : NULL);
        free(p);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    p->srv = srv;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    srv->proxy = p;
    for (size_t i = 0; i < cfg->proxy.upstreams_count; i++) {
        const berth_config_upstream *c = &cfg->proxy.upstreams[i];
        upstream *u = &p->ups[i];
        berth_client_options copts = {0};
        FILE *f;

        pthread_mutex_init(&u->mu, NULL);
        p->nups = i + 1;
        u->index = i;
        u->cfg = c;
        u->docker_hub = is_docker_hub(c);
        /* the client maps docker.io to its API host and finds docker.io's credentials */
        u->registry = u->docker_hub && !c->plain_http &&
                              (strcmp(c->registry, "registry-1.docker.io") == 0 ||
                               strcmp(c->registry, "index.docker.io") == 0)
                          ? "docker.io"
                          : c->registry;
        names[i] = c->prefix;
        if (c->credentials) {
            if (!(f = fopen(c->credentials, "rb"))) {
                error = berth_error_set(BERTH_EINVALID,
                                        "proxy.upstreams[%zu].credentials: cannot read %s", i,
                                        c->credentials);
                goto out;
            }
            fclose(f);
            copts.docker_config = c->credentials;
        } else {
            /* no credentials: never the server's own ~/.docker/config.json */
            copts.docker_config = "/dev/null";
        }
        copts.plain_http = c->plain_http;
        /* an https:// upstream is only ever spoken to over verified TLS */
        copts.tls_verify = c->plain_http ? BERTH_TLS_VERIFY_DEFAULT : BERTH_TLS_VERIFY_ON;
        copts.no_retries = true;
        copts.timeout_s = (unsigned)c->timeout; /* validated: 1 s to 1 h */
        if ((error = berth_client_new(&u->client, &copts)) < 0) {
            goto out;
        }
    }
    error = berth_metrics_upstreams(srv->metrics, names, cfg->proxy.upstreams_count);
out:
    free(names);
    if (error < 0) {
        berth__proxy_free(srv);
    }
    return error;
}

/* ---- which upstream, what name ---------------------------------------------------------- */

/* The upstream claiming `name` (PREFIX/...), with the repository name there; NULL if none. */
static upstream *claim(berth__proxy *p, const char *name, char *remote, size_t size)
{
    for (size_t i = 0; p && i < p->nups; i++) {
        upstream *u = &p->ups[i];
        size_t n = strlen(u->cfg->prefix);
        const char *rest = name + n + 1;

        if (strncmp(name, u->cfg->prefix, n) != 0 || name[n] != '/') {
            continue;
        }
        if (u->docker_hub && !strchr(rest, '/')) {
            snprintf(remote, size, "library/%s", rest);
        } else {
            snprintf(remote, size, "%s", rest);
        }
        return u;
    }
    return NULL;
}

/* ---- containerd's ?ns= ----------------------------------------------------------------- */

/* Does `u` answer to the registry name `ns`: its prefix, its url's host, Docker Hub's names? */
static bool answers_to(const upstream *u, const char *ns)
{
    if (strcmp(ns, u->cfg->prefix) == 0 || strcmp(ns, u->cfg->registry) == 0) {
        return true;
    }
    return u->docker_hub && (strcmp(ns, "docker.io") == 0 || strcmp(ns, "index.docker.io") == 0 ||
                             strcmp(ns, "registry-1.docker.io") == 0);
}

int berth__proxy_ns(berth__req *r)
{
    berth__proxy *p = r->srv->proxy;
    const char *ns;
    upstream *u = NULL;
    char name[BERTH_NAME_MAX + 1];
    size_t n;

    if (!p || r->route == BERTH_R_NONE || r->route == BERTH_R_BASE || r->route == BERTH_R_CATALOG ||
        !r->conn) {
        return 0;
    }
    ns = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "ns");
    if (!ns || !*ns) {
        return 0;
    }
    /* a prefix first, then the hosts, in the configuration's order */
    for (size_t i = 0; !u && i < p->nups; i++) {
        u = strcmp(ns, p->ups[i].cfg->prefix) == 0 ? &p->ups[i] : NULL;
    }
    for (size_t i = 0; !u && i < p->nups; i++) {
        u = answers_to(&p->ups[i], ns) ? &p->ups[i] : NULL;
    }
    if (!u) {
        return berth_error_set(BERTH_ENOTFOUND, "no upstream of this registry answers to ns=%.64s",
                               ns);
    }
    n = strlen(u->cfg->prefix);
    if (strncmp(r->name, u->cfg->prefix, n) == 0 && r->name[n] == '/') {
        return 0; /* the path form already (hosts.toml's override_path) */
    }
    if ((size_t)snprintf(name, sizeof(name), "%s/%s", u->cfg->prefix, r->name) >= sizeof(name)) {
        return berth_error_set(BERTH_EINVALID, "repository name must be 1 to %d characters",
                               BERTH_NAME_MAX);
    }
    memcpy(r->name, name, strlen(name) + 1);
    return 0;
}

/* ---- the upstream's health: 429 and Retry-After ---------------------------------------- */

/* May the upstream be asked now? Not while a 429's Retry-After runs (sets *retry_after). */
static bool may_ask(upstream *u, uint64_t *retry_after)
{
    int64_t now = now_s(), until;

    pthread_mutex_lock(&u->mu);
    until = u->wait_until;
    pthread_mutex_unlock(&u->mu);
    if (now >= until) {
        return true;
    }
    *retry_after = (uint64_t)(until - now);
    berth_error_set(BERTH_EBUSY, "upstream %s asked to wait %llds more", u->cfg->prefix,
                    (long long)(until - now));
    return false;
}

/*
 * An upstream request failed with `code` (berth_error_last() says why): count and log it, and
 * after a 429 stop asking until its Retry-After has passed. A 404 is an answer, not a failure:
 * logged at info level, not counted.
 */
static void upstream_failed(berth__proxy *p, upstream *u, const char *name, uint64_t *retry_after,
                            int code, const char *what)
{
    if (code == BERTH_ENOTFOUND) {
        berth__log(BERTH_LOG_INFO, "proxy %s: %s %s: %s", u->cfg->prefix, what, name,
                   berth_error_last());
        return;
    }
    count(p, u, BERTH_PROXY_ERRORS, 1);
    if (code == BERTH_EBUSY) {
        uint64_t wait = berth_client_retry_after();
        if (wait == 0) {
            wait = 1;
        }
        pthread_mutex_lock(&u->mu);
        u->wait_until = now_s() + (int64_t)wait;
        pthread_mutex_unlock(&u->mu);
        *retry_after = wait;
    }
    berth__log(BERTH_LOG_WARN, "proxy %s: %s %s: %s", u->cfg->prefix, what, name,
               berth_error_last());
}

/*
 * The code a client gets for an upstream failure when nothing is cached: not found stays
 * not found (so does a refused access: Docker Hub answers 401 for a repository that does not
 * exist), anything else is the upstream being unavailable (503).
 */
static int client_error(upstream *u, int code, const char *what)
{
    if (code == BERTH_ENOTFOUND || code == BERTH_EUNAUTHORIZED || code == BERTH_EDENIED) {
        return berth_error_set(BERTH_ENOTFOUND, "%s unknown to upstream %s", what, u->cfg->prefix);
    }
    return berth_error_set(BERTH_ENETWORK, "upstream %s failed and %s is not cached",
                           u->cfg->prefix, what);
}

/* ---- replicas: one fetch per object across processes ------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Before fetching the object `key` (the key of this process's flight), take the store's lock
 * of that name, so that one replica fetches it: *lock is NULL when the store serves one process
 * (its flights are enough). Held by another replica, the lock is waited for, up to the
 * upstream's timeout (in slices of a second, so that a stopping server does not wait), and
 * *waited set: the holder has finished (or died), and the caller looks at the store again
 * before fetching. Still held after the timeout: 0 with *lock NULL, logged (the caller fetches
 * without it rather than fail a pull on a slow replica). @return 0, or the store's failure
 */
static int replica_lock(berth__proxy *p, upstream *u, const char *key, berth_meta_lock **lock,
                        bool *waited)
{
    berth_store *store = p->srv->store;
    char name[BERTH_NAME_MAX + BERTH__REF_MAX + 32];
    int64_t deadline = now_ms() + (int64_t)u->cfg->timeout * 1000;
    int rc;

    *waited = false;
    snprintf(name, sizeof(name), "proxy %s", key);
    if ((rc = berth_store_lock(store, name, 0, lock)) != BERTH_EBUSY) {
        return rc;
    }
    *waited = true;
    berth__log(BERTH_LOG_DEBUG, "proxy %s: another replica fetches %s: waiting", u->cfg->prefix,
               key + 2);
    while (!p->stopping) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            break;
        }
        rc = berth_store_lock(store, name, left < 1000 ? (unsigned)left : 1000, lock);
        if (rc != BERTH_EBUSY) {
            return rc;
        }
    }
    berth_error_clear();
    if (p->stopping) {
        return berth_error_set(BERTH_ERROR, "the server stops");
    }
    berth__log(BERTH_LOG_WARN,
               "proxy %s: another replica has fetched %s for over %llus: fetching it here too",
               u->cfg->prefix, key + 2, (unsigned long long)u->cfg->timeout);
    *lock = NULL;
    return 0;
}

/* ---- one fetch per object ------------------------------------------------------------- */

typedef int (*fetch_fn)(void *payload);

/*
 * Run `fn` once for `key` however many requests ask at the same time: the first runs it, the
 * others wait for its result (code and message) and then read the store.
 */
static int single_flight(berth__proxy *p, const char *key, fetch_fn fn, void *payload, bool *waited)
{
    flight *f;
    int rc;

    *waited = false;
    pthread_mutex_lock(&p->mu);
    for (f = p->flights; f && strcmp(f->key, key) != 0; f = f->next) {
    }
    if (f) {
        *waited = true;
        f->refs++;
        while (!f->done) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
    } else {
        if (!(f = calloc(1, sizeof(*f))) || !(f->key = strdup(key))) {
            pthread_mutex_unlock(&p->mu);
            free(f);
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        f->refs = 1;
        f->next = p->flights;
        p->flights = f;
        pthread_mutex_unlock(&p->mu);
        rc = fn(payload);
        pthread_mutex_lock(&p->mu);
        f->result = rc;
        snprintf(f->msg, sizeof(f->msg), "%s", rc < 0 ? berth_error_last() : "");
        f->done = true;
        /* out of the table: a later request looks at the store again */
        for (flight **pp = &p->flights; *pp; pp = &(*pp)->next) {
            if (*pp == f) {
                *pp = f->next;
                break;
            }
        }
        pthread_cond_broadcast(&p->cv);
    }
    rc = f->result;
    if (rc < 0) {
        berth_error_set(rc, "%s", f->msg);
    }
    if (--f->refs == 0) {
        free(f->key);
        free(f);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* ---- blobs: fetched by a thread, streamed to every waiting client ---------------------- */

/*
 * A cold blob is fetched by a thread of its own (so a client going away does not stop the
 * fetch), which writes each piece to an upload session of the store, hashing as the bytes pass
 * (the client's check). Every request for the blob while the fetch runs reads the bytes at its
 * own pace from the session's own file (berth_upload_read_fd: the bytes are written once), or,
 * when the store keeps no local file (S3), from a spool file the fetch also writes (an
 * unlinked temporary file). A response starts once the upstream's first bytes (and so its
 * Content-Length) are here, and gets each byte once written (the session writes in slices of
 * 128 KiB; readers are woken when one is written), except the last one, which is held back
 * until the whole blob matched its digest. Bytes that do not match end
 * every response with an error before its last byte (libmicrohttpd closes the connection: the
 * client sees a body shorter than its Content-Length, never a complete one), and the upload
 * session is dropped, so nothing is stored. Once the fetch is committed, the next request
 * reads the store as for any blob.
 */
typedef struct blob_flight {
    struct blob_flight *next; /* in p->bflights while the fetch runs */
    berth__proxy *p;
    upstream *u;
    char key[BERTH_NAME_MAX + BERTH_DIGEST_MAXLEN + 8];
    char name[BERTH_NAME_MAX + 1];
    char remote[REMOTE_MAX];
    berth_digest digest;
    berth_upload *upload;
    int sink_error;    /* the store (or the spool) refused a write */
    int fd;            /* what readers pread: the session's file or the spool; -1 until the
                          first bytes */
    bool spooled;      /* fd is a spool the fetch writes (the store has no local file) */
    uint64_t received; /* bytes from the upstream (the fetching thread's) */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* any change below */
    unsigned refs;     /* the fetching thread and each request or response reading it */
    unsigned waiting;  /* readers waiting on cv for more bytes */
    int64_t size;      /* the upstream's Content-Length, -1 until known */
    uint64_t produced; /* bytes readers may pread from fd */
    bool verified;     /* all the bytes are here and match the digest */
    bool done;         /* the thread has finished: result says how */
    int result;
    uint64_t retry_after; /* of a 429 */
    char msg[256];        /* the thread's error message */
} blob_flight;

static void flight_release(blob_flight *f)
{
    bool last;

    pthread_mutex_lock(&f->mu);
    last = --f->refs == 0;
    pthread_mutex_unlock(&f->mu);
    if (last) {
        if (f->fd >= 0) {
            close(f->fd);
        }
        pthread_mutex_destroy(&f->mu);
        pthread_cond_destroy(&f->cv);
        free(f);
    }
}

/* An unlinked read-write file in the store's own tmp directory, else in TMPDIR or /tmp. */
static int spool_open(const berth__proxy *p)
{
    char dir[4096], path[4200];
    const char *tmp = getenv("TMPDIR");
    struct stat st;
    int fd = -1;

    dir[0] = 0;
    if (p->srv->cfg && p->srv->cfg->root) {
        snprintf(dir, sizeof(dir), "%s/_berth/tmp", p->srv->cfg->root);
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            dir[0] = 0;
        }
    }
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "%s", tmp && *tmp ? tmp : "/tmp");
    }
#ifdef O_TMPFILE
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#endif
    if (fd < 0) {
        snprintf(path, sizeof(path), "%s/proxy-spool.XXXXXX", dir);
        if ((fd = mkstemp(path)) >= 0) {
            unlink(path);
        }
    }
    if (fd < 0) {
        return berth_error_set(BERTH_EIO, "cannot create a spool file for a fetched blob");
    }
    return fd;
}

/* Readers may pread `avail` bytes: they are woken only when one waits (the fetching thread
 * alone changes `produced`, so it may read it without the lock). */
static void publish(blob_flight *f, uint64_t avail)
{
    if (avail == f->produced) {
        return;
    }
    pthread_mutex_lock(&f->mu);
    f->produced = avail;
    if (f->waiting) {
        pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
}

static int blob_sink(const void *data, size_t len, void *payload)
{
    blob_flight *f = payload;
    const char *b = data;
    size_t off = 0;
    int rc;

    if (f->p->stopping) {
        return berth_error_set(BERTH_ERROR, "the server stops");
    }
    if (f->fd < 0) {
        /* readers read the session's own file; a spool only when the store has none */
        if ((rc = berth_upload_read_fd(f->upload)) < 0 && rc == BERTH_EUNSUPPORTED) {
            berth_error_clear();
            f->spooled = true;
            rc = spool_open(f->p);
        }
        if (rc < 0) {
            f->sink_error = rc;
            return rc;
        }
        f->fd = rc;
        if (berth_client_content_length() > 0) {
            /* the space ahead of the writes: cheaper writes (a wrong length is refused below) */
            berth_upload_expect(f->upload, (uint64_t)berth_client_content_length());
        }
        pthread_mutex_lock(&f->mu);
        f->size = berth_client_content_length();
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
    }
    count(f->p, f->u, BERTH_PROXY_BYTES, len);
    if ((rc = berth_upload_write(f->upload, data, len)) < 0) {
        f->sink_error = rc;
        return rc;
    }
    f->received += len;
    if (!f->spooled) {
        publish(f, berth_upload_written(f->upload));
        return 0;
    }
    while (off < len) {
        ssize_t n = pwrite(f->fd, b + off, len - off, (off_t)(f->received - len + off));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            f->sink_error = berth_error_set(BERTH_EIO, "cannot write the spool file");
            return f->sink_error;
        }
        off += (size_t)n;
    }
    publish(f, f->received);
    return 0;
}

/* All the bytes are here and match: the readers may have the last one. */
static void set_verified(blob_flight *f)
{
    pthread_mutex_lock(&f->mu);
    f->verified = true;
    if (f->size < 0) {
        f->size = (int64_t)f->received;
    }
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* The fetch itself, on the flight's thread, under the replicas' lock: 0 once the blob is
 * verified and committed. */
static int fetch_blob_locked(blob_flight *f)
{
    berth__proxy *p = f->p;
    berth_store *store = p->srv->store;
    berth_digest got;
    char owner[BERTH_NAME_MAX + 16];
    bool unhashed, commit_verifies = false;
    int rc;

    if (!may_ask(f->u, &f->retry_after)) {
        count(p, f->u, BERTH_PROXY_ERRORS, 1);
        return berth_error_set(BERTH_ENETWORK, "upstream %s asked to wait; blob %s is not cached",
                               f->u->cfg->prefix, f->digest.str);
    }
    count(p, f->u, BERTH_PROXY_MISSES, 1);
    snprintf(owner, sizeof(owner), "proxy:%s", f->u->cfg->prefix);
    if ((rc = berth_store_upload_new(&f->upload, store, f->name, owner)) < 0) {
        return rc;
    }
    /* a SHA-256 blob is hashed once, by the upload session (checked below); others by the
     * client as they pass */
    unhashed = f->digest.alg == BERTH_DIGEST_SHA256;
    rc = unhashed ? berth_client_get_blob_unhashed(f->u->client, f->u->registry, f->remote,
                                                   &f->digest, -1, blob_sink, f)
                  : berth_client_get_blob(f->u->client, f->u->registry, f->remote, &f->digest, -1,
                                          blob_sink, f);
    if (rc == 0 && f->size >= 0 && f->received != (uint64_t)f->size) {
        rc = berth_error_set(BERTH_EMISMATCH, "blob %s: got %llu bytes, announced %lld",
                             f->digest.str, (unsigned long long)f->received, (long long)f->size);
    }
    if (rc == 0 && f->upload && !f->spooled) {
        /* the bytes still gathered in memory go to the file, for the readers */
        if ((rc = berth_upload_flush(f->upload)) < 0) {
            f->sink_error = rc;
        } else {
            publish(f, berth_upload_written(f->upload));
        }
    }
    if (rc == 0 && unhashed) {
        if ((rc = berth_upload_digest(f->upload, &got)) == BERTH_EUNSUPPORTED) {
            rc = 0; /* no running hash: the commit checks, before the last byte goes */
            commit_verifies = true;
            berth_error_clear();
        } else if (rc == 0 && !berth_digest_equal(&got, &f->digest)) {
            rc = berth_error_set(BERTH_EMISMATCH, "blob %s: content has digest %s", f->digest.str,
                                 got.str);
        }
    }
    if (rc < 0) {
        int code = f->sink_error ? f->sink_error : rc;
        char msg[256];

        snprintf(msg, sizeof(msg), "%s", berth_error_last());
        berth_upload_abort(f->upload); /* nothing of it stays */
        f->upload = NULL;
        if (f->sink_error) {
            return berth_error_set(code, "%s", msg);
        }
        berth_error_set(rc, "%s", msg);
        upstream_failed(p, f->u, f->name, &f->retry_after, rc, "blob");
        return client_error(f->u, rc, f->digest.str);
    }
    if (!commit_verifies) {
        /* the bytes matched the digest as they passed: the readers may have the last byte */
        set_verified(f);
    }
    /* the commit checks the stored bytes */
    rc = berth_upload_commit(f->upload, &f->digest);
    f->upload = NULL;
    if (rc == 0 && commit_verifies) {
        set_verified(f);
    }
    if (rc == 0) {
        berth__log(BERTH_LOG_INFO, "proxy %s: cached blob %s in %s", f->u->cfg->prefix,
                   f->digest.str, f->name);
    } else {
        berth__log(BERTH_LOG_WARN, "proxy %s: blob %s in %s: %s", f->u->cfg->prefix, f->digest.str,
                   f->name, berth_error_last());
    }
    return rc;
}

/* The fetch, on the flight's thread: once across replicas (replica_lock). */
static int fetch_blob(blob_flight *f)
{
    berth_store *store = f->p->srv->store;
    berth_meta_lock *lock = NULL;
    uint64_t size;
    bool waited;
    int rc;

    /* a fetch that ended between the request's look and this flight */
    if (berth_store_blob_stat(store, f->name, &f->digest, &size) == 0) {
        return 0;
    }
    berth_error_clear();
    if ((rc = replica_lock(f->p, f->u, f->key, &lock, &waited)) < 0) {
        return rc;
    }
    if (waited && berth_store_blob_stat(store, f->name, &f->digest, &size) == 0) {
        rc = 0; /* fetched by the replica that held the lock */
    } else {
        berth_error_clear();
        rc = fetch_blob_locked(f);
    }
    /* committed (or given up) before another replica looks */
    berth_store_unlock(store, lock);
    return rc;
}

static void *flight_main(void *arg)
{
    blob_flight *f = arg;
    berth__proxy *p = f->p;
    int rc = fetch_blob(f);

    /* out of the table first: a later request looks at the store */
    pthread_mutex_lock(&p->mu);
    for (blob_flight **pp = &p->bflights; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_lock(&f->mu);
    f->result = rc;
    snprintf(f->msg, sizeof(f->msg), "%s", rc < 0 ? berth_error_last() : "");
    f->done = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    flight_release(f);
    pthread_mutex_lock(&p->mu);
    p->fetching--;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* The flight fetching `key`, joined (a reference taken), or a new one started. */
static int flight_join(blob_flight **out, berth__proxy *p, upstream *u, const char *key,
                       const char *name, const char *remote, const berth_digest *digest,
                       bool *joined)
{
    blob_flight *f;
    pthread_attr_t attr;
    pthread_t thread;
    int started;

    *joined = false;
    pthread_mutex_lock(&p->mu);
    for (f = p->bflights; f && strcmp(f->key, key) != 0; f = f->next) {
    }
    if (f) {
        pthread_mutex_lock(&f->mu);
        f->refs++;
        pthread_mutex_unlock(&f->mu);
        pthread_mutex_unlock(&p->mu);
        *joined = true;
        *out = f;
        return 0;
    }
    if (!(f = calloc(1, sizeof(*f)))) {
        pthread_mutex_unlock(&p->mu);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    f->p = p;
    f->u = u;
    snprintf(f->key, sizeof(f->key), "%s", key);
    snprintf(f->name, sizeof(f->name), "%s", name);
    snprintf(f->remote, sizeof(f->remote), "%s", remote);
    f->digest = *digest;
    f->fd = -1;
    f->size = -1;
    f->refs = 2; /* the thread and this request */
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    started = pthread_create(&thread, &attr, flight_main, f);
    pthread_attr_destroy(&attr);
    if (started != 0) {
        pthread_mutex_unlock(&p->mu);
        pthread_mutex_destroy(&f->mu);
        pthread_cond_destroy(&f->cv);
        free(f);
        return berth_error_set(BERTH_ERROR, "cannot start a thread to fetch a blob");
    }
    p->fetching++;
    f->next = p->bflights;
    p->bflights = f;
    pthread_mutex_unlock(&p->mu);
    *out = f;
    return 0;
}

/* How many bytes a reader may have: all once verified, else all but the last one. */
static uint64_t readable(const blob_flight *f)
{
    if (f->verified || f->size < 0 || f->produced < (uint64_t)f->size) {
        return f->produced;
    }
    return f->produced - 1;
}

static ssize_t flight_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    blob_flight *f = cls;
    uint64_t avail;
    size_t n, off = 0;

    /* whatever is readable goes at once (the fetch adds 128 KiB slices): this waits (and holds
     * the worker's other connections) only while nothing is */
    pthread_mutex_lock(&f->mu);
    while ((avail = readable(f)) <= pos) {
        if (f->verified && pos >= f->produced) {
            pthread_mutex_unlock(&f->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (f->done && !f->verified) {
            /* the bytes failed (or the fetch broke off): never the last byte */
            pthread_mutex_unlock(&f->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        f->waiting++;
        pthread_cond_wait(&f->cv, &f->mu);
        f->waiting--;
    }
    pthread_mutex_unlock(&f->mu);
    n = avail - pos < max ? (size_t)(avail - pos) : max;
    while (off < n) {
        ssize_t got = pread(f->fd, buf + off, n - off, (off_t)(pos + off));
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        off += (size_t)got;
    }
    return (ssize_t)n;
}

static void flight_read_done(void *cls)
{
    flight_release(cls);
}

int berth__proxy_blob(berth__req *r, const berth_digest *digest, struct MHD_Response **resp_out,
                      uint64_t *size_out)
{
    berth__proxy *p = r->srv->proxy;
    char remote[REMOTE_MAX], key[BERTH_NAME_MAX + BERTH_DIGEST_MAXLEN + 8];
    upstream *u = claim(p, r->name, remote, sizeof(remote));
    blob_flight *f = NULL;
    uint64_t size;
    bool joined, stream;
    int rc;

    *resp_out = NULL;
    if (!u || (r->method != BERTH_M_GET && r->method != BERTH_M_HEAD)) {
        return 0;
    }
    if (berth_store_blob_stat(r->srv->store, r->name, digest, &size) == 0) {
        count(p, u, BERTH_PROXY_HITS, 1);
        return 0;
    }
    berth_error_clear();
    snprintf(key, sizeof(key), "b %s@%s", r->name, digest->str);
    if ((rc = flight_join(&f, p, u, key, r->name, remote, digest, &joined)) < 0) {
        return rc;
    }
    /* a GET of the whole blob is streamed; a HEAD or a range waits for the store */
    stream = r->method == BERTH_M_GET && !berth__header(r, MHD_HTTP_HEADER_RANGE);
    pthread_mutex_lock(&f->mu);
    while (!f->done && (!stream || f->size < 0)) {
        pthread_cond_wait(&f->cv, &f->mu);
    }
    if (f->done) {
        rc = f->result;
        if (rc < 0) {
            berth_error_set(rc, "%s", f->msg);
            r->retry_after = f->retry_after;
        }
        pthread_mutex_unlock(&f->mu);
        flight_release(f);
        if (joined && rc == 0) {
            count(p, u, BERTH_PROXY_HITS, 1);
        }
        return rc; /* 0: committed, served from the store */
    }
    size = (uint64_t)f->size;
    pthread_mutex_unlock(&f->mu);
    if (!(*resp_out = MHD_create_response_from_callback(size, 256 * 1024, flight_read, f,
                                                        flight_read_done))) {
        flight_release(f);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if (joined) {
        count(p, u, BERTH_PROXY_HITS, 1);
    }
    *size_out = size;
    return 0;
}

/* ---- manifests ---------------------------------------------------------------------------- */

typedef struct manifest_fetch {
    berth__proxy *p;
    upstream *u;
    berth__req *r;
    const char *remote;
    const char *tag; /* NULL: by digest (r->ref) */
} manifest_fetch;

/* Is the cached tag fresh: immutable, or checked within the ttl? */
static bool fresh(upstream *u, const char *name, const char *tag)
{
    char key[BERTH_NAME_MAX + BERTH__REF_MAX + 2];
    checked_tag *c;
    bool yes;

    for (size_t i = 0; u->cfg->immutable_tags && u->cfg->immutable_tags[i]; i++) {
        if (fnmatch(u->cfg->immutable_tags[i], tag, 0) == 0) {
            return true;
        }
    }
    snprintf(key, sizeof(key), "%s\n%s", name, tag);
    pthread_mutex_lock(&u->mu);
    c = berth__htab_get(&u->checked, key);
    yes = c && now_s() - c->at < (int64_t)u->cfg->ttl;
    pthread_mutex_unlock(&u->mu);
    return yes;
}

/* Record that the tag was checked against the upstream now. */
static void mark_checked(upstream *u, const char *name, const char *tag)
{
    char key[BERTH_NAME_MAX + BERTH__REF_MAX + 2];
    size_t len = (size_t)snprintf(key, sizeof(key), "%s\n%s", name, tag);
    checked_tag *c;

    pthread_mutex_lock(&u->mu);
    c = berth__htab_get(&u->checked, key);
    if (!c && (c = malloc(sizeof(*c) + len + 1)) != NULL) {
        memcpy(c->key, key, len + 1);
        if (berth__htab_put(&u->checked, c->key, c) < 0) {
            free(c);
            c = NULL; /* not remembered: the next pull checks again */
        }
    }
    if (c) {
        c->at = now_s();
    }
    pthread_mutex_unlock(&u->mu);
    berth_error_clear();
}

/* Record that the manifest `digest` of `name` was pulled now (wall-clock seconds). */
static void note_pull(upstream *u, const char *name, const berth_digest *digest)
{
    char key[BERTH_NAME_MAX + BERTH_DIGEST_MAXLEN + 2];
    size_t len;
    checked_tag *c;

    if (!u->cfg->max_size) {
        return; /* only eviction reads it */
    }
    len = (size_t)snprintf(key, sizeof(key), "%s\n%s", name, digest->str);
    pthread_mutex_lock(&u->mu);
    c = berth__htab_get(&u->pulled, key);
    if (!c && (c = malloc(sizeof(*c) + len + 1)) != NULL) {
        memcpy(c->key, key, len + 1);
        if (berth__htab_put(&u->pulled, c->key, c) < 0) {
            free(c);
            c = NULL;
        }
    }
    if (c) {
        c->at = (int64_t)time(NULL);
    }
    pthread_mutex_unlock(&u->mu);
    berth_error_clear();
}

/* The cached manifest's digest for r->ref: 0 (found), BERTH_ENOTFOUND, or a store error. */
static int cached_digest(berth__req *r, const char *ref, berth_digest *out)
{
    const berth_stored_manifest *m = NULL;
    int rc = berth_store_manifest_get(&m, r->srv->store, r->name, ref);

    if (rc == 0) {
        *out = m->digest;
        berth_manifest_release(m);
    }
    return rc;
}

/* GET the manifest `ref` from upstream into the local repository `name` (tagged `tag` when
 * not NULL); its digest in *got. */
static int put_remote(berth__proxy *p, upstream *u, const char *name, const char *remote,
                      const char *ref, const char *tag, berth_digest *got)
{
    berth_buf body = BERTH_BUF_INIT_MAX(p->srv->opts.manifest_max);
    berth_put_result res;
    char *ctype = NULL;
    const char *tags[1] = {tag};
    int rc;

    rc = berth_client_get_manifest(u->client, u->registry, remote, ref, &body, &ctype, got);
    if (rc < 0) {
        goto out;
    }
    count(p, u, BERTH_PROXY_BYTES, body.len);
    if (ctype && berth_document_kind_of(ctype) == 0) {
        free(ctype); /* application/json and the like: the document says what it is */
        ctype = NULL;
    }
    rc = berth_store_manifest_put_tags(&res, p->srv->store, name, got->str, tags, tag ? 1 : 0,
                                       ctype, body.ptr ? body.ptr : "", body.len);
    if (rc == 0) {
        berth__log(BERTH_LOG_INFO, "proxy %s: cached manifest %s%s%s in %s", u->cfg->prefix,
                   got->str, tag ? " as " : "", tag ? tag : "", name);
    }
out:
    free(ctype);
    berth_buf_dispose(&body);
    return rc;
}

/* ---- referrers ------------------------------------------------------------------------ */

/** The most referrers of one manifest fetched at a time. */
#define REFERRERS_MAX 64

/* The key of a subject's referrers in the table of checked tags (no tag starts with '@'). */
static void referrers_key(char *out, size_t size, const berth_digest *subject)
{
    snprintf(out, size, "@%s", subject->str);
}

/*
 * Fetch the referrers of `subject` from upstream into `name` (those not cached yet), by the
 * referrers API, or the referrers tag schema (an index tagged ALG-HEX) when the upstream has
 * no API. No referrers is 0. @return 0 or the upstream's (or the store's) error
 */
static int fetch_referrers(berth__proxy *p, upstream *u, const char *name, const char *remote,
                           const berth_digest *subject)
{
    berth_buf body = BERTH_BUF_INIT_MAX(p->srv->opts.manifest_max);
    const berth_stored_manifest *m = NULL;
    berth_index *idx = NULL;
    char tag[BERTH_DIGEST_MAXLEN + 1], *ctype = NULL, *colon;
    berth_digest got;
    size_t fetched = 0;
    int rc;

    rc = berth_client_referrers(u->client, u->registry, remote, subject, &body);
    if (rc == BERTH_EUNSUPPORTED) {
        berth_buf_clear(&body);
        snprintf(tag, sizeof(tag), "%s", subject->str);
        if ((colon = strchr(tag, ':')) != NULL) {
            *colon = '-';
        }
        rc = berth_client_get_manifest(u->client, u->registry, remote, tag, &body, &ctype, &got);
        if (rc == BERTH_ENOTFOUND) {
            rc = 0; /* no referrers */
            goto out;
        }
    }
    if (rc < 0) {
        goto out;
    }
    count(p, u, BERTH_PROXY_BYTES, body.len);
    if ((rc = berth_index_parse(&idx, body.ptr ? body.ptr : "", body.len)) < 0) {
        goto out;
    }
    for (size_t i = 0; i < idx->nmanifests && fetched < REFERRERS_MAX; i++) {
        const berth_digest *d = &idx->manifests[i].digest;

        if (berth_store_manifest_get(&m, p->srv->store, name, d->str) == 0) {
            berth_manifest_release(m);
            continue; /* cached already */
        }
        berth_error_clear();
        if ((rc = put_remote(p, u, name, remote, d->str, NULL, &got)) < 0) {
            goto out;
        }
        fetched++;
    }
out:
    if (rc < 0) {
        berth__log(BERTH_LOG_WARN, "proxy %s: referrers of %s in %s: %s", u->cfg->prefix,
                   subject->str, name, berth_error_last());
    }
    berth_index_free(idx);
    free(ctype);
    berth_buf_dispose(&body);
    return rc;
}

/* A manifest was fetched: its referrers come with it (a failure there fails nothing). */
static void referrers_with(berth__proxy *p, upstream *u, const char *name, const char *remote,
                           const berth_digest *subject)
{
    char key[BERTH_DIGEST_MAXLEN + 2];

    if (fetch_referrers(p, u, name, remote, subject) == 0) {
        referrers_key(key, sizeof(key), subject);
        mark_checked(u, name, key);
    } else {
        count(p, u, BERTH_PROXY_ERRORS, 1);
    }
    berth_error_clear();
}

typedef struct referrers_fetch {
    berth__proxy *p;
    upstream *u;
    berth__req *r;
    const char *remote;
    const berth_digest *subject;
} referrers_fetch;

static int refresh_referrers(void *payload)
{
    referrers_fetch *rf = payload;
    char key[BERTH_DIGEST_MAXLEN + 2];

    referrers_key(key, sizeof(key), rf->subject);
    if (fresh(rf->u, rf->r->name, key)) {
        return 0; /* refreshed by a request just before */
    }
    if (!may_ask(rf->u, &rf->r->retry_after)) {
        count(rf->p, rf->u, BERTH_PROXY_STALE, 1);
        return 0;
    }
    count(rf->p, rf->u, BERTH_PROXY_REVALIDATIONS, 1);
    if (fetch_referrers(rf->p, rf->u, rf->r->name, rf->remote, rf->subject) == 0) {
        mark_checked(rf->u, rf->r->name, key);
        return 0;
    }
    upstream_failed(rf->p, rf->u, rf->r->name, &rf->r->retry_after, berth_error_last_code(),
                    "referrers");
    count(rf->p, rf->u, BERTH_PROXY_STALE, 1);
    return 0;
}

void berth__proxy_referrers(berth__req *r, const berth_digest *subject)
{
    berth__proxy *p = r->srv->proxy;
    char remote[REMOTE_MAX], key[BERTH_NAME_MAX + BERTH_DIGEST_MAXLEN + 8];
    upstream *u = claim(p, r->name, remote, sizeof(remote));
    referrers_fetch rf = {p, u, r, remote, subject};
    bool waited;

    if (!u || (r->method != BERTH_M_GET && r->method != BERTH_M_HEAD)) {
        return;
    }
    referrers_key(key, sizeof(key), subject);
    if (fresh(u, r->name, key)) {
        count(p, u, BERTH_PROXY_HITS, 1);
        return;
    }
    snprintf(key, sizeof(key), "r %s@%s", r->name, subject->str);
    (void)single_flight(p, key, refresh_referrers, &rf, &waited);
    r->retry_after = 0; /* answered from the store whatever happened */
    berth_error_clear();
}

/* GET the manifest `ref` (a digest) from upstream and store it, with `tag` when not NULL;
 * then its referrers. */
static int fetch_and_put(manifest_fetch *mf, const char *ref, const char *tag)
{
    berth_digest got;
    int rc = put_remote(mf->p, mf->u, mf->r->name, mf->remote, ref, tag, &got);

    if (rc == 0) {
        referrers_with(mf->p, mf->u, mf->r->name, mf->remote, &got);
    }
    return rc;
}

/* Serve the cached tag although the upstream could not be asked: count and log it. */
static int serve_stale(manifest_fetch *mf, const char *why)
{
    count(mf->p, mf->u, BERTH_PROXY_STALE, 1);
    berth__log(BERTH_LOG_WARN, "proxy %s: serving cached %s:%s (%s)", mf->u->cfg->prefix,
               mf->r->name, mf->tag, why);
    mf->r->retry_after = 0;
    berth_error_clear();
    return 0;
}

static int fetch_manifest_digest(void *payload)
{
    manifest_fetch *mf = payload;
    berth_digest have;
    int rc;

    if (cached_digest(mf->r, mf->r->ref, &have) == 0) {
        count(mf->p, mf->u, BERTH_PROXY_HITS, 1);
        return 0;
    }
    berth_error_clear();
    if (!may_ask(mf->u, &mf->r->retry_after)) {
        count(mf->p, mf->u, BERTH_PROXY_ERRORS, 1);
        return berth_error_set(BERTH_ENETWORK,
                               "upstream %s asked to wait; manifest %s is not cached",
                               mf->u->cfg->prefix, mf->r->ref);
    }
    count(mf->p, mf->u, BERTH_PROXY_MISSES, 1);
    if ((rc = fetch_and_put(mf, mf->r->ref, NULL)) < 0 && rc != BERTH_EINVALID &&
        rc != BERTH_ENOSPACE && rc != BERTH_EIO) {
        upstream_failed(mf->p, mf->u, mf->r->name, &mf->r->retry_after, rc, "manifest");
        return client_error(mf->u, rc, mf->r->ref);
    }
    return rc;
}

static int revalidate_tag(void *payload)
{
    manifest_fetch *mf = payload;
    berth_digest have, head = {0};
    bool cached;
    int rc;

    rc = cached_digest(mf->r, mf->tag, &have);
    if (rc < 0 && rc != BERTH_ENOTFOUND) {
        return rc;
    }
    cached = rc == 0;
    berth_error_clear();
    if (cached && fresh(mf->u, mf->r->name, mf->tag)) {
        count(mf->p, mf->u, BERTH_PROXY_HITS, 1); /* checked by a request just before */
        return 0;
    }
    if (!may_ask(mf->u, &mf->r->retry_after)) {
        if (cached) {
            return serve_stale(mf, berth_error_last());
        }
        count(mf->p, mf->u, BERTH_PROXY_ERRORS, 1);
        return berth_error_set(BERTH_ENETWORK, "upstream %s asked to wait; %s is not cached",
                               mf->u->cfg->prefix, mf->tag);
    }
    if (cached) {
        count(mf->p, mf->u, BERTH_PROXY_REVALIDATIONS, 1);
    }
    rc = berth_client_head_manifest(mf->u->client, mf->u->registry, mf->remote, mf->tag, &head,
                                    NULL);
    if (rc == 0 && cached && head.alg != BERTH_DIGEST_NONE && berth_digest_equal(&head, &have)) {
        mark_checked(mf->u, mf->r->name, mf->tag);
        return 0;
    }
    if (rc == 0) {
        count(mf->p, mf->u, BERTH_PROXY_MISSES, 1);
        /* by digest when the upstream said it (the bytes are checked against it) */
        rc = fetch_and_put(mf, head.alg != BERTH_DIGEST_NONE ? head.str : mf->tag, mf->tag);
        if (rc == 0) {
            mark_checked(mf->u, mf->r->name, mf->tag);
            return 0;
        }
        if (rc == BERTH_EINVALID || rc == BERTH_ENOSPACE || rc == BERTH_EIO) {
            return rc; /* the store's answer, not the upstream's */
        }
    }
    upstream_failed(mf->p, mf->u, mf->r->name, &mf->r->retry_after, rc, "tag");
    if (cached) {
        return serve_stale(mf, "upstream failed");
    }
    return client_error(mf->u, rc, mf->tag);
}

/*
 * A manifest's fetch (by digest) or a tag's check, once across replicas: under the replicas'
 * lock of the flight's key. A manifest by digest that the lock's holder stored is then found
 * by fetch_manifest_digest's first look. A tag the holder stored or moved meanwhile counts as
 * checked now (its HEAD was just made); a tag it left as it was is checked here again (the
 * holder may have failed to ask), which is one HEAD, never a manifest GET.
 */
static int manifest_once(manifest_fetch *mf, const char *key, fetch_fn fn)
{
    berth_store *store = mf->p->srv->store;
    berth_meta_lock *lock = NULL;
    berth_digest before, after;
    bool had = false, waited;
    int rc;

    if (mf->tag) {
        had = cached_digest(mf->r, mf->tag, &before) == 0;
        berth_error_clear();
    }
    if ((rc = replica_lock(mf->p, mf->u, key, &lock, &waited)) < 0) {
        return rc;
    }
    if (waited && mf->tag && cached_digest(mf->r, mf->tag, &after) == 0 &&
        (!had || !berth_digest_equal(&before, &after))) {
        count(mf->p, mf->u, BERTH_PROXY_HITS, 1); /* fetched by another replica */
        mark_checked(mf->u, mf->r->name, mf->tag);
        rc = 0;
    } else {
        berth_error_clear();
        rc = fn(mf);
    }
    berth_store_unlock(store, lock);
    return rc;
}

static int fetch_manifest_digest_once(void *payload)
{
    manifest_fetch *mf = payload;
    char key[BERTH_NAME_MAX + BERTH__REF_MAX + 8];

    snprintf(key, sizeof(key), "d %s:%s", mf->r->name, mf->r->ref);
    return manifest_once(mf, key, fetch_manifest_digest);
}

static int revalidate_tag_once(void *payload)
{
    manifest_fetch *mf = payload;
    char key[BERTH_NAME_MAX + BERTH__REF_MAX + 8];

    snprintf(key, sizeof(key), "t %s:%s", mf->r->name, mf->tag);
    return manifest_once(mf, key, revalidate_tag);
}

int berth__proxy_manifest(berth__req *r)
{
    berth__proxy *p = r->srv->proxy;
    char remote[REMOTE_MAX], key[BERTH_NAME_MAX + BERTH__REF_MAX + 8];
    manifest_fetch mf;
    upstream *u = claim(p, r->name, remote, sizeof(remote));
    berth_digest have;
    bool is_digest = strchr(r->ref, ':') != NULL, waited;
    int rc;

    if (!u || (r->method != BERTH_M_GET && r->method != BERTH_M_HEAD)) {
        return 0;
    }
    mf = (manifest_fetch){p, u, r, remote, is_digest ? NULL : r->ref};
    rc = cached_digest(r, r->ref, &have);
    if (rc < 0 && rc != BERTH_ENOTFOUND) {
        return rc;
    }
    berth_error_clear();
    if (rc == 0 && (is_digest || fresh(u, r->name, r->ref))) {
        count(p, u, BERTH_PROXY_HITS, 1);
        note_pull(u, r->name, &have);
        return 0;
    }
    snprintf(key, sizeof(key), "%c %s:%s", is_digest ? 'd' : 't', r->name, r->ref);
    rc = single_flight(p, key, is_digest ? fetch_manifest_digest_once : revalidate_tag_once, &mf,
                       &waited);
    if (waited && rc == 0) {
        count(p, u, BERTH_PROXY_HITS, 1);
    }
    if (rc == 0 && cached_digest(r, r->ref, &have) == 0) {
        note_pull(u, r->name, &have);
    }
    berth_error_clear();
    return rc;
}

/* ---- bounded: max_size, the least recently pulled evicted first (by gc) --------------- */

/*
 * Each upstream with a max_size: its cached bytes are the manifests of the repositories under
 * its prefix plus the blobs they reference that are present (each digest once). Over the cap,
 * manifests are deleted in the order they were last pulled (this process's record; for a
 * manifest not pulled since the start, when it was stored) until the bytes fit; the collection
 * that follows (berth_store_gc, the same pass) drops the blob links no manifest needs any more
 * and frees the bytes, as for any deleted content, so an eviction races no push or pull: a
 * manifest deleted here while a client pulls it is fetched again.
 */

typedef struct cached_manifest {
    const char *repo; /* in evict_scan.repos */
    berth_digest digest;
    uint64_t size;
    int64_t pulled;
    berth_digest *blobs;
    size_t nblobs;
    bool index; /* has children: goes before them at the same time */
    bool gone;
} cached_manifest;

typedef struct cached_blob {
    uint64_t size;
    size_t refs; /* manifests referencing it */
    char key[];
} cached_blob;

typedef struct evict_scan {
    berth__proxy *p;
    upstream *u;
    char **repos;
    size_t nrepos, crepos;
    const char *repo; /* being listed */
    cached_manifest *items;
    size_t n, cap;
    berth__htab blobs; /* digest -> cached_blob */
    uint64_t total;
    size_t evicted;
    int error;
} evict_scan;

static int scan_repo(const char *name, void *payload)
{
    evict_scan *sc = payload;
    size_t n = strlen(sc->u->cfg->prefix);
    char **grown;

    if (strncmp(name, sc->u->cfg->prefix, n) != 0 || name[n] != '/') {
        return 0;
    }
    if (sc->nrepos == sc->crepos) {
        sc->crepos = sc->crepos ? sc->crepos * 2 : 16;
        if (!(grown = realloc(sc->repos, sc->crepos * sizeof(*grown)))) {
            return sc->error = berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        sc->repos = grown;
    }
    if (!(sc->repos[sc->nrepos] = strdup(name))) {
        return sc->error = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    sc->nrepos++;
    return 0;
}

static int scan_manifest(const berth_meta_manifest *m, void *payload)
{
    evict_scan *sc = payload;
    char key[BERTH_NAME_MAX + BERTH_DIGEST_MAXLEN + 2];
    cached_manifest *it, *grown;
    checked_tag *c;

    if (sc->n == sc->cap) {
        sc->cap = sc->cap ? sc->cap * 2 : 64;
        if (!(grown = realloc(sc->items, sc->cap * sizeof(*grown)))) {
            return sc->error = berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        sc->items = grown;
    }
    it = &sc->items[sc->n];
    memset(it, 0, sizeof(*it));
    it->repo = sc->repo;
    it->digest = m->digest;
    it->size = m->size;
    it->pulled = m->pushed;
    it->index = m->nchildren > 0;
    snprintf(key, sizeof(key), "%s\n%s", sc->repo, m->digest.str);
    pthread_mutex_lock(&sc->u->mu);
    if ((c = berth__htab_get(&sc->u->pulled, key)) != NULL) {
        it->pulled = c->at;
    }
    pthread_mutex_unlock(&sc->u->mu);
    if (m->nblobs && !(it->blobs = malloc(m->nblobs * sizeof(*it->blobs)))) {
        return sc->error = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    sc->n++;
    sc->total += m->size;
    for (size_t i = 0; i < m->nblobs; i++) {
        cached_blob *b = berth__htab_get(&sc->blobs, m->blobs[i].str);
        uint64_t size = 0;

        it->blobs[it->nblobs++] = m->blobs[i];
        if (!b) {
            size_t len = strlen(m->blobs[i].str);
            if (berth_store_blob_stat(sc->p->srv->store, sc->repo, &m->blobs[i], &size) < 0) {
                size = 0; /* absent (a sparse manifest): takes no room */
                berth_error_clear();
            }
            if (!(b = calloc(1, sizeof(*b) + len + 1))) {
                return sc->error = berth_error_set(BERTH_ENOMEM, "out of memory");
            }
            memcpy(b->key, m->blobs[i].str, len + 1);
            b->size = size;
            if (berth__htab_put(&sc->blobs, b->key, b) < 0) {
                free(b);
                return sc->error = berth_error_last_code();
            }
            sc->total += size;
        }
        b->refs++;
    }
    return 0;
}

static int by_pulled(const void *a, const void *b)
{
    const cached_manifest *x = a, *y = b;
    int c;

    if (x->pulled != y->pulled) {
        return x->pulled < y->pulled ? -1 : 1;
    }
    if (x->index != y->index) {
        return x->index ? -1 : 1;
    }
    c = strcmp(x->repo, y->repo);
    return c ? c : strcmp(x->digest.str, y->digest.str);
}

/* Delete one cached manifest and take its bytes off the count. @return 0, BERTH_EINUSE (an
 * index still cached needs it: a later round), or another failure (logged) */
static int evict_one(berth__proxy *p, upstream *u, evict_scan *sc, cached_manifest *it)
{
    char key[BERTH_NAME_MAX + BERTH_DIGEST_MAXLEN + 2];
    int rc = berth_store_manifest_delete(p->srv->store, it->repo, &it->digest);

    if (rc == BERTH_EINUSE) {
        berth_error_clear();
        return rc;
    }
    if (rc < 0 && rc != BERTH_ENOTFOUND) {
        berth__log(BERTH_LOG_WARN, "proxy %s: cannot evict %s@%s: %s", u->cfg->prefix, it->repo,
                   it->digest.str, berth_error_last());
        berth_error_clear();
        it->gone = true; /* not tried again in this pass */
        return rc;
    }
    berth_error_clear();
    it->gone = true;
    sc->total -= it->size < sc->total ? it->size : sc->total;
    for (size_t j = 0; j < it->nblobs; j++) {
        cached_blob *b = berth__htab_get(&sc->blobs, it->blobs[j].str);
        if (b && --b->refs == 0) {
            sc->total -= b->size < sc->total ? b->size : sc->total;
        }
    }
    snprintf(key, sizeof(key), "%s\n%s", it->repo, it->digest.str);
    pthread_mutex_lock(&u->mu);
    free(berth__htab_remove(&u->pulled, key));
    pthread_mutex_unlock(&u->mu);
    if (rc == 0) {
        count(p, u, BERTH_PROXY_EVICTIONS, 1);
        sc->evicted++;
        berth__log(BERTH_LOG_INFO, "proxy %s: evicted %s@%s (max_size)", u->cfg->prefix, it->repo,
                   it->digest.str);
    }
    return 0;
}

/* Evict from one upstream until its cached bytes fit its max_size. */
static int evict_upstream(berth__proxy *p, upstream *u)
{
    evict_scan sc = {.p = p, .u = u};
    berth_store *store = p->srv->store;
    uint64_t before;
    size_t evicted = 0;
    bool more, skipped = false;
    int rc;

    if ((rc = berth_store_catalog(store, NULL, 0, scan_repo, &sc, &more)) < 0 || sc.error < 0) {
        rc = sc.error < 0 ? sc.error : rc;
        goto out;
    }
    for (size_t i = 0; i < sc.nrepos; i++) {
        sc.repo = sc.repos[i];
        rc = berth_store_manifests(store, sc.repo, scan_manifest, &sc);
        if (sc.error < 0) {
            rc = sc.error;
            goto out;
        }
        berth_error_clear(); /* a repository gone meanwhile */
    }
    rc = 0;
    before = sc.total;
    if (sc.total <= u->cfg->max_size) {
        goto out;
    }
    qsort(sc.items, sc.n, sizeof(*sc.items), by_pulled);
    /* oldest first; a child of an index still cached is refused (in use): once something went
     * after it was skipped (its index, usually), start again from the oldest */
    for (size_t i = 0; i < sc.n && sc.total > u->cfg->max_size; i++) {
        if (sc.items[i].gone) {
            continue;
        }
        rc = evict_one(p, u, &sc, &sc.items[i]);
        if (rc == BERTH_EINUSE) {
            skipped = true;
        } else if (rc == 0 && skipped) {
            skipped = false;
            i = (size_t)-1; /* the loop's i++ makes it 0 */
        }
    }
    rc = 0;
    evicted = sc.evicted;
    berth__log(BERTH_LOG_NOTICE,
               "proxy %s: %llu bytes cached over max_size %llu: %zu manifests evicted, "
               "%llu bytes for gc to free",
               u->cfg->prefix, (unsigned long long)before, (unsigned long long)u->cfg->max_size,
               evicted, (unsigned long long)(before - sc.total));
out:
    for (size_t i = 0; i < sc.n; i++) {
        free(sc.items[i].blobs);
    }
    free(sc.items);
    for (size_t i = 0; i < sc.nrepos; i++) {
        free(sc.repos[i]);
    }
    free(sc.repos);
    berth__htab_foreach(&sc.blobs, free_checked, NULL);
    berth__htab_dispose(&sc.blobs);
    return rc;
}

void berth__proxy_evict(berth_server *srv)
{
    berth__proxy *p = srv->proxy;

    for (size_t i = 0; p && i < p->nups; i++) {
        if (p->ups[i].cfg->max_size && evict_upstream(p, &p->ups[i]) < 0) {
            berth__log(BERTH_LOG_WARN, "proxy %s: eviction failed: %s", p->ups[i].cfg->prefix,
                       berth_error_last());
        }
    }
    berth_error_clear();
}

/* ---- writes ------------------------------------------------------------------------------ */

bool berth__proxy_refuse(berth__req *r, enum MHD_Result *ret)
{
    char remote[REMOTE_MAX];
    upstream *u;

    if (r->route != BERTH_R_MANIFEST && r->route != BERTH_R_BLOB && r->route != BERTH_R_UPLOADS &&
        r->route != BERTH_R_UPLOAD) {
        return false;
    }
    if ((r->route == BERTH_R_MANIFEST || r->route == BERTH_R_BLOB) &&
        (r->method == BERTH_M_GET || r->method == BERTH_M_HEAD)) {
        return false;
    }
    if (!(u = claim(r->srv->proxy, r->name, remote, sizeof(remote)))) {
        return false;
    }
    r->allow = "GET, HEAD";
    berth_error_set(BERTH_EUNSUPPORTED,
                    "%s is a cache of upstream %s: pushes and deletes are not accepted under it",
                    r->name, u->cfg->prefix);
    *ret = berth__respond_error(r, BERTH_OP_METHOD, BERTH_EUNSUPPORTED, NULL);
    return true;
}
