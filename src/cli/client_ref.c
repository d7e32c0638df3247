/* SPDX-License-Identifier: Apache-2.0 */
/* Registry references for the client commands. */
#include "cli/client_ref.h"

#include <berth/errors.h>

#include <stdio.h>

int cli_ref_parse(berth_reference **out, const char *cmd, const char *text)
{
    if (berth_layout_ref_is(text)) {
        fprintf(stderr, "berth %s: %s: an OCI layout; this command wants a registry reference\n",
                cmd, text);
        return -1;
    }
    if (berth_reference_parse(out, text) < 0) {
        fprintf(stderr, "berth %s: %s: %s\n", cmd, text, berth_error_last());
        return -1;
    }
    return 0;
}

const char *cli_ref_name(const berth_reference *r)
{
    return r->has_digest ? r->digest.str : r->tag;
}
