/* SPDX-License-Identifier: Apache-2.0 */
/*
 * base64.c: the one base64 codec (RFC 4648 sections 4 and 5). The output size is computed
 * before anything is written, so a buffer grows once, a ceiling is checked against what the
 * text really holds, and a refused text leaves the buffer as it was. Strict modes refuse every
 * spelling but the canonical one (padding, unused bits), so that a credential or a token has
 * one spelling; BERTH__BASE64_LAX reads what other tools write by hand.
 */
#include "base/base64.h"

#include <berth/errors.h>

#include <string.h>

static const char std_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int berth__base64_encode(berth_buf *out, const void *data, size_t len, berth__base64_mode mode)
{
    const unsigned char *p = data;
    const bool url = mode == BERTH__BASE64_URL;
    const char *alpha = url ? url_alpha : std_alpha;
    size_t full = len / 3, rest = len % 3, size;
    char *q;
    int rc;

    if (full > (SIZE_MAX - 4) / 4) {
        return berth_error_set(BERTH_ETOOBIG, "base64: input too long");
    }
    size = full * 4 + (rest == 0 ? 0 : url ? rest + 1 : 4);
    if ((rc = berth_buf_grow(out, size)) < 0) {
        return rc;
    }
    q = out->ptr + out->len;
    for (size_t i = 0; i < len; i += 3) {
        size_t n = len - i >= 3 ? 3 : len - i;
        uint32_t v = (uint32_t)p[i] << 16;
        if (n > 1) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (n > 2) {
            v |= p[i + 2];
        }
        *q++ = alpha[(v >> 18) & 63];
        *q++ = alpha[(v >> 12) & 63];
        if (n > 1) {
            *q++ = alpha[(v >> 6) & 63];
        } else if (!url) {
            *q++ = '=';
        }
        if (n > 2) {
            *q++ = alpha[v & 63];
        } else if (!url) {
            *q++ = '=';
        }
    }
    out->len += size;
    out->ptr[out->len] = '\0';
    return 0;
}

static int value_of(char c, berth__base64_mode mode)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if ((c == '+' && mode != BERTH__BASE64_URL) || (c == '-' && mode != BERTH__BASE64_STD)) {
        return 62;
    }
    if ((c == '/' && mode != BERTH__BASE64_URL) || (c == '_' && mode != BERTH__BASE64_STD)) {
        return 63;
    }
    return -1;
}

int berth__base64_decode(berth_buf *out, const char *text, size_t len, berth__base64_mode mode)
{
    size_t pad = 0, size, start = out->len;
    uint32_t acc = 0;
    unsigned bits = 0;
    char *q;
    int rc;

    switch (mode) {
    case BERTH__BASE64_STD:
        if (len % 4 != 0) {
            return berth_error_set(BERTH_EINVALID, "base64: length is not a multiple of 4");
        }
        while (pad < 2 && len > 0 && text[len - 1] == '=') {
            len--;
            pad++;
        }
        break;
    case BERTH__BASE64_URL:
        break;
    case BERTH__BASE64_LAX:
        while (len > 0 &&
               (text[len - 1] == '=' || text[len - 1] == '\n' || text[len - 1] == '\r')) {
            len--;
        }
        break;
    default:
        return berth_error_set(BERTH_EINVALID, "base64: unknown mode");
    }
    /* what is left is only alphabet characters: 6 bits each, of which whole bytes count */
    if (len % 4 == 1) {
        return berth_error_set(BERTH_EINVALID, "base64: truncated (a dangling character)");
    }
    if (pad && (len % 4) + pad != 4) {
        return berth_error_set(BERTH_EINVALID, "base64: bad padding");
    }
    size = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if ((rc = berth_buf_grow(out, size)) < 0) {
        return rc;
    }
    q = out->ptr + start;
    for (size_t i = 0; i < len; i++) {
        int v = value_of(text[i], mode);
        if (v < 0) {
            out->ptr[start] = '\0';
            return berth_error_set(BERTH_EINVALID, "base64: invalid character at %zu", i);
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *q++ = (char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0 && mode != BERTH__BASE64_LAX) {
        out->ptr[start] = '\0';
        return berth_error_set(BERTH_EINVALID, "base64: non-zero unused bits");
    }
    out->len = start + size;
    out->ptr[out->len] = '\0';
    return 0;
}
