/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Byte-range headers. Content-Range (client to server, upload chunks) is parsed strictly: the
 * numbers go through berth_parse_u64 and an overflow is an error, because the server compares
 * them with real offsets. Range (blob GET) follows RFC 9110: its numbers may be arbitrarily
 * long, so they saturate at UINT64_MAX, which resolves correctly (a last position past the end
 * is clamped, a first position past the end is unsatisfiable, a huge suffix is the whole blob).
 */
#include <berth/errors.h>
#include <berth/range.h>

#include <string.h>

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && is_ows((*s)[0])) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_ows((*s)[*len - 1])) {
        (*len)--;
    }
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static size_t count_digits(const char *s, size_t len)
{
    size_t n = 0;
    while (n < len && is_digit(s[n])) {
        n++;
    }
    return n;
}

/* Case-insensitive match of an ASCII lowercase literal. */
static bool lit_nocase(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    if (len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        if (c != lit[i]) {
            return false;
        }
    }
    return true;
}

static int strict_number(uint64_t *out, const char *s, size_t len, const char *what)
{
    if (berth_parse_u64(out, s, len, UINT64_MAX) < 0) {
        return berth_error_set(BERTH_EINVALID, "Content-Range: invalid %s", what);
    }
    return 0;
}

int berth_content_range_parse(berth_byte_range *out, const char *s, size_t len)
{
    uint64_t start, end, total = 0;
    bool have_total = false;
    size_t n, i = 0;
    int rc;

    berth_error_clear();
    if (!out || !s) {
        return berth_error_set(BERTH_EINVALID, "Content-Range is empty");
    }
    trim(&s, &len);
    if (len == 0) {
        return berth_error_set(BERTH_EINVALID, "Content-Range is empty");
    }
    /* optional "bytes " unit, then start "-" end */
    bool unit = len > 6 && lit_nocase(s, 5, "bytes") && s[5] == ' ';
    if (unit) {
        i = 6;
    }
    n = count_digits(s + i, len - i);
    if (n == 0 || i + n >= len || s[i + n] != '-') {
        return berth_error_set(BERTH_EINVALID, "Content-Range must be <start>-<end>");
    }
    rc = strict_number(&start, s + i, n, "start");
    if (rc < 0) {
        return rc;
    }
    i += n + 1;
    n = count_digits(s + i, len - i);
    if (n == 0) {
        return berth_error_set(BERTH_EINVALID, "Content-Range must be <start>-<end>");
    }
    rc = strict_number(&end, s + i, n, "end");
    if (rc < 0) {
        return rc;
    }
    i += n;
    if (unit) {
        if (i >= len || s[i] != '/') {
            return berth_error_set(BERTH_EINVALID, "Content-Range: expected '/<total>'");
        }
        i++;
        if (i + 1 == len && s[i] == '*') {
            i++;
        } else {
            n = count_digits(s + i, len - i);
            if (n == 0) {
                return berth_error_set(BERTH_EINVALID, "Content-Range: invalid total");
            }
            rc = strict_number(&total, s + i, n, "total");
            if (rc < 0) {
                return rc;
            }
            have_total = true;
            i += n;
        }
    }
    if (i != len) {
        return berth_error_set(BERTH_EINVALID, "Content-Range: unexpected text after the range");
    }
    if (start > end) {
        return berth_error_set(BERTH_ERANGE, "Content-Range: start %llu is after end %llu",
                               (unsigned long long)start, (unsigned long long)end);
    }
    if (have_total && end >= total) {
        return berth_error_set(BERTH_ERANGE, "Content-Range: end %llu is not below total %llu",
                               (unsigned long long)end, (unsigned long long)total);
    }
    out->start = start;
    out->end = end;
    return 0;
}

/* Digits of unbounded length, saturating at UINT64_MAX. The caller checked len > 0. */
static uint64_t saturating_number(const char *s, size_t len)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return UINT64_MAX;
        }
        v = v * 10 + d;
    }
    return v;
}

typedef struct range_spec {
    bool suffix;    /* "-N" */
    bool open;      /* "N-" */
    uint64_t first; /* or the suffix length */
    uint64_t last;
} range_spec;

/* One range-spec of the set, without surrounding whitespace. */
static int parse_spec(range_spec *out, const char *s, size_t len)
{
    size_t n = count_digits(s, len);

    memset(out, 0, sizeof(*out));
    if (n == 0) {
        /* suffix-range: "-" digits */
        if (len < 2 || s[0] != '-' || count_digits(s + 1, len - 1) != len - 1) {
            return berth_error_set(BERTH_EINVALID, "Range: invalid range specifier");
        }
        out->suffix = true;
        out->first = saturating_number(s + 1, len - 1);
        return 0;
    }
    if (n == len || s[n] != '-') {
        return berth_error_set(BERTH_EINVALID, "Range: invalid range specifier");
    }
    out->first = saturating_number(s, n);
    if (n + 1 == len) {
        out->open = true;
        return 0;
    }
    if (count_digits(s + n + 1, len - n - 1) != len - n - 1) {
        return berth_error_set(BERTH_EINVALID, "Range: invalid range specifier");
    }
    out->last = saturating_number(s + n + 1, len - n - 1);
    if (out->last < out->first) {
        /* RFC 9110 14.2 lets a server ignore or reject it; the distribution spec's suite
           expects the rejection (416) */
        return berth_error_set(BERTH_ERANGE, "Range: last position before first");
    }
    return 0;
}

int berth_range_parse(berth_byte_range *out, const char *s, size_t len, uint64_t size)
{
    range_spec spec = {false, false, 0, 0};
    const char *eq;
    size_t i, count = 0;
    int rc;

    berth_error_clear();
    if (!out || !s) {
        return berth_error_set(BERTH_EINVALID, "Range is empty");
    }
    trim(&s, &len);
    eq = len ? memchr(s, '=', len) : NULL;
    if (!eq || eq == s) {
        return berth_error_set(BERTH_EINVALID, "Range must be <unit>=<ranges>");
    }
    for (const char *p = s; p < eq; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' ||
              c == '_' || c == '.' || c == '!' || c == '#' || c == '$' || c == '%' || c == '&' ||
              c == '\'' || c == '*' || c == '+' || c == '^' || c == '`' || c == '|' || c == '~')) {
            return berth_error_set(BERTH_EINVALID, "Range: invalid unit");
        }
    }
    if (!lit_nocase(s, (size_t)(eq - s), "bytes")) {
        return berth_error_set(BERTH_EUNSUPPORTED, "Range: unit '%.*s' is not supported",
                               (int)(eq - s > 32 ? 32 : eq - s), s);
    }
    /* range-set = 1#range-spec: elements separated by commas with optional whitespace; empty
     * elements are allowed by the list rule but at least one must be present. */
    i = (size_t)(eq - s) + 1;
    while (i <= len) {
        const char *elem = s + i;
        const char *comma = i < len ? memchr(elem, ',', len - i) : NULL;
        size_t elen = comma ? (size_t)(comma - elem) : len - i;
        range_spec cur;

        i += elen + 1;
        trim(&elem, &elen);
        if (elen == 0) {
            continue;
        }
        rc = parse_spec(&cur, elem, elen);
        if (rc < 0) {
            return rc;
        }
        if (count++ == 0) {
            spec = cur;
        }
    }
    if (count == 0) {
        return berth_error_set(BERTH_EINVALID, "Range has no range specifier");
    }
    if (count > 1) {
        return berth_error_set(BERTH_EUNSUPPORTED, "Range: multiple ranges are not supported");
    }
    if (spec.suffix) {
        if (spec.first == 0 || size == 0) {
            return berth_error_set(BERTH_ERANGE, "Range: empty suffix range");
        }
        out->start = spec.first >= size ? 0 : size - spec.first;
        out->end = size - 1;
        return 0;
    }
    if (spec.first >= size) {
        return berth_error_set(BERTH_ERANGE, "Range: first byte %llu is not below size %llu",
                               (unsigned long long)spec.first, (unsigned long long)size);
    }
    out->start = spec.first;
    out->end = spec.open || spec.last >= size ? size - 1 : spec.last;
    return 0;
}

uint64_t berth_range_length(const berth_byte_range *r)
{
    uint64_t n = r->end - r->start;
    return n == UINT64_MAX ? n : n + 1;
}
