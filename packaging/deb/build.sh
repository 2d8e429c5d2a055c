#!/bin/sh
# packaging/deb/build.sh BUILD -- build/deb/reel_<version>_<arch>.deb from a staged
# `make install PREFIX=/usr`. dpkg-deb only (no debhelper): the control file's Depends are
# the Debian 12 packages of the libraries the binary links.
set -eu
BUILD=${1:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
version=$("$BUILD/reel" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
stage="$BUILD/deb/stage"
rm -rf "$stage"
make --no-print-directory -s install BUILD="$BUILD" PREFIX=/usr DESTDIR="$top/$stage" >/dev/null
mkdir -p "$stage/DEBIAN" "$stage/usr/share/doc/reel"
install -m 644 README.md "$stage/usr/share/doc/reel/README.md"
install -m 755 packaging/deb/postinst packaging/deb/postrm "$stage/DEBIAN/"
size=$(du -sk "$stage/usr" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: reel
Version: $version
Architecture: $arch
Maintainer: reel developers <reel@localhost>
Installed-Size: $size
Depends: libc6 (>= 2.34), libcurl4, libjansson4, liblmdb0, libmicrohttpd12, libpq5, libssl3, libsystemd0, libzstd1, adduser
Section: database
Priority: optional
Description: durable transcript store for AI coding-agent sessions
 reel appends every event of a coding agent's session (Claude Code, Codex,
 OpenCode, Amp, ACP agents) to an LMDB log, acknowledged after fsync, and serves
 it back over HTTP: offset polling, long-poll, Server-Sent Events, session
 restore, zstd exports and the Durable Streams protocol, with a web inspector.
CONTROL
out="$BUILD/deb/reel_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$out" >/dev/null
echo "$out"
