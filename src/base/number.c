/* SPDX-License-Identifier: Apache-2.0 */
/* The one checked numeric parser: every number read from outside goes through it; and the one
 * grammar of durations and sizes, for the configuration, the environment and every command. */
#include <berth/common.h>
#include <berth/errors.h>

#include <string.h>

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

/* digits, then one unit of `units` ("" = no unit), e.g. 30s, 4MiB. */
typedef struct unit {
    const char *suffix;
    uint64_t mult;
} unit;

static int parse_with_units(uint64_t *out, const char *text, const unit *units, size_t nunits,
                            uint64_t max, const char *what, const char *grammar)
{
    size_t digits = 0;
    uint64_t n = 0;

    if (!out || !text) {
        return berth_error_set(BERTH_EINVALID, "no %s", what);
    }
    while (text[digits] >= '0' && text[digits] <= '9') {
        digits++;
    }
    if (digits == 0 || berth_parse_u64(&n, text, digits, UINT64_MAX) < 0) {
        return berth_error_set(BERTH_EINVALID, "invalid %s '%s' (%s)", what, text, grammar);
    }
    for (size_t i = 0; i < nunits; i++) {
        if (strcmp(text + digits, units[i].suffix) == 0) {
            if (n > max / units[i].mult) {
                return berth_error_set(BERTH_EINVALID, "%s '%s' is too large", what, text);
            }
            *out = n * units[i].mult;
            return 0;
        }
    }
    return berth_error_set(BERTH_EINVALID, "invalid %s '%s' (%s)", what, text, grammar);
}

int berth_parse_duration(uint64_t *out, const char *text)
{
    static const unit units[] = {{"", 1}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
    /* at most 2^32-1 s (136 years): a time plus a duration never overflows a time_t */
    return parse_with_units(out, text, units, sizeof(units) / sizeof(units[0]), BERTH_DURATION_MAX,
                            "duration", "digits and s, m, h or d: 0, 30s, 5m, 12h, 7d");
}

int berth_parse_size(uint64_t *out, const char *text)
{
    static const unit units[] = {
        {"", 1},
        {"B", 1},
        {"K", 1024},
        {"KiB", 1024},
        {"KB", 1000},
        {"M", 1024 * 1024},
        {"MiB", 1024 * 1024},
        {"MB", 1000 * 1000},
        {"G", 1024ull * 1024 * 1024},
        {"GiB", 1024ull * 1024 * 1024},
        {"GB", 1000ull * 1000 * 1000},
        {"T", 1024ull * 1024 * 1024 * 1024},
        {"TiB", 1024ull * 1024 * 1024 * 1024},
        {"TB", 1000ull * 1000 * 1000 * 1000},
    };
    return parse_with_units(out, text, units, sizeof(units) / sizeof(units[0]), UINT64_MAX, "size",
                            "digits and B, KiB, MiB, GiB, TiB, KB, MB, GB or TB: 512, 4MiB, 10GB");
}
