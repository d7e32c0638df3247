#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Maintenance commands on the wrong root (issue 11, item 9): du, fsck, fsck --repair and gc
# refuse a directory that is not a berth store ("not a berth store: ...", exit 2) and create
# nothing there (nor ./data without --root); serve creates a new root only once it listens (a
# failed bind leaves nothing behind); du and fsck work on a read-only copy of a store.
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

# refused CMD DIR WHAT [args...]: CMD on DIR exits 2 saying so, and DIR stays as it was
refused() {
    local cmd=$1 dir=$2 what=$3 before after
    shift 3
    before=$(ls -A "$dir" 2>&1)
    "$BERTH" "$cmd" --root "$dir" "$@" >"$T/out" 2>&1
    check "$cmd $* on $what: exit status" 2 "$?"
    grep -q "not a berth store: $dir" "$T/out" && ok || fail "$cmd on $what says: $(cat "$T/out")"
    after=$(ls -A "$dir" 2>&1)
    check "$cmd $* on $what: nothing created" "$before" "$after"
}

refused du "$T/TYPO" "a missing directory"
refused fsck "$T/TYPO" "a missing directory"
refused fsck "$T/TYPO" "a missing directory" --repair
refused gc "$T/TYPO" "a missing directory"
refused gc "$T/TYPO" "a missing directory" --dry-run
mkdir "$T/empty"
refused du "$T/empty" "an empty directory"
refused fsck "$T/empty" "an empty directory"
refused fsck "$T/empty" "an empty directory" --repair
refused gc "$T/empty" "an empty directory" --dry-run
mkdir "$T/files"
echo "not a store" >"$T/files/notes.txt"
refused du "$T/files" "a directory of other files"
refused gc "$T/files" "a directory of other files"

# no --root: ./data, which is not there
mkdir "$T/cwd"
for cmd in "gc --dry-run" gc du fsck; do
    # shellcheck disable=SC2086
    (cd "$T/cwd" && "$BERTH" $cmd >"$T/out" 2>&1)
    check "$cmd without --root where ./data is none: exit status" 2 "$?"
    grep -q "not a berth store: ./data" "$T/out" && ok || fail "$cmd without --root says: $(cat "$T/out")"
    check "$cmd without --root: ./data not created" "" "$(ls -A "$T/cwd")"
done

# serve: a port already taken: no root left behind (a new one, nor _berth in an empty one)
python3 -c 'import socket,sys,time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True); time.sleep(60)' >"$T/port" &
HOLDER=$!
for _ in $(seq 50); do [ -s "$T/port" ] && break; sleep 0.1; done
PORT=$(cat "$T/port")
"$BERTH" serve --root "$T/new/deeper" --listen "127.0.0.1:$PORT" >"$T/out" 2>&1
check "serve on a taken port fails" 1 "$?"
test ! -e "$T/new" && ok || fail "serve left its new root behind a failed bind: $(find "$T/new")"
mkdir "$T/blank"
"$BERTH" serve --root "$T/blank" --listen "127.0.0.1:$PORT" >"$T/out" 2>&1
check "serve on a taken port fails (an empty directory)" 1 "$?"
check "serve left nothing in the empty directory" "" "$(ls -A "$T/blank")"
kill "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null

# serve on a new directory creates the store once it listens; it stays
start_server
test -d "$T/root/_berth" && ok || fail "serve did not create its root"
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$T/cfg"
head -c 40000 /dev/urandom >"$T/layer"
push_blob app "$T/cfg" >/dev/null
push_blob app "$T/layer" >/dev/null
make_manifest "$T/cfg" "$T/layer" "$T/m.json"
req PUT /v2/app/manifests/v1 -H "Content-Type: $MT" --data-binary "@$T/m.json"
check "push an image" 201 "$STATUS"
kill "$BERTH_PID"
wait "$BERTH_PID" 2>/dev/null
BERTH_PID=""
test -d "$T/root/_berth" && ok || fail "the root went with the server"

# du and fsck on a read-only copy: a read-only bind mount (root), else no write permission
cp -a "$T/root" "$T/copy"
if [ "$(id -u)" = 0 ]; then
    mkdir "$T/ro"
    if mount --bind "$T/copy" "$T/ro" 2>"$T/mount.out" &&
        mount -o remount,bind,ro "$T/ro" 2>>"$T/mount.out"; then
        RO=$T/ro
    else
        cat "$T/mount.out" >&2
        fail "a read-only bind mount (root may mount here)"
        RO=""
    fi
else
    chmod -R a-w "$T/copy"
    RO=$T/copy
fi
if [ -n "$RO" ]; then
    if touch "$RO/_berth/probe" 2>/dev/null; then fail "the copy is writable"; else ok; fi
    "$BERTH" du --root "$RO" >"$T/du.out" 2>&1
    check "du on a read-only copy" 0 "$?"
    grep -qE " 1  *app$| [0-9]+  app$" "$T/du.out" && ok || fail "du on a read-only copy: $(cat "$T/du.out")"
    "$BERTH" fsck --root "$RO" >"$T/fsck.out" 2>&1
    check "fsck on a read-only copy" 0 "$?"
    grep -q "1 manifests: 0 problems" "$T/fsck.out" && ok || fail "fsck on a read-only copy: $(cat "$T/fsck.out")"
    "$BERTH" fsck --root "$RO" --repair >"$T/out" 2>&1
    check "fsck --repair on a read-only copy fails" 1 "$?"
fi
finish
