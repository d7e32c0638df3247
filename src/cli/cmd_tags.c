/* SPDX-License-Identifier: Apache-2.0 */
/* berth tags: not written yet. */
#include "cli/cli.h"

#include <stdio.h>

int cmd_tags(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "berth tags: not implemented yet\n");
    return 1;
}
