# sqlite.sh -- bench-peers module: SQLite and reel's library, embedded, in-process.
# Sourced by bench/peers/run.sh after lib.sh (module contract: lib.sh).
#
# SQLite has no server, so it is compared with reel's store library linked into the
# same kind of program, not with reel's HTTP server: build/peers/sqlite_bench runs each
# workload against SQLite (WAL, synchronous=FULL: every COMMIT returns after the WAL
# fsync) and against reel's store (default durable sync, group commit), on the same
# events from gen_events.py, alternating the two engines run by run. Rows are recorded
# as system "sqlite" and "reel-lib"; both notes say "embedded, in-process".
#
# Data: $SQ_DIR/{sqlite,reel}-ingest (ingest workloads), $SQ_DIR/{sqlite,reel}-read
# (sessions 1 = 1,000 events, 2 = the big one, 3 = 10,000 events for polls, loaded on
# first use without fsync: preparation, not measurement), $SQ_DIR/*-big (restart).

SQ_BIN=${BUILD:-build}/peers/sqlite_bench
SQ_EMB="embedded, in-process, no network"

# Built by bench/peers/peers.mk (links $BUILD/libreel.a); a no-op when up to date.
sqlite_build() { make --no-print-directory -s "BUILD=$BUILD" "$SQ_BIN"; }

sqlite_start() {  # DIR
    mkdir -p "$1" && SQ_DIR=$(cd "$1" && pwd) && [ -n "$SQ_DIR" ] || return 1
    sqlite_build || return 1
    python3 bench/peers/gen_events.py --count 4096 >"$SQ_DIR/ev.ndjson"
    SQ_READY=""
    # run.sh's sizes (defaults when the module is run by hand)
    SQ_SECS=${DUR:-10} SQ_REPS=${REPEAT:-3} SQ_BIG=${RESTORE_N:-1000000}
    SQ_BYTES=${RESTART_BYTES:-$((10 << 30))}
    if [ "${QUICK:-0}" = 1 ]; then SQ_READS=2000 SQ_LIB_RESTART=1; else SQ_READS=10000 SQ_LIB_RESTART=0; fi
    # reel-lib's 10 GiB restart load costs ~2 minutes and reel's own restart row (module
    # reel, the server) already measures the same open: set SQ_LIB_RESTART=1 to add it.
    SQ_LIB_RESTART=${SQLITE_REEL_LIB_RESTART:-$SQ_LIB_RESTART}
}

sqlite_stop() { rm -rf "${SQ_DIR:?}"; }

# sq_run ENGINE DIR WORKLOAD [ARGS...] -> the program's key<TAB>value lines
sq_run() {
    local e=$1 d=$2 w=$3
    shift 3
    "$SQ_BIN" --engine "$e" --dir "$d" --workload "$w" "$@"
}

sq_key() { awk -F'\t' -v k="$1" '$1 == k {print $2}'; }   # value of KEY from sq_run output

sq_sys() { [ "$1" = sqlite ] && echo sqlite || echo reel-lib; }
sq_dur() { [ "$1" = sqlite ] && echo sync-per-ack || echo group-commit; }

# sq_ingest WORKLOAD EVENTS THREADS BATCH WHAT: median events/s of SQ_REPS runs per engine,
# the engines alternating so that both see the same disk state.
sq_ingest() {
    for e in sqlite reel; do : >"$SQ_DIR/$e.vals"; done
    for _ in $(seq "$SQ_REPS"); do
        for e in sqlite reel; do
            sq_run $e "$SQ_DIR/$e-ingest" ingest --events "$2" --threads "$3" --batch "$4" \
                --secs "$SQ_SECS" | sq_key events_per_sec >>"$SQ_DIR/$e.vals"
        done
    done
    for e in sqlite reel; do
        if [ $e = sqlite ]; then how="$3 threads, one connection each, BEGIN IMMEDIATE; $4 INSERT (prepared); COMMIT (WAL fsync); writers queue on a mutex"
        else how="$3 threads, ingest_parse + store append of $4 events, one shared store (group commit)"; fi
        result "$1" "$(sq_sys $e)" "$(median <"$SQ_DIR/$e.vals")" events/s higher "$(sq_dur $e)" \
            "$SQ_EMB; $5; $how; ${SQ_SECS}s x $SQ_REPS, median"
    done
}

sqlite_ingest_batch()  { sq_ingest ingest_batch "$SQ_DIR/ev.ndjson" 64 100 "1 KiB events"; }
sqlite_ingest_single() { sq_ingest ingest_single "$SQ_DIR/ev.ndjson" 64 1 "1 KiB events"; }

sqlite_ingest_mix() {
    python3 bench/peers/gen_events.py --mix "$BUILD/reel" --count 4096 >"$SQ_DIR/mix.ndjson" ||
        { result_na ingest_mix sqlite "gen_events.py --mix failed"; return 0; }
    sq_ingest ingest_mix "$SQ_DIR/mix.ndjson" 64 100 "reel mock-agent mix"
}

# The read data set of both engines, built once (no fsync: preparation only).
sq_load_reads() {
    [ -n "$SQ_READY" ] && return 0
    for e in sqlite reel; do
        d=$SQ_DIR/$e-read
        rm -rf "$d"
        sq_run $e "$d" load --events "$SQ_DIR/ev.ndjson" --session 1 --n 1000 --batch 1000 --fast >/dev/null
        sq_run $e "$d" load --events "$SQ_DIR/ev.ndjson" --session 3 --n 10000 --batch 1000 --fast >/dev/null
        r=$(sq_run $e "$d" load --events "$SQ_DIR/ev.ndjson" --session 2 --n "$SQ_BIG" --batch 1000 --fast |
            sq_key load_events_per_sec)
        log "sqlite module: $e read set loaded ($SQ_BIG-event session at $r events/s)"
    done
    SQ_READY=1
}

sqlite_poll100() {
    sq_load_reads
    for e in sqlite reel; do : >"$SQ_DIR/$e.vals"; done
    for _ in $(seq "$SQ_REPS"); do
        for e in sqlite reel; do
            sq_run $e "$SQ_DIR/$e-read" poll --threads 64 --secs "$SQ_SECS" |
                sq_key events_per_sec >>"$SQ_DIR/$e.vals"
        done
    done
    for e in sqlite reel; do
        if [ $e = sqlite ]; then how="SELECT body ... WHERE session=? AND seq>? ORDER BY seq LIMIT 100, stored JSON copied out"
        else how="store_events_after(limit 100) with store_read_t.envelopes: envelopes from the store's envelope cache (store/cache.c; warm after the first reads), else checked and rendered (replay_envelope)"; fi
        result poll100 "$(sq_sys $e)" "$(median <"$SQ_DIR/$e.vals")" events/s higher "$(sq_dur $e)" \
            "$SQ_EMB; 64 threads, random offsets in a 10,000-event session; $how; ${SQ_SECS}s x $SQ_REPS, median"
    done
}

# sq_restore KEY SESSION EVENTS
sq_restore() {
    sq_load_reads
    for e in sqlite reel; do : >"$SQ_DIR/$e.p50"; : >"$SQ_DIR/$e.p99"; : >"$SQ_DIR/$e.first"; done
    for _ in $(seq "$SQ_REPS"); do
        for e in sqlite reel; do
            out=$(sq_run $e "$SQ_DIR/$e-read" restore --session "$2" --n "$SQ_READS")
            echo "$out" | sq_key p50_us >>"$SQ_DIR/$e.p50"
            echo "$out" | sq_key p99_us >>"$SQ_DIR/$e.p99"
            echo "$out" | sq_key first_us >>"$SQ_DIR/$e.first"
        done
    done
    for e in sqlite reel; do
        note="$SQ_EMB; newest 50 of a $3-event session, oldest first as JSON lines, one thread, $SQ_READS sequential reads x $SQ_REPS, median; the first read of each process (cold: nothing cached, reel checks and renders) $(median <"$SQ_DIR/$e.first") us"
        [ $e = reel ] && note="$note; envelopes from the store's envelope cache (store_read_t.envelopes)"
        result "${1}_p50" "$(sq_sys $e)" "$(median <"$SQ_DIR/$e.p50")" us lower "$(sq_dur $e)" "$note"
        result "${1}_p99" "$(sq_sys $e)" "$(median <"$SQ_DIR/$e.p99")" us lower "$(sq_dur $e)" "$note"
    done
}

sqlite_restore_1k() { sq_restore restore_1k 1 1000; }
sqlite_restore_1m() { sq_restore restore_1m 2 "$SQ_BIG"; }

sqlite_fanout() {
    result_na fanout_p50 sqlite "no subscription mechanism in SQLite (an embedded file; readers would have to poll)"
    result_na fanout_p99 sqlite "no subscription mechanism in SQLite (an embedded file; readers would have to poll)"
}

sqlite_export() {
    sq_load_reads
    for e in sqlite reel; do : >"$SQ_DIR/$e.vals"; done
    for _ in $(seq "$SQ_REPS"); do
        for e in sqlite reel; do
            out=$(sq_run $e "$SQ_DIR/$e-read" export --session 2)
            echo "$out" | sq_key mb_per_sec >>"$SQ_DIR/$e.vals"
            eval "sq_ratio_$e=\$(echo \"\$out\" | awk -F'\t' '\$1==\"json_bytes\"{j=\$2} \$1==\"zstd_bytes\"{z=\$2} END{printf \"%.2f\", j/z}')"
        done
    done
    result export sqlite "$(median <"$SQ_DIR/sqlite.vals")" MB/s higher sync-per-ack \
        "$SQ_EMB; $SQ_BIG-event session: SELECT body ORDER BY seq -> JSON lines -> libzstd level 3 (ratio $sq_ratio_sqlite); x $SQ_REPS, median"
    result export reel-lib "$(median <"$SQ_DIR/reel.vals")" MB/s higher group-commit \
        "$SQ_EMB; $SQ_BIG-event session: replay_export (API envelope JSON lines, zstd level 3, ratio $sq_ratio_reel); x $SQ_REPS, median"
}

sqlite_bytes_per_event() {
    sq_load_reads
    for e in sqlite reel; do
        n=$(sq_run $e "$SQ_DIR/$e-read" size | sq_key events)
        b=$(dir_bytes "$SQ_DIR/$e-read")
        if [ $e = sqlite ]; then how="events.db after wal_checkpoint(TRUNCATE), 16 KiB pages, WITHOUT ROWID"
        else how="data.mdb (+ lock file)"; fi
        result bytes_per_event "$(sq_sys $e)" "$(awk -v b="$b" -v n="$n" 'BEGIN{printf "%.0f", b/n}')" \
            bytes lower "$(sq_dur $e)" "$SQ_EMB; $how: $b bytes / $n events of ~1 KiB JSON"
    done
}

# Restart: a data set of SQ_BYTES bytes written by the fastest path (no fsync; SQLite in WAL
# mode with synchronous=OFF, checkpointed), then a fresh process opens it and answers
# newest-50: wall time from exec to that answer (page cache warm, as after a restart).
sq_restart_one() {  # ENGINE
    local e=$1 d=$SQ_DIR/$1-big n loaded size gib how t0 t1
    rm -rf "$d"
    n=$((SQ_BYTES / 1024))
    loaded=$(sq_run $e "$d" load --events "$SQ_DIR/ev.ndjson" --session 2 --n "$n" --batch 10000 \
        --fast --max-secs 240 | sq_key loaded)
    size=$(dir_bytes "$d")
    : >"$SQ_DIR/$e.vals"
    for _ in 1 2 3; do
        t0=$(date +%s%N)
        sq_run $e "$d" first-read --session 2 >/dev/null
        t1=$(date +%s%N)
        echo $(((t1 - t0) / 1000)) | awk '{printf "%.2f\n", $1 / 1000}' >>"$SQ_DIR/$e.vals"
    done
    gib=$(awk -v b="$size" 'BEGIN{printf "%.1f", b/1073741824}')
    if [ $e = sqlite ]; then how="loaded in WAL mode with synchronous=OFF"; else how="loaded with --sync none (store no_sync)"; fi
    result restart_ms "$(sq_sys $e)" "$(median <"$SQ_DIR/$e.vals")" ms lower "$(sq_dur $e)" \
        "$SQ_EMB; $gib GiB ($loaded events, $how): exec of a fresh process -> open -> first newest-50 answered, warm page cache, median of 3"
    rm -rf "$d"
}

sqlite_restart_ms() {
    # the read sets go first: the big data sets must not coexist with anything large
    rm -rf "$SQ_DIR/sqlite-read" "$SQ_DIR/reel-read" "$SQ_DIR/sqlite-ingest" "$SQ_DIR/reel-ingest"
    SQ_READY=""
    sq_restart_one sqlite
    if [ "$SQ_LIB_RESTART" = 1 ]; then
        sq_restart_one reel
    else
        result_na restart_ms reel-lib "not run in the full run (a second 10 GiB load, ~2 min): the reel column's restart row times the same store_open + first read through reel serve; SQLITE_REEL_LIB_RESTART=1 adds it"
    fi
}
