/* SPDX-License-Identifier: Apache-2.0 */
/* Progress of blob transfers on standard error: on a terminal, one line per blob (a bar,
 * bytes, rate, ETA) redrawn in place with a total line under them; otherwise one plain line
 * per blob when it finishes and a summary, so logs stay readable. */
#ifndef BERTH_CLI_PROGRESS_H
#define BERTH_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct cli_progress cli_progress;

/** Which display: none, plain lines, or bars redrawn in place. */
typedef enum cli_progress_mode {
    CLI_PROGRESS_OFF,
    CLI_PROGRESS_LINES,
    CLI_PROGRESS_BARS
} cli_progress_mode;

/** The mode for `out`: OFF unless `enabled`; BARS when `out` is a terminal (and TERM is not
 * "dumb"); LINES otherwise. */
cli_progress_mode cli_progress_mode_for(bool enabled, FILE *out);

/** A display writing to `out` in `mode`.
 * @return a display the caller frees with cli_progress_free(), or NULL when out of memory */
cli_progress *cli_progress_new(cli_progress_mode mode, FILE *out);

/** A berth_copy_options.progress callback; `payload` is the cli_progress. Thread-safe. A blob
 * that finishes without having started (done == 0 first) was already at the destination. */
void cli_progress_update(const char *digest, uint64_t done, uint64_t total, bool finished,
                         void *payload);

/** The copy succeeded: draw the final state and, in LINES mode, print the summary line. */
void cli_progress_done(cli_progress *p);

/** Free (drawing nothing more); NULL is fine. */
void cli_progress_free(cli_progress *p);

#endif
