#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# storage: fs
# berth-remote.so from another build: the program loads only a module built from its own sources
# (src/remote/remote.h: version, size and build fingerprint). A module whose table has the same
# version and size but comes from another build (here a stand-in compiled from remote.h, as a
# module of another version of the sources with the same table would be) is refused with a clear
# message and exit status 1: the client commands fail before calling into it, and a server that
# needs it does not start. The program and its own module, moved together elsewhere, work.
. "$(dirname "$0")/lib.sh"
SRC=${BERTH_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$BERTH_TMP

# a module with the table of remote.h whose client_new says it was called and exits 42
cat >"$T/other.c" <<'C'
#include "remote/remote.h"
#include <stdio.h>
#include <unistd.h>
static int fake_client_new(berth_client **out, const berth_client_options *opts)
{
    (void)out;
    (void)opts;
    fputs("the module of another build was called\n", stderr);
    _exit(42);
}
__attribute__((visibility("default"))) const berth__remote_ops berth__remote = {
    .version = BERTH__REMOTE_VERSION,
    .size = sizeof(berth__remote_ops),
    .client_new = fake_client_new,
};
C
mkdir -p "$T/other" "$T/moved"
"${CC:-cc}" -shared -fPIC -I"$SRC/include" -I"$SRC/src" -o "$T/other/berth-remote.so" "$T/other.c" ||
    fail "cannot build the stand-in module"
cp "$BERTH" "$T/other/berth"

"$T/other/berth" tags 127.0.0.1:1/app >"$T/out" 2>&1
check "berth tags with a module of another build" 1 "$?"
grep -q "berth-remote.so is from another build of berth" "$T/out" && ok ||
    fail "no word of the other build: $(cat "$T/out")"
if grep -q "another build was called" "$T/out"; then
    fail "the module of another build was called"
else
    ok
fi

"$T/other/berth" version >"$T/out" 2>&1
check "berth version with a module of another build" 1 "$?"
grep -q "libcurl (none)" "$T/out" && ok || fail "berth version: $(cat "$T/out")"

# a server whose configuration needs the module does not start
cat >"$T/proxy.yaml" <<YAML
listen: 127.0.0.1:1
root: $T/root
proxy:
  upstreams:
    - prefix: cache
      url: http://127.0.0.1:1
YAML
timeout 20 "$T/other/berth" serve --config "$T/proxy.yaml" >"$T/out" 2>&1
check "berth serve with proxy upstreams and a module of another build" 1 "$?"
grep -q "berth-remote.so is from another build of berth" "$T/out" && ok ||
    fail "serve: $(cat "$T/out")"

# the program with its own module, both moved elsewhere: the module beside it is loaded
cp "$BERTH" "$T/moved/berth"
cp "$(dirname "$BERTH")/berth-remote.so" "$T/moved/berth-remote.so"
"$T/moved/berth" version >"$T/out" 2>&1
check "berth version beside its own module, moved" 0 "$?"
grep -q "libcurl [0-9]" "$T/out" && ok || fail "berth version: $(cat "$T/out")"
finish
