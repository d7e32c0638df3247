/* SPDX-License-Identifier: Apache-2.0 */
/* berth/descriptor.h: descriptors, platforms and the small shared types of the data model. */
#ifndef BERTH_DESCRIPTOR_H
#define BERTH_DESCRIPTOR_H

#include "buf.h"
#include "common.h"
#include "digest.h"

/** A list of owned strings, in document order. */
typedef struct berth_strlist {
    char **items;
    size_t count;
} berth_strlist;

/** One key and value of a string map. */
typedef struct berth_kv {
    char *key;
    char *value;
} berth_kv;

/** A string-to-string map (annotations, labels), in document order; keys are unique. */
typedef struct berth_map {
    berth_kv *items;
    size_t count;
} berth_map;

/**
 * Unknown members of a JSON object, kept so that a document survives a round trip: the
 * compact JSON text of an object holding them, or NULL when there were none.
 */
typedef char *berth_extra;

/** Platform (image-index.md): the platform an image runs on. */
typedef struct berth_platform {
    char *architecture;        /* required */
    char *os;                  /* required */
    char *os_version;          /* "os.version", optional */
    berth_strlist os_features; /* "os.features", optional */
    char *variant;             /* optional */
    berth_extra extra;
} berth_platform;

/** Descriptor (descriptor.md): what a document says of the content it points at. */
typedef struct berth_descriptor {
    char *media_type;         /* "mediaType", required */
    berth_digest digest;      /* "digest", required; a supported algorithm */
    int64_t size;             /* "size", required, >= 0 */
    berth_strlist urls;       /* "urls", optional */
    berth_map annotations;    /* "annotations", optional */
    berth_platform *platform; /* "platform", optional (NULL) */
    char *artifact_type;      /* "artifactType", optional */
    unsigned char *data;      /* "data" decoded from base64, optional */
    size_t data_len;
    bool has_data; /* "data" was present (it may decode to zero bytes) */
    berth_extra extra;
} berth_descriptor;

/**
 * Parse a descriptor from JSON text.
 * @param out  receives a descriptor the caller frees with berth_descriptor_free()
 * @return 0; BERTH_EINVALID with the offending field named; BERTH_EUNSUPPORTED for a digest of
 *         an unsupported algorithm; BERTH_ENOMEM
 */
int berth_descriptor_parse(berth_descriptor **out, const char *json, size_t len);

/**
 * Check a descriptor against the image-spec's MUSTs (digest, media type grammar, size >= 0,
 * `data` matching digest and size when present, platform fields).
 * @return 0 or BERTH_EINVALID naming the field
 */
int berth_descriptor_validate(const berth_descriptor *d);

/** Append the descriptor's compact JSON to `out`. @return 0 or BERTH_ENOMEM */
int berth_descriptor_serialize(berth_buf *out, const berth_descriptor *d);

/** Empty a descriptor that the caller owns (an array element, a stack value). */
void berth_descriptor_dispose(berth_descriptor *d);

/** Free a heap descriptor from berth_descriptor_parse(); NULL is fine. */
void berth_descriptor_free(berth_descriptor *d);

/** Parse, validate, serialise and free a platform, as the descriptor functions do. */
int berth_platform_parse(berth_platform **out, const char *json, size_t len);
int berth_platform_validate(const berth_platform *p);
int berth_platform_serialize(berth_buf *out, const berth_platform *p);
void berth_platform_free(berth_platform *p);

/** The value of `key` in a map, or NULL (borrowed). */
const char *berth_map_get(const berth_map *m, const char *key);

/** Free the strings of a caller-owned list and empty it. */
void berth_strlist_dispose(berth_strlist *l);

/** Free the keys and values of a caller-owned map and empty it. */
void berth_map_dispose(berth_map *m);

#endif
