/* SPDX-License-Identifier: Apache-2.0 */
/*
 * berth/client.h: a registry client (OCI distribution API over libcurl, with Basic and Docker
 * token authentication and bounded retries), an OCI image layout end, and the copy engine that
 * moves an image, an index or a subset of it between any two ends.
 */
#ifndef BERTH_CLIENT_H
#define BERTH_CLIENT_H

#include "buf.h"
#include "common.h"
#include "digest.h"
#include "document.h"

/** The Accept list sent for manifests: OCI manifest and index, Docker v2 manifest and list. */
#define BERTH_CLIENT_MANIFEST_ACCEPT                                                               \
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "        \
    "application/vnd.docker.distribution.manifest.v2+json, "                                       \
    "application/vnd.docker.distribution.manifest.list.v2+json"

/** Largest manifest the client accepts (4 MiB). */
#define BERTH_CLIENT_MANIFEST_MAX (4u * 1024u * 1024u)

/** berth_client_options.tls_verify: verify (the default), or not. */
#define BERTH_TLS_VERIFY_DEFAULT 0 /* verify; plain HTTP fallback for loopback and insecure */
#define BERTH_TLS_VERIFY_ON      1 /* --tls-verify=true: HTTPS verified, never plain HTTP */
#define BERTH_TLS_VERIFY_OFF     2 /* --tls-verify=false: no verification, plain HTTP fallback */

/** Options of a client; every field may be left zero. Strings are copied. */
typedef struct berth_client_options {
    const char *username; /* Basic credentials for every registry; NULL: the auth files */
    const char *password;
    const char *docker_config; /* an auth file read alone (--authfile); NULL: REGISTRY_AUTH_FILE
                                  or the list of berth_auth_lookup() */
    bool plain_http;           /* plain HTTP for every registry, without trying HTTPS */
    unsigned retries;          /* attempts after a connection error; 0 means 4 */
    unsigned retry_delay_ms;   /* first backoff delay, doubled each time; 0 means 200 */
    bool verbose;              /* log each request to stderr */
    int tls_verify;            /* BERTH_TLS_VERIFY_DEFAULT, _ON or _OFF */
    const char *cert_dir;      /* CAs (*.crt) and a client pair (*.cert, *.key) for every registry;
                                  NULL: the certs.d directory of each registry */
    bool no_retries;           /* one attempt per request: no retry after a connection error,
                                  a 5xx or a 429 (a cache in front of an upstream decides) */
    unsigned timeout_s;        /* a request that connects no faster, or receives no byte for
                                  this long, fails; 0: 15 s to connect, 60 s without a byte */
} berth_client_options;

/** A registry client: one connection cache and token cache, usable from several threads. */
typedef struct berth_client berth_client;

/**
 * Create a client. @param out receives a client the caller frees with berth_client_free()
 * @return 0, BERTH_ENOMEM, BERTH_ERROR (libcurl could not start)
 */
int berth_client_new(berth_client **out, const berth_client_options *opts);

/** Free a client; NULL is fine. */
void berth_client_free(berth_client *c);

/** Make every transfer of every client in the process stop (async-signal-safe, for a SIGINT
 *  handler): a request under way fails within about a second with "interrupted", none starts
 *  after, except the DELETEs that cancel the upload sessions a failed copy opened (10 s each). */
void berth_client_interrupt(void);

/** True once berth_client_interrupt() was called. */
bool berth_client_interrupted(void);

/**
 * The Retry-After of the last response to a request this thread made (berth_client_*), in
 * seconds (the delay form; an HTTP date counts as 60), 0 when it had none.
 */
uint64_t berth_client_retry_after(void);

/**
 * Inside a sink (berth_client_sink_cb): the Content-Length of the response whose body it
 * receives, -1 when the response has none (chunked). Per thread.
 */
int64_t berth_client_content_length(void);

/**
 * The version of libcurl the client runs on ("7.88.1"), for `berth version`.
 * @return a static string; NULL when the client is not available (the berth program could not
 *         load berth-remote.so: berth_error_last() says why)
 */
const char *berth_client_transport_version(void);

/**
 * GET /v2/ of `registry` ("host[:port]"), authenticating when challenged.
 * @return 0; BERTH_EUNAUTHORIZED; BERTH_ENETWORK; BERTH_ERROR for another status
 */
int berth_client_ping(berth_client *c, const char *registry);

/**
 * Fetch a manifest by tag or digest with the manifest Accept list. When `ref` is a digest the
 * bytes are verified against it.
 * @param body          receives the bytes (appended; bounded by BERTH_CLIENT_MANIFEST_MAX)
 * @param content_type  when not NULL, receives the Content-Type (free()), NULL when none
 * @param digest_out    when not NULL, receives the digest of the bytes
 * @return 0; BERTH_ENOTFOUND; BERTH_EMISMATCH; BERTH_EUNAUTHORIZED; BERTH_EDENIED;
 *         BERTH_ENETWORK; BERTH_ETOOBIG; BERTH_ERROR
 */
int berth_client_get_manifest(berth_client *c, const char *registry, const char *repo,
                              const char *ref, berth_buf *body, char **content_type,
                              berth_digest *digest_out);

/**
 * HEAD a manifest. @param digest_out when not NULL receives Docker-Content-Digest (alg NONE
 * when the registry sent none) @return 0, BERTH_ENOTFOUND, or as berth_client_get_manifest()
 */
int berth_client_head_manifest(berth_client *c, const char *registry, const char *repo,
                               const char *ref, berth_digest *digest_out, uint64_t *size_out);

/** Receives the bytes of a blob in order. @return 0 to go on, non-zero to abort */
typedef int (*berth_client_sink_cb)(const void *data, size_t len, void *payload);

/**
 * Stream a blob to `sink`, verifying its size (when `size` >= 0) and digest on the way. The
 * sink may have seen bytes of a blob that then fails the check; the caller discards them.
 * @return 0; BERTH_ENOTFOUND; BERTH_EMISMATCH; BERTH_ENETWORK; BERTH_ERROR (also when the sink
 *         aborted)
 */
int berth_client_get_blob(berth_client *c, const char *registry, const char *repo,
                          const berth_digest *digest, int64_t size, berth_client_sink_cb sink,
                          void *payload);

/**
 * berth_client_get_blob() without hashing the bytes (the size is still checked): only for a
 * caller that verifies the digest itself as they pass (a store's upload session hashes them;
 * see berth_upload_digest()), so they are not hashed twice. A 0 here says nothing about the
 * digest. @return as berth_client_get_blob(), never BERTH_EMISMATCH for the digest
 */
int berth_client_get_blob_unhashed(berth_client *c, const char *registry, const char *repo,
                                   const berth_digest *digest, int64_t size,
                                   berth_client_sink_cb sink, void *payload);

/** HEAD a blob. @return 0 (size in *size_out when not NULL), BERTH_ENOTFOUND, or an error */
int berth_client_head_blob(berth_client *c, const char *registry, const char *repo,
                           const berth_digest *digest, uint64_t *size_out);

/**
 * Push the blob held in the file at `path` (its digest and size already known). When
 * `mount_from` is not NULL, a cross-repository mount from that repository of the same registry
 * is tried first. Small blobs go up in one PUT, large ones in PATCH chunks.
 * @return 0; BERTH_EUNAUTHORIZED; BERTH_EDENIED; BERTH_ENETWORK; BERTH_EIO; BERTH_ERROR
 */
int berth_client_push_blob_file(berth_client *c, const char *registry, const char *repo,
                                const berth_digest *digest, uint64_t size, const char *path,
                                const char *mount_from);

/**
 * Push a blob from memory, as berth_client_push_blob_file().
 */
int berth_client_push_blob_mem(berth_client *c, const char *registry, const char *repo,
                               const berth_digest *digest, const void *data, size_t len);

/**
 * PUT a manifest under `ref` (a tag or a digest) with `media_type` as Content-Type.
 * @return 0; BERTH_EINVALID (the registry refused it, message says why); BERTH_ENOTFOUND
 *         (blobs it references are missing); BERTH_EUNAUTHORIZED; BERTH_EDENIED; BERTH_ERROR
 */
int berth_client_push_manifest(berth_client *c, const char *registry, const char *repo,
                               const char *ref, const char *media_type, const void *data,
                               size_t len);

/** Receives one name (a tag, a repository). @return 0 to go on, non-zero to stop */
typedef int (*berth_client_name_cb)(const char *name, void *payload);

/** List the tags of a repository, following Link pagination; a name the registry sends that
 * is not a valid tag is skipped. @return 0, BERTH_ENOTFOUND, ... */
int berth_client_list_tags(berth_client *c, const char *registry, const char *repo,
                           berth_client_name_cb cb, void *payload);

/** List the repositories of a registry (/v2/_catalog), following Link pagination; a name that
 * is not a valid repository name is skipped. */
int berth_client_catalog(berth_client *c, const char *registry, berth_client_name_cb cb,
                         void *payload);

/** DELETE a manifest by digest, or a tag. @return 0, BERTH_ENOTFOUND, BERTH_EUNSUPPORTED, ... */
int berth_client_delete_manifest(berth_client *c, const char *registry, const char *repo,
                                 const char *ref);

/**
 * GET the referrers index of `digest` (an OCI index, appended to `body`), following Link
 * rel="next" page by page: the descriptors of every page make one index.
 * @return 0; BERTH_EUNSUPPORTED when the registry has no referrers API (404 on it)
 */
int berth_client_referrers(berth_client *c, const char *registry, const char *repo,
                           const berth_digest *digest, berth_buf *body);

/* ---- parsers of the protocol, public for their tests ---- */

/** A parsed `WWW-Authenticate` challenge. Strings are owned; free with _dispose(). */
typedef struct berth_auth_challenge {
    char *scheme; /* "Bearer", "Basic" */
    char *realm;
    char *service; /* NULL when absent */
    char *scope;   /* NULL when absent */
} berth_auth_challenge;

/**
 * Parse the value of a WWW-Authenticate header: `Scheme k="v", k=v, ...` (quoted strings with
 * backslash escapes, token values). Only the first challenge is read.
 * @return 0, BERTH_EINVALID (message set), BERTH_ENOMEM
 */
int berth_auth_challenge_parse(berth_auth_challenge *out, const char *value);

/** Free the strings of a challenge and zero it. */
void berth_auth_challenge_dispose(berth_auth_challenge *ch);

/**
 * Find the `rel="next"` target of a Link header value (`<url>; rel="next"`, several links may
 * be separated by commas). @param out receives the URL text (appended)
 * @return 0, BERTH_ENOTFOUND when no next link, BERTH_EINVALID, BERTH_ENOMEM
 */
int berth_link_next_parse(berth_buf *out, const char *value);

/**
 * Read the Basic credentials for `registry` from the JSON text of a docker config.json
 * (`auths[registry].auth`, base64 of `user:password`; also `username`/`password` members).
 * For docker.io the keys `https://index.docker.io/v1/` and `index.docker.io` match too.
 * @param user  receives the user name (free())
 * @param pass  receives the password (free())
 * @return 0; BERTH_ENOTFOUND (no entry); BERTH_EINVALID (bad JSON or base64); BERTH_ENOMEM
 */
int berth_docker_config_auth(char **user, char **pass, const char *json, size_t len,
                             const char *registry);

/* ---- credentials: auth files and credential helpers, as podman and docker keep them ---- */

/**
 * Find the credentials of `registry` ("host[:port]") as podman and skopeo do: with `authfile`
 * (or else $REGISTRY_AUTH_FILE) set, in that file alone; else in
 * $XDG_RUNTIME_DIR/containers/auth.json, ${XDG_CONFIG_HOME:-~/.config}/containers/auth.json,
 * then $DOCKER_CONFIG/config.json (or, without DOCKER_CONFIG, ~/.docker/config.json). In each
 * file, `credHelpers[registry]` first (the program docker-credential-NAME), then `auths`, then
 * `credsStore`; the first file that knows the registry answers.
 * @param user, pass  receive the credentials (free())
 * @param source      when not NULL, receives where they came from (a path, or
 *                    "docker-credential-NAME") (free())
 * @return 0; BERTH_ENOTFOUND (nowhere); BERTH_EINVALID (a file or a helper's answer is
 *         unreadable: message names it); BERTH_ENOMEM
 */
int berth_auth_lookup(char **user, char **pass, char **source, const char *authfile,
                      const char *registry);

/**
 * The auth file `berth login` writes: `authfile`, else $REGISTRY_AUTH_FILE, else
 * $XDG_RUNTIME_DIR/containers/auth.json when XDG_RUNTIME_DIR is set, else
 * ${XDG_CONFIG_HOME:-$HOME/.config}/containers/auth.json. @param out receives the path
 * (appended) @return 0, BERTH_ENOTFOUND (no HOME either), BERTH_ENOMEM
 */
int berth_auth_file_path(berth_buf *out, const char *authfile);

/**
 * Set `auths[registry]` of the auth file at `path` to `{"auth": base64(user:password)}`, as
 * podman login does, keeping every other member; with `user` NULL, remove the entry (with
 * `registry` NULL as well: every entry of `auths`). Missing directories are made (0700); the
 * file is written to a temporary file of mode 0600, fsynced and renamed over the old one,
 * all under an flock of its directory (two berth login/logout at once lose nothing); a
 * symbolic link at `path` stays, the file it points to is replaced.
 * @return 0; BERTH_ENOTFOUND (removing an entry that is not there); BERTH_EINVALID (the file
 *         is not a JSON object); BERTH_EIO; BERTH_ENOMEM
 */
int berth_auth_file_update(const char *path, const char *registry, const char *user,
                           const char *pass);

/* ---- documents and OCI image layouts, as the copy engine reads them ---- */

/**
 * Parse and validate a fetched manifest, index, Docker manifest or manifest list: as
 * berth_document_inspect(), except that a generic `content_type` (empty, application/json,
 * application/octet-stream, text/plain, as registries and files give) is taken as none, so the
 * document's own mediaType or shape decides. This is how berth_copy() reads what it copies.
 * @param out  receives the info, freed with berth_document_info_free()
 * @return as berth_document_inspect(): 0, BERTH_EINVALID naming the field, BERTH_EUNSUPPORTED,
 *         BERTH_ENOMEM
 */
int berth_client_inspect_manifest(berth_document_info **out, const char *content_type,
                                  const char *data, size_t len);

/**
 * True when the platform of descriptor `d` matches `platform`, "os/arch[/variant]" (without a
 * variant, any variant matches), as berth_copy_options.platform picks an index's child.
 * False when `d` has no platform.
 */
bool berth_client_platform_matches(const berth_descriptor *d, const char *platform);

/**
 * Read the manifest that `tag` names in the OCI image layout at `path` (the index.json entry
 * whose org.opencontainers.image.ref.name is `tag`; with `tag` NULL, the only entry), verified
 * against the entry's digest and size.
 * @param body        receives the bytes (appended)
 * @param media_type  receives the entry's mediaType (free()), NULL when it has none
 * @param digest_out  when not NULL, receives the manifest's digest
 * @return 0; BERTH_ENOTFOUND (not a layout, no such tag, no tag given and several entries);
 *         BERTH_EINVALID (index.json); BERTH_EMISMATCH; BERTH_EIO
 */
int berth_layout_get_manifest(const char *path, const char *tag, berth_buf *body, char **media_type,
                              berth_digest *digest_out);

/**
 * Read blob `d` of the OCI image layout at `path` (`blobs/<alg>/<hex>`) into `body` (appended),
 * verified against `d`. @return 0, BERTH_ENOTFOUND, BERTH_EMISMATCH, BERTH_ETOOBIG (the
 * ceiling of `body`), BERTH_EIO
 */
int berth_layout_read_blob(const char *path, const berth_digest *d, berth_buf *body);

/**
 * List the names (org.opencontainers.image.ref.name, usually tags) of the images in the
 * index.json of the OCI image layout at `path`, in its order; unnamed entries are left out.
 * @param cb  called with each name; non-zero stops the listing
 * @return 0; BERTH_ENOTFOUND (not a layout); BERTH_EINVALID (index.json); BERTH_EIO
 */
int berth_layout_list_tags(const char *path, berth_client_name_cb cb, void *payload);

/* ---- ends and copy ---- */

/** The transports a reference can name (berth_transport_of()). */
typedef enum berth_transport {
    BERTH_TRANSPORT_REGISTRY = 1, /* HOST[:PORT]/NAME..., or docker://HOST[:PORT]/NAME... */
    BERTH_TRANSPORT_LAYOUT = 2    /* oci:PATH[:TAG] */
} berth_transport;

/**
 * Tell which transport a reference as people type it names, with skopeo's prefixes:
 * `docker://REF` and a plain `REF` are a registry, `oci:PATH[:TAG]` an OCI image layout.
 * Other transports of skopeo (oci-archive:, docker-archive:, docker-daemon:,
 * containers-storage:, dir:, ...) are refused by name; `HOST:PORT/...` is a registry.
 * @param rest  when not NULL, receives the text after `docker://` (else `text` itself)
 * @return BERTH_TRANSPORT_REGISTRY, BERTH_TRANSPORT_LAYOUT; BERTH_EUNSUPPORTED (another
 *         transport, message names it); BERTH_EINVALID (empty, `docker:` without `//`)
 */
int berth_transport_of(const char *text, const char **rest);

/** Options of berth_copy(). */
typedef struct berth_copy_options {
    bool all;             /* copy every child of an index (the default too, see berth_copy) */
    const char *platform; /* "os/arch[/variant]": copy only that child of an index */
    bool referrers;       /* also copy the referrers of each copied manifest */
    unsigned jobs;        /* parallel blob transfers; 0 means 4 */
    /** Progress of one blob: called with done == 0 at start and with total at the end. */
    void (*progress)(const char *digest, uint64_t done, uint64_t total, bool finished,
                     void *payload);
    void *progress_payload;
    /** A line of verbose output ("skipped", "pushed", ...), or NULL to say nothing. */
    void (*note)(const char *line, void *payload);
    void *note_payload;
} berth_copy_options;

/**
 * Copy what `src` names to `dst`. Each end is a registry reference `HOST[:PORT]/NAME[:TAG]`
 * (`[@DIGEST]` for the source; `docker://` before it is accepted) or an OCI layout
 * `oci:PATH[:TAG]`. A destination without a tag takes the source's (for a layout source
 * without one, the name of its only named image); a registry destination gets `latest` when
 * the source has none (named by digest). Each digest is copied once per copy. A manifest
 * with a subject written to a registry without the referrers API is also listed in the
 * subject's referrers fallback tag `<alg>-<hex>`. An index is copied whole by
 * default (as crane does; with `all` as well); with `platform`, only the matching child is
 * copied and the destination tag points at that image manifest. Blobs present at the
 * destination are skipped; all digests are verified; a manifest is written only after all it
 * references is present, and the tag last.
 * @param digest_out  when not NULL, receives the digest of the top manifest written
 * @return 0; BERTH_EINVALID (bad reference, no tag for the destination); BERTH_ENOTFOUND;
 *         BERTH_EMISMATCH; BERTH_ENETWORK; ... with a message naming what failed
 */
int berth_copy(berth_client *c, const char *src, const char *dst, const berth_copy_options *opts,
               berth_digest *digest_out);

#endif
