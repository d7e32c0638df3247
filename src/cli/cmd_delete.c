/* SPDX-License-Identifier: Apache-2.0 */
/* berth delete: not written yet. */
#include "cli/cli.h"

#include <stdio.h>

int cmd_delete(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "berth delete: not implemented yet\n");
    return 1;
}
