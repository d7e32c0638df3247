/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the digest parser. A digest that parses must format back to the same text. */
#include <berth/digest.h>

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    berth_digest d;
    if (berth_digest_parse(&d, (const char *)data, size) == 0) {
        if (strlen(d.str) != size || memcmp(d.str, data, size) != 0) {
            abort();
        }
    }
    return 0;
}
