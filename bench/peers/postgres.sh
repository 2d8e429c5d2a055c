# postgres.sh -- bench-peers module: PostgreSQL 15 (Debian), durable commits.
# Sourced by bench/peers/run.sh after lib.sh (module contract: lib.sh).
#
# A private cluster in DIR (initdb, trust auth, 127.0.0.1 on a free port, unix socket in
# DIR), run as the 'postgres' user when this runs as root (the server refuses root).
# Durability equal to reel's default: synchronous_commit=on, fsync=on, full_page_writes=on
# (the defaults, set explicitly): a commit returns after its WAL is flushed, and
# concurrent commits share a flush (PostgreSQL's group commit). Tuning a user would do on a
# 24 GiB box: shared_buffers=2GB, max_wal_size=8GB (no checkpoint storm mid-run),
# max_connections=1100 (the fan-out's 1,000 listeners). A labelled "postgres-async" row
# repeats the ingest runs with synchronous_commit=off.
#
# Client: build/peers/pg_bench (libpq, see its header: why not pgbench, the append
# statement, per-session sequences through a counter row). Databases: "ev" takes the
# ingest workloads, "rd" the read set (sessions 1 = 1,000 events, 2 = the big one,
# 3 = 10,000 polled) so bytes per event counts only 1 KiB events, "big" the restart data.

PG_BIN=/usr/lib/postgresql/15/bin
PG_CLIENT=${BUILD:-build}/peers/pg_bench

# Runs a server program as 'postgres' when we are root (setpriv execs in place, so $! of
# a background call is the server's own pid).
pg_as() {
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
    else
        "$@"
    fi
}

pg_conn() { echo "host=127.0.0.1 port=$PG_PORT user=postgres dbname=$1 ${2:-}"; }
pg_sql() {  # DB SQL (notices off: IF EXISTS chatter is not news)
    PGOPTIONS='-c client_min_messages=warning' psql "$(pg_conn "$1")" -v ON_ERROR_STOP=1 -qAtX -c "$2"
}
pg_key() { awk -F'\t' -v k="$1" '$1 == k {print $2}'; }

# Starts the server in the background and sets PG_PID to the postmaster's own pid: the
# command is backgrounded directly (not through a function, which would fork a subshell)
# and setpriv execs in place, so a later kill or wait reaches the server itself.
pg_launch() {
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid=postgres --regid=postgres --init-groups -- \
            "$PG_BIN/postgres" -D "$PG_DIR/data" >>"$PG_DIR/server.log" 2>&1 &
    else
        "$PG_BIN/postgres" -D "$PG_DIR/data" >>"$PG_DIR/server.log" 2>&1 &
    fi
    PG_PID=$!
    declare -F peer_pid >/dev/null && peer_pid "$PG_PID"
}

pg_halt() {  # [MODE]: pg_ctl stop (fast: clean shutdown with a checkpoint)
    [ -n "${PG_PID:-}" ] || return 0
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m "${1:-fast}" -w -t 600 stop >/dev/null 2>&1 ||
        kill "$PG_PID" 2>/dev/null
    wait "$PG_PID" 2>/dev/null
    PG_PID=""
}

pg_configure() {
    cat >>"$PG_DIR/data/postgresql.conf" <<EOF
# bench/peers/postgres.sh
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR/sock'
max_connections = 1100
shared_buffers = 2GB
max_wal_size = 8GB
synchronous_commit = on
fsync = on
full_page_writes = on
logging_collector = off
EOF
}

pg_schema() {  # DB
    pg_sql "$1" "CREATE TABLE events(session_id int, seq bigint, body jsonb,
                     PRIMARY KEY(session_id, seq));
                 CREATE TABLE sessions(id int PRIMARY KEY, last_seq bigint NOT NULL);
                 CREATE TABLE pool(s text, body jsonb, i serial);"
    python3 bench/peers/gen_events.py --count 4096 --format tsv |
        psql "$(pg_conn "$1")" -v ON_ERROR_STOP=1 -qX -c "COPY pool(s, body) FROM STDIN"
}

postgres_start() {  # DIR
    mkdir -p "$1" && PG_DIR=$(cd "$1" && pwd) && [ -n "$PG_DIR" ] || return 1
    make --no-print-directory -s "BUILD=$BUILD" "$PG_CLIENT" || return 1
    mkdir -p "$PG_DIR/data" "$PG_DIR/sock"
    [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR/data" "$PG_DIR/sock"
    chmod 700 "$PG_DIR/data"
    pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --no-locale \
        >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; return 1; }
    PG_PORT=$(free_port)
    pg_configure
    pg_launch
    wait_port "$PG_PORT" 60 || { cat "$PG_DIR/server.log" >&2; return 1; }
    until pg_sql postgres "SELECT 1" >/dev/null 2>&1; do sleep 0.1; done
    pg_sql postgres "CREATE DATABASE ev" && pg_sql postgres "CREATE DATABASE rd" || return 1
    pg_schema ev && pg_schema rd || return 1
    python3 bench/peers/gen_events.py --count 4096 >"$PG_DIR/ev.ndjson"
    PG_READY=""
    # run.sh's sizes (lib.sh defaults when a module is run by hand)
    PG_SECS=${DUR:-10} PG_REPS=${REPEAT:-3} PG_BIG=${RESTORE_N:-1000000}
    PG_BYTES=${RESTART_BYTES:-$((10 << 30))}
    if [ "${QUICK:-0}" = 1 ]; then PG_READS=1000 PG_FAN=60; else PG_READS=3000 PG_FAN=200; fi
    log "postgres $(pg_sql postgres 'SHOW server_version') on 127.0.0.1:$PG_PORT, data $PG_DIR/data"
}

postgres_stop() {
    pg_halt immediate
    rm -rf "${PG_DIR:?}"
}

# pg_ingest KEY EVENTS BATCH WHAT: median events/s per setting (durable, then async).
pg_ingest() {
    local s
    : >"$PG_DIR/on.vals"
    : >"$PG_DIR/off.vals"
    for _ in $(seq "$PG_REPS"); do
        "$PG_CLIENT" --conninfo "$(pg_conn ev)" --workload ingest --events "$2" --batch "$3" \
            --conns 64 --secs "$PG_SECS" | pg_key events_per_sec >>"$PG_DIR/on.vals"
        [ "$1" = ingest_mix ] && continue
        "$PG_CLIENT" --conninfo "$(pg_conn ev "options='-c synchronous_commit=off'")" \
            --workload ingest --events "$2" --batch "$3" --conns 64 --secs "$PG_SECS" |
            pg_key events_per_sec >>"$PG_DIR/off.vals"
    done
    s="$4; 64 connections (libpq, one thread each), each appending to its own session: one statement = UPDATE of the session's counter row + INSERT of $3 rows (jsonb) = one transaction; ${PG_SECS}s x $PG_REPS, median"
    result "$1" postgres "$(median <"$PG_DIR/on.vals")" events/s higher sync-per-ack \
        "$s; synchronous_commit=on (WAL flushed per commit, group flush)"
    [ "$1" = ingest_mix ] && return 0
    result "$1" postgres-async "$(median <"$PG_DIR/off.vals")" events/s higher async \
        "$s; synchronous_commit=off: NOT durable (acks before the WAL flush; ~600 ms of commits can be lost)"
}

postgres_ingest_batch()  { pg_ingest ingest_batch "$PG_DIR/ev.ndjson" 100 "1 KiB events"; }
postgres_ingest_single() { pg_ingest ingest_single "$PG_DIR/ev.ndjson" 1 "1 KiB events"; }

postgres_ingest_mix() {
    python3 bench/peers/gen_events.py --mix "$BUILD/reel" --count 4096 >"$PG_DIR/mix.ndjson" ||
        { result_na ingest_mix postgres "gen_events.py --mix failed"; return 0; }
    pg_ingest ingest_mix "$PG_DIR/mix.ndjson" 100 "reel mock-agent mix"
}

# Loads N events of the pool into SESSION of DB, server-side (INSERT ... SELECT from the
# pool table: the same jsonb values, no client round trips; preparation, not measured).
pg_fill() {  # DB SESSION N [FIRST_SEQ]
    pg_sql "$1" "SET synchronous_commit = off;
        INSERT INTO events SELECT $2, g, p.body FROM generate_series(${4:-1}, ${4:-1} + $3 - 1) g
            JOIN pool p ON p.i = (g - 1) % 4096 + 1;
        INSERT INTO sessions VALUES ($2, ${4:-1} + $3 - 1)
            ON CONFLICT (id) DO UPDATE SET last_seq = excluded.last_seq"
}

pg_load_reads() {
    [ -n "$PG_READY" ] && return 0
    local t0=$(date +%s)
    pg_fill rd 1 1000 && pg_fill rd 3 10000 && pg_fill rd 2 "$PG_BIG" || return 1
    pg_sql rd "VACUUM ANALYZE events" && pg_sql rd "CHECKPOINT" || return 1
    log "postgres module: read set loaded ($PG_BIG-event session) in $(( $(date +%s) - t0 ))s"
    PG_READY=1
}

postgres_poll100() {
    pg_load_reads || return 1
    : >"$PG_DIR/on.vals"
    for _ in $(seq "$PG_REPS"); do
        "$PG_CLIENT" --conninfo "$(pg_conn rd)" --workload poll --session 3 --conns 64 \
            --secs "$PG_SECS" | pg_key events_per_sec >>"$PG_DIR/on.vals"
    done
    result poll100 postgres "$(median <"$PG_DIR/on.vals")" events/s higher sync-per-ack \
        "64 connections, prepared SELECT body ... WHERE session_id=\$1 AND seq>\$2 ORDER BY seq LIMIT 100, random offsets in a 10,000-event session (jsonb rendered as text by the server); ${PG_SECS}s x $PG_REPS, median"
}

pg_restore() {  # KEY SESSION EVENTS
    local out
    pg_load_reads || return 1
    : >"$PG_DIR/p50"
    : >"$PG_DIR/p99"
    for _ in $(seq "$PG_REPS"); do
        out=$("$PG_CLIENT" --conninfo "$(pg_conn rd)" --workload restore --session "$2" --n "$PG_READS")
        echo "$out" | pg_key p50_us >>"$PG_DIR/p50"
        echo "$out" | pg_key p99_us >>"$PG_DIR/p99"
    done
    local note="newest 50 of a $3-event session, oldest first (prepared: ORDER BY seq DESC LIMIT 50 in a subquery, re-sorted), one connection, $PG_READS sequential queries x $PG_REPS, median"
    result "${1}_p50" postgres "$(median <"$PG_DIR/p50")" us lower sync-per-ack "$note"
    result "${1}_p99" postgres "$(median <"$PG_DIR/p99")" us lower sync-per-ack "$note"
}

postgres_restore_1k() { pg_restore restore_1k 1 1000; }
postgres_restore_1m() { pg_restore restore_1m 2 "$PG_BIG"; }

# LISTEN/NOTIFY is PostgreSQL's subscription mechanism: fan_events has a trigger that
# NOTIFYs each inserted row's body at commit; 1,000 connections LISTEN (a backend process
# each) on one epoll thread of pg_bench.
postgres_fanout() {
    local out
    pg_sql ev "CREATE TABLE IF NOT EXISTS fan_events (LIKE events INCLUDING ALL);
        CREATE OR REPLACE FUNCTION fan_notify() RETURNS trigger LANGUAGE plpgsql AS
            \$\$ BEGIN PERFORM pg_notify('fan', NEW.body::text); RETURN NULL; END \$\$;
        DROP TRIGGER IF EXISTS fan ON fan_events;
        CREATE TRIGGER fan AFTER INSERT ON fan_events FOR EACH ROW EXECUTE FUNCTION fan_notify();
        TRUNCATE fan_events" || return 1
    python3 bench/peers/gen_events.py --format fanout >"$PG_DIR/fan.json"
    out=$(ulimit -n 4096; "$PG_CLIENT" --conninfo "$(pg_conn ev)" --workload fanout \
        --events "$PG_DIR/fan.json" --subscribers 1000 --n "$PG_FAN" --interval-ms 20)
    local d=$(echo "$out" | pg_key deliveries) x=$(echo "$out" | pg_key expected)
    if [ -z "$d" ] || [ "$d" = 0 ]; then
        result_na fanout_p50 postgres "LISTEN/NOTIFY run failed: $(echo "$out" | tr '\n' ' ')"
        result_na fanout_p99 postgres "LISTEN/NOTIFY run failed"
        return 0
    fi
    local note="1,000 LISTEN connections (1,000 backends, max_connections=1100) on one epoll thread; $PG_FAN INSERTs 20 ms apart into a table whose AFTER INSERT trigger pg_notify()s the row (delivered after the commit's WAL flush); latency = INSERT sent -> notification read; $d of $x deliveries"
    result fanout_p50 postgres "$(echo "$out" | pg_key p50_ms)" ms lower sync-per-ack "$note"
    result fanout_p99 postgres "$(echo "$out" | pg_key p99_ms)" ms lower sync-per-ack "$note"
}

postgres_export() {
    local out ratio
    pg_load_reads || return 1
    : >"$PG_DIR/on.vals"
    for _ in $(seq "$PG_REPS"); do
        out=$("$PG_CLIENT" --conninfo "$(pg_conn rd)" --workload export --session 2)
        echo "$out" | pg_key mb_per_sec >>"$PG_DIR/on.vals"
        ratio=$(echo "$out" | awk -F'\t' '$1=="json_bytes"{j=$2} $1=="zstd_bytes"{z=$2} END{printf "%.2f", j/z}')
    done
    result export postgres "$(median <"$PG_DIR/on.vals")" MB/s higher sync-per-ack \
        "$PG_BIG-event session: COPY (SELECT body ... ORDER BY seq) TO STDOUT -> JSON lines (jsonb text form) -> libzstd level 3 in the client (ratio $ratio); x $PG_REPS, median"
}

postgres_bytes_per_event() {
    pg_load_reads || return 1
    pg_sql rd "CHECKPOINT" >/dev/null
    local n=$(pg_sql rd "SELECT count(*) FROM events")
    local b=$(pg_sql rd "SELECT pg_total_relation_size('events')")
    local wal=$(dir_bytes "$PG_DIR/data/pg_wal")
    result bytes_per_event postgres "$(awk -v b="$b" -v n="$n" 'BEGIN{printf "%.0f", b/n}')" \
        bytes lower sync-per-ack \
        "pg_total_relation_size('events') (heap + TOAST + primary key index, after VACUUM and CHECKPOINT) = $b bytes / $n events of ~1 KiB JSON as jsonb; WAL is extra: pg_wal holds $wal bytes for the whole run"
}

# Restart: a data set of PG_BYTES bytes (server-side INSERT ... SELECT of the pool's jsonb in
# chunks of 1M rows, synchronous_commit=off; stops at 240 s), then time from the
# postgres exec to newest-50 answered: once after kill -9 (crash recovery replays the WAL
# since the last checkpoint), then 3 times after a clean stop (median).
postgres_restart_ms() {
    local target chunk=1000000 done=0 t0 size gib kill9
    pg_sql postgres "DROP DATABASE ev" >/dev/null && pg_sql postgres "DROP DATABASE rd" >/dev/null
    PG_READY=""
    pg_sql postgres "CREATE DATABASE big" && pg_schema big || return 1
    target=$PG_BYTES
    [ "${QUICK:-0}" = 1 ] && chunk=250000
    t0=$(date +%s)
    while :; do
        pg_fill big 2 "$chunk" $((done + 1)) || return 1
        done=$((done + chunk))
        size=$(pg_sql big "SELECT pg_total_relation_size('events')")
        [ "$size" -ge "$target" ] && break
        [ $(( $(date +%s) - t0 )) -ge 240 ] && break
    done
    gib=$(awk -v b="$size" 'BEGIN{printf "%.1f", b/1073741824}')
    log "postgres module: restart data $gib GiB ($done events) loaded in $(( $(date +%s) - t0 ))s"
    : >"$PG_DIR/kill.ms"
    : >"$PG_DIR/clean.ms"
    pg_restart_once kill "$PG_DIR/kill.ms" || return 1
    for _ in 1 2 3; do pg_restart_once clean "$PG_DIR/clean.ms" || return 1; done
    kill9=$(cat "$PG_DIR/kill.ms")
    result restart_ms postgres "$(median <"$PG_DIR/clean.ms")" ms lower sync-per-ack \
        "$gib GiB ($done events, loaded server-side with synchronous_commit=off): postgres exec -> connection -> newest-50 answered, after a clean stop (pg_ctl -m fast), warm page cache, median of 3; after kill -9 of the server (crash recovery replaying the WAL since the last checkpoint): $kill9 ms"
    pg_sql postgres "DROP DATABASE big" >/dev/null
}

# Stops the server (clean: pg_ctl -m fast; kill: kill -9 of the postmaster and of its
# children, by pid), starts it again and appends the ms until newest-50 is answered to
# FILE. Not run in $(...): the server must stay a child of this shell.
pg_restart_once() {  # clean|kill FILE
    local t0 t1 kids k
    if [ "$1" = kill ]; then
        kids=$(ps -o pid= --ppid "$PG_PID")   # backends, checkpointer, ... by pid
        kill -9 "$PG_PID" 2>/dev/null
        [ -n "$kids" ] && kill -9 $kids 2>/dev/null
        wait "$PG_PID" 2>/dev/null
        PG_PID=""
        # A new postmaster refuses to start while a killed child still holds the old
        # shared memory: wait until every child has exited (a zombie has).
        for k in $kids; do
            while [ -r "/proc/$k/stat" ] && ! awk '{exit ($3 == "Z") ? 0 : 1}' "/proc/$k/stat" 2>/dev/null; do
                sleep 0.01
            done
        done
    else
        pg_halt fast
    fi
    t0=$(date +%s%N)
    pg_launch
    "$PG_CLIENT" --conninfo "$(pg_conn big)" --workload first-read --session 2 \
        --server-pid "$PG_PID" >/dev/null || { tail -n 5 "$PG_DIR/server.log" >&2; return 1; }
    t1=$(date +%s%N)
    awk -v d=$((t1 - t0)) 'BEGIN{printf "%.1f\n", d / 1e6}' >>"$2"
}
