/* SPDX-License-Identifier: Apache-2.0 */
/* server/ops/b64.h: internal base64 (RFC 4648 section 4) and base64url (section 5) codecs. */
#ifndef BERTH_SERVER_OPS_B64_H
#define BERTH_SERVER_OPS_B64_H

#include <berth/buf.h>

/**
 * Append the encoding of `len` bytes to `out`: standard alphabet with '=' padding, or the URL
 * alphabet without padding when `url` is true.
 * @return 0, BERTH_ENOMEM or BERTH_ETOOBIG
 */
int berth__b64_encode(berth_buf *out, const void *data, size_t len, bool url);

/**
 * Append the decoded bytes of `len` characters of `text` to `out`. With `url`, the URL alphabet
 * and no padding are expected; otherwise the standard alphabet, padding required to a multiple
 * of four. Whitespace is not accepted.
 * @return 0, BERTH_EINVALID (bad text), BERTH_ENOMEM or BERTH_ETOOBIG
 */
int berth__b64_decode(berth_buf *out, const char *text, size_t len, bool url);

#endif
