/* SPDX-License-Identifier: Apache-2.0 */
/* berth/range.h: the byte-range headers of the registry API (Content-Range, Range). */
#ifndef BERTH_RANGE_H
#define BERTH_RANGE_H

#include "common.h"

/** An inclusive byte range: `start` <= `end`, `end - start + 1` bytes. */
typedef struct berth_byte_range {
    uint64_t start;
    uint64_t end;
} berth_byte_range;

/**
 * Parse the Content-Range of an upload PATCH: `<start>-<end>` as the distribution spec writes
 * it, or the RFC 9110 form `bytes <start>-<end>/<total>` (total may be `*`). Both ends are
 * inclusive. Spaces and tabs around the value are ignored; nothing else is.
 * @param out  receives the range (untouched on failure)
 * @param s    the header value, `len` bytes, need not be NUL-terminated
 * @return 0; BERTH_EINVALID (message set) for text that is not such a range or a number over
 *         UINT64_MAX; BERTH_ERANGE when start > end or end >= total
 */
int berth_content_range_parse(berth_byte_range *out, const char *s, size_t len);

/**
 * Parse a Range request header of a blob GET and resolve it against the blob's size, by the
 * rules of RFC 9110 section 14: `bytes=<first>-<last>`, `bytes=<first>-`, `bytes=-<suffix>`;
 * the unit is case-insensitive; a last position past the end is clamped to size - 1; a suffix
 * longer than the blob selects all of it. Numbers too large for 64 bits are read as "huge".
 * @param out   receives the satisfiable range (untouched on failure)
 * @param s     the header value, `len` bytes
 * @param size  the blob's size in bytes
 * @return 0; BERTH_EINVALID for a malformed header (RFC: the server may ignore it);
 *         BERTH_EUNSUPPORTED for several ranges or another unit (the server serves the whole
 *         blob); BERTH_ERANGE when the range cannot be satisfied or its last position is
 *         before its first (416, `bytes * /size`)
 */
int berth_range_parse(berth_byte_range *out, const char *s, size_t len, uint64_t size);

/** Bytes in a range: end - start + 1 (UINT64_MAX for the whole 64-bit space). */
uint64_t berth_range_length(const berth_byte_range *r);

#endif
