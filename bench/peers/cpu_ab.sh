#!/bin/bash
# cpu_ab.sh -- the server's CPU per event under batched durable ingest, two builds side by
# side (issue 19: the batched row is bound by CPU, and CPU per event moves much less with
# the machine's load than the rate does).
#
#   bench/peers/cpu_ab.sh BUILD_A BUILD_B [ROUNDS] [SECS]
#
#   BUILD_A, BUILD_B  build directories holding reel; A is "before", B "after"
#   ROUNDS            rounds (default 4); A and B swap places every other round
#   SECS              seconds measured per run (default 4)
#   CPU_AB_EVENTS     (environment) more gen_events.py options, e.g. --realistic for issue
#                     19's transcript mix instead of the 1 KiB events
#   CPU_AB_SINGLE     (environment) 1: one JSON event per request instead (the single-event
#                     row's load, as run.sh's ingest_single: 1,000 different bodies)
# Each run: a fresh `reel serve --sync full` on 127.0.0.1, 1 s of wrk first (the store
# trains its first dictionary), then wrk -t2 -c64 for SECS s of POSTs of 100 x 1 KiB NDJSON
# events (or one, CPU_AB_SINGLE) to 64 sessions (bench/peers/gen_events.py, as run.sh's
# ingest_batch or ingest_single); the server's
# utime + stime from /proc/PID/stat over that window divided by reel_store_events_total's
# increase. Prints one line per run with the load average.
set -u
[ $# -ge 2 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
A=$1 B=$2 R=${3:-4} SECS=${4:-4}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$TMP"' EXIT
LUA=$TMP/batch.lua
if [ "${CPU_AB_SINGLE:-0}" = 1 ]; then
    "$ROOT/bench/peers/gen_events.py" --format wrk --batch 1 --join single --bodies 1000 \
        --content-type application/json ${CPU_AB_EVENTS:-} --path '/v1/sessions/s{n}/events' >"$LUA"
else
    "$ROOT/bench/peers/gen_events.py" --format wrk --batch 100 --bodies 16 ${CPU_AB_EVENTS:-} \
        --path '/v1/sessions/b{n}/events' >"$LUA"
fi
hz=$(getconf CLK_TCK)
events() { curl -s "http://127.0.0.1:$1/metrics" | awk '$1 == "reel_store_events_total" {print $2}'; }
for r in $(seq 1 "$R"); do
    for x in $( [ $((r % 2)) = 1 ] && echo A B || echo B A ); do
        bin=$([ $x = A ] && echo "$A" || echo "$B")/reel
        rm -rf "$TMP/data"
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        "$bin" serve --data "$TMP/data" --listen "127.0.0.1:$port" --sync full \
            --max-connections-per-ip 0 --max-connections 4096 2>"$TMP/log" &
        PID=$!
        for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/metrics" >/dev/null && break; sleep 0.1; done
        wrk -t2 -c64 -d1s -s "$LUA" "http://127.0.0.1:$port" >/dev/null 2>&1
        sleep 0.5
        e0=$(events "$port") k0=$(awk '{print $14 + $15}' "/proc/$PID/stat") t0=$(date +%s.%N)
        wrk -t2 -c64 -d"${SECS}s" -s "$LUA" "http://127.0.0.1:$port" >/dev/null 2>&1
        k1=$(awk '{print $14 + $15}' "/proc/$PID/stat") t1=$(date +%s.%N) e1=$(events "$port")
        kill "$PID"; wait "$PID" 2>/dev/null; PID=""
        awk -v r="$r" -v x="$x" -v e="$((e1 - e0))" -v k="$((k1 - k0))" -v hz="$hz" -v t0="$t0" \
            -v t1="$t1" -v l="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
            printf "round %d %s load %s: %d events in %.1f s (%.0f/s), server CPU %.2f s = %.2f us/event (%.2f cores)\n",
                r, x, l, e, t1 - t0, e / (t1 - t0), k / hz, (e > 0 ? k / hz / e * 1e6 : 0), k / hz / (t1 - t0) }'
    done
done
