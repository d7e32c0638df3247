/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pull-through cache of `berth serve` (proxy.c): repositories under the prefix of a
 * configured upstream (proxy.upstreams) are filled from that upstream on pull and served from
 * the store. Without upstreams none of this runs (srv->proxy is NULL).
 */
#ifndef BERTH_SERVER_PROXY_H
#define BERTH_SERVER_PROXY_H

#include <berth/digest.h>

#include <microhttpd.h>
#include <stdbool.h>

struct berth_server;
struct berth__req;

/** The cache of one server: its upstreams, their clients and the fetches in flight. */
typedef struct berth__proxy berth__proxy;

/**
 * Build the cache from srv->cfg's proxy.upstreams into srv->proxy (left NULL without
 * upstreams): one registry client per upstream, with the credentials of its auth file, and the
 * per-upstream metrics. @return 0, BERTH_EINVALID (an auth file that cannot be read; the
 * message names the key), BERTH_ENOMEM, BERTH_ERROR (libcurl)
 */
int berth__proxy_start(struct berth_server *srv);

/** Free srv->proxy (NULL is fine), once no request runs. */
void berth__proxy_free(struct berth_server *srv);

/**
 * containerd's mirror form (hosts.toml): a request under /v2/NAME/ with `?ns=REGISTRY`, where an
 * upstream answers to REGISTRY (its prefix, the host[:port] of its url, or for Docker Hub
 * docker.io, index.docker.io, registry-1.docker.io), is for the local repository PREFIX/NAME:
 * r->name is rewritten (left as it is when already under that prefix). Runs before
 * authorization, which sees the local path. `ns` is only matched, never used as an address.
 * No `ns` (or an empty one), or a route without a name: nothing changes.
 * @return 0, BERTH_ENOTFOUND (no upstream answers to `ns`: answered 404 NAME_UNKNOWN, so
 *         that containerd tries its next host) or BERTH_EINVALID (PREFIX/NAME too long: 400
 *         NAME_INVALID)
 */
int berth__proxy_ns(struct berth__req *r);

/**
 * Before a manifest GET or HEAD (r->name, r->ref): when an upstream claims the name, make the
 * store hold what the request names: by digest, fetched unless present; by tag, as cached while
 * fresh, else revalidated with one HEAD (a changed digest fetches the manifest), served stale
 * when the upstream fails. Does nothing (0) for names no upstream claims.
 * @return 0 (answer from the store), or the code to answer, with its message:
 *         BERTH_ENOTFOUND (upstream has no such thing), BERTH_ENETWORK (upstream failed and
 *         nothing is cached; r->retry_after set after a 429), or a store error
 */
int berth__proxy_manifest(struct berth__req *r);

/**
 * As berth__proxy_manifest(), for a blob GET or HEAD of `digest`. A blob not in the store is
 * fetched once (a thread of its own) however many requests ask. A GET of the whole blob while
 * the fetch runs gets `*resp_out`: a response streaming the bytes as they arrive (`*size_out`
 * of them: the upstream's Content-Length), the last byte only once all matched the digest,
 * else ended with an error before it (send it with the blob's headers; libmicrohttpd frees
 * it). A HEAD, a Range request, or a fetch already finished: answered from the store (0,
 * `*resp_out` NULL) or with the error. Never served stale: a digest is either cached or
 * fetched and verified.
 */
int berth__proxy_blob(struct berth__req *r, const berth_digest *digest,
                      struct MHD_Response **resp_out, uint64_t *size_out);

/**
 * Before a referrers GET or HEAD (r->name) of `subject`: when an upstream claims the name and
 * the subject's referrers were not fetched within the ttl, fetch those not cached yet (the
 * referrers API, else the referrers tag schema), one request at a time per subject. Whatever
 * happens the answer comes from the store (an upstream failure is logged and counted as a
 * stale serve).
 */
void berth__proxy_referrers(struct berth__req *r, const berth_digest *subject);

/**
 * For each upstream with a max_size, before garbage collection: when the bytes cached under
 * its prefix (manifests and the blobs they reference, each blob once) exceed it, delete cached
 * manifests, least recently pulled first, until they fit; the collection that follows frees
 * the blobs no longer needed. Failures are logged.
 */
void berth__proxy_evict(struct berth_server *srv);

/**
 * Refuse a request that would write under an upstream's prefix (manifest PUT or DELETE, blob
 * DELETE, uploads): 405 UNSUPPORTED, Allow: GET, HEAD. @return true when refused (`*ret` holds
 * the MHD result), false for everything else
 */
bool berth__proxy_refuse(struct berth__req *r, enum MHD_Result *ret);

#endif
