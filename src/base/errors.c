/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-thread last error (libgit2's model): a failure is recorded where it is detected,
 * with a short message, and callers pass the code up unchanged. Parsers prefix the path of
 * the field on the way out. The slot is a fixed array so that recording an error never
 * allocates (and so never fails).
 */
#include <berth/errors.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MSG_MAX 1024

static _Thread_local char last_msg[MSG_MAX];
static _Thread_local int last_code;

const char *berth_error_last(void)
{
    return last_msg;
}

int berth_error_last_code(void)
{
    return last_code;
}

int berth_error_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
    va_end(ap);
    last_code = code;
    return code;
}

void berth_error_prefix(const char *fmt, ...)
{
    char prefix[256];
    char old[MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    size_t plen = strlen(prefix), olen = strlen(last_msg);

    memcpy(old, last_msg, olen + 1);
    if (plen > MSG_MAX - 1) {
        plen = MSG_MAX - 1;
    }
    if (olen > MSG_MAX - 1 - plen) {
        olen = MSG_MAX - 1 - plen;
    }
    memcpy(last_msg, prefix, plen);
    memcpy(last_msg + plen, old, olen);
    last_msg[plen + olen] = '\0';
}

void berth_error_clear(void)
{
    last_msg[0] = '\0';
    last_code = BERTH_OK;
}

const char *berth_error_name(int code)
{
    switch (code) {
    case BERTH_OK:
        return "OK";
    case BERTH_ERROR:
        return "ERROR";
    case BERTH_ENOMEM:
        return "ENOMEM";
    case BERTH_ENOTFOUND:
        return "ENOTFOUND";
    case BERTH_EEXISTS:
        return "EEXISTS";
    case BERTH_EINVALID:
        return "EINVALID";
    case BERTH_EMISMATCH:
        return "EMISMATCH";
    case BERTH_ETOOBIG:
        return "ETOOBIG";
    case BERTH_EUNSUPPORTED:
        return "EUNSUPPORTED";
    case BERTH_EIO:
        return "EIO";
    case BERTH_ERANGE:
        return "ERANGE";
    case BERTH_EUNAUTHORIZED:
        return "EUNAUTHORIZED";
    case BERTH_EDENIED:
        return "EDENIED";
    case BERTH_ENETWORK:
        return "ENETWORK";
    case BERTH_EBUSY:
        return "EBUSY";
    case BERTH_ENOSPACE:
        return "ENOSPACE";
    case BERTH_EINUSE:
        return "EINUSE";
    default:
        return "EUNKNOWN";
    }
}
