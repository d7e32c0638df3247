/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Credentials as podman, skopeo and docker keep them: the list of auth files they read (in
 * their order), docker credential helpers (`docker-credential-NAME get`, the server on stdin,
 * JSON out), and the auth file `berth login` writes (podman's format, mode 0600, replaced
 * atomically).
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include "client/client_internal.h"

#include "base/base64.h"

#include <berth/errors.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define AUTHFILE_MAX   (1024u * 1024u)
#define HELPER_OUT_MAX (64u * 1024u)
#define HELPER_TIME_MS 30000 /* a helper that has not answered by then is killed */

/* Read a whole (small) file. @return 0, BERTH_ENOTFOUND (absent), BERTH_EIO, BERTH_ETOOBIG */
static int slurp(berth_buf *out, const char *path)
{
    char tmp[4096];
    size_t n;
    int rc = 0;
    FILE *f = fopen(path, "rb");

    if (!f) {
        return errno == ENOENT || errno == ENOTDIR
                   ? BERTH_ENOTFOUND
                   : berth_error_set(BERTH_EIO, "%s: %s", path, strerror(errno));
    }
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        if ((rc = berth_buf_put(out, tmp, n)) < 0) {
            berth_error_prefix("%s: ", path);
            break;
        }
    }
    fclose(f);
    return rc;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run `docker-credential-NAME get` with `server` on stdin (Docker Hub as docker names it);
 * parse {"Username","Secret"}. NAME is a program looked up in PATH: a name with '/' is
 * refused; an answer over HELPER_OUT_MAX bytes or later than HELPER_TIME_MS is a failure
 * (the helper is killed). */
static int run_helper(char **user, char **pass, const char *name, const char *server)
{
    berth_buf prog = BERTH_BUF_INIT, outb = BERTH_BUF_INIT_MAX(HELPER_OUT_MAX);
    posix_spawn_file_actions_t fa;
    int in[2] = {-1, -1}, outp[2] = {-1, -1}, status = 0, rc = 0;
    pid_t pid = -1;
    json_t *root = NULL;
    char tmp[4096];
    ssize_t n;
    struct sigaction ign = {0}, old;
    bool fa_init = false;

    ign.sa_handler = SIG_IGN;
    if (strcmp(server, "docker.io") == 0) {
        server = "https://index.docker.io/v1/";
    }
    if (strchr(name, '/')) {
        rc = berth_error_set(BERTH_EINVALID,
                             "credential helper \"%s\": a helper is a name looked up in PATH, "
                             "not a path",
                             name);
        goto out;
    }
    if ((rc = berth_buf_printf(&prog, "docker-credential-%s", name)) < 0) {
        goto out;
    }
    if (pipe(in) != 0 || pipe(outp) != 0) {
        rc = berth_error_set(BERTH_EIO, "pipe: %s", strerror(errno));
        goto out;
    }
    posix_spawn_file_actions_init(&fa);
    fa_init = true;
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, outp[0]);
    char *argv[] = {prog.ptr, "get", NULL};
    if ((errno = posix_spawnp(&pid, prog.ptr, &fa, NULL, argv, environ)) != 0) {
        pid = -1;
        rc = berth_error_set(BERTH_EINVALID, "credential helper %s: %s", prog.ptr, strerror(errno));
        goto out;
    }
    close(in[0]);
    close(outp[1]);
    in[0] = outp[1] = -1;
    sigaction(SIGPIPE, &ign, &old);
    (void)!write(in[1], server, strlen(server));
    sigaction(SIGPIPE, &old, NULL);
    close(in[1]);
    in[1] = -1;
    int64_t deadline = mono_ms() + HELPER_TIME_MS;
    const char *bad = NULL;
    for (;;) {
        struct pollfd pfd = {outp[0], POLLIN, 0};
        int64_t left = deadline - mono_ms();
        int pr = left > 0 ? poll(&pfd, 1, (int)left) : 0;
        if (pr < 0 && errno == EINTR) {
            continue;
        }
        if (pr == 0) {
            bad = "gave no answer within 30 s";
            break;
        }
        if ((n = pr < 0 ? -1 : read(outp[0], tmp, sizeof(tmp))) < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        if (berth_buf_put(&outb, tmp, (size_t)n) < 0) {
            berth_error_clear();
            bad = "answered more than 64 KiB";
            break;
        }
    }
    close(outp[0]);
    outp[0] = -1;
    if (bad) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        pid = -1;
        rc = berth_error_set(BERTH_EINVALID, "credential helper %s %s", prog.ptr, bad);
        goto out;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    pid = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        /* "credentials not found in native keychain" and the like */
        rc = berth_error_set(BERTH_ENOTFOUND, "credential helper %s: no credentials for %s",
                             prog.ptr, server);
        goto out;
    }
    root = json_loadb(berth_buf_cstr(&outb), outb.len, 0, NULL);
    const char *u = json_string_value(json_object_get(root, "Username"));
    const char *s = json_string_value(json_object_get(root, "Secret"));
    if (!u || !s) {
        rc = berth_error_set(BERTH_EINVALID,
                             "credential helper %s: answer without Username and "
                             "Secret",
                             prog.ptr);
        goto out;
    }
    *user = strdup(u);
    *pass = strdup(s);
    if (!*user || !*pass) {
        free(*user);
        free(*pass);
        *user = *pass = NULL;
        rc = BERTH_ENOMEM;
    }
out:
    if (fa_init) {
        posix_spawn_file_actions_destroy(&fa);
    }
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0) {
            close(in[i]);
        }
        if (outp[i] >= 0) {
            close(outp[i]);
        }
    }
    if (pid > 0) {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
    json_decref(root);
    berth_buf_dispose(&prog);
    berth_buf_dispose(&outb);
    return rc;
}

/* The helper named for `registry` in a parsed file: credHelpers[registry], else (when `store`)
 * credsStore. NULL when none. */
static const char *helper_for(json_t *root, const char *registry, bool store)
{
    const char *h =
        json_string_value(json_object_get(json_object_get(root, "credHelpers"), registry));
    if (!h && store) {
        h = json_string_value(json_object_get(root, "credsStore"));
    }
    return h && *h ? h : NULL;
}

/* An auth file that does not parse (`root` NULL: where, from jansson) or is not an object (what
 * it is: "[]" has no line to name). @return BERTH_EINVALID */
static int not_an_object(const char *path, const json_t *root, const json_error_t *jerr)
{
    if (!root) {
        return berth_error_set(BERTH_EINVALID, "%s: line %d: %s", path, jerr->line, jerr->text);
    }
    return berth_error_set(BERTH_EINVALID,
                           "%s: %s, not a JSON object (an auth file is {\"auths\": {...}})", path,
                           berth__json_kind(root));
}

/* Look in one file. @return 0 found, BERTH_ENOTFOUND, another error */
static int lookup_file(char **user, char **pass, char **source, const char *path,
                       const char *registry)
{
    berth_buf text = BERTH_BUF_INIT_MAX(AUTHFILE_MAX), src = BERTH_BUF_INIT;
    json_t *root = NULL;
    json_error_t jerr;
    const char *helper;
    int rc;

    if ((rc = slurp(&text, path)) < 0) {
        goto out;
    }
    if (text.len == 0) {
        rc = BERTH_ENOTFOUND;
        goto out;
    }
    root = json_loadb(text.ptr, text.len, 0, &jerr);
    if (!json_is_object(root)) {
        rc = not_an_object(path, root, &jerr);
        goto out;
    }
    if ((helper = helper_for(root, registry, false))) {
        rc = run_helper(user, pass, helper, registry);
    } else {
        rc = berth_docker_config_auth(user, pass, text.ptr, text.len, registry);
        if (rc == 0) {
            rc = berth_buf_puts(&src, path);
            goto out;
        }
        if (rc == BERTH_EINVALID) {
            berth_error_prefix("%s: ", path);
            goto out;
        }
        if (rc != BERTH_ENOTFOUND || !(helper = helper_for(root, registry, true))) {
            goto out;
        }
        rc = run_helper(user, pass, helper, registry);
    }
    if (rc == 0) {
        rc = berth_buf_printf(&src, "docker-credential-%s", helper);
    }
out:
    if (rc == 0 && source) {
        *source = berth_buf_detach(&src);
    }
    json_decref(root);
    berth_buf_dispose(&text);
    berth_buf_dispose(&src);
    return rc;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int berth_auth_lookup(char **user, char **pass, char **source, const char *authfile,
                      const char *registry)
{
    berth_buf paths[4] = {BERTH_BUF_INIT, BERTH_BUF_INIT, BERTH_BUF_INIT, BERTH_BUF_INIT};
    size_t np = 0;
    int rc = 0;

    *user = *pass = NULL;
    if (source) {
        *source = NULL;
    }
    if (!authfile) {
        authfile = env("REGISTRY_AUTH_FILE");
    }
    if (authfile) {
        rc = berth_buf_puts(&paths[np++], authfile);
    } else {
        const char *home = env("HOME");
        if (env("XDG_RUNTIME_DIR")) {
            rc = berth_buf_printf(&paths[np++], "%s/containers/auth.json", env("XDG_RUNTIME_DIR"));
        }
        if (rc == 0 && env("XDG_CONFIG_HOME")) {
            rc = berth_buf_printf(&paths[np++], "%s/containers/auth.json", env("XDG_CONFIG_HOME"));
        } else if (rc == 0 && home) {
            rc = berth_buf_printf(&paths[np++], "%s/.config/containers/auth.json", home);
        }
        if (rc == 0 && env("DOCKER_CONFIG")) {
            rc = berth_buf_printf(&paths[np++], "%s/config.json", env("DOCKER_CONFIG"));
        } else if (rc == 0 && home) {
            rc = berth_buf_printf(&paths[np++], "%s/.docker/config.json", home);
        }
    }
    if (rc < 0) {
        goto out;
    }
    rc = BERTH_ENOTFOUND;
    for (size_t i = 0; i < np && rc == BERTH_ENOTFOUND; i++) {
        berth_error_clear();
        rc = lookup_file(user, pass, source, paths[i].ptr, registry);
    }
    if (rc == BERTH_ENOTFOUND) {
        berth_error_set(rc, "no credentials for %s", registry);
    }
out:
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        berth_buf_dispose(&paths[i]);
    }
    return rc;
}

int berth_auth_file_path(berth_buf *out, const char *authfile)
{
    if (!authfile) {
        authfile = env("REGISTRY_AUTH_FILE");
    }
    if (authfile) {
        return berth_buf_puts(out, authfile);
    }
    if (env("XDG_RUNTIME_DIR")) {
        return berth_buf_printf(out, "%s/containers/auth.json", env("XDG_RUNTIME_DIR"));
    }
    if (env("XDG_CONFIG_HOME")) {
        return berth_buf_printf(out, "%s/containers/auth.json", env("XDG_CONFIG_HOME"));
    }
    if (env("HOME")) {
        return berth_buf_printf(out, "%s/.config/containers/auth.json", env("HOME"));
    }
    return berth_error_set(BERTH_ENOTFOUND, "no auth file: neither HOME nor XDG_RUNTIME_DIR set");
}

/* mkdir -p of the directories above `path`, mode 0700. */
static int make_parents(const char *path)
{
    char *d = strdup(path);
    int rc = 0;

    if (!d) {
        return BERTH_ENOMEM;
    }
    for (char *p = d + 1; *p; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        if (mkdir(d, 0700) != 0 && errno != EEXIST) {
            rc = berth_error_set(BERTH_EIO, "%s: %s", d, strerror(errno));
            break;
        }
        *p = '/';
    }
    free(d);
    return rc;
}

/* Docker Hub under the names docker login writes (the key less its http(s):// prefix); the
 * lookup (auth.c) reads them all for docker.io, so logout removes them all. */
static bool docker_hub_key(const char *h)
{
    return strcmp(h, "index.docker.io") == 0 || strncmp(h, "index.docker.io/", 16) == 0 ||
           strcmp(h, "registry-1.docker.io") == 0 || strncmp(h, "registry-1.docker.io/", 21) == 0;
}

/* Remove the keys of `auths` that name `registry` (also as "https://registry[/...]"; with
 * `hub_aliases`, Docker Hub's other names for docker.io). */
static bool remove_entries(json_t *auths, const char *registry, bool hub_aliases)
{
    const char *key;
    json_t *v;
    void *tmp;
    bool removed = false;
    size_t n = strlen(registry);

    json_object_foreach_safe(auths, tmp, key, v)
    {
        const char *h = key;
        if (strncmp(h, "https://", 8) == 0) {
            h += 8;
        } else if (strncmp(h, "http://", 7) == 0) {
            h += 7;
        }
        if ((strncmp(h, registry, n) == 0 && (h[n] == '\0' || h[n] == '/')) ||
            (hub_aliases && strcmp(registry, "docker.io") == 0 && docker_hub_key(h))) {
            json_object_del(auths, key);
            removed = true;
        }
    }
    return removed;
}

/* Lock the directory of `path` (flock; released by closing the descriptor returned), so that
 * two berth login/logout at once do not lose each other's change; -1 when it cannot be
 * opened (no directory: nothing to read, the write creates it). */
static int lock_dir_of(const char *path)
{
    char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
    int dfd = -1;

    if (dir) {
        if (slash) {
            *slash = '\0';
        }
        dfd = open(slash ? (*dir ? dir : "/") : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        while (dfd >= 0 && flock(dfd, LOCK_EX) != 0 && errno == EINTR) {
        }
    }
    free(dir);
    return dfd;
}

int berth_auth_file_update(const char *path, const char *registry, const char *user,
                           const char *pass)
{
    berth_buf text = BERTH_BUF_INIT_MAX(AUTHFILE_MAX), tmp = BERTH_BUF_INIT, cred = BERTH_BUF_INIT,
              b64 = BERTH_BUF_INIT;
    json_t *root = NULL, *auths;
    json_error_t jerr;
    char *out = NULL, *real = NULL;
    int rc, fd = -1, dfd = -1;
    struct stat lst;

    berth_error_clear();
    if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode) && (real = realpath(path, NULL))) {
        path = real; /* a symlinked file (dotfiles) is changed where it is, as docker does */
    }
    if (user && (rc = make_parents(path)) < 0) {
        goto out;
    }
    dfd = lock_dir_of(path); /* held until the new file is in place */
    rc = slurp(&text, path);
    if (rc < 0 && rc != BERTH_ENOTFOUND) {
        goto out;
    }
    if (rc == 0 && text.len > 0) {
        root = json_loadb(text.ptr, text.len, 0, &jerr);
        if (!json_is_object(root)) {
            rc = not_an_object(path, root, &jerr);
            goto out;
        }
    } else {
        root = json_object();
    }
    auths = json_object_get(root, "auths");
    if (!json_is_object(auths)) {
        auths = json_object();
        if (!auths || json_object_set_new(root, "auths", auths) != 0) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            goto out;
        }
    }
    if (user) {
        /* docker's own Hub entry stays (docker reads only that one; berth reads docker.io
         * first) */
        remove_entries(auths, registry, false);
        if ((rc = berth_buf_printf(&cred, "%s:%s", user, pass ? pass : "")) < 0 ||
            (rc = berth__base64_encode(&b64, cred.ptr, cred.len, BERTH__BASE64_STD)) < 0) {
            goto out;
        }
        if (json_object_set_new(auths, registry, json_pack("{s:s}", "auth", b64.ptr)) != 0) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            goto out;
        }
    } else if (registry) {
        if (!remove_entries(auths, registry, true)) {
            rc = berth_error_set(BERTH_ENOTFOUND, "not logged in to %s (in %s)", registry, path);
            goto out;
        }
    } else {
        json_object_clear(auths);
    }
    out = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    if (!out) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    /* podman indents with tabs; jansson with spaces: one space per level, turned into a tab */
    for (char *p = out; *p; p++) {
        if (*p == '\n') {
            for (char *q = p + 1; *q == ' '; q++) {
                *q = '\t';
            }
        }
    }
    if ((rc = make_parents(path)) < 0 || (rc = berth_buf_printf(&tmp, "%s.XXXXXX", path)) < 0) {
        goto out;
    }
    fd = mkstemp(tmp.ptr);
    if (fd < 0) {
        rc = berth_error_set(BERTH_EIO, "%s: %s", tmp.ptr, strerror(errno));
        goto out;
    }
    size_t len = strlen(out), done = 0;
    if (fchmod(fd, 0600) != 0) {
        rc = berth_error_set(BERTH_EIO, "%s: %s", tmp.ptr, strerror(errno));
        goto out;
    }
    while (done < len) {
        ssize_t w = write(fd, out + done, len - done);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            rc = berth_error_set(BERTH_EIO, "%s: %s", tmp.ptr, strerror(errno));
            goto out;
        }
        done += (size_t)w;
    }
    if (write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
        rc = berth_error_set(BERTH_EIO, "%s: %s", tmp.ptr, strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp.ptr, path) != 0) {
        rc = berth_error_set(BERTH_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    berth_buf_clear(&tmp);
    if (dfd >= 0) {
        (void)fsync(dfd); /* the rename is durable once the directory is */
    }
    rc = 0;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (tmp.len) {
        unlink(tmp.ptr);
    }
    if (dfd >= 0) {
        close(dfd);
    }
    free(real);
    free(out);
    json_decref(root);
    berth_buf_dispose(&text);
    berth_buf_dispose(&tmp);
    berth_buf_dispose(&cred);
    berth_buf_dispose(&b64);
    return rc;
}
