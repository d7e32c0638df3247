/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers of the client commands for registry references. */
#ifndef BERTH_CLI_CLIENT_REF_H
#define BERTH_CLI_CLIENT_REF_H

#include <berth/reference.h>

/** Parse a registry reference, printing "berth CMD: ..." on failure. @return 0 or -1 */
int cli_ref_parse(berth_reference **out, const char *cmd, const char *text);

/** The tag or digest a reference names (digest first). Borrowed. */
const char *cli_ref_name(const berth_reference *r);

#endif
