/* SPDX-License-Identifier: Apache-2.0 */
/* berth/buf.h: the growable byte buffer, always NUL-terminated, with an optional ceiling. */
#ifndef BERTH_BUF_H
#define BERTH_BUF_H

#include "common.h"

/**
 * A growable buffer. `ptr` is NUL-terminated whenever it is not NULL (the NUL is not counted
 * in `len`); `max`, when not 0, is a ceiling on `len` that growth never passes (BERTH_ETOOBIG),
 * which is how every buffer fed from the network is bounded.
 */
typedef struct berth_buf {
    char *ptr;
    size_t len;
    size_t cap;
    size_t max;
} berth_buf;

#define BERTH_BUF_INIT                                                                             \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }
/** A buffer limited to `m` bytes. */
#define BERTH_BUF_INIT_MAX(m)                                                                      \
    {                                                                                              \
        NULL, 0, 0, (m)                                                                            \
    }

/** Make room for `extra` more bytes. @return 0, BERTH_ENOMEM or BERTH_ETOOBIG */
int berth_buf_grow(berth_buf *buf, size_t extra);

/** Append `len` bytes. @return 0, BERTH_ENOMEM or BERTH_ETOOBIG (the buffer is unchanged) */
int berth_buf_put(berth_buf *buf, const void *data, size_t len);

/** Append a NUL-terminated string. @return as berth_buf_put() */
int berth_buf_puts(berth_buf *buf, const char *s);

/** Append printf-formatted text. @return as berth_buf_put() */
int berth_buf_printf(berth_buf *buf, const char *fmt, ...) BERTH_PRINTF(2, 3);

/** The contents as a C string: "" for an empty buffer, never NULL. Borrowed. */
const char *berth_buf_cstr(const berth_buf *buf);

/** Empty the buffer and keep its memory. */
void berth_buf_clear(berth_buf *buf);

/**
 * Take the contents: the caller frees the returned string with free(); the buffer is left
 * empty. Returns an allocated "" for an empty buffer, NULL only when out of memory.
 */
char *berth_buf_detach(berth_buf *buf);

/** Release the memory of a caller-owned buffer and reset it (keeps `max`). */
void berth_buf_dispose(berth_buf *buf);

#endif
