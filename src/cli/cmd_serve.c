/* SPDX-License-Identifier: Apache-2.0 */
/*
 * berth serve: open the store and run the HTTP API until SIGINT or SIGTERM. The signals are
 * blocked before the server's threads start (so they inherit the mask) and taken with
 * sigwait() in the main thread, which then stops the daemon and closes the store.
 */
#include "cli/cli.h"

#include <berth/config.h>
#include <berth/errors.h>
#include <berth/log.h>
#include <berth/server.h>
#include <berth/store.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(
        f, "usage: berth serve [--config FILE] [--print-config] [--listen ADDR:PORT] [--root DIR]\n"
           "                   [--threads N] [--max-connections N] [--timeout DURATION]\n"
           "                   [--gc-interval DURATION] [--read-only] [--no-deletes] [--quiet]\n\n"
           "Run the registry (OCI Distribution Spec v1.1) until SIGINT or SIGTERM.\n\n"
           "  --config FILE          YAML configuration (keys: docs/operations.md): auth,\n"
           "                         access rules, TLS, limits, log format, online gc\n"
           "  --print-config         print the effective configuration as YAML and exit;\n"
           "                         passwords (database.url, URLs) print as ****: the output\n"
           "                         loads back, but put the password back before use\n"
           "  --listen ADDR:PORT     address to listen on (default 127.0.0.1:5000;\n"
           "                         IPv6 as [::1]:5000; port 0 picks a free port)  [listen]\n"
           "  --root DIR             storage directory (default ./data)  [root]\n"
           "  --threads N            worker threads (default 0: one per core)  [threads]\n"
           "  --max-connections N    simultaneous connections; more wait in the listen backlog\n"
           "                         (default: from the file-descriptor limit)  [max_connections]\n"
           "  --timeout DURATION     idle keep-alive connection timeout, 1s to 1d\n"
           "                         (default 2m)  [timeouts.idle]\n"
           "  --gc-interval DURATION run garbage collection every DURATION (default 1h;\n"
           "                         0 = never)  [gc.interval]\n"
           "  --read-only            maintenance mode: pulls only; pushes and deletes are\n"
           "                         refused with 405 UNSUPPORTED, gc removes nothing\n"
           "                         [storage.read_only]\n"
           "  --no-deletes           refuse DELETE with 405 UNSUPPORTED; gc removes no tag\n"
           "                         and no manifest (retention, gc.untagged_delay), only\n"
           "                         unreferenced blobs  [storage.delete_enabled]\n"
           "  --quiet                no access log on stderr  [log.level: warn]\n\n"
           "A DURATION is digits with an optional unit s, m, h or d (none = seconds): 0, 30s,\n"
           "5m, 12h, 7d; a SIZE digits with B, KiB, MiB, GiB, TiB, KB, MB, GB or TB (none =\n"
           "bytes): the same in the file, the environment and every option.\n"
           "Precedence: defaults < FILE < environment (BERTH_<KEY>, e.g. BERTH_LISTEN,\n"
           "BERTH_LIMITS_BODY_SIZE) < options. Endpoints besides /v2/: /healthz, /readyz,\n"
           "/metrics (Prometheus) and /token (with auth.token.private_key). An invalid\n"
           "configuration (also a file it names that cannot be read) exits with status 2 and\n"
           "a message naming where the setting was made (FILE:LINE:COL, BERTH_<KEY>, --option).\n");
}

/* A message of `berth serve` before the server runs: in the log's format once it is known. */
static void say(const char *fmt, ...) BERTH_PRINTF(1, 2);

static void say(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (berth_log_json()) {
        berth_log(BERTH_LOG_ERROR, "berth serve: %s", msg);
    } else {
        fprintf(stderr, "berth serve: %s\n", msg);
    }
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

/* The listen value of the configuration into the server options; an invalid one is a
 * configuration error with its place ("berth.yaml:1:9: listen: ...", "BERTH_LISTEN: ..."). */
static int listen_options(berth_server_options *opts, char *addr, size_t addr_size,
                          const berth_config *cfg)
{
    const char *where = berth_config_origin(cfg, "listen");

    if (parse_listen(addr, addr_size, &opts->port, cfg->listen) < 0) {
        say("%s%slisten: wants ADDR:PORT (port 0 to 65535), got '%s'", where ? where : "",
            where ? ": " : "", cfg->listen);
        return -1;
    }
    opts->listen_address = addr;
    return 0;
}

/* A flag that maps onto a configuration key: check it like the flag always did, then set it. */
static int flag_to_key(berth_config *cfg, const char *arg, const char *val)
{
    static const struct {
        const char *flag, *key;
        bool duration;
        unsigned min, max;
    } flags[] = {
        {"--listen", "listen", false, 0, 0},
        {"--root", "root", false, 0, 0},
        {"--threads", "threads", false, 0, 1024},
        {"--max-connections", "max_connections", false, 1, 1000000},
        {"--timeout", "timeouts.idle", true, 1, 86400},
        {"--gc-interval", "gc.interval", true, 0, 0},
    };
    uint64_t d;
    unsigned v;

    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        if (strcmp(arg, flags[i].flag) != 0) {
            continue;
        }
        if (flags[i].duration) {
            if (berth_parse_duration(&d, val) < 0) {
                say("%s: %s", arg, berth_error_last());
                return -1;
            }
            if (flags[i].max && (d < flags[i].min || d > flags[i].max)) {
                say("%s: wants %us to %us, got '%s'", arg, flags[i].min, flags[i].max, val);
                return -1;
            }
        } else if (flags[i].max && (parse_uint(&v, val, flags[i].max) < 0 || v < flags[i].min)) {
            say("%s wants %u to %u, got '%s'", arg, flags[i].min, flags[i].max, val);
            return -1;
        }
        if (strcmp(arg, "--listen") == 0) {
            char addr[64];
            uint16_t port;
            if (parse_listen(addr, sizeof(addr), &port, val) < 0) {
                say("--listen wants ADDR:PORT, got '%s'", val);
                return -1;
            }
        }
        if (berth_config_set_at(cfg, flags[i].key, val, arg) < 0) {
            say("%s", berth_error_last());
            return -1;
        }
        return 0;
    }
    say("unknown option: %s", arg);
    help(stderr);
    return -1;
}

/* The options that take no value. */
static bool bare_flag(const char *arg)
{
    return strcmp(arg, "--print-config") == 0 || strcmp(arg, "--quiet") == 0 ||
           strcmp(arg, "--read-only") == 0 || strcmp(arg, "--no-deletes") == 0;
}

static unsigned clamp_seconds(uint64_t s)
{
    return (unsigned)(s < 86400 ? s : 86400);
}

/* Raise the soft descriptor limit to the hard one: the default connection limit follows it. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static volatile sig_atomic_t second_signal;

/* After the first SIGINT/SIGTERM started the drain, a second one exits at once. */
static void exit_now(int sig)
{
    second_signal = sig;
    _exit(128 + sig);
}

int cmd_serve(int argc, char **argv)
{
    berth_server_options opts;
    berth_store_options sopts;
    berth_config *cfg = NULL;
    berth_store *store = NULL;
    berth_server *srv = NULL;
    berth_buf sparse = BERTH_BUF_INIT;
    const char *config_path = NULL;
    char *created = NULL; /* what opening the store creates: removed if the server fails */
    bool print = false, quiet = false;
    char addr[64] = "127.0.0.1";
    sigset_t set;
    int sig, ret = 2, i, rc;

    if (cli_wants_help(argc, argv)) {
        help(stdout);
        return 0;
    }
    /* the file first, whatever the order of the options: flags override it */
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "berth serve: --config wants a FILE\n");
                return 2;
            }
            config_path = argv[++i];
        } else if (strcmp(argv[i], "--print-config") == 0) {
            print = true;
        } else if (strcmp(argv[i], "--quiet") == 0) {
            quiet = true;
        } else if (bare_flag(argv[i])) {
            continue;
        } else if (argv[i][0] == '-' && i + 1 < argc) {
            i++;
        }
    }
    if (berth_config_new(&cfg) < 0) {
        fprintf(stderr, "berth serve: %s\n", berth_error_last());
        return 1;
    }
    if (config_path && berth_config_load_file(cfg, config_path) < 0) {
        fprintf(stderr, "berth serve: %s\n", berth_error_last());
        goto out;
    }
    if (berth_config_apply_env(cfg, NULL) < 0) {
        fprintf(stderr, "berth serve: %s\n", berth_error_last());
        goto out;
    }
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (strcmp(arg, "--read-only") == 0 || strcmp(arg, "--no-deletes") == 0) {
            bool ro = arg[2] == 'r';
            if (berth_config_set_at(cfg, ro ? "storage.read_only" : "storage.delete_enabled",
                                    ro ? "true" : "false", arg) < 0) {
                say("%s", berth_error_last());
                goto out;
            }
            continue;
        }
        if (bare_flag(arg)) {
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "berth serve: unknown option or missing value: %s\n", arg);
            help(stderr);
            goto out;
        }
        i++;
        if (strcmp(arg, "--config") == 0) {
            continue;
        }
        if (flag_to_key(cfg, arg, argv[i]) < 0) {
            goto out;
        }
    }
    if (quiet && cfg->log.level > 1 &&
        berth_config_set_at(cfg, "log.level", "warn", "--quiet") < 0) {
        say("%s", berth_error_last());
        goto out;
    }
    /* from here on every line is in the configured format */
    berth_log_configure((berth_log_level)cfg->log.level, cfg->log.format == BERTH_CONFIG_LOG_JSON);
    if (berth_config_validate(cfg) < 0 || (!print && berth_config_check_files(cfg) < 0)) {
        say("%s", berth_error_last());
        goto out;
    }
    berth_server_options_init(&opts);
    if (listen_options(&opts, addr, sizeof(addr), cfg) < 0) {
        goto out; /* checked by --print-config as well */
    }
    raise_fd_limit();
    if (cfg->max_connections == 0) {
        char n[24];
        snprintf(n, sizeof(n), "%u", berth_server_default_connection_limit());
        if (berth_config_set(cfg, "max_connections", n) < 0) {
            say("%s", berth_error_last());
            goto out;
        }
    }
    if (print) {
        ret = berth_config_print(cfg, stdout) < 0 || fflush(stdout) != 0 ? 1 : 0;
        goto out;
    }

    opts.threads = (unsigned)cfg->threads;
    opts.connection_limit =
        (unsigned)(cfg->max_connections < 1000000 ? cfg->max_connections : 1000000);
    opts.connection_timeout = clamp_seconds(cfg->timeouts.idle);
    opts.header_timeout = clamp_seconds(cfg->timeouts.header);
    opts.read_timeout = clamp_seconds(cfg->timeouts.read);
    opts.write_timeout = clamp_seconds(cfg->timeouts.write);
    opts.drain_timeout_ms = clamp_seconds(cfg->timeouts.drain) * 1000u;
    opts.connections_per_address = (unsigned)(cfg->limits.connections_per_address < 1000000
                                                  ? cfg->limits.connections_per_address
                                                  : 1000000);
    opts.manifest_max = (size_t)cfg->limits.manifest_size;
    opts.log = cfg->log.level >= 2;
    opts.config = cfg;
    ret = 1;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
#ifdef __GLIBC__
    /* manifest bodies and their parses reach megabytes: served from mmap and returned on free.
       glibc's default threshold rises to the largest block freed, after which such blocks
       stay in the arenas of every worker thread and the server's RSS keeps them */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif

    /* one limit for every layer that enforces it: the server refuses early, the store on PUT */
    berth_store_options_init(&sopts);
    sopts.manifest_max = opts.manifest_max;
    sopts.sparse_repositories = cfg->sparse_manifests;
    sopts.upload_ttl_seconds = (unsigned)cfg->limits.upload_idle_ttl; /* validated: fits */
    sopts.upload_sessions_max = (size_t)cfg->limits.upload_sessions;
    sopts.upload_sessions_per_repo = (size_t)cfg->limits.upload_sessions_per_repository;
    sopts.upload_sessions_per_owner = (size_t)cfg->limits.upload_sessions_per_client;
    /* pull-through cache: content is fetched when pulled, so PREFIX/ is sparse (proxy.c) */
    for (size_t u = 0; u < cfg->proxy.upstreams_count; u++) {
        if ((sparse.len == 0 && cfg->sparse_manifests &&
             berth_buf_printf(&sparse, "%s,", cfg->sparse_manifests) < 0) ||
            berth_buf_printf(&sparse, "%s/*,", cfg->proxy.upstreams[u].prefix) < 0) {
            fprintf(stderr, "berth serve: out of memory\n");
            goto out;
        }
        sopts.sparse_repositories = sparse.ptr;
    }
    /* a new root stays only once the server runs (not after a failed bind) */
    created = cfg->storage.s3.bucket ? NULL : cli_root_missing(cfg->root);
    if (berth_store_open_config(&store, cfg, &sopts) < 0) {
        say("%s", berth_error_last());
        goto out;
    }
    if ((rc = berth_server_start(&srv, store, &opts)) < 0) {
        say("%s", berth_error_last());
        if (created) {
            cli_root_remove(created); /* while the store's lock is ours */
        }
        if (rc == BERTH_EINVALID) {
            ret = 2; /* what a file of the configuration holds (a certificate, htpasswd) */
        }
        goto out;
    }
    berth_log(BERTH_LOG_NOTICE, "berth serve: listening on %s://%s%s%s:%u, %s %s%s%s%s%s",
              cfg->tls.cert ? "https" : "http", strchr(addr, ':') ? "[" : "", addr,
              strchr(addr, ':') ? "]" : "", (unsigned)berth_server_port(srv),
              cfg->storage.s3.bucket ? "bucket" : "root",
              cfg->storage.s3.bucket ? cfg->storage.s3.bucket : cfg->root,
              cfg->auth.htpasswd || cfg->auth.token.realm ? ", auth on" : "",
              cfg->gc.interval ? ", online gc on" : "", cfg->storage.read_only ? ", read-only" : "",
              !cfg->storage.read_only && !cfg->storage.delete_enabled ? ", deletes off" : "");
    if (cfg->ui.enabled) {
        berth_log(BERTH_LOG_NOTICE, "berth serve: web UI at %s://%s%s%s:%u/ui/",
                  cfg->tls.cert ? "https" : "http", strchr(addr, ':') ? "[" : "", addr,
                  strchr(addr, ':') ? "]" : "", (unsigned)berth_server_port(srv));
    }
    if (sigwait(&set, &sig) != 0) {
        berth_log(BERTH_LOG_ERROR, "berth serve: sigwait failed");
        goto out;
    }
    berth_log(BERTH_LOG_NOTICE,
              "berth serve: %s, shutting down (draining for up to %us; signal again to exit now)",
              sig == SIGINT ? "SIGINT" : "SIGTERM", opts.drain_timeout_ms / 1000);
    signal(SIGINT, exit_now);
    signal(SIGTERM, exit_now);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    berth_server_stop(srv);
    ret = 0;
out:
    berth_server_free(srv);
    berth_store_free(store);
    free(created);
    berth_config_free(cfg);
    berth_buf_dispose(&sparse);
    return ret;
}
