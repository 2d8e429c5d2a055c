# reel.sh -- the reel module of bench/peers/run.sh (sourced; contract in lib.sh).
#
# `reel serve --sync full` (the default: every acknowledged append is fsynced; the
# committer group-commits concurrent requests) on a free loopback port; variant "nosync"
# (system reel-nosync) is `--sync none`, a labelled relaxed column; variant "journal"
# (system reel-journal) is `--journal` (durable: the write-ahead journal, docs/DESIGN.md),
# run like a variant on the ingest workloads only. Load comes from wrk
# (2 threads, 64 connections) with Lua scripts of gen_events.py bodies, latency from
# build/peers/reqlat (one keep-alive connection), fan-out from build/peers/fanout (SSE).

REEL_PID="" REEL_URL="" REEL_PORT="" REEL_DATA=""

reel_durability() {
    case $VARIANT in nosync) echo async ;; journal) echo journal ;; *) echo group-commit ;; esac
}

reel_serve() {  # reel_serve DATA_DIR LOG: start the server, set REEL_PID/REEL_PORT/REEL_URL
    local sync=full
    local extra=""
    [ "$VARIANT" = nosync ] && sync=none
    [ "$VARIANT" = journal ] && extra=--journal
    REEL_PORT=$(free_port)
    # REEL_SERVE_ARGS: more options for the server (experiments, e.g. "--zdict off")
    "$BUILD/reel" serve --data "$1" --listen "127.0.0.1:$REEL_PORT" --sync "$sync" $extra \
        ${REEL_SERVE_ARGS:-} \
        --max-connections-per-ip 0 --max-connections 4096 --max-sse-clients 4000 2>"$2" &
    REEL_PID=$!
    peer_pid "$REEL_PID"
    REEL_URL=http://127.0.0.1:$REEL_PORT
    wait_port "$REEL_PORT" 30
}

reel_start() {
    REEL_DATA=$1/data
    reel_serve "$REEL_DATA" "$1/reel.log"
}

reel_stop() {
    [ -n "$REEL_PID" ] || return 0
    kill "$REEL_PID" 2>/dev/null
    wait "$REEL_PID" 2>/dev/null
    REEL_PID=""
}

# POST NDJSON from stdin to a session in requests of 10,000 events (the route's limit),
# on one keep-alive connection: the bulk loads of the read workloads.
reel_load() {  # reel_load SESSION
    python3 -c '
import http.client, sys
port, session = int(sys.argv[1]), sys.argv[2]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
def post(lines):
    c.request("POST", "/v1/sessions/%s/events" % session, body=b"".join(lines),
              headers={"Content-Type": "application/x-ndjson"})
    r = c.getresponse(); body = r.read()
    if r.status != 200:
        sys.exit("reel_load: %d %s" % (r.status, body[:300]))
chunk = []
for line in sys.stdin.buffer:
    chunk.append(line)
    if len(chunk) == 10000:
        post(chunk); chunk = []
if chunk:
    post(chunk)
' "$REEL_PORT" "$1"
}

reel_wrk() {  # reel_wrk SCRIPT [WRK-ARGS]: "requests/s transfer-bytes/s [p50 p99]" (lib.sh wrk_run)
    wrk_run -t2 -c64 -d"${DUR}s" "${@:2}" -s "$1" "$REEL_URL"
}

reel_metric() {  # reel_metric NAME: a counter from /metrics
    curl -s "$REEL_URL/metrics" | awk -v n="$1" '$1 == n {print $2}'
}

reel_ingest_batch() {
    local lua=$SYS_DIR/batch.lua
    "$ROOT/bench/peers/gen_events.py" --format wrk --batch 100 --bodies 16 \
        --path '/v1/sessions/b{n}/events' >"$lua"
    local v
    v=$(median_of reel_wrk "$lua") || return 1
    v=$(echo "$v" | awk '{print $1 * 100}')
    result ingest_batch "$SYS" "$v" events/s higher "$(reel_durability)" \
        "wrk -t2 -c64, POST of 100 NDJSON events to 64 sessions, ${DUR}s, median of $REPEAT"
}

reel_ingest_single() {
    local lua=$SYS_DIR/single.lua runs=$SYS_DIR/single.runs i c0 c1 r
    "$ROOT/bench/peers/gen_events.py" --format wrk --batch 1 --join single --bodies 1000 \
        --content-type application/json --path '/v1/sessions/s{n}/events' >"$lua"
    : >"$runs"
    for i in $(seq 1 "$REPEAT"); do
        c0=$(reel_metric reel_store_commits_total)
        r=$(reel_wrk "$lua" --latency) || return 1
        c1=$(reel_metric reel_store_commits_total)
        echo "$r" | awk -v c="$((c1 - c0))" -v d="$DUR" '{print $1, c / d, $3, $4}' >>"$runs"
    done
    result ingest_single "$SYS" "$(cut -d' ' -f1 "$runs" | median)" events/s higher "$(reel_durability)" \
        "wrk -t2 -c64, POST of 1 JSON event to 64 sessions, ${DUR}s, median of $REPEAT"
    result ingest_single_p50 "$SYS" "$(cut -d' ' -f3 "$runs" | median)" ms lower "$(reel_durability)" \
        "wrk --latency of the ingest_single runs (64 connections in flight), median of $REPEAT"
    result ingest_single_p99 "$SYS" "$(cut -d' ' -f4 "$runs" | median)" ms lower "$(reel_durability)" \
        "wrk --latency of the ingest_single runs (64 connections in flight), median of $REPEAT"
    result aux_commits_single "$SYS" "$(cut -d' ' -f2 "$runs" | median)" commits/s higher \
        "$(reel_durability)" "reel_store_commits_total delta / run time (includes the first wrk connect)"
}

reel_ingest_mix() {
    local lua=$SYS_DIR/mix.lua v
    "$ROOT/bench/peers/gen_events.py" --format wrk --mix "$BUILD/reel" --batch 100 --bodies 16 \
        --path '/v1/sessions/m{n}/events' >"$lua"
    v=$(median_of reel_wrk "$lua") || return 1
    v=$(echo "$v" | awk '{print $1 * 100}')
    result ingest_mix "$SYS" "$v" events/s higher "$(reel_durability)" \
        "wrk -t2 -c64, POST of 100 mock-agent mix events (with raw) to 64 sessions, ${DUR}s, median of $REPEAT"
}

reel_poll100() {
    local lua=$SYS_DIR/poll.lua runs=$SYS_DIR/poll.runs
    "$ROOT/bench/peers/gen_events.py" --count 10000 | reel_load poll || return 1
    cat >"$lua" <<'LUA'
-- a page of 100 events after a random offset of the 10,000-event session "poll"
function init(a) math.randomseed(os.time() + tonumber(tostring({}):match('0x(%x+)'), 16) % 1e6) end
function request()
  return wrk.format("GET", "/v1/sessions/poll/events?limit=100&offset=" .. math.random(0, 9900))
end
LUA
    local i
    for i in $(seq 1 "$REPEAT"); do reel_wrk "$lua" || return 1; done >"$runs"
    result poll100 "$SYS" "$(awk '{print $1 * 100}' "$runs" | median)" events/s higher "$(reel_durability)" \
        "wrk -t2 -c64, GET events?offset=random&limit=100 (10k-event session), ${DUR}s, median of $REPEAT"
    result aux_poll_bytes "$SYS" "$(awk '{print $2}' "$runs" | median)" bytes/s higher "$(reel_durability)" \
        "wrk Transfer/sec of the poll run"
}

# Newest 50. The main column is the page read GET events?offset=N-50&limit=50: the same
# content as the peers' answers (the 50 newest events as JSON), one request, given the
# session's last sequence N (every append and page answer reports it). The labelled column
# reel-restore is the restore route a resuming agent calls without knowing N:
# /restore?max_events=50&max_chars=1000000 (the 50 events plus their replay text, about
# twice the bytes; max_chars is raised so that all 50 events are kept, the default 12000
# keeps only the ~11 newest 1 KiB events).
reel_restore() {  # reel_restore SESSION N KEY
    local n=$((QUICK == 1 ? 1000 : 3000)) i
    for i in $(seq 1 "$REPEAT"); do
        "$PEERS_BIN/reqlat" --http "127.0.0.1:$REEL_PORT" --requests "$n" \
            --path "/v1/sessions/$1/events?offset=$(($2 - 50))&limit=50" || return 1
    done >"$SYS_DIR/page.runs"
    for i in $(seq 1 "$REPEAT"); do
        "$PEERS_BIN/reqlat" --http "127.0.0.1:$REEL_PORT" --requests "$n" \
            --path "/v1/sessions/$1/restore?max_events=50&max_chars=1000000" || return 1
    done >"$SYS_DIR/restore.runs"
    local what="reqlat, one keep-alive connection, $n sequential requests, median of $REPEAT"
    local page="GET events?offset=N-50&limit=50 ($(awk '{print $10; exit}' "$SYS_DIR/page.runs") bytes)"
    local rest="GET /restore?max_events=50&max_chars=1000000 (events + replay text, $(awk '{print $10; exit}' "$SYS_DIR/restore.runs") bytes)"
    result "$3_p50" "$SYS" "$(awk '{print $4}' "$SYS_DIR/page.runs" | median)" us lower \
        "$(reel_durability)" "$page; $what"
    result "$3_p99" "$SYS" "$(awk '{print $6}' "$SYS_DIR/page.runs" | median)" us lower \
        "$(reel_durability)" "$page; $what"
    [ -n "$VARIANT" ] && return 0
    result "$3_p50" reel-restore "$(awk '{print $4}' "$SYS_DIR/restore.runs" | median)" us lower \
        group-commit "$rest; $what"
    result "$3_p99" reel-restore "$(awk '{print $6}' "$SYS_DIR/restore.runs" | median)" us lower \
        group-commit "$rest; $what"
}

reel_restore_1k() {
    "$ROOT/bench/peers/gen_events.py" --count 1000 | reel_load r1k || return 1
    reel_restore r1k 1000 restore_1k
}

REEL_BPE=""
reel_restore_1m() {
    local before after t0
    before=$(dir_bytes "$REEL_DATA")
    t0=$(date +%s.%N)
    "$ROOT/bench/peers/gen_events.py" --count "$RESTORE_N" | reel_load r1m || return 1
    log "  loaded $RESTORE_N events in $(echo "$(date +%s.%N) - $t0" | bc) s"
    after=$(dir_bytes "$REEL_DATA")
    REEL_BPE=$(( (after - before) / RESTORE_N ))
    reel_restore r1m "$RESTORE_N" restore_1m
}

# Issue 19's size ratios: data directory bytes / NDJSON bytes of the same events, for the
# realistic mix (gen_mix.py, every event distinct) and for the 1 KiB events, each loaded into
# a fresh data directory of its own by `reel ingest --sync none` (the store's own append path,
# 1000-event chunks; sync changes when bytes reach the disk, not how many). The reference
# column ndjson-zstd3 is `zstd -3` over the same NDJSON file (a ceiling, not a store).
BYTES_MIX_N=$((QUICK == 1 ? 50000 : 100000))
BYTES_1K_N=$((QUICK == 1 ? 100000 : 200000))
bytes_ndjson() {  # bytes_ndjson mix|1k: path of the shared NDJSON file, generated once
    local f=$PEERS_TMP/bytes-$1.ndjson
    if [ ! -s "$f" ]; then
        if [ "$1" = mix ]; then
            "$ROOT/bench/peers/gen_events.py" --realistic --count "$BYTES_MIX_N" >"$f"
        else
            "$ROOT/bench/peers/gen_events.py" --seed 2 --count "$BYTES_1K_N" >"$f"
        fi
    fi
    echo "$f"
}

bytes_what() {  # bytes_what mix|1k
    if [ "$1" = mix ]; then
        echo "issue-19 realistic mix (bench/peers/gen_mix.py, seed 1, $BYTES_MIX_N distinct events)"
    else
        echo "1 KiB events (gen_events.py --seed 2, $BYTES_1K_N events from a 4,096-event pool)"
    fi
}

reel_bytes_ratio() {
    local k f json d size z
    for k in mix 1k; do
        f=$(bytes_ndjson $k)
        json=$(stat -c %s "$f")
        d=$SYS_DIR/bytes-$k
        rm -rf "$d"
        "$BUILD/reel" ingest --data "$d" --sync none --zdict "${REEL_ZDICT:-on}" --session "bytes-$k" --quiet <"$f" || return 1
        size=$(dir_bytes "$d")
        result "bytes_ratio_$k" "$SYS" "$(awk -v a="$size" -v b="$json" 'BEGIN {printf "%.4f", a / b}')" \
            x lower "$(reel_durability)" \
            "$(bytes_what $k): data directory $size bytes (du -sb) / NDJSON $json bytes; reel ingest --sync none, one session"
        rm -rf "$d"
        if ! grep -q "^bytes_ratio_$k	ndjson-zstd3	" "$RESULTS"; then
            z=$(zstd -3 -T1 -q -c "$f" | wc -c)
            result "bytes_ratio_$k" ndjson-zstd3 "$(awk -v a="$z" -v b="$json" 'BEGIN {printf "%.4f", a / b}')" \
                x lower n/a "zstd -3 -T1 of the same NDJSON file: $z of $json bytes (reference, not a store)"
        fi
    done
}

reel_bytes_per_event() {
    [ -n "$REEL_BPE" ] || { result_na bytes_per_event "$SYS" "needs restore_1m's load"; return 0; }
    result bytes_per_event "$SYS" "$REEL_BPE" bytes lower "$(reel_durability)" \
        "growth of the data directory (du -sb) over the $RESTORE_N-event load / $RESTORE_N; LMDB needs no compaction"
}

# Export, the same shape for every system: the system's JSON lines of the whole session
# piped into a `zstd -3 -T1` process, MB/s of the JSON; the output is checked with the
# zstd CLI (a cut stream would fail to decompress or lack events). The export route's own
# zstd (compression=zstd, level 3 in the server thread) is measured too and put in the note.
reel_export_run() {  # reel_export_run none|zstd: prints "MB/s json_bytes"
    local f=$SYS_DIR/export.jsonl.zst t0 t1 bytes
    t0=$(date +%s.%N)
    if [ "$1" = none ]; then
        curl -sf "$REEL_URL/v1/sessions/r1m/export?compression=none" | zstd -3 -T1 -q -f -o "$f" || return 1
    else
        curl -sf -o "$f" "$REEL_URL/v1/sessions/r1m/export?compression=zstd" || return 1
    fi
    t1=$(date +%s.%N)
    bytes=$(zstd -dc "$f" | wc -c) || return 1
    awk -v b="$bytes" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.1f %d\n", b / (t1 - t0) / 1e6, b}'
}

reel_export() {
    local f=$SYS_DIR/export.jsonl.zst runs=$SYS_DIR/export.runs i lines inserver bytes t
    for i in $(seq 1 "$REPEAT"); do reel_export_run zstd || return 1; done >"$runs"
    inserver=$(awk '{print $1}' "$runs" | median)
    for i in $(seq 1 "$REPEAT"); do reel_export_run none || return 1; done >"$runs"
    lines=$(zstd -dc "$f" | wc -l)
    [ "$lines" -ge "$RESTORE_N" ] || { log "export has $lines lines, want >= $RESTORE_N"; return 1; }
    bytes=$(awk '{print $2; exit}' "$runs")
    result export "$SYS" "$(awk '{print $1}' "$runs" | median)" MB/s higher "$(reel_durability)" \
        "curl GET /v1/sessions/r1m/export?compression=none | zstd -3 -T1; MB/s of its $bytes bytes of JSON lines ($lines lines); with the route's own zstd (compression=zstd, in the server): $inserver MB/s; median of $REPEAT"
    # The ceiling: the zstd CLI compressing the same JSON lines on one core, from a file.
    if ! grep -q "^limit_zstd3	" "$RESULTS"; then
        zstd -dc "$f" >"$SYS_DIR/export.jsonl"
        for i in $(seq 1 "$REPEAT"); do
            t=$( { /usr/bin/time -f %e zstd -3 -T1 -q -c "$SYS_DIR/export.jsonl" >/dev/null; } 2>&1)
            echo "$bytes $t" | awk '{print $1 / $2 / 1e6}'
        done | median >"$SYS_DIR/zstd.mbs"
        result limit_zstd3 machine "$(cat "$SYS_DIR/zstd.mbs")" MB/s higher n/a \
            "zstd -3 -T1 CLI on reel's export JSON lines ($bytes bytes) from a file, median of $REPEAT"
        rm -f "$SYS_DIR/export.jsonl"
    fi
    rm -f "$f"
}

reel_fanout() {
    local body=$SYS_DIR/fanout.json runs=$SYS_DIR/fanout.runs i n=$((QUICK == 1 ? 60 : 200))
    "$ROOT/bench/peers/gen_events.py" --format fanout >"$body"
    : >"$runs"
    for i in $(seq 1 "$REPEAT"); do
        curl -sf -H 'Content-Type: application/json' -d '{"type":"start"}' \
            "$REEL_URL/v1/sessions/fan$i/events" >/dev/null || return 1
        "$PEERS_BIN/fanout" --subscribers 1000 --events "$n" --interval-ms 20 --body "$body" \
            --sse "$REEL_URL/v1/sessions/fan$i/events/sse?offset=1" \
            --publish "$REEL_URL/v1/sessions/fan$i/events" >>"$runs" || return 1
    done
    local what="build/peers/fanout: 1,000 SSE subscribers on one session, $n ~1 KiB appends 20 ms apart (POST, durable), latency from send to receipt, median of $REPEAT"
    result fanout_p50 "$SYS" "$(awk '{print $6}' "$runs" | median)" ms lower "$(reel_durability)" "$what"
    result fanout_p99 "$SYS" "$(awk '{print $8}' "$runs" | median)" ms lower "$(reel_durability)" "$what"
}

# Restart: the data set is loaded by the fastest path (reel ingest --sync none, 1000-event
# chunks; durability is irrelevant to restart time) for at most 240 s, then `reel serve` is
# started REPEAT times and timed until its first poll answers 200.
reel_restart_ms() {
    reel_stop
    rm -rf "$REEL_DATA"  # the main data set must not coexist with the restart one
    local d=$SYS_DIR/restart n=$((RESTART_BYTES / 1024)) t0 size port runs=$SYS_DIR/restart.runs i
    mkdir -p "$d"
    t0=$SECONDS
    "$ROOT/bench/peers/gen_events.py" --count "$n" |
        timeout 240 "$BUILD/reel" ingest --data "$d" --sync none --session big --quiet
    size=$(dir_bytes "$d")
    log "  restart data: $size bytes in $((SECONDS - t0)) s"
    : >"$runs"
    for i in $(seq 1 "$REPEAT"); do
        port=$(free_port)
        python3 "$ROOT/bench/peers/first_read.py" --http "$port" "/v1/sessions/big/events?offset=0&limit=1" -- \
            "$BUILD/reel" serve --data "$d" --listen "127.0.0.1:$port" >>"$runs" || return 1
    done
    result restart_ms "$SYS" "$(awk '{print $2}' "$runs" | median)" ms lower "$(reel_durability)" \
        "$(awk -v b="$size" 'BEGIN {printf "%.1f GiB", b / 1073741824}') data directory; spawn of reel serve to the first 200 of GET events (bench/peers/first_read.py), warm page cache, median of $REPEAT"
    rm -rf "$d"
}
