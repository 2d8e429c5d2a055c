#!/bin/sh
# run.sh -- browser tests of the web inspector (/ui/) in headless Debian chromium.
#
#   tests/browser/run.sh            uses build/reel (REEL_BIN overrides)
#   UPDATE_DOCS_SCREENSHOTS=1 tests/browser/run.sh   also refreshes docs/ui-*.png
#
# Needs node (18+) and chromium (/usr/bin/chromium, `apt-get install chromium`); skips
# with a message when either is missing. playwright-core is installed from the lockfile
# into tests/browser/node_modules when missing (npm ci; it never downloads a browser).
# Ends with the line "N passed, N failed"; exit status 1 when a test failed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

skip() {
    echo "browser tests skipped: $1"
    echo "0 passed, 0 failed"
    exit 0
}

command -v node >/dev/null 2>&1 || skip "node is not installed"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 18 ] || skip "node $major is too old (18+ needed for node --test)"
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || skip "chromium not found at $CHROMIUM (apt-get install chromium)"
export CHROMIUM
REEL_BIN=${REEL_BIN:-build/reel}
[ -x "$REEL_BIN" ] || { echo "browser tests: $REEL_BIN not built (run make)"; echo "0 passed, 1 failed"; exit 1; }
export REEL_BIN

if [ ! -f "$here/node_modules/playwright-core/package.json" ]; then
    echo "browser tests: installing playwright-core (npm ci)"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$here" --no-audit --no-fund --loglevel=error \
        >/dev/null 2>&1 || skip "cannot install playwright-core (npm ci failed; offline?)"
fi

mkdir -p build/browser-artifacts
tap=build/browser-artifacts/results.tap
# One test file (ui.test.mjs); its suites start their own servers.
node --test \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" \
    "$here/"
status=$?
pass=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tap" | tail -1)
fail=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tap" | tail -1)
pass=${pass:-0}
fail=${fail:-0}
[ "$status" -ne 0 ] && [ "$fail" -eq 0 ] && fail=1
echo "screenshots: build/browser-artifacts/"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
