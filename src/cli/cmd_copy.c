/* SPDX-License-Identifier: Apache-2.0 */
/* berth copy: not written yet. */
#include "cli/cli.h"

#include <stdio.h>

int cmd_copy(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "berth copy: not implemented yet\n");
    return 1;
}
