/* SPDX-License-Identifier: Apache-2.0 */
/* berth: the command line. A table of commands; each lives in cmd_<name>.c. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const berth_cli_command commands[] = {
    {"serve", "run the registry", cmd_serve},
    {"copy", "copy an image between registries and OCI layouts", cmd_copy},
    {"inspect", "show a manifest or an image config", cmd_inspect},
    {"tags", "list the tags of a repository", cmd_tags},
    {"catalog", "list the repositories of a registry", cmd_catalog},
    {"delete", "delete a manifest or a tag", cmd_delete},
    {"login", "check and store credentials for a registry", cmd_login},
    {"logout", "remove stored credentials", cmd_logout},
    {"gc", "remove unreferenced content from a store", cmd_gc},
    {"fsck", "verify a store", cmd_fsck},
    {"du", "space used per repository of a store", cmd_du},
    {"import", "load a stopped fs root into the configured storage", cmd_import},
    {"db", "upgrade or show the metadata database's schema", cmd_db},
    {"version", "print the version", cmd_version},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: berth <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(f, "\n'berth <command> --help' tells more.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        return cmd_version(argc - 1, argv + 1);
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "berth: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
