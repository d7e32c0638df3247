/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A string-keyed hash table with linear probing and tombstones. FNV-1a hashing; the table
 * grows at 70% load (tombstones included) so that probes stay short.
 */
#include "base/htab.h"

#include <berth/errors.h>

#include <stdlib.h>
#include <string.h>

static const char tomb_key[] = "";

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static berth__htab_slot *find(const berth__htab *t, const char *key, uint64_t h)
{
    size_t mask, i;
    if (!t->cap) {
        return NULL;
    }
    mask = t->cap - 1;
    for (i = h & mask;; i = (i + 1) & mask) {
        berth__htab_slot *s = &t->slots[i];
        if (!s->key) {
            return NULL;
        }
        if (s->key != tomb_key && s->hash == h && strcmp(s->key, key) == 0) {
            return s;
        }
    }
}

static int resize(berth__htab *t, size_t cap)
{
    berth__htab_slot *old = t->slots, *slots = calloc(cap, sizeof(*slots));
    size_t oldcap = t->cap;

    if (!slots) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].key && old[i].key != tomb_key) {
            size_t j = old[i].hash & (cap - 1);
            while (slots[j].key) {
                j = (j + 1) & (cap - 1);
            }
            slots[j] = old[i];
        }
    }
    free(old);
    t->slots = slots;
    t->cap = cap;
    t->tombs = 0;
    return 0;
}

void *berth__htab_get(const berth__htab *t, const char *key)
{
    berth__htab_slot *s = find(t, key, hash_str(key));
    return s ? s->value : NULL;
}

int berth__htab_put(berth__htab *t, const char *key, void *value)
{
    uint64_t h = hash_str(key);
    berth__htab_slot *s = find(t, key, h);
    size_t i;

    if (s) {
        s->key = key;
        s->value = value;
        return 0;
    }
    if ((t->count + t->tombs + 1) * 10 >= t->cap * 7) {
        size_t cap = t->cap ? t->cap : 16;
        while ((t->count + 1) * 10 >= cap * 5) {
            cap *= 2;
        }
        int rc = resize(t, cap);
        if (rc < 0) {
            return rc;
        }
    }
    for (i = h & (t->cap - 1); t->slots[i].key && t->slots[i].key != tomb_key;
         i = (i + 1) & (t->cap - 1)) {
    }
    if (t->slots[i].key == tomb_key) {
        t->tombs--;
    }
    t->slots[i].key = key;
    t->slots[i].value = value;
    t->slots[i].hash = h;
    t->count++;
    return 0;
}

void *berth__htab_remove(berth__htab *t, const char *key)
{
    berth__htab_slot *s = find(t, key, hash_str(key));
    void *v;
    if (!s) {
        return NULL;
    }
    v = s->value;
    s->key = tomb_key;
    s->value = NULL;
    t->count--;
    t->tombs++;
    return v;
}

void berth__htab_foreach(const berth__htab *t, void (*fn)(void *value, void *payload),
                         void *payload)
{
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].key && t->slots[i].key != tomb_key) {
            fn(t->slots[i].value, payload);
        }
    }
}

void berth__htab_dispose(berth__htab *t)
{
    free(t->slots);
    t->slots = NULL;
    t->cap = t->count = t->tombs = 0;
}
