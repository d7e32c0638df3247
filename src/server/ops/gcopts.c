/* SPDX-License-Identifier: Apache-2.0 */
/* gcopts.c: translate the gc section of the serve configuration into berth_gc_options, so that
 * the periodic collector in the server and `berth gc --config` read retention the same way.
 * gc.untagged_delay becomes one more rule, last, over every repository: it only drops untagged
 * manifests older than the delay (keep_last and max_tag_age 0 drop no tag), so a rule's own
 * max_untagged_age can shorten it for its repositories, never lengthen it. With
 * storage.delete_enabled false no tag and no manifest is removed (keep_manifests). */
#include "gcopts.h"

#include <berth/errors.h>

#include <limits.h>
#include <stdlib.h>

int berth_gcopts_from_config(berth_gc_options *opts, berth_retention_rule **rules_out,
                             const berth_config *cfg)
{
    berth_retention_rule *rules = NULL;
    size_t nrules = 0;
    int error = 0;

    if (!opts || !rules_out || !cfg) {
        return berth_error_set(BERTH_EINVALID, "berth_gcopts_from_config: missing argument");
    }
    *rules_out = NULL;
    berth_error_clear();
    berth_gc_options_init(opts);
    if (cfg->gc.grace > INT64_MAX) {
        return berth_error_set(BERTH_EINVALID, "gc.grace: too large");
    }
    opts->grace_seconds = (int64_t)cfg->gc.grace;
    /* storage.delete_enabled: false (--no-deletes) keeps every tag and manifest: an operator
       who switches deletes off for compliance expects no image to go, gc's included */
    opts->keep_manifests = !cfg->storage.delete_enabled;
    if (cfg->gc.untagged_delay > INT64_MAX) {
        return berth_error_set(BERTH_EINVALID, "gc.untagged_delay: too large");
    }
    nrules = cfg->gc.retention_count + (cfg->gc.untagged_delay ? 1 : 0);
    if (nrules) {
        rules = calloc(nrules, sizeof(*rules));
        if (!rules) {
            error = berth_error_set(BERTH_ENOMEM, "out of memory");
            goto out;
        }
    }
    for (size_t i = 0; i < cfg->gc.retention_count; i++) {
        const berth_config_retention *r = &cfg->gc.retention[i];
        if (r->keep_last > UINT_MAX || r->max_tag_age > INT64_MAX ||
            r->max_untagged_age > INT64_MAX) {
            error = berth_error_set(BERTH_EINVALID, "gc.retention[%zu]: value too large", i);
            goto out;
        }
        rules[i].repositories = r->repositories;
        rules[i].tags = r->tags;
        rules[i].keep_last = (unsigned)r->keep_last;
        rules[i].max_tag_age = (int64_t)r->max_tag_age;
        rules[i].max_untagged_age = (int64_t)r->max_untagged_age;
    }
    if (cfg->gc.untagged_delay) {
        berth_retention_rule *all = &rules[cfg->gc.retention_count];
        all->repositories = "*";
        all->tags = "*";
        all->max_untagged_age = (int64_t)cfg->gc.untagged_delay;
    }
    opts->rules = rules;
    opts->nrules = nrules;
    *rules_out = rules;
    rules = NULL;
out:
    free(rules);
    return error;
}
