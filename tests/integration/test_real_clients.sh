#!/usr/bin/env bash
# storage: any (also run over S3 + PostgreSQL: the "scale" variant)
# Real clients against berth serve: skopeo (copy in both directions, --all, --format v2s2,
# inspect, list-tags, delete), podman (push, pull back, and what it pushed read by skopeo and
# umoci) and umoci (unpack straight from the store directory), and skopeo reading the store
# directory as an OCI layout.
. "$(dirname "$0")/lib.sh"
start_server
work=$BERTH_TMP/work
mkdir -p "$work"
reg=$HOSTPORT
store=$BERTH_TMP/root

# run DESCRIPTION COMMAND...: the command must succeed
run() {
    local what=$1
    shift
    if "$@" >"$work/out.log" 2>&1; then
        ok
    else
        fail "$what: $(tail -n 5 "$work/out.log")"
    fi
}
sk() { skopeo --insecure-policy "$@"; }
tls=(--src-tls-verify=false --dest-tls-verify=false)

# An image made by umoci: a real rootfs layer with a file in it.
umoci init --layout "$work/src" >/dev/null
umoci new --image "$work/src:v1" >/dev/null
umoci unpack --rootless --image "$work/src:v1" "$work/bundle" >/dev/null
echo "hello from berth" > "$work/bundle/rootfs/hello.txt"
umoci repack --image "$work/src:v1" "$work/bundle" >/dev/null
umoci config --image "$work/src:v1" --config.cmd /bin/true --os linux --architecture amd64 >/dev/null

run "skopeo copy oci: -> berth" sk copy -q "${tls[@]}" "oci:$work/src:v1" "docker://$reg/test/app:v1"
src_digest=$(sk inspect --raw "oci:$work/src:v1" | sha256sum | cut -d' ' -f1)
run "skopeo inspect sees the same manifest" \
    test "$(sk inspect --tls-verify=false --format '{{.Digest}}' "docker://$reg/test/app:v1")" = "sha256:$src_digest"
run "skopeo copy berth -> oci:" sk copy -q "${tls[@]}" "docker://$reg/test/app:v1" "oci:$work/back:v1"
run "round trip keeps the manifest bytes" \
    test "$(sk inspect --raw "oci:$work/back:v1" | sha256sum | cut -d' ' -f1)" = "$src_digest"
if [ "${BERTH_TEST_STORAGE:-}" = s3pg ]; then
    # over S3 + PostgreSQL the store is no directory: umoci unpacks what berth served
    run "umoci unpacks what berth served" \
        umoci unpack --rootless --image "$work/back:v1" "$work/unpacked"
else
    run "skopeo reads the store directory as an OCI layout" \
        test "$(sk inspect --raw "oci:$store/test/app:v1" | sha256sum | cut -d' ' -f1)" = "$src_digest"
    run "umoci unpacks straight from the store" \
        umoci unpack --rootless --image "$store/test/app:v1" "$work/unpacked"
fi
run "the unpacked rootfs has the file" grep -q "hello from berth" "$work/unpacked/rootfs/hello.txt"

# podman, with a storage of its own (vfs: no overlay mounts needed): the umoci image pulled from
# its layout, pushed to berth, removed, pulled back
pod=(podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver vfs
    --cgroup-manager cgroupfs --events-backend none)
# (podman names an image after its layout's path, which must be lower case: mktemp's is not)
podsrc=/tmp/berth-podman-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
trap 'rm -rf "$podsrc"; cleanup' EXIT
cp -r "$work/src" "$podsrc"
run "podman pulls the layout" "${pod[@]}" pull -q "oci:$podsrc:v1"
pod_id=$("${pod[@]}" images -q --no-trunc | head -n 1)
run "podman push -> berth" "${pod[@]}" push -q --tls-verify=false "$pod_id" "docker://$reg/test/podman:v1"
run "podman forgets the image" "${pod[@]}" rmi -a -f
run "podman pull <- berth" "${pod[@]}" pull -q --tls-verify=false "$reg/test/podman:v1"
run "podman pulled the image it pushed (same image id)" \
    test "$("${pod[@]}" images -q --no-trunc "$reg/test/podman:v1")" = "$pod_id"
run "skopeo copies what podman pushed to a layout" \
    sk copy -q "${tls[@]}" "docker://$reg/test/podman:v1" "oci:$work/pod:v1"
run "umoci unpacks what podman pushed" umoci unpack --rootless --image "$work/pod:v1" "$work/pod-unpacked"
run "podman's layer has the file" grep -q "hello from berth" "$work/pod-unpacked/rootfs/hello.txt"

run "skopeo copy --format v2s2" sk copy -q "${tls[@]}" --format v2s2 "oci:$work/src:v1" "docker://$reg/test/docker:v1"
run "the stored manifest is Docker schema2" \
    sh -c "skopeo inspect --tls-verify=false --raw docker://$reg/test/docker:v1 | grep -q 'application/vnd.docker.distribution.manifest.v2+json'"

# A two-platform index, built by hand from the umoci image's layer and config.
python3 - "$work" <<'PY'
import hashlib, json, os, sys
work = sys.argv[1]
src = os.path.join(work, "src")
idx = json.load(open(os.path.join(src, "index.json")))
mdesc = idx["manifests"][0]
blob = lambda d: open(os.path.join(src, "blobs", "sha256", d.split(":")[1]), "rb").read()
manifest = json.loads(blob(mdesc["digest"]))
config = json.loads(blob(manifest["config"]["digest"]))
def put(b):
    d = "sha256:" + hashlib.sha256(b).hexdigest()
    open(os.path.join(src, "blobs", "sha256", d[7:]), "wb").write(b)
    return d, len(b)
entries = []
for arch in ("amd64", "arm64"):
    config["architecture"] = arch
    cd, cs = put(json.dumps(config).encode())
    m = dict(manifest, config=dict(manifest["config"], digest=cd, size=cs))
    md, ms = put(json.dumps(m).encode())
    entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
                    "size": ms, "platform": {"architecture": arch, "os": "linux"}})
ib = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": entries}).encode()
d, s = put(ib)
idx["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d,
                         "size": s, "annotations": {"org.opencontainers.image.ref.name": "multi"}})
json.dump(idx, open(os.path.join(src, "index.json"), "w"))
PY
run "skopeo copy --all of a two-platform index" sk copy -q --all "${tls[@]}" "oci:$work/src:multi" "docker://$reg/test/multi:v1"
run "the index comes back whole" \
    test "$(sk inspect --tls-verify=false --raw "docker://$reg/test/multi:v1" | sha256sum | cut -d' ' -f1)" = \
         "$(sk inspect --raw "oci:$work/src:multi" | sha256sum | cut -d' ' -f1)"
run "skopeo copy --all back to a layout" sk copy -q --all "${tls[@]}" "docker://$reg/test/multi:v1" "oci:$work/multi:v1"

run "skopeo list-tags" sh -c "skopeo list-tags --tls-verify=false docker://$reg/test/app | grep -q '\"v1\"'"
sk copy -q "${tls[@]}" "docker://$reg/test/app:v1" "docker://$reg/test/app:v2" >/dev/null
run "skopeo delete" sk delete --tls-verify=false "docker://$reg/test/app:v2"
run "the deleted manifest is gone" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$reg/v2/test/app/manifests/v1")" = 404

server_alive && ok || fail "server died"
finish
