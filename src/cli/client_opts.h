/* SPDX-License-Identifier: Apache-2.0 */
/* Options shared by the client commands (copy, inspect, tags, catalog, delete). */
#ifndef BERTH_CLI_CLIENT_OPTS_H
#define BERTH_CLI_CLIENT_OPTS_H

#include <berth/client.h>

typedef struct cli_client_opts {
    const char *user;
    const char *password;
    bool password_stdin;
    bool plain_http;
    int tls_verify;       /* BERTH_TLS_VERIFY_* */
    const char *cert_dir; /* --cert-dir */
    const char *authfile; /* --authfile */
    bool verbose;
    bool quiet;
    char *stdin_password; /* owned */
} cli_client_opts;

#define CLI_CLIENT_OPTS_HELP                                                                       \
    "  --user U --password P   credentials (default: the auth files, see berth login --help)\n"    \
    "  --password-stdin        read the password from standard input\n"                            \
    "  --authfile FILE         read credentials from FILE alone (also REGISTRY_AUTH_FILE)\n"       \
    "  --cert-dir DIR          CAs (*.crt) and a client certificate (*.cert, *.key) for TLS\n"     \
    "                          (default: certs.d/HOST:PORT of containers and docker)\n"            \
    "  --tls-verify=BOOL       false: do not verify certificates (the registry's and its\n"        \
    "                          token server's, as podman), and allow plain HTTP;\n"                \
    "                          true: HTTPS verified, never plain HTTP (default: verify;\n"         \
    "                          plain HTTP only for loopback and registries.conf insecure)\n"       \
    "                          Credentials go only to the registry itself (its scheme,\n"          \
    "                          host, port) and its token server (HTTPS or loopback).\n"            \
    "  --plain-http            plain HTTP for every registry, without trying HTTPS\n"              \
    "  --verbose               log each request and step to stderr\n"                              \
    "  --quiet                 print nothing but errors\n"

/**
 * Take argv[*i] if it is one of the shared options (advancing *i past its value).
 * @return 1 taken, 0 not a shared option, -1 usage error (message printed)
 */
int cli_client_opt(cli_client_opts *o, const char *cmd, int argc, char **argv, int *i);

/**
 * Parse a command line of shared options and exactly one argument (tags, catalog, delete).
 * @param arg_out  receives the argument (borrowed from argv)
 * @return 0, or -1 after printing what is wrong (a usage error)
 */
int cli_client_one_arg(cli_client_opts *o, const char *cmd, int argc, char **argv,
                       const char **arg_out);

/** Make a client from the options. @return 0, or -1 with the error printed */
int cli_client_open(berth_client **out, cli_client_opts *o, const char *cmd);

/**
 * Read a password from standard input as docker and podman do: all of it (up to 64 KiB; a
 * registry token may be several KiB), less one trailing newline (LF or CRLF).
 * @return a malloc'ed string, or NULL (message printed: too long, or out of memory)
 */
char *cli_read_password_stdin(const char *cmd);

/** Free what the options hold. */
void cli_client_opts_dispose(cli_client_opts *o);

/** Print "berth CMD: <last error>" to stderr. */
void cli_client_fail(const char *cmd);

#endif
