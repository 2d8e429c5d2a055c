# lib.sh -- shared helpers of bench/peers/run.sh (`make bench-peers`), sourced, not run.
#
# The contract between the driver and the system modules:
#   * run.sh sources lib.sh and then bench/peers/<system>.sh for each system (reel, redis,
#     postgres, sqlite, streams, nginx, ...). A module defines <system>_start DIR,
#     <system>_stop, and one function per workload it offers, named <system>_<workload>
#     (workload keys below). The driver calls <system>_start with a fresh directory, runs
#     each workload function that exists, then <system>_stop; a workload function that is
#     absent is shown as "n/a" and should be explained with result_na.
#   * Every number goes through `result`, one TSV line in $RESULTS:
#       workload  system  value  unit  better  durability  note
#     better is "higher" or "lower"; durability is one of sync-per-ack, group-commit,
#     async (a relaxed setting, only ever in an extra, labelled system such as
#     "redis-everysec"); note is free text (how it was measured).
#   * Workload keys (the table's rows, in this order):
#       ingest_batch      events/s, 100 x ~1 KiB events per request/transaction, 64 connections
#       ingest_single     events/s, 1 event per request/transaction, 64 connections
#       ingest_single_p50/p99  ms, request latency of that run (issue 19)
#       ingest_mix        events/s, the `reel mock-agent` transcript mix, batches of 100
#       poll100           events/s, reads of 100 events after an offset, 64 connections
#       restore_1k_p50/p99, restore_1m_p50/p99
#                         us, newest 50 events of a 1k-event / 1M-event session
#       fanout_p50/p99    ms, append -> delivery to each of 1,000 subscribers
#       export            MB/s of JSON lines, a whole 1M-event session, zstd -3 output
#       bytes_per_event   bytes on disk per stored 1 KiB event (after a checkpoint/compaction)
#       bytes_ratio_mix   x, data directory bytes / NDJSON bytes, issue 19's realistic mix
#       bytes_ratio_1k    x, the same for the 1 KiB events (both: bytes_ratio, issue 19)
#       restart_ms        ms from process start to the first served read, 10 GiB of data
#   * Payloads come from gen_events.py (same bytes for every system).
# Environment: RESULTS (the TSV file), PEERS_TMP (scratch root on the same disk as the
# build, never tmpfs), QUICK (1 for the small sizes), BUILD (reel's build dir).

result() {  # workload system value unit better durability [note]
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "${7:-}" >>"$RESULTS"
}

result_na() {  # workload system reason
    printf '%s\t%s\tn/a\t\t\t\t%s\n' "$1" "$2" "$3" >>"$RESULTS"
}

log() { printf '[peers %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {  # port [seconds]: until something accepts on 127.0.0.1:port
    python3 - "$1" "${2:-30}" <<'PY'
import socket, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
end = time.time() + limit
while time.time() < end:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.01)
sys.exit(1)
PY
}

dir_bytes() { du -sb "$1" | cut -f1; }   # bytes on disk under a directory

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# One wrk run with the given arguments; prints "requests/s transfer-bytes/s", and with
# --latency among the arguments also "p50-ms p99-ms" of wrk's latency distribution. Fails on
# any non-2xx answer or socket error, so a refused request can never pass for throughput.
wrk_run() {  # wrk_run WRK-ARGS...
    local out
    out=$(wrk "$@" 2>&1)
    if echo "$out" | grep -qE 'Non-2xx|Socket errors'; then
        echo "$out" >&2
        return 1
    fi
    echo "$out" | awk '
        /^Requests\/sec/ { rps = $2 }
        /^Transfer\/sec/ { v = $2; m = 1
            if (v ~ /GB$/) m = 1073741824; else if (v ~ /MB$/) m = 1048576; else if (v ~ /KB$/) m = 1024
            sub(/[KMG]?B$/, "", v); tr = v * m }
        function ms(v) { if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
                         if (v ~ /ms$/) { sub(/ms$/, "", v); return v }
                         if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000 } return v }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        END { printf "%s %.0f", rps, tr; if (p50 != "") printf " %.3f %.3f", p50, p99; printf "\n" }'
}
