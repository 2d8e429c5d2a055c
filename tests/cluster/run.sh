#!/bin/sh
# run.sh [--quick] [BUILD] -- cells behind a real nginx (docs/CLUSTER.md): the routing tests
# (tests/cluster/test_routing.py: 10,000 sessions through nginx, or 1,000 with --quick),
# cluster-wide reads (test_reads.py), failures under load with PostgreSQL 15 (test_failures.py:
# kill -9 a cell 50 times, or 3 with --quick; the primary killed; a cell stopped), the
# shard moves (tests/cluster/test_move.py: 1,000 sessions under load, or 100) and,
# without --quick, the Durable Streams conformance suite through nginx in front of one cell
# and in front of three. Ends with "N passed, N failed". `make cluster-test` runs it in
# full; tests/run.sh (make test) runs --quick. Skips ("0 passed, 0 failed (skipped: ...)")
# when nginx is not installed.
set -u
quick=
[ "${1:-}" = --quick ] && { quick=1; shift; }
build=${1:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "0 passed, 0 failed (skipped: nginx is not installed; make deps)"
    exit 0
fi
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
n=${REEL_CLUSTER_SESSIONS:-$([ -n "$quick" ] && echo 1000 || echo 10000)}
kills=${REEL_CLUSTER_KILLS:-$([ -n "$quick" ] && echo 3 || echo 50)}  # test_failures.py
REEL_BIN="$top/$build/reel" REEL_CLUSTER_SESSIONS=$n REEL_CLUSTER_KILLS=$kills timeout 900 \
    /usr/bin/python3 -m pytest -q -s -p no:cacheprovider tests/cluster 2>&1 | tee "$log"
line=$(grep -E '[0-9]+ (passed|failed)' "$log" | tail -n 1)
p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
f=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
e=$(echo "$line" | grep -oE '[0-9]+ errors?' | grep -oE '[0-9]+')
[ -z "$line" ] && f=1
passed=$((passed + ${p:-0}))
failed=$((failed + ${f:-0} + ${e:-0}))
if [ -z "$quick" ]; then
    for cells in 1 3; do
        REEL_BIN="$top/$build/reel" timeout 900 /usr/bin/python3 tests/cluster/conformance.py \
            --cells $cells 2>&1 | tee "$log"
        grep -q '^0 passed, 0 failed (skipped' "$log" && continue  # no node/npm
        line=$(grep -E '^conformance through nginx' "$log" | tail -n 1)
        f=$(echo "$line" | grep -oE '[0-9]+ failed otherwise' | grep -oE '^[0-9]+')
        if [ -z "$line" ] || [ "${f:-1}" -ne 0 ]; then
            failed=$((failed + 1))
        else
            passed=$((passed + 1))
        fi
    done
fi
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
