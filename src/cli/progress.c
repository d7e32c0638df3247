/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The progress display of blob transfers, on standard error (standard output carries the
 * digest a copy prints). Entries are kept in the order blobs started. On a terminal each
 * redraw moves the cursor up over the lines drawn last time and rewrites them: the blobs that
 * finished since (drawn for good), one line per blob not yet finished and a total line, at
 * most ten times a second (and always when a blob finishes). Elsewhere (a pipe, a log file)
 * nothing is redrawn: one plain line per blob when it finishes, and a summary when the copy
 * succeeded. Callbacks come from the copy engine's worker threads (downloads and uploads
 * alike report bytes), so one mutex guards everything.
 */
#include "cli/progress.h"

#include <berth/common.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

typedef struct entry {
    char digest[140];
    uint64_t done, total;
    double start, end;
    bool finished;
    bool transferred; /* reported bytes before finishing: not already at the destination */
    bool shown;       /* finished and drawn for good, above the block that is redrawn */
} entry;

struct cli_progress {
    cli_progress_mode mode;
    FILE *out;
    pthread_mutex_t mu;
    entry *items;
    size_t n, cap, drawn;
    size_t width;  /* columns of the terminal: a row never wraps (the cursor goes up by rows) */
    size_t height; /* rows of the terminal: the block is never taller than the screen */
    double first, last_draw;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

cli_progress_mode cli_progress_mode_for(bool enabled, FILE *out)
{
    const char *term = getenv("TERM");
    if (!enabled) {
        return CLI_PROGRESS_OFF;
    }
    if (isatty(fileno(out)) && !(term && strcmp(term, "dumb") == 0)) {
        return CLI_PROGRESS_BARS;
    }
    return CLI_PROGRESS_LINES;
}

cli_progress *cli_progress_new(cli_progress_mode mode, FILE *out)
{
    cli_progress *p = calloc(1, sizeof(*p));
    if (!p) {
        return NULL;
    }
    p->mode = mode;
    p->out = out;
    p->width = 80;
    p->height = 24;
    if (mode == CLI_PROGRESS_BARS) {
        struct winsize ws;
        if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
            p->width = ws.ws_col;
        }
        if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) {
            p->height = ws.ws_row;
        }
    }
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

/* One row of the block: cleared, then at most width - 1 columns (all ASCII), so that it never
 * wraps onto a second row that the next redraw would not go back over. */
static void row(cli_progress *p, const char *fmt, ...) BERTH_PRINTF(2, 3);
static void row(cli_progress *p, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n >= sizeof(text)) {
        n = (int)sizeof(text) - 1;
    }
    if (p->width > 1 && (size_t)n > p->width - 1) {
        n = (int)(p->width - 1);
    }
    fprintf(p->out, "\033[2K%.*s\n", n, text);
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

static const char *short_id(const entry *e)
{
    const char *hex = strchr(e->digest, ':');
    return hex ? hex + 1 : e->digest;
}

static void draw_entry(cli_progress *p, const entry *e, double t)
{
    char done[32], total[32], r[32], bar[23];
    human(done, sizeof(done), (double)e->done);
    human(total, sizeof(total), (double)e->total);
    if (!e->transferred) {
        row(p, "%.12s %-22s %9s  already at the destination", short_id(e), "", total);
        return;
    }
    double el = (e->finished ? e->end : t) - e->start;
    double rate = el > 0.01 ? (double)e->done / el : 0;
    char rs[40] = "-"; /* too soon (or too small) to say */
    size_t fill =
        e->total ? (size_t)(20 * (e->done > e->total ? e->total : e->done) / e->total) : 20;
    bar[0] = '[';
    for (size_t k = 0; k < 20; k++) {
        bar[1 + k] = k < fill ? '#' : '.';
    }
    bar[21] = ']';
    bar[22] = '\0';
    if (el > 0.01) {
        human(r, sizeof(r), rate);
        snprintf(rs, sizeof(rs), "%s/s", r);
    }
    /* 69 columns, then " done" or " ETA Ns": an 80-column terminal shows it all */
    if (e->finished) {
        row(p, "%.12s %s %9s / %-9s %11s done", short_id(e), bar, done, total, rs);
    } else if (rate > 0 && e->total > e->done) {
        row(p, "%.12s %s %9s / %-9s %11s ETA %.0fs", short_id(e), bar, done, total, rs,
            (double)(e->total - e->done) / rate);
    } else {
        row(p, "%.12s %s %9s / %-9s %11s", short_id(e), bar, done, total, rs);
    }
}

/* Redraw the block. A finished entry not drawn for good yet is drawn first, where the block
 * began, and left there (finished entries go up in the order they finished); then the entries
 * in flight and the total line, which the next redraw goes back over. So the block stays as
 * small as the transfers in flight (the copy's parallel jobs), whatever the number of blobs
 * and however long the first of them takes: a block taller than the terminal could not be
 * gone back over. */
static void draw(cli_progress *p)
{
    double t = now();
    uint64_t sum_done = 0, sum_total = 0;
    size_t finished = 0, inflight = 0;
    char done[32], total[32], r[32];

    if (p->drawn) {
        fprintf(p->out, "\033[%zuA", p->drawn);
    }
    for (size_t i = 0; i < p->n; i++) {
        entry *e = &p->items[i];
        finished += e->finished;
        if (e->transferred) {
            sum_done += e->done;
            sum_total += e->total;
        }
        if (e->finished && !e->shown) {
            draw_entry(p, e, t);
            e->shown = true;
        }
    }
    /* at most height - 1 rows, the cursor's own included: rows of blobs in flight, one
     * "more" row when --jobs is larger than that, the total */
    size_t room = p->height > 4 ? p->height - 3 : 1, more = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (p->items[i].finished) {
            continue;
        }
        if (inflight < room) {
            draw_entry(p, &p->items[i], t);
            inflight++;
        } else {
            more++;
        }
    }
    if (more) {
        row(p, "... and %zu more in flight", more);
        inflight++;
    }
    human(done, sizeof(done), (double)sum_done);
    human(total, sizeof(total), (double)sum_total);
    human(r, sizeof(r), t - p->first > 0.01 ? (double)sum_done / (t - p->first) : 0);
    row(p, "total  %zu/%zu blobs  %s / %s  %s/s", finished, p->n, done, total, r);
    p->drawn = inflight + 1;
    p->last_draw = t;
    fflush(p->out);
}

/* LINES mode: the line of a blob that finished. */
static void line(cli_progress *p, const entry *e)
{
    char size[32], r[32];
    human(size, sizeof(size), (double)e->total);
    if (!e->transferred) {
        fprintf(p->out, "blob %s  %s  already at the destination\n", e->digest, size);
    } else {
        double el = e->end - e->start;
        human(r, sizeof(r), el > 0.001 ? (double)e->total / el : 0);
        fprintf(p->out, "blob %s  %s  copied in %.1f s (%s/s)\n", e->digest, size, el, r);
    }
    fflush(p->out);
}

void cli_progress_update(const char *digest, uint64_t done, uint64_t total, bool finished,
                         void *payload)
{
    cli_progress *p = payload;
    entry *e = NULL;

    if (!p || p->mode == CLI_PROGRESS_OFF) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n && !e; i++) {
        if (strcmp(p->items[i].digest, digest) == 0) {
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
        snprintf(e->digest, sizeof(e->digest), "%s", digest);
        e->start = now();
        if (p->n == 1) {
            p->first = e->start;
        }
    }
    if (e->finished) {
        goto out; /* a late report of the upload after the verdict */
    }
    e->done = done;
    e->total = total;
    if (!finished) {
        e->transferred = true;
    } else {
        e->finished = true;
        e->end = now();
        e->done = total;
    }
    if (p->mode == CLI_PROGRESS_LINES) {
        if (finished) {
            line(p, e);
        }
    } else if (finished || now() - p->last_draw >= 0.1) {
        draw(p);
    }
out:
    pthread_mutex_unlock(&p->mu);
}

void cli_progress_done(cli_progress *p)
{
    if (!p || p->mode == CLI_PROGRESS_OFF || p->n == 0) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    if (p->mode == CLI_PROGRESS_BARS) {
        draw(p);
    } else {
        uint64_t bytes = 0;
        size_t copied = 0, present = 0;
        double el = now() - p->first;
        char size[32], r[32];
        for (size_t i = 0; i < p->n; i++) {
            if (p->items[i].transferred) {
                copied++;
                bytes += p->items[i].total;
            } else {
                present++;
            }
        }
        human(size, sizeof(size), (double)bytes);
        human(r, sizeof(r), el > 0.001 ? (double)bytes / el : 0);
        fprintf(p->out, "copied %zu blob%s, %s in %.1f s (%s/s); %zu already at the destination\n",
                copied, copied == 1 ? "" : "s", size, el, r, present);
        fflush(p->out);
    }
    pthread_mutex_unlock(&p->mu);
}

void cli_progress_free(cli_progress *p)
{
    if (!p) {
        return;
    }
    pthread_mutex_destroy(&p->mu);
    free(p->items);
    free(p);
}
