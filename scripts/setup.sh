#!/bin/sh
# Install the Debian packages berth needs to build, test and benchmark, when they are missing.
# Runs as root on Debian 12 (as `make serve` and `make check` do); elsewhere it only reports.
set -eu
PACKAGES="build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
libmicrohttpd-dev libjansson-dev libssl-dev libcurl4-openssl-dev libcmocka-dev
curl openssl python3 skopeo umoci podman docker-registry apache2-utils wrk
libyaml-dev libcrypt-dev libgnutls28-dev libpq-dev"
# the storage engines the tests run against (Ceph RGW for S3, PostgreSQL, and OpenStack Swift's
# s3api as the weaker S3 target, with the memcached its tempauth needs), and containerd (its
# `ctr` pulls through the pull-through cache, test_proxy_containerd): `make check` only
ENGINES="radosgw ceph-mon ceph-osd ceph-common postgresql
swift swift-proxy swift-object swift-container swift-account python3-swift memcached
containerd"
# the web UI's browser tests (tests/browser): Debian's chromium, driven by playwright-core from
# npm with the machine's Node.js (Debian's nodejs and npm where there is none): `make check` only
BROWSER="chromium"
command -v npm >/dev/null 2>&1 || BROWSER="$BROWSER nodejs npm"
case "${1:-}" in
--bench) PACKAGES="$PACKAGES nginx-light bc" ;;
--check) PACKAGES="$PACKAGES $ENGINES $BROWSER" ;;
esac

# --serve (`make serve`): only what building and running the server needs (no test tools, no
# engines); no option: build and test tools; --check: also the engines; --bench: benchmark tools
if [ "${1:-}" = --serve ]; then
    PACKAGES="build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev libssl-dev
libcurl4-openssl-dev libyaml-dev libcrypt-dev libgnutls28-dev libpq-dev openssl"
fi

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing"
    if [ "$(id -u)" != 0 ]; then
        echo "setup: not root; install these packages:$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# --check: the browser tests' npm packages, as package-lock.json pins them
if [ "${1:-}" = --check ]; then
    sh "$(dirname "$0")/../tests/browser/install.sh"
fi
