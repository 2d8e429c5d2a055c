#!/bin/bash
# tests/agents/run.sh BUILD [PYTEST-ARGS...] -- the real agent CLIs through `reel run`.
#
# Installs each tests/agents/<agent>/ folder's pinned CLI (package.json + package-lock.json,
# `npm ci`) when its node_modules is missing or older than the lockfile, then runs pytest
# over tests/agents. Without node or npm, or when npm cannot reach its registry, prints
# "0 passed, 0 failed (skipped: ...)" and exits 0, like the other npm-based suites.
set -u
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
shift || true
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "0 passed, 0 failed (skipped: node or npm missing)"
    exit 0
fi
for pkg in tests/agents/*/package.json; do
    dir=$(dirname "$pkg")
    [ -f "$dir/package-lock.json" ] || continue
    if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
        echo "== npm ci in $dir"
        flags=(--no-audit --no-fund)
        [ -f "$dir/.npm-ignore-scripts" ] && flags+=(--ignore-scripts)
        if ! (cd "$dir" && timeout 900 npm ci "${flags[@]}" >/dev/null 2>npm-ci.log); then
            echo "npm ci failed in $dir:"; tail -5 "$dir/npm-ci.log"
            echo "0 passed, 0 failed (skipped: npm could not install $dir)"
            exit 0
        fi
        touch "$dir/node_modules"
    fi
done
REEL_BIN="$PWD/$BUILD/reel" exec /usr/bin/python3 -m pytest -q -p no:cacheprovider "$@" tests/agents
