#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# metrics.sh — the per-request cost of the Prometheus metrics (README "Metrics"): GET
# /api/status on one keryx with OTEL_METRICS_ENABLED=false and one with true, runs interleaved
# (off, on, off, on, …) so drift of the machine hits both alike.
#
# It starts its own redis-server (free port, no persistence, on CPU 1 with wrk) and the two
# keryx processes (the example app, one at a time is loaded, both pinned to CPU 0). For each
# side it prints the median requests/s and the median server CPU time per request (utime+stime
# from /proc/<pid>/stat before and after a run, divided by the requests wrk completed), then the
# on/off ratios. A reply other than 2xx, or a socket error, stops the bench with exit status 1.
# Then bench/metrics-micro.c times the counting calls of one request alone, in thread CPU time
# (what the load of a shared machine does not inflate), against build/libkeryx.a.
#
# Environment (the same names as bench/run.sh):
#   BENCH_DURATION   wrk duration per run (default 10s; a bare number means seconds)
#   BENCH_RUNS       measured runs per side (default 3)
#   BENCH_WARMUP     unmeasured warm-up run per side first (default 1s; 0 = none)
#
# Exit status: 0 when every run completed; 1 when Redis or keryx fails to start (or dies), a
# reply is not 2xx, wrk fails, or a prerequisite is missing.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck disable=SC2034  # read by lib.sh's log/warn/die
BENCH_TAG=bench:metrics
# shellcheck source=lib.sh disable=SC1091  # followed by `shellcheck -x`
. "$BENCH_DIR/lib.sh"

DURATION=${BENCH_DURATION:-10s}
RUNS=${BENCH_RUNS:-3}
WARMUP=${BENCH_WARMUP:-1s}
[[ "$DURATION" =~ ^[0-9]+$ ]] && DURATION="${DURATION}s"
[[ "$WARMUP" =~ ^[0-9]+$ ]] && WARMUP="${WARMUP}s"

SERVER_CPU=0
CLIENT_CPU=1
REDIS_CPU=1
CONNECTIONS=50
START_TIMEOUT_S=10
CLK_TCK=$(getconf CLK_TCK)

for tool in wrk taskset redis-server redis-cli curl; do
    command -v "$tool" >/dev/null || die "$tool is missing (make bench installs the bench packages)"
done
[[ -x "$ROOT/keryx" ]] || die "$ROOT/keryx is missing: run make first"

TMP=$(mktemp -d)
KERYX_PID=""
REDIS_PID=""
OFF_PID=""
ON_PID=""
trap 'stop_all_and_clean "$OFF_PID" "$ON_PID" "$REDIS_PID"' EXIT

# start_keryx <on|off>: prints "pid port".
start_keryx() {
    local side=$1 port enabled=false
    [[ "$side" == on ]] && enabled=true
    port=$(free_port)
    (cd "$ROOT" && exec env NODE_ENV=production LOG_LEVEL=warn LOG_COLORIZE=false WEB_SERVER_HOST=127.0.0.1 \
        WEB_SERVER_PORT="$port" REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" OTEL_METRICS_ENABLED="$enabled" \
        taskset -c "$SERVER_CPU" ./keryx start >"$TMP/keryx-$side.log" 2>&1) &
    local pid=$!
    KERYX_PID=$pid
    wait_http "http://127.0.0.1:$port/api/status" "$pid" || { keryx_log_tail; die "keryx ($side) did not start"; }
    echo "$pid $port"
}

# one_run <pid> <port> <duration>: prints "rps cpu_us_per_request".
one_run() {
    local pid=$1 port=$2 duration=$3 before after out
    before=$(cpu_ticks "$pid")
    out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"$duration" --latency \
        "http://127.0.0.1:$port/api/status") || die "wrk failed"
    after=$(cpu_ticks "$pid")
    read -r requests rps _ errors <<<"$(parse_wrk <<<"$out")"
    ((errors == 0)) || { grep -E "Socket errors|Non-2xx" <<<"$out" >&2; die "$errors failed replies against port $port"; }
    awk -v r="$rps" -v t=$((after - before)) -v n="$requests" -v hz="$CLK_TCK" \
        'BEGIN {printf "%s %.2f\n", r, (n > 0) ? t / hz * 1e6 / n : 0}'
}

start_redis
read -r OFF_PID OFF_PORT <<<"$(start_keryx off)"
read -r ON_PID ON_PORT <<<"$(start_keryx on)"
curl -sf -o /dev/null "http://127.0.0.1:$ON_PORT/metrics" || die "the metrics route does not answer"
if [[ "$WARMUP" != 0s ]]; then
    one_run "$OFF_PID" "$OFF_PORT" "$WARMUP" >/dev/null
    one_run "$ON_PID" "$ON_PORT" "$WARMUP" >/dev/null
fi
: >"$TMP/off"
: >"$TMP/on"
for ((i = 1; i <= RUNS; i++)); do
    one_run "$OFF_PID" "$OFF_PORT" "$DURATION" >>"$TMP/off"
    one_run "$ON_PID" "$ON_PORT" "$DURATION" >>"$TMP/on"
    log "run $i: off $(tail -n1 "$TMP/off") | on $(tail -n1 "$TMP/on") (req/s, CPU µs/request)"
done
off_rps=$(cut -d' ' -f1 "$TMP/off" | median)
on_rps=$(cut -d' ' -f1 "$TMP/on" | median)
off_cpu=$(cut -d' ' -f2 "$TMP/off" | median)
on_cpu=$(cut -d' ' -f2 "$TMP/on" | median)
scraped=$(curl -sf "http://127.0.0.1:$ON_PORT/metrics" |
    awk -F' ' '/^keryx_http_requests_total\{method="GET",route="\/api\/status",status="200"\}/ {print $2}')
echo "GET /api/status, $RUNS runs of $DURATION, $CONNECTIONS connections (server CPU $SERVER_CPU, wrk CPU $CLIENT_CPU)"
echo "metrics off: $off_rps req/s, $off_cpu µs CPU/request"
echo "metrics on:  $on_rps req/s, $on_cpu µs CPU/request (the scrape counted ${scraped:-0} requests)"
echo "on/off: req/s $(ratio "$on_rps" "$off_rps"), CPU per request $(ratio "$on_cpu" "$off_cpu")"

# The counting calls alone, in thread CPU time (bench/metrics-micro.c): the figure the noise of a
# shared machine does not move.
make -C "$ROOT" --no-print-directory build/libkeryx.a >/dev/null || die "cannot build build/libkeryx.a"
cc -O2 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -I "$ROOT/src" -o "$TMP/metrics-micro" \
    "$BENCH_DIR/metrics-micro.c" "$ROOT/build/libkeryx.a" -lssl -lcrypto -lpthread || die "cannot compile bench/metrics-micro.c"
read -r micro_on micro_off <<<"$(taskset -c "$SERVER_CPU" "$TMP/metrics-micro")"
echo "counting one request (metrics-micro, thread CPU time): on $micro_on ns, off $micro_off ns;" \
    "$(awk -v x="$micro_on" -v cpu="$off_cpu" 'BEGIN {printf "%.2f", (cpu > 0) ? x / (cpu * 1000) * 100 : 0}')% of the" \
    "measured CPU per request with metrics off"
