#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# podman through the pull-through cache in registries.conf's mirror form (CONTAINERS_REGISTRIES_CONF):
#   [[registry]] prefix = "upstream.test", location = "upstream.test"
#   [[registry.mirror]] location = "BERTH/upstream.test", insecure = true
# upstream.test does not resolve: only the mirror can serve `podman pull upstream.test/team/hello`,
# which asks berth for /v2/upstream.test/team/hello/... (the path form, no ns), and berth's
# upstream under the prefix upstream.test is a Distribution 2.8 behind the tests' fault proxy.
# Covers: the pull succeeds and unpacks (podman's own storage, vfs); the image is the upstream's;
# it is cached as upstream.test/team/hello; a pull by digest after podman forgot the image, with
# the upstream answering 503, is served from the cache without asking it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

if ! command -v podman >/dev/null || ! command -v docker-registry >/dev/null; then
    echo "podman or docker-registry missing"
    exit 77
fi
T=$BERTH_TMP

start_distribution_upstream dist
start_fault "$dist_PORT"
push_real_image "http://127.0.0.1:$dist_PORT" team/hello 1.0
: >"$FAULT_LOG"
write_proxy_config "$T/cache.yaml" upstream.test "http://127.0.0.1:$FAULT_PORT"
start_server --config "$T/cache.yaml"

cat >"$T/registries.conf" <<TOML
unqualified-search-registries = []

[[registry]]
prefix = "upstream.test"
location = "upstream.test"

[[registry.mirror]]
location = "$HOSTPORT/upstream.test"
insecure = true
TOML
export CONTAINERS_REGISTRIES_CONF=$T/registries.conf
pod=(podman --root "$T/podman/root" --runroot "$T/podman/run" --storage-driver vfs
    --cgroup-manager cgroupfs --events-backend none)

if "${pod[@]}" pull -q upstream.test/team/hello:1.0 >"$T/pull.log" 2>&1; then
    ok
else
    fail "podman pull through the registries.conf mirror: $(tail -n 5 "$T/pull.log")"
fi
check "podman's image is the upstream's manifest" "$REAL_DIGEST" \
    "$("${pod[@]}" image inspect --format '{{.Digest}}' upstream.test/team/hello:1.0 2>/dev/null)"
if grep -q "GET /v2/upstream.test/team/hello/blobs/$REAL_LAYER_DIGEST 200" "$BERTH_LOG"; then
    ok
else
    fail "podman asked berth for the layer under the mirror's path"
fi
check "the layer was fetched upstream once" 1 \
    "$(upstream_requests "GET /v2/team/hello/blobs/$REAL_LAYER_DIGEST")"
req GET /v2/upstream.test/team/hello/tags/list
check "cached as upstream.test/team/hello" "['1.0']" "$(json 'j["tags"]')"

# ---- podman forgets it; the upstream fails; by digest, the cache answers without asking ----
"${pod[@]}" rmi -a -f >/dev/null 2>&1
fault_mode 503
before=$(wc -l <"$FAULT_LOG")
if "${pod[@]}" pull -q "upstream.test/team/hello@$REAL_DIGEST" >"$T/pull2.log" 2>&1; then
    ok
else
    fail "podman pull by digest with the upstream failing: $(tail -n 5 "$T/pull2.log")"
fi
check "no upstream request for a cached digest" "$before" "$(wc -l <"$FAULT_LOG")"
finish
