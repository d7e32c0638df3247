/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Upload session records of the fs metadata backend (uploads.h): ROOT/_berth/uploads/<id>.json
 * beside the session's bytes ROOT/_berth/uploads/<id> (the blob backend's), and a table in
 * memory. Limits are counted in memory under the table's mutex, atomically with the creation.
 *
 * A record is updated at every acknowledged chunk, so its update costs one fdatasync, not the
 * three of a replacement (file, rename, directory): the file holds two slots of SLOT bytes,
 * each "<sha256 of the text in hex>\n<JSON text with a sequence number>" padded with NULs. An
 * update writes the slot the previous one did not, in place, and syncs it; a torn write spoils
 * only that slot (its checksum fails) and the other one still holds the previous record. The
 * file is made whole by an atomic replacement at create. A record too big for a slot is
 * written as one plain JSON document by replacement instead; both forms are read.
 *
 * The file of a deleted record is kept (renamed into ROOT/_berth/tmp, at most
 * BERTH__FSB_SPARES of them) and the next creation writes its record into it, syncs it and
 * renames it into place, as the replacement does with a new file: a small layer's session
 * then makes one inode instead of two. On ext4 without a journal, making an inode scans past
 * every inode freed in the last minutes of its group (recently_deleted()): half the server's
 * CPU in a push of many small layers (issue 14). A record is self-identifying (its id is in
 * its text), so a crash that leaves an old name on a reused file leaves a record that is not
 * valid for that name, and it is skipped.
 *
 * Sessions of earlier versions of berth (one file <id>.<repo key>.<owner key>, the keys being
 * 16 hex digits of the SHA-256 of the repository and of the owner) are adopted at open by the
 * lock holder when their repository is known: the file becomes <id> and gets a record with an
 * empty hash state (the store hashes the stored bytes again).
 */
#include "backend/fs/uploads.h"

#include "base/log.h"

#include <berth/errors.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECORD_MAX (256u * 1024)
#define OLD_ID     32
#define OLD_KEY    16

typedef struct record {
    berth_meta_upload u;
    bool held;
    uint64_t seq; /* of the last write */
    bool slotted; /* the file has two slots (else it is plain JSON) */
} record;

static void record_free(record *r)
{
    if (r) {
        berth_meta_upload_dispose(&r->u);
        free(r);
    }
}

static bool valid_id(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++) {
        char c = id[n];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-')) {
            return false;
        }
    }
    return n >= 1 && n <= 64;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

/* Copy a record's fields into a caller's struct. */
static int copy_out(berth_meta_upload *out, const berth_meta_upload *u)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->id, u->id, sizeof(out->id));
    out->size = u->size;
    out->created = u->created;
    out->updated = u->updated;
    out->repo = dup_or_empty(u->repo);
    out->owner = dup_or_empty(u->owner);
    out->hash_state = dup_or_empty(u->hash_state);
    out->backend_state = u->backend_state ? strdup(u->backend_state) : NULL;
    if (!out->repo || !out->owner || !out->hash_state ||
        (u->backend_state && !out->backend_state)) {
        berth_meta_upload_dispose(out);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    return 0;
}

static char *record_json(const berth_meta_upload *u, uint64_t seq)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:I}", "id", u->id, "repo",
                          u->repo ? u->repo : "", "owner", u->owner ? u->owner : "", "size",
                          (json_int_t)u->size, "hash_state", u->hash_state ? u->hash_state : "",
                          "created", (json_int_t)u->created, "updated", (json_int_t)u->updated,
                          "seq", (json_int_t)seq);
    char *text;
    if (o && u->backend_state) {
        json_object_set_new(o, "backend_state", json_string(u->backend_state));
    }
    text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

static int record_path(berth_buf *out, const berth__fsb_root *root, const char *id)
{
    return berth_buf_printf(out, "%s/%s.json", root->uploads, id);
}

#define SLOT 4096

/* One slot: checksum line, JSON text, NUL padding. @return false when the text does not fit */
static bool fill_slot(char slot[SLOT], const char *text)
{
    size_t len = strlen(text);
    berth_digest d;

    if (64 + 1 + len + 1 > SLOT || berth_digest_buffer(&d, BERTH_DIGEST_SHA256, text, len) < 0) {
        berth_error_clear();
        return false;
    }
    memset(slot, 0, SLOT);
    memcpy(slot, berth_digest_hex(&d), 64);
    slot[64] = '\n';
    memcpy(slot + 65, text, len);
    return true;
}

/* Replace the whole record file: two slots (the record in the one its sequence number picks),
   or plain JSON when it does not fit. */
static int write_record(berth__fsb_root *root, const berth_meta_upload *u, uint64_t seq,
                        bool *slotted)
{
    berth_buf path = BERTH_BUF_INIT;
    char *text = record_json(u, seq), *file = calloc(2, SLOT);
    int rc = text && file ? record_path(&path, root, u->id)
                          : berth_error_set(BERTH_ENOMEM, "out of memory");
    if (rc == 0) {
        /* the replacement fsyncs ROOT/_berth/uploads after this generation */
        uint64_t gen = berth__fsb_uploads_sync_begin(root);
        *slotted = fill_slot(file + (seq % 2) * SLOT, text);
        rc = berth__fs_write_atomic(root->tmp, path.ptr, *slotted ? file : text,
                                    *slotted ? 2 * SLOT : strlen(text), root->opts.fsync);
        if (rc == 0 && root->opts.fsync) {
            berth__fsb_uploads_synced(root, gen);
        }
    }
    free(text);
    free(file);
    berth_buf_dispose(&path);
    return rc;
}

/* A kept file for a new record (its path, the caller frees it), or NULL. */
static char *take_spare(berth__fsb_uploads *t)
{
    char *spare = NULL;

    pthread_mutex_lock(&t->lock);
    if (t->nspares > 0) {
        spare = t->spares[--t->nspares];
    }
    pthread_mutex_unlock(&t->lock);
    return spare;
}

/* Keep the file of a deleted slotted record at `path` for a later creation (only the lock
   holder: it alone empties ROOT/_berth/tmp at open). @return whether it was kept */
static bool keep_spare(berth__fsb_uploads *t, const char *path)
{
    berth_buf spare = BERTH_BUF_INIT;
    unsigned long seq;
    bool room;

    if (!t->root->opts.lock) {
        return false;
    }
    pthread_mutex_lock(&t->lock);
    room = t->nspares < BERTH__FSB_SPARES;
    seq = t->spare_seq++;
    pthread_mutex_unlock(&t->lock);
    if (!room || berth_buf_printf(&spare, "%s/record.%lu", t->root->tmp, seq) < 0 ||
        rename(path, spare.ptr) != 0) {
        berth_buf_dispose(&spare);
        berth_error_clear();
        return false;
    }
    pthread_mutex_lock(&t->lock);
    if (t->nspares < BERTH__FSB_SPARES) {
        t->spares[t->nspares++] = berth_buf_detach(&spare);
    }
    pthread_mutex_unlock(&t->lock);
    if (spare.ptr) {
        unlink(spare.ptr); /* filled meanwhile */
        berth_buf_dispose(&spare);
    }
    return true;
}

/* Write a new record durably: into a kept file when there is one (no new inode), synced and
   renamed into place, its directory synced; else as write_record() does. */
static int create_record(berth__fsb_uploads *t, const berth_meta_upload *u, uint64_t seq,
                         bool *slotted)
{
    berth__fsb_root *root = t->root;
    berth_buf path = BERTH_BUF_INIT;
    char *spare = take_spare(t), *text = NULL, *file = NULL;
    bool placed = false;
    int fd = -1, rc = 0;

    if (!spare) {
        return write_record(root, u, seq, slotted);
    }
    text = record_json(u, seq);
    file = calloc(2, SLOT);
    if (text && file && fill_slot(file + (seq % 2) * SLOT, text) &&
        record_path(&path, root, u->id) == 0 && (fd = open(spare, O_WRONLY | O_CLOEXEC)) >= 0 &&
        pwrite(fd, file, 2 * SLOT, 0) == 2 * SLOT && (!root->opts.fsync || fdatasync(fd) == 0) &&
        close(fd) == 0 && (fd = -1, rename(spare, path.ptr) == 0)) {
        placed = true;
        *slotted = true;
        rc = root->opts.fsync ? berth__fsb_uploads_fsync(root) : 0;
    }
    if (fd >= 0) {
        close(fd);
    }
    if (!placed) {
        /* not kept after all (it does not fit a slot, or the file failed): a new one */
        unlink(spare);
        berth_error_clear();
        rc = write_record(root, u, seq, slotted);
    }
    free(spare);
    free(text);
    free(file);
    berth_buf_dispose(&path);
    return rc;
}

/* Write an update into its slot in place (the file has slots), else replace the file. */
static int update_record(berth__fsb_root *root, const berth_meta_upload *u, uint64_t seq,
                         bool *slotted)
{
    berth_buf path = BERTH_BUF_INIT;
    char *text = record_json(u, seq), slot[SLOT];
    int fd = -1, rc = 0;

    if (!text) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if (!*slotted || !fill_slot(slot, text)) {
        free(text);
        return write_record(root, u, seq, slotted);
    }
    free(text);
    rc = record_path(&path, root, u->id);
    if (rc == 0) {
        fd = open(path.ptr, O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
            rc = berth__fsb_io_error("open", path.ptr);
            if (rc == BERTH_ENOTFOUND) {
                rc = berth_error_set(BERTH_EIO, "the record of upload %s vanished", u->id);
            }
        }
    }
    if (rc == 0 && (pwrite(fd, slot, SLOT, (off_t)((seq % 2) * SLOT)) != SLOT ||
                    (root->opts.fsync && fdatasync(fd) != 0))) {
        rc = berth__fsb_io_error("write", path.ptr);
        if (rc == BERTH_ENOTFOUND) {
            rc = BERTH_EIO;
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    berth_buf_dispose(&path);
    return rc;
}

static int64_t int_of(json_t *o, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(o, key));
}

/* Parse a record's JSON text. @return 0, or an error (the text is not a record of `id`) */
static int parse_json(record **out, const char *text, size_t len, const char *id)
{
    json_t *o = json_loadb(text, len, 0, NULL);
    const char *fid = json_string_value(json_object_get(o, "id"));
    const char *repo = json_string_value(json_object_get(o, "repo"));
    const char *state = json_string_value(json_object_get(o, "backend_state"));
    record *r = NULL;
    int rc = 0;

    if (!fid || strcmp(fid, id) != 0 || !repo || int_of(o, "size") < 0) {
        rc = berth_error_set(BERTH_EIO, "upload record %s is not valid", id);
        goto out;
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(r->u.id, sizeof(r->u.id), "%s", id);
    r->u.repo = strdup(repo);
    r->u.owner = dup_or_empty(json_string_value(json_object_get(o, "owner")));
    r->u.hash_state = dup_or_empty(json_string_value(json_object_get(o, "hash_state")));
    r->u.backend_state = state ? strdup(state) : NULL;
    r->u.size = (uint64_t)int_of(o, "size");
    r->u.created = int_of(o, "created");
    r->u.updated = int_of(o, "updated");
    r->seq = (uint64_t)int_of(o, "seq");
    if (!r->u.repo || !r->u.owner || !r->u.hash_state || (state && !r->u.backend_state)) {
        record_free(r);
        r = NULL;
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
out:
    json_decref(o);
    *out = r;
    return rc;
}

/* Parse a record file: plain JSON, or the newest valid one of its two slots. */
static int parse_record(record **out, const char *text, size_t len, const char *id)
{
    record *best = NULL;

    if (len > 0 && text[0] == '{') {
        return parse_json(out, text, len, id);
    }
    for (size_t i = 0; i < 2 && (i + 1) * SLOT <= len; i++) {
        const char *slot = text + i * SLOT;
        size_t n = strnlen(slot + 65, SLOT - 65);
        berth_digest d;
        record *r = NULL;

        if (slot[64] != '\n' || n == 0 ||
            berth_digest_buffer(&d, BERTH_DIGEST_SHA256, slot + 65, n) < 0 ||
            memcmp(berth_digest_hex(&d), slot, 64) != 0 || parse_json(&r, slot + 65, n, id) < 0) {
            berth_error_clear();
            continue; /* torn, or never written */
        }
        if (!best || r->seq > best->seq) {
            record_free(best);
            best = r;
        } else {
            record_free(r);
        }
    }
    if (!best) {
        return berth_error_set(BERTH_EIO, "upload record %s is not valid", id);
    }
    best->slotted = true;
    *out = best;
    return 0;
}

/* ---- sessions of earlier versions ----------------------------------------------------------- */

static bool hex_run(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

static void key_of(char out[OLD_KEY + 1], const char *text)
{
    berth_digest d;
    if (berth_digest_buffer(&d, BERTH_DIGEST_SHA256, text, strlen(text)) == 0) {
        memcpy(out, berth_digest_hex(&d), OLD_KEY);
    } else {
        memset(out, '0', OLD_KEY);
    }
    out[OLD_KEY] = '\0';
}

static bool old_session_name(const char *name)
{
    return strlen(name) == OLD_ID + 2 + 2 * OLD_KEY && hex_run(name, OLD_ID) &&
           name[OLD_ID] == '.' && hex_run(name + OLD_ID + 1, OLD_KEY) &&
           name[OLD_ID + 1 + OLD_KEY] == '.' && hex_run(name + OLD_ID + 2 + OLD_KEY, OLD_KEY);
}

/* Repository names by their key (the first 16 hex digits of their SHA-256). */
typedef struct key_name {
    char key[OLD_KEY + 1];
    char *name;
} key_name;

static int add_key(const char *name, void *payload)
{
    berth__htab *keys = payload;
    key_name *k = calloc(1, sizeof(*k));
    if (!k || !(k->name = strdup(name))) {
        free(k);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    key_of(k->key, name);
    if (berth__htab_get(keys, k->key) || berth__htab_put(keys, k->key, k) < 0) {
        free(k->name); /* two names of one key: the first one stands */
        free(k);
    }
    return 0;
}

static void free_key(void *value, void *payload)
{
    key_name *k = value;
    (void)payload;
    free(k->name);
    free(k);
}

/* Adopt <id>.<r>.<o> as <id> with a record, when its repository is known. */
static void adopt(berth__fsb_uploads *t, const berth__htab *keys, const char *name)
{
    berth__fsb_root *root = t->root;
    berth_meta_upload u;
    const key_name *k;
    char from[4096], to[4096], rk[OLD_KEY + 1];
    struct stat st;
    bool slotted;

    memcpy(rk, name + OLD_ID + 1, OLD_KEY);
    rk[OLD_KEY] = '\0';
    k = berth__htab_get(keys, rk);
    snprintf(from, sizeof(from), "%s/%s", root->uploads, name);
    if (!k || lstat(from, &st) != 0 || !S_ISREG(st.st_mode)) {
        return; /* left for the operator: no repository of that key */
    }
    memset(&u, 0, sizeof(u));
    memcpy(u.id, name, OLD_ID);
    u.repo = k->name;
    /* the owner was kept as a hash only: the session counts against nobody in particular */
    u.owner = (char *)(uintptr_t) "";
    u.size = (uint64_t)st.st_size;
    u.hash_state = (char *)(uintptr_t) "";
    u.backend_state = (char *)(uintptr_t) "fs";
    u.created = u.updated = (int64_t)st.st_mtime;
    snprintf(to, sizeof(to), "%s/%s", root->uploads, u.id);
    if (write_record(root, &u, 1, &slotted) == 0 && rename(from, to) != 0) {
        berth__log(BERTH_LOG_WARN, "rename %s: %s", from, strerror(errno));
        snprintf(to, sizeof(to), "%s/%s.json", root->uploads, u.id);
        unlink(to);
    }
    berth_error_clear();
}

/* Adopt every session of the earlier form (the lock holder, at open). */
static int adopt_all(berth__fsb_uploads *t, DIR *d)
{
    berth__htab keys = BERTH__HTAB_INIT;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;

    /* names first: the directory changes as they are adopted */
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!old_session_name(e->d_name)) {
            continue;
        }
        if (n == cap) {
            char **more = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*names));
            if (!more) {
                rc = berth_error_set(BERTH_ENOMEM, "out of memory");
                break;
            }
            names = more;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            break;
        }
        n++;
    }
    if (rc == 0 && n > 0) {
        rc = berth__fsb_scan(t->root, add_key, &keys);
    }
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            adopt(t, &keys, names[i]);
        }
        free(names[i]);
    }
    free(names);
    berth__htab_foreach(&keys, free_key, NULL);
    berth__htab_dispose(&keys);
    rewinddir(d);
    return rc;
}

/* ---- the table ------------------------------------------------------------------------- */

int berth__fsb_uploads_open(berth__fsb_uploads *t, berth__fsb_root *root)
{
    DIR *d;
    struct dirent *e;
    int rc = 0;

    memset(t, 0, sizeof(*t));
    t->root = root;
    pthread_mutex_init(&t->lock, NULL);
    t->init = true;
    d = opendir(root->uploads);
    if (!d) {
        if (errno == ENOENT && root->opts.read_only) {
            return 0;
        }
        return berth__fsb_io_error("opendir", root->uploads);
    }
    if (root->opts.lock) {
        rc = adopt_all(t, d);
    }
    while (rc == 0 && (e = readdir(d)) != NULL) {
        berth_buf path = BERTH_BUF_INIT, text = BERTH_BUF_INIT;
        size_t len = strlen(e->d_name);
        char id[65];
        record *r = NULL;

        if (len <= 5 || len - 5 > 64 || strcmp(e->d_name + len - 5, ".json") != 0) {
            continue;
        }
        memcpy(id, e->d_name, len - 5);
        id[len - 5] = '\0';
        if (!valid_id(id)) {
            continue;
        }
        rc = record_path(&path, root, id);
        if (rc == 0 && berth__fs_read_file(&text, path.ptr, RECORD_MAX) == 0 &&
            parse_record(&r, text.ptr, text.len, id) == 0) {
            rc = berth__htab_put(&t->table, r->u.id, r);
            if (rc < 0) {
                record_free(r);
            }
        } else if (rc == 0) {
            berth__log(BERTH_LOG_WARN, "%s: skipped: %s", path.ptr, berth_error_last());
            berth_error_clear();
        }
        berth_buf_dispose(&path);
        berth_buf_dispose(&text);
    }
    closedir(d);
    return rc;
}

static void free_cb(void *value, void *payload)
{
    (void)payload;
    record_free(value);
}

void berth__fsb_uploads_dispose(berth__fsb_uploads *t)
{
    if (!t->init) {
        return;
    }
    berth__htab_foreach(&t->table, free_cb, NULL);
    berth__htab_dispose(&t->table);
    for (; t->nspares > 0; t->nspares--) {
        unlink(t->spares[t->nspares - 1]);
        free(t->spares[t->nspares - 1]);
    }
    pthread_mutex_destroy(&t->lock);
    t->init = false;
}

typedef struct count_ctx {
    const char *repo, *owner;
    size_t repo_n, owner_n;
} count_ctx;

static void count_cb(void *value, void *payload)
{
    record *r = value;
    count_ctx *ctx = payload;
    ctx->repo_n += strcmp(r->u.repo, ctx->repo) == 0;
    ctx->owner_n += strcmp(r->u.owner, ctx->owner) == 0;
}

int berth__fsb_upload_create(berth__fsb_uploads *t, const berth_meta_upload *u,
                             const berth_meta_upload_limits *limits)
{
    const char *owner = u->owner ? u->owner : "";
    count_ctx counts = {u->repo ? u->repo : "", owner, 0, 0};
    record *r = NULL;
    int rc = berth__fsb_writable(t->root);

    if (rc < 0) {
        return rc;
    }
    if (!valid_id(u->id) || !u->repo) {
        return berth_error_set(BERTH_EINVALID, "invalid upload id");
    }
    r = calloc(1, sizeof(*r));
    if (!r || copy_out(&r->u, u) < 0) {
        free(r);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    r->u.size = 0;
    if (!r->u.updated) {
        r->u.updated = r->u.created;
    }
    pthread_mutex_lock(&t->lock);
    if (berth__htab_get(&t->table, u->id)) {
        rc = berth_error_set(BERTH_EEXISTS, "upload %s exists", u->id);
    } else if (limits) {
        berth__htab_foreach(&t->table, count_cb, &counts);
        if (limits->total && t->table.count >= limits->total) {
            rc = berth_error_set(BERTH_EBUSY, "too many upload sessions are open (%zu)",
                                 limits->total);
        } else if (limits->per_repo && counts.repo_n >= limits->per_repo) {
            rc = berth_error_set(BERTH_EBUSY, "too many upload sessions are open in %s (%zu)",
                                 u->repo, limits->per_repo);
        } else if (limits->per_owner && *owner && counts.owner_n >= limits->per_owner) {
            rc = berth_error_set(BERTH_EBUSY, "too many upload sessions are open for %s (%zu)",
                                 owner, limits->per_owner);
        }
    }
    if (rc == 0) {
        /* in the table (counted, the id taken) before its file exists; taken out on failure */
        rc = berth__htab_put(&t->table, r->u.id, r);
    }
    pthread_mutex_unlock(&t->lock);
    if (rc < 0) {
        record_free(r);
        return rc;
    }
    r->seq = 1;
    rc = create_record(t, &r->u, r->seq, &r->slotted);
    if (rc < 0) {
        pthread_mutex_lock(&t->lock);
        berth__htab_remove(&t->table, r->u.id);
        pthread_mutex_unlock(&t->lock);
        record_free(r);
    }
    return rc;
}

int berth__fsb_upload_get(berth__fsb_uploads *t, const char *repo, const char *id,
                          berth_meta_upload *out, bool acquire)
{
    record *r;
    int rc = 0;

    pthread_mutex_lock(&t->lock);
    r = id ? berth__htab_get(&t->table, id) : NULL;
    if (!r || strcmp(r->u.repo, repo) != 0) {
        rc = berth_error_set(BERTH_ENOTFOUND, "upload %s not known in %s", id ? id : "", repo);
    } else if (acquire && r->held) {
        rc = berth_error_set(BERTH_EBUSY, "upload %s is in use by another request", id);
    } else {
        rc = copy_out(out, &r->u);
        if (rc == 0 && acquire) {
            r->held = true;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int berth__fsb_upload_update(berth__fsb_uploads *t, const berth_meta_upload *u)
{
    berth_meta_upload next;
    char *hash = NULL, *state = NULL;
    uint64_t seq = 0;
    bool slotted = false;
    record *r;
    int rc = berth__fsb_writable(t->root);

    if (rc < 0) {
        return rc;
    }
    hash = dup_or_empty(u->hash_state);
    state = u->backend_state ? strdup(u->backend_state) : NULL;
    if (!hash || (u->backend_state && !state)) {
        free(hash);
        free(state);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    memset(&next, 0, sizeof(next));
    pthread_mutex_lock(&t->lock);
    r = berth__htab_get(&t->table, u->id);
    if (!r) {
        rc = berth_error_set(BERTH_ENOTFOUND, "upload %s not known", u->id);
    } else {
        seq = r->seq + 1;
        slotted = r->slotted;
        rc = copy_out(&next, &r->u);
    }
    pthread_mutex_unlock(&t->lock);
    if (rc < 0) {
        free(hash);
        free(state);
        return rc;
    }
    free(next.hash_state);
    free(next.backend_state);
    next.hash_state = hash;
    next.backend_state = state;
    next.size = u->size;
    next.updated = u->updated;
    /* the holder is the only writer of its record: written outside the table's lock, and
       memory changes only once the record is durable (a failed update changes nothing) */
    rc = update_record(t->root, &next, seq, &slotted);
    pthread_mutex_lock(&t->lock);
    r = berth__htab_get(&t->table, u->id);
    if (rc == 0 && r) {
        char *old_hash = r->u.hash_state, *old_state = r->u.backend_state;
        r->u.hash_state = next.hash_state;
        r->u.backend_state = next.backend_state;
        next.hash_state = old_hash;
        next.backend_state = old_state;
        r->u.size = next.size;
        r->u.updated = next.updated;
        r->seq = seq;
        r->slotted = slotted;
    }
    pthread_mutex_unlock(&t->lock);
    berth_meta_upload_dispose(&next);
    return rc;
}

void berth__fsb_upload_release(berth__fsb_uploads *t, const char *id)
{
    record *r;
    pthread_mutex_lock(&t->lock);
    r = id ? berth__htab_get(&t->table, id) : NULL;
    if (r) {
        r->held = false;
    }
    pthread_mutex_unlock(&t->lock);
}

int berth__fsb_upload_delete(berth__fsb_uploads *t, const char *id)
{
    berth_buf path = BERTH_BUF_INIT;
    record *r;
    int rc = berth__fsb_writable(t->root);

    if (rc < 0) {
        return rc;
    }
    pthread_mutex_lock(&t->lock);
    r = id ? berth__htab_remove(&t->table, id) : NULL;
    pthread_mutex_unlock(&t->lock);
    if (!r) {
        return berth_error_set(BERTH_ENOTFOUND, "upload %s not known", id ? id : "");
    }
    rc = record_path(&path, t->root, r->u.id);
    /* not synced either way: a crash may bring the record back, as it may an unlinked one */
    if (rc == 0 && !(r->slotted && keep_spare(t, path.ptr)) && unlink(path.ptr) != 0 &&
        errno != ENOENT) {
        rc = berth__fsb_io_error("unlink", path.ptr);
    }
    record_free(r);
    berth_buf_dispose(&path);
    return rc;
}

typedef struct each_ctx {
    berth_meta_upload *list;
    size_t n;
    int rc;
} each_ctx;

static void snapshot_cb(void *value, void *payload)
{
    each_ctx *ctx = payload;
    if (ctx->rc == 0) {
        ctx->rc = copy_out(&ctx->list[ctx->n], &((record *)value)->u);
        ctx->n += ctx->rc == 0;
    }
}

int berth__fsb_uploads_each(berth__fsb_uploads *t, berth_meta_upload_cb cb, void *payload)
{
    each_ctx ctx = {NULL, 0, 0};
    int rc;

    pthread_mutex_lock(&t->lock);
    ctx.list = calloc(t->table.count ? t->table.count : 1, sizeof(*ctx.list));
    if (ctx.list) {
        berth__htab_foreach(&t->table, snapshot_cb, &ctx);
    } else {
        ctx.rc = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    pthread_mutex_unlock(&t->lock);
    rc = ctx.rc;
    for (size_t i = 0; rc == 0 && i < ctx.n; i++) {
        rc = cb(&ctx.list[i], payload);
    }
    for (size_t i = 0; i < ctx.n; i++) {
        berth_meta_upload_dispose(&ctx.list[i]);
    }
    free(ctx.list);
    return rc;
}
