#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: fs
# References as people type them, in every client command: skopeo's docker:// prefix (copy,
# inspect, tags, delete); OCI layouts with and without :TAG (copy, inspect, tags lists the
# names of a layout); a destination without a tag takes the source's (a layout's only image
# named "multi" is tagged multi, not latest); transports berth does not read are refused by
# name, not with "invalid port".
. "$(dirname "$0")/client_lib.sh"

if ! start_berth BS; then
    echo "skip: berth serve does not run"
    exit 77
fi
B=127.0.0.1:$BS_PORT
want=$(make_layout "$WORK/l" multi linux/amd64 linux/arm64)

# oci:DIR without a tag -> HOST/NAME without one: the source's tag
got=$("$BERTH" copy --quiet "oci:$WORK/l" "$B/team/app" && "$BERTH" tags "$B/team/app")
expect_eq "$got" "multi" "tag taken from the layout's only image"
expect_eq "$(manifest_digest "$B" team/app multi)" "$want" "digest under the source's tag"
# registry -> registry: the source's tag too; a source without one means latest
"$BERTH" copy --quiet "$B/team/app:multi" "$B/team/copy"
expect_eq "$("$BERTH" tags "$B/team/copy")" "multi" "tag taken from the registry source"
"$BERTH" copy --quiet "$B/team/app@$want" "$B/team/pinned"
expect_eq "$("$BERTH" tags "$B/team/pinned")" "latest" "source by digest: latest"

# docker:// everywhere
got=$("$BERTH" copy "docker://$B/team/app:multi" "docker://$B/dock/app:d1")
expect_eq "$got" "$want" "copy docker:// -> docker://"
"$BERTH" inspect "docker://$B/dock/app:d1" | grep -q "^Digest: *$want" || fail "inspect docker://"
expect_eq "$("$BERTH" tags "docker://$B/dock/app")" "d1" "tags docker://"
"$BERTH" copy --quiet "docker://$B/dock/app:d1" "oci:$WORK/fromdocker:x"
"$BERTH" inspect "oci:$WORK/fromdocker:x" | grep -q "^Digest: *$want" || fail "docker:// -> oci:"

# a layout: tags lists its names; inspect reads it with and without the tag
"$BERTH" copy --quiet "$B/team/app:multi" "oci:$WORK/l:second"
expect_eq "$("$BERTH" tags "oci:$WORK/l" | tr '\n' ' ')" "multi second " "tags of a layout"
"$BERTH" inspect "oci:$WORK/l:second" | grep -q "^Digest: *$want" || fail "inspect oci:DIR:TAG"
"$BERTH" inspect "oci:$WORK/fromdocker" | grep -q "^Digest: *$want" || fail "inspect oci:DIR"
set +e
"$BERTH" tags "oci:$WORK/l:multi" >/dev/null 2>"$WORK/err"
rc=$?
set -e
expect_eq "$rc" 2 "tags of oci:DIR:TAG"
grep -q 'without a tag' "$WORK/err" || fail "tags oci:DIR:TAG message: $(cat "$WORK/err")"
if "$BERTH" tags "oci:$WORK/nolayout" >/dev/null 2>"$WORK/err"; then fail "tags of no layout"; fi
grep -q 'not an OCI image layout' "$WORK/err" || fail "tags of no layout: $(cat "$WORK/err")"

"$BERTH" catalog "docker://$B" | grep -qx 'dock/app' || fail "catalog docker://HOST"

# delete with docker://
"$BERTH" delete --quiet "docker://$B/dock/app@$want"
expect_eq "$(manifest_code "$B" dock/app d1)" 404 "delete docker://"

# transports berth does not read: refused by name, in every command
for cmd in "copy oci-archive:$WORK/a.tar $B/x/y:1" "copy $B/team/app:multi docker-archive:$WORK/a.tar" \
    "inspect oci-archive:$WORK/a.tar" "tags containers-storage:app" "delete dir:$WORK/x"; do
    set +e
    # shellcheck disable=SC2086
    "$BERTH" $cmd >/dev/null 2>"$WORK/err"
    rc=$?
    set -e
    expect_eq "$rc" 1 "berth $cmd: exit status"
    grep -q 'a transport berth does not read' "$WORK/err" || fail "berth $cmd: $(cat "$WORK/err")"
    ! grep -q 'invalid port' "$WORK/err" || fail "berth $cmd: $(cat "$WORK/err")"
done
if "$BERTH" inspect "docker:$B/team/app:multi" >/dev/null 2>"$WORK/err"; then
    fail "docker: without //"
fi
grep -q 'docker://HOST/NAME' "$WORK/err" || fail "docker: message: $(cat "$WORK/err")"
echo "ok"
