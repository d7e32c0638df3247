/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: access rules as a matrix of (user, repository, action) -> allowed or refused,
 * plus groups, the no-rules default, granted subsets and catalog filtering. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/ops/acl.h"

#include <berth/errors.h>

#include <string.h>

static const char rules_yaml[] = "groups:\n"
                                 "  admins: [alice]\n"
                                 "  devs: [bob, carol]\n"
                                 "access:\n"
                                 "  - repositories: \"*\"\n"
                                 "    groups: [admins]\n"
                                 "    actions: [\"*\"]\n"
                                 "  - repositories: \"team/*\"\n"
                                 "    groups: [devs]\n"
                                 "    actions: [pull, push]\n"
                                 "  - repositories: \"team/bob-*\"\n"
                                 "    users: [bob]\n"
                                 "    actions: [delete]\n"
                                 "  - repositories: \"public/*\"\n"
                                 "    anonymous: true\n"
                                 "    users: [dave]\n"
                                 "    actions: [pull]\n"
                                 "  - repositories: \"drop/?\"\n"
                                 "    users: [dave]\n"
                                 "    actions: [push]\n";

static berth_acl *build(const char *yaml)
{
    berth_config *cfg = NULL;
    berth_acl *acl = NULL;
    assert_int_equal(berth_config_new(&cfg), 0);
    assert_int_equal(berth_config_load_string(cfg, "acl.yaml", yaml, strlen(yaml)), 0);
    assert_int_equal(berth_acl_new(&acl, cfg), 0);
    berth_config_free(cfg); /* the ACL keeps its own copies */
    return acl;
}

#define P BERTH_ACTION_PULL
#define U BERTH_ACTION_PUSH
#define D BERTH_ACTION_DELETE

static void test_acl__matrix(void **state)
{
    /* every user x repository, with the set of actions that must be allowed (the others must
     * be refused) */
    static const char *users[] = {"alice", "bob", "carol", "dave", "mallory", NULL};
    static const char *repos[] = {"team/app",   "team/bob-x", "team/sub/deep", "public/img",
                                  "private/db", "drop/a",     "drop/ab",       "teamx"};
    static const unsigned expected[6][8] = {
        /* team/app team/bob-x team/sub/deep public/img private/db drop/a drop/ab teamx */
        /* alice */ {P | U | D, P | U | D, P | U | D, P | U | D, P | U | D, P | U | D, P | U | D,
                     P | U | D},
        /* bob   */ {P | U, P | U | D, P | U, 0, 0, 0, 0, 0},
        /* carol */ {P | U, P | U, P | U, 0, 0, 0, 0, 0},
        /* dave  */ {0, 0, 0, P, 0, U, 0, 0},
        /* mallory */ {0, 0, 0, 0, 0, 0, 0, 0},
        /* anonymous */ {0, 0, 0, P, 0, 0, 0, 0},
    };
    berth_acl *acl = build(rules_yaml);
    (void)state;
    for (size_t u = 0; u < 6; u++) {
        for (size_t r = 0; r < 8; r++) {
            for (unsigned a = 1; a <= 4; a <<= 1) {
                bool want = (expected[u][r] & a) != 0;
                bool got = berth_acl_allows(acl, users[u], repos[r], a);
                if (want != got) {
                    fail_msg("user %s repo %s action %u: want %d got %d",
                             users[u] ? users[u] : "(anonymous)", repos[r], a, want, got);
                }
            }
            assert_int_equal(berth_acl_granted(acl, users[u], repos[r], P | U | D), expected[u][r]);
        }
    }
    berth_acl_free(acl);
}

static void test_acl__combined_actions_need_all(void **state)
{
    berth_acl *acl = build(rules_yaml);
    (void)state;
    assert_true(berth_acl_allows(acl, "bob", "team/app", P | U));
    assert_false(berth_acl_allows(acl, "bob", "team/app", P | D));
    assert_int_equal(berth_acl_granted(acl, "bob", "team/app", P | D), P);
    assert_false(berth_acl_allows(acl, "bob", "team/app", 0));
    assert_false(berth_acl_allows(acl, "bob", NULL, P));
    assert_false(berth_acl_allows(NULL, "bob", "team/app", P));
    berth_acl_free(acl);
}

static void test_acl__no_rules_means_authenticated_only(void **state)
{
    berth_acl *acl = build("listen: 127.0.0.1:1\n");
    (void)state;
    assert_true(berth_acl_allows(acl, "anyone", "x/y", P));
    assert_true(berth_acl_allows(acl, "anyone", "x/y", D));
    assert_false(berth_acl_allows(acl, NULL, "x/y", P));
    berth_acl_free(acl);
}

/* Pulling everywhere (what lets an automatic mount search the whole store) needs a rule whose
 * glob is only '*', or no rules at all; a namespace glob is not everywhere. */
static void test_acl__allows_everywhere(void **state)
{
    berth_acl *acl = build(rules_yaml);
    berth_acl *open = build("listen: 127.0.0.1:1\n");
    berth_acl *stars = build("access:\n  - repositories: \"**\"\n    anonymous: true\n");
    (void)state;
    assert_true(berth_acl_allows_everywhere(acl, "alice", P));
    assert_true(berth_acl_allows_everywhere(acl, "alice", P | U | D));
    assert_false(berth_acl_allows_everywhere(acl, "bob", P));  /* team/ only */
    assert_false(berth_acl_allows_everywhere(acl, "dave", P)); /* public/ only */
    assert_false(berth_acl_allows_everywhere(acl, NULL, P));   /* anonymous: public/ only */
    assert_false(berth_acl_allows_everywhere(acl, "alice", 0));
    assert_true(berth_acl_allows_everywhere(open, "anyone", P));
    assert_false(berth_acl_allows_everywhere(open, NULL, P));
    assert_true(berth_acl_allows_everywhere(stars, NULL, P));
    assert_false(berth_acl_allows_everywhere(stars, NULL, U));
    assert_false(berth_acl_allows_everywhere(stars, "someone", P));
    assert_false(berth_acl_allows_everywhere(NULL, "alice", P));
    berth_acl_free(acl);
    berth_acl_free(open);
    berth_acl_free(stars);
}

/* Whether a user may do anything at all (the web UI asks for a login when not). */
static void test_acl__grants_some(void **state)
{
    berth_acl *acl = build(rules_yaml);
    berth_acl *open = build("listen: 127.0.0.1:1\n");
    (void)state;
    assert_true(berth_acl_grants_some(acl, "alice", P));
    assert_true(berth_acl_grants_some(acl, "bob", P));      /* team/ */
    assert_true(berth_acl_grants_some(acl, NULL, P));       /* public/ */
    assert_false(berth_acl_grants_some(acl, "mallory", P)); /* no rule names mallory */
    assert_true(berth_acl_grants_some(acl, "bob", D));      /* team/bob-* */
    assert_false(berth_acl_grants_some(acl, "dave", D));
    assert_false(berth_acl_grants_some(acl, NULL, U));
    assert_true(berth_acl_grants_some(open, "anyone", P));
    assert_false(berth_acl_grants_some(open, NULL, P));
    assert_false(berth_acl_grants_some(NULL, "alice", P));
    berth_acl_free(acl);
    berth_acl_free(open);
}

static void test_acl__unknown_group_is_refused(void **state)
{
    berth_config *cfg = NULL;
    berth_acl *acl = NULL;
    static const char yaml[] = "access:\n  - repositories: x\n    groups: [nobody]\n";
    (void)state;
    assert_int_equal(berth_config_new(&cfg), 0);
    assert_int_equal(berth_config_load_string(cfg, "a", yaml, strlen(yaml)), 0);
    assert_int_equal(berth_acl_new(&acl, cfg), BERTH_EINVALID);
    assert_null(acl);
    assert_string_equal(berth_error_last(), "access[0].groups: unknown group 'nobody'");
    berth_config_free(cfg);
}

static void test_acl__catalog_filter(void **state)
{
    berth_acl *acl = build(rules_yaml);
    const char *repos[] = {"private/db", "public/a", "team/app", "public/b", "drop/a"};
    const char *anon[5];
    (void)state;
    memcpy(anon, repos, sizeof(repos));
    assert_int_equal(berth_acl_filter_pullable(acl, "carol", repos, 5), 1);
    assert_string_equal(repos[0], "team/app");
    assert_int_equal(berth_acl_filter_pullable(acl, NULL, anon, 5), 2);
    assert_string_equal(anon[0], "public/a");
    assert_string_equal(anon[1], "public/b");
    berth_acl_free(acl);
}

static void test_acl__action_for_method(void **state)
{
    (void)state;
    assert_int_equal(berth_acl_action_for_method("GET"), P);
    assert_int_equal(berth_acl_action_for_method("HEAD"), P);
    assert_int_equal(berth_acl_action_for_method("PUT"), U);
    assert_int_equal(berth_acl_action_for_method("POST"), U);
    assert_int_equal(berth_acl_action_for_method("PATCH"), U);
    assert_int_equal(berth_acl_action_for_method("DELETE"), D);
    assert_int_equal(berth_acl_action_for_method("get"), 0);
    assert_int_equal(berth_acl_action_for_method("OPTIONS"), 0);
    assert_int_equal(berth_acl_action_for_method(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acl__matrix),
        cmocka_unit_test(test_acl__combined_actions_need_all),
        cmocka_unit_test(test_acl__no_rules_means_authenticated_only),
        cmocka_unit_test(test_acl__allows_everywhere),
        cmocka_unit_test(test_acl__grants_some),
        cmocka_unit_test(test_acl__unknown_group_is_refused),
        cmocka_unit_test(test_acl__catalog_filter),
        cmocka_unit_test(test_acl__action_for_method),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
