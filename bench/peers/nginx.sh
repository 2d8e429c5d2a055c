# nginx.sh -- nginx as the HTTP ceiling in bench/peers/run.sh (sourced; contract in lib.sh).
#
# nginx (Debian) serving static files from memory (sendfile, page cache), one worker, with
# the nginx.conf that nginx_start writes below. It stores nothing, so it
# bounds what any HTTP store could answer on this machine:
#   poll100     wrk -t2 -c64 on a static page of 100 events ({"events":[...]}, ~100 KiB):
#               events/s = requests/s x 100; also the limit row limit_http_page (MB/s);
#   restore_*   build/peers/reqlat on a static page of 50 events: the latency floor of
#               answering ~50 KiB over HTTP on one keep-alive connection;
#   limit_http_small  wrk on one ~1 KiB event file: the request-rate ceiling (req/s).
# Everything that needs a store (ingest, fan-out, export, bytes, restart) is n/a.

NGINX_PID="" NGINX_PORT="" NGINX_DIR=""

nginx_start() {
    NGINX_DIR=$1
    NGINX_PORT=$(free_port)
    mkdir -p "$1/www" "$1/tmp"
    local gen=$ROOT/bench/peers/gen_events.py
    "$gen" --count 1 | tr -d '\n' >"$1/www/ev1k.json"
    "$gen" --format page --count 100 >"$1/www/poll100.json"
    "$gen" --format page --count 50 --start 950 >"$1/www/newest50.json"
    cat >"$1/nginx.conf" <<EOF
daemon off;
user root;
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log;
events { worker_connections 65536; use epoll; }
http {
    access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
    client_body_temp_path $1/tmp; proxy_temp_path $1/tmp; fastcgi_temp_path $1/tmp;
    uwsgi_temp_path $1/tmp; scgi_temp_path $1/tmp;
    types { application/json json; }
    server { listen 127.0.0.1:$NGINX_PORT; root $1/www; }
}
EOF
    nginx -p "$1" -c "$1/nginx.conf" -e "$1/error.log" &
    NGINX_PID=$!
    peer_pid "$NGINX_PID"
    wait_port "$NGINX_PORT" 30 || return 1
    local w
    for w in ingest_batch ingest_single ingest_mix fanout export bytes_per_event restart_ms; do
        result_na "$w" "$SYS" "nginx is the HTTP ceiling (static files), not a store"
    done
}

nginx_stop() {
    [ -n "$NGINX_PID" ] || return 0
    kill "$NGINX_PID" 2>/dev/null   # SIGTERM to the master: fast shutdown of its worker
    wait "$NGINX_PID" 2>/dev/null
    NGINX_PID=""
}

nginx_wrk() {  # nginx_wrk FILE: "requests/s transfer-bytes/s" (lib.sh wrk_run)
    wrk_run -t2 -c64 -d"${DUR}s" "http://127.0.0.1:$NGINX_PORT/$1"
}

nginx_poll100() {
    local runs=$NGINX_DIR/poll.runs i
    for i in $(seq 1 "$REPEAT"); do nginx_wrk poll100.json || return 1; done >"$runs"
    result poll100 "$SYS" "$(awk '{print $1 * 100}' "$runs" | median)" events/s higher n/a \
        "wrk -t2 -c64 GET of a static 100-event page ($(wc -c <"$NGINX_DIR/www/poll100.json") bytes), ${DUR}s, median of $REPEAT"
    result limit_http_page nginx "$(awk '{print $2 / 1e6}' "$runs" | median)" MB/s higher n/a \
        "nginx static 100-event page, wrk -t2 -c64"
    for i in $(seq 1 "$REPEAT"); do nginx_wrk ev1k.json || return 1; done >"$runs"
    result limit_http_small nginx "$(awk '{print $1}' "$runs" | median)" req/s higher n/a \
        "nginx static 1 KiB event file, wrk -t2 -c64"
}

nginx_restore() {  # nginx_restore ROWKEY
    local n=$((QUICK == 1 ? 1000 : 3000)) i
    for i in $(seq 1 "$REPEAT"); do
        "$PEERS_BIN/reqlat" --http "127.0.0.1:$NGINX_PORT" --path /newest50.json --requests "$n" || return 1
    done >"$NGINX_DIR/restore.runs"
    local what="static 50-event page ($(wc -c <"$NGINX_DIR/www/newest50.json") bytes) with build/peers/reqlat, $n sequential requests, median of $REPEAT"
    result "$1_p50" "$SYS" "$(awk '{print $4}' "$NGINX_DIR/restore.runs" | median)" us lower n/a "$what"
    result "$1_p99" "$SYS" "$(awk '{print $6}' "$NGINX_DIR/restore.runs" | median)" us lower n/a "$what"
}

nginx_restore_1k() { nginx_restore restore_1k; }
nginx_restore_1m() { nginx_restore restore_1m; }
