/* SPDX-License-Identifier: Apache-2.0 */
/* server/ops/htpasswd.h: HTTP Basic authentication against an htpasswd file (bcrypt). */
#ifndef BERTH_SERVER_OPS_HTPASSWD_H
#define BERTH_SERVER_OPS_HTPASSWD_H

#include <berth/common.h>

/**
 * An htpasswd file (lines `user:hash`, as `htpasswd -B` writes; any hash libcrypt's crypt_r
 * understands is accepted: bcrypt $2y$/$2b$/$2a$, sha512crypt $6$, ...; Apache's $apr1$ MD5 and
 * {SHA} are not). The file is re-read when its modification time or size changes (checked at
 * most once a second). Verified credentials are cached for `ttl` seconds, keyed by the user and
 * SHA-256 of (per-process random salt, password), never the password itself, so that bcrypt
 * is not paid on every request. Thread-safe.
 */
typedef struct berth_htpasswd berth_htpasswd;

/**
 * Load a file.
 * @param out          receives the handle; free with berth_htpasswd_free()
 * @param cache_size   bound on cached credentials; 0 means 1024
 * @param ttl_seconds  lifetime of a cache entry; 0 means 300
 * @return 0, BERTH_EIO (unreadable), BERTH_EINVALID (a malformed line: `path:line: reason`) or
 *         BERTH_ENOMEM
 */
int berth_htpasswd_open(berth_htpasswd **out, const char *path, size_t cache_size,
                        uint64_t ttl_seconds);

/**
 * Verify a user name and password (constant-time comparison of the hashes; an unknown user
 * costs the same bcrypt as a known one) for a client at `address`. Credentials verified before
 * (cached) are accepted at once. Otherwise failed verifications are counted per second, per
 * client address, per user and in all (see berth_htpasswd_set_fail_limits()); an address that
 * has not failed in the current second is always verified, so a guessing client can neither lock
 * a user out nor keep anyone else's first login from being checked.
 * @param address  the key of the client: its IPv4 address, or its IPv6 /64 prefix (see
 *                 berth_ratelimit_addr_key()); NULL counts as one unknown address
 * @return 0 when they match, BERTH_EUNAUTHORIZED when not, BERTH_EBUSY when the attempt was
 *         refused without being verified (the address is past the limits: retry in a second),
 *         BERTH_ENOMEM
 */
int berth_htpasswd_check(berth_htpasswd *h, const char *address, const char *user,
                         const char *password);

/**
 * Verify an `Authorization` header value `Basic <base64(user:password)>`, as
 * berth_htpasswd_check() for a client at `address`.
 * @param user_out       receives the user name on success
 * @param user_out_size  its size (a longer name is refused)
 * @return 0, BERTH_EUNAUTHORIZED (wrong, malformed or not Basic), BERTH_EBUSY (refused
 *         unverified: too many failures from the address), BERTH_ENOMEM
 */
int berth_htpasswd_check_header(berth_htpasswd *h, const char *address, const char *authorization,
                                char *user_out, size_t user_out_size);

/**
 * Whether an `Authorization` value is Basic with an empty user name and an empty password
 * (`Basic Og==`): what podman, skopeo and buildah send when they hold no credentials, to be
 * treated as no credentials at all.
 */
bool berth_basic_is_anonymous(const char *authorization);

/**
 * Split an `Authorization: Basic ...` value into user and password.
 * @param user_out      receives a string the caller frees with free()
 * @param password_out  receives a string the caller frees with free() (wipe it first)
 * @return 0, BERTH_EINVALID (not Basic or malformed) or BERTH_ENOMEM
 */
int berth_basic_parse(char **user_out, char **password_out, const char *authorization);

/**
 * Limits on failed verifications per second (defaults 5, 5 and 50). An attempt whose
 * credentials are not cached, from an address that has failed in the current second, is
 * refused without running bcrypt when that address has failed `per_address` times this second,
 * or the user it names has failed `per_user` times (from any address), or all clients together
 * `global` times. An address without a failure this second is always verified: the user and
 * global limits only take repeated guesses away from addresses that are already failing.
 */
void berth_htpasswd_set_fail_limits(berth_htpasswd *h, unsigned per_address, unsigned per_user,
                                    unsigned global);

/** Attempts refused by the failure limits so far (for tests and metrics). */
uint64_t berth_htpasswd_throttled_count(berth_htpasswd *h);

/** Number of cached credentials (for tests and metrics). */
size_t berth_htpasswd_cache_count(berth_htpasswd *h);

/** Free; NULL is fine. */
void berth_htpasswd_free(berth_htpasswd *h);

#endif
