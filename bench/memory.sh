#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# memory.sh — memory that follows the work: keryx against nginx + its Lua module (the peer of
# bench/run.sh, from bench/nginx.conf.template) with many idle keep-alive connections, and
# requests/s with many concurrent ones.
#
# Each server runs one worker pinned to CPU 0; clients run pinned to CPU 1. For each server:
#   1. VmRSS idle (after one warm-up request);
#   2. BENCH_MEM_CONNECTIONS keep-alive connections (bench/idle-conns.c, compiled here), each
#      made one GET /api/status and is now idle; one second later VmRSS again → KiB per idle
#      connection = (open − idle) / connections (target ≤ 1.5 KiB);
#   3. all of them closed; once the server closed its ends too (ss), one second later VmRSS
#      again → "returned" = after-close − idle, the
#      memory the server kept after the connections went (near 0 is the goal).
# Then `wrk -t1 -c BENCH_MEM_WRK_CONNECTIONS` (default 5000) on GET /api/status against each,
# interleaved, BENCH_RUNS runs each: median req/s per server and the keryx/nginx ratio
# (target ≥ 1.0; both servers have one core, so req/s is req/s per core), and the server CPU
# time per request (utime+stime from /proc over the run / requests completed).
#
# RSS figures are steady; req/s figures move with whatever else runs on the machine, CPU per
# request much less (nginx/keryx CPU per request is the req/s ratio two saturated cores give).
#
# Environment (the same names as bench/run.sh where they mean the same):
#   BENCH_DURATION             wrk duration per run (default 10s; a bare number means seconds)
#   BENCH_RUNS                 measured wrk runs per server (default 3)
#   BENCH_WARMUP               unmeasured wrk run per server first (default 2s; 0 = none)
#   BENCH_MEM_CONNECTIONS      idle keep-alive connections (default 10000)
#   BENCH_MEM_WRK_CONNECTIONS  wrk's concurrent connections (default 5000)
#   BENCH_ONLY_SERVER          "keryx" or "nginx": that side only (default both)
#   BENCH_KERYX_BIN            the keryx binary (default ./keryx of this tree; another build
#                              of the same tree compares before and after a change)
#
# Exit status: 0 whatever the PASS/FAIL words say; 1 when a server fails to start (or dies),
# the client or wrk fails, or a prerequisite is missing.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck disable=SC2034  # read by lib.sh's log/warn/die
BENCH_TAG=bench:memory
# shellcheck source=lib.sh disable=SC1091  # followed by `shellcheck -x`
. "$BENCH_DIR/lib.sh"

DURATION=${BENCH_DURATION:-10s}
RUNS=${BENCH_RUNS:-3}
WARMUP=${BENCH_WARMUP:-2s}
CONNECTIONS=${BENCH_MEM_CONNECTIONS:-10000}
WRK_CONNECTIONS=${BENCH_MEM_WRK_CONNECTIONS:-5000}
ONLY_SERVER=${BENCH_ONLY_SERVER:-}
KERYX_BIN=${BENCH_KERYX_BIN:-$ROOT/keryx}

SERVER_CPU=0
CLIENT_CPU=1
STATUS_PATH=/api/status
START_TIMEOUT_S=10
FD_WANTED=65536
CONCURRENCY=200            # requests in flight while opening the idle connections
SETTLE_S=1                 # wait before each RSS reading after opening or closing
CLOSE_TIMEOUT_S=30         # at most this long for the server to see every connection closed
NGINX_MODULES_DIR=/usr/lib/nginx/modules

TARGET_PER_CONN_KIB=1.5    # keryx RSS per idle keep-alive connection must be <= this
TARGET_RPS_RATIO=1.0       # keryx/nginx req/s at WRK_CONNECTIONS must be >= this

TMP=""
KERYX_PID=""
NGINX_PID=""
CHILD_PID=""
CTL_FD=""
KERYX_PORT=""
NGINX_PORT=""

# MEM[<server>,idle|open|closed] in KiB; RPS[<server>,<run>] req/s; CPU[<server>,<run>] µs of
# server CPU per request.
declare -A MEM=()
declare -A RPS=()
declare -A CPU=()
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------------------------
# Setup and teardown
# ---------------------------------------------------------------------------------------------

check_args() {
    case "$ONLY_SERVER" in ""|keryx|nginx) ;; *) die "BENCH_ONLY_SERVER must be keryx or nginx, not '$ONLY_SERVER'";; esac
    [[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$RUNS'"
    [[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_MEM_CONNECTIONS must be a positive integer"
    ((CONNECTIONS <= 25000)) || die "BENCH_MEM_CONNECTIONS is at most 25000 (one client address, ephemeral ports)"
    [[ "$WRK_CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_MEM_WRK_CONNECTIONS must be a positive integer"
}

# wants <server>: true when this run includes that server.
wants() { [[ -z "$ONLY_SERVER" || "$ONLY_SERVER" == "$1" ]]; }

check_prereqs() {
    local cmd
    for cmd in wrk taskset curl awk cc ss; do
        command -v "$cmd" >/dev/null || die "'$cmd' not found (Debian: apt-get install wrk util-linux curl gcc iproute2)"
    done
    taskset -c "$CLIENT_CPU" true 2>/dev/null ||
        die "CPU $CLIENT_CPU is not available: the bench needs two CPUs (servers on $SERVER_CPU, clients on $CLIENT_CPU)"
    if wants nginx; then
        need_nginx_lua
    fi
    if wants keryx; then
        [[ -x "$KERYX_BIN" ]] || die "$KERYX_BIN not built (run 'make')"
    fi
}

# raise_fd_limit: every connection is a descriptor in the server and in the client (both
# inherit this limit).
raise_fd_limit() {
    local need=$((CONNECTIONS > WRK_CONNECTIONS ? CONNECTIONS + 200 : WRK_CONNECTIONS + 200))
    ulimit -n "$FD_WANTED" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    (($(ulimit -n) >= need)) ||
        die "open-file limit is $(ulimit -n) (hard $(ulimit -Hn)); $need needed for $CONNECTIONS connections"
    log "open-file limit $(ulimit -n)"
}

build_client() {
    cc -O2 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "$TMP/idle-conns" "$BENCH_DIR/idle-conns.c" ||
        die "cannot compile bench/idle-conns.c"
}

cleanup() {
    if [[ -n "$CTL_FD" ]]; then exec {CTL_FD}>&-; fi
    stop_all_and_clean "$CHILD_PID" "$KERYX_PID" "$NGINX_PID"
}

start_keryx() {
    KERYX_PORT=$(free_port)
    log "starting keryx on 127.0.0.1:$KERYX_PORT (CPU $SERVER_CPU)"
    # The idle connections must outlive the measurement: keep-alive and header timeouts are
    # raised past it, and the connection cap above the connections opened.
    (cd "$ROOT" && exec env WEB_SERVER_PORT="$KERYX_PORT" WEB_SERVER_HOST=127.0.0.1 LOG_LEVEL=warn \
        NODE_ENV=production WEB_SERVER_MAX_CONNECTIONS=$((CONNECTIONS + WRK_CONNECTIONS + 1000)) \
        WEB_SERVER_KEEPALIVE_TIMEOUT_MS=600000 \
        taskset -c "$SERVER_CPU" "$KERYX_BIN" start) >"$TMP/keryx.log" 2>&1 &
    KERYX_PID=$!
    if ! wait_http "http://127.0.0.1:$KERYX_PORT$STATUS_PATH" "$KERYX_PID"; then
        keryx_log_tail
        die "keryx exited or did not answer within ${START_TIMEOUT_S}s"
    fi
    log "keryx pid $KERYX_PID ($KERYX_BIN)"
}

start_nginx() {
    local prefix="$TMP/nginx"
    NGINX_PORT=$(free_port)
    mkdir -p "$prefix"
    # bench/run.sh's peer, with room for the idle connections (worker_connections counts
    # every connection, the listener's too) and the same keep-alive timeout as keryx here.
    sed -e "s#@MODULES_DIR@#$NGINX_MODULES_DIR#g" \
        -e "s#@PREFIX@#$prefix#g" \
        -e "s#@PORT@#$NGINX_PORT#g" \
        -e "s#@SERVER_NAME@#server#g" \
        -e "s#@BODY_CRLF@#true#g" \
        -e "s#@MEM_SOURCE@#heap#g" \
        -e "s#@PAGE_SIZE@#$(getconf PAGESIZE)#g" \
        -e "s#worker_connections [0-9]*;#worker_connections $((CONNECTIONS + WRK_CONNECTIONS + 1000));#" \
        -e "s#keepalive_timeout [ 0-9a-z]*;#keepalive_timeout 600s;#" \
        "$BENCH_DIR/nginx.conf.template" >"$prefix/nginx.conf"
    grep -q "worker_connections $((CONNECTIONS + WRK_CONNECTIONS + 1000));" "$prefix/nginx.conf" ||
        die "could not raise worker_connections in bench/nginx.conf.template"
    log "starting nginx on 127.0.0.1:$NGINX_PORT (CPU $SERVER_CPU, prefix $prefix)"
    taskset -c "$SERVER_CPU" nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" \
        >"$prefix/stdout.log" 2>&1 &
    NGINX_PID=$!
    if ! wait_http "http://127.0.0.1:$NGINX_PORT$STATUS_PATH" "$NGINX_PID"; then
        tail -n 20 "$prefix/error.log" "$prefix/stdout.log" >&2 || true
        die "nginx exited or did not answer within ${START_TIMEOUT_S}s"
    fi
    log "nginx master pid $NGINX_PID, workers $(children "$NGINX_PID" | tr '\n' ' ')"
}

port_of() { if [[ $1 == keryx ]]; then echo "$KERYX_PORT"; else echo "$NGINX_PORT"; fi; }
pid_of() { if [[ $1 == keryx ]]; then echo "$KERYX_PID"; else echo "$NGINX_PID"; fi; }

alive() { kill -0 "$(pid_of "$1")" 2>/dev/null || die "$1 died (see its log under $TMP)"; }

# ---------------------------------------------------------------------------------------------
# Idle connections
# ---------------------------------------------------------------------------------------------

# wait_line <file> <word> <pid>: true once a line starting with word is in file; false when
# pid exited first.
wait_line() {
    while ! grep -q "^$2 " "$1" 2>/dev/null; do
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.2
    done
}

# wait_closed <port>: until the server has closed every connection on its port (none left
# established or in CLOSE-WAIT: on a busy machine it may still be reading the EOFs a second
# after the client closed), at most CLOSE_TIMEOUT_S.
wait_closed() {
    local deadline=$((SECONDS + CLOSE_TIMEOUT_S)) n
    while ((SECONDS < deadline)); do
        n=$(ss -Htn state established state close-wait "( sport = :$1 )" | wc -l)
        ((n == 0)) && return 0
        sleep 0.1
    done
    warn "$n connections still established on port $1 after ${CLOSE_TIMEOUT_S}s"
}

# idle_memory <server>: MEM[<server>,idle|open|closed].
idle_memory() {
    local server=$1 pid port out="$TMP/idle-$1.out" rc=0
    pid=$(pid_of "$server")
    port=$(port_of "$server")
    curl -sf -o /dev/null "http://127.0.0.1:$port$STATUS_PATH" || die "$server does not answer"
    sleep "$SETTLE_S"
    MEM[$server,idle]=$(tree_rss_kib "$pid")
    mkfifo "$TMP/ctl-$server"
    log "$server: opening $CONNECTIONS keep-alive connections (one GET $STATUS_PATH each)"
    taskset -c "$CLIENT_CPU" "$TMP/idle-conns" --host 127.0.0.1 --port "$port" \
        --connections "$CONNECTIONS" --concurrency "$CONCURRENCY" --path "$STATUS_PATH" \
        <"$TMP/ctl-$server" >"$out" &
    CHILD_PID=$!
    # The client's stdin stays open (idle) until this descriptor closes.
    exec {CTL_FD}>"$TMP/ctl-$server"
    wait_line "$out" ready "$CHILD_PID" || { wait "$CHILD_PID" || true; die "the idle-connection client failed against $server"; }
    sleep "$SETTLE_S"
    alive "$server"
    MEM[$server,open]=$(tree_rss_kib "$pid")
    exec {CTL_FD}>&-
    CTL_FD=""
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    ((rc == 0)) || die "the idle-connection client failed against $server (exit status $rc)"
    grep -q '^closed ' "$out" || die "the idle-connection client did not close its connections"
    wait_closed "$port"
    sleep "$SETTLE_S"
    alive "$server"
    MEM[$server,closed]=$(tree_rss_kib "$pid")
    log "$(printf '%-5s RSS idle %d KiB, %d open %d KiB, after close %d KiB' "$server" \
        "${MEM[$server,idle]}" "$CONNECTIONS" "${MEM[$server,open]}" "${MEM[$server,closed]}")"
}

per_conn_kib() {
    awk -v o="${MEM[$1,open]}" -v i="${MEM[$1,idle]}" -v n="$CONNECTIONS" 'BEGIN {printf "%.2f", (o - i) / n}'
}

returned_kib() { echo $((MEM[$1,closed] - MEM[$1,idle])); }

# ---------------------------------------------------------------------------------------------
# Many concurrent connections
# ---------------------------------------------------------------------------------------------

# wrk_rps <server> <duration>: "req/s cpu_us_per_request" of one wrk run (errors are warned
# about). The server's CPU time per request (utime+stime of its processes over the run,
# divided by the requests completed) moves much less than req/s when other work shares the
# machine.
wrk_rps() {
    local server=$1 out="$TMP/wrk.out" rc=0 requests rps p99 errors before after pid
    pid=$(pid_of "$server")
    before=$(tree_cpu_ticks "$pid")
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$WRK_CONNECTIONS" -d"$2" --timeout 10s \
        "http://127.0.0.1:$(port_of "$server")$STATUS_PATH" >"$out" 2>&1 &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    after=$(tree_cpu_ticks "$pid")
    ((rc == 0)) || { cat "$out" >&2; die "wrk failed against $server"; }
    alive "$server"
    read -r requests rps p99 errors <<<"$(parse_wrk <"$out")"
    ((requests > 0)) || { cat "$out" >&2; die "$server completed no request"; }
    ((errors == 0)) || warn "$server: $errors errors (socket errors or non-2xx replies) with $WRK_CONNECTIONS connections"
    : "$p99"
    awk -v r="$rps" -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" \
        'BEGIN {printf "%s %.2f\n", r, t / hz * 1000000 / n}'
}

concurrent_rps() {
    local s run
    if [[ "$WARMUP" != 0 && "$WARMUP" != 0s ]]; then
        for s in $(servers); do
            log "warm-up $s ($WARMUP, $WRK_CONNECTIONS connections)"
            wrk_rps "$s" "$WARMUP" >/dev/null
        done
    fi
    for ((run = 1; run <= RUNS; run++)); do
        for s in $(servers); do
            read -r "RPS[$s,$run]" "CPU[$s,$run]" <<<"$(wrk_rps "$s" "$DURATION")"
            log "$(printf '%-5s run %d: %10.0f req/s, %6.2f us CPU/request with %d connections' "$s" "$run" \
                "${RPS[$s,$run]}" "${CPU[$s,$run]}" "$WRK_CONNECTIONS")"
        done
    done
}

# median_of <RPS|CPU> <server>
median_of() {
    local run
    local -n figures=$1
    for ((run = 1; run <= RUNS; run++)); do echo "${figures[$2,$run]}"; done | median
}

median_rps() { median_of RPS "$1" | awk '{printf "%.0f", $1}'; }
median_cpu() { median_of CPU "$1" | awk '{printf "%.2f", $1}'; }

servers() {
    local s
    for s in keryx nginx; do
        if wants "$s"; then echo "$s"; fi
    done
}

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

report() {
    local s k n ratio
    echo
    echo "| server | idle RSS | RSS with $CONNECTIONS idle connections | per connection | after closing them | returned (after close − idle) | req/s with $WRK_CONNECTIONS connections (median) | server CPU per request (median) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for s in $(servers); do
        printf '| %s | %d KiB | %d KiB | %s KiB | %d KiB | %d KiB | %s | %s µs |\n' "$s" "${MEM[$s,idle]}" \
            "${MEM[$s,open]}" "$(per_conn_kib "$s")" "${MEM[$s,closed]}" "$(returned_kib "$s")" \
            "$(median_rps "$s")" "$(median_cpu "$s")"
    done
    echo
    if wants keryx; then
        k=$(per_conn_kib keryx)
        printf 'keryx RSS per idle connection:  %s KiB  (target <= %s)  %s\n' "$k" "$TARGET_PER_CONN_KIB" \
            "$(verdict "$k" "<=" "$TARGET_PER_CONN_KIB")"
        printf 'keryx kept after closing:       %s KiB\n' "$(returned_kib keryx)"
    fi
    if wants nginx; then
        printf 'nginx RSS per idle connection:  %s KiB, kept after closing %s KiB\n' \
            "$(per_conn_kib nginx)" "$(returned_kib nginx)"
    fi
    if wants keryx && wants nginx; then
        n=$(median_rps nginx)
        ratio=$(ratio "$(median_rps keryx)" "$n")
        printf 'req/s ratio keryx/nginx (-c%s): %s  (target >= %s)  %s\n' "$WRK_CONNECTIONS" "$ratio" \
            "$TARGET_RPS_RATIO" "$(verdict "$ratio" ">=" "$TARGET_RPS_RATIO")"
        printf 'CPU/request ratio keryx/nginx:  %s  (nginx/keryx %s: the req/s ratio a saturated core would give)\n' \
            "$(ratio "$(median_cpu keryx)" "$(median_cpu nginx)")" "$(ratio "$(median_cpu nginx)" "$(median_cpu keryx)")"
    fi
}

main() {
    check_args
    check_prereqs
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/keryx-bench-memory.XXXXXX")
    raise_fd_limit
    build_client
    if wants keryx; then start_keryx; fi
    if wants nginx; then start_nginx; fi
    local s
    for s in $(servers); do idle_memory "$s"; done
    concurrent_rps
    report
}

main "$@"
