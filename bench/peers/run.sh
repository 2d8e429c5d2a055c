#!/bin/bash
# run.sh -- `make bench-peers`: reel and the systems users would pick instead, same run,
# same machine, same durability; prints one Markdown table (docs/BENCHMARKS.md).
#
#   bench/peers/run.sh BUILD [--quick] [--only sys1,sys2] [--workloads w1,w2] [--skip-restart] [--keep]
#
#   BUILD           reel's build directory (BUILD/reel, BUILD/peers/*; `make peers-bin`)
#   --quick         small sizes, 3 s per throughput run, one run per figure (not medians)
#   --only LIST     systems to run, comma-separated, from: reel redis floor floor-mhd
#                   floor-mhdz floor-mhdzl postgres sqlite streams nginx reel-nosync redis-everysec
#                   reel-journal (default: all)
#   --workloads LIST  workloads to run, comma-separated, from: ingest_batch ingest_single
#                   ingest_mix poll100 restore_1k restore_1m export bytes_per_event bytes_ratio
#                   fanout restart_ms (default: all; e.g. the read rows: poll100,restore_1m)
#   --skip-restart  leave out restart_ms (its 10 GiB data sets are the slow part)
#   --keep          keep build/peers-tmp/<system> after each system (debugging)
#
# Order: the machine's limits first (build/peers/limits: fdatasync rate, sequential write,
# memcpy, loopback TCP, flushing 36 random or contiguous pages), then each system: source
# bench/peers/<module>.sh, <module>_start DIR (a fresh directory), every <module>_<workload>
# it defines, <module>_stop, delete DIR.
# A system name with a dash is a labelled relaxed variant of a module (redis-everysec:
# module redis, VARIANT=everysec); variants run only the ingest workloads.
# Modules see: RESULTS PEERS_TMP QUICK BUILD ROOT PEERS_BIN (BUILD/peers) SYS (the system
# name to report under) VARIANT DUR (seconds per throughput run: 10, quick 3) REPEAT (runs
# per figure: 3, quick 1) RESTORE_N (1M, quick 200k) RESTART_BYTES (10 GiB, quick 1 GiB),
# and the helpers of lib.sh plus median_of (below) and peer_pid (register a server pid
# that the exit trap must kill).
# Results: build/peers-tmp/results.tsv (lib.sh format), the table on stdout and in
# build/peers-results.md. Cleanup on exit or Ctrl-C: the current module's stop, then
# every registered pid.
set -u

usage() { sed -n '2,29p' "$0"; }
[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
BUILD=$1; shift
QUICK=0 ONLY="" SKIP_RESTART=0 KEEP=0 PICK=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --only) ONLY=${2:?--only needs a list}; shift ;;
        --workloads) PICK=${2:?--workloads needs a list}; shift ;;
        --skip-restart) SKIP_RESTART=1 ;;
        --keep) KEEP=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift
done

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
BUILD=$(cd "$BUILD" && pwd) || exit 1
PEERS_BIN=$BUILD/peers
PEERS_TMP=$ROOT/build/peers-tmp
RESULTS=$PEERS_TMP/results.tsv
SYSTEMS="reel redis floor floor-mhd floor-mhdz floor-mhdzl postgres sqlite streams nginx reel-nosync redis-everysec reel-journal"
WORKLOADS="ingest_batch ingest_single ingest_mix poll100 restore_1k restore_1m export
bytes_per_event bytes_ratio fanout restart_ms"
RELAXED_WORKLOADS="ingest_batch ingest_single"
if [ -n "$PICK" ]; then
    for w in ${PICK//,/ }; do
        case " $(echo $WORKLOADS) " in *" $w "*) ;; *) echo "run.sh: unknown workload '$w'" >&2; exit 2 ;; esac
    done
    relaxed=""  # the relaxed variants (reel-nosync, ...) run the picked ingest workloads
    for w in $RELAXED_WORKLOADS; do
        case ",$PICK," in *",$w,"*) relaxed="$relaxed $w" ;; esac
    done
    WORKLOADS=${PICK//,/ } RELAXED_WORKLOADS=$relaxed
fi
if [ "$QUICK" = 1 ]; then
    DUR=3 REPEAT=1 RESTORE_N=200000 RESTART_BYTES=$((1 << 30))
else
    DUR=10 REPEAT=3 RESTORE_N=1000000 RESTART_BYTES=$((10 << 30))
fi
export RESULTS PEERS_TMP QUICK BUILD ROOT PEERS_BIN DUR REPEAT RESTORE_N RESTART_BYTES
. "$ROOT/bench/peers/lib.sh"

for b in reel peers/limits peers/fanout peers/reqlat peers/resp_load; do
    [ -x "$BUILD/$b" ] || { echo "run.sh: $BUILD/$b missing: run 'make all peers-bin'" >&2; exit 1; }
done
mkdir -p "$PEERS_TMP"
case $(stat -f -c %T "$PEERS_TMP") in
    tmpfs|ramfs) echo "run.sh: $PEERS_TMP is on a $(stat -f -c %T "$PEERS_TMP"): not the disk" >&2; exit 1 ;;
esac
: >"$RESULTS"
PIDFILE=$PEERS_TMP/pids
: >"$PIDFILE"
# 1,000 subscribers plus 64 load connections, for the client and for every server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- helpers for the modules ----

peer_pid() { echo "$1" >>"$PIDFILE"; }   # peer_pid PID: killed by the exit trap

median_of() {  # median_of CMD...: run CMD $REPEAT times (each prints a number first), print
    local i r out=""  # the median of the first numbers; fails as soon as one run fails
    for i in $(seq 1 "$REPEAT"); do
        r=$("$@") || return 1
        out="$out$r
"
    done
    printf '%s' "$out" | median
}

# ---- cleanup ----

CURRENT_MODULE=""
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$CURRENT_MODULE" ] && declare -F "${CURRENT_MODULE}_stop" >/dev/null; then
        "${CURRENT_MODULE}_stop" >/dev/null 2>&1
    fi
    local p
    while read -r p; do
        [ -n "$p" ] && kill "$p" 2>/dev/null
    done <"$PIDFILE"
    sleep 0.5
    while read -r p; do
        [ -n "$p" ] && kill -9 "$p" 2>/dev/null
    done <"$PIDFILE"
    [ "$KEEP" = 1 ] || rm -rf "${SYS_DIR:-/nonexistent}"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---- the machine ----

machine_limits() {
    log "machine limits (fdatasync, sequential write, memcpy, loopback, flushing 36 pages)"
    local secs=2 mib=512 i
    [ "$QUICK" = 1 ] && mib=256
    for i in $(seq 1 "$REPEAT"); do
        "$PEERS_BIN/limits" --dir "$PEERS_TMP" --seconds "$secs" --seq-mib "$mib"
    done >"$PEERS_TMP/limits.txt" || { log "limits failed"; return; }
    for k in limit_fdatasync limit_seqwrite limit_memcpy limit_loopback limit_flush36_random \
        limit_flush36_contig; do
        local v unit better=higher
        v=$(awk -v k=$k '$1 == k {print $2}' "$PEERS_TMP/limits.txt" | median)
        unit=$(awk -v k=$k '$1 == k {print $3; exit}' "$PEERS_TMP/limits.txt")
        [ "$unit" = us ] && better=lower
        result "$k" machine "$v" "$unit" "$better" n/a "build/peers/limits, median of $REPEAT"
        log "  $k $v $unit"
    done
    result info_machine machine "$(nproc)" cpus higher n/a \
        "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); $(free -g | awk '/Mem:/ {print $2}') GiB RAM; $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg)"
    local ev mix
    ev=$("$ROOT/bench/peers/gen_events.py" --format stats --count 4096 | awk '{print $4}')
    mix=$("$ROOT/bench/peers/gen_events.py" --format stats --count 100000 --mix "$BUILD/reel" | awk '{print $4}')
    result info_event_bytes machine "$ev" bytes higher n/a "gen_events.py 1 KiB events, mean JSON line"
    result info_mix_bytes machine "$mix" bytes higher n/a "reel mock-agent mix, mean JSON line"
}

# ---- one system ----

run_system() {  # run_system SYSTEM
    SYS=$1
    local module=${SYS%%-*} fn w
    VARIANT=""
    [ "$module" != "$SYS" ] && VARIANT=${SYS#*-}
    export SYS VARIANT
    if [ ! -f "$ROOT/bench/peers/$module.sh" ]; then
        log "$SYS: no bench/peers/$module.sh; skipped"
        for w in $WORKLOADS; do result_na "$w" "$SYS" "no module bench/peers/$module.sh"; done
        return
    fi
    # shellcheck source=/dev/null
    . "$ROOT/bench/peers/$module.sh"
    SYS_DIR=$PEERS_TMP/$SYS
    rm -rf "$SYS_DIR"
    mkdir -p "$SYS_DIR"
    log "$SYS: start"
    CURRENT_MODULE=$module
    if ! "${module}_start" "$SYS_DIR"; then
        log "$SYS: start failed"
        for w in $WORKLOADS; do result_na "$w" "$SYS" "$module failed to start"; done
        "${module}_stop" 2>/dev/null
        CURRENT_MODULE=""
        return
    fi
    local list=$WORKLOADS
    [ -n "$VARIANT" ] && list=$RELAXED_WORKLOADS
    for w in $list; do
        fn=${module}_$w
        if [ "$w" = restart_ms ] && [ "$SKIP_RESTART" = 1 ]; then
            result_na restart_ms "$SYS" "skipped (--skip-restart)"
            continue
        fi
        if ! declare -F "$fn" >/dev/null; then
            # A module may have explained the gap itself (result_na in its start).
            grep -q "^$w[a-z0-9_]*	$SYS	" "$RESULTS" || result_na "$w" "$SYS" "not measured: no $fn"
            continue
        fi
        log "$SYS: $w"
        local t0=$SECONDS
        "$fn" || { log "$SYS: $w failed"; result_na "$w" "$SYS" "$fn failed (see the log above)"; }
        log "$SYS: $w done in $((SECONDS - t0)) s"
    done
    log "$SYS: stop"
    "${module}_stop"
    CURRENT_MODULE=""
    [ "$KEEP" = 1 ] || rm -rf "$SYS_DIR"
    # A module's functions must not leak into the next system's run.
    for fn in $(declare -F | awk -v p="${module}_" 'index($3, p) == 1 {print $3}'); do unset -f "$fn"; done
}

machine_limits
for s in $SYSTEMS; do
    case ",${ONLY:-$s}," in *",$s,"*) run_system "$s" ;; esac
done
SYS_DIR=""
python3 "$ROOT/bench/peers/table.py" "$RESULTS" | tee "$ROOT/build/peers-results.md"
log "table also in build/peers-results.md; raw results in $RESULTS"
