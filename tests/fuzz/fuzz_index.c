/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the index parser. An index that parses must serialise and parse again. */
#include <berth/buf.h>
#include <berth/index.h>

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    berth_index *idx = NULL, *idx2 = NULL;
    berth_buf out = BERTH_BUF_INIT;

    if (berth_index_parse(&idx, (const char *)data, size) == 0) {
        if (berth_index_serialize(&out, idx) != 0 ||
            berth_index_parse(&idx2, out.ptr, out.len) != 0) {
            abort();
        }
    }
    berth_index_free(idx);
    berth_index_free(idx2);
    berth_buf_dispose(&out);
    return 0;
}
