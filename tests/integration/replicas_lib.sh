# SPDX-License-Identifier: Apache-2.0
# Replicas of one store for the multi-replica tests (sourced after lib.sh): every replica is a
# `berth serve` with the caller's environment (S3 + PostgreSQL from scale_storage_env).
#   start_replica I [serve options...]  replica I on a free port (a restart keeps its port):
#                                       RPID[I], RPORT[I], RLOG[I] (its stderr, appended)
#   rurl I                              its base URL
#   kill_replicas                       kill -9 every replica still running (for an EXIT trap)
declare -a RPID RPORT RLOG

start_replica() {
    local i=$1 port n
    shift
    RLOG[$i]=$BERTH_TMP/replica$i.log
    for _ in 1 2 3 4 5; do
        port=${RPORT[$i]:-$(free_port)}
        "$BERTH" serve --listen "127.0.0.1:$port" "$@" 2>>"${RLOG[$i]}" &
        RPID[$i]=$!
        for n in $(seq 1 200); do
            if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/v2/"; then
                RPORT[$i]=$port
                return 0
            fi
            kill -0 "${RPID[$i]}" 2>/dev/null || break
            sleep 0.05
        done
        kill -9 "${RPID[$i]}" 2>/dev/null
        wait "${RPID[$i]}" 2>/dev/null
        RPID[$i]=""
    done
    echo "could not start replica $i:" >&2
    cat "${RLOG[$i]}" >&2
    exit 1
}

rurl() { echo "http://127.0.0.1:${RPORT[$1]}"; }

kill_replicas() {
    local i
    for i in "${!RPID[@]}"; do
        [ -n "${RPID[$i]}" ] && kill -9 "${RPID[$i]}" 2>/dev/null && wait "${RPID[$i]}" 2>/dev/null
    done
}
