#!/bin/bash
# scripts/fresh_debian.sh [DIR] -- the README's first-run steps on a fresh Debian 12.
#
# As root: debootstraps a minimal Debian 12 (minbase) into DIR (default /tmp/reel-deb12,
# reused when it exists), adds only `make` (the one thing the README assumes besides a
# clone), copies a clean clone of this repository into it, and runs the README's "Try it"
# commands in a chroot: `make run &`, wait for health, ingest, tail. Prints what `make run`
# installed (package by package) and the time from `make run` to serving. Needs
# debootstrap and the Debian mirror; nothing on the host is changed but DIR.
set -eu
dir=${1:-/tmp/reel-deb12}
top=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "fresh_debian.sh: run as root (debootstrap, chroot)" >&2; exit 2; }
if [ ! -x "$dir/bin/bash" ]; then
    debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian >/dev/null
fi
cp /etc/resolv.conf "$dir/etc/"
mountpoint -q "$dir/proc" || mount -t proc proc "$dir/proc"
mountpoint -q "$dir/dev" || mount --bind /dev "$dir/dev"
trap 'umount "$dir/proc" "$dir/dev" 2>/dev/null || true' EXIT
rm -rf "$dir/root/reel" "$dir/root/reel-data"
git clone -q "$top" "$dir/root/reel"
chroot "$dir" bash -c 'apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq make >/dev/null 2>&1
    dpkg-query -W -f "\${Package}\n" | sort > /root/before.txt'
cat > "$dir/root/try.sh" <<'TRY'
#!/bin/bash
cd /root/reel
start=$(date +%s.%N)
make run > /root/make-run.log 2>&1 &
until (curl -sf localhost:2469/v1/health) 2>/dev/null; do sleep 1; done
echo
ready=$(date +%s.%N)
echo '{"type":"item.delta","source":"agent","data":{"delta":"Hello"}}' | build/reel ingest --session demo
timeout 2 build/reel tail --session demo --follow || true
curl -s -o /dev/null -w "GET /ui/: %{http_code}\n" localhost:2469/ui/
awk -v a="$start" -v b="$ready" 'BEGIN { printf "make run to serving: %.0f s\n", b - a }'
kill %1
wait
TRY
chmod +x "$dir/root/try.sh"
chroot "$dir" /root/try.sh
chroot "$dir" bash -c 'dpkg-query -W -f "\${Package}\n" | sort > /root/after.txt
    grep "^deps: installing" /root/make-run.log
    echo "packages installed with their dependencies: $(comm -13 /root/before.txt /root/after.txt | wc -l)"'
