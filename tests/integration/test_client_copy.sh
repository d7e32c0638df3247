#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: any (also run over S3 + PostgreSQL: the "scale" variant)
# berth copy/inspect/tags/catalog/delete in every direction: OCI layout -> Distribution ->
# berth serve -> OCI layout, registry -> registry (with cross-repository mount), multi-arch
# indexes whole and by platform, a chunked large layer, skipping of present blobs; results
# checked with skopeo and by digest.
. "$(dirname "$0")/client_lib.sh"

start_distribution DIST
D=127.0.0.1:$DIST_PORT
if start_berth BS; then
    B=127.0.0.1:$BS_PORT
    BERTH_UP=1
else
    BERTH_UP=0
    echo "note: berth serve did not start; its legs run against a second Distribution" >&2
    start_distribution DIST2
    B=127.0.0.1:$DIST2_PORT
fi

# layout -> Distribution
want=$(make_layout "$WORK/l1" v1)
got=$("$BERTH" copy "oci:$WORK/l1:v1" "$D/team/app:v1")
expect_eq "$got" "$want" "copy prints the digest"
expect_eq "$(manifest_digest "$D" team/app v1)" "$want" "layout->distribution digest"
skopeo inspect --tls-verify=false "docker://$D/team/app:v1" >"$WORK/insp.json" ||
    fail "skopeo cannot read what berth pushed"
grep -q '"Architecture": "amd64"' "$WORK/insp.json" || fail "skopeo inspect content"

# the same again: every blob is skipped
"$BERTH" copy --verbose "oci:$WORK/l1:v1" "$D/team/app:v1" >/dev/null 2>"$WORK/again.log"
[ "$(grep -c 'already present' "$WORK/again.log")" -eq 3 ] || fail "present blobs not skipped"
! grep -q 'blobs/uploads' "$WORK/again.log" || fail "a present blob was uploaded again"

# Distribution -> berth serve (or the second registry)
"$BERTH" copy --quiet "$D/team/app:v1" "$B/mirror/app:v1"
expect_eq "$(manifest_digest "$B" mirror/app v1)" "$want" "distribution->berth digest"

# small blobs go up in one monolithic POST ?digest= where the registry takes it (berth serve);
# Distribution answers 202 and gets a PUT after that
if [ "$BERTH_UP" = 1 ]; then
    "$BERTH" copy --verbose "oci:$WORK/l1:v1" "$B/mono/app:v1" >/dev/null 2>"$WORK/mono.log"
    [ "$(grep -c '^berth: POST .*?digest=' "$WORK/mono.log")" -eq 3 ] || fail "no monolithic POST"
    ! grep -q '^berth: PUT .*/blobs/uploads/' "$WORK/mono.log" || fail "monolithic POST not used"
fi

# berth serve -> layout, checked with skopeo and by content
"$BERTH" copy --quiet "$B/mirror/app:v1" "oci:$WORK/out1:v1"
skopeo inspect "oci:$WORK/out1:v1" >/dev/null || fail "skopeo cannot read the layout"
expect_eq "$(skopeo inspect --raw "oci:$WORK/out1:v1" | sha256sum | cut -d' ' -f1)" \
    "${want#sha256:}" "berth->layout manifest bytes"
for f in "$WORK"/out1/blobs/sha256/*; do
    expect_eq "$(sha256sum "$f" | cut -d' ' -f1)" "$(basename "$f")" "layout blob $f"
done
[ -z "$(find "$WORK/out1" -name '.tmp-*')" ] || fail "temp files left in the layout"

# registry -> registry in one registry: blobs are mounted
"$BERTH" copy --verbose "$D/team/app:v1" "$D/other/app:copy" >/dev/null 2>"$WORK/mount.log"
grep -q 'mounted from team/app' "$WORK/mount.log" || fail "no cross-repository mount"
expect_eq "$(manifest_digest "$D" other/app copy)" "$want" "mounted copy digest"

# by digest
"$BERTH" copy --quiet "$D/team/app@$want" "$B/pinned/app:p"
expect_eq "$(manifest_digest "$B" pinned/app p)" "$want" "copy by digest"

# multi-arch: the whole index by default and with --all; one platform with --platform
idx=$(make_layout "$WORK/multi" m linux/amd64 linux/arm64 linux/arm/v7)
"$BERTH" copy --quiet "oci:$WORK/multi:m" "$D/multi/app:m"
expect_eq "$(manifest_digest "$D" multi/app m)" "$idx" "index copied whole"
"$BERTH" copy --quiet --all "$D/multi/app:m" "$B/multi/app:all"
expect_eq "$(manifest_digest "$B" multi/app all)" "$idx" "index --all"
for arch in amd64 arm64; do
    skopeo inspect --tls-verify=false --override-arch "$arch" "docker://$B/multi/app:all" |
        grep -q "\"Architecture\": \"$arch\"" || fail "child $arch missing at the destination"
done
child=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]+"/blobs/sha256/"+sys.argv[2][7:]))["manifests"]; print([d["digest"] for d in m if d["platform"].get("variant")=="v7"][0])' "$WORK/multi" "$idx")
got=$("$BERTH" copy --platform linux/arm/v7 "$D/multi/app:m" "$B/multi/arm:v7")
expect_eq "$got" "$child" "--platform prints the child digest"
expect_eq "$(manifest_digest "$B" multi/arm v7)" "$child" "--platform tags the child"
"$BERTH" copy --platform linux/arm/v7 "$B/multi/app:all" "oci:$WORK/armout:v7" >/dev/null
skopeo inspect "oci:$WORK/armout:v7" | grep -q '"Architecture": "arm"' || fail "arm layout"
set +e
"$BERTH" copy --platform linux/s390x "$D/multi/app:m" "$B/multi/none:x" 2>"$WORK/err"
rc=$?
set -e
expect_eq "$rc" 1 "unknown platform exit status"
grep -q 'no image for platform linux/s390x' "$WORK/err" || fail "unknown platform message"
curl -sf "http://$B/v2/multi/none/tags/list" | grep -q '"x"' && fail "tag written on failure"
"$BERTH" copy --quiet --all "$B/multi/app:all" "oci:$WORK/multiout:m"
expect_eq "$(skopeo inspect --raw "oci:$WORK/multiout:m" | sha256sum | cut -d' ' -f1)" \
    "${idx#sha256:}" "index into a layout"

# a large layer goes up in chunks
BIG_LAYER=$((20 * 1024 * 1024 + 7)) make_layout "$WORK/big" b >/dev/null
"$BERTH" copy --verbose --jobs 2 "oci:$WORK/big:b" "$D/big/app:b" >/dev/null 2>"$WORK/big.log"
grep -q '^berth: PATCH' "$WORK/big.log" || fail "large blob not chunked"
"$BERTH" copy --quiet "$D/big/app:b" "$B/big/app:b"
"$BERTH" copy --quiet "$B/big/app:b" "oci:$WORK/bigout:b"
cmp <(skopeo inspect --raw "oci:$WORK/big:b") <(skopeo inspect --raw "oci:$WORK/bigout:b") ||
    fail "large image round trip"

# inspect, tags, catalog, delete
"$BERTH" inspect "$D/team/app:v1" | grep -q "^Digest: *$want" || fail "inspect digest"
cmp <("$BERTH" inspect --raw "$D/team/app:v1") "$WORK/l1/blobs/sha256/${want#sha256:}" ||
    fail "inspect --raw bytes"
"$BERTH" inspect --config "$D/multi/app:m" --platform linux/arm64 | grep -q '"arm64"' ||
    fail "inspect --config"
"$BERTH" inspect "oci:$WORK/l1:v1" | grep -q "^Digest: *$want" || fail "inspect layout"
"$BERTH" inspect "oci:$WORK/multi:m" | grep -q "^MediaType: *application/vnd.oci.image.index.v1+json" ||
    fail "inspect layout index"
"$BERTH" inspect --config --platform linux/arm/v7 "oci:$WORK/multi:m" | grep -q '"arm"' ||
    fail "inspect --config --platform of a layout"
if "$BERTH" inspect --config --platform linux/arm/v6 "oci:$WORK/multi:m" >/dev/null 2>"$WORK/err"; then
    fail "inspect of a platform the index lacks"
fi
grep -q 'an index with no image for linux/arm/v6' "$WORK/err" || fail "inspect no-platform message"
"$BERTH" copy --quiet "$D/team/app:v1" "$D/team/app:v2"
expect_eq "$("$BERTH" tags "$D/team/app" | sort | tr '\n' ' ')" "v1 v2 " "tags"
"$BERTH" catalog "$D" | grep -qx 'multi/app' || fail "catalog"
"$BERTH" delete --quiet "$D/other/app@$want"
set +e
"$BERTH" inspect "$D/other/app:copy" >/dev/null 2>&1
rc=$?
"$BERTH" tags >/dev/null 2>&1
rc2=$?
set -e
expect_eq "$rc" 1 "inspect of a deleted manifest"
expect_eq "$rc2" 2 "usage error"
for cmd in copy inspect tags catalog delete; do
    "$BERTH" "$cmd" --help | grep -q "usage: berth $cmd" || fail "$cmd --help"
done
echo "ok"
