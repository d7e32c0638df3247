/* SPDX-License-Identifier: Apache-2.0 */
/*
 * berth serve: open the store and run the HTTP API until SIGINT or SIGTERM. The signals are
 * blocked before the server's threads start (so they inherit the mask) and taken with
 * sigwait() in the main thread, which then stops the daemon and closes the store.
 */
#include "cli/cli.h"

#include <berth/errors.h>
#include <berth/server.h>
#include <berth/store.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(f, "usage: berth serve [--listen ADDR:PORT] [--root DIR] [--threads N]\n"
               "                   [--max-connections N] [--timeout SECONDS] [--quiet]\n\n"
               "Run the registry (OCI Distribution Spec v1.1) until SIGINT or SIGTERM.\n\n"
               "  --listen ADDR:PORT     address to listen on (default 127.0.0.1:5000;\n"
               "                         IPv6 as [::1]:5000; port 0 picks a free port)\n"
               "  --root DIR             storage directory (default ./data)\n"
               "  --threads N            worker threads (default: number of cores)\n"
               "  --max-connections N    simultaneous connections (default 1024)\n"
               "  --timeout SECONDS      idle connection timeout (default 60)\n"
               "  --quiet                no access log on stderr\n"
               "  --config FILE          reserved; not supported yet\n");
}

static int parse_uint(unsigned *out, const char *s, unsigned max)
{
    uint64_t v;

    if (berth_parse_u64(&v, s, strlen(s), max) < 0) {
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

/* ADDR:PORT or [ADDR6]:PORT into `addr` (NUL-terminated) and `port`. */
static int parse_listen(char *addr, size_t addr_size, uint16_t *port, const char *s)
{
    const char *colon, *host = s;
    size_t host_len;
    unsigned p;

    colon = strrchr(s, ':');
    if (!colon || colon == s) {
        return -1;
    }
    host_len = (size_t)(colon - s);
    if (s[0] == '[') {
        if (host_len < 3 || s[host_len - 1] != ']') {
            return -1;
        }
        host = s + 1;
        host_len -= 2;
    }
    if (host_len >= addr_size || parse_uint(&p, colon + 1, 65535) < 0) {
        return -1;
    }
    memcpy(addr, host, host_len);
    addr[host_len] = '\0';
    *port = (uint16_t)p;
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    berth_server_options opts;
    berth_store *store = NULL;
    berth_server *srv = NULL;
    const char *root = "./data";
    char addr[64] = "127.0.0.1";
    sigset_t set;
    int sig, ret = 1, i;

    if (cli_wants_help(argc, argv)) {
        help(stdout);
        return 0;
    }
    berth_server_options_init(&opts);
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(arg, "--quiet") == 0) {
            opts.log = false;
            continue;
        }
        if (!val) {
            fprintf(stderr, "berth serve: unknown option or missing value: %s\n", arg);
            help(stderr);
            return 2;
        }
        i++;
        if (strcmp(arg, "--listen") == 0) {
            if (parse_listen(addr, sizeof(addr), &opts.port, val) < 0) {
                fprintf(stderr, "berth serve: --listen wants ADDR:PORT, got '%s'\n", val);
                return 2;
            }
        } else if (strcmp(arg, "--root") == 0) {
            root = val;
        } else if (strcmp(arg, "--threads") == 0) {
            if (parse_uint(&opts.threads, val, 1024) < 0 || opts.threads == 0) {
                fprintf(stderr, "berth serve: --threads wants 1 to 1024, got '%s'\n", val);
                return 2;
            }
        } else if (strcmp(arg, "--max-connections") == 0) {
            if (parse_uint(&opts.connection_limit, val, 1000000) < 0 ||
                opts.connection_limit == 0) {
                fprintf(stderr, "berth serve: --max-connections wants a positive number\n");
                return 2;
            }
        } else if (strcmp(arg, "--timeout") == 0) {
            if (parse_uint(&opts.connection_timeout, val, 86400) < 0 ||
                opts.connection_timeout == 0) {
                fprintf(stderr, "berth serve: --timeout wants 1 to 86400 seconds\n");
                return 2;
            }
        } else if (strcmp(arg, "--config") == 0) {
            fprintf(stderr, "berth serve: --config is not supported yet; use the options\n");
            return 2;
        } else {
            fprintf(stderr, "berth serve: unknown option: %s\n", arg);
            help(stderr);
            return 2;
        }
    }
    opts.listen_address = addr;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (berth_store_open(&store, root, NULL) < 0) {
        fprintf(stderr, "berth serve: %s\n", berth_error_last());
        goto out;
    }
    if (berth_server_start(&srv, store, &opts) < 0) {
        fprintf(stderr, "berth serve: %s\n", berth_error_last());
        goto out;
    }
    fprintf(stderr, "berth serve: listening on %s%s%s:%u, root %s\n", strchr(addr, ':') ? "[" : "",
            addr, strchr(addr, ':') ? "]" : "", (unsigned)berth_server_port(srv), root);
    if (sigwait(&set, &sig) != 0) {
        fprintf(stderr, "berth serve: sigwait failed\n");
        goto out;
    }
    fprintf(stderr, "berth serve: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    ret = 0;
out:
    berth_server_free(srv);
    berth_store_free(store);
    return ret;
}
