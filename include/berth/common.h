/* SPDX-License-Identifier: Apache-2.0 */
/* berth/common.h: definitions shared by every libberth header (slices, attributes). */
#ifndef BERTH_COMMON_H
#define BERTH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define BERTH_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define BERTH_WARN_UNUSED       __attribute__((warn_unused_result))
#else
#define BERTH_PRINTF(fmt, args)
#define BERTH_WARN_UNUSED
#endif

/** A non-owning view of bytes: `ptr` is borrowed and need not be NUL-terminated. */
typedef struct berth_slice {
    const char *ptr;
    size_t len;
} berth_slice;

/** A slice over a NUL-terminated string (NULL gives an empty slice). */
static inline berth_slice berth_slice_from(const char *s)
{
    berth_slice out = {s ? s : "", 0};
    while (s && s[out.len]) {
        out.len++;
    }
    return out;
}

/**
 * Parse an unsigned decimal number that fills `len` bytes of `s` exactly: digits only, no sign,
 * no spaces, at least one digit, no overflow past `max`.
 * @param out    receives the value
 * @return 0, or BERTH_EINVALID (message set) when the text is not such a number
 */
int berth_parse_u64(uint64_t *out, const char *s, size_t len, uint64_t max);

/**
 * Parse a duration, the one grammar of the configuration, the environment and every command:
 * digits with an optional unit `s`, `m`, `h` or `d` (none = seconds): `0`, `30s`, `5m`, `12h`,
 * `7d`. No fractions, signs or spaces; at most BERTH_DURATION_MAX seconds (136 years), so that
 * a time plus a duration never overflows.
 * @param out  receives the number of seconds
 * @return 0, or BERTH_EINVALID (message set, naming the grammar)
 */
int berth_parse_duration(uint64_t *out, const char *text);

/** The longest duration berth_parse_duration() accepts: 2^32-1 seconds (about 136 years). */
#define BERTH_DURATION_MAX 4294967295ull

/**
 * Parse a size: digits with an optional unit `B`; binary `K`/`KiB`, `M`/`MiB`, `G`/`GiB`,
 * `T`/`TiB`; decimal `KB`, `MB`, `GB`, `TB` (none = bytes): `512`, `4MiB`, `10GB`.
 * @param out  receives the number of bytes
 * @return 0, or BERTH_EINVALID (message set, naming the grammar)
 */
int berth_parse_size(uint64_t *out, const char *text);

#endif
