# floor.sh -- the "floor" module of bench/peers/run.sh (sourced; contract in lib.sh).
#
# Not a peer: build/peers/http_floor (bench/peers/http_floor.c), the least a durable HTTP
# server can do for the ingest rows on this machine -- one epoll thread that appends each
# loop iteration's request bodies to a file with one write() and one fdatasync() before
# answering them (Redis's `appendfsync always` group commit over HTTP, no parsing, no
# index, no hashing, no compression). Driven by the same wrk scripts as reel, so the
# column says what the client, HTTP and the disk alone allow, and how far reel is from it.
#
# Variants (run.sh system names floor-VARIANT), to split reel's gap to the floor into the
# server's shape and the store's work: floor-mhd is build/peers/mhd_floor
# (bench/peers/mhd_floor.c), the same flush behind reel's shape -- libmicrohttpd with
# api/server.c's daemon flags and two workers, a suspended connection per request, one
# committer thread that writes and flushes each group and resumes its connections;
# floor-mhdz adds reel's heaviest request-path step, each body compressed at level 3 with
# a dictionary trained (`zstd --train`) on the same 1 KiB events; floor-mhdzl journals
# each body raw and acknowledges it, and an applier thread compresses the flushed groups'
# bodies in bulk afterwards, every 20 ms (into floor.log.z, not flushed) -- the shape of a
# store that makes groups durable in a journal and compresses when it applies them.
# FLOOR_ARGS adds options to mhd_floor (e.g. FLOOR_ARGS="--threads 1").

FLOOR_PID="" FLOOR_URL="" FLOOR_WHAT=""

floor_start() {
    local port
    port=$(free_port)
    local bin=mhd_floor extra=()
    case "$VARIANT" in
        "") bin=http_floor ;;
        mhd) ;;
        mhdz) extra=(--zstd-dict "$1/dict") ;;
        mhdzl) extra=(--zstd-dict "$1/dict" --zstd-late 20) ;;
        *) log "floor: no variant '$VARIANT' (mhd, mhdz, mhdzl)"; return 1 ;;
    esac
    [ ${#extra[@]} -eq 0 ] || floor_dict "$1" || return 1
    [ "$bin" = http_floor ] || extra+=(${FLOOR_ARGS:-})
    # what the table's notes say ran: the options without this run's directory
    FLOOR_WHAT="build/peers/$bin${extra[*]:+ ${extra[*]//$1\//}}"
    "$PEERS_BIN/$bin" --port "$port" --log "$1/floor.log" "${extra[@]}" >"$1/floor.out" 2>&1 &
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

floor_dict() {  # floor_dict DIR: DIR/dict, trained on 8 MiB of the 1 KiB events (as reel does)
    mkdir -p "$1/samples"
    "$ROOT/bench/peers/gen_events.py" --count 8192 --seed 7 | split -l 1 -a 5 - "$1/samples/e"
    zstd -q --train "$1"/samples/e* --maxdict=262144 -o "$1/dict" || return 1
    rm -rf "$1/samples"
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
    [ -f "$SYS_DIR/floor.log.z" ] && : >"$SYS_DIR/floor.log.z"
    echo "$r"
}

floor_ingest_batch() {
    "$ROOT/bench/peers/gen_events.py" --format wrk --batch 100 --bodies 16 \
        --path '/v1/sessions/b{n}/events' >"$SYS_DIR/batch.lua"
    local v
    v=$(median_of floor_wrk "$SYS_DIR/batch.lua") || return 1
    result ingest_batch "$SYS" "$(echo "$v" | awk '{print $1 * 100}')" events/s higher group-commit \
        "yardstick, not a store: $FLOOR_WHAT, wrk as for reel, median of $REPEAT"
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
        "yardstick, not a store: $FLOOR_WHAT, wrk as for reel, median of $REPEAT"
    result ingest_single_p50 "$SYS" "$(cut -d' ' -f3 "$runs" | median)" ms lower group-commit \
        "wrk --latency of the ingest_single runs, median of $REPEAT"
    result ingest_single_p99 "$SYS" "$(cut -d' ' -f4 "$runs" | median)" ms lower group-commit \
        "wrk --latency of the ingest_single runs, median of $REPEAT"
}
