/* SPDX-License-Identifier: Apache-2.0 */
/* berth tags: the tags of a repository (following pagination) or of an OCI layout, one a line. */
#include "cli/cli.h"
#include "cli/client_opts.h"
#include "cli/client_ref.h"

#include <berth/errors.h>

#include <stdio.h>
#include <string.h>

static const char help[] =
    "usage: berth tags [docker://]HOST[:PORT]/NAME | oci:DIR [options]\n"
    "\n"
    "List the tags of a repository, or the names (org.opencontainers.image.ref.name)\n"
    "of the images of an OCI image layout, one a line.\n" CLI_CLIENT_OPTS_HELP;

static int print_name(const char *name, void *payload)
{
    (void)payload;
    printf("%s\n", name);
    return 0;
}

int cmd_tags(int argc, char **argv)
{
    cli_client_opts co = {0};
    berth_client *c = NULL;
    cli_target t = {0};
    const char *arg = NULL;
    int ret = 2;

    if (cli_wants_help(argc, argv)) {
        fputs(help, stdout);
        return 0;
    }
    if (cli_client_one_arg(&co, "tags", argc, argv, &arg) < 0) {
        goto out;
    }
    if (!arg) {
        fputs(help, stderr);
        goto out;
    }
    ret = 1;
    if (cli_target_parse(&t, "tags", arg) < 0) {
        goto out;
    }
    if (t.lref) {
        if (t.lref->tag) {
            fprintf(stderr, "berth tags: %s: name the layout without a tag (oci:%s)\n", arg,
                    t.lref->path);
            ret = 2;
            goto out;
        }
        if (berth_layout_list_tags(t.lref->path, print_name, NULL) < 0) {
            cli_client_fail("tags");
            goto out;
        }
        ret = 0;
        goto out;
    }
    if (cli_client_open(&c, &co, "tags") < 0) {
        goto out;
    }
    if (berth_client_list_tags(c, t.ref->registry, t.ref->repository, print_name, NULL) < 0) {
        cli_client_fail("tags");
        goto out;
    }
    ret = 0;
out:
    cli_target_dispose(&t);
    berth_client_free(c);
    cli_client_opts_dispose(&co);
    return ret;
}
