/* SPDX-License-Identifier: Apache-2.0 */
/* Internal logging: one line per message to stderr, with a level filter (berth/log.h). */
#ifndef BERTH_BASE_LOG_H
#define BERTH_BASE_LOG_H

#include <berth/common.h>
#include <berth/log.h>

#include <stdarg.h>

/** Messages above this level are dropped (default INFO). */
void berth__log_set_level(berth_log_level level);

/** Log one line (a newline is added). Thread-safe: each line is one write(2). */
void berth__log(berth_log_level level, const char *fmt, ...) BERTH_PRINTF(2, 3);

/** As berth__log() with a va_list. */
void berth__logv(berth_log_level level, const char *fmt, va_list ap) BERTH_PRINTF(2, 0);

/**
 * Copy `len` bytes of `s` into `out` (`cap` bytes, NUL-terminated) for a text log line: control
 * bytes, DEL and bytes that are not UTF-8 become \xNN; stops where the next piece would not
 * fit. @return the length written
 */
size_t berth__log_text_escape(char *out, size_t cap, const char *s, size_t len);

#endif
