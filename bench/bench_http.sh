#!/bin/sh
# bench_http.sh -- reel's HTTP API beside Redis 7 Streams, in the same run, same disk.
#
#   bench/bench_http.sh BUILD_DIR [--quick]
#
# Starts `BUILD_DIR/reel serve` (--sync full) and `redis-server` (appendonly yes,
# appendfsync always: both acknowledge only after fsync) on temporary directories under
# BUILD_DIR/bench-tmp and free loopback ports, then measures:
#   1. batched ingest: 100 x 1 KiB events per POST (NDJSON), wrk, 16 connections
#      vs XADD of 1 KiB, pipelined -P 100, 16 connections (redis-benchmark);
#   2. single-event ingest: one ~1 KiB event per POST, 64 keep-alive connections (wrk)
#      vs XADD, 64 connections, no pipelining;
#   3. poll read: GET .../events?offset=N&limit=100 (random N), 64 connections
#      vs XRANGE key N + COUNT 100 (fixed start), 64 connections;
#   4. live fan-out: 1,000 SSE clients on one session, 200 appends 20 ms apart; latency from
#      the append's send to each client's receipt (p50/p99) vs 1,000 XREAD BLOCK clients
#      (both measured by the same Python client, one thread per subscriber);
#   5. memory per idle SSE client: server RSS growth over 10,000 idle streams / 10,000
#      vs redis-server RSS growth over 10,000 clients blocked in XREAD.
# Prints a Markdown table with ratios (reel / redis; for latency and memory, lower is
# better). Numbers only, never pass/fail. Needs wrk, redis-server, redis-benchmark,
# python3 (Debian packages; `make deps`).
set -eu

[ $# -ge 1 ] || { echo "usage: bench/bench_http.sh BUILD_DIR [--quick]" >&2; exit 2; }
case "$1" in -h|--help) sed -n '2,22p' "$0"; exit 0 ;; esac
BUILD=$1
shift
DUR=10
FAN_EVENTS=200
IDLE=10000
FAN_CLIENTS=1000
for a in "$@"; do
    case "$a" in
        --quick) DUR=3; FAN_EVENTS=60; IDLE=300; FAN_CLIENTS=100 ;;
        *) echo "bench_http.sh: unknown option '$a'" >&2; exit 2 ;;
    esac
done
REEL="$BUILD/reel"
[ -x "$REEL" ] || { echo "bench_http.sh: $REEL missing; run 'make'" >&2; exit 1; }
for t in wrk redis-server redis-benchmark python3; do
    command -v $t >/dev/null 2>&1 || { echo "bench_http.sh: $t missing; run 'make deps'" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

TMP="$BUILD/bench-tmp/http.$$"
rm -rf "$TMP"
mkdir -p "$TMP/reel" "$TMP/redis"
TMP=$(cd "$TMP" && pwd)
REEL_PID=""
REDIS_PID=""
cleanup() {
    [ -n "$REEL_PID" ] && kill "$REEL_PID" 2>/dev/null && wait "$REEL_PID" 2>/dev/null
    [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
    for _ in $(seq 1 200); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench_http.sh: nothing listens on port $1" >&2
    exit 1
}

RP=$(free_port)
"$REEL" serve --data "$TMP/reel" --listen "127.0.0.1:$RP" --sync full \
    --max-connections-per-ip 0 --max-connections 12000 --max-sse-clients 11000 \
    2>"$TMP/reel.log" &
REEL_PID=$!
DP=$(free_port)
redis-server --port "$DP" --bind 127.0.0.1 --dir "$TMP/redis" --appendonly yes \
    --appendfsync always --save "" --maxclients 11000 --daemonize no >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!
wait_port "$RP"
wait_port "$DP"
URL="http://127.0.0.1:$RP"

# ---- wrk scripts ----

python3 - "$TMP" <<'EOF'
import json, sys
tmp = sys.argv[1]
pad = "x" * 990
line = json.dumps({"type": "bench", "data": {"pad": pad}})
batch = "\n".join([line] * 100) + "\n"
def lua(s):
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
open(tmp + "/batch.lua", "w").write(
    'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/x-ndjson"\n'
    'wrk.body = "%s"\n' % lua(batch))
open(tmp + "/single.lua", "w").write(
    'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
    'wrk.body = "%s"\n' % lua(line))
open(tmp + "/poll.lua", "w").write(
    'math.randomseed(os.time())\n'
    'request = function()\n'
    '  return wrk.format("GET", "/v1/sessions/poll/events?limit=100&offset=" .. math.random(0, 9800))\n'
    'end\n')
open(tmp + "/value", "w").write(pad + "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")  # 1 KiB
EOF
VALUE=$(cat "$TMP/value")

wrk_rps() { # wrk_rps CONNS SCRIPT PATH -> requests/s
    wrk -t 2 -c "$1" -d "${DUR}s" -s "$2" "$URL$3" 2>&1 | awk '/Requests\/sec/ {print $2}'
}

rb_rps() { # rb_rps ARGS... -> requests/s of the one test run
    redis-benchmark -h 127.0.0.1 -p "$DP" --csv "$@" 2>/dev/null | tail -n 1 |
        awk -F'"' '{print $4}'
}

ratio() { python3 -c "a,b=float('$1' or 0),float('$2' or 0); print('%.2f' % (a/b) if b else 'n/a')"; }
fmt() { python3 -c "print('{:,.0f}'.format(float('$1' or 0)))"; }

# ---- 1. batched ingest ----
r=$(wrk_rps 16 "$TMP/batch.lua" /v1/sessions/batch/events)
reel_batch=$(python3 -c "print(float('${r:-0}') * 100)")
n=$((DUR * 20000))
redis_batch=$(rb_rps -n "$n" -c 16 -P 100 XADD batch '*' f "$VALUE")

# ---- 2. single-event ingest ----
reel_single=$(wrk_rps 64 "$TMP/single.lua" /v1/sessions/single/events)
redis_single=$(rb_rps -n $((DUR * 5000)) -c 64 XADD single '*' f "$VALUE")

# ---- 3. poll reads (a 10000-event session) ----
python3 - "$RP" "$DP" <<'EOF'
import http.client, json, socket, sys
rp, dp = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", rp)
line = json.dumps({"type": "poll", "data": {"pad": "p" * 200}})
for _ in range(10):
    c.request("POST", "/v1/sessions/poll/events", body="\n".join([line] * 1000),
              headers={"Content-Type": "application/x-ndjson"})
    assert c.getresponse().read()
s = socket.create_connection(("127.0.0.1", dp))
cmd = b"*5\r\n$4\r\nXADD\r\n$4\r\npoll\r\n$1\r\n*\r\n$1\r\nf\r\n$200\r\n" + b"p" * 200 + b"\r\n"
s.sendall(cmd * 10000)
got = 0
while got < 10000:
    got += s.recv(1 << 20).count(b"\r\n")
EOF
reel_poll=$(wrk_rps 64 "$TMP/poll.lua" /)
redis_poll=$(rb_rps -n $((DUR * 5000)) -c 64 XRANGE poll - + COUNT 100)

# ---- 4 and 5. SSE fan-out latency and idle memory (python, stdlib) ----
python3 - "$RP" "$DP" "$REEL_PID" "$REDIS_PID" "$FAN_EVENTS" "$IDLE" "$FAN_CLIENTS" >"$TMP/live.txt" <<'EOF'
import http.client, json, socket, sys, threading, time
rp, dp, reel_pid, redis_pid, n_events, n_idle, CLIENTS = map(int, sys.argv[1:])

def rss_kb(pid):
    for l in open("/proc/%d/status" % pid):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])

def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] * 1000 if v else 0

# -- reel SSE fan-out --
def sse_client(lat, ready):
    s = socket.create_connection(("127.0.0.1", rp))
    s.sendall(b"GET /v1/sessions/fan/events/sse?offset=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    f = s.makefile("rb")
    ready.release()
    got = 0
    while got < n_events:
        line = f.readline()
        if not line:
            break
        i = line.find(b"data: {")
        if i >= 0:
            t = json.loads(line[i + 6:])["data"]["t"]
            lat.append(time.time() - t)
            got += 1
    s.close()

c = http.client.HTTPConnection("127.0.0.1", rp)
c.request("POST", "/v1/sessions/fan/events", body='{"type":"start"}',
          headers={"Content-Type": "application/json"})
c.getresponse().read()
lat, ready = [], threading.Semaphore(0)
th = [threading.Thread(target=sse_client, args=(lat, ready)) for _ in range(CLIENTS)]
for t in th: t.start()
for _ in th: ready.acquire()
time.sleep(0.5)
for k in range(n_events):
    c.request("POST", "/v1/sessions/fan/events",
              body=json.dumps({"type": "tick", "data": {"t": time.time()}}),
              headers={"Content-Type": "application/json"})
    c.getresponse().read()
    time.sleep(0.02)
for t in th: t.join(30)
reel_lat = list(lat)

# -- redis XREAD BLOCK fan-out --
def resp(f):
    line = f.readline()
    k, rest = line[:1], line[1:-2]
    if k in b"+-:":
        return rest
    if k == b"$":
        n = int(rest)
        if n < 0:
            return None
        d = f.read(n + 2)
        return d[:-2]
    if k == b"*":
        n = int(rest)
        return None if n < 0 else [resp(f) for _ in range(n)]
    raise ValueError(line)

def cmd(*a):
    out = b"*%d\r\n" % len(a)
    for x in a:
        x = x if isinstance(x, bytes) else str(x).encode()
        out += b"$%d\r\n%s\r\n" % (len(x), x)
    return out

def xread_client(lat, ready):
    s = socket.create_connection(("127.0.0.1", dp))
    f = s.makefile("rb")
    last = b"$"
    got = 0
    ready.release()
    while got < n_events:
        s.sendall(cmd("XREAD", "BLOCK", 0, "COUNT", 100, "STREAMS", "fan", last))
        r = resp(f)
        now = time.time()
        for eid, fields in r[0][1]:
            last = eid
            lat.append(now - float(fields[1]))
            got += 1
    s.close()

lat, ready = [], threading.Semaphore(0)
th = [threading.Thread(target=xread_client, args=(lat, ready)) for _ in range(CLIENTS)]
for t in th: t.start()
for _ in th: ready.acquire()
time.sleep(0.5)
w = socket.create_connection(("127.0.0.1", dp))
wf = w.makefile("rb")
for k in range(n_events):
    w.sendall(cmd("XADD", "fan", "*", "t", repr(time.time())))
    resp(wf)
    time.sleep(0.02)
for t in th: t.join(30)
redis_lat = list(lat)
print("fan_p50", "%.1f" % pct(reel_lat, 0.5), "%.1f" % pct(redis_lat, 0.5))
print("fan_p99", "%.1f" % pct(reel_lat, 0.99), "%.1f" % pct(redis_lat, 0.99))

# -- idle memory --
def idle_reel():
    before = rss_kb(reel_pid)
    socks = []
    for _ in range(n_idle):
        s = socket.create_connection(("127.0.0.1", rp))
        s.sendall(b"GET /v1/sessions/fan/events/sse?offset=999999 HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    for s in socks:
        s.settimeout(10)
        s.recv(4096)
    time.sleep(1)
    after = rss_kb(reel_pid)
    for s in socks: s.close()
    return (after - before) * 1024 / n_idle

def idle_redis():
    before = rss_kb(redis_pid)
    socks = []
    for _ in range(n_idle):
        s = socket.create_connection(("127.0.0.1", dp))
        s.sendall(cmd("XREAD", "BLOCK", 0, "STREAMS", "fan", "$"))
        socks.append(s)
    time.sleep(1)
    after = rss_kb(redis_pid)
    for s in socks: s.close()
    return (after - before) * 1024 / n_idle

print("idle_bytes", idle_reel(), idle_redis())
EOF

get() { awk -v k="$1" -v f="$2" '$1 == k {print $f}' "$TMP/live.txt"; }
f50r=$(get fan_p50 2); f50d=$(get fan_p50 3)
f99r=$(get fan_p99 2); f99d=$(get fan_p99 3)
memr=$(get idle_bytes 2); memd=$(get idle_bytes 3)

echo "### HTTP API vs Redis 7 Streams"
echo
echo "reel serve --sync full vs redis-server appendonly yes, appendfsync always;"\
     "${DUR}s per throughput run, loopback, $(nproc) CPUs."
echo
echo "| benchmark | reel | redis 7 | reel / redis |"
echo "| --- | ---: | ---: | ---: |"
echo "| batched ingest, events/s (100 x 1 KiB per POST; XADD -P 100), 16 conns | $(fmt "$reel_batch") | $(fmt "$redis_batch") | $(ratio "$reel_batch" "$redis_batch") |"
echo "| single-event ingest, events/s, 64 keep-alive conns | $(fmt "$reel_single") | $(fmt "$redis_single") | $(ratio "$reel_single" "$redis_single") |"
echo "| poll read limit 100, requests/s (XRANGE COUNT 100), 64 conns | $(fmt "$reel_poll") | $(fmt "$redis_poll") | $(ratio "$reel_poll" "$redis_poll") |"
echo "| live fan-out to $FAN_CLIENTS clients, p50 ms (SSE; XREAD BLOCK) | $f50r | $f50d | $(ratio "$f50r" "$f50d") |"
echo "| live fan-out to $FAN_CLIENTS clients, p99 ms | $f99r | $f99d | $(ratio "$f99r" "$f99d") |"
echo "| memory per idle live client, bytes ($IDLE clients) | $(fmt "$memr") | $(fmt "$memd") | $(ratio "$memr" "$memd") |"
echo
