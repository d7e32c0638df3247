#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: fs
# A layout's image named by a full reference (org.opencontainers.image.ref.name
# "example.com/app:v2", as buildkit's and skopeo's oci:DIR:NAME write it) copied to a registry
# without a destination tag: the destination takes the reference's tag (v2), or latest for a
# name without one. Before, the whole name went into the URL as the tag: every blob and the
# manifest were pushed, then "PUT .../manifests/example.com/app:v2" failed (404) and the copy
# exited 1, leaving an untagged image.
. "$(dirname "$0")/client_lib.sh"

if ! start_berth BS; then
    echo "skip: berth serve does not run"
    exit 77
fi
B=127.0.0.1:$BS_PORT
want=$(make_layout "$WORK/l" example.com/app:v2)
"$BERTH" copy --quiet "oci:$WORK/l" "$B/n/a" >/dev/null 2>"$WORK/err" ||
    fail "copy of the only image: $(cat "$WORK/err")"
expect_eq "$("$BERTH" tags "$B/n/a")" "v2" "the reference's tag"
expect_eq "$(manifest_digest "$B" n/a v2)" "$want" "digest under v2"
"$BERTH" copy --quiet "oci:$WORK/l:example.com/app:v2" "$B/n/b" >/dev/null 2>"$WORK/err" ||
    fail "copy of the named image: $(cat "$WORK/err")"
expect_eq "$("$BERTH" tags "$B/n/b")" "v2" "the named reference's tag"
# a name without a tag: latest
make_layout "$WORK/l2" example.com/app >/dev/null
"$BERTH" copy --quiet "oci:$WORK/l2" "$B/n/c" >/dev/null 2>"$WORK/err" ||
    fail "copy of a name without a tag: $(cat "$WORK/err")"
expect_eq "$("$BERTH" tags "$B/n/c")" "latest" "a name without a tag: latest"
# to a layout, the name stays as it is
"$BERTH" copy --quiet "oci:$WORK/l" "oci:$WORK/out" >/dev/null
expect_eq "$("$BERTH" tags "oci:$WORK/out")" "example.com/app:v2" "layout -> layout keeps the name"
echo "ok"
