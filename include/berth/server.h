/* SPDX-License-Identifier: Apache-2.0 */
/* berth/server.h: the registry's HTTP API (OCI Distribution Spec v1.1) over a berth_store. */
#ifndef BERTH_SERVER_H
#define BERTH_SERVER_H

#include "common.h"
#include "config.h"
#include "store.h"

typedef struct berth_server berth_server;

typedef struct berth_server_options {
    const char *listen_address;       /* numeric IPv4 or IPv6 address (default "127.0.0.1") */
    uint16_t port;                    /* 0: any free port (see berth_server_port) */
    unsigned threads;                 /* worker threads (0: number of online cores) */
    unsigned connection_limit;        /* simultaneous connections; more wait in the listen backlog
                                          (0: berth_server_default_connection_limit()) */
    unsigned connection_timeout;      /* seconds a keep-alive connection may idle (0: 60) */
    unsigned header_timeout;          /* seconds to receive a request line and headers, and for a
                                          new connection to send its first request (0: 20) */
    unsigned read_timeout;            /* seconds without a request body byte (0: 60) */
    unsigned write_timeout;           /* seconds without a response byte sent (0: 300) */
    unsigned connections_per_address; /* connections one client address may hold; more are
                                          answered 503 (0: no cap) */
    unsigned drain_timeout_ms;        /* at stop, how long requests in flight may finish before
                                          they are cut, ms (0: cut at once) */
    size_t connection_memory;         /* per-connection buffer memory, bytes (0: 32 KiB; MHD clears
                                          it per request, more costs GET speed, less upload speed) */
    size_t manifest_max;              /* largest manifest body accepted, bytes
                                          (0: BERTH_MANIFEST_MAX_DEFAULT) */
    bool log;                         /* one access-log line per request on stderr (default on) */
    const berth_config *config;       /* NULL: an open registry without auth, limits, TLS or gc;
                                          otherwise borrowed, must outlive the server: auth, access
                                          rules, rate and size limits, TLS, online gc, log format.
                                          The fields above still govern listen/threads/timeouts. */
} berth_server_options;

/**
 * The connection limit that follows from the process's file-descriptor limit (RLIMIT_NOFILE):
 * half of it less a reserve for the store (a connection may hold its socket and a blob being
 * sent), at most 65536. Raise the descriptor limit first to get more.
 */
unsigned berth_server_default_connection_limit(void);

/** Fill `opts` with the defaults (127.0.0.1, port 5000, logging on, zeros elsewhere). */
void berth_server_options_init(berth_server_options *opts);

/**
 * Start serving `store` in background threads; returns once the socket listens.
 * @param out    receives the server; stop and free it with berth_server_free()
 * @param store  borrowed: must outlive the server
 * @param opts   NULL for the defaults. With opts->config, the htpasswd file, token key and TLS
 *               files are loaded here, so a bad file fails the start.
 * @return 0; BERTH_EINVALID (bad address); BERTH_EIO (cannot listen, message says why);
 *         BERTH_ENOMEM
 */
int berth_server_start(berth_server **out, berth_store *store, const berth_server_options *opts);

/** The port the server listens on (useful when started with port 0). */
uint16_t berth_server_port(const berth_server *srv);

/**
 * Stop accepting (clients waiting in the backlog are refused), close idle connections, let
 * requests in flight finish for up to opts.drain_timeout_ms, then cut what is left; returns
 * once every connection is closed. Calling it twice is fine. The server must still be freed.
 */
void berth_server_stop(berth_server *srv);

/** Stop (if needed) and free the server; NULL is fine. The store is not freed. */
void berth_server_free(berth_server *srv);

#endif
