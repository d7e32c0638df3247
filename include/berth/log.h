/* SPDX-License-Identifier: Apache-2.0 */
/* berth/log.h: the process's log lines on stderr (as text or as one JSON object a line). */
#ifndef BERTH_LOG_H
#define BERTH_LOG_H

#include "common.h"

/** Severity of a log line. NOTICE lines (start, stop, gc summaries) pass every filter but
 * `error`, and are written as level "notice". */
typedef enum berth_log_level {
    BERTH_LOG_ERROR = 0,
    BERTH_LOG_WARN = 1,
    BERTH_LOG_INFO = 2,
    BERTH_LOG_DEBUG = 3,
    BERTH_LOG_NOTICE = 4,
} berth_log_level;

/**
 * Choose what is logged and how, for the whole process (the server's access log follows the
 * server's own configuration).
 * @param level  lines less severe than this are dropped (BERTH_LOG_ERROR..BERTH_LOG_DEBUG)
 * @param json   true: each line is `{"time":..,"level":..,"msg":..}`; false: `TIME LEVEL MSG`
 */
void berth_log_configure(berth_log_level level, bool json);

/** Is the log written as JSON lines? @return the `json` of the last berth_log_configure() */
bool berth_log_json(void);

/**
 * Write one line to stderr (a newline is added; text that is not UTF-8 is written with U+FFFD
 * in JSON mode). Thread-safe: each line is one write(2).
 * @param level  its severity
 * @param fmt    printf format
 */
void berth_log(berth_log_level level, const char *fmt, ...) BERTH_PRINTF(2, 3);

#endif
