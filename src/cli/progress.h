/* SPDX-License-Identifier: Apache-2.0 */
/* A progress display for blob transfers: one line per blob (bytes, rate, ETA), redrawn in
 * place, shown only when standard output is a terminal. */
#ifndef BERTH_CLI_PROGRESS_H
#define BERTH_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct cli_progress cli_progress;

/** A display; inactive (all calls do nothing) unless `enabled` and stdout is a terminal.
 * @return a display the caller frees with cli_progress_free(), or NULL when out of memory */
cli_progress *cli_progress_new(bool enabled);

/** A berth_copy_options.progress callback; `payload` is the cli_progress. Thread-safe. */
void cli_progress_update(const char *digest, uint64_t done, uint64_t total, bool finished,
                         void *payload);

/** Draw the final state and free; NULL is fine. */
void cli_progress_free(cli_progress *p);

#endif
