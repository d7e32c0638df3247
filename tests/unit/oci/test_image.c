/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: image configuration (config.md), runtime config, history, RFC 3339 times. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <berth/image.h>

#include "oci_test.h"

#define DIFF   "sha256:c6f988f4874bb0add23a778f753c65efe992244e148a1d2ec2a8b664fb66bbd1"
#define ROOTFS "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DIFF "\"]}"

static void reject(const char *json, int code, const char *field)
{
    berth_image *img = NULL;
    assert_fails(berth_image_parse(&img, json, strlen(json)), code, field);
    assert_null(img);
}

static void test_image__spec_example_round_trip(void **state)
{
    berth_buf in = oci_read("config.json"), s1 = BERTH_BUF_INIT, s2 = BERTH_BUF_INIT;
    berth_image *img = NULL, *img2 = NULL;

    (void)state;
    assert_int_equal(berth_image_parse(&img, in.ptr, in.len), 0);
    assert_string_equal(img->created, "2015-10-31T22:22:56.015925234Z");
    assert_string_equal(img->architecture, "amd64");
    assert_non_null(img->config);
    assert_string_equal(img->config->user, "alice");
    assert_int_equal(img->config->exposed_ports.count, 1);
    assert_string_equal(img->config->exposed_ports.items[0], "8080/tcp");
    assert_int_equal(img->config->env.count, 3);
    assert_int_equal(img->config->cmd.count, 3);
    assert_int_equal(img->config->volumes.count, 2);
    assert_string_equal(img->config->working_dir, "/home/alice");
    /* Memory, MemorySwap and CpuShares are not in the spec's list: kept as they were */
    assert_string_equal(img->config->extra,
                        "{\"Memory\":2048,\"MemorySwap\":4096,\"CpuShares\":8}");
    assert_string_equal(img->rootfs_type, "layers");
    assert_int_equal(img->ndiff_ids, 2);
    assert_int_equal(img->nhistory, 2);
    assert_true(img->history[1].has_empty_layer && img->history[1].empty_layer);
    assert_false(img->history[0].has_empty_layer);
    assert_int_equal(berth_image_serialize(&s1, img), 0);
    assert_non_null(strstr(s1.ptr, "\"Memory\":2048"));
    assert_non_null(strstr(s1.ptr, "\"ExposedPorts\":{\"8080/tcp\":{}}"));
    assert_int_equal(berth_image_parse(&img2, s1.ptr, s1.len), 0);
    assert_int_equal(berth_image_serialize(&s2, img2), 0);
    assert_string_equal(s1.ptr, s2.ptr);
    berth_image_free(img);
    berth_image_free(img2);
    berth_buf_dispose(&in);
    berth_buf_dispose(&s1);
    berth_buf_dispose(&s2);
}

static void test_image__minimal_and_unknown_fields(void **state)
{
    const char *j =
        "{\"architecture\":\"arm64\",\"os\":\"linux\",\"config\":{\"Cmd\":null,"
        "\"Healthcheck\":{\"Test\":[\"NONE\"]},\"Shell\":[\"/bin/sh\"],"
        "\"ArgsEscaped\":true,\"Labels\":{\"a\":\"b\"},\"StopSignal\":\"SIGTERM\"}," ROOTFS
        ",\"moby.extra\":1}";
    berth_image *img = NULL;
    berth_buf s = BERTH_BUF_INIT;

    (void)state;
    assert_int_equal(berth_image_parse(&img, j, strlen(j)), 0);
    assert_int_equal(img->config->cmd.count, 0);
    assert_true(img->config->has_args_escaped && img->config->args_escaped);
    assert_string_equal(berth_map_get(&img->config->labels, "a"), "b");
    assert_string_equal(img->config->extra,
                        "{\"Healthcheck\":{\"Test\":[\"NONE\"]},\"Shell\":[\"/bin/sh\"]}");
    assert_int_equal(berth_image_serialize(&s, img), 0);
    assert_string_equal(s.ptr,
                        "{\"architecture\":\"arm64\",\"os\":\"linux\",\"config\":{\"Labels\":"
                        "{\"a\":\"b\"},\"StopSignal\":\"SIGTERM\",\"ArgsEscaped\":true,"
                        "\"Healthcheck\":{\"Test\":[\"NONE\"]},\"Shell\":[\"/bin/sh\"]},"
                        "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DIFF "\"]},"
                        "\"moby.extra\":1}");
    berth_image_free(img);
    berth_buf_dispose(&s);
}

static void test_image__architecture_and_os_required(void **state)
{
    (void)state;
    reject("{\"os\":\"linux\"," ROOTFS "}", BERTH_EINVALID, "architecture:");
    reject("{\"architecture\":\"amd64\"," ROOTFS "}", BERTH_EINVALID, "os:");
}

static void test_image__rootfs_rules(void **state)
{
    (void)state;
    reject("{\"architecture\":\"a\",\"os\":\"l\"}", BERTH_EINVALID, "rootfs:");
    reject("{\"architecture\":\"a\",\"os\":\"l\",\"rootfs\":{\"type\":\"layers\"}}", BERTH_EINVALID,
           "rootfs.diff_ids:");
    reject("{\"architecture\":\"a\",\"os\":\"l\",\"rootfs\":{\"type\":\"tar\",\"diff_ids\":[]}}",
           BERTH_EINVALID, "rootfs.type:");
    reject("{\"architecture\":\"a\",\"os\":\"l\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":"
           "[\"" DIFF "\",\"sha256:xyz\"]}}",
           BERTH_EINVALID, "rootfs.diff_ids[1]:");
}

static void test_image__times_are_rfc3339(void **state)
{
    (void)state;
    reject("{\"created\":\"2015-10-31 22:22:56\",\"architecture\":\"a\",\"os\":\"l\"," ROOTFS "}",
           BERTH_EINVALID, "created:");
    reject("{\"architecture\":\"a\",\"os\":\"l\"," ROOTFS ",\"history\":[{},{\"created\":"
           "\"yesterday\"}]}",
           BERTH_EINVALID, "history[1].created:");
    reject("{\"architecture\":\"a\",\"os\":\"l\"," ROOTFS ",\"history\":[{\"empty_layer\":1}]}",
           BERTH_EINVALID, "history[0].empty_layer:");
}

static void test_image__time_grammar_table(void **state)
{
    static const struct {
        const char *s;
        bool ok;
    } table[] = {
        {"2015-10-31T22:22:56.015925234Z", true},
        {"2015-10-31T22:22:56Z", true},
        {"1985-04-12t23:20:50.52z", true},
        {"1996-12-19T16:39:57-08:00", true},
        {"1990-12-31T23:59:60Z", true},
        {"2015-10-31T22:22:56", false},
        {"2015-10-31 22:22:56Z", false},
        {"2015-13-31T22:22:56Z", false},
        {"2015-02-30T22:22:56Z", false},
        {"2015-10-31T24:00:00Z", false},
        {"2015-10-31T22:22:56.Z", false},
        {"2015-10-31T22:22:56+0800", false},
        {"15-10-31T22:22:56Z", false},
        {"", false},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (berth_time_valid(table[i].s) != table[i].ok) {
            print_error("'%s': want %d\n", table[i].s, table[i].ok);
            fail();
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image__spec_example_round_trip),
        cmocka_unit_test(test_image__minimal_and_unknown_fields),
        cmocka_unit_test(test_image__architecture_and_os_required),
        cmocka_unit_test(test_image__rootfs_rules),
        cmocka_unit_test(test_image__times_are_rfc3339),
        cmocka_unit_test(test_image__time_grammar_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
