/* SPDX-License-Identifier: Apache-2.0 */
/* server/ops/acl.h: access rules: who may pull, push or delete in which repositories. */
#ifndef BERTH_SERVER_OPS_ACL_H
#define BERTH_SERVER_OPS_ACL_H

#include <berth/config.h>

/**
 * The compiled access rules. Immutable once built, so any number of threads may query it.
 * Semantics: a request is allowed when at least one rule matches the repository (an fnmatch(3)
 * glob without FNM_PATHNAME, so '*' also matches '/') and names the user, one of the user's
 * groups, or is `anonymous: true` for an unauthenticated client, and lists the action. Rules only
 * grant; nothing denies. With no rules at all, every authenticated user may do everything and
 * anonymous clients nothing (an open server is configured with an explicit anonymous rule).
 */
typedef struct berth_acl berth_acl;

/**
 * Build the rules from a configuration (copies what it needs; `cfg` may be freed afterwards).
 * @param out  receives the rules; free with berth_acl_free()
 * @return 0, BERTH_ENOMEM, or BERTH_EINVALID when a rule names an unknown group
 */
int berth_acl_new(berth_acl **out, const berth_config *cfg);

/**
 * May `user` (NULL = anonymous) perform `action` (one BERTH_ACTION_* bit) on `repo`?
 */
bool berth_acl_allows(const berth_acl *acl, const char *user, const char *repo, unsigned action);

/**
 * Whether `user` (NULL = anonymous) may perform `action` on every repository, whatever its name:
 * there are no rules and the user is authenticated, or a rule naming the user (or anonymous
 * clients, for NULL) grants the action with a glob made of '*' only. Conservative: rules whose
 * globs together cover every name are not recognised.
 */
bool berth_acl_allows_everywhere(const berth_acl *acl, const char *user, unsigned action);

/**
 * Whether some rule lets `user` (NULL = anonymous) perform `action` on some repository: whether
 * there is anything at all the user may see (the web UI asks for a login when there is not).
 */
bool berth_acl_grants_some(const berth_acl *acl, const char *user, unsigned action);

/**
 * The subset of `actions` (BERTH_ACTION_* bits) that `user` may perform on `repo`: what a token
 * endpoint grants for a requested scope.
 */
unsigned berth_acl_granted(const berth_acl *acl, const char *user, const char *repo,
                           unsigned actions);

/**
 * Catalog filtering: keep only the repositories `user` may pull, in place, preserving order.
 * Strings are borrowed; nothing is freed.
 * @return the new count
 */
size_t berth_acl_filter_pullable(const berth_acl *acl, const char *user, const char **repos,
                                 size_t count);

/**
 * The action an HTTP method needs on a repository: GET and HEAD pull, PUT, POST and PATCH push,
 * DELETE delete; 0 for anything else (the caller refuses the method).
 */
unsigned berth_acl_action_for_method(const char *method);

/** Free the rules; NULL is fine. */
void berth_acl_free(berth_acl *acl);

#endif
