# floor.sh -- the "floor" module of bench/peers/run.sh (sourced; contract in lib.sh).
#
# Not a peer: build/peers/http_floor (bench/peers/http_floor.c), the least a durable HTTP
# server can do for the ingest rows on this machine -- one epoll thread that appends each
# loop iteration's request bodies to a file with one write() and one fdatasync() before
# answering them (Redis's `appendfsync always` group commit over HTTP, no parsing, no
# index, no hashing, no compression). Driven by the same wrk scripts as reel, so the
# column says what the client, HTTP and the disk alone allow, and how far reel is from it.

FLOOR_PID="" FLOOR_URL=""

floor_start() {
    local port
    port=$(free_port)
    "$PEERS_BIN/http_floor" --port "$port" --log "$1/floor.log" >"$1/floor.out" 2>&1 &
    FLOOR_PID=$!
    peer_pid "$FLOOR_PID"
    FLOOR_URL=http://127.0.0.1:$port
    wait_port "$port" 30 || return 1
    local w
    for w in ingest_mix poll100 restore_1k restore_1m fanout export bytes_per_event bytes_ratio \
        restart_ms; do
        result_na "$w" "$SYS" "floor is a yardstick for the ingest rows (no store, no reads)"
    done
}

floor_stop() {
    [ -n "$FLOOR_PID" ] || return 0
    kill "$FLOOR_PID" 2>/dev/null
    wait "$FLOOR_PID" 2>/dev/null
    FLOOR_PID=""
}

floor_wrk() {  # floor_wrk SCRIPT [WRK-ARGS]; the log is cut between runs (disk use bounded)
    local r
    r=$(wrk_run -t2 -c64 -d"${DUR}s" "${@:2}" -s "$1" "$FLOOR_URL") || return 1
    : >"$SYS_DIR/floor.log"
    echo "$r"
}

floor_ingest_batch() {
    "$ROOT/bench/peers/gen_events.py" --format wrk --batch 100 --bodies 16 \
        --path '/v1/sessions/b{n}/events' >"$SYS_DIR/batch.lua"
    local v
    v=$(median_of floor_wrk "$SYS_DIR/batch.lua") || return 1
    result ingest_batch "$SYS" "$(echo "$v" | awk '{print $1 * 100}')" events/s higher group-commit \
        "yardstick, not a store: build/peers/http_floor, wrk as for reel, median of $REPEAT"
}

floor_ingest_single() {
    local lua=$SYS_DIR/single.lua runs=$SYS_DIR/single.runs i
    "$ROOT/bench/peers/gen_events.py" --format wrk --batch 1 --join single --bodies 1000 \
        --content-type application/json --path '/v1/sessions/s{n}/events' >"$lua"
    : >"$runs"
    for i in $(seq 1 "$REPEAT"); do
        floor_wrk "$lua" --latency >>"$runs" || return 1
    done
    result ingest_single "$SYS" "$(cut -d' ' -f1 "$runs" | median)" events/s higher group-commit \
        "yardstick, not a store: build/peers/http_floor, wrk as for reel, median of $REPEAT"
    result ingest_single_p50 "$SYS" "$(cut -d' ' -f3 "$runs" | median)" ms lower group-commit \
        "wrk --latency of the ingest_single runs, median of $REPEAT"
    result ingest_single_p99 "$SYS" "$(cut -d' ' -f4 "$runs" | median)" ms lower group-commit \
        "wrk --latency of the ingest_single runs, median of $REPEAT"
}
