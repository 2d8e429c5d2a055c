#!/bin/sh
# deps.sh -- install the Debian packages reel needs to build, test and benchmark.
# Idempotent: installs only what is missing, runs `apt-get update` at most once.
set -eu

PKGS="build-essential pkg-config liblmdb-dev lmdb-utils libmsgpack-dev libmicrohttpd-dev
libjansson-dev libzstd-dev zstd libssl-dev libcurl4-openssl-dev libcriterion-dev python3 python3-pytest python3-mypy
jq curl valgrind
redis-server wrk chromium nodejs clang libclang-rt-14-dev
nginx"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# npm comes with NodeSource's nodejs where that is installed; Debian's npm package would
# conflict with it, so it is asked for only when no npm is there at all.
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "deps: run as root or install sudo" >&2; exit 1; }
    SUDO=sudo
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
