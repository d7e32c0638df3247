/* SPDX-License-Identifier: Apache-2.0 */
/* berth/errors.h: error codes and the per-thread last-error message. */
#ifndef BERTH_ERRORS_H
#define BERTH_ERRORS_H

#include "common.h"

/**
 * Every libberth function that can fail returns an int: 0 on success or one of these negative
 * codes. Specific codes exist only for failures a caller branches on; anything else is
 * BERTH_ERROR. The detail is in berth_error_last().
 */
typedef enum berth_error_code {
    BERTH_OK = 0,
    BERTH_ERROR = -1,          /* generic failure */
    BERTH_ENOMEM = -2,         /* allocation failed */
    BERTH_ENOTFOUND = -3,      /* the named thing does not exist */
    BERTH_EEXISTS = -4,        /* it exists already */
    BERTH_EINVALID = -5,       /* invalid input (grammar, document, argument) */
    BERTH_EMISMATCH = -6,      /* content does not match its digest or declared size */
    BERTH_ETOOBIG = -7,        /* input over a configured limit */
    BERTH_EUNSUPPORTED = -8,   /* valid but not supported (digest algorithm, operation) */
    BERTH_EIO = -9,            /* the operating system failed a read or write */
    BERTH_ERANGE = -10,        /* an offset or range that does not fit (upload chunk, Range) */
    BERTH_EUNAUTHORIZED = -11, /* credentials missing or wrong */
    BERTH_EDENIED = -12,       /* credentials fine, access refused */
    BERTH_ENETWORK = -13,      /* a remote end could not be reached or broke off */
    BERTH_EBUSY = -14,         /* a resource is in use or a limit of concurrent use is reached */
    BERTH_ENOSPACE = -15,      /* the storage is full (disk space, quota, file size limit) */
    BERTH_EINUSE = -16,        /* refused: other stored content still references it */
} berth_error_code;

/**
 * The message of the last failure recorded in this thread, "" when there is none.
 * @return a borrowed string, valid until the next libberth call in this thread
 */
const char *berth_error_last(void);

/** The code of the last failure recorded in this thread (BERTH_OK when none). */
int berth_error_last_code(void);

/**
 * Record a failure for this thread, replacing any earlier message.
 * @param code  the berth_error_code being returned
 * @return `code`, so that a caller can `return berth_error_set(BERTH_EINVALID, "...")`
 */
int berth_error_set(int code, const char *fmt, ...) BERTH_PRINTF(2, 3);

/**
 * Put a prefix before the current message, as a parser does on the way out of a nested field:
 * `layers[2]` + `.digest: bad` makes `layers[2].digest: bad`. The separator is the caller's.
 */
void berth_error_prefix(const char *fmt, ...) BERTH_PRINTF(1, 2);

/** Forget the recorded failure of this thread. */
void berth_error_clear(void);

/** The symbolic name of a code, e.g. "ENOTFOUND"; "EUNKNOWN" for a code not in the list. */
const char *berth_error_name(int code);

#endif
