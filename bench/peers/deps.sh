#!/bin/sh
# deps.sh -- install the peers `make bench-peers` compares reel with (idempotent).
#
#   bench/peers/deps.sh [--help]
#
# Debian packages: redis-server postgresql sqlite3 libsqlite3-dev libpq-dev nginx wrk zstd
# (apt-get, as root or through sudo; `apt-get update` only when something is missing).
# npm: @durable-streams/server@0.3.7 into build/bench-ds (the same place and version as
# bench/bench_streams.sh uses, so both benchmarks share one install).
# These are not in `make deps` on purpose: the product does not need them, only this
# benchmark does.
set -eu

case "${1:-}" in -h|--help) sed -n '2,12p' "$0"; exit 0 ;; esac
root=$(cd "$(dirname "$0")/../.." && pwd)

PKGS="redis-server postgresql sqlite3 libsqlite3-dev libpq-dev nginx wrk zstd python3 nodejs"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "peers deps: installing:$missing" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "peers deps: run as root or install sudo" >&2; exit 1; }
        SUDO=sudo
    fi
    # Other jobs on a shared machine may hold the dpkg lock for a while: wait for it
    # instead of failing.
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    # The Debian nginx and postgresql packages start system services on install; they
    # are stopped again below, since the benchmark starts its own instances on free ports.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends $missing
    for svc in nginx postgresql redis-server; do
        case "$missing" in *"$svc"*)
            $SUDO service "$svc" stop >/dev/null 2>&1 || true ;;
        esac
    done
fi
command -v npm >/dev/null 2>&1 || { echo "peers deps: npm missing (install nodejs/npm)" >&2; exit 1; }

ds=$root/build/bench-ds
if [ ! -d "$ds/node_modules/@durable-streams/server" ]; then
    mkdir -p "$ds"
    (cd "$ds" && { [ -f package.json ] || printf '{"private":true,"type":"module"}\n' >package.json; } &&
     npm install --no-audit --no-fund @durable-streams/server@0.3.7 >/dev/null)
fi
cp "$root/bench/ref_server.mjs" "$ds/"
