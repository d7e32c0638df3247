/* SPDX-License-Identifier: Apache-2.0 */
/* Internal logging: one line per message to stderr, with a level filter. */
#ifndef BERTH_BASE_LOG_H
#define BERTH_BASE_LOG_H

#include <berth/common.h>

typedef enum berth_log_level {
    BERTH_LOG_ERROR = 0,
    BERTH_LOG_WARN = 1,
    BERTH_LOG_INFO = 2,
    BERTH_LOG_DEBUG = 3,
} berth_log_level;

/** Messages above this level are dropped (default INFO). */
void berth__log_set_level(berth_log_level level);

/** Log one line (a newline is added). Thread-safe: each line is one write(2). */
void berth__log(berth_log_level level, const char *fmt, ...) BERTH_PRINTF(2, 3);

#endif
