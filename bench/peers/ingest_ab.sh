#!/bin/bash
# ingest_ab.sh -- issue 19's two ingest rows, before and after a change, side by side with
# Redis (appendfsync always) in the same run: ROUNDS rounds of [Redis, reel A, reel B] (A and B
# swap places every other round), each
# system through bench/peers/run.sh --quick --workloads ingest_batch,ingest_single (3 s per
# figure), so that the three columns of a round see the same load on a shared machine.
#
#   bench/peers/ingest_ab.sh BUILD_A BUILD_B [ROUNDS] [SYSTEM_B]
#
#   BUILD_A, BUILD_B  build directories holding reel (and peers/, e.g. a symlink to
#                     build/peers); A is "before", B "after"
#   ROUNDS            rounds (default 3)
#   SYSTEM_B          run.sh system for B (default reel; reel-nosync runs B with --sync none,
#                     reel-journal with --journal)
# Prints one line per round and figure: round, load average, figure, redis, A, B, A/redis,
# B/redis (events/s: > 1 is better; ms: the ratio is redis/reel, > 1 is better).
set -u
[ $# -ge 2 ] || { sed -n '2,16p' "$0" >&2; exit 2; }
A=$1 B=$2 ROUNDS=${3:-3} SYS_B=${4:-reel}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUN="$ROOT/bench/peers/run.sh"
W=ingest_batch,ingest_single
get() {  # get TSV WORKLOAD SYSTEM
    awk -F'\t' -v w="$2" -v s="$3" '$1 == w && $2 == s {print $3}' "$1"
}
printf '| round | load | figure | redis | A | B | A vs redis | B vs redis |\n'
printf '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |\n'
for r in $(seq 1 "$ROUNDS"); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    t=$(mktemp -d)
    "$RUN" "$A" --quick --only redis --workloads $W >/dev/null 2>&1
    cp "$ROOT/build/peers-tmp/results.tsv" "$t/redis"
    for x in $( [ $((r % 2)) = 1 ] && echo a b || echo b a ); do  # alternate who goes first
        if [ $x = a ]; then
            "$RUN" "$A" --quick --only reel --workloads $W >/dev/null 2>&1
        else
            "$RUN" "$B" --quick --only "$SYS_B" --workloads $W >/dev/null 2>&1
        fi
        cp "$ROOT/build/peers-tmp/results.tsv" "$t/$x"
    done
    for f in ingest_batch ingest_single ingest_single_p50 ingest_single_p99; do
        rd=$(get "$t/redis" $f redis) ra=$(get "$t/a" $f reel) rb=$(get "$t/b" $f "$SYS_B")
        awk -v r="$r" -v l="$load" -v f="$f" -v x="$rd" -v a="$ra" -v b="$rb" 'BEGIN {
            hi = f !~ /_p[0-9]+$/
            ra = x > 0 && a > 0 ? (hi ? a / x : x / a) : 0
            rb = x > 0 && b > 0 ? (hi ? b / x : x / b) : 0
            printf "| %s | %s | %s | %s | %s | %s | %.2fx | %.2fx |\n", r, l, f, x, a, b, ra, rb }'
    done
    rm -rf "$t"
done
