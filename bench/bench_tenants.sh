#!/bin/sh
# bench_tenants.sh -- rate limits and quotas under load: does a tenant hammering reel past
# its limits slow another tenant down? (issue 23; numbers only, never pass/fail)
#
#   bench/bench_tenants.sh BUILD_DIR [--quick]
#
# Starts `BUILD_DIR/reel serve --sync full --tokens FILE` on a temporary directory under
# BUILD_DIR/bench-tmp and a free loopback port, with three named tokens: 'acme' limited to
# 200 requests/s, 'quota' limited to 2 MB stored, 'beta' and 'gamma' unlimited. Then, with
# wrk (single ~1 KiB durable event per POST, keep-alive connections), each run beside the
# one before so that the machine's drift shows:
#   1. beta alone, 16 connections: requests/s and p50/p99;
#   2. the control: beta beside gamma sending ~220 requests/s (what acme gets accepted
#      below), none refused: what another tenant's accepted appends cost beta;
#   3. beta beside acme sending 1,000 requests/s (5x its limit; wrk's delay(), 16
#      connections): what the 429s cost on top of (2); acme's 2xx and 429 answers;
#   4. beta alone again;
#   5. beta beside acme flooding (as fast as 16 connections can: on 2 cores its wrk and
#      the 429s it draws compete with beta for the CPU);
#   6. 'quota' sending as fast as it can past its 2 MB: its 403 answers and stored bytes
#      (GET /v1/tenant) against the quota.
# Prints a Markdown table. Needs wrk and python3 (`make deps`).
set -eu

[ $# -ge 1 ] || { echo "usage: bench/bench_tenants.sh BUILD_DIR [--quick]" >&2; exit 2; }
case "$1" in -h|--help) sed -n '2,17p' "$0"; exit 0 ;; esac
BUILD=$1
shift
DUR=10
for a in "$@"; do
    case "$a" in
        --quick) DUR=3 ;;
        *) echo "bench_tenants.sh: unknown option '$a'" >&2; exit 2 ;;
    esac
done
REEL="$BUILD/reel"
[ -x "$REEL" ] || { echo "bench_tenants.sh: $REEL missing; run 'make'" >&2; exit 1; }
for t in wrk python3; do
    command -v $t >/dev/null 2>&1 || { echo "bench_tenants.sh: $t missing; run 'make deps'" >&2; exit 1; }
done

TMP="$BUILD/bench-tmp/tenants.$$"
rm -rf "$TMP"
mkdir -p "$TMP/data"
TMP=$(cd "$TMP" && pwd)
REEL_PID=""
cleanup() {
    [ -n "$REEL_PID" ] && kill "$REEL_PID" 2>/dev/null && wait "$REEL_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

TOK="$TMP/tokens.jsonl"
ACME=$("$REEL" tokens add acme --scopes read,append --prefixes acme/ --rate-requests 200 \
    --file "$TOK" 2>/dev/null)
QUOTA=$("$REEL" tokens add quota --scopes read,append --prefixes quota/ \
    --quota-bytes 2000000 --file "$TOK" 2>/dev/null)
BETA=$("$REEL" tokens add beta --scopes read,append --prefixes beta/ --file "$TOK" 2>/dev/null)
GAMMA=$("$REEL" tokens add gamma --scopes read,append --prefixes gamma/ --file "$TOK" 2>/dev/null)

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$REEL" serve --data "$TMP/data" --listen "127.0.0.1:$PORT" --sync full --tokens "$TOK" \
    --max-connections-per-ip 0 2>"$TMP/reel.log" &
REEL_PID=$!
for _ in $(seq 1 200); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT),1)" 2>/dev/null && break
    sleep 0.05
done
URL="http://127.0.0.1:$PORT"

python3 - "$TMP" <<'EOF'
import json, sys
line = json.dumps({"type": "bench", "data": {"pad": "x" * 990}})
lua = line.replace("\\", "\\\\").replace('"', '\\"')
open(sys.argv[1] + "/single.lua", "w").write(
    'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
    'wrk.body = "%s"\n' % lua)
open(sys.argv[1] + "/paced.lua", "w").write(
    open(sys.argv[1] + "/single.lua").read() + "function delay() return 16 end\n")
open(sys.argv[1] + "/control.lua", "w").write(
    open(sys.argv[1] + "/single.lua").read() + "function delay() return 72 end\n")
EOF

# run_wrk TOKEN PATH OUT [SCRIPT]: wrk's whole report into OUT
run_wrk() {
    wrk -t 1 -c 16 -d "${DUR}s" --latency -s "$TMP/${4:-single}.lua" \
        -H "Authorization: Bearer $1" "$URL$2" >"$3" 2>&1
}

# field OUT what: requests/s, p50/p99 in ms, non-2xx answers, total requests
field() {
    python3 - "$1" "$2" "$DUR" <<'EOF'
import re, sys
t, what, dur = open(sys.argv[1]).read(), sys.argv[2], float(sys.argv[3])
def ms(p):
    m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % p, t, re.M)
    if not m:
        return "n/a"
    v = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    return "%.2f" % v
total = int((re.search(r"(\d+) requests in", t) or [0, 0])[1])
bad = int((re.search(r"Non-2xx or 3xx responses: (\d+)", t) or [0, 0])[1])
print({"rps": "%.0f" % float((re.search(r"Requests/sec:\s+([\d.]+)", t) or [0, 0])[1]),
       "p50": ms("50"), "p99": ms("99"), "bad": str(bad), "ok_rps": "%.0f" % ((total - bad) / dur),
       "total": str(total)}[what])
EOF
}

run_wrk "$BETA" /v1/sessions/beta%2Falone/events "$TMP/alone"
run_wrk "$GAMMA" /v1/sessions/gamma%2Fcontrol/events "$TMP/gamma" control &
HAMMER=$!
run_wrk "$BETA" /v1/sessions/beta%2Fcontrol/events "$TMP/control"
wait "$HAMMER"
run_wrk "$ACME" /v1/sessions/acme%2Fpaced/events "$TMP/acme_paced" paced &
HAMMER=$!
run_wrk "$BETA" /v1/sessions/beta%2Fpaced/events "$TMP/paced"
wait "$HAMMER"
run_wrk "$BETA" /v1/sessions/beta%2Falone2/events "$TMP/alone2"
run_wrk "$ACME" /v1/sessions/acme%2Fflood/events "$TMP/acme" &
HAMMER=$!
run_wrk "$BETA" /v1/sessions/beta%2Fshared/events "$TMP/shared"
wait "$HAMMER"
run_wrk "$QUOTA" /v1/sessions/quota%2Ffill/events "$TMP/quota"
USED=$(python3 -c "
import json, urllib.request
r = urllib.request.Request('$URL/v1/tenant', headers={'Authorization': 'Bearer $QUOTA'})
print(json.load(urllib.request.urlopen(r))['usage']['bytes'])")

ratio() { python3 -c "a,b=float('$1'),float('$2'); print('%.2f' % (a/b) if b else 'n/a')"; }

echo "### Tenants under load (wrk, ${DUR} s per run, 16 connections each, one durable 1 KiB event per POST)"
echo
echo "| run | requests/s (2xx) | p50 ms | p99 ms | refused |"
echo "| --- | ---: | ---: | ---: | ---: |"
echo "| beta alone | $(field "$TMP/alone" ok_rps) | $(field "$TMP/alone" p50) | $(field "$TMP/alone" p99) | $(field "$TMP/alone" bad) |"
echo "| beta beside gamma at ~220/s, none refused (control) | $(field "$TMP/control" ok_rps) | $(field "$TMP/control" p50) | $(field "$TMP/control" p99) | $(field "$TMP/control" bad) |"
echo "| gamma at ~220/s (no limit) | $(field "$TMP/gamma" ok_rps) | $(field "$TMP/gamma" p50) | $(field "$TMP/gamma" p99) | $(field "$TMP/gamma" bad) |"
echo "| beta while acme sends 1,000/s | $(field "$TMP/paced" ok_rps) | $(field "$TMP/paced" p50) | $(field "$TMP/paced" p99) | $(field "$TMP/paced" bad) |"
echo "| acme at 1,000/s (limit 200/s) | $(field "$TMP/acme_paced" ok_rps) | $(field "$TMP/acme_paced" p50) | $(field "$TMP/acme_paced" p99) | $(field "$TMP/acme_paced" bad) of $(field "$TMP/acme_paced" total) (429) |"
echo "| beta alone, again | $(field "$TMP/alone2" ok_rps) | $(field "$TMP/alone2" p50) | $(field "$TMP/alone2" p99) | $(field "$TMP/alone2" bad) |"
echo "| beta while acme floods | $(field "$TMP/shared" ok_rps) | $(field "$TMP/shared" p50) | $(field "$TMP/shared" p99) | $(field "$TMP/shared" bad) |"
echo "| acme flooding (limit 200/s) | $(field "$TMP/acme" ok_rps) | $(field "$TMP/acme" p50) | $(field "$TMP/acme" p99) | $(field "$TMP/acme" bad) of $(field "$TMP/acme" total) (429) |"
echo "| quota (2,000,000 bytes) | $(field "$TMP/quota" ok_rps) | $(field "$TMP/quota" p50) | $(field "$TMP/quota" p99) | $(field "$TMP/quota" bad) of $(field "$TMP/quota" total) (403) |"
echo
echo "beta beside acme at 1,000/s (220 accepted, the rest 429): $(ratio "$(field "$TMP/paced" ok_rps)" "$(field "$TMP/control" ok_rps)")x" \
    "the requests/s of beside gamma's 220 accepted (the control), p99 $(ratio "$(field "$TMP/paced" p99)" "$(field "$TMP/control" p99)")x;" \
    "against alone: $(ratio "$(field "$TMP/paced" ok_rps)" "$(field "$TMP/alone" ok_rps)")x, p99" \
    "$(ratio "$(field "$TMP/paced" p99)" "$(field "$TMP/alone" p99)")x; beside acme flooding:" \
    "$(ratio "$(field "$TMP/shared" ok_rps)" "$(field "$TMP/alone" ok_rps)")x, p99 $(ratio "$(field "$TMP/shared" p99)" "$(field "$TMP/alone" p99)")x." \
    "quota's stored bytes: $USED of 2,000,000."
