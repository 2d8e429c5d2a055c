#!/bin/bash
# bytes_only.sh -- reel's two issue-19 size rows alone, the commands of reel.sh's
# reel_bytes_ratio (same generators, seeds and counts as the full run), plus the ndjson-zstd3
# reference column. For a quick before/after of a change to the stored bytes.
#
#   bench/peers/bytes_only.sh BUILD [--quick]
set -u
[ $# -ge 1 ] || { sed -n '2,6p' "$0" >&2; exit 2; }
BUILD=$(cd "$1" && pwd) || exit 1
QUICK=0
[ "${2:-}" = --quick ] && QUICK=1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$ROOT/build/peers-tmp
mkdir -p "$TMP"
MIX_N=$((QUICK == 1 ? 50000 : 100000))
K1_N=$((QUICK == 1 ? 100000 : 200000))
for k in mix 1k; do
    n=$([ $k = mix ] && echo $MIX_N || echo $K1_N)
    f=$TMP/bytes-$k-$n.ndjson
    if [ ! -s "$f" ]; then
        if [ $k = mix ]; then
            "$ROOT/bench/peers/gen_events.py" --realistic --count "$MIX_N" >"$f"
        else
            "$ROOT/bench/peers/gen_events.py" --seed 2 --count "$K1_N" >"$f"
        fi
    fi
    json=$(stat -c %s "$f")
    d=$TMP/bytes-only-$k
    rm -rf "$d"
    t0=$(date +%s.%N)
    "$BUILD/reel" ingest --data "$d" --sync none --zdict "${REEL_ZDICT:-on}" --session "bytes-$k" --quiet <"$f" || exit 1
    t1=$(date +%s.%N)
    size=$(du -sb "$d" | awk '{print $1}')
    z=$(zstd -3 -T1 -q -c "$f" | wc -c)
    awk -v k=$k -v a="$size" -v b="$json" -v z="$z" -v t="$(echo "$t1 - $t0" | bc)" \
        'BEGIN {printf "bytes_ratio_%s reel %.4f (%d / %d bytes)  ndjson-zstd3 %.4f  ingest %.1f s\n", k, a / b, a, b, z / b, t}'
    rm -rf "$d"
done
