#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `npm ci` in tests/browser when node_modules does not match package-lock.json (playwright-core,
# pinned; npm's cache in ~/.npm makes it work offline after the first install). Used by
# scripts/setup.sh --check and by run.sh.
set -eu
cd "$(dirname "$0")"
if [ -f node_modules/playwright-core/package.json ] && cmp -s package-lock.json node_modules/.berth-lock; then
    exit 0
fi
npm ci --prefer-offline --no-audit --no-fund --loglevel=error
cp package-lock.json node_modules/.berth-lock
