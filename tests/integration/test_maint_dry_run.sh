#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# berth gc --dry-run changes nothing: not the staging debris an open with the lock clears, not
# a directory's mtime; it reports the same on a read-only copy (a read-only bind mount as
# root, else no write permission). A file given as --root is "not a directory".
. "$(dirname "$0")/lib.sh"
: "${BERTH:?BERTH must name the berth binary}"
T=$BERTH_TMP
MT=application/vnd.oci.image.manifest.v1+json
RO=""
cleanup_ro() {
    [ -n "$RO" ] && umount "$RO" 2>/dev/null
    chmod -R u+w "$T" 2>/dev/null
    cleanup
}
trap cleanup_ro EXIT

start_server
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$T/cfg"
head -c 40000 /dev/urandom >"$T/layer"
push_blob app "$T/cfg" >/dev/null
push_blob app "$T/layer" >/dev/null
make_manifest "$T/cfg" "$T/layer" "$T/m.json"
req PUT /v2/app/manifests/v1 -H "Content-Type: $MT" --data-binary "@$T/m.json"
check "push an image" 201 "$STATUS"
req DELETE /v2/app/manifests/v1
check "delete its tag" 202 "$STATUS"
kill "$BERTH_PID"
wait "$BERTH_PID" 2>/dev/null
BERTH_PID=""
# debris of a crash in the staging directory
mkdir -p "$T/root/_berth/tmp/x"
echo partial >"$T/root/_berth/tmp/x/part"
sleep 2.1
snapshot() { find "$1" -printf '%p %s %T@ %m\n' | sort; }
before=$(snapshot "$T/root")
"$BERTH" gc --root "$T/root" --dry-run --max-untagged-age 1s >"$T/out" 2>&1
check "gc --dry-run: exit status" 0 "$?"
grep -q "would remove manifest app@" "$T/out" && ok || fail "gc --dry-run reports: $(cat "$T/out")"
after=$(snapshot "$T/root")
if [ "$before" = "$after" ]; then ok; else
    fail "gc --dry-run changed the store: $(diff <(echo "$before") <(echo "$after"))"
fi

cp -a "$T/root" "$T/copy"
if [ "$(id -u)" = 0 ]; then
    mkdir "$T/ro"
    if mount --bind "$T/copy" "$T/ro" 2>"$T/mount.out" &&
        mount -o remount,bind,ro "$T/ro" 2>>"$T/mount.out"; then
        RO=$T/ro
    else
        fail "a read-only bind mount: $(cat "$T/mount.out")"
    fi
else
    chmod -R a-w "$T/copy"
    RO=$T/copy
fi
if [ -n "$RO" ]; then
    "$BERTH" gc --root "$RO" --dry-run --max-untagged-age 1s >"$T/ro.out" 2>&1
    check "gc --dry-run on a read-only copy: exit status" 0 "$?"
    check "gc --dry-run on a read-only copy reports the same" "$(tail -1 "$T/out")" \
        "$(tail -1 "$T/ro.out")"
fi

echo "a file" >"$T/file"
"$BERTH" du --root "$T/file" >"$T/out" 2>&1
check "du on a file: exit status" 2 "$?"
grep -q "not a berth store: $T/file (not a directory)" "$T/out" && ok ||
    fail "du on a file says: $(cat "$T/out")"
finish
