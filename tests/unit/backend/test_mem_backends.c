/* SPDX-License-Identifier: Apache-2.0 */
/* The in-memory backends (src/backend/mem) against the blob and metadata contract suites. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "backend/mem/mem.h"
#include "helpers/blob_contract.h"
#include "helpers/meta_contract.h"

static int open_blob(berth_blob_backend **out, void *payload)
{
    return berth_mem_blob_backend_new(out);
}

static int open_meta(berth_meta_backend **out, void *payload)
{
    return berth_mem_meta_backend_new(out);
}

int main(void)
{
    int failed = 0;
    failed += blob_contract_run("blob_contract/mem", open_blob, NULL);
    failed += meta_contract_run("meta_contract/mem", open_meta, NULL);
    return failed ? 1 : 0;
}
