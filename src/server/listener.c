/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The listener: berth accepts connections itself and hands them to libmicrohttpd with
 * MHD_add_connection(), so that admission, deadlines and shutdown follow one account of every
 * connection (the slow-client defences and the overload behaviour are the same code).
 *
 * - At the connection limit the listener stops accepting: further clients wait in the kernel's
 *   listen backlog until a slot frees, instead of being accepted and closed (the accept/close
 *   storm that makes throughput collapse). While clients wait, slots rotate: a connection is
 *   closed after its current response once it has served BERTH__ROTATE_REQUESTS requests or
 *   held its slot for BERTH__ROTATE_MS, and idle keep-alive connections are closed first.
 * - Each connection is in one phase: IDLE (between requests), HEAD (request line seen, headers
 *   arriving), BODY (handler running, body streaming) or RESPONSE (answer queued). HEAD has a
 *   total deadline (timeouts.header), a new connection must send its first request within the
 *   same deadline, and IDLE lasts at most timeouts.idle; BODY and RESPONSE are bounded by
 *   libmicrohttpd's per-connection inactivity timeout, set to timeouts.read and timeouts.write
 *   as the phase starts. Under pressure (clients waiting) idle connections and heads slower
 *   than BERTH__PRESSURE_HEAD_MS are cut, so slow clients cannot hold the slots new ones need.
 * - Connections per client address are capped; one over the cap is answered 503 with the
 *   spec's JSON and Retry-After, written straight to the socket.
 * - With TLS, the first byte of a new connection is looked at before libmicrohttpd sees it: a
 *   plain-HTTP request gets a plain-HTTP 400 that says to use HTTPS.
 * - berth__listener_drain() stops accepting, closes idle connections, lets requests in flight
 *   finish until a deadline and then cuts what is left.
 *
 * A connection is cut with shutdown(2) under the table's lock; libmicrohttpd reports the close
 * (MHD_CONNECTION_NOTIFY_CLOSED, which takes the same lock) before it closes the descriptor,
 * so a descriptor number is never shut down after it was reused.
 */
#define _GNU_SOURCE /* accept4 */
#include "server/server_internal.h"

#include "base/htab.h"
#include "base/log.h"

#include <berth/errors.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <linux/sockios.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* How often deadlines are checked, milliseconds. */
#define TICK_MS 100
/* Under pressure, a request head taking longer than this is cut, milliseconds. */
#define BERTH__PRESSURE_HEAD_MS 500
/* Under pressure, a body or a response that makes no progress for this long is cut, ms. */
#define BERTH__PRESSURE_STALL_MS 2000
/* Under pressure, a body slower than this (bytes a second) past BERTH__PRESSURE_STALL_MS is
   cut. */
#define BERTH__PRESSURE_MIN_RATE 4096
/* Under pressure, a keep-alive connection idle for longer than this is closed, milliseconds. */
#define BERTH__PRESSURE_IDLE_MS 250
/* While clients wait for a slot, a connection is closed after this many requests, or once it
   has held its slot this long (ms), whichever comes first. */
#define BERTH__ROTATE_REQUESTS 100
#define BERTH__ROTATE_MS       250
/* A worker inside one callback for longer than this gets no new connections, milliseconds. */
#define BUSY_MS 50
/* Descriptors kept for the store, the log and the listener's own use. */
#define FD_RESERVE 64

enum {
    PHASE_FREE = 0,
    PHASE_SNIFF,
    PHASE_IDLE,
    PHASE_HEAD,
    PHASE_BODY,
    PHASE_WORK,
    PHASE_RESPONSE
};

typedef struct addr_count {
    char key[INET6_ADDRSTRLEN];
    unsigned count;
} addr_count;

struct berth__conn {
    int fd;
    atomic_int phase;
    atomic_int_fast64_t since;    /* ms, CLOCK_MONOTONIC: start of the phase */
    atomic_uint requests;         /* requests begun on this connection */
    atomic_int_fast64_t progress; /* ms, CLOCK_MONOTONIC_COARSE: last body byte (BODY) */
    atomic_uint_fast64_t body;    /* body bytes of the current request */
    bool read_timeout;            /* MHD's timeout is timeouts.read (the worker's thread only) */
    int outq;                     /* reap(): the send queue last seen (RESPONSE) */
    int64_t outq_since;           /* reap(): since when it has not shrunk */
    int64_t accepted;             /* ms, CLOCK_MONOTONIC_COARSE */
    bool shut;                    /* shutdown(2) done */
    addr_count *addr;             /* the client's address entry */
    berth__conn *next_free;
};

struct berth__listener {
    int lfd;  /* listening socket (-1: closed) */
    int epfd; /* the listener's epoll: lfd, wake, sniffing sockets */
    int wake; /* eventfd: a slot freed, or stop */
    pthread_t thread;
    bool running;
    bool listening; /* lfd is in the epoll set */

    pthread_mutex_t lock; /* everything below, and shutdown(2) of a connection's socket */
    pthread_cond_t idle;  /* signalled when `active` drops */
    berth__conn *conns;   /* `cap` records */
    berth__conn **by_fd;  /* `nfd` entries */
    size_t cap, nfd;
    berth__conn *free;
    size_t used; /* records ever taken: conns[0..used) */
    size_t active;
    berth__htab addrs;
    berth_metrics *metrics;
    bool stop;
    unsigned next;        /* where pick_worker starts looking */
    atomic_bool waiting;  /* at the limit with clients in the backlog */
    atomic_bool draining; /* shutting down: every response closes its connection */
};

/* Deadlines are seconds; the coarse clock (a few ms) is precise enough and cheaper. */
static int64_t now_ms(void)
{
    return berth__now_ms();
}

int64_t berth__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

unsigned berth_server_default_connection_limit(void)
{
    struct rlimit rl;
    rlim_t n;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) {
        return 1024;
    }
    n = rl.rlim_cur;
    if (n <= 2 * FD_RESERVE) {
        return 16;
    }
    /* a connection may hold two descriptors: its socket and a blob being sent */
    n = (n - FD_RESERVE) / 2;
    return n > BERTH__CONNECTIONS_MAX ? BERTH__CONNECTIONS_MAX : (unsigned)n;
}

/* ---- the table ----------------------------------------------------------------------------- */

static void addr_key(char *key, const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, key, INET6_ADDRSTRLEN);
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, key, INET6_ADDRSTRLEN);
    }
}

/* Take a record for `fd` from `key`'s address; NULL when the address is at its cap. Locked. */
static berth__conn *conn_take(berth__listener *l, unsigned per_address, int fd, const char *key)
{
    addr_count *a = berth__htab_get(&l->addrs, key);
    berth__conn *c;

    if (a && per_address && a->count >= per_address) {
        return NULL;
    }
    if (!a) {
        if (!(a = calloc(1, sizeof(*a)))) {
            return NULL;
        }
        snprintf(a->key, sizeof(a->key), "%s", key);
        if (berth__htab_put(&l->addrs, a->key, a) < 0) {
            free(a);
            return NULL;
        }
    }
    if (l->free) {
        c = l->free;
        l->free = c->next_free;
        c->next_free = NULL;
    } else {
        c = &l->conns[l->used++]; /* the caller checked active < cap, so used < cap */
    }
    c->fd = fd;
    c->shut = false;
    c->addr = a;
    atomic_store(&c->requests, 0);
    atomic_store(&c->since, now_ms());
    c->accepted = berth__now_ms();
    c->outq = 0;
    c->outq_since = 0;
    c->read_timeout = false;
    atomic_store(&c->phase, PHASE_IDLE);
    a->count++;
    l->by_fd[fd] = c;
    l->active++;
    berth_metrics_gauge_set(l->metrics, BERTH_GAUGE_CONNECTIONS, (int64_t)l->active);
    return c;
}

/* Return a record. Locked. */
static void conn_put(berth__listener *l, berth__conn *c)
{
    if (c->addr && --c->addr->count == 0) {
        berth__htab_remove(&l->addrs, c->addr->key);
        free(c->addr);
    }
    c->addr = NULL;
    if (c->fd >= 0 && (size_t)c->fd < l->nfd && l->by_fd[c->fd] == c) {
        l->by_fd[c->fd] = NULL;
    }
    c->fd = -1;
    atomic_store(&c->phase, PHASE_FREE);
    c->next_free = l->free;
    l->free = c;
    l->active--;
    berth_metrics_gauge_set(l->metrics, BERTH_GAUGE_CONNECTIONS, (int64_t)l->active);
    pthread_cond_broadcast(&l->idle);
}

static void wake(berth__listener *l)
{
    uint64_t one = 1;
    ssize_t n = write(l->wake, &one, sizeof(one));
    (void)n;
}

/* Cut a connection held by MHD. Locked. */
static void conn_cut(berth__conn *c)
{
    if (!c->shut && c->fd >= 0) {
        shutdown(c->fd, SHUT_RDWR);
        c->shut = true;
    }
}

/* ---- MHD's view ------------------------------------------------------------------------------ */

void berth__conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    berth__worker *w = cls;
    berth_server *srv = w->srv;
    berth__listener *l = srv->listener;
    const union MHD_ConnectionInfo *info;
    berth__conn *c;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&w->conns, 1);
        info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        pthread_mutex_lock(&l->lock);
        c = info && info->connect_fd >= 0 && (size_t)info->connect_fd < l->nfd
                ? l->by_fd[info->connect_fd]
                : NULL;
        pthread_mutex_unlock(&l->lock);
        *socket_context = c;
        if (srv->mtls) {
            /* a client without a certificate fails the handshake */
            info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
            if (info && info->tls_session) {
                /* ... and one that does not verify against tls.client_ca fails it too */
                gnutls_certificate_server_set_request((gnutls_session_t)info->tls_session,
                                                      GNUTLS_CERT_REQUIRE);
                gnutls_session_set_verify_cert((gnutls_session_t)info->tls_session, NULL, 0);
            }
        }
        return;
    }
    atomic_fetch_sub(&w->conns, 1);
    c = *socket_context;
    if (!c) {
        return;
    }
    *socket_context = NULL;
    pthread_mutex_lock(&l->lock);
    conn_put(l, c);
    pthread_mutex_unlock(&l->lock);
    wake(l);
}

berth__conn *berth__conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return info ? info->socket_context : NULL;
}

void berth__conn_phase(berth_server *srv, berth__conn *c, struct MHD_Connection *conn,
                       berth__phase phase, bool body)
{
    if (!c) {
        return;
    }
    /*
     * libmicrohttpd's inactivity timeout stays at its default, max(timeouts.write,
     * timeouts.idle), except while a body streams in (timeouts.read); the reaper enforces
     * timeouts.idle between requests. So a request without a body costs no timeout change.
     */
    switch (phase) {
    case BERTH__PHASE_HEAD:
        atomic_fetch_add(&c->requests, 1);
        atomic_store(&c->since, now_ms());
        atomic_store(&c->phase, PHASE_HEAD);
        break;
    case BERTH__PHASE_BODY:
        if (body) {
            int64_t now = now_ms();

            atomic_store(&c->body, 0);
            atomic_store(&c->progress, now);
            atomic_store(&c->since, now);
            if (srv->timeout_read != srv->timeout_default) {
                MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, srv->timeout_read);
                c->read_timeout = true;
            }
        }
        atomic_store(&c->phase, PHASE_BODY);
        break;
    case BERTH__PHASE_WORK:
        atomic_store(&c->phase, PHASE_WORK);
        break;
    case BERTH__PHASE_RESPONSE:
    case BERTH__PHASE_IDLE:
        if (c->read_timeout) {
            MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, srv->timeout_default);
            c->read_timeout = false;
        }
        if (phase == BERTH__PHASE_IDLE) {
            atomic_store(&c->since, now_ms());
        }
        atomic_store(&c->phase, phase == BERTH__PHASE_IDLE ? PHASE_IDLE : PHASE_RESPONSE);
        break;
    }
}

void berth__conn_progress(berth__conn *c, size_t n)
{
    if (c) {
        atomic_fetch_add_explicit(&c->body, n, memory_order_relaxed);
        atomic_store_explicit(&c->progress, berth__now_ms(), memory_order_relaxed);
    }
}

bool berth__conn_closing(berth_server *srv, berth__conn *c)
{
    berth__listener *l = srv->listener;

    if (!l) {
        return false;
    }
    if (atomic_load(&l->draining)) {
        return true;
    }
    if (!atomic_load(&l->waiting)) {
        return false;
    }
    return c && (atomic_load(&c->requests) >= BERTH__ROTATE_REQUESTS ||
                 berth__now_ms() - c->accepted >= BERTH__ROTATE_MS);
}

/* ---- answers written by the listener itself ----------------------------------------------- */

/* Write a whole short answer and close; best effort (the socket is non-blocking). The body is
   the spec's error document, as every other error (berth__error_document()). */
static void answer_and_close(int fd, const char *status, berth__api_error api, const char *message,
                             bool retry)
{
    berth_buf body = BERTH_BUF_INIT_MAX(1024);
    char head[512];
    int hlen = -1;

    if (berth__error_document(&body, api, message) == 0) {
        hlen = snprintf(head, sizeof(head),
                        "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                        "%sConnection: close\r\n\r\n",
                        status, body.len, retry ? "Retry-After: 1\r\n" : "");
    }
    if (hlen > 0 && (size_t)hlen < sizeof(head) &&
        send(fd, head, (size_t)hlen, MSG_NOSIGNAL | MSG_MORE) == hlen) {
        ssize_t n = send(fd, body.ptr, body.len, MSG_NOSIGNAL);
        (void)n;
    }
    berth_buf_dispose(&body);
    shutdown(fd, SHUT_WR);
    close(fd);
}

/* ---- the accept thread --------------------------------------------------------------------- */

/*
 * The worker for a new connection: the one holding the fewest connections among those not
 * stuck in a callback for more than BUSY_MS (a request hashing a large session, a slow disk);
 * when every worker is stuck, the one with the fewest connections.
 */
static berth__worker *pick_worker(berth_server *srv)
{
    int64_t now = berth__now_ms();
    berth__worker *best = NULL, *any = NULL;

    for (unsigned i = 0; i < srv->nworkers; i++) {
        berth__worker *w = &srv->workers[(srv->listener->next + i) % srv->nworkers];
        int64_t since = atomic_load_explicit(&w->busy_since, memory_order_relaxed);
        unsigned n = atomic_load_explicit(&w->conns, memory_order_relaxed);

        if (!any || n < atomic_load(&any->conns)) {
            any = w;
        }
        if ((since == 0 || now - since < BUSY_MS) && (!best || n < atomic_load(&best->conns))) {
            best = w;
        }
    }
    srv->listener->next++;
    return best ? best : any;
}

static void hand_to_mhd(berth_server *srv, berth__conn *c, const struct sockaddr_storage *ss,
                        socklen_t sslen)
{
    int fd = c->fd;

    if (berth__worker_hand(pick_worker(srv), c, fd, ss, sslen) < 0) {
        answer_and_close(fd, "503 Service Unavailable", BERTH_API_TOOMANYREQUESTS,
                         "the server is busy: retry", true);
        berth__conn_refused(srv, c);
    }
}

void berth__conn_refused(berth_server *srv, berth__conn *c)
{
    berth__listener *l = srv->listener;

    pthread_mutex_lock(&l->lock);
    conn_put(l, c);
    pthread_mutex_unlock(&l->lock);
    wake(l);
}

/* The first byte of a TLS connection arrived (or it failed): hand it over or refuse it. */
static void sniffed(berth_server *srv, berth__conn *c)
{
    berth__listener *l = srv->listener;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    unsigned char b;
    ssize_t n;
    int fd = c->fd;

    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 1 && b == 0x16 && getpeername(fd, (struct sockaddr *)&ss, &sslen) == 0) {
        hand_to_mhd(srv, c, &ss, sslen);
        return;
    }
    if (n == 1 && b >= 'A' && b <= 'Z') {
        answer_and_close(fd, "400 Bad Request", BERTH_API_UNSUPPORTED,
                         "this port speaks HTTPS: use https://", false);
    } else {
        close(fd);
    }
    pthread_mutex_lock(&l->lock);
    conn_put(l, c);
    pthread_mutex_unlock(&l->lock);
}

static void accept_some(berth_server *srv)
{
    berth__listener *l = srv->listener;
    struct sockaddr_storage ss;
    char key[INET6_ADDRSTRLEN];
    berth__conn *c;
    socklen_t sslen;
    int fd;

    for (;;) {
        pthread_mutex_lock(&l->lock);
        if (l->active >= l->cap || l->stop) {
            pthread_mutex_unlock(&l->lock);
            return;
        }
        pthread_mutex_unlock(&l->lock);
        sslen = sizeof(ss);
        fd = accept4(l->lfd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                berth__log(BERTH_LOG_WARN, "accept: %s", strerror(errno));
            }
            return;
        }
        if ((size_t)fd >= l->nfd) {
            answer_and_close(fd, "503 Service Unavailable", BERTH_API_TOOMANYREQUESTS,
                             "the server is at its connection limit", true);
            continue;
        }
        addr_key(key, &ss);
        pthread_mutex_lock(&l->lock);
        c = conn_take(l, srv->per_address, fd, key);
        pthread_mutex_unlock(&l->lock);
        if (!c) {
            berth_metrics_counter_add(srv->metrics, BERTH_COUNTER_CONNECTIONS_REFUSED, 1);
            answer_and_close(fd, "503 Service Unavailable", BERTH_API_TOOMANYREQUESTS,
                             "too many connections from this address", true);
            continue;
        }
        if (srv->tls_cert) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};

            atomic_store(&c->phase, PHASE_SNIFF);
            if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                close(fd);
                pthread_mutex_lock(&l->lock);
                conn_put(l, c);
                pthread_mutex_unlock(&l->lock);
            }
            continue;
        }
        hand_to_mhd(srv, c, &ss, sslen);
    }
}

/* Whether bytes wait to be read on `fd`. */
static bool pending(int fd)
{
    char b;

    return recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
}

/*
 * Under pressure: a body that has brought no byte for BERTH__PRESSURE_STALL_MS, or less than
 * BERTH__PRESSURE_MIN_RATE bytes a second once it is older than that, while nothing waits
 * unread on its socket (unread bytes mean the server is the slow side).
 */
static bool slow_body(berth__conn *c, int64_t now, int64_t age)
{
    int64_t stall = now - (int64_t)atomic_load(&c->progress);
    uint64_t bytes = atomic_load(&c->body);

    if (age <= BERTH__PRESSURE_STALL_MS || pending(c->fd)) {
        return false;
    }
    return stall > BERTH__PRESSURE_STALL_MS ||
           bytes * 1000 < (uint64_t)age * BERTH__PRESSURE_MIN_RATE;
}

/*
 * Under pressure: a response whose client has not taken a byte from the socket's send queue
 * for BERTH__PRESSURE_STALL_MS (the queue is not empty and has not shrunk).
 */
static bool slow_reader(berth__conn *c, int64_t now)
{
    int outq = 0;

    if (ioctl(c->fd, SIOCOUTQ, &outq) != 0 || outq == 0 || outq < c->outq) {
        c->outq = outq;
        c->outq_since = now;
        return false;
    }
    if (outq > c->outq) {
        c->outq = outq;
        c->outq_since = now;
    }
    return now - c->outq_since > BERTH__PRESSURE_STALL_MS;
}

/* Cut connections past their deadlines; under pressure or while draining, more. */
static void reap(berth_server *srv, bool pressure, bool draining)
{
    berth__listener *l = srv->listener;
    int64_t now = now_ms();
    int64_t head_ms = (int64_t)srv->timeout_header * 1000;
    int64_t idle_ms = (int64_t)srv->opts.connection_timeout * 1000;

    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->used; i++) {
        berth__conn *c = &l->conns[i];
        int phase = atomic_load(&c->phase);
        int64_t age = now - (int64_t)atomic_load(&c->since);
        bool fresh = atomic_load(&c->requests) == 0;
        bool cut = false;

        switch (phase) {
        case PHASE_SNIFF:
            if (age > head_ms || draining) {
                epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                conn_put(l, c);
            }
            continue;
        case PHASE_IDLE:
            cut = age > (fresh ? head_ms : idle_ms) || draining ||
                  (pressure && age > BERTH__PRESSURE_IDLE_MS);
            if (cut && !draining && age <= (fresh ? head_ms : idle_ms) && pending(c->fd)) {
                /* its next request is there, not yet read by a busy worker: not idle */
                cut = false;
            }
            break;
        case PHASE_HEAD:
            cut = age > head_ms || (pressure && age > BERTH__PRESSURE_HEAD_MS);
            break;
        case PHASE_BODY:
            cut = pressure && slow_body(c, now, age);
            break;
        case PHASE_RESPONSE:
            cut = pressure && slow_reader(c, now);
            break;
        default:
            break;
        }
        if (cut && !c->shut) {
            berth_metrics_counter_add(srv->metrics, BERTH_COUNTER_CONNECTIONS_CUT, 1);
            conn_cut(c);
        }
    }
    pthread_mutex_unlock(&l->lock);
}

static void set_listening(berth__listener *l, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

    if (on == l->listening || l->lfd < 0) {
        return;
    }
    epoll_ctl(l->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, l->lfd, &ev);
    l->listening = on;
}

static void *accept_thread(void *arg)
{
    berth_server *srv = arg;
    berth__listener *l = srv->listener;
    struct epoll_event evs[64];
    int64_t last_reap = now_ms();

    for (;;) {
        bool full, stop, draining, waiting = false;
        int n = epoll_wait(l->epfd, evs, 64, TICK_MS);

        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == l) {
                uint64_t v;
                ssize_t r = read(l->wake, &v, sizeof(v));
                (void)r;
            } else if (evs[i].data.ptr) {
                sniffed(srv, evs[i].data.ptr);
            }
        }
        pthread_mutex_lock(&l->lock);
        stop = l->stop;
        pthread_mutex_unlock(&l->lock);
        draining = atomic_load(&l->draining);
        if (stop) {
            break;
        }
        if (!draining) {
            accept_some(srv);
        }
        pthread_mutex_lock(&l->lock);
        full = l->active >= l->cap;
        pthread_mutex_unlock(&l->lock);
        if (full && !draining) {
            struct pollfd p = {.fd = l->lfd, .events = POLLIN};
            waiting = poll(&p, 1, 0) == 1;
        }
        atomic_store(&l->waiting, waiting);
        set_listening(l, !full && !draining);
        if (draining || now_ms() - last_reap >= TICK_MS) {
            reap(srv, waiting, draining);
            last_reap = now_ms();
        }
    }
    return NULL;
}

/* ---- lifecycle --------------------------------------------------------------------------------
 */

int berth__listener_start(berth_server *srv, const struct sockaddr *sa, socklen_t salen)
{
    berth__listener *l;
    struct epoll_event ev;
    struct rlimit rl;
    int one = 1;

    if (!(l = calloc(1, sizeof(*l)))) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    l->lfd = l->epfd = l->wake = -1;
    srv->listener = l;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->idle, NULL);
    l->cap = srv->opts.connection_limit;
    l->metrics = srv->metrics;
    l->nfd = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
                     rl.rlim_cur < (1u << 24)
                 ? (size_t)rl.rlim_cur
                 : (1u << 20);
    if (!(l->conns = calloc(l->cap, sizeof(*l->conns))) ||
        !(l->by_fd = calloc(l->nfd, sizeof(*l->by_fd)))) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    /* records are taken from `conns` in order as first needed (see conn_take), so the
       table costs memory only up to the most connections ever open at once */
    if ((l->lfd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(l->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(l->lfd, sa, salen) < 0 || listen(l->lfd, BERTH__LISTEN_BACKLOG) < 0) {
        return berth_error_set(BERTH_EIO, "cannot listen: %s", strerror(errno));
    }
    if ((l->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        (l->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        return berth_error_set(BERTH_EIO, "epoll: %s", strerror(errno));
    }
    ev.events = EPOLLIN;
    ev.data.ptr = l;
    epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake, &ev);
    set_listening(l, true);
    return 0;
}

int berth__listener_port(berth_server *srv, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(srv->listener->lfd, (struct sockaddr *)&ss, &len) < 0) {
        return berth_error_set(BERTH_EIO, "getsockname: %s", strerror(errno));
    }
    *port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                     : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

int berth__listener_run(berth_server *srv)
{
    berth__listener *l = srv->listener;

    if (pthread_create(&l->thread, NULL, accept_thread, srv) != 0) {
        return berth_error_set(BERTH_EIO, "cannot start the accept thread");
    }
    l->running = true;
    return 0;
}

void berth__listener_drain(berth_server *srv, unsigned drain_ms)
{
    berth__listener *l = srv->listener;
    struct timespec until;

    if (!l || !l->running) {
        return;
    }
    /* stop accepting: clients in the backlog are refused by the kernel from here on */
    atomic_store(&l->draining, true);
    wake(l);
    pthread_mutex_lock(&l->lock);
    if (l->lfd >= 0) {
        shutdown(l->lfd, SHUT_RDWR);
    }
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += drain_ms / 1000;
    until.tv_nsec += (long)(drain_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    while (l->active > 0) {
        if (pthread_cond_timedwait(&l->idle, &l->lock, &until) == ETIMEDOUT) {
            break;
        }
    }
    if (l->active > 0) {
        berth__log(BERTH_LOG_WARN, "drain deadline: cutting %zu connections", l->active);
        for (size_t i = 0; i < l->used; i++) {
            int phase = atomic_load(&l->conns[i].phase);
            if (phase != PHASE_FREE && phase != PHASE_SNIFF) {
                conn_cut(&l->conns[i]);
            }
        }
    }
    l->stop = true;
    pthread_mutex_unlock(&l->lock);
    wake(l);
    pthread_join(l->thread, NULL);
    l->running = false;
}

static void free_addr(void *value, void *payload)
{
    (void)payload;
    free(value);
}

void berth__listener_free(berth_server *srv)
{
    berth__listener *l = srv->listener;

    if (!l) {
        return;
    }
    if (l->running) {
        pthread_mutex_lock(&l->lock);
        l->stop = true;
        pthread_mutex_unlock(&l->lock);
        wake(l);
        pthread_join(l->thread, NULL);
    }
    for (size_t i = 0; l->conns && i < l->used; i++) {
        if (atomic_load(&l->conns[i].phase) == PHASE_SNIFF) {
            close(l->conns[i].fd);
        }
    }
    if (l->lfd >= 0) {
        close(l->lfd);
    }
    if (l->epfd >= 0) {
        close(l->epfd);
    }
    if (l->wake >= 0) {
        close(l->wake);
    }
    berth__htab_foreach(&l->addrs, free_addr, NULL);
    berth__htab_dispose(&l->addrs);
    free(l->conns);
    free(l->by_fd);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->idle);
    free(l);
    srv->listener = NULL;
}
