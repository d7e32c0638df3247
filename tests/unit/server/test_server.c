/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the server: the error table, the error document, and a daemon started on
 * port 0 over a store in a temporary directory, spoken to through a plain socket. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "server/server_internal.h"

#include <berth/errors.h>
#include <berth/server.h>
#include <berth/store.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void expect_map(berth__op op, int code, unsigned status, const char *api)
{
    berth__api_error e;
    unsigned s;

    berth__error_map(&s, &e, op, code);
    assert_int_equal(s, status);
    assert_string_equal(berth__api_error_code(e), api);
}

static void test_server__error_table(void **state)
{
    (void)state;
    expect_map(BERTH_OP_NAME, BERTH_EINVALID, 400, "NAME_INVALID");
    expect_map(BERTH_OP_DIGEST, BERTH_EINVALID, 400, "DIGEST_INVALID");
    expect_map(BERTH_OP_DIGEST, BERTH_EUNSUPPORTED, 400, "DIGEST_INVALID");
    expect_map(BERTH_OP_BLOB, BERTH_ENOTFOUND, 404, "BLOB_UNKNOWN");
    expect_map(BERTH_OP_UPLOAD, BERTH_ENOTFOUND, 404, "BLOB_UPLOAD_UNKNOWN");
    expect_map(BERTH_OP_UPLOAD_RANGE, BERTH_ERANGE, 416, "BLOB_UPLOAD_INVALID");
    expect_map(BERTH_OP_COMMIT, BERTH_EMISMATCH, 400, "DIGEST_INVALID");
    expect_map(BERTH_OP_MANIFEST_GET, BERTH_ENOTFOUND, 404, "MANIFEST_UNKNOWN");
    expect_map(BERTH_OP_MANIFEST_PUT, BERTH_ENOTFOUND, 400, "MANIFEST_BLOB_UNKNOWN");
    expect_map(BERTH_OP_MANIFEST_PUT, BERTH_EINVALID, 400, "MANIFEST_INVALID");
    expect_map(BERTH_OP_MANIFEST_PUT, BERTH_ETOOBIG, 413, "SIZE_INVALID");
    expect_map(BERTH_OP_REPO, BERTH_ENOTFOUND, 404, "NAME_UNKNOWN");
    expect_map(BERTH_OP_METHOD, BERTH_EUNSUPPORTED, 405, "UNSUPPORTED");
    /* rows of BERTH_OP_ANY apply everywhere */
    expect_map(BERTH_OP_BLOB, BERTH_EUNAUTHORIZED, 401, "UNAUTHORIZED");
    expect_map(BERTH_OP_MANIFEST_GET, BERTH_EDENIED, 403, "DENIED");
    expect_map(BERTH_OP_ANY, BERTH_EBUSY, 429, "TOOMANYREQUESTS");
    /* a session in use by another request: retried after Retry-After, not a client error */
    expect_map(BERTH_OP_UPLOAD, BERTH_EBUSY, 429, "TOOMANYREQUESTS");
    expect_map(BERTH_OP_COMMIT, BERTH_EBUSY, 429, "TOOMANYREQUESTS");
    /* what nobody expects is a server failure */
    expect_map(BERTH_OP_BLOB, BERTH_EIO, 500, "UNKNOWN");
    expect_map(BERTH_OP_MANIFEST_GET, BERTH_ERROR, 500, "UNKNOWN");
    /* a delete that would leave a manifest naming absent content */
    expect_map(BERTH_OP_BLOB, BERTH_EINUSE, 409, "DENIED");
    expect_map(BERTH_OP_MANIFEST_GET, BERTH_EINUSE, 409, "DENIED");
}

static void test_server__error_document_is_spec_json(void **state)
{
    berth_buf doc = BERTH_BUF_INIT;
    json_t *root, *err;

    (void)state;
    assert_int_equal(berth__error_document(&doc, BERTH_API_MANIFEST_INVALID,
                                           "layers[0].digest: \"bad\"\n\x01 value\\"),
                     0);
    root = json_loads(doc.ptr, 0, NULL);
    assert_non_null(root);
    err = json_array_get(json_object_get(root, "errors"), 0);
    assert_non_null(err);
    assert_string_equal(json_string_value(json_object_get(err, "code")), "MANIFEST_INVALID");
    assert_string_equal(json_string_value(json_object_get(err, "message")),
                        "layers[0].digest: \"bad\"\n\x01 value\\");
    assert_true(json_is_object(json_object_get(err, "detail")));
    json_decref(root);

    /* without a message, the code's default text */
    berth_buf_clear(&doc);
    assert_int_equal(berth__error_document(&doc, BERTH_API_BLOB_UNKNOWN, NULL), 0);
    root = json_loads(doc.ptr, 0, NULL);
    assert_non_null(root);
    err = json_array_get(json_object_get(root, "errors"), 0);
    assert_string_equal(json_string_value(json_object_get(err, "message")),
                        "blob unknown to registry");
    json_decref(root);

    /* a message quoting bytes that are not UTF-8 (a name from the request): still JSON, with
       U+FFFD for each bad byte; the whole document is what libberth's serialiser writes */
    berth_buf_clear(&doc);
    assert_int_equal(berth__error_document(&doc, BERTH_API_NAME_INVALID, "name a\xff\xfe/b\r"), 0);
    root = json_loads(doc.ptr, 0, NULL);
    assert_non_null(root);
    err = json_array_get(json_object_get(root, "errors"), 0);
    assert_string_equal(json_string_value(json_object_get(err, "message")),
                        "name a\xef\xbf\xbd\xef\xbf\xbd/b\r");
    json_decref(root);
    assert_string_equal(doc.ptr, "{\"errors\":[{\"code\":\"NAME_INVALID\",\"message\":\"name "
                                 "a\xef\xbf\xbd\xef\xbf\xbd/b\\r\",\"detail\":{}}]}");

    /* a server failure's detail (store paths) stays in the log */
    berth_buf_clear(&doc);
    assert_int_equal(berth__error_document(&doc, BERTH_API_UNKNOWN,
                                           "rename to /srv/registry/app/index.json: No space"),
                     0);
    assert_null(strstr(doc.ptr, "/srv/registry"));
    assert_non_null(strstr(doc.ptr, "unknown error"));
    berth_buf_dispose(&doc);
}

/* Send `request` to 127.0.0.1:port and read the whole answer into `out`. */
static void exchange(berth_buf *out, uint16_t port, const char *request)
{
    struct sockaddr_in sin;
    char chunk[4096];
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(write(fd, request, strlen(request)), (ssize_t)strlen(request));
    while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
        assert_int_equal(berth_buf_put(out, chunk, (size_t)n), 0);
    }
    close(fd);
}

static void test_server__serves_on_port_zero(void **state)
{
    char root[] = "/tmp/berth-test-server.XXXXXX";
    berth_store_options sopts;
    berth_server_options opts;
    berth_buf resp = BERTH_BUF_INIT;
    berth_store *store = NULL;
    berth_server *srv = NULL;
    char cmd[128];

    (void)state;
    assert_non_null(mkdtemp(root));
    berth_store_options_init(&sopts);
    sopts.fsync = false;
    assert_int_equal(berth_store_open(&store, root, &sopts), 0);
    berth_server_options_init(&opts);
    opts.port = 0;
    opts.threads = 2;
    opts.log = false;
    assert_int_equal(berth_server_start(&srv, store, &opts), 0);
    assert_true(berth_server_port(srv) != 0);

    exchange(&resp, berth_server_port(srv),
             "GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_memory_equal(resp.ptr, "HTTP/1.1 200", 12);
    assert_non_null(strstr(resp.ptr, "Docker-Distribution-API-Version: registry/2.0\r\n"));

    berth_buf_clear(&resp);
    exchange(&resp, berth_server_port(srv),
             "GET /v2/a/manifests/latest HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_memory_equal(resp.ptr, "HTTP/1.1 404", 12);
    assert_non_null(strstr(resp.ptr, "\"MANIFEST_UNKNOWN\""));

    berth_buf_clear(&resp);
    exchange(&resp, berth_server_port(srv),
             "GET /v2/A/tags/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_memory_equal(resp.ptr, "HTTP/1.1 400", 12);
    assert_non_null(strstr(resp.ptr, "\"NAME_INVALID\""));

    berth_server_stop(srv);
    berth_server_stop(srv); /* twice is fine */
    berth_server_free(srv);
    berth_store_free(store);
    berth_buf_dispose(&resp);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

static void test_server__refuses_bad_address(void **state)
{
    char root[] = "/tmp/berth-test-server.XXXXXX";
    berth_store_options sopts;
    berth_server_options opts;
    berth_store *store = NULL;
    berth_server *srv = NULL;
    char cmd[128];

    (void)state;
    assert_non_null(mkdtemp(root));
    berth_store_options_init(&sopts);
    sopts.fsync = false;
    assert_int_equal(berth_store_open(&store, root, &sopts), 0);
    berth_server_options_init(&opts);
    opts.listen_address = "localhost";
    assert_int_equal(berth_server_start(&srv, store, &opts), BERTH_EINVALID);
    assert_null(srv);
    assert_non_null(strstr(berth_error_last(), "localhost"));
    assert_int_equal(berth_server_start(&srv, NULL, NULL), BERTH_EINVALID);
    berth_server_free(NULL);
    berth_store_free(store);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server__error_table),
        cmocka_unit_test(test_server__error_document_is_spec_json),
        cmocka_unit_test(test_server__serves_on_port_zero),
        cmocka_unit_test(test_server__refuses_bad_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
