#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Real containerd through the pull-through cache, in containerd's mirror form: a containerd
# daemon of the test's own (private root, state and socket; needs root), `ctr images pull
# --hosts-dir DIR docker.io/library/hello:1.0` with a hosts.toml whose only reachable host is
# berth on loopback (containerd sends /v2/library/hello/...?ns=docker.io), and berth's docker.io
# upstream a Distribution 2.8 behind the tests' fault proxy. Covers: the pull succeeds and
# unpacks; the requests carried ns=docker.io; the image lands in berth's docker.io/library/hello;
# a second pull (after containerd forgot the image) with the upstream answering 503 is served
# from the cache; hosts.toml's override_path form (the prefix in the mirror's path, with ns) is
# the same repository.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

if [ "$(id -u)" -ne 0 ] || ! command -v containerd >/dev/null || ! command -v ctr >/dev/null ||
    ! command -v docker-registry >/dev/null; then
    echo "needs root, containerd, ctr and docker-registry"
    exit 77
fi
T=$BERTH_TMP

start_distribution_upstream dist
start_fault "$dist_PORT"
DIST=http://127.0.0.1:$dist_PORT
push_real_image "$DIST" library/hello2 2.0
HELLO2=$REAL_DIGEST
push_real_image "$DIST" library/hello 1.0
HELLO=$REAL_DIGEST
: >"$FAULT_LOG"

write_proxy_config "$T/cache.yaml" docker.io "http://127.0.0.1:$FAULT_PORT" 1s
start_server --config "$T/cache.yaml"

# ---- containerd: its own daemon, and hosts.toml naming berth as docker.io's mirror ----
C=$T/ctd
mkdir -p "$C" "$T/hosts/docker.io"
cat >"$C/config.toml" <<TOML
version = 2
root = "$C/root"
state = "$C/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$C/c.sock"
[ttrpc]
  address = "$C/c.sock.ttrpc"
TOML
containerd --config "$C/config.toml" >"$C/log" 2>&1 &
PROXY_PIDS+=($!)
for _ in $(seq 1 100); do
    ctr --address "$C/c.sock" version >/dev/null 2>&1 && break
    sleep 0.1
done
ctr --address "$C/c.sock" version >/dev/null 2>&1 || { echo "containerd did not start" >&2; tail "$C/log" >&2; exit 1; }
# the registry itself is unreachable (port 1): only the mirror can serve the pull
cat >"$T/hosts/docker.io/hosts.toml" <<TOML
server = "http://127.0.0.1:1"

[host."http://$HOSTPORT"]
  capabilities = ["pull", "resolve"]
TOML
CTR=(ctr --address "$C/c.sock" images pull --hosts-dir "$T/hosts" --snapshotter native)

if "${CTR[@]}" docker.io/library/hello:1.0 >"$T/pull.log" 2>&1; then
    ok
else
    fail "ctr pull through the cache: $(tail -n 5 "$T/pull.log")"
fi
check "containerd's image is the upstream's manifest" "$HELLO" \
    "$(ctr --address "$C/c.sock" images ls | awk '$1 == "docker.io/library/hello:1.0" { print $3 }')"
n=$(grep -c "ns=docker.io" "$BERTH_LOG" || true)
if [ "$n" -ge 3 ]; then ok; else fail "containerd's requests carried ns=docker.io: $n in the log"; fi
check "the layer was fetched upstream once" 1 \
    "$(upstream_requests "GET /v2/library/hello/blobs/$REAL_LAYER_DIGEST")"
req GET /v2/docker.io/library/hello/tags/list
check "cached as docker.io/library/hello" "['1.0']" "$(json 'j["tags"]')"

# ---- containerd forgets it; the upstream fails; the pull is served from the cache ----
ctr --address "$C/c.sock" images rm docker.io/library/hello:1.0 >/dev/null 2>&1
ctr --address "$C/c.sock" content rm "$HELLO" "$REAL_LAYER_DIGEST" "$REAL_CONFIG_DIGEST" \
    >/dev/null 2>&1
fault_mode 503
sleep 1.2 # past the 1s ttl: the tag is revalidated, the upstream fails, the cache answers
if "${CTR[@]}" docker.io/library/hello:1.0 >"$T/pull2.log" 2>&1; then
    ok
else
    fail "ctr pull with the upstream failing: $(tail -n 5 "$T/pull2.log")"
fi
check "the second pull revalidated the tag upstream (one more HEAD)" 2 "$(upstream_requests "HEAD /v2/library/hello/manifests/1.0")"
check "served stale, counted" 1 "$(metric berth_proxy_stale_serves_total docker.io)"

# ---- hosts.toml's override_path form: /v2/docker.io/library/hello2/...?ns=docker.io ----
fault_mode pass
mkdir -p "$T/hosts2/docker.io"
cat >"$T/hosts2/docker.io/hosts.toml" <<TOML
server = "http://127.0.0.1:1"

[host."http://$HOSTPORT/v2/docker.io"]
  capabilities = ["pull", "resolve"]
  override_path = true
TOML
if ctr --address "$C/c.sock" images pull --hosts-dir "$T/hosts2" --snapshotter native \
    docker.io/library/hello2:2.0 >"$T/pull3.log" 2>&1; then
    ok
else
    fail "ctr pull with override_path: $(tail -n 5 "$T/pull3.log")"
fi
if grep -q "^GET /v2/docker.io/library/hello2/manifests/$HELLO2?ns=docker.io 200" "$BERTH_LOG"; then
    ok
else
    fail "containerd asked for docker.io/library/hello2 with ns=docker.io"
fi
finish
