/* SPDX-License-Identifier: Apache-2.0 */
/* server/ops/gcopts.h: the configuration's gc section as the store's garbage-collection options. */
#ifndef BERTH_SERVER_OPS_GCOPTS_H
#define BERTH_SERVER_OPS_GCOPTS_H

#include <berth/config.h>
#include <berth/store.h>

/**
 * Fill `opts` (berth_gc_options_init() first, then gc.grace and gc.retention) from `cfg`.
 * @param opts       receives the options; `opts->rules` points into `*rules_out`
 * @param rules_out  receives the rule array (NULL when there are none); the caller frees it with
 *                   free() after the collection. Its strings are borrowed from `cfg`, which must
 *                   outlive it.
 * @return 0, BERTH_ENOMEM, or BERTH_EINVALID (a value that does not fit the store's types)
 */
int berth_gcopts_from_config(berth_gc_options *opts, berth_retention_rule **rules_out,
                             const berth_config *cfg);

#endif
