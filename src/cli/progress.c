/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The terminal progress display. Entries are kept in the order blobs started; each redraw
 * moves the cursor up over the lines drawn last time and rewrites them all, at most ten
 * times a second (and always when a blob finishes). Callbacks come from the copy engine's
 * worker threads, so one mutex guards everything.
 */
#include "cli/progress.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct entry {
    char id[20];
    uint64_t done, total;
    double start, end;
    bool finished;
} entry;

struct cli_progress {
    bool active;
    pthread_mutex_t mu;
    entry *items;
    size_t n, cap, drawn;
    double last_draw;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

cli_progress *cli_progress_new(bool enabled)
{
    cli_progress *p = calloc(1, sizeof(*p));
    if (!p) {
        return NULL;
    }
    p->active = enabled && isatty(STDOUT_FILENO);
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

static void human(char *out, size_t len, double v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(out, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void draw(cli_progress *p)
{
    double t = now();
    if (p->drawn) {
        printf("\033[%zuA", p->drawn);
    }
    for (size_t i = 0; i < p->n; i++) {
        entry *e = &p->items[i];
        double el = (e->finished ? e->end : t) - e->start;
        double rate = el > 0.01 ? (double)e->done / el : 0;
        char done[32], total[32], r[32], eta[32] = "";
        human(done, sizeof(done), (double)e->done);
        human(total, sizeof(total), (double)e->total);
        human(r, sizeof(r), rate);
        if (e->finished) {
            snprintf(eta, sizeof(eta), "done");
        } else if (rate > 0 && e->total > e->done) {
            snprintf(eta, sizeof(eta), "ETA %.0fs", (double)(e->total - e->done) / rate);
        }
        printf("\033[2K%s  %10s / %-10s  %10s/s  %s\n", e->id, done, total, r, eta);
    }
    p->drawn = p->n;
    p->last_draw = t;
    fflush(stdout);
}

void cli_progress_update(const char *digest, uint64_t done, uint64_t total, bool finished,
                         void *payload)
{
    cli_progress *p = payload;
    const char *hex = strchr(digest, ':');
    char id[20];
    entry *e = NULL;

    if (!p || !p->active) {
        return;
    }
    snprintf(id, sizeof(id), "%.12s", hex ? hex + 1 : digest);
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->items[i].id, id) == 0) {
            e = &p->items[i];
        }
    }
    if (!e) {
        if (p->n == p->cap) {
            size_t cap = p->cap ? p->cap * 2 : 16;
            entry *items = realloc(p->items, cap * sizeof(*items));
            if (!items) {
                goto out;
            }
            p->items = items;
            p->cap = cap;
        }
        e = &p->items[p->n++];
        memset(e, 0, sizeof(*e));
        memcpy(e->id, id, sizeof(id));
        e->start = now();
    }
    e->done = done;
    e->total = total;
    if (finished && !e->finished) {
        e->finished = true;
        e->end = now();
    }
    if (finished || now() - p->last_draw >= 0.1) {
        draw(p);
    }
out:
    pthread_mutex_unlock(&p->mu);
}

void cli_progress_free(cli_progress *p)
{
    if (!p) {
        return;
    }
    if (p->active && p->n) {
        draw(p);
    }
    pthread_mutex_destroy(&p->mu);
    free(p->items);
    free(p);
}
