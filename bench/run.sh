#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# run.sh — `make bench`: bench/matrix.sh (the performance matrix: every figure keryx is held
# to, as keryx against its peer in one run; it runs routes.sh, memory.sh and websocket.sh for
# their rows), then bench/mcp.sh (MCP tools/call against plain HTTP calls of the same action),
# bench/tasks.sh (background tasks against node-resque) and bench/workers.sh (2 workers against
# nginx with 2, and SIGHUP reloads under load).
#
# BENCH_ONLY=status (or keryx / nginx for one side) runs this file's own bench instead: keryx
# against nginx + its Lua module on GET /api/status with the responses compared first. Both
# servers run one worker pinned to CPU 0; wrk runs pinned to CPU 1. Runs are interleaved
# (keryx, nginx, keryx, nginx, …) so drift of the machine hits both alike. For each server it
# reports the median requests/s, the median p99 latency and the median server CPU time per
# request (utime+stime from /proc/<pid>/stat before and after a run, divided by the requests
# wrk completed), then the keryx/nginx ratios against the targets and keryx's idle RSS.
# See bench/README.md for how to read the figures.
#
# Environment:
#   BENCH_DURATION  wrk duration per run (default 10s; a bare number means seconds)
#   BENCH_RUNS      measured runs per server (default 3)
#   BENCH_WARMUP    unmeasured warm-up run per server before the first run (default 1s; 0 = none)
#   BENCH_ONLY      "status": this file's /api/status bench, both servers; "keryx" or "nginx":
#                   that side only; "matrix", "ratelimit", "websocket", "mcp", "tasks",
#                   "workers", "routes", "memory": only that script (default: the matrix and the rest)
#   BENCH_WRITE     1 = append a dated section to bench/RESULTS.md
#   BENCH_NGINX_MEM "heap" (default) or "statm": how nginx computes consumedMemoryMB
#
# Exit status: 0 whatever the PASS/FAIL words say; 1 when a server fails to start (or dies),
# wrk fails, a prerequisite is missing, or a bench script it runs fails.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

DURATION=${BENCH_DURATION:-10s}
RUNS=${BENCH_RUNS:-3}
WARMUP=${BENCH_WARMUP:-1s}
ONLY=${BENCH_ONLY:-}
WRITE=${BENCH_WRITE:-0}
NGINX_MEM=${BENCH_NGINX_MEM:-heap}

SERVER_CPU=0
CLIENT_CPU=1
CONNECTIONS=50
STATUS_PATH=/api/status
START_TIMEOUT_S=10
MIN_BUSY_PCT=90            # below this the server was not saturated: a warning is printed
NGINX_MODULES_DIR=/usr/lib/nginx/modules

# Targets printed next to the ratios (keryx / nginx).
TARGET_RPS_RATIO=0.9       # req/s ratio must be >= this
TARGET_CPU_RATIO=1.3       # CPU-per-request ratio must be <= this
TARGET_IDLE_RSS_KIB=10240  # keryx idle RSS must be < this (10 MiB)

CLK_TCK=$(getconf CLK_TCK)
TMP=""
KERYX_PID=""
NGINX_PID=""
WRK_PID=""
KERYX_URL=""
NGINX_URL=""
KERYX_IDLE_RSS_KIB=""
NGINX_IDLE_RSS_KIB=""
# The process name nginx puts in X-SERVER-NAME and the JSON "name": keryx's own when keryx
# runs (./config.lua may set process.name), else keryx's default.
SERVER_NAME=server
# Whether the JSON body ends with CRLF (the reference Keryx does); mirrored from keryx too.
BODY_CRLF=true

# Per-run figures, indexed by server name then run: "rps p99_us cpu_us_per_req errors busy_pct".
declare -A RESULT=()

# shellcheck disable=SC2034  # read by lib.sh's log/warn/die
BENCH_TAG=bench
# shellcheck source=lib.sh disable=SC1091  # followed by `shellcheck -x`
. "$BENCH_DIR/lib.sh"

# ---------------------------------------------------------------------------------------------
# Setup and teardown
# ---------------------------------------------------------------------------------------------

check_args() {
    case "$ONLY" in ""|status|keryx|nginx|matrix|ratelimit|websocket|mcp|tasks|workers|routes|memory) ;;
        *) die "BENCH_ONLY must be status, keryx, nginx, matrix, ratelimit, websocket, mcp, tasks, workers, routes or memory, not '$ONLY'";; esac
    case "$NGINX_MEM" in heap|statm) ;; *) die "BENCH_NGINX_MEM must be heap or statm";; esac
    [[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$RUNS'"
}

check_prereqs() {
    local cmd
    for cmd in wrk taskset curl awk getconf pgrep; do
        command -v "$cmd" >/dev/null || die "'$cmd' not found (Debian: apt-get install wrk util-linux curl procps)"
    done
    taskset -c "$CLIENT_CPU" true 2>/dev/null ||
        die "CPU $CLIENT_CPU is not available: the bench needs two CPUs (server on $SERVER_CPU, wrk on $CLIENT_CPU)"
    if wants nginx; then
        need_nginx_lua
    fi
    if wants keryx; then
        [[ -x "$ROOT/keryx" ]] || die "$ROOT/keryx not built (run 'make', or BENCH_ONLY=nginx)"
    fi
}

# wants <server>: true when this run includes that server.
wants() { [[ "$ONLY" == status || "$ONLY" == "$1" ]]; }

cleanup() { stop_all_and_clean "$WRK_PID" "$KERYX_PID" "$NGINX_PID"; }

# A Debian nginx package may have started the system nginx (from /etc/nginx). It is stopped so
# that nothing else is serving on this machine while we measure. Our own masters, and any other
# nginx started with an explicit -c, are left alone: their title names the config file.
stop_system_nginx() {
    local pid title
    for pid in $(pgrep -x nginx || true); do
        title=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
        [[ "$title" == *"master process"* ]] || continue
        if [[ "$title" != *" -c "* || "$title" == *"/etc/nginx"* ]]; then
            log "stopping the system nginx (pid $pid: $title)"
            nginx -s stop 2>/dev/null || warn "could not stop the system nginx (pid $pid); figures may be disturbed"
        fi
    done
}

start_keryx() {
    local port
    port=$(free_port)
    KERYX_URL="http://127.0.0.1:$port$STATUS_PATH"
    log "starting keryx on 127.0.0.1:$port (CPU $SERVER_CPU)"
    # env → taskset → keryx all exec, so $! is keryx itself.
    (cd "$ROOT" && exec env WEB_SERVER_PORT="$port" WEB_SERVER_HOST=127.0.0.1 LOG_LEVEL=warn \
        NODE_ENV=production taskset -c "$SERVER_CPU" ./keryx start) >"$TMP/keryx.log" 2>&1 &
    KERYX_PID=$!
    if ! wait_http "$KERYX_URL" "$KERYX_PID"; then
        server_log_tail keryx
        die "keryx exited or did not answer $KERYX_URL within ${START_TIMEOUT_S}s"
    fi
    KERYX_IDLE_RSS_KIB=$(tree_rss_kib "$KERYX_PID")
    log "keryx pid $KERYX_PID, idle RSS ${KERYX_IDLE_RSS_KIB} KiB"
    adopt_keryx_reply
}

# adopt_keryx_reply: nginx answers with keryx's X-SERVER-NAME and body ending so both replies
# match byte for byte. Only plain names are taken: the value goes into nginx.conf and Lua.
adopt_keryx_reply() {
    local name tail
    tail=$(curl -s "$KERYX_URL" | tail -c 2 | od -An -c | tr -d ' ')
    if [[ "$tail" == '\r\n' ]]; then BODY_CRLF=true; else BODY_CRLF=false; fi
    name=$(curl -s -D - -o /dev/null "$KERYX_URL" | tr -d '\r' |
        awk -F': ' 'tolower($1) == "x-server-name" {print $2; exit}')
    if [[ "$name" =~ ^[A-Za-z0-9._-]{1,64}$ ]]; then
        SERVER_NAME=$name
    else
        warn "keryx's X-SERVER-NAME '$name' not usable in nginx.conf; nginx answers as '$SERVER_NAME'"
    fi
}

start_nginx() {
    local port prefix="$TMP/nginx"
    port=$(free_port)
    NGINX_URL="http://127.0.0.1:$port$STATUS_PATH"
    mkdir -p "$prefix"
    sed -e "s#@MODULES_DIR@#$NGINX_MODULES_DIR#g" \
        -e "s#@PREFIX@#$prefix#g" \
        -e "s#@PORT@#$port#g" \
        -e "s#@SERVER_NAME@#$SERVER_NAME#g" \
        -e "s#@BODY_CRLF@#$BODY_CRLF#g" \
        -e "s#@MEM_SOURCE@#$NGINX_MEM#g" \
        -e "s#@PAGE_SIZE@#$(getconf PAGESIZE)#g" \
        "$BENCH_DIR/nginx.conf.template" >"$prefix/nginx.conf"
    log "starting nginx on 127.0.0.1:$port (CPU $SERVER_CPU, prefix $prefix)"
    # -e: errors before the config is read also go to the prefix, never /var/log/nginx.
    taskset -c "$SERVER_CPU" nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" \
        >"$prefix/stdout.log" 2>&1 &
    NGINX_PID=$!
    if ! wait_http "$NGINX_URL" "$NGINX_PID"; then
        server_log_tail nginx
        die "nginx exited or did not answer $NGINX_URL within ${START_TIMEOUT_S}s"
    fi
    check_nginx_affinity
    NGINX_IDLE_RSS_KIB=$(tree_rss_kib "$NGINX_PID")
    log "nginx master pid $NGINX_PID, workers $(children "$NGINX_PID" | tr '\n' ' ')"
}

# server_log_tail <server>: the end of its logs on stderr, and its exit status if it died.
server_log_tail() {
    local pid rc=0
    if [[ $1 == keryx ]]; then
        tail -n 20 "$TMP/keryx.log" >&2 || true
        pid=$KERYX_PID
    else
        tail -n 20 "$TMP/nginx/error.log" "$TMP/nginx/stdout.log" >&2 || true
        pid=$NGINX_PID
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null || rc=$?
        if ((rc > 128)); then warn "$1 was killed by signal $((rc - 128))"; else warn "$1 exited with status $rc"; fi
    fi
}

# The worker must sit on the server CPU: worker_cpu_affinity says so, taskset on the master
# is the fallback. A mismatch is reported, not fatal.
check_nginx_affinity() {
    local pid cpus
    for pid in $NGINX_PID $(children "$NGINX_PID"); do
        cpus=$(taskset -pc "$pid" 2>/dev/null | awk -F': ' '{print $2}')
        [[ "$cpus" == "$SERVER_CPU" ]] || warn "nginx pid $pid runs on CPUs '$cpus', not $SERVER_CPU"
    done
}

# Headers and body size should match; differences are printed (not fatal) so a reader can
# judge whether both servers still do the same work.
compare_responses() {
    local k n
    k=$(stable_headers "$KERYX_URL")
    n=$(stable_headers "$NGINX_URL")
    if [[ "$k" != "$n" ]]; then
        warn "response headers differ (< keryx only, > nginx only):"
        diff <(echo "$k") <(echo "$n") | grep '^[<>]' >&2 || true
    fi
    # pid, uptime and memory figures may differ in digits: only a bigger gap is reported.
    k=$(curl -s "$KERYX_URL" | wc -c)
    n=$(curl -s "$NGINX_URL" | wc -c)
    ((k - n <= 16 && n - k <= 16)) || warn "body sizes differ: keryx $k bytes, nginx $n bytes"
}

# stable_headers <url>: sorted "name: value" lines, names lowercased, minus the headers every
# server sets its own way (date, server, connection, length); a cookie shows its name only.
stable_headers() {
    curl -s -D - -o /dev/null "$1" | tr -d '\r' |
        awk 'NR > 1 && index($0, ":") {
                 name = tolower(substr($0, 1, index($0, ":") - 1))
                 value = substr($0, index($0, ":") + 1); sub(/^ +/, "", value)
                 if (name ~ /^(date|server|connection|keep-alive|content-length)$/) next
                 if (name == "set-cookie") sub(/=.*/, "=…", value)
                 print name ": " value
             }' | sort
}

# ---------------------------------------------------------------------------------------------
# /proc readings
# ---------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------
# Load runs
# ---------------------------------------------------------------------------------------------

# wrk_run <url> <duration>: wrk pinned to the client CPU, its output on stdout.
# wrk runs in the background and is waited for, so a TERM/INT trap fires at once (bash defers
# traps while a foreground child runs) and cleanup can stop it.
wrk_run() {
    local out="$TMP/wrk.out" rc=0
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"$2" --latency "$1" >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    cat "$out"
    return "$rc"
}

# measure <server> <url> <pid> <run>: one measured run, stored in RESULT[<server>,<run>].
measure() {
    local server=$1 url=$2 pid=$3 run=$4 out before after t0 t1 requests rps p99 errors cpu_us busy
    before=$(tree_cpu_ticks "$pid")
    t0=$EPOCHREALTIME
    wrk_run "$url" "$DURATION" >"$TMP/wrk.txt" || { cat "$TMP/wrk.txt" >&2; die "wrk failed against $server ($url)"; }
    t1=$EPOCHREALTIME
    after=$(tree_cpu_ticks "$pid")
    out=$(<"$TMP/wrk.txt")
    kill -0 "$pid" 2>/dev/null || { server_log_tail "$server"; die "$server (pid $pid) died during run $run"; }
    read -r requests rps p99 errors <<<"$(parse_wrk <<<"$out")"
    ((requests > 0)) || { echo "$out" >&2; die "$server completed no request in run $run"; }
    cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" \
        'BEGIN {printf "%.2f", t / hz * 1000000 / n}')
    # Share of the run's wall time the server spent on CPU: ~100% when it is the bottleneck.
    busy=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v t0="$t0" -v t1="$t1" \
        'BEGIN {printf "%.0f", t / hz / (t1 - t0) * 100}')
    ((errors == 0)) || warn "$server run $run: $errors errors (socket errors or non-2xx replies)"
    ((busy >= MIN_BUSY_PCT)) ||
        warn "$server run $run: server on CPU only $busy% of the run (machine busy, or the server waits)"
    RESULT[$server,$run]="$rps $p99 $cpu_us $errors $busy"
    log "$(printf '%-5s run %d: %10.0f req/s  p99 %8.2f ms  %6.2f us CPU/req  busy %3d%%  (%d ticks, %d requests)' \
        "$server" "$run" "$rps" "$(awk -v u="$p99" 'BEGIN {print u / 1000}')" "$cpu_us" "$busy" \
        $((after - before)) "$requests")"
}

warm_up() {
    [[ "$WARMUP" == 0 || "$WARMUP" == 0s ]] && return 0
    log "warm-up $1 ($WARMUP)"
    wrk_run "$2" "$WARMUP" >/dev/null || die "wrk failed against $1 ($2)"
}

# servers: the names measured, in interleaving order.
servers() {
    local s
    for s in keryx nginx; do
        if wants "$s"; then echo "$s"; fi
    done
}

url_of() { if [[ $1 == keryx ]]; then echo "$KERYX_URL"; else echo "$NGINX_URL"; fi; }
pid_of() { if [[ $1 == keryx ]]; then echo "$KERYX_PID"; else echo "$NGINX_PID"; fi; }

run_all() {
    local s run
    for s in $(servers); do warm_up "$s" "$(url_of "$s")"; done
    for ((run = 1; run <= RUNS; run++)); do
        for s in $(servers); do
            measure "$s" "$(url_of "$s")" "$(pid_of "$s")" "$run"
        done
    done
}

# ---------------------------------------------------------------------------------------------
# Figures and report
# ---------------------------------------------------------------------------------------------

# column <server> <n>: the n-th figure (1 rps, 2 p99_us, 3 cpu_us, 4 errors, 5 busy) of every run.
column() {
    local run
    for ((run = 1; run <= RUNS; run++)); do
        awk -v n="$2" '{print $n}' <<<"${RESULT[$1,$run]}"
    done
}

# Medians per server, filled by summarise: MED[<server>,rps|p99_ms|cpu_us|errors].
declare -A MED=()

summarise() {
    local s
    for s in $(servers); do
        MED[$s,rps]=$(column "$s" 1 | median | awk '{printf "%.0f", $1}')
        MED[$s,p99_ms]=$(column "$s" 2 | median | awk '{printf "%.2f", $1 / 1000}')
        MED[$s,cpu_us]=$(column "$s" 3 | median | awk '{printf "%.2f", $1}')
        MED[$s,errors]=$(column "$s" 4 | sum)
    done
}

kib_to_mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# markdown_tables: the summary table (medians + ratios) and the per-run table.
markdown_tables() {
    local s run label rss rps_ratio cpu_ratio rps p99 cpu errors busy
    echo "| server | req/s (median) | p99 latency (median) | server CPU per request (median) | idle RSS | errors |"
    echo "|---|---:|---:|---:|---:|---:|"
    for s in $(servers); do
        if [[ $s == keryx ]]; then label=keryx; rss=$KERYX_IDLE_RSS_KIB; else label="nginx + Lua"; rss=$NGINX_IDLE_RSS_KIB; fi
        printf '| %s | %s | %s ms | %s µs | %s KiB | %s |\n' "$label" "${MED[$s,rps]}" \
            "${MED[$s,p99_ms]}" "${MED[$s,cpu_us]}" "$rss" "${MED[$s,errors]}"
    done
    if wants keryx && wants nginx; then
        rps_ratio=$(ratio "${MED[keryx,rps]}" "${MED[nginx,rps]}")
        cpu_ratio=$(ratio "${MED[keryx,cpu_us]}" "${MED[nginx,cpu_us]}")
        printf '| **keryx / nginx** | %s (target ≥ %s: %s) | %s | %s (target ≤ %s: %s) | keryx %s MiB (target < %s MiB: %s) | |\n' \
            "$rps_ratio" "$TARGET_RPS_RATIO" "$(verdict "$rps_ratio" ">=" "$TARGET_RPS_RATIO")" \
            "$(ratio "${MED[keryx,p99_ms]}" "${MED[nginx,p99_ms]}")" \
            "$cpu_ratio" "$TARGET_CPU_RATIO" "$(verdict "$cpu_ratio" "<=" "$TARGET_CPU_RATIO")" \
            "$(kib_to_mib "$KERYX_IDLE_RSS_KIB")" "$(kib_to_mib "$TARGET_IDLE_RSS_KIB")" \
            "$(verdict "$KERYX_IDLE_RSS_KIB" "<" "$TARGET_IDLE_RSS_KIB")"
    elif wants keryx; then
        printf '| **keryx idle RSS** | | | | %s MiB (target < %s MiB: %s) | |\n' \
            "$(kib_to_mib "$KERYX_IDLE_RSS_KIB")" "$(kib_to_mib "$TARGET_IDLE_RSS_KIB")" \
            "$(verdict "$KERYX_IDLE_RSS_KIB" "<" "$TARGET_IDLE_RSS_KIB")"
    fi
    echo
    echo "| run | server | req/s | p99 latency | server CPU per request | server CPU busy | errors |"
    echo "|---:|---|---:|---:|---:|---:|---:|"
    for ((run = 1; run <= RUNS; run++)); do
        for s in $(servers); do
            read -r rps p99 cpu errors busy <<<"${RESULT[$s,$run]}"
            printf '| %d | %s | %.0f | %.2f ms | %s µs | %s%% | %s |\n' "$run" "$s" "$rps" \
                "$(awk -v u="$p99" 'BEGIN {print u / 1000}')" "$cpu" "$busy" "$errors"
        done
    done
}

# The plain-words verdict lines, for a reader of the terminal.
print_verdicts() {
    wants keryx && wants nginx || return 0
    local rps_ratio cpu_ratio
    rps_ratio=$(ratio "${MED[keryx,rps]}" "${MED[nginx,rps]}")
    cpu_ratio=$(ratio "${MED[keryx,cpu_us]}" "${MED[nginx,cpu_us]}")
    printf 'req/s ratio keryx/nginx:       %s  (target >= %s)  %s\n' "$rps_ratio" "$TARGET_RPS_RATIO" \
        "$(verdict "$rps_ratio" ">=" "$TARGET_RPS_RATIO")"
    printf 'CPU/request ratio keryx/nginx: %s  (target <= %s)  %s\n' "$cpu_ratio" "$TARGET_CPU_RATIO" \
        "$(verdict "$cpu_ratio" "<=" "$TARGET_CPU_RATIO")"
    printf 'keryx idle RSS:                %s KiB  (target < %s KiB)  %s\n' "$KERYX_IDLE_RSS_KIB" \
        "$TARGET_IDLE_RSS_KIB" "$(verdict "$KERYX_IDLE_RSS_KIB" "<" "$TARGET_IDLE_RSS_KIB")"
}

machine_line() {
    local cpu nginx_version="no nginx"
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
    if command -v nginx >/dev/null; then
        nginx_version=$(nginx -v 2>&1 | sed 's/^nginx version: //')
    fi
    printf '%s, %s CPUs, Linux %s; %s; wrk -t1 -c%s -d%s, %s run(s) per server, interleaved' \
        "${cpu:-unknown CPU}" "$(nproc)" "$(uname -r)" "$nginx_version" \
        "$CONNECTIONS" "$DURATION" "$RUNS"
}

report() {
    local tables
    summarise
    tables=$(markdown_tables)
    echo
    echo "Machine: $(machine_line)"
    echo
    echo "$tables"
    echo
    print_verdicts
    if [[ "$WRITE" == 1 ]]; then
        write_results "$tables"
    fi
}

# write_results <tables>: appends a dated section to bench/RESULTS.md.
write_results() {
    local rev
    rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    {
        echo
        echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — commit $rev${ONLY:+ (only $ONLY)}"
        echo
        echo "$(machine_line); nginx consumedMemoryMB source: $NGINX_MEM."
        echo
        echo "$1"
    } >>"$BENCH_DIR/RESULTS.md"
    log "appended to $BENCH_DIR/RESULTS.md"
}

main() {
    check_args
    case "$ONLY" in
        "") run_matrix_and_the_rest; return ;;
        matrix) exec "$BENCH_DIR/matrix.sh" ;;
        ratelimit) exec "$BENCH_DIR/ratelimit.sh" ;;
        websocket) exec "$BENCH_DIR/websocket.sh" ;;
        mcp) exec "$BENCH_DIR/mcp.sh" ;;
        tasks) exec "$BENCH_DIR/tasks.sh" ;;
        workers) exec "$BENCH_DIR/workers.sh" ;;
        routes) exec "$BENCH_DIR/routes.sh" ;;
        memory) exec "$BENCH_DIR/memory.sh" ;;
    esac
    check_prereqs
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/keryx-bench.XXXXXX")
    if wants nginx; then stop_system_nginx; fi
    # keryx first: nginx copies its process name and body ending.
    if wants keryx; then start_keryx; fi
    if wants nginx; then start_nginx; fi
    if wants keryx && wants nginx; then compare_responses; fi
    run_all
    report
}

# `make bench`: the performance matrix (which runs routes.sh, memory.sh and websocket.sh for
# its rows), then the benches it has no row for.
run_matrix_and_the_rest() {
    local script
    "$BENCH_DIR/matrix.sh" || die "bench/matrix.sh failed"
    for script in mcp tasks workers; do
        echo
        "$BENCH_DIR/$script.sh" || die "bench/$script.sh failed"
    done
}

main "$@"
