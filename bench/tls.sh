#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# tls.sh — `make bench-tls`: HTTPS keryx against HTTPS nginx + its Lua module (the same
# bench/nginx.conf.template as `make bench`, plus an ssl block), both serving GET /api/status
# with the same JSON and the same throwaway certificate (scripts/tls-test-certs.sh, P-256) and
# the same TLS policy (TLS 1.2/1.3, ECDHE + AEAD suites, session cache and tickets).
#
# Both servers: one worker pinned to CPU 0. Load generators (wrk, openssl s_time) and Redis
# pinned to CPU 1. Runs are interleaved (keryx, nginx, keryx, nginx, …). Three figures each:
#   keep-alive   wrk -c50, TLS once per connection: HTTPS requests/s, server CPU µs/request
#   new conns    wrk -c50 with "Connection: close": every request a new TCP connection and a
#                full TLS handshake (wrk keeps no session): handshakes/s, server CPU µs/handshake
#   s_time       openssl s_time -new, one connection at a time (full handshakes, TLS 1.3)
# Medians over the runs, and keryx/nginx ratios. A server CPU below ~90% busy means the load
# generator (one CPU doing the client half of every handshake) was the limit, not the server:
# then compare the CPU µs per handshake, not the rate.
#
# Environment: BENCH_DURATION (wrk, default 10s), BENCH_RUNS (default 3), BENCH_STIME (s_time
# seconds, default 5).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

DURATION=${BENCH_DURATION:-10s}
RUNS=${BENCH_RUNS:-3}
STIME=${BENCH_STIME:-5}
SERVER_CPU=0
CLIENT_CPU=1
REDIS_CPU=1
CONNECTIONS=50
STATUS_PATH=/api/status
START_TIMEOUT_S=10
NGINX_MODULES_DIR=/usr/lib/nginx/modules
CLK_TCK=$(getconf CLK_TCK)

TMP=$(mktemp -d)
KERYX_PID=""
NGINX_PID=""
REDIS_PID=""
REDIS_PORT=""
WRK_PID=""
declare -A URL=() PORT=() PID=() RESULT=()

# shellcheck disable=SC2034  # read by lib.sh's log/warn/die
BENCH_TAG=bench-tls
# shellcheck source=lib.sh disable=SC1091
. "$BENCH_DIR/lib.sh"

trap 'stop_all_and_clean "$WRK_PID" "$KERYX_PID" "$NGINX_PID" "$REDIS_PID"' EXIT

for cmd in wrk openssl taskset curl nginx redis-server; do
    command -v "$cmd" >/dev/null || die "'$cmd' not found (Debian: wrk openssl util-linux curl nginx-light redis-server)"
done
taskset -c "$CLIENT_CPU" true 2>/dev/null || die "the bench needs two CPUs"
[[ -x "$ROOT/keryx" ]] || die "$ROOT/keryx not built (run make)"

CERTS=$TMP/certs
"$ROOT/scripts/tls-test-certs.sh" "$CERTS"
# wait_http (lib.sh) runs plain curl: it trusts the throwaway CA through this.
export CURL_CA_BUNDLE=$CERTS/ca.pem

start_redis

start_keryx() {
    PORT[keryx]=$(free_port)
    URL[keryx]="https://localhost:${PORT[keryx]}$STATUS_PATH"
    log "starting keryx (TLS) on 127.0.0.1:${PORT[keryx]} (CPU $SERVER_CPU)"
    (cd "$ROOT" && exec env WEB_SERVER_PORT="${PORT[keryx]}" WEB_SERVER_HOST=127.0.0.1 LOG_LEVEL=warn \
        NODE_ENV=production REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
        WEB_SERVER_TLS_CERT="$CERTS/server.pem" WEB_SERVER_TLS_KEY="$CERTS/server.key" \
        taskset -c "$SERVER_CPU" ./keryx start) >"$TMP/keryx.log" 2>&1 &
    KERYX_PID=$!
    PID[keryx]=$KERYX_PID
    wait_http "${URL[keryx]}" "$KERYX_PID" || { keryx_log_tail; die "keryx did not answer ${URL[keryx]}"; }
}

start_nginx() {
    local prefix="$TMP/nginx" name
    PORT[nginx]=$(free_port)
    URL[nginx]="https://localhost:${PORT[nginx]}$STATUS_PATH"
    mkdir -p "$prefix"
    name=$(curl -s -D - -o /dev/null "${URL[keryx]}" | tr -d '\r' |
        awk -F': ' 'tolower($1) == "x-server-name" {print $2; exit}')
    [[ "$name" =~ ^[A-Za-z0-9._-]{1,64}$ ]] || name=server
    # The ssl block: keryx's policy (src/tls.h), session cache and tickets as keryx.
    cat >"$prefix/ssl.conf" <<EOF
        ssl_certificate $CERTS/server.pem;
        ssl_certificate_key $CERTS/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
        ssl_prefer_server_ciphers on;
        ssl_ecdh_curve X25519:prime256v1:secp384r1;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1h;
        ssl_session_tickets on;
EOF
    sed -e "s#@MODULES_DIR@#$NGINX_MODULES_DIR#g" -e "s#@PREFIX@#$prefix#g" -e "s#@PORT@#${PORT[nginx]}#g" \
        -e "s#@SERVER_NAME@#$name#g" -e "s#@BODY_CRLF@#true#g" -e "s#@MEM_SOURCE@#heap#g" \
        -e "s#@PAGE_SIZE@#$(getconf PAGESIZE)#g" \
        -e "s#listen 127.0.0.1:\([0-9]*\);#listen 127.0.0.1:\1 ssl;#" \
        "$BENCH_DIR/nginx.conf.template" >"$prefix/nginx.conf.tmp"
    sed -e "/listen 127.0.0.1:[0-9]* ssl;/r $prefix/ssl.conf" "$prefix/nginx.conf.tmp" >"$prefix/nginx.conf"
    grep -q "ssl_certificate " "$prefix/nginx.conf" || die "could not add the ssl block to nginx.conf"
    log "starting nginx (TLS) on 127.0.0.1:${PORT[nginx]} (CPU $SERVER_CPU)"
    taskset -c "$SERVER_CPU" nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" \
        >"$prefix/stdout.log" 2>&1 &
    NGINX_PID=$!
    PID[nginx]=$NGINX_PID
    wait_http "${URL[nginx]}" "$NGINX_PID" || { tail "$prefix/error.log" >&2; die "nginx did not answer ${URL[nginx]}"; }
}

# wrk_https <url> <extra args…>: wrk on the client CPU; its output on stdout.
wrk_https() {
    local url=$1 out="$TMP/wrk.out" rc=0
    shift
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    cat "$out"
    return "$rc"
}

# cpu_us_per <ticks> <count>
cpu_us_per() { awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN {printf "%.1f", (n > 0) ? t / hz * 1e6 / n : 0}'; }
busy_pct() { awk -v t="$1" -v hz="$CLK_TCK" -v s="$2" 'BEGIN {printf "%.0f", t / hz / s * 100}'; }

# measure_wrk <server> <mode> <run> [wrk args]: rps, CPU µs per request, busy %.
measure_wrk() {
    local s=$1 mode=$2 run=$3 before after t0 t1 out requests rps errors cpu busy
    shift 3
    before=$(tree_cpu_ticks "${PID[$s]}")
    t0=$EPOCHREALTIME
    out=$(wrk_https "${URL[$s]}" "$@") || { echo "$out" >&2; die "wrk failed against $s"; }
    t1=$EPOCHREALTIME
    after=$(tree_cpu_ticks "${PID[$s]}")
    read -r requests rps _ errors <<<"$(parse_wrk <<<"$out")"
    ((requests > 0)) || { echo "$out" >&2; die "$s: no request completed"; }
    ((errors == 0)) || warn "$s $mode run $run: $errors errors"
    cpu=$(cpu_us_per $((after - before)) "$requests")
    busy=$(busy_pct $((after - before)) "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')")
    RESULT[$s,$mode,$run]="$rps $cpu $busy"
    log "$(printf '%-5s %-9s run %d: %9.0f /s  %7s us CPU each  busy %s%%' "$s" "$mode" "$run" "$rps" "$cpu" "$busy")"
}

# measure_stime <server> <run>: openssl s_time -new (full handshakes, one at a time).
measure_stime() {
    local s=$1 run=$2 before after out n secs rate
    before=$(tree_cpu_ticks "${PID[$s]}")
    out=$(taskset -c "$CLIENT_CPU" openssl s_time -connect "127.0.0.1:${PORT[$s]}" -new -time "$STIME" \
        -CAfile "$CERTS/ca.pem" 2>&1) || { echo "$out" >&2; die "s_time failed against $s"; }
    after=$(tree_cpu_ticks "${PID[$s]}")
    read -r n secs <<<"$(awk '/connections in [0-9]+ real seconds/ {print $1, $4}' <<<"$out" | head -1)"
    [[ -n "$n" && "$n" -gt 0 ]] || { echo "$out" >&2; die "s_time completed no handshake against $s"; }
    rate=$(awk -v n="$n" -v t="$secs" 'BEGIN {printf "%.0f", n / t}')
    RESULT[$s,stime,$run]="$rate $(cpu_us_per $((after - before)) "$n") $(busy_pct $((after - before)) "$secs")"
    log "$(printf '%-5s %-9s run %d: %9s /s  %7s us CPU each' "$s" s_time "$run" "$rate" \
        "$(awk '{print $2}' <<<"${RESULT[$s,stime,$run]}")")"
}

start_keryx
start_nginx
for s in keryx nginx; do
    log "warm-up $s"
    wrk_https "${URL[$s]}" >/dev/null || die "wrk failed against $s"
done
for ((run = 1; run <= RUNS; run++)); do
    for s in keryx nginx; do
        measure_wrk "$s" keepalive "$run"
        measure_wrk "$s" close "$run" -H "Connection: close"
        measure_stime "$s" "$run"
    done
done

# median_of <server> <mode> <field>
median_of() {
    local run
    for ((run = 1; run <= RUNS; run++)); do awk -v f="$3" '{print $f}' <<<"${RESULT[$1,$2,$run]}"; done | median
}

echo
echo "### HTTPS: keryx vs nginx + Lua ($(date -u +%Y-%m-%d), $RUNS runs x $DURATION, medians)"
echo
echo "Servers: one worker each on CPU $SERVER_CPU (taskset); wrk / openssl s_time and Redis on CPU $CLIENT_CPU."
echo "Same P-256 certificate, TLS 1.3 negotiated (TLS_AES_256_GCM_SHA384), same JSON body."
echo
echo "| figure | keryx | nginx | keryx/nginx |"
echo "|---|---|---|---|"
for mode in keepalive close stime; do
    case $mode in
        keepalive) label="HTTPS keep-alive requests/s (wrk -c$CONNECTIONS)";;
        close) label="new connections + full handshakes/s (wrk -c$CONNECTIONS, Connection: close)";;
        stime) label="full handshakes/s, one at a time (openssl s_time -new)";;
    esac
    k=$(median_of keryx $mode 1)
    n=$(median_of nginx $mode 1)
    echo "| $label | $k | $n | $(ratio "$k" "$n") |"
    k=$(median_of keryx $mode 2)
    n=$(median_of nginx $mode 2)
    echo "| … server CPU µs each | $k | $n | $(ratio "$k" "$n") |"
    if [[ $mode != stime ]]; then
        echo "| … server busy % | $(median_of keryx $mode 3) | $(median_of nginx $mode 3) | |"
    fi
done
