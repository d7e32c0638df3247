# Functions the engine fixtures (rgw.sh, swift.sh) share; sourced, with $D the fixture's
# directory and `down` defined by the fixture.

# fail NAME MESSAGE...: say what failed, show the tail of each log under $D/log, stop the
# fixture's processes and exit 1.
engine_fail() {
  local name=$1 l
  shift
  echo "$name: $*" >&2
  for l in "$D"/log/*; do
    [ -s "$l" ] || continue
    echo "---- tail of $l" >&2
    tail -n 25 "$l" >&2 || true
  done
  down
  exit 1
}

port_free() {
  ! ss -Hltn "sport = :$1" | grep -q .
}

# pick_base FIRST WIDTH: print the first of WIDTH free loopback ports, trying FIRST, FIRST+10, ...
# (50 tries) from a start that depends on the caller's PID, so two fixtures starting at once
# rarely try the same range.
pick_base() {
  local first=$1 width=$2 p q ok i start
  start=$(($$ % 50))
  for ((i = 0; i < 50; i++)); do
    p=$((first + 10 * ((start + i) % 50)))
    ok=1
    for ((q = p; q < p + width; q++)); do
      port_free "$q" || { ok=0; break; }
    done
    [ $ok = 1 ] && { echo "$p"; return 0; }
  done
  return 1
}
