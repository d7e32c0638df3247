/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admission of a request: rate limit, client certificate (mTLS), authentication (Basic against
 * htpasswd, or Bearer tokens), authorization against the access rules, and the upload limits;
 * plus berth's own token endpoint. With no authentication configured nothing here runs on the
 * hot path but two branches.
 *
 * `Basic Og==` (empty user and password) is no credentials at all. Failed logins are throttled
 * by htpasswd.c per client address (IPv4, or IPv6 /64); an attempt refused unverified is a 429.
 * A cross-repository mount is decided here, where the caller's rights are known: a mount from
 * a repository the caller may not pull, and an automatic mount (no `from`) of a blob that no
 * repository the caller may pull holds, set r->no_mount, and the handler then answers as for a
 * POST without ?mount= (see automatic_mount_ok).
 *
 * Verified bearer tokens are cached (direct-mapped table keyed by the SHA-256 of the token,
 * striped locks), so that a request with a token already seen costs a hash and a lookup, not a
 * signature check.
 */
#include "server/server_internal.h"

#include <berth/errors.h>

#include <gnutls/gnutls.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BASIC_REALM "berth"
#define TOKEN_LOCKS 16
#define SCOPES_MAX  16
/* Most repositories an automatic mount looks for its blob in (see automatic_mount_ok). */
#define MOUNT_CANDIDATES 64

/* ---- token cache -------------------------------------------------------------------------- */

typedef struct tc_entry {
    unsigned char key[SHA256_DIGEST_LENGTH];
    bool used;
    int64_t until; /* the entry is void after this (exp + leeway) */
    berth_token_claims claims;
} tc_entry;

struct berth__token_cache {
    size_t slots;
    tc_entry *entries;
    pthread_mutex_t locks[TOKEN_LOCKS];
};

int berth__token_cache_new(berth__token_cache **out, size_t slots)
{
    berth__token_cache *c = calloc(1, sizeof(*c));

    *out = NULL;
    if (!c || !(c->entries = calloc(slots, sizeof(*c->entries)))) {
        free(c);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    c->slots = slots;
    for (size_t i = 0; i < TOKEN_LOCKS; i++) {
        pthread_mutex_init(&c->locks[i], NULL);
    }
    *out = c;
    return 0;
}

void berth__token_cache_free(berth__token_cache *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->slots; i++) {
        if (c->entries[i].used) {
            berth_token_claims_dispose(&c->entries[i].claims);
        }
    }
    for (size_t i = 0; i < TOKEN_LOCKS; i++) {
        pthread_mutex_destroy(&c->locks[i]);
    }
    free(c->entries);
    free(c);
}

static size_t tc_slot(const berth__token_cache *c, const unsigned char *key)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++) {
        v = (v << 8) | key[i];
    }
    return (size_t)(v % c->slots);
}

/* Repositories the caller may pull that an automatic mount may take its blob from. */
typedef struct candidates {
    char *names[MOUNT_CANDIDATES]; /* owned */
    size_t count;
    const berth_acl *acl; /* while collected from the catalog: the rules and the caller */
    const char *user;
} candidates;

/* What a request needs checked against the claims of its token. */
typedef struct need {
    const char *repo; /* NULL: no repository (base, catalog) */
    unsigned action;
    const char *mount_from; /* NULL: none */
    bool automatic_mount;   /* POST ?mount= without from (or with an empty one) */
    bool allowed;
    bool mount_allowed;
    candidates sources; /* automatic mount: the repositories to look for the blob in */
} need;

static void add_candidate(candidates *c, const char *name)
{
    if (c->count < MOUNT_CANDIDATES && (c->names[c->count] = strdup(name)) != NULL) {
        c->count++; /* out of memory only loses a candidate: the mount falls back to an upload */
    }
}

static void candidates_dispose(candidates *c)
{
    for (size_t i = 0; i < c->count; i++) {
        free(c->names[i]);
    }
    c->count = 0;
}

static void check_claims(need *n, const berth_token_claims *claims, berth__req *r)
{
    n->allowed = !n->repo || !n->action || berth_token_claims_allow(claims, n->repo, n->action);
    n->mount_allowed =
        !n->mount_from || berth_token_claims_allow(claims, n->mount_from, BERTH_ACTION_PULL);
    if (n->automatic_mount && n->allowed) {
        for (size_t i = 0; i < claims->access.count; i++) {
            const berth_token_scope *sc = &claims->access.items[i];
            if (strcmp(sc->type, "repository") == 0 && (sc->actions & BERTH_ACTION_PULL)) {
                add_candidate(&n->sources, sc->name);
            }
        }
    }
    snprintf(r->user, sizeof(r->user), "%s", claims->subject ? claims->subject : "");
    r->authenticated = r->user[0] != '\0';
}

/* Look the token up; on a hit, fill `n` and the user of `r`. @return true on a hit */
static bool tc_lookup(berth__token_cache *c, const unsigned char *key, int64_t now, need *n,
                      berth__req *r)
{
    size_t slot = tc_slot(c, key);
    pthread_mutex_t *lock = &c->locks[slot % TOKEN_LOCKS];
    tc_entry *e = &c->entries[slot];
    bool hit = false;

    pthread_mutex_lock(lock);
    if (e->used && memcmp(e->key, key, sizeof(e->key)) == 0) {
        if (now <= e->until) {
            check_claims(n, &e->claims, r);
            hit = true;
        } else {
            berth_token_claims_dispose(&e->claims);
            e->used = false;
        }
    }
    pthread_mutex_unlock(lock);
    return hit;
}

/* Keep verified claims (taken over: `claims` is emptied). */
static void tc_insert(berth__token_cache *c, const unsigned char *key, berth_token_claims *claims)
{
    size_t slot = tc_slot(c, key);
    pthread_mutex_t *lock = &c->locks[slot % TOKEN_LOCKS];
    tc_entry *e = &c->entries[slot];

    pthread_mutex_lock(lock);
    if (e->used) {
        berth_token_claims_dispose(&e->claims);
    }
    memcpy(e->key, key, sizeof(e->key));
    e->claims = *claims;
    e->until = claims->expires + BERTH_TOKEN_LEEWAY;
    e->used = true;
    memset(claims, 0, sizeof(*claims));
    pthread_mutex_unlock(lock);
}

/* ---- responses ------------------------------------------------------------------------------ */

static bool refuse(berth__req *r, enum MHD_Result *ret, int code, const char *msg)
{
    berth_error_set(code, "%s", msg);
    *ret = berth__respond_error(r, BERTH_OP_ANY, code, NULL);
    return false;
}

static const char *action_words(unsigned action)
{
    switch (action) {
    case BERTH_ACTION_PUSH:
        return "pull,push";
    case BERTH_ACTION_DELETE:
        return "delete";
    default:
        return "pull";
    }
}

/* 401 with a challenge for what the request needs. */
static bool challenge(berth__req *r, enum MHD_Result *ret, const need *n, const char *error,
                      const char *msg)
{
    berth_server *srv = r->srv;
    berth_buf b = BERTH_BUF_INIT;
    char scope[BERTH_NAME_MAX + 64];
    int rc;

    if (srv->bearer) {
        const char *s = NULL;
        if (n->repo && n->action) {
            snprintf(scope, sizeof(scope), "repository:%s:%s", n->repo, action_words(n->action));
            s = scope;
        } else if (r->route == BERTH_R_CATALOG) {
            s = "registry:catalog:*";
        }
        rc = berth_token_challenge_bearer(&b, srv->cfg->auth.token.realm,
                                          srv->cfg->auth.token.service, s, error);
    } else {
        rc = berth_token_challenge_basic(&b, BASIC_REALM);
    }
    if (rc == 0 && berth_buf_put(&b, "", 1) == 0) {
        free(r->www_authenticate);
        r->www_authenticate = berth_buf_detach(&b);
    }
    berth_buf_dispose(&b);
    return refuse(r, ret, BERTH_EUNAUTHORIZED, msg);
}

/* ---- admission ------------------------------------------------------------------------------ */

static bool client_cert_ok(berth__req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t session;
    unsigned status = 0, count = 0;

    if (!ci || !ci->tls_session) {
        return false;
    }
    session = (gnutls_session_t)ci->tls_session;
    if (!gnutls_certificate_get_peers(session, &count) || count == 0) {
        return false;
    }
    return gnutls_certificate_verify_peers2(session, &status) == 0 && status == 0;
}

bool berth__ops_gate(berth__req *r, enum MHD_Result *ret)
{
    berth_server *srv = r->srv;

    if (srv->ratelimit) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        uint64_t retry = 0;

        if (ci && ci->client_addr &&
            !berth_ratelimit_take_sockaddr(srv->ratelimit, ci->client_addr, &retry)) {
            r->retry_after = retry ? retry : 1;
            return refuse(r, ret, BERTH_EBUSY, "too many requests; retry later");
        }
    }
    if (srv->mtls && !client_cert_ok(r)) {
        return refuse(r, ret, BERTH_EDENIED, "a verified client certificate is required");
    }
    return true;
}

bool berth__ops_may_pull(const berth__req *r, const char *repo)
{
    if (!r->srv->auth) {
        return true;
    }
    return berth_acl_allows(r->srv->acl, r->authenticated ? r->user : NULL, repo,
                            BERTH_ACTION_PULL);
}

static bool acl_allows(const berth__req *r, const char *repo, unsigned action)
{
    return berth_acl_allows(r->srv->acl, r->authenticated ? r->user : NULL, repo, action);
}

static bool authorize_bearer(berth__req *r, enum MHD_Result *ret, const char *authz, need *n)
{
    berth_server *srv = r->srv;
    unsigned char key[SHA256_DIGEST_LENGTH];
    berth_token_claims claims;
    const char *jwt;
    int64_t now = (int64_t)time(NULL);
    int error;

    if (!authz || strncasecmp(authz, "Bearer ", 7) != 0) {
        return challenge(r, ret, n, NULL, "authentication required");
    }
    jwt = authz + 7;
    while (*jwt == ' ') {
        jwt++;
    }
    SHA256((const unsigned char *)jwt, strlen(jwt), key);
    if (!tc_lookup(srv->tokens, key, now, n, r)) {
        memset(&claims, 0, sizeof(claims));
        error = berth_token_verify(&claims, srv->token_key, jwt, srv->cfg->auth.token.issuer,
                                   srv->cfg->auth.token.service, now);
        if (error < 0) {
            berth_token_claims_dispose(&claims);
            if (error != BERTH_EUNAUTHORIZED) {
                *ret = berth__respond_error(r, BERTH_OP_ANY, error, NULL);
                return false;
            }
            return challenge(r, ret, n, "invalid_token", berth_error_last());
        }
        check_claims(n, &claims, r);
        tc_insert(srv->tokens, key, &claims);
        berth_token_claims_dispose(&claims);
    }
    if (!n->allowed) {
        /* a token that lacks the scope: ask for a better one when the rules would grant it */
        if (acl_allows(r, n->repo, n->action)) {
            return challenge(r, ret, n, "insufficient_scope", "the token does not grant this");
        }
        return refuse(r, ret, r->authenticated ? BERTH_EDENIED : BERTH_EUNAUTHORIZED,
                      "access denied");
    }
    return true;
}

/* The key of the client's address for the failed-login limits. */
static void client_key(berth__req *r, char *out, size_t size)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

    berth_ratelimit_addr_key(out, size, ci ? ci->client_addr : NULL);
}

int berth__check_basic(berth__req *r, const char *authz)
{
    char address[BERTH_RATELIMIT_KEY_MAX];
    int error;

    client_key(r, address, sizeof(address));
    error = strncasecmp(authz, "Basic ", 6) != 0
                ? berth_error_set(BERTH_EUNAUTHORIZED, "not Basic credentials")
                : berth_htpasswd_check_header(r->srv->htpasswd, address, authz, r->user,
                                              sizeof(r->user));
    if (error < 0) {
        r->user[0] = '\0';
    }
    return error;
}

/* A failed check_basic(): 429 when the attempt was refused unverified, else 401 and the
 * challenge. */
static bool refuse_basic(berth__req *r, enum MHD_Result *ret, int error, const need *n)
{
    if (error == BERTH_EBUSY) {
        r->retry_after = 1;
        return refuse(r, ret, BERTH_EBUSY,
                      "too many failed logins from this address; retry in a second");
    }
    return challenge(r, ret, n, NULL, "wrong user name or password");
}

static bool authorize_basic(berth__req *r, enum MHD_Result *ret, const char *authz, need *n)
{
    int error;

    if (authz && berth_basic_is_anonymous(authz)) {
        authz = NULL; /* `Basic Og==`: podman and skopeo without credentials */
    }
    if (authz) {
        if ((error = berth__check_basic(r, authz)) < 0) {
            return refuse_basic(r, ret, error, n);
        }
        r->authenticated = true;
    }
    if (!r->authenticated && !(n->repo && n->action)) {
        /* the base and the catalog: say that credentials are wanted */
        return challenge(r, ret, n, NULL, "authentication required");
    }
    n->allowed = !n->repo || !n->action || acl_allows(r, n->repo, n->action);
    n->mount_allowed = !n->mount_from || acl_allows(r, n->mount_from, BERTH_ACTION_PULL);
    if (!n->allowed) {
        if (!r->authenticated) {
            return challenge(r, ret, n, NULL, "authentication required");
        }
        return refuse(r, ret, BERTH_EDENIED, "access denied");
    }
    return true;
}

static int collect_pullable(const char *name, void *payload)
{
    candidates *c = payload;

    if (berth_acl_allows(c->acl, c->user, name, BERTH_ACTION_PULL)) {
        add_candidate(c, name);
    }
    return c->count < MOUNT_CANDIDATES ? 0 : 1;
}

/*
 * May an automatic mount (no `from`) of the request's digest go ahead? Only when the blob is
 * in a repository the caller may pull, so that the mount neither hands out bytes the caller
 * could not read nor tells whether a digest exists somewhere else. The store then links the
 * pool's copy, which is the same file as that repository's. Which repositories are looked at:
 * with a token, those its claims let the caller pull; with Basic or anonymous access, every
 * repository when the rules let the caller pull all of them (then the pool is searched, as on
 * an open server), else the first MOUNT_CANDIDATES repositories of the catalog that the rules
 * let the caller pull. A digest that does not parse goes on, for the handler to refuse.
 */
static bool automatic_mount_ok(berth__req *r, need *n)
{
    berth_server *srv = r->srv;
    const char *mount = berth__query(r, "mount");
    berth_digest digest;
    uint64_t size;
    bool more = false, found = false;

    if (srv->cfg && !srv->cfg->storage.automatic_mount) {
        return false;
    }
    if (!mount || berth_digest_parse_str(&digest, mount) < 0) {
        berth_error_clear();
        return true;
    }
    if (!srv->bearer) {
        const char *user = r->authenticated ? r->user : NULL;
        if (berth_acl_allows_everywhere(srv->acl, user, BERTH_ACTION_PULL)) {
            return true;
        }
        n->sources.acl = srv->acl;
        n->sources.user = user;
        berth_store_catalog(srv->store, NULL, 0, collect_pullable, &n->sources, &more);
    }
    for (size_t i = 0; i < n->sources.count && !found; i++) {
        found = berth_store_blob_stat(srv->store, n->sources.names[i], &digest, &size) == 0;
    }
    berth_error_clear();
    return found;
}

static bool authorize(berth__req *r, enum MHD_Result *ret)
{
    const char *authz = berth__header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    need n;
    bool ok;

    memset(&n, 0, sizeof(n));
    n.mount_allowed = true;
    if (r->route != BERTH_R_BASE && r->route != BERTH_R_CATALOG) {
        n.repo = r->name;
        n.action = berth_acl_action_for_method(r->method_name);
        if (r->route == BERTH_R_UPLOADS && r->method == BERTH_M_POST && berth__query(r, "mount")) {
            const char *from = berth__query(r, "from");
            n.mount_from = from && from[0] ? from : NULL; /* an empty from is no from */
            n.automatic_mount = !n.mount_from;
        }
    }
    if (r->srv->bearer) {
        ok = authorize_bearer(r, ret, authz, &n);
        if (ok && !r->authenticated && !n.repo) {
            /* an anonymous token is enough for the base, not for the catalog of nobody */
            ok = r->route == BERTH_R_BASE || challenge(r, ret, &n, NULL, "authentication required");
        }
    } else {
        ok = authorize_basic(r, ret, authz, &n);
    }
    if (ok && !n.mount_allowed) {
        r->no_mount = true;
    }
    if (ok && n.automatic_mount && !automatic_mount_ok(r, &n)) {
        r->no_mount = true;
    }
    candidates_dispose(&n.sources);
    return ok;
}

static bool limits(berth__req *r, enum MHD_Result *ret)
{
    berth_server *srv = r->srv;
    uint64_t prev;

    if (r->route != BERTH_R_UPLOADS && r->route != BERTH_R_UPLOAD) {
        return true;
    }
    if (r->method != BERTH_M_POST && r->method != BERTH_M_PATCH && r->method != BERTH_M_PUT) {
        return true;
    }
    if (srv->body_max) {
        const char *cl = berth__header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
        uint64_t len;

        if (cl && berth_parse_u64(&len, cl, strlen(cl), UINT64_MAX) == 0 && len > srv->body_max) {
            berth_error_set(BERTH_ETOOBIG, "body larger than %llu bytes",
                            (unsigned long long)srv->body_max);
            *ret = berth__respond_error(r, BERTH_OP_ANY, BERTH_ETOOBIG, NULL);
            return false;
        }
    }
    prev = atomic_fetch_add(&srv->uploads, 1);
    if (srv->uploads_max && prev >= srv->uploads_max) {
        atomic_fetch_sub(&srv->uploads, 1);
        r->retry_after = 1;
        return refuse(r, ret, BERTH_EBUSY,
                      "too many upload requests streaming (limits.upload_requests); retry later");
    }
    r->counted_upload = true;
    berth_metrics_gauge_add(srv->metrics, BERTH_GAUGE_UPLOAD_REQUESTS, 1);
    return true;
}

/*
 * The operator's switches (storage.read_only, storage.delete_enabled), as Distribution's
 * storage.maintenance.readonly and storage.delete.enabled: a write in read-only mode, or a
 * DELETE of a manifest, tag or blob with deletes off (cancelling one's upload stays allowed),
 * is refused with 405 UNSUPPORTED before its body is read, so it
 * changes nothing; pulls go on.
 */
static bool switches(berth__req *r, enum MHD_Result *ret)
{
    const berth_config *cfg = r->srv->cfg;
    bool write = r->method == BERTH_M_PUT || r->method == BERTH_M_POST ||
                 r->method == BERTH_M_PATCH || r->method == BERTH_M_DELETE;

    if (!cfg || !write || r->route == BERTH_R_BASE || r->route == BERTH_R_CATALOG) {
        return true;
    }
    if (cfg->storage.read_only) {
        berth_error_set(BERTH_EUNSUPPORTED,
                        "the registry is read-only for maintenance: pulls only, %s refused",
                        r->method_name);
    } else if (r->method == BERTH_M_DELETE && r->route != BERTH_R_UPLOAD &&
               !cfg->storage.delete_enabled) {
        berth_error_set(BERTH_EUNSUPPORTED, "deletes are disabled on this registry");
    } else {
        return true;
    }
    *ret = berth__respond_error(r, BERTH_OP_METHOD, BERTH_EUNSUPPORTED, NULL);
    return false;
}

bool berth__ops_admit(berth__req *r, enum MHD_Result *ret)
{
    berth_server *srv = r->srv;

    if ((srv->ratelimit || srv->mtls) && !berth__ops_gate(r, ret)) {
        return false;
    }
    if (srv->auth && !authorize(r, ret)) {
        return false;
    }
    if (!switches(r, ret)) {
        return false;
    }
    return limits(r, ret);
}

/* ---- token endpoint ------------------------------------------------------------------------ */

enum MHD_Result berth__token_endpoint(berth__req *r)
{
    berth_server *srv = r->srv;
    const char *authz;
    berth_buf body = BERTH_BUF_INIT;
    struct MHD_Response *resp;
    const char *scopes[SCOPES_MAX];
    size_t nscopes;
    enum MHD_Result ret;
    size_t len;
    char *data;
    int error;

    if (!srv->token_key || !berth_token_key_can_sign(srv->token_key) || !srv->htpasswd) {
        berth_error_set(BERTH_ENOTFOUND, "no token endpoint: auth.token.private_key is not set");
        return berth__respond_error(r, BERTH_OP_ROUTE, BERTH_ENOTFOUND, NULL);
    }
    if (r->method != BERTH_M_GET) {
        berth_error_set(BERTH_EUNSUPPORTED, "method %s not allowed here", r->method_name);
        return berth__respond_error(r, BERTH_OP_METHOD, BERTH_EUNSUPPORTED, NULL);
    }
    authz = berth__header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (authz && berth_basic_is_anonymous(authz)) {
        authz = NULL; /* `Basic Og==`: an anonymous token */
    }
    if (authz) {
        if ((error = berth__check_basic(r, authz)) < 0) {
            berth_buf b = BERTH_BUF_INIT;
            if (error == BERTH_EBUSY) {
                r->retry_after = 1;
                refuse(r, &ret, BERTH_EBUSY,
                       "too many failed logins from this address; retry in a second");
                return ret;
            }
            if (berth_token_challenge_basic(&b, BASIC_REALM) == 0 &&
                berth_buf_put(&b, "", 1) == 0) {
                r->www_authenticate = berth_buf_detach(&b);
            }
            berth_buf_dispose(&b);
            refuse(r, &ret, BERTH_EUNAUTHORIZED, "wrong user name or password");
            return ret;
        }
        r->authenticated = true;
    }
    /* scopes past SCOPES_MAX are left out, as scopes the rules do not grant are */
    nscopes = berth__query_all(r, "scope", scopes, SCOPES_MAX);
    error = berth_token_endpoint(&body, srv->token_key, srv->acl, srv->cfg->auth.token.issuer,
                                 srv->cfg->auth.token.service, srv->cfg->auth.token.lifetime,
                                 r->authenticated ? r->user : NULL, scopes,
                                 nscopes < SCOPES_MAX ? nscopes : SCOPES_MAX, (int64_t)time(NULL));
    if (error < 0) {
        berth_buf_dispose(&body);
        return berth__respond_error(r, error == BERTH_EINVALID ? BERTH_OP_QUERY : BERTH_OP_ANY,
                                    error, NULL);
    }
    len = body.len;
    if (!(data = berth_buf_detach(&body))) {
        return MHD_NO;
    }
    resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    r->bytes = len;
    return berth__respond(r, 200, resp);
}
