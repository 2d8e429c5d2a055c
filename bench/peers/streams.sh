# streams.sh -- bench-peers module: the Durable Streams reference server.
# Sourced by bench/peers/run.sh after lib.sh (module contract: lib.sh).
#
# @durable-streams/server 0.3.7 (npm; installed into build/bench-ds by bench/peers/deps.sh,
# started by bench/ref_server.mjs as bench/bench_streams.sh does), file-backed: each append
# is written to the stream's segment file and fdatasync'ed (concurrent appends to one file
# share an fdatasync), then its metadata is put in LMDB, before the answer: durable per
# acknowledgement. Streams are JSON mode (Content-Type application/json): a POSTed array
# becomes one message per element, a GET answers a JSON array.
#
# Protocol limits that shape the rows (docs/durable-streams.md):
#   - a GET returns everything after its offset, to the tail, in one answer (this server
#     reads the whole segment file per request); "100 events after an offset" is a GET of
#     a stream holding exactly 100 events after that offset;
#   - there is no tail read (newest N): restore is n/a;
#   - export is a GET ?offset=-1 of the whole stream.

ST_WORK=${BUILD:-build}/bench-ds
ST_PID=""

st_install() {
    [ -d "$ST_WORK/node_modules/@durable-streams/server" ] || bench/peers/deps.sh >&2 || return 1
    cp bench/ref_server.mjs "$ST_WORK/"
}

st_launch() {  # DATA_DIR: starts the server on ST_PORT, sets ST_PID (node itself: exec)
    (cd "$ST_WORK" && exec node ref_server.mjs "$ST_PORT" "$1") >>"$ST_DIR/server.log" 2>&1 &
    ST_PID=$!
    declare -F peer_pid >/dev/null && peer_pid "$ST_PID"
    wait_port "$ST_PORT" 60
}

st_halt() {
    [ -n "$ST_PID" ] || return 0
    kill "$ST_PID" 2>/dev/null   # SIGTERM: ref_server.mjs stops the server cleanly
    wait "$ST_PID" 2>/dev/null
    ST_PID=""
}

streams_start() {  # DIR
    mkdir -p "$1" && ST_DIR=$(cd "$1" && pwd) && [ -n "$ST_DIR" ] || return 1
    st_install || return 1
    ST_PORT=$(free_port)
    ST_URL=http://127.0.0.1:$ST_PORT
    st_launch "$ST_DIR/data" || { cat "$ST_DIR/server.log" >&2; return 1; }
    ST_SECS=${DUR:-10} ST_REPS=${REPEAT:-3} ST_BIG=${RESTORE_N:-1000000}
    # A GET is answered as one JS string (formatJsonMessages joins every message), and V8
    # caps a string at 536,870,888 characters: a stream of more than ~500k 1 KiB events
    # cannot be read back at all. The export stream stops below that (labelled).
    [ "$ST_BIG" -gt 400000 ] && ST_BIG=400000
    ST_BYTES=${RESTART_BYTES:-$((10 << 30))}
    log "durable streams reference server $(node -p "require('$ST_WORK/node_modules/@durable-streams/server/package.json').version") (node $(node --version)) on $ST_URL"
}

streams_stop() {
    st_halt
    rm -rf "${ST_DIR:?}"
}

# st_create NAME [BODY_FILE]: PUT a JSON-mode stream (a body becomes its first messages).
st_create() {
    curl -sf -o /dev/null -X PUT -H 'Content-Type: application/json' \
        ${2:+--data-binary @"$2"} "$ST_URL/v1/stream/$1"
}

st_create_many() {  # PREFIX COUNT
    local i
    for i in $(seq 0 $(($2 - 1))); do st_create "$1$i" || return 1; done
}

# One wrk run (2 threads, 64 connections unless told); prints requests/s. Fails on any
# non-2xx answer or socket error, so a refused request never counts as throughput.
st_wrk() {  # SCRIPT [CONNS] [SECS]
    local out
    # --timeout 30s: this server can take over wrk's default 2 s to answer under 64
    # connections; a slow answer is a slow answer, not an error.
    out=$(wrk -t2 -c"${2:-64}" -d"${3:-$ST_SECS}s" --timeout 30s -s "$1" "$ST_URL" 2>&1)
    if echo "$out" | grep -qE 'Non-2xx|Socket errors'; then
        echo "$out" >&2
        return 1
    fi
    echo "$out" | awk '/^Requests\/sec/ {print $2}'
}

# A wrk response hook that prints the first answer of each failing status, so that a
# failed run says why.
st_lua_errors() {
    cat <<'LUA'
local seen = {}
response = function(status, headers, body)
  if status >= 300 and not seen[status] then seen[status] = true; print("HTTP " .. status .. ": " .. body) end
end
LUA
}

# st_ingest KEY PREFIX BATCH JOIN WHAT [--mix]: median events/s of ST_REPS wrk runs.
st_ingest() {
    local lua=$ST_DIR/$1.lua runs=$ST_DIR/$1.runs i r
    st_create_many "$2" 64 || return 1   # PUT of an existing stream is 200
    python3 bench/peers/gen_events.py --format wrk --batch "$3" --join "$4" --bodies 16 \
        --path "/v1/stream/$2{n}" --paths 64 --content-type application/json ${6:+--mix "$BUILD/reel"} \
        >"$lua" || return 1
    st_lua_errors >>"$lua"
    : >"$runs"
    for i in $(seq "$ST_REPS"); do
        r=$(st_wrk "$lua") || return 1
        awk -v r="$r" -v b="$3" 'BEGIN{printf "%.0f\n", r * b}' >>"$runs"
    done
    result "$1" streams "$(median <"$runs")" events/s higher sync-per-ack \
        "$5; wrk -t2 -c64, POST of $3 event(s) ($4) to 64 JSON-mode streams, each append written + fdatasync'ed (shared per file) + LMDB metadata before 204; the three ingest rows share these 64 streams (the server keeps 100 files open and fails appends whose handle it evicts); ${ST_SECS}s x $ST_REPS, median"
}

# All three append to the same 64 streams: the server keeps at most 100 segment files open
# (FileHandlePool) and evicting a handle while an append's fdatasync is in flight fails
# that append ("handle not found", answered 404 "Stream not found"), so concurrent
# appends to more than ~100 streams do not work.
streams_ingest_batch()  { st_ingest ingest_batch w 100 array "1 KiB events"; }
streams_ingest_single() { st_ingest ingest_single w 1 single "1 KiB events"; }
streams_ingest_mix()    { st_ingest ingest_mix w 100 array "reel mock-agent mix" --mix; }

# NDJSON on stdin -> a JSON array on stdout
st_array() { python3 -c 'import sys; print("[" + ",".join(l.strip() for l in sys.stdin if l.strip()) + "]")'; }

# 64 streams of exactly 100 events each; a read is GET ?offset=-1 of a random one, which
# answers its 100 events (checked once here).
streams_poll100() {
    local i lua=$ST_DIR/poll.lua runs=$ST_DIR/poll.runs r n
    python3 bench/peers/gen_events.py --count 6400 | python3 -c '
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=60)
lines = [l.rstrip(b"\n") for l in sys.stdin.buffer if l.strip()]
for i in range(64):
    c.request("PUT", "/v1/stream/p%d" % i, body=b"[" + b",".join(lines[i * 100:(i + 1) * 100]) + b"]",
              headers={"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    if r.status not in (200, 201):
        sys.exit("streams poll setup: PUT p%d answered %d" % (i, r.status))
' "$ST_PORT" || return 1
    n=$(curl -sf "$ST_URL/v1/stream/p7?offset=-1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    [ "$n" = 100 ] || { log "streams: a poll read answered $n events, want 100"; return 1; }
    cat >"$lua" <<'LUA'
request = function()
  return wrk.format("GET", "/v1/stream/p" .. math.random(0, 63) .. "?offset=-1")
end
LUA
    : >"$runs"
    for i in $(seq "$ST_REPS"); do
        r=$(st_wrk "$lua") || return 1
        awk -v r="$r" 'BEGIN{printf "%.0f\n", r * 100}' >>"$runs"
    done
    result poll100 streams "$(median <"$runs")" events/s higher sync-per-ack \
        "wrk -t2 -c64, GET ?offset=-1 of a random one of 64 streams holding exactly 100 events (a GET answers everything after its offset, to the tail, as one JSON array); ${ST_SECS}s x $ST_REPS, median"
}

st_no_restore() {  # KEY
    local why="no tail read in the Durable Streams protocol: a GET returns everything after an offset the client must already hold (offset=now returns nothing), so the newest 50 of a session cannot be asked for"
    result_na "${1}_p50" streams "$why"
    result_na "${1}_p99" streams "$why"
}
streams_restore_1k() { st_no_restore restore_1k; }
streams_restore_1m() { st_no_restore restore_1m; }

# The big stream (ST_BIG events) for export and bytes per event: POSTs of 1,000-event
# arrays on one keep-alive connection (preparation, not measured).
ST_BPE=""
st_load_big() {
    local before after t0=$SECONDS
    [ -n "$ST_BPE" ] && return 0
    st_create big || return 1
    before=$(dir_bytes "$ST_DIR/data")
    python3 bench/peers/gen_events.py --count "$ST_BIG" | python3 -c '
import http.client, sys
port = int(sys.argv[1])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
def post(lines):
    c.request("POST", "/v1/stream/big", body=b"[" + b",".join(lines) + b"]",
              headers={"Content-Type": "application/json"})
    r = c.getresponse(); body = r.read()
    if r.status not in (200, 204):
        sys.exit("streams load: %d %s" % (r.status, body[:300]))
chunk = []
for line in sys.stdin.buffer:
    chunk.append(line.rstrip(b"\n"))
    if len(chunk) == 1000:
        post(chunk); chunk = []
if chunk:
    post(chunk)
' "$ST_PORT" || return 1
    after=$(dir_bytes "$ST_DIR/data")
    ST_BPE=$(( (after - before) / ST_BIG ))
    log "streams: loaded $ST_BIG events in $((SECONDS - t0)) s"
}

streams_export() {
    local f=$ST_DIR/export.zst runs=$ST_DIR/export.runs i t json n
    st_load_big || return 1
    : >"$runs"
    for i in $(seq "$ST_REPS"); do
        # The server answers the whole stream as one JSON array; zstd -3 -T1 compresses it
        # as it arrives (the same level reel's export uses).
        t=$( { /usr/bin/time -f %e sh -c "curl -sf '$ST_URL/v1/stream/big?offset=-1' | zstd -3 -T1 -q -c >'$f'"; } 2>&1) || {
            result_na export streams "GET ?offset=-1 of the $ST_BIG-event stream failed: $(tail -n 3 "$ST_DIR/server.log" | tr '\n' ' ' | cut -c1-200)"
            return 0; }
        json=$(zstd -dc "$f" | wc -c)
        awk -v b="$json" -v t="$t" 'BEGIN{printf "%.1f\n", b / t / 1e6}' >>"$runs"
    done
    n=$(zstd -dc "$f" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    [ "$n" = "$ST_BIG" ] || { log "streams: export held $n events, want $ST_BIG"; return 1; }
    result export streams "$(median <"$runs")" MB/s higher sync-per-ack \
        "GET ?offset=-1 of a $ST_BIG-event stream (capped at 400k: the server builds the answer as one JS string, max 536,870,888 chars, so ~500k+ events cannot be read back; one JSON array of $json bytes, checked: $n events) piped through zstd -3 -T1 (CLI); MB/s of JSON; x $ST_REPS, median"
    rm -f "$f"
}

streams_bytes_per_event() {
    st_load_big || return 1
    result bytes_per_event streams "$ST_BPE" bytes lower sync-per-ack \
        "growth of the data directory (du -sb: segment files + LMDB metadata) over the $ST_BIG-event load / $ST_BIG; a message is stored as its JSON + 5 bytes of framing"
}

# 60 appends and one run in every mode (reel has 200 x REPEAT): on each append this server
# re-reads the stream's whole segment file once per SSE subscriber, so a run's cost grows
# with the square of its length (60 appends already take about 2 minutes).
streams_fanout() {
    local body=$ST_DIR/fanout.json runs=$ST_DIR/fanout.runs i n=60
    python3 bench/peers/gen_events.py --format fanout >"$body"
    : >"$runs"
    for i in 1; do
        st_create "fan$i" || return 1
        "$PEERS_BIN/fanout" --subscribers 1000 --events "$n" --interval-ms 20 --body "$body" \
            --sse "$ST_URL/v1/stream/fan$i?offset=now&live=sse" \
            --publish "$ST_URL/v1/stream/fan$i" --content-type application/json >>"$runs" || return 1
    done
    local what="build/peers/fanout: 1,000 SSE subscribers (live=sse from offset=now) on one stream, $n ~1 KiB appends 20 ms apart (POST, durable), latency from send to receipt; $(tail -n 1 "$runs" | awk '{print $2 " of " $4}') deliveries; one run (on each append the server re-reads the stream's segment file once per subscriber: the run's cost grows with its length squared)"
    result fanout_p50 streams "$(awk '{print $6}' "$runs" | median)" ms lower sync-per-ack "$what"
    result fanout_p99 streams "$(awk '{print $8}' "$runs" | median)" ms lower sync-per-ack "$what"
}

# Restart: a fresh data directory filled through the API (this server has no bulk path)
# by wrk POSTing 1,000-event arrays to 64 streams in 10 s rounds until ST_BYTES or 240 s,
# then the server is spawned 3 times and timed to its first 200 (bench/peers/first_read.py)
# on a small stream (a read of a big one would time reading its whole file).
streams_restart_ms() {
    local d=$ST_DIR/restart lua=$ST_DIR/load.lua t0=$SECONDS size=0 runs=$ST_DIR/restart.runs i
    st_halt
    rm -rf "$ST_DIR/data"
    st_launch "$d" || return 1
    python3 bench/peers/gen_events.py --count 50 | st_array >"$ST_DIR/probe.json"
    st_create probe "$ST_DIR/probe.json" && st_create_many r 64 || return 1
    python3 bench/peers/gen_events.py --format wrk --batch 1000 --join array --bodies 4 \
        --path "/v1/stream/r{n}" --paths 64 --content-type application/json >"$lua" || return 1
    while [ "$size" -lt "$ST_BYTES" ] && [ $((SECONDS - t0)) -lt 240 ]; do
        st_wrk "$lua" 16 10 >/dev/null || return 1
        size=$(dir_bytes "$d")
    done
    log "streams: restart data $size bytes in $((SECONDS - t0)) s"
    st_halt
    : >"$runs"
    for i in 1 2 3; do
        python3 bench/peers/first_read.py --http "$ST_PORT" "/v1/stream/probe?offset=-1" -- \
            node "$ST_WORK/ref_server.mjs" "$ST_PORT" "$d" >>"$runs" || return 1
    done
    result restart_ms streams "$(awk '{print $2}' "$runs" | median)" ms lower sync-per-ack \
        "$(awk -v b="$size" 'BEGIN{printf "%.1f GiB", b / 1073741824}') data directory (what the API loads in <= 240 s: wrk, 1,000-event arrays, 16 connections), 65 streams; spawn of node ref_server.mjs to the first 200 of a GET (bench/peers/first_read.py), warm page cache, median of 3"
    rm -rf "$d"
}
