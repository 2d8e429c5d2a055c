#!/bin/sh
# deps.sh [run|test] -- install the Debian packages reel needs.
#
#   run   building and serving only (`make run`): a compiler, the five libraries' -dev
#         packages, OpenSSL (SHA-256), libcurl (replay --to), libsystemd (sd_notify), libpq
#         (reel sink postgres), curl for the README's steps
#   test  everything `make test`, `make bench` and the sanitizers use (the default)
#
# Idempotent: installs only what is missing, runs `apt-get update` at most once.
set -eu

RUN_PKGS="build-essential pkg-config liblmdb-dev libmsgpack-dev libmicrohttpd-dev
libjansson-dev libzstd-dev libssl-dev libcurl4-openssl-dev libsystemd-dev libpq-dev curl"
TEST_PKGS="$RUN_PKGS lmdb-utils zstd libcriterion-dev python3 python3-pytest python3-mypy python3-cryptography
jq valgrind redis-server wrk chromium nodejs clang libclang-rt-14-dev nginx prometheus zsh man-db
postgresql-15 postgresql-client-15"

case "${1:-test}" in
run) PKGS=$RUN_PKGS ;;
test) PKGS=$TEST_PKGS ;;
*) echo "usage: scripts/deps.sh [run|test]" >&2; exit 2 ;;
esac

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# npm comes with NodeSource's nodejs where that is installed; Debian's npm package would
# conflict with it, so it is asked for only when no npm is there at all.
[ "${1:-test}" = run ] || command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "deps: run as root or install sudo" >&2; exit 1; }
    SUDO=sudo
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
