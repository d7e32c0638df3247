/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers of the client commands for references: registry ones (with or without skopeo's
 * `docker://`) and OCI layouts. */
#ifndef BERTH_CLI_CLIENT_REF_H
#define BERTH_CLI_CLIENT_REF_H

#include <berth/reference.h>

/** Parse a registry reference (`docker://` accepted), printing "berth CMD: ..." on failure
 * (an OCI layout or another transport is refused). @return 0 or -1 */
int cli_ref_parse(berth_reference **out, const char *cmd, const char *text);

/** What a command reads: a registry reference or an OCI layout (one of the two is set). */
typedef struct cli_target {
    berth_reference *ref;
    berth_layout_ref *lref;
} cli_target;

/** Parse a registry reference or `oci:DIR[:TAG]`, printing "berth CMD: ..." on failure.
 * @return 0 (free with cli_target_dispose()) or -1 */
int cli_target_parse(cli_target *out, const char *cmd, const char *text);

/** Free what a target holds. */
void cli_target_dispose(cli_target *t);

/** The tag or digest a reference names (digest first). Borrowed. */
const char *cli_ref_name(const berth_reference *r);

#endif
