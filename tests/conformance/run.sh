#!/bin/sh
# run.sh -- the Durable Streams conformance suite against reel (docs/durable-streams.md).
#
#   tests/conformance/run.sh [--optional] [REEL_BINARY]
#   DS_BASE_URL=http://127.0.0.1:8080 tests/conformance/run.sh   (a server already running)
#
# Installs the pinned suite (npm ci) into tests/conformance/node_modules when missing,
# starts REEL_BINARY (default build/reel) with `serve` on a temporary data directory and
# a free port, runs the suite with vitest, names every failed test, and ends with
# "N passed, N failed, N skipped". Exit status 0 when no test failed, else 1.
# With --optional (tests/run.sh), a machine without node/npm, or where npm ci cannot
# install the suite (offline), prints "0 passed, 0 failed (skipped: ...)" and exits 0.
# Environment: DS_SYNC (full|none, default full), DS_VITEST_ARGS (extra vitest args,
# e.g. "-t 'SSE Mode'"), DS_KEEP=1 keeps the data directory and logs, DS_BASE_URL runs the
# suite against that URL (e.g. nginx in front of cells, tests/cluster/) instead of
# starting a server.
set -u
optional=0
[ "${1:-}" = --optional ] && { optional=1; shift; }
skip() {
    if [ $optional = 1 ]; then
        echo "conformance: $1"
        echo "0 passed, 0 failed (skipped: $1)"
        exit 0
    fi
    echo "conformance: $1" >&2
    exit 1
}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
reel=${1:-$root/build/reel}
case $reel in /*) ;; *) reel=$(pwd)/$reel ;; esac

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    skip "node and npm are needed"
fi
if [ -z "${DS_BASE_URL:-}" ] && [ ! -x "$reel" ]; then
    echo "conformance: $reel is not built (run make)" >&2
    exit 1
fi
if [ ! -d "$here/node_modules/@durable-streams/server-conformance-tests" ]; then
    (cd "$here" && npm ci --no-audit --no-fund >/dev/null 2>&1) ||
        skip "npm ci could not install the suite (offline?)"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/reel-conformance.XXXXXX")
if [ -n "${DS_BASE_URL:-}" ]; then
    url=$DS_BASE_URL
    trap '[ "${DS_KEEP:-0}" = 1 ] && echo "conformance: kept $tmp" || rm -rf "$tmp"' EXIT INT TERM
else
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
           node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
    "$reel" serve --data "$tmp/data" --listen "127.0.0.1:$port" \
        --sync "${DS_SYNC:-full}" >"$tmp/serve.log" 2>&1 &
    pid=$!
    cleanup() {
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        [ "${DS_KEEP:-0}" = 1 ] && echo "conformance: kept $tmp" || rm -rf "$tmp"
    }
    trap cleanup EXIT INT TERM
    i=0
    until curl -sf "http://127.0.0.1:$port/v1/health" >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
            echo "conformance: reel serve did not start" >&2
            cat "$tmp/serve.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    url="http://127.0.0.1:$port"
fi

cd "$here" || exit 1
# shellcheck disable=SC2086
DS_URL="$url" ./node_modules/.bin/vitest run conformance.test.mjs \
    --reporter=default --reporter=json --outputFile="$tmp/result.json" ${DS_VITEST_ARGS:-} \
    >"$tmp/vitest.log" 2>&1
status=$?
if [ -s "$tmp/result.json" ]; then
    node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const failed = [];
for (const f of r.testResults) for (const t of f.assertionResults)
  if (t.status === "failed") failed.push(t.fullName);
for (const n of failed) console.log("FAIL " + n);
console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$tmp/result.json"
else
    tail -40 "$tmp/vitest.log"
    echo "0 passed, 1 failed, 0 skipped"
    status=1
fi
[ "${DS_KEEP:-0}" = 1 ] && cp "$tmp/vitest.log" "$here/last-vitest.log" 2>/dev/null
[ $status -eq 0 ] && exit 0 || exit 1
