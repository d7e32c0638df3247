/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: the gc section of the configuration becomes the store's gc options. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/ops/gcopts.h"

#include <berth/errors.h>

#include <stdlib.h>
#include <string.h>

static void test_gcopts__from_config(void **state)
{
    static const char yaml[] = "gc:\n  grace: 2h\n  retention:\n"
                               "    - repositories: \"ci/*\"\n      tags: \"pr-*\"\n"
                               "      keep_last: 5\n      max_tag_age: 7d\n"
                               "    - max_untagged_age: 1d\n";
    berth_config *cfg = NULL;
    berth_gc_options opts;
    berth_retention_rule *rules = NULL;
    (void)state;
    assert_int_equal(berth_config_new(&cfg), 0);
    assert_int_equal(berth_config_load_string(cfg, "t", yaml, strlen(yaml)), 0);
    assert_int_equal(berth_gcopts_from_config(&opts, &rules, cfg), 0);
    assert_false(opts.dry_run);
    assert_int_equal(opts.grace_seconds, 7200);
    assert_false(opts.keep_manifests); /* deletes on by default */
    assert_int_equal(opts.nrules, 3);  /* the two rules, then gc.untagged_delay */
    assert_ptr_equal(opts.rules, rules);
    assert_string_equal(rules[0].repositories, "ci/*");
    assert_string_equal(rules[0].tags, "pr-*");
    assert_int_equal(rules[0].keep_last, 5);
    assert_int_equal(rules[0].max_tag_age, 7 * 86400);
    assert_int_equal(rules[0].max_untagged_age, 0);
    assert_string_equal(rules[1].repositories, "*");
    assert_string_equal(rules[1].tags, "*");
    assert_int_equal(rules[1].max_untagged_age, 86400);
    assert_string_equal(rules[2].repositories, "*");
    assert_int_equal(rules[2].keep_last, 0);
    assert_int_equal(rules[2].max_tag_age, 0);
    assert_int_equal(rules[2].max_untagged_age, 86400);
    free(rules);
    berth_config_free(cfg);
}

static void test_gcopts__no_deletes_keeps_manifests(void **state)
{
    static const char yaml[] = "storage:\n  delete_enabled: false\n"
                               "gc:\n  retention:\n    - keep_last: 1\n";
    berth_config *cfg = NULL;
    berth_gc_options opts;
    berth_retention_rule *rules = NULL;
    (void)state;
    assert_int_equal(berth_config_new(&cfg), 0);
    assert_int_equal(berth_config_load_string(cfg, "t", yaml, strlen(yaml)), 0);
    assert_int_equal(berth_gcopts_from_config(&opts, &rules, cfg), 0);
    assert_true(opts.keep_manifests); /* gc removes no tag and no manifest */
    free(rules);
    berth_config_free(cfg);
}

static void test_gcopts__defaults_and_limits(void **state)
{
    berth_config *cfg = NULL;
    berth_gc_options opts;
    berth_retention_rule *rules = NULL;
    static const char big[] = "gc:\n  retention:\n    - keep_last: 99999999999\n";
    (void)state;
    assert_int_equal(berth_config_new(&cfg), 0);
    /* the defaults free space as zot's do: untagged manifests go after a day */
    assert_int_equal(cfg->gc.interval, 3600);
    assert_int_equal(berth_gcopts_from_config(&opts, &rules, cfg), 0);
    assert_non_null(rules);
    assert_int_equal(opts.nrules, 1);
    assert_string_equal(rules[0].repositories, "*");
    assert_int_equal(rules[0].keep_last, 0);
    assert_int_equal(rules[0].max_tag_age, 0);
    assert_int_equal(rules[0].max_untagged_age, 86400);
    assert_int_equal(opts.grace_seconds, 3600);
    free(rules);
    rules = NULL;
    assert_int_equal(berth_config_set(cfg, "gc.untagged_delay", "0"), 0);
    assert_int_equal(berth_gcopts_from_config(&opts, &rules, cfg), 0);
    assert_null(rules);
    assert_int_equal(opts.nrules, 0);
    assert_int_equal(berth_config_load_string(cfg, "t", big, strlen(big)), 0);
    assert_int_equal(berth_gcopts_from_config(&opts, &rules, cfg), BERTH_EINVALID);
    assert_string_equal(berth_error_last(), "gc.retention[0]: value too large");
    assert_null(rules);
    berth_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gcopts__from_config),
        cmocka_unit_test(test_gcopts__no_deletes_keeps_manifests),
        cmocka_unit_test(test_gcopts__defaults_and_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
