/* SPDX-License-Identifier: Apache-2.0 */
/* Internal: a string-keyed hash table (open addressing, linear probing). Keys are borrowed:
 * the caller keeps each key alive while it is in the table (usually it lives in the value). */
#ifndef BERTH_BASE_HTAB_H
#define BERTH_BASE_HTAB_H

#include <berth/common.h>

typedef struct berth__htab_slot {
    const char *key;
    void *value;
    uint64_t hash;
} berth__htab_slot;

typedef struct berth__htab {
    berth__htab_slot *slots;
    size_t cap; /* a power of two, or 0 */
    size_t count;
    size_t tombs;
} berth__htab;

#define BERTH__HTAB_INIT                                                                           \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }

/** The value stored under `key`, or NULL. */
void *berth__htab_get(const berth__htab *t, const char *key);

/** Store `value` under `key`, replacing an existing value. @return 0 or BERTH_ENOMEM */
int berth__htab_put(berth__htab *t, const char *key, void *value);

/** Remove `key`; returns its value, or NULL when it was absent. */
void *berth__htab_remove(berth__htab *t, const char *key);

/** Visit every value (any order); the table must not change meanwhile. */
void berth__htab_foreach(const berth__htab *t, void (*fn)(void *value, void *payload),
                         void *payload);

/** Free the table's memory (not the values). */
void berth__htab_dispose(berth__htab *t);

#endif
