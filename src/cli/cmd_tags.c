/* SPDX-License-Identifier: Apache-2.0 */
/* berth tags: the tags of a repository (following pagination) or of an OCI layout, one a line. */
#include "cli/cli.h"
#include "cli/client_opts.h"
#include "cli/client_ref.h"

#include <berth/errors.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char help[] =
    "usage: berth tags [docker://]HOST[:PORT]/NAME | oci:DIR [options]\n"
    "\n"
    "List the tags of a repository, or the names (org.opencontainers.image.ref.name)\n"
    "of the images of an OCI image layout, one a line. A reference with a tag or a\n"
    "digest (HOST/NAME:TAG) is a usage error (exit 2): name the repository.\n" CLI_CLIENT_OPTS_HELP;

/* Does the reference text name a tag or a digest (`NAME:TAG`, `NAME@DIGEST`)? The parser fills
 * in `latest` when none is given, so the text is what tells. */
static bool names_tag(const char *text, const berth_reference *r)
{
    const char *last;
    if (strncmp(text, "docker://", 9) == 0) {
        text += 9;
    }
    last = strrchr(text, '/');
    last = last ? last + 1 : text;
    return r->has_digest || strchr(last, ':') != NULL;
}

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
    if (names_tag(arg, t.ref)) {
        /* skopeo list-tags refuses it too: the tag would be ignored */
        const char *plain = strncmp(arg, "docker://", 9) == 0 ? arg + 9 : arg;
        size_t n = strcspn(plain, "@");
        const char *colon = memchr(plain, ':', n);
        const char *slash = memchr(plain, '/', n);
        fprintf(stderr, "berth tags: %s: names %s; tags lists a repository: berth tags %s/%s\n",
                arg, t.ref->has_digest ? "a digest" : "a tag", t.ref->registry, t.ref->repository);
        if (!slash && colon) {
            fprintf(stderr,
                    "berth tags: (%s is read as the repository %s of %s; the repositories "
                    "of a registry: berth catalog %.*s)\n",
                    arg, t.ref->repository, t.ref->registry, (int)n, plain);
        }
        ret = 2;
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
