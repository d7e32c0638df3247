/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the descriptor parser (with platform and base64 `data`). A descriptor that
 * parses must serialise, parse again and serialise to the same text.
 */
#include <berth/buf.h>
#include <berth/descriptor.h>

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    berth_descriptor *d = NULL, *d2 = NULL;
    berth_buf out = BERTH_BUF_INIT, out2 = BERTH_BUF_INIT;

    if (berth_descriptor_parse(&d, (const char *)data, size) == 0) {
        if (berth_descriptor_serialize(&out, d) != 0 ||
            berth_descriptor_parse(&d2, out.ptr, out.len) != 0 ||
            berth_descriptor_serialize(&out2, d2) != 0 || out.len != out2.len ||
            memcmp(out.ptr, out2.ptr, out.len) != 0) {
            abort();
        }
    }
    berth_descriptor_free(d);
    berth_descriptor_free(d2);
    berth_buf_dispose(&out);
    berth_buf_dispose(&out2);
    return 0;
}
