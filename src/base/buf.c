/* SPDX-License-Identifier: Apache-2.0 */
/*
 * berth_buf: a growable, always NUL-terminated buffer with an optional ceiling (curl's dynbuf).
 * Invariants: ptr == NULL iff cap == 0; len < cap when ptr != NULL; ptr[len] == '\0';
 * len <= max when max != 0. Growth doubles, clamped to the ceiling plus the NUL.
 */
#include <berth/buf.h>
#include <berth/errors.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int berth_buf_grow(berth_buf *buf, size_t extra)
{
    size_t need, cap;
    char *p;

    if (extra > SIZE_MAX - buf->len - 1) {
        return berth_error_set(BERTH_ETOOBIG, "buffer size overflows");
    }
    need = buf->len + extra + 1;
    if (buf->max && need - 1 > buf->max) {
        return berth_error_set(BERTH_ETOOBIG, "over the limit of %zu bytes", buf->max);
    }
    if (need <= buf->cap) {
        return 0;
    }
    cap = buf->cap ? buf->cap : 64;
    while (cap < need) {
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    }
    if (buf->max && cap > buf->max + 1) {
        cap = buf->max + 1;
    }
    p = realloc(buf->ptr, cap);
    if (!p) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if (!buf->ptr) {
        p[0] = '\0';
    }
    buf->ptr = p;
    buf->cap = cap;
    return 0;
}

int berth_buf_put(berth_buf *buf, const void *data, size_t len)
{
    int rc = berth_buf_grow(buf, len);
    if (rc < 0) {
        return rc;
    }
    if (len) {
        memcpy(buf->ptr + buf->len, data, len);
    }
    buf->len += len;
    buf->ptr[buf->len] = '\0';
    return 0;
}

int berth_buf_puts(berth_buf *buf, const char *s)
{
    return berth_buf_put(buf, s, strlen(s));
}

int berth_buf_printf(berth_buf *buf, const char *fmt, ...)
{
    va_list ap;
    int n, rc;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return berth_error_set(BERTH_ERROR, "bad format");
    }
    rc = berth_buf_grow(buf, (size_t)n);
    if (rc < 0) {
        return rc;
    }
    va_start(ap, fmt);
    vsnprintf(buf->ptr + buf->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)n;
    return 0;
}

const char *berth_buf_cstr(const berth_buf *buf)
{
    return buf->ptr ? buf->ptr : "";
}

void berth_buf_clear(berth_buf *buf)
{
    buf->len = 0;
    if (buf->ptr) {
        buf->ptr[0] = '\0';
    }
}

char *berth_buf_detach(berth_buf *buf)
{
    char *p = buf->ptr;
    if (!p) {
        p = calloc(1, 1);
    }
    buf->ptr = NULL;
    buf->len = 0;
    buf->cap = 0;
    return p;
}

void berth_buf_dispose(berth_buf *buf)
{
    free(buf->ptr);
    buf->ptr = NULL;
    buf->len = 0;
    buf->cap = 0;
}
