# SPDX-License-Identifier: Apache-2.0
# Sourced by the bench scripts: seed_image URL REPO TAG — push a small image (a config, one
# 4 KiB layer, an OCI manifest) with curl; sets MANIFEST_DIGEST. Needs curl, sha256sum, head.
seed_image() {
    local url=$1 repo=$2 tag=$3 dir cfg layer m d
    dir=$(mktemp -d /tmp/berth-seed-XXXX)
    printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$dir/cfg"
    head -c 4096 /dev/urandom >"$dir/layer"
    for f in cfg layer; do
        d=sha256:$(sha256sum "$dir/$f" | cut -d' ' -f1)
        curl -sf -o /dev/null -X POST --data-binary "@$dir/$f" "${@:4}" \
            -H 'Content-Type: application/octet-stream' "$url/v2/$repo/blobs/uploads/?digest=$d"
        eval "$f=$d"
    done
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":4096}]}' \
        "$cfg" "$(stat -c %s "$dir/cfg")" "$layer" >"$dir/m"
    curl -sf -o /dev/null -X PUT --data-binary "@$dir/m" "${@:4}" \
        -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' "$url/v2/$repo/manifests/$tag"
    MANIFEST_DIGEST=sha256:$(sha256sum "$dir/m" | cut -d' ' -f1)
    rm -rf "$dir"
}
