/* SPDX-License-Identifier: Apache-2.0 */
/* berth delete: delete a manifest (REF@DIGEST) or a tag (REF:TAG) from a registry. */
#include "cli/cli.h"
#include "cli/client_opts.h"
#include "cli/client_ref.h"

#include <berth/errors.h>

#include <stdio.h>
#include <string.h>

static const char help[] =
    "usage: berth delete [docker://]HOST[:PORT]/NAME(:TAG|@DIGEST) [options]\n"
    "\n"
    "Delete a manifest by digest, or a tag (a registry that cannot delete tags, such as\n"
    "Distribution, answers UNSUPPORTED: delete the digest then).\n"
    "\n"
    "The space: deleting a tag leaves its manifest untagged. A berth server's online gc (on\n"
    "by default, every gc.interval: 1h) removes an untagged manifest that no tag or index\n"
    "needs once it is older than gc.untagged_delay (1d), then the blobs nothing references\n"
    "any more once unused for gc.grace (1h); so the space is free within about a day.\n"
    "Deleting by digest removes the manifest at once; its blobs go at the next gc. On a\n"
    "stopped server's root, `berth gc --root DIR --max-untagged-age 0s` frees it "
    "now.\n" CLI_CLIENT_OPTS_HELP;

int cmd_delete(int argc, char **argv)
{
    cli_client_opts co = {0};
    berth_client *c = NULL;
    berth_reference *ref = NULL;
    const char *arg = NULL;
    int ret = 2;

    if (cli_wants_help(argc, argv)) {
        fputs(help, stdout);
        return 0;
    }
    if (cli_client_one_arg(&co, "delete", argc, argv, &arg) < 0) {
        goto out;
    }
    if (!arg) {
        fputs(help, stderr);
        goto out;
    }
    ret = 1;
    if (cli_ref_parse(&ref, "delete", arg) < 0 || cli_client_open(&c, &co, "delete") < 0) {
        goto out;
    }
    if (berth_client_delete_manifest(c, ref->registry, ref->repository, cli_ref_name(ref)) < 0) {
        cli_client_fail("delete");
        goto out;
    }
    if (!co.quiet) {
        printf("deleted %s\n", arg);
    }
    ret = 0;
out:
    berth_reference_free(ref);
    berth_client_free(c);
    cli_client_opts_dispose(&co);
    return ret;
}
