/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: Content-Range and Range. A parsed Content-Range has start <= end; a resolved
 * Range lies inside the blob, for several blob sizes including 0 and the 64-bit maximum.
 */
#include <berth/range.h>

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t sizes[] = {0, 1, 2, 10, 1000, 1ull << 40, UINT64_MAX};
    const char *s = (const char *)data;
    berth_byte_range r;

    if (berth_content_range_parse(&r, s, size) == 0 && r.start > r.end) {
        abort();
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        if (berth_range_parse(&r, s, size, sizes[i]) == 0) {
            if (r.start > r.end || r.end >= sizes[i] || berth_range_length(&r) == 0) {
                abort();
            }
        }
    }
    return 0;
}
