/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: repository names, tags, image references and oci: layout references. Whatever
 * parses must satisfy the type's invariants, format to text that parses back to the same value,
 * and (for layout references) format to exactly the input.
 */
#include <berth/reference.h>

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static void check_reference(const char *s)
{
    berth_reference *r = NULL, *again = NULL;
    berth_buf b = BERTH_BUF_INIT;

    if (berth_reference_parse(&r, s) != 0) {
        return;
    }
    if (!r->registry || !r->registry[0] || berth_name_validate(r->repository) != 0 ||
        (r->tag && berth_tag_validate(r->tag) != 0) || (!r->tag && !r->has_digest)) {
        abort();
    }
    if (berth_reference_format(&b, r) != 0 || berth_reference_parse(&again, b.ptr) != 0) {
        abort();
    }
    if (!same_str(r->registry, again->registry) || !same_str(r->repository, again->repository) ||
        !same_str(r->tag, again->tag) || r->has_digest != again->has_digest ||
        (r->has_digest && !berth_digest_equal(&r->digest, &again->digest)) ||
        berth_reference_is_loopback_registry(r) != berth_reference_is_loopback_registry(again)) {
        abort();
    }
    berth_reference_free(again);
    berth_reference_free(r);
    berth_buf_dispose(&b);
}

static void check_layout_ref(const char *s)
{
    berth_layout_ref *r = NULL, *again = NULL;
    berth_buf b = BERTH_BUF_INIT;
    size_t len = strlen(s);

    if (berth_layout_ref_parse(&r, s) != 0) {
        return;
    }
    if (!berth_layout_ref_is(s) || !r->path[0] || strchr(r->path, ':') ||
        (r->tag && berth_ref_name_validate(r->tag) != 0)) {
        abort();
    }
    /* the text formats back exactly, but for a trailing ':' that names nothing */
    if (berth_layout_ref_format(&b, r) != 0) {
        abort();
    }
    if (s[len - 1] == ':' ? (b.len != len - 1 || memcmp(b.ptr, s, len - 1) != 0)
                          : strcmp(b.ptr, s) != 0) {
        abort();
    }
    if (berth_layout_ref_parse(&again, b.ptr) != 0 || !same_str(again->path, r->path) ||
        !same_str(again->tag, r->tag)) {
        abort();
    }
    berth_layout_ref_free(again);
    berth_layout_ref_free(r);
    berth_buf_dispose(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    bool has_nul;

    if (!s) {
        return 0;
    }
    memcpy(s, data, size);
    s[size] = '\0';
    has_nul = strlen(s) != size;

    /* the length-taking validators agree with the string ones on NUL-free input */
    int name_rc = berth_name_validate_len(s, size);
    int tag_rc = berth_tag_validate_len(s, size);
    if (!has_nul && (name_rc != berth_name_validate(s) || tag_rc != berth_tag_validate(s))) {
        abort();
    }
    /* a valid ref.name is exactly the name part of a layout reference */
    if (!has_nul && berth_ref_name_validate(s) == 0) {
        berth_buf text = BERTH_BUF_INIT;
        berth_layout_ref *lr = NULL;
        if (berth_buf_printf(&text, "oci:dir:%s", s) == 0) {
            if (berth_layout_ref_parse(&lr, text.ptr) != 0 || !same_str(lr->tag, s)) {
                abort();
            }
        }
        berth_layout_ref_free(lr);
        berth_buf_dispose(&text);
    }
    check_reference(s);
    check_layout_ref(s);
    free(s);
    return 0;
}
