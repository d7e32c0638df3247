/* SPDX-License-Identifier: Apache-2.0 */
/* Internal: the one base64 codec (RFC 4648), for Basic credentials, JWTs, descriptor `data` and
 * docker config files. Each reader picks the strictness it needs with a mode. */
#ifndef BERTH_BASE_BASE64_H
#define BERTH_BASE_BASE64_H

#include <berth/buf.h>

typedef enum berth__base64_mode {
    /* RFC 4648 section 4: alphabet '+' '/', padded with '=' to a multiple of 4. Reading is
     * strict: the length is a multiple of 4, '=' only as the last one or two characters, the
     * unused bits of the last character are zero, no whitespace. So one value has one spelling
     * (Basic credentials, descriptor `data`). */
    BERTH__BASE64_STD,
    /* RFC 4648 section 5 without padding, as JWS uses it (RFC 7515 section 2): alphabet '-' '_',
     * no '=' written or accepted, a length of 4n+1 refused, unused bits zero. */
    BERTH__BASE64_URL,
    /* Reading only (writes as BERTH__BASE64_STD): what other tools put in files such as docker's
     * config.json: either alphabet (mixed), padding optional, trailing '=' and newlines ignored,
     * unused bits ignored; a length of 4n+1 (a dangling character) is still refused. */
    BERTH__BASE64_LAX,
} berth__base64_mode;

/**
 * Append the encoding of `len` bytes of `data` to `out`: BERTH__BASE64_URL writes the URL
 * alphabet without padding, any other mode the standard alphabet with padding.
 * @return 0, BERTH_ENOMEM or BERTH_ETOOBIG (a ceiling of `out`); on failure `out` is unchanged
 */
int berth__base64_encode(berth_buf *out, const void *data, size_t len, berth__base64_mode mode);

/**
 * Append the bytes that the `len` characters of `text` encode to `out`, read as `mode` says.
 * The message of a refusal names what is wrong and the character's offset, never the text.
 * @return 0, BERTH_EINVALID (not base64 of that mode), BERTH_ENOMEM or BERTH_ETOOBIG (a ceiling
 *         of `out`); on failure `out` is unchanged
 */
int berth__base64_decode(berth_buf *out, const char *text, size_t len, berth__base64_mode mode);

#endif
