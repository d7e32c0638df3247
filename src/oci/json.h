/* SPDX-License-Identifier: Apache-2.0 */
/*
 * oci/json.h (internal): the JSON helpers every document type of the data model is built on.
 * Readers take a jansson object and a member name, check the member's JSON type, copy it into
 * berth types, and on failure record "<member>: <reason>" so that callers only prefix the path.
 * Writers build jansson values; a failed allocation is remembered in an `int *rc` accumulator
 * so that a serialiser can build a whole tree and check once.
 */
#ifndef BERTH_OCI_JSON_H
#define BERTH_OCI_JSON_H

#include <jansson.h>

#include "berth/buf.h"
#include "berth/descriptor.h"

/**
 * Parse JSON text strictly (duplicate keys rejected, the whole input consumed) into a value
 * that must be an object. @param out receives a reference the caller json_decref()s
 * @return 0, BERTH_EINVALID (message gives line and column), BERTH_ENOMEM
 */
int berth__json_load(json_t **out, const char *data, size_t len);

/** Append the compact JSON text of `v` (borrowed) to `out`. @return 0 or BERTH_ENOMEM */
int berth__json_dump(berth_buf *out, const json_t *v);

/**
 * The steps of every berth_<document>_parse(): clear the last error, load `json`, allocate a
 * zeroed document of `size` bytes and `fill` it from the root object; on any failure the
 * document is released with `free_doc`. @param rc receives 0 (or what `fill` returned) or the
 * failure's code (message set) @return the document, which the caller's _free() releases, or
 * NULL on failure
 */
void *berth__json_parse_doc(int *rc, const char *json, size_t len, size_t size,
                            int (*fill)(void *doc, const json_t *root),
                            void (*free_doc)(void *doc));

/**
 * The end of every serialiser: append the compact text of `o`, an object built with the setters
 * below (NULL when json_object() failed) whose failures went to `rc`, to `out`; release `o`.
 * @return 0 or BERTH_ENOMEM (message set)
 */
int berth__json_finish(berth_buf *out, json_t *o, int rc);

/**
 * Append `len` bytes of `s` as a JSON string, quoted and escaped byte for byte as
 * berth__json_dump() writes a string (so a serialiser may stream long arrays without a tree).
 * Bytes that are not UTF-8 are written as U+FFFD, so the output is always JSON (jansson would
 * refuse the string). @return 0, BERTH_ENOMEM or BERTH_ETOOBIG (a ceiling of `out`)
 */
int berth__json_put_string(berth_buf *out, const char *s, size_t len);

/** The length of the longest prefix of `s` that is UTF-8 as JSON allows (no surrogates). */
size_t berth__utf8_valid_prefix(const char *s, size_t len);

/**
 * Append `s` with every byte that is not part of UTF-8 replaced by U+FFFD: text from the network
 * made fit for a JSON string (jansson refuses a string that is not UTF-8).
 * @return 0, BERTH_ENOMEM or BERTH_ETOOBIG
 */
int berth__utf8_repair(berth_buf *out, const char *s, size_t len);

/** Check that `v` is an object; `what` names it in the message. @return 0 or BERTH_EINVALID */
int berth__json_want_object(const json_t *v, const char *what);

/**
 * Copy string member `key` of `obj` into `*out` (malloc'd, caller frees; left NULL when the
 * member is absent and not required). @return 0, BERTH_EINVALID, BERTH_ENOMEM
 */
int berth__json_str(char **out, const json_t *obj, const char *key, bool required);

/** Integer member `key`, >= 0. @param present may be NULL; set when the member was there */
int berth__json_size(int64_t *out, bool *present, const json_t *obj, const char *key,
                     bool required);

/** Boolean member `key`. @param present set when the member was there */
int berth__json_bool(bool *out, bool *present, const json_t *obj, const char *key);

/** Array-of-strings member `key` (optional; `null` is taken as absent). */
int berth__json_strlist(berth_strlist *out, const json_t *obj, const char *key);

/** Object-of-strings member `key` (optional). */
int berth__json_map(berth_map *out, const json_t *obj, const char *key);

/** The keys of an object member `key` whose values are objects (ExposedPorts, Volumes). */
int berth__json_keyset(berth_strlist *out, const json_t *obj, const char *key);

/**
 * Collect the members of `obj` whose names are not in `known` (NULL-terminated) into the
 * compact text of an object; `*out` stays NULL when there are none. @return 0 or BERTH_ENOMEM
 */
int berth__json_extra(berth_extra *out, const json_t *obj, const char *const *known);

/** Add the members of `extra` to `obj` (members already set win). */
void berth__json_put_extra(json_t *obj, berth_extra extra, int *rc);

/** Set member `key` of `obj` to `v` (stolen); a NULL `v` marks *rc BERTH_ENOMEM. */
void berth__json_set(json_t *obj, const char *key, json_t *v, int *rc);

/** Set a string member when `s` is not NULL. */
void berth__json_set_str(json_t *obj, const char *key, const char *s, int *rc);

/** Set an array-of-strings member when the list is not empty. */
void berth__json_set_strlist(json_t *obj, const char *key, const berth_strlist *l, int *rc);

/** Set an object-of-strings member when the map is not empty. */
void berth__json_set_map(json_t *obj, const char *key, const berth_map *m, int *rc);

/** Set an object member whose keys are the list and whose values are `{}`. */
void berth__json_set_keyset(json_t *obj, const char *key, const berth_strlist *l, int *rc);

/** Parse a JSON text of any type (for `detail`), NULL on failure. */
json_t *berth__json_from_text(const char *text);

/** The compact text of any JSON value, malloc'd, NULL on failure. */
char *berth__json_to_text(const json_t *v);

/** True for an RFC 3339 date-time (`2015-10-31T22:22:56.015925234Z`, offsets allowed). */
bool berth__rfc3339_valid(const char *s);

/* The descriptor and platform codecs over jansson values, shared by every document type. */
int berth__descriptor_from_json(berth_descriptor *d, const json_t *v);
json_t *berth__descriptor_to_json(const berth_descriptor *d, int *rc);
int berth__platform_from_json(berth_platform *p, const json_t *v);
json_t *berth__platform_to_json(const berth_platform *p, int *rc);
void berth__platform_dispose(berth_platform *p);

/**
 * Read an array member of descriptors. @param out receives a calloc'd array (NULL when empty),
 * each element disposed and the array freed by the caller @return 0, BERTH_EINVALID naming
 * `key[i].field`, BERTH_EUNSUPPORTED, BERTH_ENOMEM
 */
int berth__descriptors_from_json(berth_descriptor **out, size_t *n, const json_t *obj,
                                 const char *key, bool required);

/**
 * Read the members an image manifest and an index share: schemaVersion (required), mediaType,
 * artifactType and subject (`*subject` calloc'd when present; the caller frees it).
 * @return 0, BERTH_EINVALID naming the member, BERTH_EUNSUPPORTED, BERTH_ENOMEM
 */
int berth__json_doc_common(int64_t *schema_version, char **media_type, char **artifact_type,
                           berth_descriptor **subject, const json_t *root);

/**
 * Validate those shared members: schemaVersion 2; a mediaType that is `oci_type` or, when
 * `docker`, the Docker type (the caller decided); an artifactType of media type grammar; a
 * valid subject. `kind` ("manifest", "index") words the messages.
 * @return 0 or BERTH_EINVALID naming the member
 */
int berth__doc_common_validate(int64_t schema_version, const char *media_type, bool docker,
                               const char *oci_type, const char *kind, const char *artifact_type,
                               const berth_descriptor *subject);

/** Dispose `n` descriptors and free the array. */
void berth__descriptors_free(berth_descriptor *a, size_t n);

/** Validate `n` descriptors, naming `key[i]` on failure. */
int berth__descriptors_validate(const berth_descriptor *a, size_t n, const char *key);

/** Set an array member of descriptors (always set, even when empty). */
void berth__json_set_descriptors(json_t *obj, const char *key, const berth_descriptor *a, size_t n,
                                 int *rc);

/* Manifest and index codecs over a loaded root object (used by berth_document_inspect). */
struct berth_manifest;
struct berth_index;
int berth__manifest_from_json(struct berth_manifest *m, const json_t *root);
int berth__index_from_json(struct berth_index *idx, const json_t *root);

#endif
