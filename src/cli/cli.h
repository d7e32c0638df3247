/* SPDX-License-Identifier: Apache-2.0 */
/* The command table and the entry point of each command (argv[0] is the command's name).
 * Exit status: 0 ok, 1 failure, 2 usage error. */
#ifndef BERTH_CLI_H
#define BERTH_CLI_H

#include <stdbool.h>
#include <stdint.h>

typedef struct berth_cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} berth_cli_command;

/** True when argv holds --help or -h; commands print their help and exit 0 then. */
bool cli_wants_help(int argc, char **argv);

int cmd_serve(int argc, char **argv);   /* cmd_serve.c */
int cmd_copy(int argc, char **argv);    /* cmd_copy.c */
int cmd_inspect(int argc, char **argv); /* cmd_inspect.c */
int cmd_tags(int argc, char **argv);    /* cmd_tags.c */
int cmd_catalog(int argc, char **argv); /* cmd_catalog.c */
int cmd_delete(int argc, char **argv);  /* cmd_delete.c */
int cmd_login(int argc, char **argv);   /* cmd_login.c */
int cmd_logout(int argc, char **argv);  /* cmd_login.c */
int cmd_version(int argc, char **argv); /* cmd_version.c */
int cmd_gc(int argc, char **argv);      /* cmd_maint.c */
int cmd_fsck(int argc, char **argv);    /* cmd_maint.c */
int cmd_du(int argc, char **argv);      /* cmd_maint.c */
int cmd_db(int argc, char **argv);      /* cmd_db.c */
int cmd_import(int argc, char **argv);  /* cmd_import.c */

/**
 * What opening a store at `root` would create (malloc()ed): the first directory of the path
 * that does not exist, or ROOT/_berth in an existing directory; NULL for an existing store.
 * For cli_root_remove() when the server does not start. (cmd_maint.c)
 */
char *cli_root_missing(const char *root);

/**
 * Remove directory `dir` (a root cli_root_missing() named) when it holds an empty store only:
 * directories and the lock file, nothing else.
 */
void cli_root_remove(const char *dir);

/** Parse a duration: a number with a unit s, m, h or d ("90s", "12h"). @return 0 or -1 */
int cli_parse_duration(int64_t *out, const char *text);

#endif
