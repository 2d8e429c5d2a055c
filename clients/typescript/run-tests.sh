#!/bin/sh
# run-tests.sh [REEL_BIN] -- builds reel-client (npm ci when node_modules is missing, tsc) and
# runs its tests with `node --test` against dist/ and a real reel server:
# clients/typescript/test/*.test.mjs and tests/adapters/*/*.test.mjs (each test file starts
# its own server through test/server.mjs). Ends with one line "N passed, N failed" (the form
# tests/run.sh tallies); exit status 1 on any failure.
# Environment: REEL_BIN (default: the argument, else <repo>/build/reel), TEST_ONLY (a glob
# of test files to run instead of all), NODE_TEST_ARGS (extra node --test flags).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
reel=${1:-${REEL_BIN:-$root/build/reel}}
case $reel in /*) ;; *) reel=$(pwd)/$reel ;; esac
export REEL_BIN="$reel"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "clients: node and npm are needed"
    echo "0 passed, 0 failed (skipped: node and npm are needed)"
    exit 0
fi
if [ ! -x "$reel" ]; then
    echo "clients: $reel is not built (run make)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
cd "$here" || exit 1
if [ ! -x node_modules/.bin/tsc ]; then
    npm ci --no-audit --no-fund --ignore-scripts >/dev/null 2>&1 || {
        echo "clients: npm ci failed in $here" >&2
        echo "0 passed, 1 failed"
        exit 1
    }
fi
if ! node_modules/.bin/tsc -p tsconfig.json; then
    echo "clients: tsc failed" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

if [ -n "${TEST_ONLY:-}" ]; then
    files=$(ls $TEST_ONLY 2>/dev/null)
else
    files=$(ls "$here"/test/*.test.mjs "$root"/tests/adapters/*/*.test.mjs 2>/dev/null)
fi
if [ -z "$files" ]; then
    echo "clients: no test files"
    echo "0 passed, 0 failed"
    exit 0
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# One file at a time (each starts its own server; the machine is small); the spec reporter's
# closing "ℹ pass N" / "ℹ fail N" lines are counted. --test-force-exit: fetch's keep-alive
# sockets would otherwise hold each file open for a few seconds.
# shellcheck disable=SC2086
node --test --test-concurrency=1 --test-timeout=120000 --test-force-exit ${NODE_TEST_ARGS:-} \
    --test-reporter=spec $files 2>&1 | tee "$log"
pass=$(grep -aE '^ℹ pass [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+')
fail=$(grep -aE '^ℹ fail [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+')
cancelled=$(grep -aE '^ℹ cancelled [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+')
[ -z "$pass" ] && fail=1   # no summary: the runner crashed
pass=${pass:-0}
fail=$(( ${fail:-0} + ${cancelled:-0} ))
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
