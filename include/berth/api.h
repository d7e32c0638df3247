/* SPDX-License-Identifier: Apache-2.0 */
/*
 * berth/api.h: the JSON documents of the distribution API: the error response, the catalog's
 * repository list and the tag list.
 */
#ifndef BERTH_API_H
#define BERTH_API_H

#include "descriptor.h"

/** One error of an error response. */
typedef struct berth_error_info {
    char *code;    /* "code", required (e.g. "BLOB_UNKNOWN") */
    char *message; /* "message", optional */
    char *detail;  /* "detail": any JSON value, kept as its compact JSON text; optional */
    berth_extra extra;
} berth_error_info;

/** `{"errors": [...]}`. */
typedef struct berth_error_response {
    berth_error_info *errors; /* "errors", required (may be empty) */
    size_t nerrors;
    berth_extra extra;
} berth_error_response;

/**
 * Parse an error response.
 * @param out  receives a struct the caller frees with berth_error_response_free()
 * @return 0, BERTH_EINVALID (`errors[0].code: ...`), BERTH_ENOMEM
 */
int berth_error_response_parse(berth_error_response **out, const char *json, size_t len);
/** Every error has a non-empty code; a detail, when set, is JSON. @return 0 or BERTH_EINVALID */
int berth_error_response_validate(const berth_error_response *r);
/** Append the compact JSON. @return 0 or BERTH_ENOMEM */
int berth_error_response_serialize(berth_buf *out, const berth_error_response *r);
/** Free; NULL is fine. */
void berth_error_response_free(berth_error_response *r);

/** `{"repositories": [...]}` of GET /v2/_catalog. */
typedef struct berth_repository_list {
    berth_strlist repositories; /* "repositories", required (may be empty) */
    berth_extra extra;
} berth_repository_list;

/** Parse; as berth_error_response_parse(). Free with berth_repository_list_free(). */
int berth_repository_list_parse(berth_repository_list **out, const char *json, size_t len);
/** Repository names are not empty. @return 0 or BERTH_EINVALID */
int berth_repository_list_validate(const berth_repository_list *l);
/** Append the compact JSON. @return 0 or BERTH_ENOMEM */
int berth_repository_list_serialize(berth_buf *out, const berth_repository_list *l);
/** Free; NULL is fine. */
void berth_repository_list_free(berth_repository_list *l);

/** `{"name": ..., "tags": [...]}` of GET /v2/<name>/tags/list. */
typedef struct berth_tag_list {
    char *name;         /* "name", required */
    berth_strlist tags; /* "tags", required (`null` read as empty) */
    berth_extra extra;
} berth_tag_list;

/** Parse; as berth_error_response_parse(). Free with berth_tag_list_free(). */
int berth_tag_list_parse(berth_tag_list **out, const char *json, size_t len);
/** name is not empty. @return 0 or BERTH_EINVALID */
int berth_tag_list_validate(const berth_tag_list *l);
/** Append the compact JSON (`tags` always written, `[]` when empty). @return 0 or ENOMEM */
int berth_tag_list_serialize(berth_buf *out, const berth_tag_list *l);
/** Free; NULL is fine. */
void berth_tag_list_free(berth_tag_list *l);

#endif
