/* SPDX-License-Identifier: Apache-2.0 */
/*
 * htpasswd.c: Basic authentication. Users and hashes live in a hash table rebuilt whenever the
 * file changes (mtime or size; checked at most once a second) and logged; lines that cannot be
 * used are skipped with a warning naming the line, and a reload that leaves no usable user (or
 * cannot read the file) keeps the last good table, with a warning. crypt_r runs
 * outside the lock on a heap crypt_data (about 32 KiB, too big for a thread stack frame).
 * The credential cache maps "user\n" + hex(SHA-256(salt || password)) to an expiry time; it is
 * emptied when the file changes, so a changed password takes effect at the next reload.
 */
#include "htpasswd.h"

#include "base/base64.h"
#include "base/htab.h"
#include "base/log.h"

#include <berth/buf.h>
#include <berth/errors.h>

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

/* A bcrypt hash of a random password, verified against when the user is unknown and the file
 * has no user whose hash could serve instead (see `decoy`). */
static const char dummy_hash[] = "$2y$05$fUH8HiCUc/j/F3ZQD3JsRuhzriGz22OVL13QBRik2cASz5pbnMdyC";

typedef struct user_entry {
    char *user;
    char *hash;
} user_entry;

typedef struct cache_entry {
    char *key;
    uint64_t expires;
} cache_entry;

struct berth_htpasswd {
    pthread_mutex_t lock;
    char *path;
    berth__htab users;
    char *decoy; /* a copy of the first user's hash: an unknown user costs what a known one does */
    size_t nusers;
    berth__htab cache;
    size_t cache_max;
    uint64_t ttl;
    unsigned char salt[32];
    struct timespec mtime;
    off_t size;
    uint64_t checked_at; /* seconds (monotonic) of the last stat */
    /* failed verifications per second: per client address, per user and in all. Past the
       limits an uncached attempt is refused without running bcrypt (see refused_unverified) */
    berth__htab by_address; /* address key -> fail_entry */
    berth__htab by_user;    /* user -> fail_entry */
    uint64_t fail_second;
    unsigned fail_count;
    unsigned fail_per_address, fail_per_user, fail_global;
    uint64_t throttled;
};

typedef struct fail_entry {
    char *key;
    uint64_t second; /* the second `count` is for */
    unsigned count;
} fail_entry;

/* Bound on each failure table (entries of past seconds are dropped first). */
#define FAIL_TABLE_MAX 65536

static uint64_t now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec;
}

static void free_user(void *value, void *payload)
{
    user_entry *e = value;
    (void)payload;
    if (e) {
        free(e->user);
        free(e->hash);
        free(e);
    }
}

static void free_cache_entry(void *value, void *payload)
{
    cache_entry *e = value;
    (void)payload;
    if (e) {
        free(e->key);
        free(e);
    }
}

static void free_fail_entry(void *value, void *payload)
{
    fail_entry *f = value;
    (void)payload;
    if (f) {
        free(f->key);
        free(f);
    }
}

static void clear_table(berth__htab *t, void (*fn)(void *, void *))
{
    berth__htab_foreach(t, fn, NULL);
    berth__htab_dispose(t);
}

/* Can crypt_r(3) verify against this hash? Apache's $apr1$ MD5 and {SHA} it cannot; a value
 * that is no crypt hash at all (a plain password, a truncated line) neither. */
static const char *unusable_hash(const char *hash)
{
    if (strncmp(hash, "$apr1$", 6) == 0 || strncmp(hash, "{SHA}", 5) == 0) {
        return "unsupported hash (Apache MD5 or SHA-1): use htpasswd -B";
    }
    if (hash[0] != '$' && strlen(hash) != 13) {
        return "not a crypt hash: use htpasswd -B";
    }
    return NULL;
}

/*
 * Parse the file into `users`. A line that cannot be used (no `user:hash`, a hash crypt_r
 * cannot verify) is skipped with a warning naming its line, never its content (it may be a
 * password): the other users still work, at start as at every reload.
 */
static int load(berth__htab *users, char **decoy, size_t *count, size_t *skipped, const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n = 0;
    int error = 0;

    *count = *skipped = 0;
    if (!f) {
        return berth_error_set(BERTH_EIO, "%s: %s", path, strerror(errno));
    }
    while (error == 0 && (n = getline(&line, &cap, f)) >= 0) {
        char *colon = NULL;
        const char *why = NULL;
        user_entry *e = NULL, *old = NULL;
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
            line[--n] = '\0';
        }
        if (n == 0 || line[0] == '#') {
            continue;
        }
        colon = strchr(line, ':');
        if (!colon || colon == line || colon[1] == '\0') {
            berth__log(BERTH_LOG_WARN, "htpasswd %s:%zu: line skipped: expected user:hash", path,
                       lineno);
            (*skipped)++;
            continue;
        }
        *colon = '\0';
        if ((why = unusable_hash(colon + 1)) != NULL) {
            berth__log(BERTH_LOG_WARN, "htpasswd %s:%zu: user '%s' skipped: %s", path, lineno, line,
                       why);
            (*skipped)++;
            continue;
        }
        if (isspace((unsigned char)line[0]) || isspace((unsigned char)colon[-1]) ||
            isspace((unsigned char)colon[1]) || isspace((unsigned char)line[n - 1])) {
            /* kept as written (htpasswd's own reading), but nobody types them: say so */
            berth__log(BERTH_LOG_WARN,
                       "htpasswd %s:%zu: user '%s': spaces around the name or the hash are part "
                       "of it (a login as typed will fail)",
                       path, lineno, line);
        }
        e = calloc(1, sizeof(*e));
        if (!e || !(e->user = strdup(line)) || !(e->hash = strdup(colon + 1))) {
            free_user(e, NULL);
            error = berth_error_set(BERTH_ENOMEM, "out of memory");
            break;
        }
        if (!*decoy && !(*decoy = strdup(e->hash))) {
            free_user(e, NULL);
            error = berth_error_set(BERTH_ENOMEM, "out of memory");
            break;
        }
        if ((old = berth__htab_get(users, e->user)) != NULL) {
            berth__log(BERTH_LOG_WARN,
                       "htpasswd %s:%zu: user '%s' again: this line replaces the "
                       "earlier one",
                       path, lineno, e->user);
            berth__htab_remove(users, e->user);
            free_user(old, NULL);
            (*count)--;
        }
        if (berth__htab_put(users, e->user, e) < 0) {
            free_user(e, NULL);
            error = berth_error_set(BERTH_ENOMEM, "out of memory");
            break;
        }
        (*count)++;
    }
    free(line);
    if (error == 0 && ferror(f)) {
        error = berth_error_set(BERTH_EIO, "%s: read error", path);
    }
    fclose(f);
    return error;
}

void berth_htpasswd_free(berth_htpasswd *h)
{
    if (!h) {
        return;
    }
    clear_table(&h->users, free_user);
    clear_table(&h->cache, free_cache_entry);
    clear_table(&h->by_address, free_fail_entry);
    clear_table(&h->by_user, free_fail_entry);
    pthread_mutex_destroy(&h->lock);
    free(h->path);
    free(h->decoy);
    free(h);
}

int berth_htpasswd_open(berth_htpasswd **out, const char *path, size_t cache_size,
                        uint64_t ttl_seconds)
{
    berth_htpasswd *h = NULL;
    struct stat st;
    size_t count = 0, skipped = 0;
    int error = 0;

    if (!out || !path) {
        return berth_error_set(BERTH_EINVALID, "berth_htpasswd_open: missing argument");
    }
    *out = NULL;
    berth_error_clear();
    h = calloc(1, sizeof(*h));
    if (!h || !(h->path = strdup(path))) {
        free(h);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&h->lock, NULL);
    h->cache_max = cache_size ? cache_size : 1024;
    h->ttl = ttl_seconds ? ttl_seconds : 300;
    h->fail_per_address = 5;
    h->fail_per_user = 5;
    h->fail_global = 50;
    if (RAND_bytes(h->salt, sizeof(h->salt)) != 1) {
        error = berth_error_set(BERTH_ERROR, "no random bytes for the credential cache salt");
        goto out;
    }
    if (stat(path, &st) != 0) {
        error = berth_error_set(BERTH_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    h->mtime = st.st_mtim;
    h->size = st.st_size;
    h->checked_at = now_seconds();
    if ((error = load(&h->users, &h->decoy, &count, &skipped, path)) < 0) {
        goto out;
    }
    h->nusers = count;
    if (count == 0) {
        berth__log(BERTH_LOG_WARN, "htpasswd %s: no usable user: every login will fail", path);
    }
    *out = h;
    h = NULL;
out:
    berth_htpasswd_free(h);
    return error;
}

/* Under the lock: reload when the file changed, and say so in the log. A file that cannot be
 * read, or whose lines are all unusable (a file being rewritten, a mistake), keeps the old
 * users. */
static void maybe_reload(berth_htpasswd *h)
{
    struct stat st;
    berth__htab fresh = BERTH__HTAB_INIT;
    char *decoy = NULL;
    uint64_t now = now_seconds();
    size_t count = 0, skipped = 0;

    if (now == h->checked_at) {
        return;
    }
    h->checked_at = now;
    if (stat(h->path, &st) != 0 ||
        (st.st_mtim.tv_sec == h->mtime.tv_sec && st.st_mtim.tv_nsec == h->mtime.tv_nsec &&
         st.st_size == h->size)) {
        return;
    }
    if (load(&fresh, &decoy, &count, &skipped, h->path) < 0 || (count == 0 && skipped > 0)) {
        berth__log(BERTH_LOG_WARN,
                   "htpasswd %s changed but %s: keeping the %zu users loaded before", h->path,
                   count == 0 && skipped > 0 ? "no line is usable" : berth_error_last(), h->nusers);
        clear_table(&fresh, free_user);
        free(decoy);
        berth_error_clear();
        /* not again until the file changes again */
        h->mtime = st.st_mtim;
        h->size = st.st_size;
        return;
    }
    clear_table(&h->users, free_user);
    h->users = fresh;
    h->nusers = count;
    free(h->decoy);
    h->decoy = decoy;
    clear_table(&h->cache, free_cache_entry);
    h->mtime = st.st_mtim;
    h->size = st.st_size;
    berth__log(BERTH_LOG_NOTICE, "htpasswd %s reloaded: %zu users%s", h->path, count,
               skipped ? " (unusable lines skipped: see above)" : "");
}

static int cache_key(berth_buf *key, const berth_htpasswd *h, const char *user,
                     const char *password)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int error = 0;

    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, h->salt, sizeof(h->salt)) != 1 ||
        EVP_DigestUpdate(ctx, password, strlen(password)) != 1 ||
        EVP_DigestFinal_ex(ctx, md, &mdlen) != 1) {
        error = berth_error_set(BERTH_ENOMEM, "sha256 failed");
        goto out;
    }
    error = berth_buf_printf(key, "%s\n", user);
    for (unsigned i = 0; error == 0 && i < mdlen; i++) {
        error = berth_buf_printf(key, "%02x", md[i]);
    }
out:
    EVP_MD_CTX_free(ctx);
    OPENSSL_cleanse(md, sizeof(md));
    return error;
}

typedef struct expiry_scan {
    uint64_t now;
    cache_entry **dead;
    size_t count;
} expiry_scan;

static void collect_expired(void *value, void *payload)
{
    cache_entry *e = value;
    expiry_scan *s = payload;
    if (e->expires <= s->now) {
        s->dead[s->count++] = e;
    }
}

/* Under the lock: make room for one entry. Expired entries go first; if none, everything. */
static void cache_make_room(berth_htpasswd *h, uint64_t now)
{
    expiry_scan s = {now, NULL, 0};

    if (h->cache.count < h->cache_max) {
        return;
    }
    s.dead = calloc(h->cache.count, sizeof(*s.dead));
    if (s.dead) {
        berth__htab_foreach(&h->cache, collect_expired, &s);
        for (size_t i = 0; i < s.count; i++) {
            berth__htab_remove(&h->cache, s.dead[i]->key);
            free_cache_entry(s.dead[i], NULL);
        }
        free(s.dead);
    }
    if (h->cache.count >= h->cache_max) {
        clear_table(&h->cache, free_cache_entry);
    }
}

/* The failures of `key` in second `now` (0 when none are recorded). */
static unsigned failures_now(const berth__htab *t, const char *key, uint64_t now)
{
    const fail_entry *f = berth__htab_get(t, key);
    return f && f->second == now ? f->count : 0;
}

/*
 * Refuse this uncached attempt without running bcrypt? (h->lock held) An address that has not
 * failed in this second is always verified, so a correct password is never refused to anyone
 * but a client that is failing itself. An address that has failed is refused once it reaches
 * the per-address limit, and also, before that, while the user it names or the server as a
 * whole is past its limit: many addresses guessing one user (or random names) then get one
 * bcrypt each per second. Every count is for the current second only.
 */
static bool refused_unverified(berth_htpasswd *h, const char *address, const char *user,
                               uint64_t now)
{
    unsigned by_address = failures_now(&h->by_address, address, now);

    if (by_address == 0) {
        return false;
    }
    if (by_address >= h->fail_per_address ||
        failures_now(&h->by_user, user, now) >= h->fail_per_user ||
        (h->fail_second == now && h->fail_count >= h->fail_global)) {
        h->throttled++;
        return true;
    }
    return false;
}

typedef struct stale_scan {
    uint64_t now;
    fail_entry **stale;
    size_t count;
} stale_scan;

static void collect_stale(void *value, void *payload)
{
    fail_entry *f = value;
    stale_scan *s = payload;
    if (f->second != s->now) {
        s->stale[s->count++] = f;
    }
}

/* Add one failure of `key` in second `now` to `t` (h->lock held). A full table first drops the
 * entries of past seconds, which count for nothing; if it is still full the failure is not
 * recorded for this key (the global count still has it). That needs FAIL_TABLE_MAX failed
 * bcrypt runs within one second, far beyond what a server computes (a few hundred a second per
 * core). Out of memory only loses the count. */
static void count_failure(berth__htab *t, const char *key, uint64_t now)
{
    fail_entry *f = berth__htab_get(t, key);

    if (!f && t->count >= FAIL_TABLE_MAX) {
        stale_scan s = {now, calloc(t->count, sizeof(fail_entry *)), 0};
        if (s.stale) {
            berth__htab_foreach(t, collect_stale, &s);
            for (size_t i = 0; i < s.count; i++) {
                berth__htab_remove(t, s.stale[i]->key);
                free_fail_entry(s.stale[i], NULL);
            }
            free(s.stale);
        }
        if (t->count >= FAIL_TABLE_MAX) {
            return;
        }
    }
    if (!f) {
        f = calloc(1, sizeof(*f));
        if (!f || !(f->key = strdup(key)) || berth__htab_put(t, f->key, f) < 0) {
            free_fail_entry(f, NULL);
            return;
        }
    }
    if (f->second != now) {
        f->second = now;
        f->count = 0;
    }
    f->count++;
}

/* Count a failed verification (h->lock held). */
static void note_failure(berth_htpasswd *h, const char *address, const char *user, uint64_t now)
{
    if (h->fail_second != now) {
        h->fail_second = now;
        h->fail_count = 0;
    }
    h->fail_count++;
    count_failure(&h->by_address, address, now);
    count_failure(&h->by_user, user, now);
}

void berth_htpasswd_set_fail_limits(berth_htpasswd *h, unsigned per_address, unsigned per_user,
                                    unsigned global)
{
    pthread_mutex_lock(&h->lock);
    h->fail_per_address = per_address;
    h->fail_per_user = per_user;
    h->fail_global = global;
    pthread_mutex_unlock(&h->lock);
}

uint64_t berth_htpasswd_throttled_count(berth_htpasswd *h)
{
    uint64_t n;
    pthread_mutex_lock(&h->lock);
    n = h->throttled;
    pthread_mutex_unlock(&h->lock);
    return n;
}

int berth_htpasswd_check(berth_htpasswd *h, const char *address, const char *user,
                         const char *password)
{
    berth_buf key = BERTH_BUF_INIT;
    char *hash = NULL;
    struct crypt_data *cd = NULL;
    const char *computed = NULL;
    cache_entry *hit = NULL;
    uint64_t now = now_seconds();
    bool known = false, match = false;
    int error = 0;

    if (!h || !user || !password) {
        return berth_error_set(BERTH_EINVALID, "berth_htpasswd_check: missing argument");
    }
    berth_error_clear();
    if (!address) {
        address = "unknown";
    }
    if ((error = cache_key(&key, h, user, password)) < 0) {
        goto out;
    }
    pthread_mutex_lock(&h->lock);
    maybe_reload(h);
    hit = berth__htab_get(&h->cache, key.ptr);
    if (hit && hit->expires > now) {
        match = true;
    } else if (refused_unverified(h, address, user, now)) {
        pthread_mutex_unlock(&h->lock);
        error = berth_error_set(BERTH_EBUSY, "too many failed logins from this address; retry "
                                             "in a second");
        goto out; /* refused without bcrypt */
    } else {
        user_entry *u = berth__htab_get(&h->users, user);
        known = u != NULL;
        hash = strdup(u ? u->hash : h->decoy ? h->decoy : dummy_hash);
    }
    pthread_mutex_unlock(&h->lock);
    if (match) {
        goto out;
    }
    if (!hash || !(cd = calloc(1, sizeof(*cd)))) {
        error = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    computed = crypt_r(password, hash, cd);
    match = known && computed && computed[0] != '*' && strlen(computed) == strlen(hash) &&
            CRYPTO_memcmp(computed, hash, strlen(hash)) == 0;
    if (match) {
        cache_entry *e = calloc(1, sizeof(*e));
        if (e && (e->key = strdup(key.ptr)) != NULL) {
            e->expires = now + h->ttl;
            pthread_mutex_lock(&h->lock);
            cache_make_room(h, now);
            free_cache_entry(berth__htab_remove(&h->cache, e->key), NULL);
            if (berth__htab_put(&h->cache, e->key, e) < 0) {
                free_cache_entry(e, NULL);
            }
            pthread_mutex_unlock(&h->lock);
        } else {
            free_cache_entry(e, NULL); /* not caching is fine */
        }
    } else {
        pthread_mutex_lock(&h->lock);
        note_failure(h, address, user, now);
        pthread_mutex_unlock(&h->lock);
    }
out:
    if (error == 0 && !match) {
        error = berth_error_set(BERTH_EUNAUTHORIZED, "invalid user name or password");
    }
    if (cd) {
        OPENSSL_cleanse(cd, sizeof(*cd));
        free(cd);
    }
    free(hash);
    berth_buf_dispose(&key);
    return error;
}

int berth_basic_parse(char **user_out, char **password_out, const char *authorization)
{
    berth_buf raw = BERTH_BUF_INIT_MAX(4096);
    const char *p = authorization;
    const char *colon = NULL;
    size_t len = 0;
    int error = 0;

    if (!user_out || !password_out || !authorization) {
        return berth_error_set(BERTH_EINVALID, "berth_basic_parse: missing argument");
    }
    *user_out = NULL;
    *password_out = NULL;
    if (strncasecmp(p, "Basic", 5) != 0 || (p[5] != ' ' && p[5] != '\t')) {
        return berth_error_set(BERTH_EINVALID, "authorization: not Basic");
    }
    p += 5;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    len = strlen(p);
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
        len--;
    }
    if ((error = berth__base64_decode(&raw, p, len, BERTH__BASE64_STD)) < 0) {
        berth_error_prefix("authorization: ");
        goto out;
    }
    colon = raw.ptr ? memchr(raw.ptr, ':', raw.len) : NULL;
    if (!colon || memchr(raw.ptr, '\0', raw.len)) {
        error = berth_error_set(BERTH_EINVALID, "authorization: expected user:password");
        goto out;
    }
    *user_out = strndup(raw.ptr, (size_t)(colon - raw.ptr));
    *password_out = strdup(colon + 1);
    if (!*user_out || !*password_out) {
        free(*user_out);
        free(*password_out);
        *user_out = *password_out = NULL;
        error = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
out:
    if (raw.ptr) {
        OPENSSL_cleanse(raw.ptr, raw.len);
    }
    berth_buf_dispose(&raw);
    return error;
}

int berth_htpasswd_check_header(berth_htpasswd *h, const char *address, const char *authorization,
                                char *user_out, size_t user_out_size)
{
    char *user = NULL, *password = NULL;
    int error = 0;

    if (!h || !user_out || user_out_size == 0) {
        return berth_error_set(BERTH_EINVALID, "berth_htpasswd_check_header: missing argument");
    }
    user_out[0] = '\0';
    if (!authorization) {
        return berth_error_set(BERTH_EUNAUTHORIZED, "no credentials");
    }
    error = berth_basic_parse(&user, &password, authorization);
    if (error == BERTH_EINVALID) {
        error = BERTH_EUNAUTHORIZED;
    }
    if (error < 0) {
        goto out;
    }
    if (strlen(user) >= user_out_size) {
        error = berth_error_set(BERTH_EUNAUTHORIZED, "user name too long");
        goto out;
    }
    if ((error = berth_htpasswd_check(h, address, user, password)) == 0) {
        memcpy(user_out, user, strlen(user) + 1);
    }
out:
    if (password) {
        OPENSSL_cleanse(password, strlen(password));
    }
    free(password);
    free(user);
    return error;
}

bool berth_basic_is_anonymous(const char *authorization)
{
    char *user = NULL, *password = NULL;
    bool empty = false;

    if (authorization && berth_basic_parse(&user, &password, authorization) == 0) {
        empty = user[0] == '\0' && password[0] == '\0';
    }
    berth_error_clear();
    if (password) {
        OPENSSL_cleanse(password, strlen(password));
    }
    free(password);
    free(user);
    return empty;
}

size_t berth_htpasswd_cache_count(berth_htpasswd *h)
{
    size_t n = 0;
    if (h) {
        pthread_mutex_lock(&h->lock);
        n = h->cache.count;
        pthread_mutex_unlock(&h->lock);
    }
    return n;
}
