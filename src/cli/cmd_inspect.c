/* SPDX-License-Identifier: Apache-2.0 */
/* berth inspect: not written yet. */
#include "cli/cli.h"

#include <stdio.h>

int cmd_inspect(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "berth inspect: not implemented yet\n");
    return 1;
}
