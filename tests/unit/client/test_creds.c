/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: what the client reads per registry as the containers tools keep it: the order
 * of the auth files, the auth file berth login writes, a certs.d directory, and the
 * `insecure` of registries.conf. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "client/client_internal.h"

#include <berth/client.h>
#include <berth/errors.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/berth-creds-XXXXXX");
    assert_non_null(mkdtemp(dir));
    unsetenv("REGISTRY_AUTH_FILE");
    unsetenv("XDG_RUNTIME_DIR");
    unsetenv("XDG_CONFIG_HOME");
    unsetenv("DOCKER_CONFIG");
    setenv("HOME", dir, 1);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_at(const char *rel, const char *text)
{
    char path[512], cmd[600];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", path);
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The user found for reg.example:5000, or "" when none. */
static const char *user_found(char *buf, size_t size)
{
    char *u = NULL, *p = NULL;
    int rc = berth_auth_lookup(&u, &p, NULL, NULL, "reg.example:5000");
    snprintf(buf, size, "%s", rc == 0 ? u : rc == BERTH_ENOTFOUND ? "" : "error");
    free(u);
    free(p);
    return buf;
}

#define ENTRY(user) "{\"auths\":{\"reg.example:5000\":{\"auth\":\"" user "\"}}}"
/* base64 of "run:x", "cfg:x", "dock:x", "dc:x", "only:x" */
#define RUN  "cnVuOng="
#define CFG  "Y2ZnOng="
#define DOCK "ZG9jazp4"
#define DC   "ZGM6eA=="
#define ONLY "b25seTp4"

static void test_creds__order(void **state)
{
    char b[64], path[512];
    (void)state;
    assert_string_equal(user_found(b, sizeof(b)), "");
    write_at(".docker/config.json", ENTRY(DOCK));
    assert_string_equal(user_found(b, sizeof(b)), "dock");
    write_at(".config/containers/auth.json", ENTRY(CFG));
    assert_string_equal(user_found(b, sizeof(b)), "cfg");
    write_at("run/containers/auth.json", ENTRY(RUN));
    snprintf(path, sizeof(path), "%s/run", dir);
    setenv("XDG_RUNTIME_DIR", path, 1);
    assert_string_equal(user_found(b, sizeof(b)), "run");
    /* a file without the registry passes the question on */
    write_at("run/containers/auth.json", "{\"auths\":{\"other\":{\"auth\":\"" RUN "\"}}}");
    assert_string_equal(user_found(b, sizeof(b)), "cfg");
    unsetenv("XDG_RUNTIME_DIR");
    /* XDG_CONFIG_HOME moves ~/.config */
    snprintf(path, sizeof(path), "%s/xdg", dir);
    setenv("XDG_CONFIG_HOME", path, 1);
    assert_string_equal(user_found(b, sizeof(b)), "dock");
    unsetenv("XDG_CONFIG_HOME");
    /* DOCKER_CONFIG replaces ~/.docker */
    unlink(strcat(strcpy(path, dir), "/.config/containers/auth.json"));
    write_at("dc/config.json", ENTRY(DC));
    snprintf(path, sizeof(path), "%s/dc", dir);
    setenv("DOCKER_CONFIG", path, 1);
    assert_string_equal(user_found(b, sizeof(b)), "dc");
    snprintf(path, sizeof(path), "%s/nothing", dir);
    setenv("DOCKER_CONFIG", path, 1);
    assert_string_equal(user_found(b, sizeof(b)), "");
    unsetenv("DOCKER_CONFIG");
    /* REGISTRY_AUTH_FILE is read alone */
    write_at("only.json", ENTRY(ONLY));
    snprintf(path, sizeof(path), "%s/only.json", dir);
    setenv("REGISTRY_AUTH_FILE", path, 1);
    assert_string_equal(user_found(b, sizeof(b)), "only");
    write_at("only.json", "{}");
    assert_string_equal(user_found(b, sizeof(b)), "");
    /* an unreadable file is an error, not silence */
    write_at("only.json", "{not json");
    assert_string_equal(user_found(b, sizeof(b)), "error");
    assert_non_null(strstr(berth_error_last(), "only.json"));
    unsetenv("REGISTRY_AUTH_FILE");
}

static void test_creds__file_update(void **state)
{
    char path[512], *u = NULL, *p = NULL;
    struct stat st;
    (void)state;
    snprintf(path, sizeof(path), "%s/new/dir/auth.json", dir);
    assert_int_equal(berth_auth_file_update(path, "h:1", "alice", "pw:x"), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(berth_auth_lookup(&u, &p, NULL, path, "h:1"), 0);
    assert_string_equal(u, "alice");
    assert_string_equal(p, "pw:x");
    free(u);
    free(p);
    /* other members and entries stay; a URL-form key of the same host is replaced */
    write_at("keep.json", "{\"auths\":{\"https://h:1/v1/\":{\"auth\":\"eDp5\"},\"o\":{\"auth\":"
                          "\"eDp5\"}},\"credHelpers\":{\"z\":\"q\"}}");
    snprintf(path, sizeof(path), "%s/keep.json", dir);
    assert_int_equal(berth_auth_file_update(path, "h:1", "bob", "pw"), 0);
    FILE *f = fopen(path, "r");
    char text[1024] = "";
    assert_non_null(f);
    assert_true(fread(text, 1, sizeof(text) - 1, f) > 0);
    fclose(f);
    assert_non_null(strstr(text, "\"credHelpers\""));
    assert_non_null(strstr(text, "\"o\""));
    assert_null(strstr(text, "https://h:1"));
    assert_non_null(strstr(text, "\"h:1\": {\n\t\t\t\"auth\": \"Ym9iOnB3\""));
    /* logout */
    assert_int_equal(berth_auth_file_update(path, "h:1", NULL, NULL), 0);
    assert_int_equal(berth_auth_file_update(path, "h:1", NULL, NULL), BERTH_ENOTFOUND);
    assert_int_equal(berth_auth_lookup(&u, &p, NULL, path, "h:1"), BERTH_ENOTFOUND);
    assert_int_equal(berth_auth_lookup(&u, &p, NULL, path, "o"), 0);
    free(u);
    free(p);
    assert_int_equal(berth_auth_file_update(path, NULL, NULL, NULL), 0);
    assert_int_equal(berth_auth_lookup(&u, &p, NULL, path, "o"), BERTH_ENOTFOUND);
    /* not an object: refused, file unchanged, the message names the file and what it holds */
    write_at("bad.json", "[1]");
    snprintf(path, sizeof(path), "%s/bad.json", dir);
    assert_int_equal(berth_auth_file_update(path, "h:1", "a", "b"), BERTH_EINVALID);
    char want[600];
    snprintf(want, sizeof(want),
             "%s: an array, not a JSON object (an auth file is {\"auths\": {...}})", path);
    assert_string_equal(berth_error_last(), want);
    write_at("bad.json", "[]");
    assert_int_equal(berth_auth_lookup(&u, &p, NULL, path, "h:1"), BERTH_EINVALID);
    assert_string_equal(berth_error_last(), want); /* no "line -1" */
    /* "auth": 42 is an error naming the file, not silently no credentials */
    write_at("num.json", "{\"auths\":{\"h:1\":{\"auth\":42}}}");
    snprintf(path, sizeof(path), "%s/num.json", dir);
    assert_int_equal(berth_auth_lookup(&u, &p, NULL, path, "h:1"), BERTH_EINVALID);
    snprintf(want, sizeof(want),
             "%s: docker config: auths[h:1].auth: a number, not a string (the base64 of "
             "user:password)",
             path);
    assert_string_equal(berth_error_last(), want);
}

static void test_creds__file_path(void **state)
{
    berth_buf b = BERTH_BUF_INIT;
    (void)state;
    assert_int_equal(berth_auth_file_path(&b, "/x/f.json"), 0);
    assert_string_equal(b.ptr, "/x/f.json");
    berth_buf_clear(&b);
    setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
    assert_int_equal(berth_auth_file_path(&b, NULL), 0);
    assert_string_equal(b.ptr, "/run/user/7/containers/auth.json");
    berth_buf_clear(&b);
    setenv("REGISTRY_AUTH_FILE", "/r.json", 1);
    assert_int_equal(berth_auth_file_path(&b, NULL), 0);
    assert_string_equal(b.ptr, "/r.json");
    unsetenv("REGISTRY_AUTH_FILE");
    unsetenv("XDG_RUNTIME_DIR");
    berth_buf_clear(&b);
    assert_int_equal(berth_auth_file_path(&b, NULL), 0);
    assert_true(strstr(b.ptr, "/.config/containers/auth.json") != NULL);
    berth_buf_dispose(&b);
}

typedef struct conf_case {
    const char *text, *registry;
    bool insecure;
} conf_case;

static const conf_case confs[] = {
    {"[[registry]]\nlocation = \"r.example:5000\"\ninsecure = true\n", "r.example:5000", true},
    {"[[registry]]\nlocation = \"r.example:5000\"\ninsecure = true\n", "r.example", false},
    {"[[registry]]\nlocation = \"r.example:5000\"\ninsecure = false\n", "r.example:5000", false},
    {"[[registry]]\nlocation='r.example/ns' # a namespace\ninsecure=true\n", "r.example", true},
    {"[[registry]]\nprefix = \"q.example\"\nlocation = \"r.example\"\ninsecure = true\n",
     "r.example", false},
    {"[[registry]]\nprefix = \"q.example\"\nlocation = \"r.example\"\ninsecure = true\n",
     "q.example", true},
    {"[[registry]]\nlocation = \"*.corp.example\"\ninsecure = true\n", "a.corp.example:1", true},
    {"[[registry]]\nlocation = \"*.corp.example\"\ninsecure = true\n", "corp.example", false},
    /* a mirror's insecure is the mirror's, not the registry's */
    {"[[registry]]\nlocation = \"r.example\"\n[[registry.mirror]]\nlocation = \"m\"\ninsecure = "
     "true\n",
     "r.example", false},
    {"[[registry]]\nlocation = \"a\"\ninsecure = true\n[[registry]]\nlocation = \"b\"\n", "b",
     false},
    {"[[registry]]\nlocation = \"a\"\n[[registry]]\nlocation = \"b\"\ninsecure = true", "b", true},
    {"[registries.insecure]\nregistries = ['x:1', \"y\"]\n", "y", true},
    {"[registries.insecure]\nregistries = [\n  'x:1',\n  'y',\n]\n", "x:1", true},
    {"[registries.search]\nregistries = ['y']\n", "y", false},
    {"# insecure = true\n", "y", false},
};

static void test_creds__registries_conf(void **state)
{
    char path[512];
    (void)state;
    snprintf(path, sizeof(path), "%s/registries.conf", dir);
    for (size_t i = 0; i < sizeof(confs) / sizeof(confs[0]); i++) {
        bool got = !confs[i].insecure;
        write_at("registries.conf", confs[i].text);
        assert_int_equal(berth__registries_conf_insecure(&got, path, confs[i].registry), 0);
        if (got != confs[i].insecure) {
            fail_msg("case %zu (%s): got %d", i, confs[i].registry, got);
        }
    }
    setenv("CONTAINERS_REGISTRIES_CONF", path, 1);
    write_at("registries.conf", confs[0].text);
    assert_true(berth__registry_insecure("r.example:5000"));
    assert_false(berth__registry_insecure("s.example:5000"));
    unsetenv("CONTAINERS_REGISTRIES_CONF");
}

static void test_creds__certs_dir(void **state)
{
    char path[512];
    berth__tls t = {0};
    berth_buf found = BERTH_BUF_INIT;
    (void)state;
    write_at("certs.d/h:1/ca.crt", "-----BEGIN CERTIFICATE-----\nTESTCA\n");
    write_at("certs.d/h:1/me.cert", "C");
    write_at("certs.d/h:1/me.key", "K");
    snprintf(path, sizeof(path), "%s/other:%s/certs.d", dir, dir);
    setenv("BERTH_CERTS_D", path, 1);
    assert_int_equal(berth__certs_d_find(&found, "h:1"), 0);
    snprintf(path, sizeof(path), "%s/certs.d/h:1", dir);
    assert_string_equal(found.ptr, path);
    assert_int_equal(berth__certs_d_find(&found, "h:2"), BERTH_ENOTFOUND);
    unsetenv("BERTH_CERTS_D");
    assert_int_equal(berth__tls_load_dir(&t, path), 0);
    assert_non_null(t.ca_pem);
    assert_non_null(strstr(t.ca_pem, "TESTCA"));
    assert_int_equal(t.ca_len, strlen(t.ca_pem));
    assert_non_null(strstr(t.cert, "/me.cert"));
    assert_non_null(strstr(t.key, "/me.key"));
    berth__tls_dispose(&t);
    /* a key without its certificate */
    write_at("lone/me.key", "K");
    snprintf(path, sizeof(path), "%s/lone", dir);
    assert_int_equal(berth__tls_load_dir(&t, path), BERTH_EINVALID);
    assert_non_null(strstr(berth_error_last(), "missing"));
    berth__tls_dispose(&t);
    snprintf(path, sizeof(path), "%s/none", dir);
    assert_int_equal(berth__tls_load_dir(&t, path), BERTH_ENOTFOUND);
    berth__tls_dispose(&t);
    berth_buf_dispose(&found);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_creds__order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_creds__file_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_creds__file_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_creds__registries_conf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_creds__certs_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
