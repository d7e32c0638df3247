/* SPDX-License-Identifier: Apache-2.0 */
/* berth catalog: not written yet. */
#include "cli/cli.h"

#include <stdio.h>

int cmd_catalog(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "berth catalog: not implemented yet\n");
    return 1;
}
