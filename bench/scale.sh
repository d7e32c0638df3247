#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Scale-out benchmark (issue 15, section 5): berth serve over Ceph RGW + PostgreSQL on loopback,
# against the engine itself and against Distribution 2.8 over the same RGW bucket. Run by hand,
# from the project's root, after the build (not part of make check); prints a markdown table.
#
#   bench/scale.sh [ROUNDS]      (default 3; medians of ROUNDS interleaved rounds)
#
# BENCH_PARTS picks what runs (default "push manifest tags catalog"): push is the 256 MiB push
# and GET (slow: 1.5 GiB of pushes with the default 3 rounds), manifest the manifest GET by tag,
# tags the tags list, catalog the catalog (loading 10,000 repositories, and Distribution's
# catalog takes tens of seconds a request). BENCH_BERTH_BEFORE=PATH runs a second berth binary
# (another build, e.g. the commit before a change) as a third replica on the same database and
# prefix, measured in the same rounds as the first (manifest, tags, catalog), its figures in an
# extra column.
# BENCH_ONLY=blobs runs only the 256 MiB push and GET parts (no Distribution, no loading) and
# prints their rows and the replicas' VmHWM.
#
# Engines: BENCH_ENGINES_DIR=DIR uses engines already up (DIR/rgw/env and DIR/pg/env, as
# tests/engines/{rgw,pg}.sh up write them); else both are started in a temporary directory
# (RGW with a 6 GiB memstore) and stopped at the end. Needs: docker-registry (2.8), wrk, curl,
# python3, psql, gcc, bc.
#
# What is measured (see bench/RESULTS.md, "Scale-out"):
# - 256 MiB push: berth chunked (POST, 16 MiB PATCHes, PUT, on one keep-alive connection as
#   registry clients push: bench/push_chunked.py) and monolithic (POST, PUT with the body, curl),
#   against a direct multipart upload of the same bytes (16 MiB parts, one at
#   a time) by bench/s3direct.c, which uses berth's own S3 client (src/backend/s3/client.h);
#   every round pushes new bytes;
# - 256 MiB blob GET (curl): berth streamed, berth with storage.s3.redirect (a second replica on
#   the same database and prefix; curl -L follows the 307 to RGW), a presigned GET from RGW;
# - manifest GET by tag, wrk -t2 -c64 for BENCH_SECONDS (10) each, berth and Distribution;
# - tags list of 10,000 tags and the catalog: median latency of the whole list (no n) over one
#   keep-alive connection; Distribution's catalog gets BENCH_DIST_REPOS (1,000) repositories,
#   because its catalog walks the bucket (tens of seconds a request at 1,000);
# - VmHWM of each berth replica at the end;
# - server CPU per request during each wrk run (utime + stime from /proc/PID/stat): the berth
#   replica and the PostgreSQL cluster (postmaster and its backends), against Distribution and
#   the RGW processes (radosgw, ceph-osd, ceph-mon), microseconds of CPU per request.
set -euo pipefail
rounds=${1:-3}
berth=${BERTH:-build/berth}
port=${BENCH_PORT:-5310}
secs=${BENCH_SECONDS:-10}
ntags=${BENCH_TAGS:-10000}
nrepos=${BENCH_REPOS:-10000}
dist_repos=${BENCH_DIST_REPOS:-1000}
parts=" ${BENCH_PARTS:-push manifest tags catalog} "
before=${BENCH_BERTH_BEFORE:-}
part() { case $parts in *" $1 "*) return 0 ;; esac; return 1; }
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/berth-scalebench-XXXX)
pids=()
eng=${BENCH_ENGINES_DIR:-}
own_engines=
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    # the database goes; the keys under the prefixes stay (a temporary RGW goes with them)
    [ -n "${db:-}" ] && psql -q "$BERTH_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    if [ -n "$own_engines" ]; then
        bash tests/engines/rgw.sh down "$eng/rgw" >/dev/null 2>&1 || true
        bash tests/engines/pg.sh down "$eng/pg" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
say() { printf '%s\n' "$*" >&2; }
now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
calc() { echo "$*" | bc -l; }
fmt() { printf "%.${2:-1}f" "$1"; }
wait_up() { for _ in $(seq 150); do curl -sf -o /dev/null "$1/v2/" && return 0; sleep 0.1; done; return 1; }

if [ -z "$eng" ]; then
    eng=$work/engines own_engines=1
    say "starting RGW and PostgreSQL in $eng"
    BERTH_RGW_MEMSTORE_BYTES=${BERTH_RGW_MEMSTORE_BYTES:-6442450944} bash tests/engines/rgw.sh up "$eng/rgw" >&2
    bash tests/engines/pg.sh up "$eng/pg" >&2
fi
set -a
. "$eng/rgw/env"
. "$eng/pg/env"
set +a
tag=$(date +%s)$$

# the direct client: berth's own S3 client
gcc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc "$here/s3direct.c" build/libberth.a \
    $(pkg-config --libs libcurl jansson libcrypto libpq yaml-0.1 gnutls libmicrohttpd libcrypt) \
    -lpthread -lm -o "$work/s3direct"
s3direct() { "$work/s3direct" "$@"; }

# berth: two replicas on one fresh database and key prefix, the second with redirect on
db=bench_$tag
psql -q "$BERTH_TEST_DATABASE_URL" -c "CREATE DATABASE $db" >/dev/null
export BERTH_STORAGE_S3_ENDPOINT=$BERTH_TEST_S3_ENDPOINT BERTH_STORAGE_S3_BUCKET=$BERTH_TEST_S3_BUCKET
export BERTH_STORAGE_S3_REGION=$BERTH_TEST_S3_REGION BERTH_STORAGE_S3_PREFIX=bench-$tag/
export BERTH_DATABASE_URL=${BERTH_TEST_DATABASE_URL%/*}/$db
(exec "$berth" serve --quiet --listen "127.0.0.1:$port" 2>"$work/berth.log") & pids+=($!)
bpid=$!
(BERTH_STORAGE_S3_REDIRECT=true exec "$berth" serve --quiet --listen "127.0.0.1:$((port + 1))" \
    2>"$work/berth-redirect.log") & pids+=($!)
rpid=$!
B=http://127.0.0.1:$port R=http://127.0.0.1:$((port + 1)) D=http://127.0.0.1:$((port + 2))
wait_up "$B" && wait_up "$R" || { cat "$work"/berth*.log >&2; exit 1; }
O=
if [ -n "$before" ]; then
    (exec "$before" serve --quiet --listen "127.0.0.1:$((port + 3))" 2>"$work/berth-before.log") &
    pids+=($!)
    opid=$! O=http://127.0.0.1:$((port + 3))
    wait_up "$O" || { cat "$work/berth-before.log" >&2; exit 1; }
fi

only=${BENCH_ONLY:-}
# Distribution 2.8 on the same bucket, its own root directory
[ "$only" = blobs ] || {
cat >"$work/dist.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  s3:
    regionendpoint: $BERTH_TEST_S3_ENDPOINT
    bucket: $BERTH_TEST_S3_BUCKET
    region: $BERTH_TEST_S3_REGION
    accesskey: $AWS_ACCESS_KEY_ID
    secretkey: $AWS_SECRET_ACCESS_KEY
    secure: false
    v4auth: true
    forcepathstyle: true
    rootdirectory: /dist-$tag
  cache: {blobdescriptor: inmemory}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$((port + 2))}
YML
# (the AWS SDK of Distribution 2.8 panics on AWS_CA_BUNDLE with its custom transport)
(exec env -u AWS_CA_BUNDLE docker-registry serve "$work/dist.yml" >"$work/dist.log" 2>&1) & pids+=($!)
wait_up "$D" || { cat "$work/dist.log" >&2; exit 1; }
}

t_direct=() t_chunked=() t_mono=() g_direct=() g_stream=() g_redirect=()
if part push; then
# ---- 256 MiB push and GET ----
blob=$work/blob
head -c $((256 << 20)) /dev/urandom >"$blob"
abs() { case $2 in http*) echo "$2" ;; *) echo "$1$2" ;; esac; }
loc_of() { sed -n 's/^[Ll]ocation: //p' "$1" | tr -d '\r' | tail -n 1; }
with_digest() { case $1 in *\?*) echo "$1&digest=$2" ;; *) echo "$1?digest=$2" ;; esac; }
push_chunked() { # BASE REPO DIGEST: 16 MiB PATCHes, then PUT, on one keep-alive connection
    python3 "$here/push_chunked.py" "$1" "$2" "$3" "$blob" 16
}
push_mono() { # BASE REPO DIGEST: POST, then one PUT with the whole body
    local b=$1 repo=$2 dg=$3 h=$work/h t0 loc
    t0=$(now)
    curl -sf -X POST -D "$h" -o /dev/null "$b/v2/$repo/blobs/uploads/"
    loc=$(abs "$b" "$(loc_of "$h")")
    curl -sf -X PUT -o /dev/null -H 'Content-Type: application/octet-stream' -T "$blob" \
        "$(with_digest "$loc" "$dg")"
    calc "$(now) - $t0"
}
new_bytes() { # change the first 16 bytes, so that every push is of a new blob
    head -c 16 /dev/urandom | dd of="$blob" bs=16 count=1 conv=notrunc status=none
    echo "sha256:$(sha256sum "$blob" | cut -d' ' -f1)"
}
mib=256
# the S3 client's round trip (ListParts, quickest of 20): about 2 ms unless a delayed ACK holds
# each response back (40 ms more)
ack_ms=$(s3direct ack "ack-$tag")
for r in $(seq "$rounds"); do
    say "push round $r"
    dg=$(new_bytes)
    t_direct+=("$(s3direct put "$blob" "direct-$tag/$r" 16)")
    s3direct rm "direct-$tag/$r"
    dg=$(new_bytes)
    t_chunked+=("$(push_chunked "$B" big/push "$dg")")
    dg=$(new_bytes)
    t_mono+=("$(push_mono "$B" big/push "$dg")")
done
# the GETs: the last blob pushed, through berth and directly (its key, found by a presigned
# redirect of the redirect replica)
url=$(curl -sf -o /dev/null -w '%{redirect_url}' "$R/v2/big/push/blobs/$dg")
case $url in http*) ;; *) say "no redirect from storage.s3.redirect"; exit 1 ;; esac
speed() { curl -sf -L -o /dev/null -w '%{time_total}' "$1"; }
for r in $(seq "$rounds"); do
    say "GET round $r"
    g_direct+=("$(speed "$url")")
    g_stream+=("$(speed "$B/v2/big/push/blobs/$dg")")
    g_redirect+=("$(speed "$R/v2/big/push/blobs/$dg")")
done
fi
mbs() { calc "$mib * 1048576 / $1 / 1000000"; }
if [ "$only" = blobs ]; then
    hwm() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
    pd=$(median "${t_direct[@]}") pc=$(median "${t_chunked[@]}") pm=$(median "${t_mono[@]}")
    gd=$(median "${g_direct[@]}") gs=$(median "${g_stream[@]}") gr=$(median "${g_redirect[@]}")
    pct() { fmt "$(calc "100 * $1")" 0; }
    cat <<TXT

Scale-out benchmark, blobs only, $(date -u +%Y-%m-%d), $rounds rounds (medians)

| measure | berth | reference | berth/reference | target |
|---|---|---|---|---|
| 256 MiB push, 16 MiB PATCHes + PUT (MB/s) | $(fmt "$(mbs "$pc")") | $(fmt "$(mbs "$pd")") | $(pct "$pd / $pc")% | >= 70% |
| 256 MiB push, monolithic PUT (MB/s) | $(fmt "$(mbs "$pm")") | $(fmt "$(mbs "$pd")") | $(pct "$pd / $pm")% | >= 70% |
| 256 MiB GET, streamed (MB/s) | $(fmt "$(mbs "$gs")") | $(fmt "$(mbs "$gd")") | $(pct "$gd / $gs")% | >= 80% |
| 256 MiB GET, redirect (MB/s) | $(fmt "$(mbs "$gr")") | $(fmt "$(mbs "$gd")") | $(pct "$gd / $gr")% | >= 80% |
| VmHWM per replica (MiB) | $(hwm "$bpid") (streaming), $(hwm "$rpid") (redirect) | | | <= 32 MiB |

S3 client round trip (ListParts, quickest of 20): ${ack_ms:-(not run)} ms
raw seconds: direct push ${t_direct[*]}; chunked ${t_chunked[*]}; monolithic ${t_mono[*]};
GET direct ${g_direct[*]}; streamed ${g_stream[*]}; redirect ${g_redirect[*]}
TXT
    exit 0
fi

# ---- manifest GET by tag ----
python3 "$here/scale_load.py" image "$B" lib/tags >/dev/null
python3 "$here/scale_load.py" image "$D" lib/tags >/dev/null
load_b_tags=- load_b_repos=- load_d_tags=- load_d_repos=-
if part tags; then
    say "loading: $ntags tags in berth and in Distribution"
    load_b_tags=$(python3 "$here/scale_load.py" tags "$B" lib/tags "$ntags" 8)
    load_d_tags=$(python3 "$here/scale_load.py" tags "$D" lib/tags "$ntags" 8)
fi
if part catalog; then
    say "loading: $nrepos repositories in berth, $dist_repos in Distribution"
    load_b_repos=$(python3 "$here/scale_load.py" repos "$B" lib/tags cat/r "$nrepos" 8)
    load_d_repos=$(python3 "$here/scale_load.py" repos "$D" lib/tags cat/r "$dist_repos" 8)
fi
say "loaded: berth tags ${load_b_tags}s repos ${load_b_repos}s; Distribution tags ${load_d_tags}s repos ${load_d_repos}s"
accept='Accept: application/vnd.oci.image.manifest.v1+json'
# CPU ticks (utime + stime) of processes and of their children (PostgreSQL's backends)
tck=$(getconf CLK_TCK)
ticks() {
    local t=0 p c
    for p in "$@"; do
        for c in $p $(ps -o pid= --ppid "$p" 2>/dev/null); do
            t=$((t + $(awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || echo 0)))
        done
    done
    echo $t
}
pgpid=$(head -1 "$eng/pg/data/postmaster.pid" 2>/dev/null || true)
rgwpids=$(cat "$eng"/rgw/run/{rgw,osd,mon}.pid 2>/dev/null | tr '\n' ' ' || true)
dpid=
# wrk against URL with the CPU of the server's processes (PIDS...) and of the database's
# (DBPIDS): "req/s server-us/req database-us/req"
rps() {
    local url=$1 spids=$2 dbpids=$3 s0 d0 out n
    s0=$(ticks $spids) d0=$(ticks $dbpids)
    out=$(wrk -t2 -c64 -d"${secs}s" -H "$accept" "$url")
    s1=$(ticks $spids) d1=$(ticks $dbpids)
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    echo "$(echo "$out" | awk '/^Requests\/sec/ {print $2}')" \
        "$(calc "($s1 - $s0) * 1000000 / $tck / $n")" "$(calc "($d1 - $d0) * 1000000 / $tck / $n")"
}
dpid=$(pgrep -f "docker-registry serve $work/dist.yml" | head -1 || true)
m_b=() m_d=() m_o=() c_b=() c_bdb=() c_d=() c_ddb=() c_o=() c_odb=()
if part manifest; then
    for r in $(seq "$rounds"); do
        say "manifest round $r"
        read -r x y z <<<"$(rps "$B/v2/lib/tags/manifests/latest" "$bpid" "$pgpid")"
        m_b+=("$x") c_b+=("$y") c_bdb+=("$z")
        if [ -n "$O" ]; then
            read -r x y z <<<"$(rps "$O/v2/lib/tags/manifests/latest" "$opid" "$pgpid")"
            m_o+=("$x") c_o+=("$y") c_odb+=("$z")
        fi
        read -r x y z <<<"$(rps "$D/v2/lib/tags/manifests/latest" "$dpid" "$rgwpids")"
        m_d+=("$x") c_d+=("$y") c_ddb+=("$z")
    done
fi

# ---- tags list and catalog (the whole list: no n) ----
lat() { python3 "$here/scale_load.py" lat "$1" "$2"; }
l_bt=0 l_ot=0 l_dt=0 l_bc=0 l_oc=0 l_bc1=0 l_oc1=0 l_dc=0 s_bt=- s_dt=- s_bc=- s_dc=-
if part tags; then
    say "tags list"
    read -r l_bt s_bt <<<"$(lat "$B/v2/lib/tags/tags/list" 21)"
    [ -z "$O" ] || read -r l_ot _ <<<"$(lat "$O/v2/lib/tags/tags/list" 21)"
    read -r l_dt s_dt <<<"$(lat "$D/v2/lib/tags/tags/list" "$rounds")"
fi
if part catalog; then
    say "catalog"
    read -r l_bc s_bc <<<"$(lat "$B/v2/_catalog" 21)"
    read -r l_bc1 _ <<<"$(lat "$B/v2/_catalog?n=$dist_repos" 21)"
    if [ -n "$O" ]; then
        read -r l_oc _ <<<"$(lat "$O/v2/_catalog" 21)"
        read -r l_oc1 _ <<<"$(lat "$O/v2/_catalog?n=$dist_repos" 21)"
    fi
    say "Distribution catalog ($dist_repos repositories; tens of seconds each)"
    read -r l_dc s_dc <<<"$(lat "$D/v2/_catalog?n=$dist_repos" "$rounds")"
fi
hwm() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
rss_b=$(hwm "$bpid") rss_r=$(hwm "$rpid")

# ---- report ----
md() { if [ $# -gt 0 ]; then median "$@"; else echo 0; fi; }
pct() { fmt "$(calc "100 * $1")" 0; }
ms() { fmt "$(calc "$1 * 1000")" 2; }
ocol= ohead=
[ -z "$O" ] || ocol=" before |" ohead="---|"
echo
echo "Scale-out benchmark, $(date -u +%Y-%m-%d), $rounds rounds (medians), RGW + PostgreSQL on loopback, $(nproc) cores"
echo "(parts:$parts${O:+; \"before\": $before})"
echo
echo "| measure | berth |$ocol reference | berth/reference | target |"
echo "|---|---|$ohead---|---|---|"
if part push; then
    pd=$(md "${t_direct[@]}") pc=$(md "${t_chunked[@]}") pm=$(md "${t_mono[@]}")
    gd=$(md "${g_direct[@]}") gs=$(md "${g_stream[@]}") gr=$(md "${g_redirect[@]}")
    oc=${O:+ |}
    echo "| 256 MiB push, 16 MiB PATCHes + PUT (MB/s) | $(fmt "$(mbs "$pc")") |$oc $(fmt "$(mbs "$pd")") (direct multipart, 16 MiB parts) | $(pct "$pd / $pc")% | >= 70% |"
    echo "| 256 MiB push, monolithic PUT (MB/s) | $(fmt "$(mbs "$pm")") |$oc $(fmt "$(mbs "$pd")") (direct multipart, 16 MiB parts) | $(pct "$pd / $pm")% | >= 70% |"
    echo "| 256 MiB GET, streamed (MB/s) | $(fmt "$(mbs "$gs")") |$oc $(fmt "$(mbs "$gd")") (presigned GET from RGW) | $(pct "$gd / $gs")% | >= 80% |"
    echo "| 256 MiB GET, storage.s3.redirect: 307 + GET (MB/s) | $(fmt "$(mbs "$gr")") |$oc $(fmt "$(mbs "$gd")") (presigned GET from RGW) | $(pct "$gd / $gr")% | >= 80% |"
fi
if part manifest; then
    mb=$(md "${m_b[@]}") mdist=$(md "${m_d[@]}") mo=$(md "${m_o[@]}")
    echo "| manifest GET by tag (req/s, wrk -t2 -c64, ${secs} s) | $(fmt "$mb" 0) |${O:+ $(fmt "$mo" 0) ($(fmt "$(calc "$mo / $mdist")")x) |} $(fmt "$mdist" 0) (Distribution 2.8, s3) | $(fmt "$(calc "$mb / $mdist")")x | >= 25x |"
    echo "| manifest GET, server CPU per request (us): berth or Distribution | $(fmt "$(md "${c_b[@]}")") |${O:+ $(fmt "$(md "${c_o[@]}")") |} $(fmt "$(md "${c_d[@]}")") | | |"
    echo "| manifest GET, engine CPU per request (us): PostgreSQL or RGW | $(fmt "$(md "${c_bdb[@]}")") |${O:+ $(fmt "$(md "${c_odb[@]}")") |} $(fmt "$(md "${c_ddb[@]}")") | | |"
fi
if part tags; then
    echo "| tags list, $ntags tags, whole list (ms) | $(ms "$l_bt") |${O:+ $(ms "$l_ot") ($(fmt "$(calc "$l_dt / $l_ot")" 0)x) |} $(fmt "$(calc "$l_dt * 1000")" 0) (Distribution) | $(fmt "$(calc "$l_dt / $l_bt")" 0)x | >= 100x |"
fi
if part catalog; then
    echo "| catalog, whole list (ms) | $(ms "$l_bc") ($nrepos+1 repositories) |${O:+ $(ms "$l_oc") |} $(fmt "$(calc "$l_dc * 1000")" 0) (Distribution, first $dist_repos of $((dist_repos + 1))) | $(fmt "$(calc "$l_dc / $l_bc")" 0)x | >= 100x |"
    echo "| catalog, first $dist_repos (ms) | $(ms "$l_bc1") |${O:+ $(ms "$l_oc1") |} $(fmt "$(calc "$l_dc * 1000")" 0) (Distribution, first $dist_repos) | $(fmt "$(calc "$l_dc / $l_bc1")" 0)x | >= 100x |"
fi
echo "| VmHWM per replica (MiB) | $rss_b (streaming), $rss_r (redirect) |${O:+ |} | | <= 32 MiB |"
cat <<TXT

S3 client round trip (ListParts, quickest of 20): ${ack_ms:-(not run)} ms
raw seconds: direct push ${t_direct[*]}; chunked ${t_chunked[*]}; monolithic ${t_mono[*]};
GET direct ${g_direct[*]}; streamed ${g_stream[*]}; redirect ${g_redirect[*]};
manifest req/s berth ${m_b[*]}; before ${m_o[*]}; Distribution ${m_d[*]};
CPU us/request berth ${c_b[*]}, its PostgreSQL ${c_bdb[*]}; before ${c_o[*]}, its PostgreSQL ${c_odb[*]};
Distribution ${c_d[*]}, its RGW ${c_ddb[*]};
list bodies (bytes): berth tags $s_bt, Distribution tags $s_dt, berth catalog $s_bc, Distribution catalog $s_dc;
loading (s): berth $ntags tags $load_b_tags, $nrepos repositories $load_b_repos; Distribution $ntags tags $load_d_tags, $dist_repos repositories $load_d_repos
TXT
