/* SPDX-License-Identifier: Apache-2.0 */
/* The one checked numeric parser: every number read from outside goes through it. */
#include <berth/common.h>
#include <berth/errors.h>

int berth_parse_u64(uint64_t *out, const char *s, size_t len, uint64_t max)
{
    uint64_t v = 0;

    if (!s || len == 0) {
        return berth_error_set(BERTH_EINVALID, "empty number");
    }
    for (size_t i = 0; i < len; i++) {
        unsigned d;
        if (s[i] < '0' || s[i] > '9') {
            return berth_error_set(BERTH_EINVALID, "not a decimal number");
        }
        d = (unsigned)(s[i] - '0');
        if (d > max || v > (max - d) / 10) {
            return berth_error_set(BERTH_EINVALID, "number too large");
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}
