/* SPDX-License-Identifier: Apache-2.0 */
/* server/ops/token.h: Docker registry token authentication: scopes, challenges, JWTs, and the
 * token endpoint's logic. */
#ifndef BERTH_SERVER_OPS_TOKEN_H
#define BERTH_SERVER_OPS_TOKEN_H

#include <berth/buf.h>
#include <berth/config.h>

#include "acl.h"

/** Leeway, in seconds, allowed on exp and nbf when verifying. */
#define BERTH_TOKEN_LEEWAY 60

/** One resource scope: `type:name:actions`. */
typedef struct berth_token_scope {
    char *type;       /* "repository", "registry", ... */
    char *name;       /* "library/alpine", "catalog" */
    unsigned actions; /* BERTH_ACTION_* bits; "*" means all three; unknown actions ignored */
} berth_token_scope;

/** A list of scopes, owned. */
typedef struct berth_token_scopes {
    berth_token_scope *items;
    size_t count;
} berth_token_scopes;

#define BERTH_TOKEN_SCOPES_INIT                                                                    \
    {                                                                                              \
        NULL, 0                                                                                    \
    }

/**
 * Parse a scope string and append its scopes to `scopes`: one or more space-separated
 * `type:name:action[,action...]` (the name may itself contain ':', as in `host:5000/repo`: the
 * type ends at the first ':' and the actions begin after the last). A scope repeated with more
 * actions is merged into the earlier one.
 * @return 0, BERTH_EINVALID (malformed; message set) or BERTH_ENOMEM
 */
int berth_token_scopes_parse(berth_token_scopes *scopes, const char *text);

/** Append `scopes` in the space-separated text form. @return 0, BERTH_ENOMEM, BERTH_ETOOBIG */
int berth_token_scopes_format(berth_buf *out, const berth_token_scopes *scopes);

/** Release the items of a caller-owned list and reset it. */
void berth_token_scopes_dispose(berth_token_scopes *scopes);

/**
 * A signing (private) or verifying (public) key: EC P-256 (ES256) or RSA >= 2048 bits (RS256).
 */
typedef struct berth_token_key berth_token_key;

/**
 * Load a PEM key: a private key (can sign and verify), a public key or an X.509 certificate
 * (verify only).
 * @param out  receives the key; free with berth_token_key_free()
 * @return 0, BERTH_EIO (unreadable file), BERTH_EINVALID (not a PEM key), BERTH_EUNSUPPORTED
 *         (another key type or curve)
 */
int berth_token_key_load(berth_token_key **out, const char *path);

/** As berth_token_key_load() from PEM text in memory. */
int berth_token_key_from_pem(berth_token_key **out, const char *pem, size_t len);

/** "ES256" or "RS256". */
const char *berth_token_key_alg(const berth_token_key *key);

/** The key id in Docker's libtrust form (12 groups of 4 base32 characters, ':'-separated). */
const char *berth_token_key_id(const berth_token_key *key);

/** Whether the key holds a private part. */
bool berth_token_key_can_sign(const berth_token_key *key);

/** Free; NULL is fine. */
void berth_token_key_free(berth_token_key *key);

/** The claims of a token. Strings owned (NULL when absent). */
typedef struct berth_token_claims {
    char *issuer;
    char *subject; /* "" for an anonymous token */
    char *audience;
    char *jti;
    int64_t issued_at;
    int64_t not_before;
    int64_t expires;
    berth_token_scopes access;
} berth_token_claims;

/** Release a claims struct's contents. */
void berth_token_claims_dispose(berth_token_claims *claims);

/**
 * Sign a JWT with header {typ: JWT, alg, kid} and the claims (a random jti when `jti` is NULL).
 * ES256 signatures are the JOSE r||s form (64 bytes).
 * @param jwt_out  receives the token; the caller frees it with free()
 * @return 0, BERTH_EINVALID (a verify-only key), BERTH_ENOMEM, BERTH_ERROR (OpenSSL failed)
 */
int berth_token_sign(char **jwt_out, const berth_token_key *key, const berth_token_claims *claims);

/**
 * Verify a JWT: the alg must be the key's (never "none"), the signature valid, exp/nbf within
 * BERTH_TOKEN_LEEWAY of `now`, aud equal to (or an array containing) `audience`, iss equal to
 * `issuer` (when not NULL).
 * @param out  receives the claims; dispose with berth_token_claims_dispose() (also on failure)
 * @return 0, BERTH_EUNAUTHORIZED (any failure of the token; message says why), BERTH_ENOMEM
 */
int berth_token_verify(berth_token_claims *out, const berth_token_key *key, const char *jwt,
                       const char *issuer, const char *audience, int64_t now);

/** Whether verified claims grant `action` on repository `repo`. */
bool berth_token_claims_allow(const berth_token_claims *claims, const char *repo, unsigned action);

/**
 * Append a `WWW-Authenticate` value: `Bearer realm="..",service=".."[,scope=".."][,error=".."]`
 * (values quoted, '"' and '\\' escaped). `scope` and `error` may be NULL.
 */
int berth_token_challenge_bearer(berth_buf *out, const char *realm, const char *service,
                                 const char *scope, const char *error);

/** Append `Basic realm="..",charset="UTF-8"`. */
int berth_token_challenge_basic(berth_buf *out, const char *realm);

/**
 * The token endpoint: grant `user` (NULL = anonymous) the intersection of the requested scopes
 * (each element of `scope_params` is one `scope` query parameter) with what the ACL allows, and
 * write the JSON response body {"token", "access_token", "expires_in", "issued_at"}. Scopes of
 * other types than "repository" and scopes with nothing granted are left out of the token (the
 * spec's answer to a request for more than allowed is a token with less, not an error).
 * @param now  seconds since the epoch
 * @return 0, BERTH_EINVALID (malformed scope), BERTH_ENOMEM, BERTH_ERROR
 */
int berth_token_endpoint(berth_buf *out_json, const berth_token_key *key, const berth_acl *acl,
                         const char *issuer, const char *service, uint64_t lifetime,
                         const char *user, const char *const *scope_params, size_t nscopes,
                         int64_t now);

#endif
