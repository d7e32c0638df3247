#!/usr/bin/env bash
# Crash safety of berth serve: concurrent pushes, kill -9, restart, verify (crash.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec python3 "$here/crash.py" "${BERTH:?BERTH must name the berth binary}"
