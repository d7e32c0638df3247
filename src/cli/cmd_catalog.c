/* SPDX-License-Identifier: Apache-2.0 */
/* berth catalog: the repositories of a registry, one a line, following pagination. */
#include "cli/cli.h"
#include "cli/client_opts.h"

#include <berth/errors.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: berth catalog [docker://]HOST[:PORT] [options]\n"
    "\n"
    "List the repositories of a registry, one a line.\n" CLI_CLIENT_OPTS_HELP;

static int print_name(const char *name, void *payload)
{
    (void)payload;
    printf("%s\n", name);
    return 0;
}

int cmd_catalog(int argc, char **argv)
{
    cli_client_opts co = {0};
    berth_client *c = NULL;
    const char *host = NULL;
    char *hostbuf = NULL;
    int ret = 2;

    if (cli_wants_help(argc, argv)) {
        fputs(help, stdout);
        return 0;
    }
    if (cli_client_one_arg(&co, "catalog", argc, argv, &host) < 0) {
        goto out;
    }
    if (host && strncmp(host, "docker://", 9) == 0) {
        host += 9; /* skopeo's transport prefix */
    }
    if (host && *host && host[strlen(host) - 1] == '/' &&
        strchr(host, '/') == host + strlen(host) - 1) {
        hostbuf = strndup(host, strlen(host) - 1); /* HOST/ as copied from a URL */
        host = hostbuf;
    }
    if (host && *host && strchr(host, '/')) {
        fprintf(stderr,
                "berth catalog: %s: names a repository; the catalog is a registry's, "
                "HOST[:PORT] (berth tags %s lists that repository's tags)\n",
                host, host);
        goto out;
    }
    if (!host || !*host || host[0] == ':') {
        fputs(help, stderr);
        goto out;
    }
    ret = 1;
    if (cli_client_open(&c, &co, "catalog") < 0) {
        goto out;
    }
    if (berth_client_catalog(c, host, print_name, NULL) < 0) {
        cli_client_fail("catalog");
        goto out;
    }
    ret = 0;
out:
    free(hostbuf);
    berth_client_free(c);
    cli_client_opts_dispose(&co);
    return ret;
}
