/* SPDX-License-Identifier: Apache-2.0 */
/*
 * acl.c: access rules. The configuration's rules and groups are copied into one immutable
 * structure: each rule keeps its glob, its actions, its anonymous flag and the flattened set
 * of user names it names directly or through groups. Queries never write, so no lock is needed.
 * Repository globs use fnmatch(3) without FNM_PATHNAME: the glob "team/" followed by '*' matches
 * "team/a/b" too, which is what a registry operator expects from a namespace prefix.
 */
#include "acl.h"

#include <berth/errors.h>

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

typedef struct acl_rule {
    char *glob;
    unsigned actions;
    bool anonymous;
    char **users; /* direct users and members of the named groups */
    size_t users_count;
} acl_rule;

struct berth_acl {
    acl_rule *rules;
    size_t count;
    bool open_default; /* no rules: authenticated users get everything */
};

void berth_acl_free(berth_acl *acl)
{
    if (!acl) {
        return;
    }
    for (size_t i = 0; i < acl->count; i++) {
        free(acl->rules[i].glob);
        for (size_t j = 0; j < acl->rules[i].users_count; j++) {
            free(acl->rules[i].users[j]);
        }
        free(acl->rules[i].users);
    }
    free(acl->rules);
    free(acl);
}

static int add_user(acl_rule *r, const char *name)
{
    char **grown = NULL;
    char *copy = NULL;

    for (size_t i = 0; i < r->users_count; i++) {
        if (strcmp(r->users[i], name) == 0) {
            return 0;
        }
    }
    copy = strdup(name);
    grown = copy ? realloc(r->users, (r->users_count + 1) * sizeof(*r->users)) : NULL;
    if (!grown) {
        free(copy);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    r->users = grown;
    r->users[r->users_count++] = copy;
    return 0;
}

int berth_acl_new(berth_acl **out, const berth_config *cfg)
{
    berth_acl *acl = NULL;
    int error = 0;

    if (!out || !cfg) {
        return berth_error_set(BERTH_EINVALID, "berth_acl_new: missing argument");
    }
    *out = NULL;
    berth_error_clear();
    acl = calloc(1, sizeof(*acl));
    if (!acl ||
        (cfg->access_count && !(acl->rules = calloc(cfg->access_count, sizeof(*acl->rules))))) {
        error = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    acl->open_default = cfg->access_count == 0;
    for (size_t i = 0; i < cfg->access_count; i++) {
        const berth_config_rule *src = &cfg->access[i];
        acl_rule *r = &acl->rules[i];
        acl->count = i + 1;
        r->actions = src->actions;
        r->anonymous = src->anonymous;
        r->glob = strdup(src->repositories ? src->repositories : "*");
        if (!r->glob) {
            error = berth_error_set(BERTH_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t u = 0; src->users && src->users[u]; u++) {
            if ((error = add_user(r, src->users[u])) < 0) {
                goto out;
            }
        }
        for (size_t g = 0; src->groups && src->groups[g]; g++) {
            const berth_config_group *group = NULL;
            for (size_t k = 0; k < cfg->groups_count; k++) {
                if (strcmp(cfg->groups[k].name, src->groups[g]) == 0) {
                    group = &cfg->groups[k];
                }
            }
            if (!group) {
                error = berth_error_set(BERTH_EINVALID, "access[%zu].groups: unknown group '%s'", i,
                                        src->groups[g]);
                goto out;
            }
            for (size_t u = 0; group->users && group->users[u]; u++) {
                if ((error = add_user(r, group->users[u])) < 0) {
                    goto out;
                }
            }
        }
    }
    *out = acl;
    acl = NULL;
out:
    berth_acl_free(acl);
    return error;
}

static bool rule_names(const acl_rule *r, const char *user)
{
    if (!user) {
        return r->anonymous;
    }
    for (size_t i = 0; i < r->users_count; i++) {
        if (strcmp(r->users[i], user) == 0) {
            return true;
        }
    }
    return false;
}

bool berth_acl_grants_some(const berth_acl *acl, const char *user, unsigned action)
{
    if (!acl) {
        return false;
    }
    if (acl->open_default) {
        return user != NULL;
    }
    for (size_t i = 0; i < acl->count; i++) {
        if ((acl->rules[i].actions & action) && rule_names(&acl->rules[i], user)) {
            return true;
        }
    }
    return false;
}

unsigned berth_acl_granted(const berth_acl *acl, const char *user, const char *repo,
                           unsigned actions)
{
    unsigned granted = 0;

    if (!acl || !repo) {
        return 0;
    }
    if (acl->open_default) {
        return user ? actions : 0;
    }
    for (size_t i = 0; i < acl->count && granted != actions; i++) {
        const acl_rule *r = &acl->rules[i];
        if (rule_names(r, user) && fnmatch(r->glob, repo, 0) == 0) {
            granted |= r->actions & actions;
        }
    }
    return granted;
}

bool berth_acl_allows(const berth_acl *acl, const char *user, const char *repo, unsigned action)
{
    return action != 0 && berth_acl_granted(acl, user, repo, action) == action;
}

bool berth_acl_allows_everywhere(const berth_acl *acl, const char *user, unsigned action)
{
    if (!acl || action == 0) {
        return false;
    }
    if (acl->open_default) {
        return user != NULL;
    }
    for (size_t i = 0; i < acl->count; i++) {
        const acl_rule *r = &acl->rules[i];
        if (rule_names(r, user) && (r->actions & action) == action &&
            r->glob[strspn(r->glob, "*")] == '\0' && r->glob[0] != '\0') {
            return true;
        }
    }
    return false;
}

size_t berth_acl_filter_pullable(const berth_acl *acl, const char *user, const char **repos,
                                 size_t count)
{
    size_t kept = 0;

    for (size_t i = 0; repos && i < count; i++) {
        if (berth_acl_allows(acl, user, repos[i], BERTH_ACTION_PULL)) {
            repos[kept++] = repos[i];
        }
    }
    return kept;
}

unsigned berth_acl_action_for_method(const char *method)
{
    if (!method) {
        return 0;
    }
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
        return BERTH_ACTION_PULL;
    }
    if (strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0) {
        return BERTH_ACTION_PUSH;
    }
    if (strcmp(method, "DELETE") == 0) {
        return BERTH_ACTION_DELETE;
    }
    return 0;
}
