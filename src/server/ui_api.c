/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The web UI's JSON API, /ui/api/v1/ (docs/ui.md): session, repositories, tags, manifests,
 * storage. It answers from the store's metadata through the store's API (so over fs, mem and
 * postgres + s3 alike), never from files.
 *
 * Authentication and access are the registry's: Basic against auth.htpasswd (the same check
 * and failed-login throttle as /v2/), or a bearer token of the configured issuer; access rules
 * (or the token's scopes) decide what may be pulled and deleted. Everything listed is what the
 * caller may pull. A refusal is a 401 without a `WWW-Authenticate` challenge (a browser would
 * pop up its own dialog) but with `X-Berth-Login`, so that the page shows its own login form.
 *
 * What a repository's pages show (tag count, last push, sizes of tags and of the repository)
 * needs each tag's manifest closure: what it references and the sizes of those blobs. That is
 * a walk of the repository's metadata (its tags, manifests and links), done once and kept in a
 * model per repository, shared by reference; a push, mount or delete of the repository through
 * this server drops it (berth__ui_changed, from the request-completed callback), garbage
 * collection drops them all, and a model older than MODEL_TTL is rebuilt (for changes made by
 * other replicas of a shared store). A model built while something changed is not kept.
 */
#include "server/ui.h"

#include <berth/document.h>
#include <berth/errors.h>
#include <berth/mediatype.h>

#include "base/base64.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Seconds a model is used before it is rebuilt, whatever this process saw. */
#define MODEL_TTL 30
/* Most models kept; past it the cache starts over (a browse of 10,000 repositories). */
#define MODELS_MAX 4096
/* Page sizes. */
#define PAGE_DEFAULT 50
#define PAGE_MAX     1000
/* Largest image config read for a page. */
#define CONFIG_MAX (1024 * 1024)
/* Deepest nesting of indexes followed when summing sizes. */
#define DEPTH_MAX 8

/* ---- who is asking ------------------------------------------------------------------------ */

typedef struct who {
    bool has_claims; /* a bearer token: its scopes decide */
    berth_token_claims claims;
} who;

static void who_dispose(who *w)
{
    if (w->has_claims) {
        berth_token_claims_dispose(&w->claims);
        w->has_claims = false;
    }
}

/* May the caller do `action` on `repo`? */
static bool may(const berth__req *r, const who *w, const char *repo, unsigned action)
{
    if (!r->srv->auth) {
        return true;
    }
    if (w->has_claims) {
        return berth_token_claims_allow(&w->claims, repo, action);
    }
    return berth_acl_allows(r->srv->acl, r->authenticated ? r->user : NULL, repo, action);
}

/* Does the server accept deletes at all (storage.read_only, storage.delete_enabled)? */
static bool deletes_on(const berth_server *srv)
{
    return !srv->cfg || (!srv->cfg->storage.read_only && srv->cfg->storage.delete_enabled);
}

static bool may_delete(const berth__req *r, const who *w, const char *repo)
{
    return deletes_on(r->srv) && may(r, w, repo, BERTH_ACTION_DELETE);
}

/* May the caller pull every repository (and so see uploads and gc)? */
static bool may_pull_all(const berth__req *r, const who *w)
{
    if (!r->srv->auth) {
        return true;
    }
    if (w->has_claims) {
        return false;
    }
    return berth_acl_allows_everywhere(r->srv->acl, r->authenticated ? r->user : NULL,
                                       BERTH_ACTION_PULL);
}

/* May the caller pull anything at all? */
static bool may_pull_some(const berth__req *r, const who *w)
{
    if (!r->srv->auth) {
        return true;
    }
    if (w->has_claims) {
        return w->claims.access.count > 0;
    }
    return berth_acl_grants_some(r->srv->acl, r->authenticated ? r->user : NULL, BERTH_ACTION_PULL);
}

/*
 * Who sent the request: none (anonymous), Basic credentials checked against htpasswd, or a
 * bearer token verified with the configured key. r->user and r->authenticated are set as for
 * /v2/ (the access log shows the user).
 * @return 0 (anonymous or verified), BERTH_EUNAUTHORIZED (wrong credentials), BERTH_EBUSY
 *         (too many failed logins), BERTH_ENOMEM
 */
static int identify(berth__req *r, who *w)
{
    berth_server *srv = r->srv;
    const char *authz = berth__header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    int error;

    memset(w, 0, sizeof(*w));
    if (!srv->auth || !authz || berth_basic_is_anonymous(authz)) {
        return 0;
    }
    if (strncasecmp(authz, "Basic ", 6) == 0 && srv->htpasswd) {
        if ((error = berth__check_basic(r, authz)) < 0) {
            if (error == BERTH_EBUSY) {
                r->retry_after = 1;
                return berth_error_set(BERTH_EBUSY,
                                       "too many failed logins from this address; retry later");
            }
            return berth_error_set(BERTH_EUNAUTHORIZED, "wrong user name or password");
        }
        r->authenticated = true;
        return 0;
    }
    if (strncasecmp(authz, "Bearer ", 7) == 0 && srv->token_key) {
        const char *jwt = authz + 7;

        while (*jwt == ' ') {
            jwt++;
        }
        error = berth_token_verify(&w->claims, srv->token_key, jwt, srv->cfg->auth.token.issuer,
                                   srv->cfg->auth.token.service, (int64_t)time(NULL));
        if (error < 0) {
            berth_token_claims_dispose(&w->claims);
            return error == BERTH_EUNAUTHORIZED
                       ? berth_error_set(BERTH_EUNAUTHORIZED, "invalid token")
                       : error;
        }
        w->has_claims = true;
        snprintf(r->user, sizeof(r->user), "%s", w->claims.subject ? w->claims.subject : "");
        r->authenticated = r->user[0] != '\0';
        return 0;
    }
    return berth_error_set(BERTH_EUNAUTHORIZED, "credentials of a kind this server does not take");
}

/* Refuse access to `repo` as /v2/ does: 401 to the anonymous, 403 DENIED to a user. */
static enum MHD_Result refuse_repo(berth__req *r)
{
    if (!r->authenticated) {
        berth_error_set(BERTH_EUNAUTHORIZED, "authentication required");
        return berth__ui_error(r, BERTH_OP_ANY, BERTH_EUNAUTHORIZED, NULL);
    }
    berth_error_set(BERTH_EDENIED, "access denied");
    return berth__ui_error(r, BERTH_OP_ANY, BERTH_EDENIED, NULL);
}

/* ---- responses ------------------------------------------------------------------------------ */

static enum MHD_Result send_json(berth__req *r, json_t *doc)
{
    struct MHD_Response *resp;
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    size_t len;

    json_decref(doc);
    if (!text) {
        berth_error_set(BERTH_ENOMEM, "out of memory");
        return berth__ui_error(r, BERTH_OP_ANY, BERTH_ENOMEM, NULL);
    }
    len = strlen(text);
    if (!(resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE))) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    berth__ui_headers(resp);
    r->bytes = len;
    return berth__respond(r, 200, resp);
}

static enum MHD_Result bad_query(berth__req *r, const char *msg)
{
    berth_error_set(BERTH_EINVALID, "%s", msg);
    return berth__ui_error(r, BERTH_OP_QUERY, BERTH_EINVALID, NULL);
}

static json_t *time_json(int64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    char text[32];

    if (t <= 0 || !gmtime_r(&tt, &tm) ||
        strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        return json_null();
    }
    return json_string(text);
}

static json_t *string_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* n= of a page: 1 to PAGE_MAX, PAGE_DEFAULT when absent. @return 0 or BERTH_EINVALID */
static int page_size(berth__req *r, size_t *out)
{
    const char *v = berth__query(r, "n");
    uint64_t n;

    *out = PAGE_DEFAULT;
    if (!v) {
        return 0;
    }
    if (berth_parse_u64(&n, v, strlen(v), PAGE_MAX) < 0 || n == 0) {
        return berth_error_set(BERTH_EINVALID, "n must be a number from 1 to %d", PAGE_MAX);
    }
    *out = (size_t)n;
    return 0;
}

/* ---- models --------------------------------------------------------------------------------- */

typedef struct ui_man {
    berth_digest digest;
    char *media_type;
    char *artifact_type;
    uint64_t size;
    int64_t pushed;
    berth_digest *refs; /* nblobs blobs (config, layers), then nchildren manifests */
    size_t nblobs, nchildren;
} ui_man;

typedef struct ui_blob {
    uint64_t size;
    char key[BERTH_DIGEST_MAXLEN + 1];
} ui_blob;

typedef struct ui_tag {
    char *name;
    berth_digest digest;
    int64_t pushed;
} ui_tag;

typedef struct ui_model {
    atomic_uint refs;
    char *repo;
    int64_t built;     /* CLOCK_MONOTONIC seconds */
    berth__htab mans;  /* digest -> ui_man */
    berth__htab blobs; /* digest -> ui_blob */
    ui_tag *tags;      /* in name order */
    size_t ntags, tcap;
    uint64_t size;     /* distinct bytes of what the tags reach */
    uint64_t weight;   /* entries held: tags, manifests, blobs (the cache's bound counts them) */
    int64_t last_push; /* latest push of a tag or manifest */
    int rc;            /* while built */
    pthread_mutex_t plock;
    berth__htab plats; /* digest -> ui_plat: platforms read for a page, kept for the next */
} ui_model;

typedef struct ui_plat {
    json_t *list;
    char key[BERTH_DIGEST_MAXLEN + 1];
} ui_plat;

static void free_value(void *value, void *payload)
{
    (void)payload;
    free(value);
}

static void free_man(void *value, void *payload)
{
    ui_man *m = value;
    (void)payload;
    free(m->media_type);
    free(m->artifact_type);
    free(m->refs);
    free(m);
}

static void free_plat(void *value, void *payload)
{
    ui_plat *p = value;
    (void)payload;
    json_decref(p->list);
    free(p);
}

static void model_release(ui_model *m)
{
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1) {
        return;
    }
    berth__htab_foreach(&m->mans, free_man, NULL);
    berth__htab_dispose(&m->mans);
    berth__htab_foreach(&m->blobs, free_value, NULL);
    berth__htab_dispose(&m->blobs);
    berth__htab_foreach(&m->plats, free_plat, NULL);
    berth__htab_dispose(&m->plats);
    pthread_mutex_destroy(&m->plock);
    for (size_t i = 0; i < m->ntags; i++) {
        free(m->tags[i].name);
    }
    free(m->tags);
    free(m->repo);
    free(m);
}

static void release_value(void *value, void *payload)
{
    (void)payload;
    model_release(value);
}

void berth__ui_models_clear(berth__ui *ui)
{
    berth__htab_foreach(&ui->models, release_value, NULL);
    berth__htab_dispose(&ui->models);
    memset(&ui->models, 0, sizeof(ui->models));
    ui->weight = 0;
}

/* Publish the cache's size (/metrics); the caller holds ui->lock. */
static void cache_gauges(berth_server *srv)
{
    berth_metrics_gauge_set(srv->metrics, BERTH_GAUGE_UI_MODELS, (int64_t)srv->ui->models.count);
    berth_metrics_gauge_set(srv->metrics, BERTH_GAUGE_UI_ENTRIES, (int64_t)srv->ui->weight);
}

/* FNV-1a of a repository name, never 0 (0 stands for every repository). */
static uint64_t repo_hash(const char *repo)
{
    uint64_t h = 1469598103934665603ull;

    for (const unsigned char *p = (const unsigned char *)repo; *p; p++) {
        h = (h ^ *p) * 1099511628211ull;
    }
    return h ? h : 1;
}

void berth__ui_note_change(berth__ui *ui, const char *repo)
{
    uint64_t g = ++ui->generation;

    ui->changes[g % BERTH__UI_CHANGES].generation = g;
    ui->changes[g % BERTH__UI_CHANGES].repo = repo ? repo_hash(repo) : 0;
}

/* Did `repo` change (or everything) since `generation`, or is it too long ago to tell? The
 * caller holds ui->lock. Changes of other repositories do not count: on a registry that is
 * pushed to all the time, a model is still kept. */
static bool changed_since(const berth__ui *ui, const char *repo, uint64_t generation)
{
    uint64_t h = repo_hash(repo);

    if (ui->generation - generation >= BERTH__UI_CHANGES) {
        return true;
    }
    for (uint64_t g = generation + 1; g <= ui->generation; g++) {
        uint64_t slot = ui->changes[g % BERTH__UI_CHANGES].repo;
        if (slot == 0 || slot == h) {
            return true;
        }
    }
    return false;
}

void berth__ui_changed(berth_server *srv, const char *repo)
{
    berth__ui *ui = srv->ui;
    ui_model *m;

    if (!ui) {
        return;
    }
    pthread_mutex_lock(&ui->lock);
    berth__ui_note_change(ui, repo);
    if (repo && (m = berth__htab_remove(&ui->models, repo)) != NULL) {
        ui->weight -= m->weight;
        model_release(m);
    } else if (!repo) {
        berth__ui_models_clear(ui);
    }
    cache_gauges(srv);
    pthread_mutex_unlock(&ui->lock);
}

static int64_t mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

static int model_tag(const char *tag, const berth_digest *digest, int64_t pushed, void *payload)
{
    ui_model *m = payload;

    if (m->ntags == m->tcap) {
        size_t cap = m->tcap ? m->tcap * 2 : 16;
        ui_tag *grown = realloc(m->tags, cap * sizeof(*grown));
        if (!grown) {
            m->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            return 1;
        }
        m->tags = grown;
        m->tcap = cap;
    }
    if (!(m->tags[m->ntags].name = strdup(tag))) {
        m->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        return 1;
    }
    m->tags[m->ntags].digest = *digest;
    m->tags[m->ntags].pushed = pushed;
    m->ntags++;
    if (pushed > m->last_push) {
        m->last_push = pushed;
    }
    return 0;
}

static int model_blob(const berth_digest *digest, uint64_t size, void *payload)
{
    ui_model *m = payload;
    ui_blob *b;

    if (berth__htab_get(&m->blobs, digest->str)) {
        return 0;
    }
    if (!(b = calloc(1, sizeof(*b)))) {
        m->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        return 1;
    }
    b->size = size;
    snprintf(b->key, sizeof(b->key), "%s", digest->str);
    if ((m->rc = berth__htab_put(&m->blobs, b->key, b)) < 0) {
        free(b);
        return 1;
    }
    return 0;
}

static int model_manifest(const berth_meta_manifest *mm, void *payload)
{
    ui_model *m = payload;
    size_t nrefs = mm->nblobs + mm->nchildren;
    ui_man *e = calloc(1, sizeof(*e));

    if (!e || !(e->media_type = strdup(mm->media_type)) ||
        (mm->artifact_type && !(e->artifact_type = strdup(mm->artifact_type))) ||
        (nrefs && !(e->refs = calloc(nrefs, sizeof(*e->refs))))) {
        if (e) {
            free_man(e, NULL);
        }
        m->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        return 1;
    }
    e->digest = mm->digest;
    e->size = mm->size;
    e->pushed = mm->pushed;
    e->nblobs = mm->nblobs;
    e->nchildren = mm->nchildren;
    for (size_t i = 0; i < mm->nblobs; i++) {
        e->refs[i] = mm->blobs[i];
    }
    for (size_t i = 0; i < mm->nchildren; i++) {
        e->refs[mm->nblobs + i] = mm->children[i];
    }
    if (mm->pushed > m->last_push) {
        m->last_push = mm->pushed;
    }
    if ((m->rc = berth__htab_put(&m->mans, e->digest.str, e)) < 0) {
        free_man(e, NULL);
        return 1;
    }
    return 0;
}

/* Add to `sum` the bytes `digest` reaches (itself, its blobs, its children) not yet in `seen`.
 */
static int closure(const ui_model *m, berth__htab *seen, const berth_digest *digest, int depth,
                   uint64_t *sum)
{
    const ui_man *e;
    int rc;

    if (depth > DEPTH_MAX || berth__htab_get(seen, digest->str)) {
        return 0;
    }
    if (!(e = berth__htab_get(&m->mans, digest->str))) {
        return 0; /* absent (sparse): no bytes */
    }
    if ((rc = berth__htab_put(seen, e->digest.str, (void *)(uintptr_t)1)) < 0) {
        return rc;
    }
    *sum += e->size;
    for (size_t i = 0; i < e->nblobs; i++) {
        const ui_blob *b = berth__htab_get(&m->blobs, e->refs[i].str);
        if (b && !berth__htab_get(seen, b->key)) {
            if ((rc = berth__htab_put(seen, b->key, (void *)(uintptr_t)1)) < 0) {
                return rc;
            }
            *sum += b->size;
        }
    }
    for (size_t i = 0; i < e->nchildren; i++) {
        if ((rc = closure(m, seen, &e->refs[e->nblobs + i], depth + 1, sum)) < 0) {
            return rc;
        }
    }
    return 0;
}

/* The bytes one manifest reaches (the size of a tag). */
static uint64_t closure_size(const ui_model *m, const berth_digest *digest)
{
    berth__htab seen = BERTH__HTAB_INIT;
    uint64_t sum = 0;

    closure(m, &seen, digest, 0, &sum);
    berth__htab_dispose(&seen);
    return sum;
}

static int model_build(ui_model **out, berth_store *s, const char *repo)
{
    ui_model *m = calloc(1, sizeof(*m));
    berth__htab seen = BERTH__HTAB_INIT;
    bool more = false;
    int rc;

    *out = NULL;
    if (!m || !(m->repo = strdup(repo))) {
        free(m);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    atomic_init(&m->refs, 1);
    pthread_mutex_init(&m->plock, NULL);
    m->built = mono_seconds();
    rc = berth_store_tag_list(s, repo, NULL, 0, model_tag, m, &more);
    if (rc == 0 && m->rc == 0) {
        rc = berth_store_blobs(s, repo, model_blob, m);
    }
    if (rc >= 0 && m->rc == 0) {
        rc = berth_store_manifests(s, repo, model_manifest, m);
    }
    if (m->rc < 0) {
        rc = m->rc;
    }
    for (size_t i = 0; rc >= 0 && i < m->ntags; i++) {
        rc = closure(m, &seen, &m->tags[i].digest, 0, &m->size);
    }
    berth__htab_dispose(&seen);
    if (rc < 0) {
        model_release(m);
        return rc;
    }
    m->weight = 1 + m->ntags + m->mans.count + m->blobs.count;
    *out = m;
    return 0;
}

/* The model of `repo` (a reference the caller releases). @return 0, BERTH_ENOTFOUND, ... */
static int model_get(ui_model **out, berth_server *srv, const char *repo)
{
    berth__ui *ui = srv->ui;
    ui_model *m, *old;
    uint64_t generation;
    int rc;

    pthread_mutex_lock(&ui->lock);
    m = berth__htab_get(&ui->models, repo);
    if (m && mono_seconds() - m->built < MODEL_TTL) {
        atomic_fetch_add(&m->refs, 1);
        pthread_mutex_unlock(&ui->lock);
        *out = m;
        return 0;
    }
    generation = ui->generation;
    pthread_mutex_unlock(&ui->lock);
    if ((rc = model_build(&m, srv->store, repo)) < 0) {
        return rc;
    }
    pthread_mutex_lock(&ui->lock);
    if (!changed_since(ui, repo, generation) && m->weight <= ui->weight_max) {
        /* its repository did not change while it was built, and it fits: keep it (one too big
           for the whole cache serves this request only) */
        if ((old = berth__htab_remove(&ui->models, repo)) != NULL) {
            ui->weight -= old->weight;
            model_release(old);
        }
        if (ui->models.count >= MODELS_MAX || ui->weight + m->weight > ui->weight_max) {
            berth__ui_models_clear(ui);
        }
        if (berth__htab_put(&ui->models, m->repo, m) == 0) {
            atomic_fetch_add(&m->refs, 1);
            ui->weight += m->weight;
        }
        cache_gauges(srv);
    }
    pthread_mutex_unlock(&ui->lock);
    *out = m;
    return 0;
}

/* ---- session -------------------------------------------------------------------------------- */

static enum MHD_Result api_session(berth__req *r)
{
    berth_server *srv = r->srv;
    const char *host = berth__header(r, MHD_HTTP_HEADER_HOST);
    who w;
    int error = identify(r, &w);
    json_t *doc;

    if (error == BERTH_EBUSY || error == BERTH_ENOMEM) {
        return berth__ui_error(r, BERTH_OP_ANY, error, NULL);
    }
    if (error < 0) {
        r->authenticated = false; /* wrong credentials: the session of nobody */
        r->user[0] = '\0';
        berth_error_clear();
    }
    doc = json_object();
    json_object_set_new(doc, "user", r->authenticated ? json_string(r->user) : json_null());
    json_object_set_new(doc, "auth",
                        json_string(!srv->auth      ? "none"
                                    : srv->htpasswd ? "basic"
                                                    : "token"));
    json_object_set_new(doc, "login_required",
                        json_boolean(srv->auth && !r->authenticated && !may_pull_some(r, &w)));
    json_object_set_new(doc, "host", json_string(host ? host : ""));
    json_object_set_new(doc, "read_only", json_boolean(srv->cfg && srv->cfg->storage.read_only));
    json_object_set_new(doc, "deletes", json_boolean(deletes_on(srv)));
    json_object_set_new(doc, "version", json_string(BERTH_VERSION));
    who_dispose(&w);
    return send_json(r, doc);
}

/* ---- repositories --------------------------------------------------------------------------- */

typedef struct repo_page {
    berth__req *r;
    const who *w;
    const char *q;
    size_t n;
    char **names; /* up to n */
    size_t count;
    bool more;
    bool counting; /* q given: walk on to count the matches */
    uint64_t total;
    int rc;
} repo_page;

/* Case-insensitive substring. */
static bool contains(const char *hay, const char *needle)
{
    size_t nl = strlen(needle);

    for (; *hay; hay++) {
        if (strncasecmp(hay, needle, nl) == 0) {
            return true;
        }
    }
    return nl == 0;
}

static int collect_repo(const char *name, void *payload)
{
    repo_page *p = payload;

    if ((p->q && !contains(name, p->q)) || !may(p->r, p->w, name, BERTH_ACTION_PULL)) {
        return 0;
    }
    p->total++;
    if (p->count == p->n) {
        p->more = true;
        return p->counting ? 0 : 1;
    }
    if (!(p->names[p->count] = strdup(name))) {
        p->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        return 1;
    }
    p->count++;
    return 0;
}

static enum MHD_Result api_repositories(berth__req *r, const who *w)
{
    const char *q = berth__query(r, "q"), *last = berth__query(r, "last");
    repo_page p;
    json_t *doc = NULL, *list;
    bool more = false;
    size_t n;
    int error;

    if (page_size(r, &n) < 0) {
        return berth__ui_error(r, BERTH_OP_QUERY, BERTH_EINVALID, NULL);
    }
    if (q && strlen(q) > BERTH_NAME_MAX) {
        return bad_query(r, "q is longer than 255 characters");
    }
    if (last && (!*last || strlen(last) > BERTH_NAME_MAX)) {
        return bad_query(r, "last must be a repository name (1 to 255 characters)");
    }
    memset(&p, 0, sizeof(p));
    p.r = r;
    p.w = w;
    p.q = q && *q ? q : NULL;
    p.n = n;
    p.counting = p.q != NULL;
    if (!(p.names = calloc(n, sizeof(*p.names)))) {
        return berth__ui_error(r, BERTH_OP_ANY, BERTH_ENOMEM, "out of memory");
    }
    error = berth_store_catalog(r->srv->store, last, 0, collect_repo, &p, &more);
    if (error == 0 && p.rc < 0) {
        error = p.rc;
    }
    list = json_array();
    for (size_t i = 0; error == 0 && i < p.count; i++) {
        const char *slash = strrchr(p.names[i], '/');
        ui_model *m = NULL;
        json_t *e;

        if ((error = model_get(&m, r->srv, p.names[i])) == BERTH_ENOTFOUND) {
            error = 0; /* gone meanwhile: listed empty */
            berth_error_clear();
        }
        e = json_object();
        json_object_set_new(e, "name", json_string(p.names[i]));
        json_object_set_new(e, "namespace",
                            json_stringn(p.names[i], slash ? (size_t)(slash - p.names[i]) : 0));
        json_object_set_new(e, "tag_count", json_integer(m ? (json_int_t)m->ntags : 0));
        json_object_set_new(e, "size", json_integer(m ? (json_int_t)m->size : 0));
        json_object_set_new(e, "last_push", time_json(m ? m->last_push : 0));
        json_array_append_new(list, e);
        model_release(m);
    }
    if (error == 0) {
        doc = json_object();
        json_object_set_new(doc, "repositories", list);
        json_object_set_new(doc, "next",
                            p.more && p.count ? json_string(p.names[p.count - 1]) : json_null());
        json_object_set_new(doc, "total",
                            p.counting ? json_integer((json_int_t)p.total) : json_null());
    } else {
        json_decref(list);
    }
    for (size_t i = 0; i < p.count; i++) {
        free(p.names[i]);
    }
    free(p.names);
    if (error < 0) {
        return berth__ui_error(r, BERTH_OP_ANY, error, NULL);
    }
    return send_json(r, doc);
}

/* ---- documents ------------------------------------------------------------------------------ */

typedef struct read_ctx {
    berth_buf *out;
} read_ctx;

static int read_sink(const void *data, size_t len, void *payload)
{
    return berth_buf_put(((read_ctx *)payload)->out, data, len);
}

/* Read a small blob of `repo` as JSON. @return the document, NULL (absent, too big: *too_big) */
static json_t *read_json_blob(berth_store *s, const char *repo, const berth_digest *digest,
                              bool *too_big)
{
    berth_buf b = BERTH_BUF_INIT;
    read_ctx ctx = {&b};
    uint64_t size;
    json_t *doc = NULL;

    *too_big = false;
    if (berth_store_blob_stat(s, repo, digest, &size) < 0) {
        berth_error_clear();
        return NULL;
    }
    if (size > CONFIG_MAX) {
        *too_big = true;
        return NULL;
    }
    b.max = CONFIG_MAX;
    if (berth_store_blob_read(s, digest, 0, UINT64_MAX, read_sink, &ctx) == 0 && b.len) {
        doc = json_loadb(b.ptr, b.len, 0, NULL);
    }
    berth_error_clear();
    berth_buf_dispose(&b);
    return doc;
}

/* The manifest document of `digest` as JSON, NULL when absent or not JSON. */
static json_t *manifest_json(berth_store *s, const char *repo, const char *reference,
                             const berth_stored_manifest **keep)
{
    const berth_stored_manifest *m = NULL;
    json_t *doc;

    if (berth_store_manifest_get(&m, s, repo, reference) < 0) {
        berth_error_clear();
        return NULL;
    }
    doc = json_loadb(m->data, m->len, 0, NULL);
    if (keep) {
        *keep = m;
    } else {
        berth_manifest_release(m);
    }
    return doc;
}

static bool is_image_config(const char *media_type)
{
    return media_type &&
           (strcmp(media_type, BERTH_MEDIA_OCI_CONFIG) == 0 ||
            strcmp(media_type, "application/vnd.docker.container.image.v1+json") == 0);
}

static json_t *platform_of(json_t *p)
{
    json_t *o = json_object();
    const char *os = json_string_value(json_object_get(p, "os"));
    const char *arch = json_string_value(json_object_get(p, "architecture"));
    const char *variant = json_string_value(json_object_get(p, "variant"));

    json_object_set_new(o, "os", string_or_null(os));
    json_object_set_new(o, "architecture", string_or_null(arch));
    json_object_set_new(o, "variant", string_or_null(variant));
    return o;
}

/* The platforms of a manifest: an index's children's, an image's config's. */
static json_t *platforms(berth_store *s, const char *repo, const berth_digest *digest)
{
    json_t *list = json_array(), *doc = manifest_json(s, repo, digest->str, NULL), *v, *cfg;
    size_t i;

    if (!doc) {
        return list;
    }
    if (json_is_array(json_object_get(doc, "manifests"))) {
        json_array_foreach(json_object_get(doc, "manifests"), i, v)
        {
            json_t *p = json_object_get(v, "platform");
            if (json_is_object(p)) {
                json_array_append_new(list, platform_of(p));
            }
        }
    } else if (json_is_object(cfg = json_object_get(doc, "config")) &&
               is_image_config(json_string_value(json_object_get(cfg, "mediaType")))) {
        berth_digest cd;
        bool too_big;
        json_t *config;

        if (berth_digest_parse_str(&cd, json_string_value(json_object_get(cfg, "digest"))) == 0 &&
            (config = read_json_blob(s, repo, &cd, &too_big)) != NULL) {
            if (json_is_string(json_object_get(config, "architecture"))) {
                json_array_append_new(list, platform_of(config));
            }
            json_decref(config);
        }
        berth_error_clear();
    }
    json_decref(doc);
    return list;
}

/* The platforms of a manifest of model `m`, read once per model (a new reference). */
static json_t *platforms_cached(ui_model *m, berth_store *s, const berth_digest *digest)
{
    ui_plat *p;
    json_t *list;

    pthread_mutex_lock(&m->plock);
    p = berth__htab_get(&m->plats, digest->str);
    list = p ? json_deep_copy(p->list) : NULL;
    pthread_mutex_unlock(&m->plock);
    if (list) {
        return list;
    }
    list = platforms(s, m->repo, digest);
    if (list && (p = calloc(1, sizeof(*p))) != NULL) {
        snprintf(p->key, sizeof(p->key), "%s", digest->str);
        p->list = json_deep_copy(list);
        pthread_mutex_lock(&m->plock);
        if (!p->list || berth__htab_get(&m->plats, p->key) ||
            berth__htab_put(&m->plats, p->key, p) < 0) {
            json_decref(p->list);
            free(p);
        }
        pthread_mutex_unlock(&m->plock);
    }
    return list;
}

/* ---- tags ----------------------------------------------------------------------------------- */

int berth__ui_cursor_encode(char *out, size_t size, bool by_pushed, int64_t pushed, const char *tag)
{
    berth_buf raw = BERTH_BUF_INIT, enc = BERTH_BUF_INIT;
    int rc;

    rc = by_pushed ? berth_buf_printf(&raw, "p%lld:%s", (long long)pushed, tag)
                   : berth_buf_printf(&raw, "n:%s", tag);
    if (rc == 0) {
        rc = berth__base64_encode(&enc, raw.ptr, raw.len, BERTH__BASE64_URL);
    }
    if (rc == 0 && enc.len >= size) {
        rc = berth_error_set(BERTH_EINVALID, "cursor too long");
    }
    if (rc == 0) {
        memcpy(out, enc.ptr, enc.len + 1);
    }
    berth_buf_dispose(&raw);
    berth_buf_dispose(&enc);
    return rc;
}

int berth__ui_cursor_decode(int64_t *pushed_out, char *tag_out, size_t tag_size, bool by_pushed,
                            const char *cursor)
{
    berth_buf raw = BERTH_BUF_INIT;
    const char *colon, *tag;
    uint64_t pushed = 0;
    int rc;

    *pushed_out = 0;
    rc = berth__base64_decode(&raw, cursor, strlen(cursor), BERTH__BASE64_URL);
    if (rc < 0 || !raw.ptr || strlen(raw.ptr) != raw.len || !(colon = strchr(raw.ptr, ':'))) {
        rc = BERTH_EINVALID;
        goto out;
    }
    tag = colon + 1;
    if (by_pushed) {
        if (raw.ptr[0] != 'p' ||
            berth_parse_u64(&pushed, raw.ptr + 1, (size_t)(colon - raw.ptr - 1), INT64_MAX) < 0) {
            rc = BERTH_EINVALID;
            goto out;
        }
    } else if (colon != raw.ptr + 1 || raw.ptr[0] != 'n') {
        rc = BERTH_EINVALID;
        goto out;
    }
    if (berth_tag_validate(tag) < 0 || strlen(tag) >= tag_size) {
        rc = BERTH_EINVALID;
        goto out;
    }
    memcpy(tag_out, tag, strlen(tag) + 1);
    *pushed_out = (int64_t)pushed;
    rc = 0;
out:
    berth_buf_dispose(&raw);
    if (rc < 0) {
        berth_error_set(BERTH_EINVALID, "last is not a cursor of this listing");
    }
    return rc;
}

typedef struct tag_order {
    bool by_pushed;
    bool desc;
} tag_order;

/* Compare two tags in the listing's order (ties in pushed time by name). */
static int tag_cmp(const tag_order *o, int64_t pa, const char *na, int64_t pb, const char *nb)
{
    int c = 0;

    if (o->by_pushed && pa != pb) {
        c = pa < pb ? -1 : 1;
    }
    if (c == 0) {
        c = strcmp(na, nb);
    }
    return o->desc ? -c : c;
}

static _Thread_local tag_order sort_order; /* qsort has no payload: the order of this thread */

static int tag_qsort(const void *a, const void *b)
{
    const ui_tag *x = *(const ui_tag *const *)a, *y = *(const ui_tag *const *)b;
    return tag_cmp(&sort_order, x->pushed, x->name, y->pushed, y->name);
}

static enum MHD_Result api_tags(berth__req *r, const who *w, const char *repo)
{
    const char *sort = berth__query(r, "sort"), *order = berth__query(r, "order");
    const char *last = berth__query(r, "last");
    char last_tag[BERTH_TAG_MAX + 1], cursor[BERTH__UI_CURSOR_MAX];
    int64_t last_pushed = 0;
    tag_order o = {true, true};
    ui_model *m = NULL;
    const ui_tag **sorted = NULL;
    json_t *doc, *list;
    size_t n, start = 0, end;
    int error;

    if (page_size(r, &n) < 0) {
        return berth__ui_error(r, BERTH_OP_QUERY, BERTH_EINVALID, NULL);
    }
    if (sort && strcmp(sort, "name") == 0) {
        o.by_pushed = false;
        o.desc = false;
    } else if (sort && strcmp(sort, "pushed") != 0) {
        return bad_query(r, "sort must be pushed or name");
    }
    if (order && strcmp(order, "asc") == 0) {
        o.desc = false;
    } else if (order && strcmp(order, "desc") == 0) {
        o.desc = true;
    } else if (order) {
        return bad_query(r, "order must be asc or desc");
    }
    if (last &&
        berth__ui_cursor_decode(&last_pushed, last_tag, sizeof(last_tag), o.by_pushed, last) < 0) {
        return berth__ui_error(r, BERTH_OP_QUERY, BERTH_EINVALID, NULL);
    }
    if ((error = model_get(&m, r->srv, repo)) < 0) {
        return berth__ui_error(r, BERTH_OP_REPO, error, NULL);
    }
    if (m->ntags && !(sorted = calloc(m->ntags, sizeof(*sorted)))) {
        model_release(m);
        return berth__ui_error(r, BERTH_OP_ANY, BERTH_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < m->ntags; i++) {
        sorted[i] = &m->tags[i];
    }
    if (m->ntags) {
        sort_order = o;
        qsort(sorted, m->ntags, sizeof(*sorted), tag_qsort);
    }
    if (last) {
        /* keyset: the first tag after the cursor's, in this order */
        while (start < m->ntags && tag_cmp(&o, sorted[start]->pushed, sorted[start]->name,
                                           last_pushed, last_tag) <= 0) {
            start++;
        }
    }
    end = start + n < m->ntags ? start + n : m->ntags;
    list = json_array();
    for (size_t i = start; i < end; i++) {
        const ui_tag *t = sorted[i];
        const ui_man *e = berth__htab_get(&m->mans, t->digest.str);
        json_t *o2 = json_object();

        json_object_set_new(o2, "name", json_string(t->name));
        json_object_set_new(o2, "digest", json_string(t->digest.str));
        json_object_set_new(o2, "media_type", string_or_null(e ? e->media_type : NULL));
        /* (the metadata gives an image's config type as its artifact type, as referrers do) */
        json_object_set_new(
            o2, "artifact_type",
            string_or_null(e && !is_image_config(e->artifact_type) ? e->artifact_type : NULL));
        json_object_set_new(o2, "size", json_integer((json_int_t)closure_size(m, &t->digest)));
        json_object_set_new(o2, "pushed", time_json(t->pushed));
        json_object_set_new(o2, "platforms", platforms_cached(m, r->srv->store, &t->digest));
        json_array_append_new(list, o2);
    }
    doc = json_object();
    json_object_set_new(doc, "tags", list);
    if (end < m->ntags && end > start &&
        berth__ui_cursor_encode(cursor, sizeof(cursor), o.by_pushed, sorted[end - 1]->pushed,
                                sorted[end - 1]->name) == 0) {
        json_object_set_new(doc, "next", json_string(cursor));
    } else {
        json_object_set_new(doc, "next", json_null());
    }
    json_object_set_new(doc, "can_delete", json_boolean(may_delete(r, w, repo)));
    free(sorted);
    model_release(m);
    return send_json(r, doc);
}

/* ---- a manifest ----------------------------------------------------------------------------- */

typedef struct digest_tags {
    const berth_digest *digest;
    json_t *list;
} digest_tags;

static int tag_of_digest(const char *tag, const berth_digest *digest, int64_t pushed, void *payload)
{
    digest_tags *d = payload;
    (void)pushed;
    if (strcmp(digest->str, d->digest->str) == 0) {
        json_array_append_new(d->list, json_string(tag));
    }
    return 0;
}

static json_t *descriptor_fields(json_t *src, bool with_platform, bool with_annotations)
{
    json_t *o = json_object(), *v;

    json_object_set(o, "digest", (v = json_object_get(src, "digest")) ? v : json_null());
    json_object_set(o, "media_type", (v = json_object_get(src, "mediaType")) ? v : json_null());
    json_object_set(o, "size", (v = json_object_get(src, "size")) ? v : json_integer(0));
    if (with_platform) {
        v = json_object_get(src, "platform");
        json_object_set_new(o, "platform", json_is_object(v) ? json_deep_copy(v) : json_null());
    }
    if (with_annotations) {
        v = json_object_get(src, "annotations");
        json_object_set_new(o, "annotations",
                            json_is_object(v) ? json_deep_copy(v) : json_object());
    }
    return o;
}

static json_t *referrers_of(berth_store *s, const char *repo, const berth_digest *digest)
{
    berth_buf b = BERTH_BUF_INIT;
    json_t *list = json_array(), *doc = NULL, *v;
    size_t i;

    if (berth_store_referrers(&b, s, repo, digest, NULL, NULL) == 0) {
        doc = json_loadb(b.ptr, b.len, 0, NULL);
    }
    berth_error_clear();
    berth_buf_dispose(&b);
    json_array_foreach(json_object_get(doc, "manifests"), i, v)
    {
        json_t *o = descriptor_fields(v, false, true);
        json_t *at = json_object_get(v, "artifactType");
        json_object_set_new(o, "artifact_type", json_is_string(at) ? json_copy(at) : json_null());
        json_array_append_new(list, o);
    }
    json_decref(doc);
    return list;
}

static enum MHD_Result api_manifest(berth__req *r, const who *w, const char *repo,
                                    const char *reference)
{
    berth_store *s = r->srv->store;
    const berth_stored_manifest *sm = NULL;
    ui_model *m = NULL;
    digest_tags dt;
    json_t *doc = NULL, *out, *v, *cfg;
    berth_digest digest;
    const char *artifact_type;
    bool more = false;
    size_t i;
    int error;

    if (strchr(reference, ':') ? berth_digest_parse_str(&digest, reference) < 0
                               : berth_tag_validate(reference) < 0) {
        berth_error_set(BERTH_ENOTFOUND, "manifest unknown: not a tag or digest");
        return berth__ui_error(r, BERTH_OP_MANIFEST_GET, BERTH_ENOTFOUND, NULL);
    }
    if ((error = berth_store_manifest_get(&sm, s, repo, reference)) < 0) {
        return berth__ui_error(r, BERTH_OP_MANIFEST_GET, error, NULL);
    }
    digest = sm->digest;
    doc = json_loadb(sm->data, sm->len, 0, NULL);
    out = json_object();
    json_object_set_new(out, "digest", json_string(digest.str));
    json_object_set_new(out, "media_type", json_string(sm->media_type));
    artifact_type = json_string_value(json_object_get(doc, "artifactType"));
    if (!artifact_type && json_is_object(cfg = json_object_get(doc, "config")) &&
        !is_image_config(json_string_value(json_object_get(cfg, "mediaType")))) {
        artifact_type = json_string_value(json_object_get(cfg, "mediaType"));
    }
    json_object_set_new(out, "artifact_type", string_or_null(artifact_type));
    json_object_set_new(out, "size", json_integer((json_int_t)sm->len));
    dt.digest = &digest;
    dt.list = json_array();
    if (model_get(&m, r->srv, repo) == 0) {
        /* the model's tags: no listing of every tag of the repository per request */
        for (i = 0; i < m->ntags; i++) {
            tag_of_digest(m->tags[i].name, &m->tags[i].digest, m->tags[i].pushed, &dt);
        }
    } else {
        m = NULL;
        berth_store_tag_list(s, repo, NULL, 0, tag_of_digest, &dt, &more);
    }
    berth_error_clear();
    json_object_set_new(out, "tags", dt.list);
    json_object_set_new(out, "manifest", doc ? json_incref(doc) : json_null());
    if (json_is_array(json_object_get(doc, "manifests"))) {
        json_t *children = json_array();
        json_array_foreach(json_object_get(doc, "manifests"), i, v)
        {
            json_array_append_new(children, descriptor_fields(v, true, false));
        }
        json_object_set_new(out, "children", children);
        json_object_set_new(out, "config", json_null());
        json_object_set_new(out, "layers", json_array());
    } else {
        json_t *layers = json_array(), *config = NULL;
        bool too_big = false;

        json_object_set_new(out, "children", json_array());
        if (json_is_object(cfg = json_object_get(doc, "config")) &&
            is_image_config(json_string_value(json_object_get(cfg, "mediaType")))) {
            berth_digest cd;
            if (berth_digest_parse_str(&cd, json_string_value(json_object_get(cfg, "digest"))) ==
                0) {
                config = read_json_blob(s, repo, &cd, &too_big);
            }
            berth_error_clear();
        }
        json_object_set_new(out, "config", config ? config : json_null());
        if (too_big) {
            json_object_set_new(out, "config_too_large", json_true());
        }
        json_array_foreach(json_object_get(doc, "layers"), i, v)
        {
            json_array_append_new(layers, descriptor_fields(v, false, true));
        }
        json_object_set_new(out, "layers", layers);
    }
    if (m) {
        json_object_set_new(out, "total_size", json_integer((json_int_t)closure_size(m, &digest)));
        model_release(m);
    } else {
        json_object_set_new(out, "total_size", json_integer((json_int_t)sm->len));
    }
    json_object_set_new(out, "referrers", referrers_of(s, repo, &digest));
    v = json_object_get(doc, "subject");
    json_object_set_new(out, "subject",
                        json_is_object(v) ? descriptor_fields(v, false, false) : json_null());
    json_object_set_new(out, "can_delete", json_boolean(may_delete(r, w, repo)));
    json_decref(doc);
    berth_manifest_release(sm);
    return send_json(r, out);
}

/* ---- storage -------------------------------------------------------------------------------- */

/*
 * The storage page needs a walk of every repository's metadata (berth du). One walk's figures
 * (every repository's, filtered per caller when answered) are kept and shared: until something
 * changes or STORAGE_TTL passes. Only one walk runs at a time, and the next starts no sooner
 * than the last one took after it ended: meanwhile callers get the last figures (with the time
 * they were computed), or 429 when there are none yet. So a page polled by many clients costs
 * at most half of one worker, never all of them.
 */
#define STORAGE_TTL 30

typedef struct du_row {
    char *name;
    uint64_t exclusive, shared;
} du_row;

typedef struct du_snap {
    atomic_uint refs;
    du_row *rows;
    size_t count, cap;
    int64_t computed;             /* Unix seconds: when the walk started */
    uint64_t generation;          /* of the UI's changes, when the walk started */
    int64_t started_ms, ended_ms; /* CLOCK_MONOTONIC */
    int rc;
} du_snap;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void du_release(du_snap *d)
{
    if (!d || atomic_fetch_sub(&d->refs, 1) != 1) {
        return;
    }
    for (size_t i = 0; i < d->count; i++) {
        free(d->rows[i].name);
    }
    free(d->rows);
    free(d);
}

void berth__ui_du_clear(berth__ui *ui)
{
    du_release(ui->du);
    ui->du = NULL;
}

static void du_repo(const char *repo, uint64_t exclusive, uint64_t shared, uint64_t blobs,
                    void *payload)
{
    du_snap *d = payload;

    (void)blobs;
    if (d->rc < 0) {
        return;
    }
    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        du_row *grown = realloc(d->rows, cap * sizeof(*grown));
        if (!grown) {
            d->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            return;
        }
        d->rows = grown;
        d->cap = cap;
    }
    if (!(d->rows[d->count].name = strdup(repo))) {
        d->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        return;
    }
    d->rows[d->count].exclusive = exclusive;
    d->rows[d->count].shared = shared;
    d->count++;
}

/* The figures of the storage page (a reference the caller releases). @return 0, BERTH_EBUSY
 * (a walk is under way and none is kept yet), BERTH_ENOMEM, an error of the store */
static int du_get(du_snap **out, berth_server *srv)
{
    berth__ui *ui = srv->ui;
    du_snap *d, *old;
    int64_t now = mono_ms();
    bool fresh, paced;
    int rc;

    *out = NULL;
    pthread_mutex_lock(&ui->lock);
    d = ui->du;
    fresh = d && d->generation == ui->generation && now - d->started_ms < STORAGE_TTL * 1000;
    paced = d && now - d->ended_ms < d->ended_ms - d->started_ms;
    if (d && (fresh || paced || ui->du_running)) {
        atomic_fetch_add(&d->refs, 1);
        pthread_mutex_unlock(&ui->lock);
        *out = d;
        return 0;
    }
    if (ui->du_running) {
        pthread_mutex_unlock(&ui->lock);
        return berth_error_set(BERTH_EBUSY, "the storage figures are being computed; retry later");
    }
    ui->du_running = true;
    if (!(d = calloc(1, sizeof(*d)))) {
        ui->du_running = false;
        pthread_mutex_unlock(&ui->lock);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    atomic_init(&d->refs, 1);
    d->generation = ui->generation;
    pthread_mutex_unlock(&ui->lock);

    d->computed = (int64_t)time(NULL);
    d->started_ms = now;
    rc = berth_store_du(srv->store, du_repo, d, NULL);
    if (rc == 0 && d->rc < 0) {
        rc = d->rc;
    }
    d->ended_ms = mono_ms();
    pthread_mutex_lock(&ui->lock);
    ui->du_running = false;
    if (rc == 0) {
        old = ui->du;
        ui->du = d;
        atomic_fetch_add(&d->refs, 1);
        du_release(old);
    }
    pthread_mutex_unlock(&ui->lock);
    if (rc < 0) {
        du_release(d);
        return rc;
    }
    *out = d;
    return 0;
}

static enum MHD_Result api_storage(berth__req *r, const who *w)
{
    berth__ui *ui = r->srv->ui;
    du_snap *d = NULL;
    json_t *doc, *list;
    uint64_t count = 0, bytes = 0;
    int error;

    if ((error = du_get(&d, r->srv)) < 0) {
        if (error == BERTH_EBUSY) {
            r->retry_after = 1;
        }
        return berth__ui_error(r, BERTH_OP_ANY, error, NULL);
    }
    list = json_array();
    for (size_t i = 0; i < d->count; i++) {
        json_t *o;
        if (!may(r, w, d->rows[i].name, BERTH_ACTION_PULL)) {
            continue;
        }
        o = json_object();
        json_object_set_new(o, "name", json_string(d->rows[i].name));
        json_object_set_new(o, "exclusive", json_integer((json_int_t)d->rows[i].exclusive));
        json_object_set_new(o, "shared", json_integer((json_int_t)d->rows[i].shared));
        json_array_append_new(list, o);
    }
    doc = json_object();
    json_object_set_new(doc, "repositories", list);
    json_object_set_new(doc, "computed", time_json(d->computed));
    du_release(d);
    if (may_pull_all(r, w) && berth_store_uploads_usage(r->srv->store, &count, &bytes) == 0) {
        json_t *u = json_object();
        json_object_set_new(u, "open", json_integer((json_int_t)count));
        json_object_set_new(u, "bytes", json_integer((json_int_t)bytes));
        json_object_set_new(doc, "uploads", u);
    } else {
        json_object_set_new(doc, "uploads", json_null());
    }
    berth_error_clear();
    if (may_pull_all(r, w)) {
        json_t *g = json_object();
        pthread_mutex_lock(&ui->lock);
        json_object_set_new(g, "last_run", time_json(ui->gc_ran ? ui->gc_time : 0));
        json_object_set_new(g, "freed_bytes", json_integer((json_int_t)ui->gc.bytes_freed));
        json_object_set_new(g, "blobs_deleted", json_integer((json_int_t)ui->gc.blobs_removed));
        json_object_set_new(g, "manifests_deleted",
                            json_integer((json_int_t)ui->gc.manifests_removed));
        pthread_mutex_unlock(&ui->lock);
        json_object_set_new(doc, "gc", g);
    } else {
        json_object_set_new(doc, "gc", json_null());
    }
    return send_json(r, doc);
}

/* ---- routing -------------------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decode the escapes of bytes a name, tag or digest may hold (a browser sends ':' as %3A);
 * any other escape (%2F) stays as it is and fails the grammar of its component. */
static void unescape_safe(char *s)
{
    char *in = s, *out = s;

    while (*in) {
        int hi, lo;
        if (in[0] == '%' && (hi = hexval(in[1])) >= 0 && (lo = hexval(in[2])) >= 0) {
            char c = (char)(hi * 16 + lo);
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                (c && strchr("-._~:+", c))) {
                *out++ = c;
                in += 3;
                continue;
            }
        }
        *out++ = *in++;
    }
    *out = '\0';
}

/* A repository route: repositories/NAME/tags or repositories/NAME/manifests/REF. */
static enum MHD_Result repo_route(berth__req *r, const who *w, char *rest)
{
    size_t len = strlen(rest);
    char *ref = NULL, *mark;
    bool tags = false;
    int error;

    if (len > 5 && strcmp(rest + len - 5, "/tags") == 0) {
        rest[len - 5] = '\0';
        tags = true;
    } else if ((mark = strstr(rest, "/manifests/")) != NULL) {
        char *next;
        while ((next = strstr(mark + 1, "/manifests/")) != NULL) {
            mark = next; /* the last one: a name may hold "manifests" as a component */
        }
        *mark = '\0';
        ref = mark + strlen("/manifests/");
    } else {
        berth_error_set(BERTH_ENOTFOUND, "no such endpoint");
        return berth__ui_error(r, BERTH_OP_ROUTE, BERTH_ENOTFOUND, NULL);
    }
    if ((error = berth_name_validate(rest)) < 0) {
        return berth__ui_error(r, BERTH_OP_NAME, error, NULL);
    }
    snprintf(r->name, sizeof(r->name), "%s", rest);
    if (!may(r, w, rest, BERTH_ACTION_PULL)) {
        return refuse_repo(r);
    }
    if (!berth_store_repo_exists(r->srv->store, rest)) {
        berth_error_set(BERTH_ENOTFOUND, "repository %s not known", rest);
        return berth__ui_error(r, BERTH_OP_REPO, BERTH_ENOTFOUND, NULL);
    }
    return tags ? api_tags(r, w, rest) : api_manifest(r, w, rest, ref);
}

enum MHD_Result berth__ui_api(berth__req *r, const char *path)
{
    char buf[2 * BERTH_NAME_MAX + 128];
    enum MHD_Result ret;
    who w;
    int error;

    snprintf(buf, sizeof(buf), "%s", path);
    unescape_safe(buf);
    if (strcmp(buf, "session") == 0) {
        return api_session(r);
    }
    if (strcmp(buf, "repositories") != 0 && strncmp(buf, "repositories/", 13) != 0 &&
        strcmp(buf, "storage") != 0) {
        berth_error_set(BERTH_ENOTFOUND, "no such endpoint");
        return berth__ui_error(r, BERTH_OP_ROUTE, BERTH_ENOTFOUND, NULL);
    }
    if ((error = identify(r, &w)) < 0) {
        return berth__ui_error(r, BERTH_OP_ANY, error, NULL);
    }
    if (r->srv->auth && !r->authenticated && !may_pull_some(r, &w)) {
        berth_error_set(BERTH_EUNAUTHORIZED, "authentication required");
        ret = berth__ui_error(r, BERTH_OP_ANY, BERTH_EUNAUTHORIZED, NULL);
    } else if (strcmp(buf, "repositories") == 0) {
        ret = api_repositories(r, &w);
    } else if (strcmp(buf, "storage") == 0) {
        ret = api_storage(r, &w);
    } else {
        ret = repo_route(r, &w, buf + 13);
    }
    who_dispose(&w);
    return ret;
}
