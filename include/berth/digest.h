/* SPDX-License-Identifier: Apache-2.0 */
/* berth/digest.h: content digests (`algorithm:encoded`), parsed, formatted and computed. */
#ifndef BERTH_DIGEST_H
#define BERTH_DIGEST_H

#include "common.h"

typedef enum berth_digest_alg {
    BERTH_DIGEST_NONE = 0,
    BERTH_DIGEST_SHA256 = 1,
    BERTH_DIGEST_SHA512 = 2,
} berth_digest_alg;

/** Longest digest text berth supports: "sha512:" and 128 hex digits. */
#define BERTH_DIGEST_MAXLEN (7 + 128)

/** A parsed digest of a supported algorithm; `str` is its canonical text. */
typedef struct berth_digest {
    berth_digest_alg alg;
    char str[BERTH_DIGEST_MAXLEN + 1];
} berth_digest;

/**
 * Parse a digest strictly by the image-spec grammar
 * (`algorithm ":" encoded`, algorithm components `[a-z0-9]+` joined by `[+._-]`,
 * encoded `[a-zA-Z0-9=_-]+`), then by its algorithm: sha256 wants 64 and sha512 128 lowercase
 * hex digits.
 * @param out  receives the digest (untouched on failure)
 * @return 0; BERTH_EINVALID when the text breaks the grammar or the algorithm's encoding;
 *         BERTH_EUNSUPPORTED for a well-formed digest of another algorithm
 */
int berth_digest_parse(berth_digest *out, const char *s, size_t len);

/** Parse a NUL-terminated digest string; as berth_digest_parse(). */
int berth_digest_parse_str(berth_digest *out, const char *s);

/** The hex part of a parsed digest (borrowed from `d`). */
const char *berth_digest_hex(const berth_digest *d);

/** The algorithm's name, "sha256" or "sha512" ("" for none). */
const char *berth_digest_alg_name(berth_digest_alg alg);

/** True when both digests are of the same algorithm and value. */
bool berth_digest_equal(const berth_digest *a, const berth_digest *b);

/** An incremental hash of one algorithm (OpenSSL underneath). */
typedef struct berth_hasher berth_hasher;

/**
 * Start a hash. @param out receives a hasher the caller frees with berth_hasher_free()
 * @return 0, BERTH_ENOMEM, or BERTH_EUNSUPPORTED for BERTH_DIGEST_NONE
 */
int berth_hasher_new(berth_hasher **out, berth_digest_alg alg);

/** Feed bytes. @return 0 or BERTH_ERROR */
int berth_hasher_update(berth_hasher *h, const void *data, size_t len);

/**
 * The digest of everything fed so far. The hasher stays usable: more bytes may follow, and
 * a later call gives the digest of the longer stream. @return 0 or BERTH_ERROR
 */
int berth_hasher_peek(berth_digest *out, const berth_hasher *h);

/** Bytes fed so far. */
uint64_t berth_hasher_count(const berth_hasher *h);

/**
 * A copy of a hasher in its current state (to go back to it later).
 * @param out  receives the copy, freed with berth_hasher_free()
 * @return 0, BERTH_ENOMEM
 */
int berth_hasher_dup(berth_hasher **out, const berth_hasher *h);

/** Free a hasher; NULL is fine. */
void berth_hasher_free(berth_hasher *h);

/**
 * The hasher's state as text, so that another process can continue the hash (an upload
 * continued on another replica): printable ASCII, at most 512 bytes. The text is valid for
 * berth processes on machines of the same byte order.
 * @param out  receives a string the caller frees with free()
 * @return 0, BERTH_ENOMEM
 */
int berth_hasher_export(const berth_hasher *h, char **out);

/**
 * A hasher in the state berth_hasher_export() wrote down.
 * @param out  receives a hasher freed with berth_hasher_free()
 * @return 0, BERTH_EINVALID (not such a text), BERTH_ENOMEM
 */
int berth_hasher_import(berth_hasher **out, const char *text);

/** Digest of a buffer. @return 0, BERTH_ENOMEM or BERTH_EUNSUPPORTED */
int berth_digest_buffer(berth_digest *out, berth_digest_alg alg, const void *data, size_t len);

/**
 * Digest of a file's bytes, read from the start.
 * @param size_out  when not NULL, receives the number of bytes read
 * @return 0, BERTH_ENOTFOUND (no such file), BERTH_EIO
 */
int berth_digest_file(berth_digest *out, berth_digest_alg alg, const char *path,
                      uint64_t *size_out);

/** As berth_digest_file(), from an open descriptor's current offset to its end. */
int berth_digest_fd(berth_digest *out, berth_digest_alg alg, int fd, uint64_t *size_out);

#endif
