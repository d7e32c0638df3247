#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The store's maintenance commands on a root that berth serve filled: gc (refused beside a
# running server; dry run; real run), fsck (clean, a flipped byte, a missing blob, --repair), du.
. "$(dirname "$0")/lib.sh"
start_server
ROOT=$BERTH_TMP/root
T=$BERTH_TMP

printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$T/config"
head -c 30000 /dev/urandom >"$T/layer1"
head -c 20000 /dev/urandom >"$T/layer2"
head -c 10000 /dev/urandom >"$T/stray"
push_blob app "$T/config" >/dev/null
L1=$(push_blob app "$T/layer1")
L2=$(push_blob app "$T/layer2")
STRAY=$(push_blob app "$T/stray")
make_manifest "$T/config" "$T/layer1" "$T/m1"
make_manifest "$T/config" "$T/layer2" "$T/m2"
req PUT /v2/app/manifests/v1 -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$T/m1"
check "push v1" 201 "$STATUS"
sleep 1 # push times have one-second resolution: v2 is the newer tag
req PUT /v2/app/manifests/v2 -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$T/m2"
check "push v2" 201 "$STATUS"
# a second repository shares layer1
req POST "/v2/other/blobs/uploads/?mount=$L1&from=app"
check "mount" 201 "$STATUS"

"$BERTH" gc --root "$ROOT" --grace 0s >"$T/gc.out" 2>&1
check "gc refused beside a running server" 1 "$?"
grep -q "in use by another berth process" "$T/gc.out" && ok || fail "gc message: $(cat "$T/gc.out")"

kill "$BERTH_PID"
wait "$BERTH_PID" 2>/dev/null
BERTH_PID=""

"$BERTH" fsck --root "$ROOT" >"$T/fsck.out" 2>&1
check "fsck of a sound store" 0 "$?"
grep -q " 0 problems" "$T/fsck.out" && ok || fail "fsck output: $(cat "$T/fsck.out")"

"$BERTH" du --root "$ROOT" >"$T/du.out" 2>&1
check "du" 0 "$?"
grep -qE "^ +[0-9.]+ [KMG]?i?B +29\.3 KiB +[0-9]+  other$" "$T/du.out" && ok ||
    fail "du: other holds a shared 30000-byte layer: $(cat "$T/du.out")"

"$BERTH" gc --root "$ROOT" --grace 0s --dry-run >"$T/dry.out" 2>&1
check "gc --dry-run" 0 "$?"
grep -q "would remove blob     app@$STRAY  9.8 KiB" "$T/dry.out" && ok ||
    fail "dry run lists the stray blob with its size: $(cat "$T/dry.out")"
test -f "$ROOT/app/blobs/sha256/${STRAY#sha256:}" && ok || fail "dry run removed the blob"

"$BERTH" gc --root "$ROOT" --grace 0s >"$T/gc.out" 2>&1
check "gc" 0 "$?"
test ! -e "$ROOT/app/blobs/sha256/${STRAY#sha256:}" && ok || fail "stray blob still linked"
test ! -e "$ROOT/_berth/blobs/sha256/${STRAY#sha256:}" && ok || fail "stray blob still in the pool"
test -f "$ROOT/app/blobs/sha256/${L2#sha256:}" && ok || fail "a referenced layer went"

# retention: of the tags v*, keep the newest one
"$BERTH" gc --root "$ROOT" --grace 0s --repos app --tags 'v*' --keep-last 1 >"$T/ret.out" 2>&1
check "gc with retention" 0 "$?"
grep -q "removed tag      app:v1" "$T/ret.out" && ok || fail "retention output: $(cat "$T/ret.out")"

# a flipped byte and a missing blob
# (the layer is random: invert the byte, so that it surely changes, not 255 times in 256)
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(100); b = f.read(1); f.seek(100); f.write(bytes([b[0] ^ 0xFF]))' \
    "$ROOT/_berth/blobs/sha256/${L2#sha256:}"
rm -f "$ROOT/other/blobs/sha256/${L1#sha256:}"
"$BERTH" fsck --root "$ROOT" >"$T/fsck.out" 2>&1
check "fsck finds problems" 1 "$?"
grep -q "^corrupt .*${L2}" "$T/fsck.out" && ok || fail "corrupt layer not reported: $(cat "$T/fsck.out")"
"$BERTH" fsck --root "$ROOT" --repair >"$T/repair.out" 2>&1
test -f "$ROOT/_berth/corrupt/$L2" && ok || fail "corrupt blob not moved aside: $(cat "$T/repair.out")"
grep -q "^missing .*${L2}" "$T/repair.out" && ok || fail "broken manifest not reported: $(cat "$T/repair.out")"

for cmd in gc fsck du; do
    "$BERTH" "$cmd" --help >/dev/null 2>&1
    check "$cmd --help" 0 "$?"
done
"$BERTH" gc --bogus x >/dev/null 2>&1
check "gc usage error" 2 "$?"
finish
