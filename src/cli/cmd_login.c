/* SPDX-License-Identifier: Apache-2.0 */
/* berth login / berth logout: credentials in the auth file podman and skopeo read. */
#include "cli/cli.h"
#include "cli/client_opts.h"

#include <berth/errors.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static const char login_help[] =
    "usage: berth login [options] HOST[:PORT]\n"
    "\n"
    "Check credentials against the registry's /v2/ and store them in an auth file, as\n"
    "podman login does ({\"auths\": {\"HOST\": {\"auth\": base64(user:password)}}}, mode 0600).\n"
    "The file: --authfile, else REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json,\n"
    "else ${XDG_CONFIG_HOME:-~/.config}/containers/auth.json. Every berth command (and podman,\n"
    "skopeo, buildah) reads it.\n"
    "\n"
    "  --username U, -u U      the user name (asked for on a terminal when missing)\n"
    "  --password P, -p P      the password (visible to other users of the machine: prefer\n"
    "                          --password-stdin)\n"
    "  --password-stdin        read the password from standard input\n"
    "  --authfile FILE         write FILE\n"
    "  --cert-dir DIR, --tls-verify=BOOL, --plain-http, --verbose: as for berth copy\n"
    "\n"
    "Exit status: 0 logged in; 1 refused (wrong credentials) or the registry or the file\n"
    "failed; 2 usage error.\n";

static const char logout_help[] =
    "usage: berth logout [--authfile FILE] HOST[:PORT]\n"
    "       berth logout [--authfile FILE] --all\n"
    "\n"
    "Remove the credentials of HOST (or, with --all, of every registry) from the auth file\n"
    "berth login writes (see berth login --help); the file's other members stay.\n"
    "Exit status: 0 removed; 1 not logged in to HOST, or the file failed; 2 usage error.\n";

/* "https://host:port/x" or "docker://host/x" -> "host:port" (free()), NULL when out of memory. */
static char *registry_of(const char *arg)
{
    static const char *const prefixes[] = {"https://", "http://", "docker://"};
    char *r;
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(arg, prefixes[i], n) == 0) {
            arg += n;
            break;
        }
    }
    if (!(r = strdup(arg))) {
        return NULL;
    }
    r[strcspn(r, "/")] = '\0';
    return r;
}

/* A line from the terminal, echoed or not. NULL when there is no terminal. */
static char *ask(const char *prompt, bool echo)
{
    FILE *tty = fopen("/dev/tty", "r+");
    struct termios old, quiet;
    char line[4096];
    bool restored = true;
    char *r = NULL;

    if (!tty) {
        return NULL;
    }
    fputs(prompt, tty);
    fflush(tty);
    if (!echo && tcgetattr(fileno(tty), &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        restored = tcsetattr(fileno(tty), TCSAFLUSH, &quiet) != 0;
    }
    if (fgets(line, sizeof(line), tty)) {
        line[strcspn(line, "\r\n")] = '\0';
        r = strdup(line);
    }
    if (!restored) {
        tcsetattr(fileno(tty), TCSAFLUSH, &old);
        fputs("\n", tty);
    }
    fclose(tty);
    return r;
}

int cmd_login(int argc, char **argv)
{
    cli_client_opts co = {0};
    berth_client_options opts = {0};
    berth_client *c = NULL;
    berth_buf path = BERTH_BUF_INIT;
    char *registry = NULL, *asked_user = NULL, *asked_pass = NULL;
    const char *host = NULL;
    int ret = 2, rc;

    if (cli_wants_help(argc, argv)) {
        fputs(login_help, stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--username") == 0) {
            argv[i] = "--user"; /* the shared option's spelling */
        }
        int k = cli_client_opt(&co, "login", argc, argv, &i);
        if (k < 0) {
            goto out;
        }
        if (k == 1) {
            continue;
        }
        if (argv[i][0] == '-' || host) {
            fprintf(stderr, "berth login: %s %s\n",
                    argv[i][0] == '-' ? "unknown option" : "too many arguments:", argv[i]);
            goto out;
        }
        host = argv[i];
    }
    if (!host || !(registry = registry_of(host)) || !*registry) {
        fputs(login_help, stderr);
        goto out;
    }
    if (co.password_stdin && co.password) {
        fprintf(stderr, "berth login: --password and --password-stdin exclude each other\n");
        goto out;
    }
    if (!co.user) {
        if (co.password_stdin || !(asked_user = ask("Username: ", true)) || !*asked_user) {
            fprintf(stderr, "berth login: no user name (--username)\n");
            goto out;
        }
        co.user = asked_user;
    }
    if (co.password_stdin) {
        if (!(co.password = co.stdin_password = cli_read_password_stdin("login"))) {
            goto out;
        }
    } else if (!co.password) {
        if (!(asked_pass = ask("Password: ", false))) {
            fprintf(stderr, "berth login: no password (--password-stdin)\n");
            goto out;
        }
        co.password = asked_pass;
    }
    ret = 1;
    opts.username = co.user;
    opts.password = co.password ? co.password : "";
    opts.plain_http = co.plain_http;
    opts.tls_verify = co.tls_verify;
    opts.cert_dir = co.cert_dir;
    opts.verbose = co.verbose;
    if (berth_client_new(&c, &opts) < 0) {
        cli_client_fail("login");
        goto out;
    }
    rc = berth_client_ping(c, registry);
    if (rc == BERTH_EUNAUTHORIZED || rc == BERTH_EDENIED) {
        fprintf(stderr, "berth login: %s refused the credentials of %s (%s)\n", registry, co.user,
                berth_error_last());
        goto out;
    }
    if (rc < 0) {
        cli_client_fail("login");
        goto out;
    }
    if (berth_auth_file_path(&path, co.authfile) < 0 ||
        berth_auth_file_update(path.ptr, registry, co.user, co.password) < 0) {
        cli_client_fail("login");
        goto out;
    }
    if (!co.quiet) {
        printf("Login Succeeded!\n");
    }
    ret = 0;
out:
    berth_client_free(c);
    berth_buf_dispose(&path);
    free(registry);
    free(asked_user);
    if (asked_pass) {
        memset(asked_pass, 0, strlen(asked_pass));
    }
    free(asked_pass);
    cli_client_opts_dispose(&co);
    return ret;
}

/* After a logout of `registry` from `path`: say so when berth still finds credentials for it
 * elsewhere in the lookup order (docker's config.json, a credential helper), as podman does. */
static void warn_other_source(const char *registry, const char *authfile, const char *path)
{
    char *user = NULL, *pass = NULL, *source = NULL;

    if (!registry || authfile || getenv("REGISTRY_AUTH_FILE")) {
        return; /* one file named: that is all berth reads */
    }
    if (berth_auth_lookup(&user, &pass, &source, NULL, registry) == 0 && source &&
        strcmp(source, path) != 0) {
        fprintf(stderr,
                "berth logout: credentials for %s remain in %s (written by another tool), and "
                "berth still uses them\n",
                registry, source);
    }
    berth_error_clear();
    free(user);
    if (pass) {
        memset(pass, 0, strlen(pass));
    }
    free(pass);
    free(source);
}

int cmd_logout(int argc, char **argv)
{
    berth_buf path = BERTH_BUF_INIT;
    const char *authfile = NULL, *host = NULL;
    char *registry = NULL;
    bool all = false;
    int ret = 2;

    if (cli_wants_help(argc, argv)) {
        fputs(logout_help, stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--authfile") == 0 && i + 1 < argc) {
            authfile = argv[++i];
        } else if (strcmp(argv[i], "--all") == 0 || strcmp(argv[i], "-a") == 0) {
            all = true;
        } else if (argv[i][0] == '-' || host) {
            fprintf(stderr, "berth logout: %s %s\n",
                    argv[i][0] == '-' ? "unknown option" : "too many arguments:", argv[i]);
            goto out;
        } else {
            host = argv[i];
        }
    }
    if (all == (host != NULL) || (host && (!(registry = registry_of(host)) || !*registry))) {
        fputs(logout_help, stderr);
        goto out;
    }
    ret = 1;
    if (berth_auth_file_path(&path, authfile) < 0 ||
        berth_auth_file_update(path.ptr, registry, NULL, NULL) < 0) {
        fprintf(stderr, "berth logout: %s\n", berth_error_last());
        warn_other_source(registry, authfile, berth_buf_cstr(&path));
        goto out;
    }
    warn_other_source(registry, authfile, path.ptr);
    if (all) {
        printf("Removed login credentials for all registries\n");
    } else {
        printf("Removed login credentials for %s\n", registry);
    }
    ret = 0;
out:
    berth_buf_dispose(&path);
    free(registry);
    return ret;
}
