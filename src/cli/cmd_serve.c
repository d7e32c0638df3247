/* SPDX-License-Identifier: Apache-2.0 */
/* berth serve: not written yet. */
#include "cli/cli.h"

#include <stdio.h>

int cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "berth serve: not implemented yet\n");
    return 1;
}
