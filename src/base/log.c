/* SPDX-License-Identifier: Apache-2.0 */
/* Internal logging. A line is formatted into a stack buffer and written with one write(2), so
 * concurrent threads never interleave within a line. In JSON mode every line is one object
 * {"time","level","msg"}, the message escaped here (base/ sits below the JSON writers of oci/):
 * controls and quotes are escaped, and bytes that are not UTF-8 become U+FFFD, so that a line
 * quoting what a client sent is still JSON. In text mode control bytes and bytes that are not
 * UTF-8 are written as \xNN: no line can be forged nor a terminal sent escape sequences. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile int log_level = BERTH_LOG_INFO;
static volatile int log_json;

void berth__log_set_level(berth_log_level level)
{
    log_level = (int)level;
}

void berth_log_configure(berth_log_level level, bool json)
{
    log_level = level > BERTH_LOG_DEBUG ? BERTH_LOG_INFO : (int)level;
    log_json = json;
}

bool berth_log_json(void)
{
    return log_json != 0;
}

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0 if there is none. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned cp;

    if (s[0] < 0x80) {
        return 1;
    } else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
        return 0;
    }
    return len;
}

/* Append `s` as the inside of a JSON string to out[*n..cap); stops before it would overflow. */
static void put_escaped(char *out, size_t cap, size_t *n, const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;

    while (i < len) {
        char esc[8];
        const char *piece = esc;
        size_t plen = 0, step = 1;

        if (s[i] == '"' || s[i] == '\\') {
            esc[0] = '\\';
            esc[1] = (char)s[i];
            plen = 2;
        } else if (s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
            esc[0] = '\\';
            esc[1] = s[i] == '\n' ? 'n' : s[i] == '\t' ? 't' : 'r';
            plen = 2;
        } else if (s[i] < 0x20 || s[i] == 0x7f) {
            plen = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", s[i]);
        } else if ((step = utf8_len(s + i, len - i)) == 0) {
            piece = "\xef\xbf\xbd"; /* U+FFFD */
            plen = 3;
            step = 1;
        } else {
            piece = (const char *)s + i;
            plen = step;
        }
        if (*n + plen >= cap) {
            return;
        }
        memcpy(out + *n, piece, plen);
        *n += plen;
        i += step;
    }
}

size_t berth__log_text_escape(char *out, size_t cap, const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t n = 0, i = 0;

    if (cap == 0) {
        return 0;
    }
    while (i < len) {
        size_t step = s[i] < 0x20 || s[i] == 0x7f ? 0 : utf8_len(s + i, len - i);
        if (step == 0) {
            if (n + 4 >= cap) {
                break;
            }
            snprintf(out + n, 5, "\\x%02x", s[i]);
            n += 4;
            i++;
            continue;
        }
        if (n + step >= cap) {
            break;
        }
        memcpy(out + n, s + i, step);
        n += step;
        i += step;
    }
    out[n] = '\0';
    return n;
}

void berth__logv(berth_log_level level, const char *fmt, va_list ap)
{
    static const char *names[] = {"error", "warn", "info", "debug", "notice"};
    char line[4096], msg[2048];
    struct timespec ts;
    struct tm tm;
    size_t n = 0;
    int m;

    if ((unsigned)level > BERTH_LOG_NOTICE) {
        level = BERTH_LOG_ERROR;
    }
    /* a notice is shown unless only errors are */
    if ((level == BERTH_LOG_NOTICE ? BERTH_LOG_WARN : (int)level) > log_level) {
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    m = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (m < 0) {
        return;
    }
    if ((size_t)m >= sizeof(msg)) {
        m = (int)sizeof(msg) - 1;
    }
    while (m > 0 && msg[m - 1] == '\n') {
        m--; /* the line ends here, once */
    }
    if (log_json) {
        n = (size_t)snprintf(line, sizeof(line),
                             "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\","
                             "\"msg\":\"",
                             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                             tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
        put_escaped(line, sizeof(line) - 3, &n, msg, (size_t)m);
        line[n++] = '"';
        line[n++] = '}';
    } else {
        n = (size_t)snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                             tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
        /* what a client or a file sent may be quoted: no control byte reaches a terminal */
        n += berth__log_text_escape(line + n, sizeof(line) - 1 - n, msg, (size_t)m);
    }
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        return;
    }
}

void berth__log(berth_log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    berth__logv(level, fmt, ap);
    va_end(ap);
}

void berth_log(berth_log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    berth__logv(level, fmt, ap);
    va_end(ap);
}
