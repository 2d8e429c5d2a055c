#!/bin/sh
# bench_streams.sh -- Durable Streams throughput: reel beside the reference server.
#
#   bench/bench_streams.sh [SECONDS] [CONNECTIONS] [BYTES]
#
# Starts build/reel serve (--sync full, then --sync none) and the reference server
# (@durable-streams/server 0.3.7, file-backed: log files + LMDB metadata, fdatasync before
# acknowledging; installed with npm into build/bench-ds, not committed) on temporary
# directories, then drives each with wrk over CONNECTIONS keep-alive connections:
#   append: POST of BYTES bytes (byte mode) round-robin over 32 streams, SECONDS seconds;
#   append to one stream: the same, every connection writing to a single stream;
#   read:   GET ?offset=-1 (catch-up read of a whole stream) round-robin over 32 JSON
#           streams created with the same 1000 messages each (one PUT of a 1000-element
#           array, about 270 KiB of JSON), SECONDS seconds.
# Prints a Markdown table. Numbers only, never pass/fail. Needs wrk, node, npm, curl.
# Defaults: 10 32 256.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10} conns=${2:-32} bytes=${3:-256}
work=$root/build/bench-ds
mkdir -p "$work"
cp "$root/bench/ref_server.mjs" "$work/"
if [ ! -d "$work/node_modules/@durable-streams/server" ]; then
    (cd "$work" && { [ -f package.json ] || printf '{"private":true,"type":"module"}\n' >package.json; } &&
     npm install --no-audit --no-fund @durable-streams/server@0.3.7 >/dev/null 2>&1)
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/reel-bench-ds.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { i=0; until curl -s -o /dev/null "$1"; do i=$((i+1)); [ $i -lt 100 ] || return 1; sleep 0.1; done; }

cat >"$tmp/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.body = string.rep("a", $bytes)
local n = 0
request = function() n = n + 1; return wrk.format(nil, "/v1/stream/bench-" .. (n % 32)) end
LUA
sed 's|"/v1/stream/bench-" .. (n % 32)|"/v1/stream/one"|' "$tmp/post.lua" >"$tmp/one.lua"
cat >"$tmp/get.lua" <<'LUA'
local n = 0
request = function() n = n + 1; return wrk.format("GET", "/v1/stream/read-" .. (n % 32) .. "?offset=-1") end
LUA
python3 -c 'import json; print(json.dumps([{"i": i, "text": "x" * 240} for i in range(1000)]))' >"$tmp/read.json"

# wrk's summary -> "req/s p50_ms p99_ms MiB/s"
measure() {
    wrk -t4 -c"$conns" -d"${secs}s" --latency -s "$2" "$1" 2>&1 | awk '
        /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
        /^Requests\/sec/ { rps = $2 } /^Transfer\/sec/ { tr = $2 }
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        function mib(v) { if (v ~ /GB$/) return v * 1024; if (v ~ /MB$/) return v + 0; if (v ~ /KB$/) return v / 1024; return v / 1048576 }
        END { printf "%d %.2f %.2f %.1f\n", rps, ms(p50), ms(p99), mib(tr) }'
}

bench() { # NAME BASE_URL
    for i in $(seq 0 31); do
        curl -s -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' "$2/v1/stream/bench-$i"
        curl -s -o /dev/null -X PUT -H 'Content-Type: application/json' --data-binary @"$tmp/read.json" \
            "$2/v1/stream/read-$i"
    done
    curl -s -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' "$2/v1/stream/one"
    set -- "$1" "$2" $(measure "$2" "$tmp/post.lua") $(measure "$2" "$tmp/one.lua") \
        $(measure "$2" "$tmp/get.lua")
    printf '| %s | %s | %s / %s | %s | %s / %s | %s | %s / %s | %s |\n' "$1" "$3" "$4" "$5" \
        "$7" "$8" "$9" "${11}" "${12}" "${13}" "${14}"
}

echo "Durable Streams, $conns connections, $secs s per phase, $bytes-byte appends over 32 streams"
echo
echo "| server | appends/s (32 streams) | p50 / p99 ms | appends/s (1 stream) | p50 / p99 ms | catch-up reads/s (1000 msgs each) | p50 / p99 ms | read MiB/s |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for sync in full none; do
    p=$(port)
    "$root/build/reel" serve --data "$tmp/reel-$sync" --listen "127.0.0.1:$p" --sync "$sync" \
        >"$tmp/reel-$sync.log" 2>&1 &
    pid=$!
    wait_up "http://127.0.0.1:$p/v1/health"
    bench "reel --sync $sync" "http://127.0.0.1:$p"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
p=$(port)
(cd "$work" && exec node ref_server.mjs "$p" "$tmp/ref") >"$tmp/ref.log" 2>&1 &
pid=$!
wait_up "http://127.0.0.1:$p/v1/stream/x"
bench "@durable-streams/server 0.3.7 (file)" "http://127.0.0.1:$p"
