# redis.sh -- the Redis Streams module of bench/peers/run.sh (sourced; contract in lib.sh).
#
# redis-server 7 (Debian) with `appendonly yes, appendfsync always`: Redis writes and
# fsyncs the AOF once per event-loop iteration before it sends the replies of that
# iteration, i.e. a group commit, the same promise as reel's default. Variant "everysec"
# (system redis-everysec) is the relaxed default of Redis, a labelled async column. Other
# settings are Redis' defaults (AOF auto-rewrite included), RDB snapshots off (`save ""`).
# Load: redis-benchmark (-c 64) for the 1 KiB ingest rows and polls; build/peers/resp_load for the
# mix (varied payloads); build/peers/reqlat for XREVRANGE latency; build/peers/fanout for
# XREAD BLOCK fan-out.

REDIS_PID="" REDIS_PORT="" REDIS_DIR=""

redis_durability() { [ "$VARIANT" = everysec ] && echo async || echo group-commit; }

redis_serve() {  # redis_serve DIR FSYNC LOG
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$1" --appendonly yes \
        --appendfsync "$2" --save "" --maxclients 11000 --daemonize no --protected-mode no \
        >"$3" 2>&1 &
    REDIS_PID=$!
    peer_pid "$REDIS_PID"
    wait_port "$REDIS_PORT" 30
}

redis_start() {
    REDIS_DIR=$1/data
    mkdir -p "$REDIS_DIR"
    local fsync=always
    [ "$VARIANT" = everysec ] && fsync=everysec
    redis_serve "$REDIS_DIR" "$fsync" "$1/redis.log"
}

redis_stop() {
    [ -n "$REDIS_PID" ] || return 0
    kill "$REDIS_PID" 2>/dev/null
    wait "$REDIS_PID" 2>/dev/null
    REDIS_PID=""
}

rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

# requests/s of one redis-benchmark test (its CSV line)
redis_bench() {  # redis_bench N ARGS...
    local n=$1
    shift
    # The test name holds the payload with its quotes and commas unescaped; the seven
    # numbers after it (rps, then latencies) are the last seven fields.
    redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -n "$n" --csv "$@" 2>/dev/null | tail -n 1 |
        awk -F, '{v = $(NF - 6); gsub(/"/, "", v); print v}'
}

# One timed run of about DUR seconds: a short probe sizes -n from the measured rate
# (redis-benchmark counts requests, not seconds). Prints events/s: requests/s x EVENTS, the
# events one request moves (with -P each pipelined command counts as a request).
redis_timed() {  # redis_timed EVENTS_PER_REQUEST PROBE_N ARGS...
    local per=$1 probe=$2 rate n r
    shift 2
    rate=$(redis_bench "$probe" "$@")
    [ -n "$rate" ] || return 1
    n=$(awk -v r="$rate" -v d="$DUR" 'BEGIN {printf "%d", r * d}')
    r=$(redis_bench "$n" "$@")
    [ -n "$r" ] || return 1
    rcli FLUSHALL >/dev/null  # bounded memory between runs (Redis keeps everything in RAM)
    awk -v r="$r" -v p="$per" 'BEGIN {print r * p}'
}

REDIS_EVENT=""
redis_event() {
    [ -n "$REDIS_EVENT" ] || REDIS_EVENT=$("$ROOT/bench/peers/gen_events.py" --count 1)
}

redis_ingest_batch() {
    redis_event
    local v
    v=$(median_of redis_timed 1 20000 -c 64 -P 100 -r 64 XADD 'b:__rand_int__' '*' d "$REDIS_EVENT") || return 1
    result ingest_batch "$SYS" "$v" events/s higher "$(redis_durability)" \
        "redis-benchmark -c 64 -P 100 XADD b:<rand 64> * d <1 KiB event>, ~${DUR}s, median of $REPEAT"
}

# rps, p50 and p99 (ms) of one redis-benchmark test (its CSV line: test, rps, avg, min, p50,
# p95, p99, max)
redis_bench_lat() {  # redis_bench_lat N ARGS...
    local n=$1
    shift
    redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -n "$n" --csv "$@" 2>/dev/null | tail -n 1 |
        awk -F, '{r = $(NF - 6); a = $(NF - 3); b = $(NF - 1); gsub(/"/, "", r); gsub(/"/, "", a)
                  gsub(/"/, "", b); print r, a, b}'
}

redis_ingest_single() {
    redis_event
    local runs=$SYS_DIR/single.runs i rate n
    : >"$runs"
    for i in $(seq 1 "$REPEAT"); do
        rate=$(redis_bench 5000 -c 64 -r 64 XADD 's:__rand_int__' '*' d "$REDIS_EVENT")
        [ -n "$rate" ] || return 1
        n=$(awk -v r="$rate" -v d="$DUR" 'BEGIN {printf "%d", r * d}')
        redis_bench_lat "$n" -c 64 -r 64 XADD 's:__rand_int__' '*' d "$REDIS_EVENT" >>"$runs"
        rcli FLUSHALL >/dev/null
    done
    [ -s "$runs" ] || return 1
    result ingest_single "$SYS" "$(cut -d' ' -f1 "$runs" | median)" events/s higher "$(redis_durability)" \
        "redis-benchmark -c 64 XADD s:<rand 64> * d <1 KiB event> (no pipelining), ~${DUR}s, median of $REPEAT"
    result ingest_single_p50 "$SYS" "$(cut -d' ' -f2 "$runs" | median)" ms lower "$(redis_durability)" \
        "redis-benchmark --csv p50 of the ingest_single runs (64 connections in flight), median of $REPEAT"
    result ingest_single_p99 "$SYS" "$(cut -d' ' -f3 "$runs" | median)" ms lower "$(redis_durability)" \
        "redis-benchmark --csv p99 of the ingest_single runs (64 connections in flight), median of $REPEAT"
}

redis_mix_run() {
    "$PEERS_BIN/resp_load" --port "$REDIS_PORT" --events "$SYS_DIR/mix.ndjson" \
        --seconds "$DUR" | awk '{print $2}'
    rcli FLUSHALL >/dev/null
}

redis_ingest_mix() {
    "$ROOT/bench/peers/gen_events.py" --mix "$BUILD/reel" --count 10000 >"$SYS_DIR/mix.ndjson"
    local v
    v=$(median_of redis_mix_run) || return 1
    result ingest_mix "$SYS" "$v" events/s higher "$(redis_durability)" \
        "build/peers/resp_load (C, one epoll thread): 64 conns, pipelines of 100 XADD of mix events, ${DUR}s, median of $REPEAT"
}

# Bulk load of the read workloads' streams: explicit ids 1-1 .. COUNT-1 through redis-cli
# --pipe with fsync relaxed for the load only (one fsync per ~16 KiB read would make a
# 1M-entry load take minutes, and how the data got there does not change the reads).
redis_load() {  # redis_load KEY COUNT
    local fsync
    fsync=$(rcli CONFIG GET appendfsync | tail -n 1)
    rcli CONFIG SET appendfsync no >/dev/null
    "$ROOT/bench/peers/gen_events.py" --format resp --ids explicit --key "$1" --count "$2" |
        rcli --pipe >/dev/null
    rcli CONFIG SET appendfsync "$fsync" >/dev/null
    [ "$(rcli XLEN "$1")" = "$2" ]
}

# One timed poll run on a freshly loaded stream: redis_timed flushes the database after
# each run, so without the reload the second and third runs of a median would read an
# empty key (the first full run of 17:35 UTC got 8.1M "events"/s that way).
redis_poll_once() {
    redis_load poll 10000 >/dev/null || return 1
    # __rand_int__ becomes a 12-digit number: "(000000001234-1" = after entry 1234
    redis_timed 100 3000 -c 64 -r 9900 XRANGE poll '(__rand_int__-1' + COUNT 100
}

redis_poll100() {
    redis_load poll 10000 || return 1
    [ "$(rcli XRANGE poll '(000000000100-1' + COUNT 100 | grep -c '^[0-9]*-1$')" = 100 ] ||
        { log "XRANGE poll check failed"; return 1; }
    local v
    v=$(median_of redis_poll_once) || return 1
    redis_load poll 10000 >/dev/null  # redis_timed flushed it; later rows count entries
    result poll100 "$SYS" "$v" events/s higher "$(redis_durability)" \
        "redis-benchmark -c 64 XRANGE poll (<rand>-1 + COUNT 100 (10k-entry stream), ~${DUR}s, median of $REPEAT"
}

redis_restore() {  # redis_restore KEY ROWKEY
    local n=$((QUICK == 1 ? 1000 : 3000)) i
    for i in $(seq 1 "$REPEAT"); do
        "$PEERS_BIN/reqlat" --resp "127.0.0.1:$REDIS_PORT" --requests "$n" --cmd "XREVRANGE $1 + - COUNT 50" || return 1
    done >"$SYS_DIR/restore.runs"
    local what="XREVRANGE $1 + - COUNT 50 ($(awk '{print $10; exit}' "$SYS_DIR/restore.runs") bytes) with build/peers/reqlat, one connection, $n sequential requests, median of $REPEAT"
    result "$2_p50" "$SYS" "$(awk '{print $4}' "$SYS_DIR/restore.runs" | median)" us lower "$(redis_durability)" "$what"
    result "$2_p99" "$SYS" "$(awk '{print $6}' "$SYS_DIR/restore.runs" | median)" us lower "$(redis_durability)" "$what"
}

redis_restore_1k() {
    redis_load r1k 1000 || return 1
    redis_restore r1k restore_1k
}

redis_restore_1m() {
    local t0=$SECONDS
    redis_load r1m "$RESTORE_N" || return 1
    log "  loaded $RESTORE_N entries in $((SECONDS - t0)) s"
    redis_restore r1m restore_1m
}

# AOF bytes after a rewrite (the compacted form, an RDB preamble) / entries stored.
redis_bytes_per_event() {
    rcli BGREWRITEAOF >/dev/null
    while rcli INFO persistence | grep -q 'aof_rewrite_in_progress:1\|aof_rewrite_scheduled:1'; do sleep 0.2; done
    sleep 0.5
    local bytes n mem
    bytes=$(dir_bytes "$REDIS_DIR")
    n=$(( $(rcli XLEN poll) + $(rcli XLEN r1k) + $(rcli XLEN r1m) ))
    [ "$n" -gt 0 ] || return 1
    mem=$(rcli MEMORY USAGE r1m SAMPLES 0)
    result bytes_per_event "$SYS" "$((bytes / n))" bytes lower "$(redis_durability)" \
        "AOF directory after BGREWRITEAOF / $n entries; in RAM: $((mem / $(rcli XLEN r1m))) bytes per entry (MEMORY USAGE r1m)"
}

# Issue 19's size ratios (reel.sh, bytes_ratio): the same NDJSON files, one XADD per event
# into a fresh redis-server of its own (appendfsync no for the load; sync changes when bytes
# reach the disk, not how many), the AOF directory measured as appended, then after
# BGREWRITEAOF (Redis 7: an RDB preamble, its compact form). The row's value is the smaller.
redis_bytes_ratio() {
    [ -n "$VARIANT" ] && return 0
    local k f json d port pid aof rdb
    for k in mix 1k; do
        f=$(bytes_ndjson $k)
        json=$(stat -c %s "$f")
        d=$SYS_DIR/bytes-$k
        rm -rf "$d" && mkdir -p "$d/data"
        port=$(free_port)
        redis-server --port "$port" --bind 127.0.0.1 --dir "$d/data" --appendonly yes \
            --appendfsync no --save "" --daemonize no --protected-mode no \
            --auto-aof-rewrite-percentage 0 >"$d/redis.log" 2>&1 &
        pid=$!
        peer_pid "$pid"
        wait_port "$port" 30 || { kill "$pid"; return 1; }
        python3 - "$f" <<'PY' | redis-cli -h 127.0.0.1 -p "$port" --pipe >/dev/null
import sys
w = sys.stdout.buffer
for line in open(sys.argv[1], "rb"):
    v = line.rstrip(b"\n")
    w.write(b"*5\r\n$4\r\nXADD\r\n$1\r\nb\r\n$1\r\n*\r\n$1\r\nd\r\n$%d\r\n%s\r\n" % (len(v), v))
PY
        redis-cli -h 127.0.0.1 -p "$port" CONFIG SET appendfsync always >/dev/null  # flushes the AOF
        redis-cli -h 127.0.0.1 -p "$port" XADD b '*' d x >/dev/null
        aof=$(dir_bytes "$d/data")
        redis-cli -h 127.0.0.1 -p "$port" BGREWRITEAOF >/dev/null
        while redis-cli -h 127.0.0.1 -p "$port" INFO persistence |
            grep -q 'aof_rewrite_in_progress:1\|aof_rewrite_scheduled:1'; do sleep 0.2; done
        sleep 1
        rdb=$(dir_bytes "$d/data")
        local n
        n=$(redis-cli -h 127.0.0.1 -p "$port" XLEN b)
        kill "$pid"
        wait "$pid" 2>/dev/null
        rm -rf "$d"
        [ "$n" -gt 1 ] || return 1
        result "bytes_ratio_$k" "$SYS" "$(awk -v a="$rdb" -v c="$aof" -v b="$json" 'BEGIN {printf "%.4f", (a < c ? a : c) / b}')" \
            x lower "$(redis_durability)" \
            "$(bytes_what $k) as $((n - 1)) XADDs: AOF as appended $aof bytes ($(awk -v a="$aof" -v b="$json" 'BEGIN {printf "%.3f", a / b}')x), after BGREWRITEAOF (RDB preamble) $rdb bytes ($(awk -v a="$rdb" -v b="$json" 'BEGIN {printf "%.3f", a / b}')x); / NDJSON $json bytes"
    done
}

# XRANGE through the whole stream in pages of 1000, the d fields written as JSON lines into
# `zstd -3 -T1` (a second process, so compression overlaps reading, as in reel's server).
redis_export_run() {
    python3 - "$REDIS_PORT" "$SYS_DIR/export.jsonl.zst" <<'PY'
import socket, subprocess, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
t0 = time.monotonic()
z = subprocess.Popen(["zstd", "-3", "-T1", "-q", "-f", "-o", out], stdin=subprocess.PIPE)
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb", buffering=1 << 20)
def cmd(*a):
    return b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a)
start, total, n = b"-", 0, 0
while True:
    s.sendall(cmd(b"XRANGE", b"r1m", start, b"+", b"COUNT", b"1000"))
    count = int(f.readline()[1:])
    if count == 0:
        break
    lines = []
    for _ in range(count):
        f.readline()                              # *2: [id, fields]
        eid = f.read(int(f.readline()[1:]) + 2)[:-2]
        nf = int(f.readline()[1:])                # *2: d, value
        for k in range(nf):
            v = f.read(int(f.readline()[1:]) + 2)[:-2]
            if k == 1:
                lines.append(v)
    buf = b"\n".join(lines) + b"\n"
    z.stdin.write(buf)
    total += len(buf); n += count
    start = b"(" + eid
z.stdin.close(); z.wait()
print("%.1f %d %d" % (total / (time.monotonic() - t0) / 1e6, total, n))
PY
}

redis_export() {
    local runs=$SYS_DIR/export.runs i lines
    for i in $(seq 1 "$REPEAT"); do redis_export_run || return 1; done >"$runs"
    lines=$(zstd -dc "$SYS_DIR/export.jsonl.zst" | wc -l)
    [ "$lines" -ge "$RESTORE_N" ] || { log "redis export has $lines lines"; return 1; }
    result export "$SYS" "$(awk '{print $1}' "$runs" | median)" MB/s higher "$(redis_durability)" \
        "XRANGE r1m pages of 1000 (python client) -> JSON lines -> zstd -3 -T1 process; MB/s of $(awk '{print $2; exit}' "$runs") bytes of JSON, median of $REPEAT"
    rm -f "$SYS_DIR/export.jsonl.zst"
}

redis_fanout() {
    local body=$SYS_DIR/fanout.json runs=$SYS_DIR/fanout.runs i n=$((QUICK == 1 ? 60 : 200))
    "$ROOT/bench/peers/gen_events.py" --format fanout >"$body"
    for i in $(seq 1 "$REPEAT"); do
        "$PEERS_BIN/fanout" --subscribers 1000 --events "$n" --interval-ms 20 --body "$body" \
            --resp "127.0.0.1:$REDIS_PORT" --key "fan$i" || return 1
    done >"$runs"
    local what="build/peers/fanout: 1,000 XREAD BLOCK 0 subscribers, $n ~1 KiB XADDs 20 ms apart, latency from send to receipt, median of $REPEAT"
    result fanout_p50 "$SYS" "$(awk '{print $6}' "$runs" | median)" ms lower "$(redis_durability)" "$what"
    result fanout_p99 "$SYS" "$(awk '{print $8}' "$runs" | median)" ms lower "$(redis_durability)" "$what"
}

# Restart: a second instance is loaded by the fastest path (appendfsync no, redis-cli
# --pipe) for at most 240 s, its AOF rewritten (RDB preamble: Redis' fastest form to
# load), stopped; then redis-server is started on it REPEAT times and timed until
# XREVRANGE answers (it answers -LOADING until the data set is in memory).
redis_restart_ms() {
    redis_stop
    rm -rf "$REDIS_DIR"  # the main data set must not coexist with the restart one
    local d=$SYS_DIR/restart n=$((RESTART_BYTES / 1024)) t0=$SECONDS size runs=$SYS_DIR/restart.runs i port
    mkdir -p "$d"
    redis_serve "$d" no "$SYS_DIR/restart.log"
    "$ROOT/bench/peers/gen_events.py" --format resp --key big --count "$n" |
        timeout 240 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --pipe >/dev/null
    local loaded
    loaded=$(rcli XLEN big)
    rcli BGREWRITEAOF >/dev/null
    while rcli INFO persistence | grep -q 'aof_rewrite_in_progress:1\|aof_rewrite_scheduled:1'; do sleep 0.5; done
    redis_stop
    size=$(dir_bytes "$d")
    log "  restart data: $loaded entries, $size bytes in $((SECONDS - t0)) s"
    for i in $(seq 1 "$REPEAT"); do
        port=$(free_port)
        python3 "$ROOT/bench/peers/first_read.py" --resp "$port" XREVRANGE big + - COUNT 1 -- \
            redis-server --port "$port" --bind 127.0.0.1 --dir "$d" --appendonly yes \
            --appendfsync always --save "" || return 1
    done >"$runs"
    result restart_ms "$SYS" "$(awk '{print $2}' "$runs" | median)" ms lower "$(redis_durability)" \
        "$(awk -v b="$size" -v n="$loaded" 'BEGIN {printf "%.1f GiB AOF (%d entries, rewritten: RDB preamble)", b / 1073741824, n}'); spawn of redis-server to the first XREVRANGE answer (bench/peers/first_read.py), warm page cache, median of $REPEAT"
    rm -rf "$d"
}
