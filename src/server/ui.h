/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The web UI of berth serve (docs/ui.md): its files under /ui/ (ui.c, embedded at build time)
 * and its JSON API under /ui/api/v1/ (ui_api.c), with a per-repository cache of what the
 * pages show (ui_model.c). None of it runs for a /v2/ request: berth__ops_route() calls
 * berth__ui_route() only for paths starting "/u".
 */
#ifndef BERTH_SERVER_UI_H
#define BERTH_SERVER_UI_H

#include "server/server_internal.h"

#include "base/htab.h"

#include <pthread.h>

/** Changes remembered: a model built across more of them than this is not kept. */
#define BERTH__UI_CHANGES 1024

/** The UI's state (srv->ui). */
typedef struct berth__ui {
    pthread_mutex_t lock; /* what follows */
    berth__htab models;   /* repository name -> its model (ui_api.c), each holding a reference */
    uint64_t weight;      /* entries (tags, manifests, blobs) of the models kept */
    uint64_t weight_max;  /* most entries kept (BERTH_UI_CACHE_ENTRIES, default 500,000) */
    uint64_t
        generation; /* counts changes: a model built across one of its repository's is not kept */
    struct {
        uint64_t generation;      /* the change that set this slot */
        uint64_t repo;            /* a hash of the repository's name; 0: every repository */
    } changes[BERTH__UI_CHANGES]; /* the last changes, by generation % BERTH__UI_CHANGES */
    void *du;                     /* the last storage walk (ui_api.c), NULL before the first */
    bool du_running;              /* a storage walk is under way */
    bool gc_ran;                  /* a garbage collection ran in this process */
    int64_t gc_time;              /* when it ended (Unix seconds) */
    berth_gc_stats gc;            /* what it removed */
} berth__ui;

/** Drop every model of the cache (ui_api.c); the caller holds ui->lock or is alone. */
void berth__ui_models_clear(berth__ui *ui);
/**
 * Note a change of `repo` (NULL: of every repository) in ui->changes; the caller holds ui->lock.
 * (ui_api.c)
 */
void berth__ui_note_change(berth__ui *ui, const char *repo);
/** Drop the kept storage walk (ui_api.c); the caller holds ui->lock or is alone. */
void berth__ui_du_clear(berth__ui *ui);
/**
 * Add the headers every response under /ui/ carries: `nosniff`, no framing (X-Frame-Options
 * and CSP frame-ancestors), a Content-Security-Policy allowing only this origin's files (no
 * inline script or style), `Referrer-Policy: same-origin`, `Cross-Origin-Resource-Policy` and
 * `Cross-Origin-Opener-Policy: same-origin`. No CORS header: other origins cannot read.
 */
void berth__ui_headers(struct MHD_Response *resp);

/**
 * Answer an error of the UI: the spec's JSON error document for `code` met during `op`, with
 * berth_error_last() as message unless `msg` is given; a 401 carries `X-Berth-Login` and never
 * a `WWW-Authenticate` challenge (a browser would show its own dialog). @return the MHD result
 */
enum MHD_Result berth__ui_error(berth__req *r, berth__op op, int code, const char *msg);

/** Longest cursor of a tags page, with its NUL. */
#define BERTH__UI_CURSOR_MAX 384

/** Create the UI's state of `srv` (srv->ui). @return 0, BERTH_ENOMEM */
int berth__ui_start(berth_server *srv);

/** Free the UI's state; fine when it never started. */
void berth__ui_free(berth_server *srv);

/**
 * Answer `url` when it is the UI's (/ui, /ui/...) and the UI is on.
 * @return true when handled (`*ret` holds the MHD result)
 */
bool berth__ui_route(berth__req *r, const char *url, enum MHD_Result *ret);

/** Forget what the cache knows of `repo` (NULL: of every repository): it changed. */
void berth__ui_changed(berth_server *srv, const char *repo);

/** Note a garbage collection run of this process (the storage page shows the last one). */
void berth__ui_gc_done(berth_server *srv, const berth_gc_stats *stats);

/** The JSON API: `path` is what follows /ui/api/v1/, decoded. (ui_api.c) */
enum MHD_Result berth__ui_api(berth__req *r, const char *path);

/**
 * Encode the position of a tags page (the last tag given, with its pushed time for the
 * pushed order) as an opaque cursor: base64url of "p<pushed>:<tag>" or "n:<tag>".
 * @return 0, BERTH_EINVALID (does not fit `size`)
 */
int berth__ui_cursor_encode(char *out, size_t size, bool by_pushed, int64_t pushed,
                            const char *tag);

/**
 * Decode a cursor of berth__ui_cursor_encode() made for the same order.
 * @param tag_out  receives the tag (`tag_size` bytes with its NUL)
 * @return 0, BERTH_EINVALID (not a cursor of this order, or not a valid tag)
 */
int berth__ui_cursor_decode(int64_t *pushed_out, char *tag_out, size_t tag_size, bool by_pushed,
                            const char *cursor);

#endif
