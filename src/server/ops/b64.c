/* SPDX-License-Identifier: Apache-2.0 */
/* b64.c: base64 and base64url for Basic credentials and JWTs; strict decoding (no whitespace,
 * canonical padding, unused bits must be zero) so that one token has one spelling. */
#include "b64.h"

#include <berth/errors.h>

static const char std_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int berth__b64_encode(berth_buf *out, const void *data, size_t len, bool url)
{
    const unsigned char *p = data;
    const char *alpha = url ? url_alpha : std_alpha;
    int error = 0;

    for (size_t i = 0; error == 0 && i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        size_t n = len - i >= 3 ? 3 : len - i;
        char quad[4];
        size_t emit = n + 1;
        if (n > 1) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (n > 2) {
            v |= p[i + 2];
        }
        quad[0] = alpha[(v >> 18) & 63];
        quad[1] = alpha[(v >> 12) & 63];
        quad[2] = alpha[(v >> 6) & 63];
        quad[3] = alpha[v & 63];
        if (!url) {
            for (size_t k = emit; k < 4; k++) {
                quad[k] = '=';
            }
            emit = 4;
        }
        error = berth_buf_put(out, quad, emit);
    }
    return error;
}

static int value_of(char c, bool url)
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
    if (c == (url ? '-' : '+')) {
        return 62;
    }
    if (c == (url ? '_' : '/')) {
        return 63;
    }
    return -1;
}

int berth__b64_decode(berth_buf *out, const char *text, size_t len, bool url)
{
    uint32_t acc = 0;
    size_t bits = 0, pad = 0;
    int error = 0;

    if (!url) {
        if (len % 4 != 0) {
            return berth_error_set(BERTH_EINVALID, "base64: length is not a multiple of 4");
        }
        while (pad < 2 && len > 0 && text[len - 1] == '=') {
            len--;
            pad++;
        }
    } else if (len % 4 == 1) {
        return berth_error_set(BERTH_EINVALID, "base64url: impossible length");
    }
    for (size_t i = 0; error == 0 && i < len; i++) {
        int v = value_of(text[i], url);
        if (v < 0) {
            return berth_error_set(BERTH_EINVALID, "base64: invalid character at %zu", i);
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            unsigned char byte = (unsigned char)(acc >> (bits - 8));
            bits -= 8;
            acc &= (1u << bits) - 1;
            error = berth_buf_put(out, &byte, 1);
        }
    }
    if (error == 0 && acc != 0) {
        return berth_error_set(BERTH_EINVALID, "base64: non-zero trailing bits");
    }
    if (error == 0 && !url && (len + pad) % 4 != 0) {
        return berth_error_set(BERTH_EINVALID, "base64: bad padding");
    }
    if (error == 0 && !url && pad && (len % 4) + pad != 4) {
        return berth_error_set(BERTH_EINVALID, "base64: bad padding");
    }
    return error;
}
