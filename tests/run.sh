#!/bin/sh
# run.sh BUILD -- runs every test family against the binaries in BUILD and ends with one
# summary line "N passed, N failed" (the form CI reads). Exit status 1 on any failure.
set -u
BUILD=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Adds the last line of $log matching the pattern ("N passed, N failed", pytest's "N
# errors" too) to the totals; no such line counts as one failure (the runner crashed).
tally() {
    line=$(grep -E "$1" "$log" | tail -n 1)
    p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
    f=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
    e=$(echo "$line" | grep -oE '[0-9]+ errors?' | grep -oE '[0-9]+')
    [ -z "$line" ] && f=1
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0} + ${e:-0}))
}

# Unit tests (Criterion forks one process per test).
echo "== unit tests ($BUILD/unit)"
"$BUILD/unit" --jobs 2 2>&1 | tee "$log"
syn=$(grep 'Synthesis:' "$log" | tail -n 1)
if [ -n "$syn" ]; then
    p=$(echo "$syn" | sed -n 's/.*Passing: *\([0-9]*\).*/\1/p')
    f=$(echo "$syn" | sed -n 's/.*Failing: *\([0-9]*\).*/\1/p')
    c=$(echo "$syn" | sed -n 's/.*Crashing: *\([0-9]*\).*/\1/p')
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0} + ${c:-0}))
else
    echo "unit: no Criterion summary (the runner crashed?)"
    failed=$((failed + 1))
fi

# Black-box tests (pytest from Debian's python3-pytest), one session per folder: each
# folder's conftest.py is its own module. tests/load runs its quick sizes (about 70 s).
for dir in tests/cli tests/http tests/load; do
    ls "$dir"/test_*.py >/dev/null 2>&1 || continue
    echo "== black-box tests ($dir, REEL_BIN=$BUILD/reel)"
    REEL_BIN="$top/$BUILD/reel" /usr/bin/python3 -m pytest -q -p no:cacheprovider "$dir" \
        2>&1 | tee "$log"
    tally '[0-9]+ (passed|failed)'
done

# Browser tests of the web inspector (headless Chromium via playwright-core); the script
# skips with "0 passed, 0 failed" when node or chromium is missing.
if [ -x tests/browser/run.sh ]; then
    echo "== browser tests (tests/browser)"
    REEL_BIN="$top/$BUILD/reel" tests/browser/run.sh 2>&1 | tee "$log"
    tally '^[0-9]+ passed, [0-9]+ failed'
fi

# Syscall fault injection (LD_PRELOAD shim), the malloc-failure run (tests/oom/, one test
# per operation), the fuzz harnesses (a short run each plus their regression cases,
# tests/fuzz/fuzz.mk) and the mutants (tests/mutants/run.sh).
# Summary lines: "N passed, N failed".
for target in fault oom-quick fuzz-quick mutants; do
    echo "== make $target"
    make --no-print-directory -s "$target" BUILD="$BUILD" 2>&1 | tee "$log"
    tally '[0-9]+ passed'
done

# The Durable Streams conformance suite; --optional: "0 passed, 0 failed (skipped: ...)"
# without node/npm or offline.
if [ -x tests/conformance/run.sh ]; then
    echo "== Durable Streams conformance (tests/conformance)"
    tests/conformance/run.sh --optional "$BUILD/reel" 2>&1 | tee "$log"
    tally '^[0-9]+ passed, [0-9]+ failed'
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
