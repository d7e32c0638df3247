/* SPDX-License-Identifier: Apache-2.0 */
/* The in-memory backends (src/backend/mem) against the blob and metadata contract suites. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "backend/mem/mem.h"
#include "helpers/blob_contract.h"

static int open_blob(berth_blob_backend **out, void *payload)
{
    return berth_mem_blob_backend_new(out);
}

int main(void)
{
    int failed = 0;
    failed += blob_contract_run("blob_contract/mem", open_blob, NULL);
    return failed ? 1 : 0;
}
