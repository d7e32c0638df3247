/* SPDX-License-Identifier: Apache-2.0 */
/* berth/reference.h: repository names, tags, image references and OCI-layout references. */
#ifndef BERTH_REFERENCE_H
#define BERTH_REFERENCE_H

#include "buf.h"
#include "common.h"
#include "digest.h"

/** Longest repository name (and longest `registry/name` of a reference), in bytes. */
#define BERTH_NAME_MAX 255
/** Longest tag, in bytes. */
#define BERTH_TAG_MAX 128
/** The registry of a reference that names none (docker's normalisation). */
#define BERTH_DEFAULT_REGISTRY "docker.io"
/** The tag of a reference that names neither a tag nor a digest. */
#define BERTH_DEFAULT_TAG "latest"

/**
 * Check a repository name against the distribution spec's grammar
 * `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`,
 * at most BERTH_NAME_MAX bytes.
 * @param name  a NUL-terminated string (NULL is invalid)
 * @return 0, or BERTH_EINVALID with a message saying what is wrong and where
 */
int berth_name_validate(const char *name);

/** As berth_name_validate(), for the `len` bytes at `name` (need not be NUL-terminated). */
int berth_name_validate_len(const char *name, size_t len);

/**
 * Check a tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
 * @return 0, or BERTH_EINVALID with a message
 */
int berth_tag_validate(const char *tag);

/** As berth_tag_validate(), for the `len` bytes at `tag`. */
int berth_tag_validate_len(const char *tag, size_t len);

/**
 * A parsed, normalised registry reference `HOST[:PORT]/NAME[:TAG][@DIGEST]`. All strings are
 * owned by the struct and freed by berth_reference_free().
 */
typedef struct berth_reference {
    char *registry;      /* "docker.io", "127.0.0.1:5000", "[::1]:5000", "localhost" */
    char *repository;    /* "library/alpine", "team/app"; always a valid name */
    char *tag;           /* NULL when the reference has a digest and no tag */
    bool has_digest;     /* true when `digest` is set */
    berth_digest digest; /* the pinned digest when has_digest */
} berth_reference;

/**
 * Parse an image reference with docker's normalisation: the first `/`-separated component is
 * a registry only when it contains '.' or ':' or is `localhost`; otherwise the registry is
 * docker.io (and `index.docker.io` becomes docker.io). On docker.io a single-component name gets
 * `library/`. With neither tag nor digest, the tag is `latest`; `name:tag@digest` keeps both. A
 * bare 64-digit hex string is refused (docker reads it as an image id).
 * @param out  receives a reference the caller frees with berth_reference_free()
 * @param s    the text, NUL-terminated
 * @return 0; BERTH_EINVALID (message set) for text that is not a reference; BERTH_EUNSUPPORTED
 *         for a well-formed digest of an algorithm berth does not support; BERTH_ENOMEM
 */
int berth_reference_parse(berth_reference **out, const char *s);

/**
 * Append the canonical text of a reference, `registry/repository[:tag][@digest]`, to `out`.
 * Parsing that text gives the same reference.
 * @return 0, BERTH_ENOMEM or BERTH_ETOOBIG (from the buffer)
 */
int berth_reference_format(berth_buf *out, const berth_reference *r);

/** Free a reference from berth_reference_parse(); NULL is fine. */
void berth_reference_free(berth_reference *r);

/**
 * True when the reference's registry is a loopback host: `localhost`, `127.0.0.1` or `[::1]`,
 * with any port. Such registries are spoken to over plain HTTP.
 */
bool berth_reference_is_loopback_registry(const berth_reference *r);

/**
 * Check an image-layout reference name (the `org.opencontainers.image.ref.name` annotation) by
 * the grammar the image spec suggests and skopeo enforces: components of `[A-Za-z0-9]+` joined
 * by one of `-._:@+` or by `--`, components joined by '/'. Most tags are such names (not those
 * with a leading, trailing or doubled separator, like "_x" or "a..b"); so is "example.com/app:v1".
 * @return 0, or BERTH_EINVALID with a message
 */
int berth_ref_name_validate(const char *name);

/** An OCI image layout reference `oci:PATH[:NAME]` as skopeo writes it; strings are owned. */
typedef struct berth_layout_ref {
    char *path; /* the layout directory; never empty, never contains ':' */
    char *tag;  /* the reference name (usually a tag), NULL when none was given */
} berth_layout_ref;

/** True when `s` starts with the `oci:` transport prefix (and so is a layout reference). */
bool berth_layout_ref_is(const char *s);

/**
 * Parse `oci:PATH[:NAME]`. As in skopeo, the path may not contain ':', so the text is split at
 * its first ':' after the prefix; what follows, when not empty, must pass
 * berth_ref_name_validate() (so `oci:dir:v1` and `oci:dir:example.com/app:v1` are accepted);
 * `oci:dir:` is `oci:dir`. Unlike skopeo, an empty path (skopeo's current directory) is refused.
 * @param out  receives a reference the caller frees with berth_layout_ref_free()
 * @return 0; BERTH_EINVALID (no `oci:` prefix, empty path, invalid name); BERTH_ENOMEM
 */
int berth_layout_ref_parse(berth_layout_ref **out, const char *s);

/** Append `oci:PATH[:NAME]` to `out`. @return 0, BERTH_ENOMEM or BERTH_ETOOBIG */
int berth_layout_ref_format(berth_buf *out, const berth_layout_ref *r);

/** Free a layout reference; NULL is fine. */
void berth_layout_ref_free(berth_layout_ref *r);

#endif
