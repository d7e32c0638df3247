/* SPDX-License-Identifier: Apache-2.0 */
/* References for the client commands, as people type them: `HOST/NAME[:TAG][@DIGEST]`, the
 * same after skopeo's `docker://`, and OCI layouts `oci:DIR[:TAG]` where a command reads them. */
#include "cli/client_ref.h"

#include <berth/client.h>
#include <berth/errors.h>

#include <stdio.h>
#include <stdlib.h>

int cli_ref_parse(berth_reference **out, const char *cmd, const char *text)
{
    const char *rest = text;
    int t = berth_transport_of(text, &rest);
    if (t < 0) {
        fprintf(stderr, "berth %s: %s\n", cmd, berth_error_last());
        return -1;
    }
    if (t == BERTH_TRANSPORT_LAYOUT) {
        fprintf(stderr, "berth %s: %s: an OCI layout; this command wants a registry reference\n",
                cmd, text);
        return -1;
    }
    if (berth_reference_parse(out, rest) < 0) {
        fprintf(stderr, "berth %s: %s: %s\n", cmd, text, berth_error_last());
        return -1;
    }
    return 0;
}

int cli_target_parse(cli_target *out, const char *cmd, const char *text)
{
    out->ref = NULL;
    out->lref = NULL;
    if (berth_transport_of(text, NULL) == BERTH_TRANSPORT_LAYOUT) {
        if (berth_layout_ref_parse(&out->lref, text) < 0) {
            fprintf(stderr, "berth %s: %s: %s\n", cmd, text, berth_error_last());
            return -1;
        }
        return 0;
    }
    return cli_ref_parse(&out->ref, cmd, text);
}

void cli_target_dispose(cli_target *t)
{
    berth_reference_free(t->ref);
    berth_layout_ref_free(t->lref);
    t->ref = NULL;
    t->lref = NULL;
}

const char *cli_ref_name(const berth_reference *r)
{
    return r->has_digest ? r->digest.str : r->tag;
}
