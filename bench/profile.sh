#!/bin/bash
# profile.sh -- where reel serve's time goes on issue 19's two hot paths (docs/BENCHMARKS.md
# "Issue 19 baseline"): (a) single-event durable ingest, 64 connections, and (b) the newest 50
# events of a long session, one connection, sequential requests.
#
#   bench/profile.sh BUILD OUTDIR [--secs S] [--events N] [--only LIST]
#
# For each path: a fresh `reel serve --sync full` on 127.0.0.1, load from wrk or
# build/peers/reqlat, `perf record -e cpu-clock --call-graph dwarf` on the server's process
# for S seconds (default 8) after a 2 s warm-up; then OUTDIR/<path>.folded (folded stacks),
# <path>.svg (flame graph, bench/flame.py), <path>.top (self / inclusive % of the hottest
# frames) and <path>.io (what the kernel saw: write_bytes and syscalls of the server per
# event, the write requests and bytes the disk did, commits from /metrics); for (a) also
# single.syscalls: the commit's writes and syncs timed by tests/powerloss/plshim.c
# (PLSHIM_STATS). (b) loads N events (default 200,000, 1 KiB) first. (c) batched durable
# ingest, the row "100 events per request" of
# bench/peers (wrk -t2 -c64, POSTs of 100 NDJSON events to 64 sessions), with batch.io as
# for (a) plus the server's CPU seconds per event (utime + stime from /proc).
# --only picks paths by name: single, newest50, batch (comma-separated; default all).
# Needs perf (Debian linux-perf) with perf_event_paranoid <= 2 or root; a VM without PMU
# counters still has the cpu-clock software event used here.
set -u
BUILD=${1:?usage: bench/profile.sh BUILD OUTDIR [--secs S] [--events N]}
OUT=${2:?usage: bench/profile.sh BUILD OUTDIR [--secs S] [--events N]}
shift 2
SECS=8 N=200000 ONLY=single,newest50,batch
while [ $# -gt 0 ]; do
    case "$1" in
        --secs) SECS=$2; shift ;;
        --events) N=$2; shift ;;
        --only) ONLY=$2; shift ;;
        *) echo "profile.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TMP=$ROOT/build/profile-tmp
rm -rf "$TMP" && mkdir -p "$TMP"
PID=""
# perf's data files go to memory where there is some, so that the device figures below
# (dev()) count the server's writes only.
PDIR=$TMP
[ -d /dev/shm ] && [ -w /dev/shm ] && PDIR=$(mktemp -d /dev/shm/reel-profile.XXXXXX)
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$TMP"; [ "$PDIR" != "$TMP" ] && rm -rf "$PDIR"' EXIT

log() { printf '[profile %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

serve() {  # serve DATA: sets PID PORT
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$BUILD/reel" serve --data "$1" --listen "127.0.0.1:$PORT" --sync full \
        --max-connections-per-ip 0 --max-connections 4096 2>"$TMP/serve.log" &
    PID=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/metrics" >/dev/null && return 0; sleep 0.1; done
    return 1
}

metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
io() { awk '$1 == "write_bytes:" || $1 == "syscw:" || $1 == "syscr:" {printf "%s ", $2}' "/proc/$PID/io"; }
# The device under the data directory, as the kernel's block statistics count it: write
# requests completed and sectors written (/sys/class/block/DEV/stat fields 5 and 7). The
# process's write_bytes above counts every page it dirtied (4x the device's figure here,
# docs/BENCHMARKS.md session 11); these are the writes the disk did, for the whole
# machine (keep it quiet). "0 0" when the device is not found.
DEVSTAT=/sys/class/block/$(basename "$(df --output=source "$ROOT" | tail -1)")/stat
dev() { [ -r "$DEVSTAT" ] && awk '{printf "%s %s", $5, $7}' "$DEVSTAT" || echo "0 0"; }

record() {  # record NAME: perf on $PID for SECS seconds, then the outputs
    local name=$1
    perf record -q -e cpu-clock -F "${PERF_FREQ:-499}" --call-graph dwarf,16384 -p "$PID" -o "$PDIR/$name.data" \
        -- sleep "$SECS" 2>"$TMP/perf.err" || { cat "$TMP/perf.err" >&2; return 1; }
}

report() {  # report NAME TITLE
    local name=$1
    perf script -i "$PDIR/$name.data" 2>/dev/null | python3 "$ROOT/bench/flame.py" fold >"$OUT/$name.folded"
    python3 "$ROOT/bench/flame.py" svg --title "$2" <"$OUT/$name.folded" >"$OUT/$name.svg"
    python3 "$ROOT/bench/flame.py" top 40 <"$OUT/$name.folded" >"$OUT/$name.top"
    log "$name: $(head -1 "$OUT/$name.top"); $OUT/$name.{folded,svg,top}"
}

want() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }  # utime + stime, clock ticks

# ---- (c) batched durable ingest, 100 events per request, 64 connections ----
# The kernel's view of the window from $io0 to $io1 (syscr syscw write_bytes), per event
# ($e0..$e1) and per commit ($c0..$c1), over $t0..$t1.
io_summary() {
    echo "$io0 $io1" | awk -v e="$((e1 - e0))" -v c="$((c1 - c0))" -v t0="$t0" -v t1="$t1" '{
        printf "syscr %.0f syscw %.0f write_bytes %.0f over %.1f s\n", $4 - $1, $5 - $2, $6 - $3, t1 - t0
        if (e > 0) printf "per event: %.0f bytes written to the block layer, %.2f read + %.2f write syscalls\n", ($6 - $3) / e, ($4 - $1) / e, ($5 - $2) / e
        if (c > 0) printf "per commit: %.1f events, %.0f bytes written\n", e / c, ($6 - $3) / c }'
    echo "$dv0 $dv1" | awk -v e="$((e1 - e0))" -v c="$((c1 - c0))" '$1 + $2 > 0 && e > 0 && c > 0 {
        printf "device: %.2f write requests and %.0f bytes per event, %.1f requests and %.0f bytes per commit\n", ($3 - $1) / e, ($4 - $2) * 512 / e, ($3 - $1) / c, ($4 - $2) * 512 / c }'
}

if want batch; then
log "batched ingest: wrk -t2 -c64, 100 events per POST, $((SECS + 4)) s, perf for $SECS s"
serve "$TMP/c" || { log "reel serve did not start"; exit 1; }
"$ROOT/bench/peers/gen_events.py" --format wrk --batch 100 --bodies 16 \
    --path '/v1/sessions/b{n}/events' >"$TMP/batch.lua"
wrk -t2 -c64 -d"$((SECS + 4))s" --latency -s "$TMP/batch.lua" "http://127.0.0.1:$PORT" >"$TMP/wrkc.out" &
WRK=$!
sleep 2
c0=$(metric reel_store_commits_total) e0=$(metric reel_store_events_total) io0=$(io) dv0=$(dev) k0=$(cpu_ticks)
t0=$(date +%s.%N)
record batch
t1=$(date +%s.%N)
c1=$(metric reel_store_commits_total) e1=$(metric reel_store_events_total) io1=$(io) dv1=$(dev) k1=$(cpu_ticks)
wait "$WRK"
{
    echo "window ${SECS}s: $((c1 - c0)) commits, $((e1 - e0)) events (reel_store_*_total); load average $(cut -d' ' -f1-3 /proc/loadavg)"
    io_summary
    awk -v e="$((e1 - e0))" -v k="$((k1 - k0))" -v hz="$(getconf CLK_TCK)" -v t0="$t0" -v t1="$t1" 'BEGIN {
        if (e > 0) printf "server CPU: %.2f s in %.1f s (%.2f cores), %.2f us per event (perf adds its own)\n", k / hz, t1 - t0, k / hz / (t1 - t0), k / hz / e * 1e6 }'
    echo "wrk (whole run, includes the warm-up and the perf window; requests of 100 events):"
    grep -E 'Requests/sec|Latency|50%|99%' "$TMP/wrkc.out"
} >"$OUT/batch.io"
cat "$OUT/batch.io" >&2
kill "$PID"; wait "$PID" 2>/dev/null; PID=""
report batch "reel serve: batched durable ingest, 100 events per request, 64 connections (perf cpu-clock, dwarf)"
fi

# ---- (a) single-event durable ingest, 64 connections ----
if want single; then
log "single-event ingest: wrk -t2 -c64, $((SECS + 4)) s, perf for $SECS s"
serve "$TMP/a" || { log "reel serve did not start"; exit 1; }
"$ROOT/bench/peers/gen_events.py" --format wrk --batch 1 --join single --bodies 1000 \
    --content-type application/json --path '/v1/sessions/s{n}/events' >"$TMP/single.lua"
wrk -t2 -c64 -d"$((SECS + 4))s" --latency -s "$TMP/single.lua" "http://127.0.0.1:$PORT" >"$TMP/wrk.out" &
WRK=$!
sleep 2
c0=$(metric reel_store_commits_total) e0=$(metric reel_store_events_total) io0=$(io) dv0=$(dev)
t0=$(date +%s.%N)
record single
t1=$(date +%s.%N)
c1=$(metric reel_store_commits_total) e1=$(metric reel_store_events_total) io1=$(io) dv1=$(dev)
wait "$WRK"
{
    echo "window ${SECS}s: $((c1 - c0)) commits, $((e1 - e0)) events (reel_store_*_total)"
    io_summary
    echo "wrk (whole run, includes the warm-up and the perf window):"
    grep -E 'Requests/sec|Latency|50%|99%' "$TMP/wrk.out"
} >"$OUT/single.io"
cat "$OUT/single.io" >&2
kill "$PID"; wait "$PID" 2>/dev/null; PID=""
report single "reel serve: single-event durable ingest, 64 connections (perf cpu-clock, dwarf)"

# ---- (a2) the single-event commit's syscalls, timed by tests/powerloss/plshim.c ----
# The shim in statistics mode (no crash point: nothing is undone) times every write and
# sync on the store's files; divided by the commits of the window, that is where a group's
# time goes (docs/BENCHMARKS.md, "Issue 19: the write path").
SHIM=$BUILD/powerloss/plshim.so
if [ -f "$SHIM" ] || make -s -C "$ROOT" "${BUILD#"$ROOT"/}/powerloss/plshim.so" >/dev/null 2>&1; then
    log "single-event ingest under the syscall-timing shim: wrk -t2 -c64, $SECS s"
    mkdir -p "$TMP/a2"
    PLSHIM_DIR="$TMP/a2" PLSHIM_STATS="$TMP/a2.stats" LD_PRELOAD="$SHIM" serve "$TMP/a2/data" ||
        { log "reel serve did not start under the shim"; exit 1; }
    c0=$(metric reel_store_commits_total) s0=$(metric reel_store_commit_seconds_sum)
    wrk -t2 -c64 -d"${SECS}s" --latency -s "$TMP/single.lua" "http://127.0.0.1:$PORT" >"$TMP/wrk2.out"
    c1=$(metric reel_store_commits_total) s1=$(metric reel_store_commit_seconds_sum)
    kill "$PID"; wait "$PID" 2>/dev/null; PID=""
    {
        echo "window ${SECS}s: $((c1 - c0)) commits, $(echo "$s0 $s1" | awk '{printf "%.3f", $2 - $1}') s in mdb_txn_commit (reel_store_commit_seconds_sum)"
        echo "per commit, from the shim (whole server run; calls, bytes, microseconds in the real call):"
        awk -v c="$((c1 - c0))" 'NR > 1 && $2 > 0 && c > 0 {
            printf "  %-12s %6.1f calls %9.0f bytes %8.0f us (max %s us per call)\n", $1, $2 / c, $3 / c, $4 / c, $5 }' "$TMP/a2.stats"
        grep -E 'Requests/sec|50%|99%' "$TMP/wrk2.out"
    } >"$OUT/single.syscalls"
    cat "$OUT/single.syscalls" >&2
fi

fi

# ---- (b) newest 50 of an N-event session ----
want newest50 || exit 0
log "newest 50: loading $N events"
serve "$TMP/b" || { log "reel serve did not start"; exit 1; }
"$ROOT/bench/peers/gen_events.py" --count "$N" | python3 -c '
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=600)
chunk = []
def post():
    c.request("POST", "/v1/sessions/big/events", body=b"".join(chunk), headers={"Content-Type": "application/x-ndjson"})
    r = c.getresponse(); r.read()
    if r.status != 200: sys.exit("load: %d" % r.status)
for line in sys.stdin.buffer:
    chunk.append(line)
    if len(chunk) == 10000: post(); chunk = []
if chunk: post()
' "$PORT" || exit 1
path="/v1/sessions/big/events?offset=$((N - 50))&limit=50"
"$BUILD/peers/reqlat" --http "127.0.0.1:$PORT" --requests 200 --path "$path" >/dev/null  # warm
"$BUILD/peers/reqlat" --http "127.0.0.1:$PORT" --requests 2000000 --path "$path" >"$TMP/reqlat.out" &
RQ=$!
sleep 1
record newest50
kill "$RQ" 2>/dev/null; wait "$RQ" 2>/dev/null
"$BUILD/peers/reqlat" --http "127.0.0.1:$PORT" --requests 3000 --path "$path" >"$OUT/newest50.io"
echo "(reqlat: one connection, 3,000 sequential GET $path after the perf window)" >>"$OUT/newest50.io"
"$BUILD/peers/reqlat" --http "127.0.0.1:$PORT" --requests 3000 \
    --path "/v1/sessions/big/events?offset=$((N - 5000))&limit=50" >>"$OUT/newest50.io"
echo "(the same 50 events 5,000 back: rendered envelopes not in the event cache on the first pass)" >>"$OUT/newest50.io"
cat "$OUT/newest50.io" >&2
kill "$PID"; wait "$PID" 2>/dev/null; PID=""
report newest50 "reel serve: newest 50 of a ${N}-event session, one connection (perf cpu-clock, dwarf)"
