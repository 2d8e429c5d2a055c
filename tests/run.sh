#!/bin/sh
# run.sh [--quick] BUILD [SUITE...] -- runs the test suites against the binaries in BUILD
# and ends with one summary line "N passed, N failed" (the form CI reads). Exit status 1 on
# any failure.
#
# SUITEs, in the order they run: unit cli http load browser fault powerloss-quick oom-quick fuzz-quick
# mutants clients clients-py conformance cluster; none given means all of them (`make test`). --quick is `make check`'s fast
# pass over unit, cli and http: the HTTP suite runs 5 kill -9 rounds instead of 50
# (REEL_KILL_ROUNDS) and leaves out its two slow soak-like tests (the 400-request mutation
# fuzz and the 10-second SSE heartbeat wait); everything else, the bad-input corpus
# included, runs in full.
set -u
QUICK=
if [ "${1:-}" = --quick ]; then
    QUICK=1
    shift
fi
BUILD=${1:-build}
[ $# -gt 0 ] && shift
SUITES=${*:-unit cli http load browser fault powerloss-quick oom-quick fuzz-quick mutants clients clients-py agents conformance cluster}
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

# 0 when suite $1 was asked for.
wanted() {
    case " $SUITES " in *" $1 "*) return 0 ;; esac
    return 1
}

# Unit tests (Criterion forks one process per test).
if wanted unit; then
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
fi

# Black-box tests (pytest from Debian's python3-pytest), one session per folder: each
# folder's conftest.py is its own module. tests/load runs its quick sizes (about 70 s).
for suite in cli http load; do
    dir=tests/$suite
    wanted "$suite" || continue
    ls "$dir"/test_*.py >/dev/null 2>&1 || continue
    echo "== black-box tests ($dir, REEL_BIN=$BUILD/reel${QUICK:+, quick})"
    rounds=${REEL_KILL_ROUNDS:-50}
    sink_kills=${REEL_SINK_KILLS:-20} # tests/http/test_sink_postgres.py; make cluster-test: 50
    set --
    if [ -n "$QUICK" ] && [ "$suite" = http ]; then
        set -- -k "not test_mutated_requests and not test_sse_heartbeat_comment"
        rounds=5
        sink_kills=5
    fi
    REEL_BIN="$top/$BUILD/reel" REEL_KILL_ROUNDS=$rounds REEL_SINK_KILLS=$sink_kills /usr/bin/python3 -m pytest -q -p no:cacheprovider "$@" "$dir" \
        2>&1 | tee "$log"
    tally '[0-9]+ (passed|failed)'
done

# Browser tests of the web inspector (headless Chromium via playwright-core); the script
# skips with "0 passed, 0 failed" when node or chromium is missing.
if wanted browser && [ -x tests/browser/run.sh ]; then
    echo "== browser tests (tests/browser)"
    REEL_BIN="$top/$BUILD/reel" tests/browser/run.sh 2>&1 | tee "$log"
    tally '^[0-9]+ passed, [0-9]+ failed'
fi

# Syscall fault injection (LD_PRELOAD shim), the malloc-failure run (tests/oom/, one test
# per operation), the fuzz harnesses (a short run each plus their regression cases,
# tests/fuzz/fuzz.mk) and the mutants (tests/mutants/run.sh).
# Summary lines: "N passed, N failed".
for target in fault powerloss-quick oom-quick fuzz-quick mutants; do
    wanted "$target" || continue
    echo "== make $target"
    make --no-print-directory -s "$target" BUILD="$BUILD" 2>&1 | tee "$log"
    tally '[0-9]+ passed'
done

# The client packages (clients/typescript: ReelClient and the SDK adapters, node --test
# against a real server); the script skips with "0 passed, 0 failed (skipped: ...)" when
# node or npm is missing.
if wanted clients && [ -x clients/typescript/run-tests.sh ]; then
    echo "== client packages (clients/typescript)"
    clients/typescript/run-tests.sh "$BUILD/reel" 2>&1 | tee "$log"
    tally '^[0-9]+ passed, [0-9]+ failed'
fi

# The Python client (clients/python, stdlib only) against servers its tests start.
if wanted clients-py; then
    echo "== Python client tests (clients/python/tests)"
    REEL_BIN="$top/$BUILD/reel" /usr/bin/python3 -m pytest -q -p no:cacheprovider clients/python/tests 2>&1 | tee "$log"
    tally '[0-9]+ (passed|failed)'
fi

# The real agent CLIs through `reel run` against fake model APIs (tests/agents/run.sh installs
# the pinned CLIs; "0 passed, 0 failed (skipped: ...)" without node/npm).
if wanted agents && [ -x tests/agents/run.sh ]; then
    echo "== real agent CLIs (tests/agents)"
    tests/agents/run.sh "$BUILD" 2>&1 | tee "$log"
    tally '[0-9]+ (passed|failed)'
fi

# The Durable Streams conformance suite; --optional: "0 passed, 0 failed (skipped: ...)"
# without node/npm or offline.
if wanted conformance && [ -x tests/conformance/run.sh ]; then
    echo "== Durable Streams conformance (tests/conformance)"
    tests/conformance/run.sh --optional "$BUILD/reel" 2>&1 | tee "$log"
    tally '^[0-9]+ passed, [0-9]+ failed'
fi

# Cells behind a real nginx, quick: 1,000 sessions routed (make cluster-test: 10,000 and
# the conformance suite through nginx). "0 passed, 0 failed (skipped: ...)" without nginx.
if wanted cluster && [ -x tests/cluster/run.sh ]; then
    echo "== cells behind nginx (tests/cluster, quick)"
    tests/cluster/run.sh --quick "$BUILD" 2>&1 | tee "$log"
    tally '^[0-9]+ passed, [0-9]+ failed'
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
