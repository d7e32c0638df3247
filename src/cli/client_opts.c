/* SPDX-License-Identifier: Apache-2.0 */
/* The options every client command shares, and opening a client from them. */
#include "cli/client_opts.h"

#include <berth/errors.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_client_opt(cli_client_opts *o, const char *cmd, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (strcmp(a, "--user") == 0 || strcmp(a, "-u") == 0 || strcmp(a, "--password") == 0 ||
        strcmp(a, "-p") == 0) {
        if (*i + 1 >= argc) {
            fprintf(stderr, "berth %s: %s needs a value\n", cmd, a);
            return -1;
        }
        if (a[2] == 'u' || a[1] == 'u') {
            o->user = argv[++*i];
        } else {
            o->password = argv[++*i];
        }
        return 1;
    }
    if (strcmp(a, "--cert-dir") == 0 || strcmp(a, "--authfile") == 0) {
        if (*i + 1 >= argc) {
            fprintf(stderr, "berth %s: %s needs a value\n", cmd, a);
            return -1;
        }
        if (a[2] == 'c') {
            o->cert_dir = argv[++*i];
        } else {
            o->authfile = argv[++*i];
        }
        return 1;
    }
    if (strncmp(a, "--tls-verify", 12) == 0 && (a[12] == '\0' || a[12] == '=')) {
        /* --tls-verify, --tls-verify=BOOL or --tls-verify BOOL (as podman takes it) */
        const char *v = a[12] == '=' ? a + 13 : NULL;
        if (!v && *i + 1 < argc &&
            (strcmp(argv[*i + 1], "true") == 0 || strcmp(argv[*i + 1], "false") == 0)) {
            v = argv[++*i];
        }
        if (!v || strcmp(v, "true") == 0) {
            o->tls_verify = BERTH_TLS_VERIFY_ON;
        } else if (strcmp(v, "false") == 0) {
            o->tls_verify = BERTH_TLS_VERIFY_OFF;
        } else {
            fprintf(stderr, "berth %s: --tls-verify wants true or false, not '%s'\n", cmd, v);
            return -1;
        }
        return 1;
    }
    if (strcmp(a, "--password-stdin") == 0) {
        o->password_stdin = true;
    } else if (strcmp(a, "--plain-http") == 0) {
        o->plain_http = true;
    } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
        o->verbose = true;
    } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
        o->quiet = true;
    } else {
        return 0;
    }
    return 1;
}

char *cli_read_password_stdin(const char *cmd)
{
    enum { PASSWORD_MAX = 64 * 1024 };
    char *buf = malloc(PASSWORD_MAX + 1);
    size_t n = 0, got;

    if (!buf) {
        fprintf(stderr, "berth %s: out of memory\n", cmd);
        return NULL;
    }
    while (n <= PASSWORD_MAX && (got = fread(buf + n, 1, PASSWORD_MAX + 1 - n, stdin)) > 0) {
        n += got;
    }
    if (n > PASSWORD_MAX) {
        fprintf(stderr, "berth %s: the password on standard input is over 64 KiB\n", cmd);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (n && buf[n - 1] == '\n') {
        buf[--n] = '\0';
        if (n && buf[n - 1] == '\r') {
            buf[--n] = '\0';
        }
    }
    return buf;
}

int cli_client_open(berth_client **out, cli_client_opts *o, const char *cmd)
{
    berth_client_options opts = {0};

    if (o->password_stdin) {
        if (o->password) {
            fprintf(stderr, "berth %s: --password and --password-stdin exclude each other\n", cmd);
            return -1;
        }
        if (!(o->stdin_password = cli_read_password_stdin(cmd))) {
            return -1;
        }
        o->password = o->stdin_password;
    }
    if (o->password && !o->user) {
        fprintf(stderr, "berth %s: a password needs --user\n", cmd);
        return -1;
    }
    opts.username = o->user;
    opts.password = o->password;
    opts.plain_http = o->plain_http;
    opts.tls_verify = o->tls_verify;
    opts.cert_dir = o->cert_dir;
    opts.docker_config = o->authfile;
    opts.verbose = o->verbose;
    if (berth_client_new(out, &opts) < 0) {
        cli_client_fail(cmd);
        return -1;
    }
    return 0;
}

void cli_client_opts_dispose(cli_client_opts *o)
{
    free(o->stdin_password);
    o->stdin_password = NULL;
}

void cli_client_fail(const char *cmd)
{
    const char *m = berth_error_last();
    fprintf(stderr, "berth %s: %s\n", cmd, *m ? m : "failed");
}

int cli_client_one_arg(cli_client_opts *o, const char *cmd, int argc, char **argv,
                       const char **arg_out)
{
    const char *arg = NULL;

    for (int i = 1; i < argc; i++) {
        int k = cli_client_opt(o, cmd, argc, argv, &i);
        if (k < 0) {
            return -1;
        }
        if (k == 1) {
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "berth %s: unknown option %s\n", cmd, argv[i]);
            return -1;
        }
        if (arg) {
            fprintf(stderr, "berth %s: too many arguments\n", cmd);
            return -1;
        }
        arg = argv[i];
    }
    *arg_out = arg;
    return 0;
}
