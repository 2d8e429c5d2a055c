#!/bin/sh
# bench.sh -- run reel's benchmarks and print their numbers (never pass/fail).
#
#   bench/bench.sh BUILD_DIR [--quick] [SECTION...]
#
# BUILD_DIR holds the built programs (build/bench_store, build/bench_replay, build/reel).
# Sections run in the order given (default: all, in the order of SECTIONS below):
#   store   build/bench_store: fsync rate, durable appends, group commit, scans, newest-50
#   replay  build/bench_replay: restore latency, export speed
#   redact  build/bench_redact: ingest events/s with redaction off and on
#   http    bench/bench_http.sh: the HTTP API beside Redis Streams (needs redis, wrk)
#   tenants bench/bench_tenants.sh: rate limits and quotas under load (needs wrk)
# Each section is a shell function named section_<name> that prints a Markdown block; a
# new benchmark is one more function and one more name in SECTIONS.
# Temporary data lives under BUILD_DIR/bench-tmp (same disk as the build, never a tmpfs
# unless BUILD_DIR is one), and the whole output is also saved to
# BUILD_DIR/bench-results.md. See docs/BENCHMARKS.md.
set -eu

SECTIONS="store replay redact http tenants"

usage() {
    echo "usage: bench/bench.sh BUILD_DIR [--quick] [SECTION...]"
    echo "sections: $SECTIONS"
}

[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
BUILD=$1
shift
QUICK=""
WANT=""
for a in "$@"; do
    case "$a" in
        --quick) QUICK="--quick" ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "bench.sh: unknown option '$a'" >&2; usage >&2; exit 2 ;;
        *) WANT="$WANT $a" ;;
    esac
done
[ -n "$WANT" ] || WANT=$SECTIONS
for s in $WANT; do
    case " $SECTIONS " in
        *" $s "*) ;;
        *) echo "bench.sh: unknown section '$s' (have: $SECTIONS)" >&2; exit 2 ;;
    esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
TMP="$BUILD/bench-tmp"
OUT="$BUILD/bench-results.md"
mkdir -p "$TMP"

fstype=$(stat -f -c %T "$TMP" 2>/dev/null || echo unknown)
case "$fstype" in
    tmpfs|ramfs)
        echo "bench.sh: warning: $TMP is on $fstype; fsync numbers will be meaningless" >&2 ;;
esac

# ---- Sections ----

section_store() {
    bin="$BUILD/bench_store"
    [ -x "$bin" ] || { echo "bench.sh: $bin missing; run 'make bench'" >&2; return 1; }
    "$bin" $QUICK --dir "$TMP"
}

section_replay() {
    bin="$BUILD/bench_replay"
    [ -x "$bin" ] || { echo "bench.sh: $bin missing; run 'make bench'" >&2; return 1; }
    "$bin" $QUICK --dir "$TMP"
}

section_redact() {
    bin="$BUILD/bench_redact"
    [ -x "$bin" ] || { echo "bench.sh: $bin missing; run 'make bench'" >&2; return 1; }
    "$bin" $QUICK --dir "$TMP"
}

section_http() {
    [ -x "$BUILD/reel" ] || { echo "bench.sh: $BUILD/reel missing; run 'make'" >&2; return 1; }
    "$HERE/bench_http.sh" "$BUILD" $QUICK
}

section_tenants() {
    [ -x "$BUILD/reel" ] || { echo "bench.sh: $BUILD/reel missing; run 'make'" >&2; return 1; }
    "$HERE/bench_tenants.sh" "$BUILD" $QUICK
}

# ---- Run ----

run_all() {
    rev=$(git describe --always --dirty 2>/dev/null || echo "no commit")
    echo "<!-- bench/bench.sh $BUILD${QUICK:+ $QUICK} sections:" $WANT","\
         "$(date -u +%Y-%m-%dT%H:%M:%SZ), $rev -->"
    echo
    status=0
    for s in $WANT; do
        if ! "section_$s"; then
            echo "bench.sh: section '$s' failed" >&2
            status=1
        fi
        echo
    done
    return $status
}

# Keep the section's exit status through the pipe into tee (POSIX sh has no pipefail).
rc_file="$TMP/.rc.$$"
{ rc=0; run_all || rc=$?; echo $rc > "$rc_file"; } | tee "$OUT"
rc=$(cat "$rc_file" 2>/dev/null || echo 1)
rm -f "$rc_file"
rmdir "$TMP" 2>/dev/null || true
echo "bench.sh: results saved to $OUT" >&2
exit "$rc"
