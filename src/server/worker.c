/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The workers: each a thread of berth's own that runs one libmicrohttpd daemon in its external
 * epoll mode. The listener queues each new connection to a worker and wakes it (an eventfd);
 * the worker adds the queued connections to its daemon from the daemon's own thread and then
 * lets it process whatever is ready. The thread waits in an epoll of two descriptors: the
 * daemon's own epoll descriptor and the eventfd.
 *
 * Why not libmicrohttpd's own waiting: under heavy connection churn, 0.9.75's blocking epoll
 * wait (its internal threads, fed by MHD_add_connection() from another thread, and also
 * MHD_run_wait() in this loop) was seen to leave a whole worker's connections unserved, in
 * CLOSE-WAIT, until their idle timeout: the slot leak behind the old collapse under load. Its
 * poll loop does not lose them but costs a poll(2) over every connection per wake-up. Waiting
 * here and calling the non-blocking MHD_run(), with connections added from this thread, has
 * lost none in the overload tests.
 */
#include "server/server_internal.h"

#include "base/log.h"

#include <berth/errors.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* What woke a worker. */
enum { DAEMON = 1, WAKE = 2 };

/* The longest a worker sleeps without looking at its daemon's timeouts, milliseconds. */
#define WORKER_TICK_MS 1000

int berth__worker_hand(berth__worker *w, berth__conn *c, int fd,
                       const struct sockaddr_storage *addr, socklen_t addrlen)
{
    uint64_t one = 1;
    ssize_t n;

    pthread_mutex_lock(&w->lock);
    if (w->queued == w->qcap || w->stop) {
        pthread_mutex_unlock(&w->lock);
        return BERTH_EBUSY;
    }
    w->queue[w->queued].conn = c;
    w->queue[w->queued].fd = fd;
    w->queue[w->queued].addrlen = addrlen;
    memcpy(&w->queue[w->queued].addr, addr, addrlen);
    w->queued++;
    pthread_mutex_unlock(&w->lock);
    n = write(w->wake, &one, sizeof(one));
    (void)n;
    return 0;
}

/* Add the queued connections to the daemon (the worker's thread). @return whether to stop */
static bool take_queue(berth__worker *w)
{
    berth__handoff batch[64];
    size_t n, i;
    bool stop;

    do {
        pthread_mutex_lock(&w->lock);
        n = w->queued < 64 ? w->queued : 64;
        memcpy(batch, w->queue + (w->queued - n), n * sizeof(batch[0]));
        w->queued -= n;
        stop = w->stop;
        pthread_mutex_unlock(&w->lock);
        for (i = 0; i < n; i++) {
            if (stop ||
                MHD_add_connection(w->daemon, batch[i].fd, (const struct sockaddr *)&batch[i].addr,
                                   batch[i].addrlen) != MHD_YES) {
                /* MHD closed the socket (or we do, stopping): give the slot back */
                if (stop) {
                    close(batch[i].fd);
                }
                berth__conn_refused(w->srv, batch[i].conn);
            }
        }
    } while (n == 64);
    return stop;
}

static void *worker_main(void *arg)
{
    berth__worker *w = arg;
    struct epoll_event ev[2];
    sigset_t pipe;

    /* a client gone mid-response is an EPIPE, never a signal: so libmicrohttpd may send blob
       bodies with sendfile(2), which cannot take MSG_NOSIGNAL (MHD_OPTION_SIGPIPE_HANDLED_BY_APP)
     */
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    berth__access_log_buffer(true);

    for (;;) {
        MHD_UNSIGNED_LONG_LONG next;
        int timeout = WORKER_TICK_MS;
        uint64_t v;
        ssize_t r;
        int n;

        if (MHD_get_timeout(w->daemon, &next) == MHD_YES && next < WORKER_TICK_MS) {
            timeout = (int)next;
        }
        n = epoll_wait(w->ep, ev, 2, timeout);
        if (n < 0 && errno != EINTR) {
            berth__log(BERTH_LOG_ERROR, "worker epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u32 == WAKE) {
                r = read(w->wake, &v, sizeof(v));
                (void)r;
                if (take_queue(w)) {
                    berth__access_log_buffer(false);
                    return NULL;
                }
            }
        }
        MHD_run(w->daemon);
        berth__access_log_flush(); /* the lines of this pass, in one write */
    }
    return NULL;
}

int berth__worker_start(berth__worker *w)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(w->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    struct epoll_event ev;

    pthread_mutex_init(&w->lock, NULL);
    w->ep = w->wake = -1;
    /* the listener never holds more than the connection limit, so this queue never fills */
    w->qcap = w->srv->opts.connection_limit;
    if (!(w->queue = calloc(w->qcap, sizeof(*w->queue)))) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if (!info || (w->ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        (w->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        return berth_error_set(BERTH_EIO, "worker: %s", strerror(errno));
    }
    ev.events = EPOLLIN;
    ev.data.u32 = DAEMON;
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, info->epoll_fd, &ev) < 0) {
        return berth_error_set(BERTH_EIO, "worker epoll: %s", strerror(errno));
    }
    ev.data.u32 = WAKE;
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wake, &ev) < 0) {
        return berth_error_set(BERTH_EIO, "worker epoll: %s", strerror(errno));
    }
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        return berth_error_set(BERTH_EIO, "cannot start a worker thread");
    }
    w->running = true;
    return 0;
}

void berth__worker_stop(berth__worker *w)
{
    uint64_t one = 1;
    ssize_t n;

    if (w->running) {
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_mutex_unlock(&w->lock);
        n = write(w->wake, &one, sizeof(one));
        (void)n;
        pthread_join(w->thread, NULL);
        w->running = false;
        take_queue(w); /* connections queued after the last look */
    }
    if (w->ep >= 0) {
        close(w->ep);
        w->ep = -1;
    }
    if (w->wake >= 0) {
        close(w->wake);
        w->wake = -1;
    }
    free(w->queue);
    w->queue = NULL;
}
