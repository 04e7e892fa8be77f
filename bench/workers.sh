#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# workers.sh — keryx with WEB_SERVER_WORKERS=2 against nginx + its Lua module with 2 workers on
# GET /api/status (total requests/s), then SIGHUP reloads under continuous load (failed
# requests must be 0), for the two workers and for one process (in-place VM swap).
#
# Both servers get 2 worker processes and listen with SO_REUSEPORT (keryx: one socket per
# worker slot; nginx: `listen … reuseport`, from bench/nginx.conf.template with
# `worker_processes 2` and no CPU pinning). Nothing is pinned: on a 2-CPU machine the servers'
# two workers and wrk (`-t2 -c100`) share both CPUs, so these are figures of the whole
# machine, not of a server alone; wrk's own CPU use is printed with each run. Runs are
# interleaved (keryx, nginx, keryx, …) and the medians compared. keryx talks to its own
# redis-server (free port, no persistence), which `status` does not call per request.
#
# Reload phase: wrk runs BENCH_RELOAD_SECONDS against keryx while the script sends SIGHUP every
# 2 s; wrk's "Non-2xx" and "Socket errors" lines are the failed requests, every one counted.
#
# Environment:
#   BENCH_DURATION        wrk duration per measured run (default 10s; a bare number = seconds)
#   BENCH_RUNS            measured runs per server (default 3)
#   BENCH_RELOAD_SECONDS  length of each reload-under-load run (default 10)
#   BENCH_WRITE           1 = append a dated section to bench/RESULTS.md
#
# Exit status: 0 whatever the ratio; 1 when a server fails to start or dies, wrk fails, a
# prerequisite is missing, or a reload under load lost a request.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck disable=SC2034  # read by lib.sh's log/warn/die
BENCH_TAG=bench:workers
# shellcheck source=lib.sh disable=SC1091  # followed by `shellcheck -x`
. "$BENCH_DIR/lib.sh"

DURATION=${BENCH_DURATION:-10s}
RUNS=${BENCH_RUNS:-3}
RELOAD_SECONDS=${BENCH_RELOAD_SECONDS:-10}
WRITE=${BENCH_WRITE:-0}

WORKERS=2
CONNECTIONS=100
THREADS=2
STATUS_PATH=/api/status
START_TIMEOUT_S=10
REDIS_CPU=0-1
NGINX_MODULES_DIR=/usr/lib/nginx/modules

CLK_TCK=$(getconf CLK_TCK)
TMP=""
KERYX_PID=""
NGINX_PID=""
REDIS_PID=""
REDIS_PORT=""
WRK_PID=""
KERYX_URL=""
NGINX_URL=""
declare -A RESULT=()

cleanup() { stop_all_and_clean "$WRK_PID" "$KERYX_PID" "$NGINX_PID" "$REDIS_PID"; }

check_prereqs() {
    local cmd
    for cmd in wrk curl awk getconf pgrep nginx redis-server redis-cli; do
        command -v "$cmd" >/dev/null || die "'$cmd' not found (Debian: wrk curl nginx-light libnginx-mod-http-lua redis-server)"
    done
    need_nginx_lua
    [[ -x "$ROOT/keryx" ]] || die "$ROOT/keryx not built (run 'make')"
}

# start_keryx <workers>: keryx on a free port with that many workers (1: one process).
start_keryx() {
    local port
    port=$(free_port)
    KERYX_URL="http://127.0.0.1:$port$STATUS_PATH"
    log "starting keryx on 127.0.0.1:$port, WEB_SERVER_WORKERS=$1"
    (cd "$ROOT" && exec env WEB_SERVER_PORT="$port" WEB_SERVER_HOST=127.0.0.1 LOG_LEVEL=warn \
        NODE_ENV=production WEB_SERVER_WORKERS="$1" REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
        ./keryx start) >"$TMP/keryx.log" 2>&1 &
    KERYX_PID=$!
    wait_http "$KERYX_URL" "$KERYX_PID" || { keryx_log_tail; die "keryx did not answer $KERYX_URL"; }
    # The supervisor logs "started" once every worker accepts; wait_http may answer sooner.
    if (($1 > 1)); then
        local i
        for ((i = 0; i < 50; i++)); do
            [[ $(children "$KERYX_PID" | wc -l) -eq $1 ]] && break
            sleep 0.1
        done
        log "keryx supervisor $KERYX_PID, workers $(children "$KERYX_PID" | tr '\n' ' ')"
    fi
}

start_nginx() {
    local port prefix="$TMP/nginx" name crlf
    port=$(free_port)
    NGINX_URL="http://127.0.0.1:$port$STATUS_PATH"
    mkdir -p "$prefix"
    # The same reply as keryx's: its X-SERVER-NAME and the body's line ending.
    name=$(curl -s -D - -o /dev/null "$KERYX_URL" | tr -d '\r' |
        awk -F': ' 'tolower($1) == "x-server-name" {print $2; exit}')
    [[ "$name" =~ ^[A-Za-z0-9._-]{1,64}$ ]] || name=server
    crlf=false
    [[ "$(curl -s "$KERYX_URL" | tail -c 2 | od -An -c | tr -d ' ')" == '\r\n' ]] && crlf=true
    sed -e "s#@MODULES_DIR@#$NGINX_MODULES_DIR#g" -e "s#@PREFIX@#$prefix#g" -e "s#@PORT@#$port#g" \
        -e "s#@SERVER_NAME@#$name#g" -e "s#@BODY_CRLF@#$crlf#g" -e "s#@MEM_SOURCE@#heap#g" \
        -e "s#@PAGE_SIZE@#$(getconf PAGESIZE)#g" \
        -e "s#^worker_processes 1;#worker_processes $WORKERS;#" -e '/^worker_cpu_affinity/d' \
        -e "s#listen 127.0.0.1:$port;#listen 127.0.0.1:$port reuseport;#" \
        "$BENCH_DIR/nginx.conf.template" >"$prefix/nginx.conf"
    grep -q "worker_processes $WORKERS;" "$prefix/nginx.conf" || die "nginx.conf.template: no 'worker_processes 1;' line to change"
    grep -q "reuseport;" "$prefix/nginx.conf" || die "nginx.conf.template: no 'listen 127.0.0.1:@PORT@;' line to change"
    log "starting nginx on 127.0.0.1:$port, $WORKERS workers, reuseport"
    nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" >"$prefix/stdout.log" 2>&1 &
    NGINX_PID=$!
    wait_http "$NGINX_URL" "$NGINX_PID" || { tail -n 20 "$prefix/error.log" >&2; die "nginx did not answer $NGINX_URL"; }
    log "nginx master $NGINX_PID, workers $(children "$NGINX_PID" | tr '\n' ' ')"
}

# wrk_bg <url> <duration> <out>: wrk in the background (WRK_PID), so traps fire at once.
wrk_bg() {
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$2" --latency "$1" >"$3" 2>&1 &
    WRK_PID=$!
}

# wrk_wait: waits for the background wrk.
wrk_wait() {
    local rc=0
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    return "$rc"
}

# measure <server> <url> <pid> <run>
measure() {
    local server=$1 url=$2 pid=$3 run=$4 out="$TMP/wrk.txt" before after t0 t1 wb wa requests rps p99 errors busy wrk_pct
    before=$(tree_cpu_ticks "$pid")
    t0=$EPOCHREALTIME
    wrk_bg "$url" "$DURATION" "$out"
    sleep 0.2
    wb=$(cpu_ticks "$WRK_PID")
    local wpid=$WRK_PID
    sleep "$(awk -v d="${DURATION%s}" 'BEGIN {print (d > 1) ? d - 0.5 : d / 2}')"
    wa=$(cpu_ticks "$wpid")
    wrk_wait || { cat "$out" >&2; die "wrk failed against $server"; }
    t1=$EPOCHREALTIME
    after=$(tree_cpu_ticks "$pid")
    kill -0 "$pid" 2>/dev/null || die "$server (pid $pid) died during run $run"
    read -r requests rps p99 errors <<<"$(parse_wrk <"$out")"
    ((requests > 0)) || { cat "$out" >&2; die "$server completed no request in run $run"; }
    # Server CPU (master/supervisor + workers) and wrk's, as % of one CPU over the run.
    busy=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.0f", t / hz / (t1 - t0) * 100}')
    wrk_pct=$(awk -v t=$((wa - wb)) -v hz="$CLK_TCK" -v d="${DURATION%s}" 'BEGIN {s = (d > 1) ? d - 0.7 : d / 2 - 0.2; printf "%.0f", t / hz / s * 100}')
    ((errors == 0)) || warn "$server run $run: $errors errors (socket errors or non-2xx replies)"
    RESULT[$server,$run]="$rps $p99 $errors $busy $wrk_pct"
    log "$(printf '%-5s run %d: %10.0f req/s  p99 %7.2f ms  server CPU %3d%%  wrk CPU %3d%%  (of one CPU; 2 CPUs = 200%%)' \
        "$server" "$run" "$rps" "$(awk -v u="$p99" 'BEGIN {print u / 1000}')" "$busy" "$wrk_pct")"
}

column() {
    local run
    for ((run = 1; run <= RUNS; run++)); do awk -v n="$2" '{print $n}' <<<"${RESULT[$1,$run]}"; done
}

# reload_under_load <label>: wrk against keryx while SIGHUP goes every 2 s; adds a table row.
RELOAD_LINES=()
reload_under_load() {
    local out="$TMP/reload.txt" requests rps p99 errors n=0 t
    log "$1: wrk ${RELOAD_SECONDS}s with a SIGHUP every 2 s"
    wrk_bg "$KERYX_URL" "${RELOAD_SECONDS}s" "$out"
    for ((t = 2; t < RELOAD_SECONDS; t += 2)); do
        sleep 2
        kill -HUP "$KERYX_PID"
        n=$((n + 1))
    done
    wrk_wait || { cat "$out" >&2; die "wrk failed during the reloads"; }
    kill -0 "$KERYX_PID" 2>/dev/null || { keryx_log_tail; die "keryx died during the reloads"; }
    read -r requests rps p99 errors <<<"$(parse_wrk <"$out")"
    grep -E "Non-2xx|Socket errors" "$out" >&2 || true
    log "$1: $n reloads, $requests requests, $errors failed"
    RELOAD_LINES+=("| $1 | $n | $requests | $errors |")
    ((errors == 0)) || RELOAD_FAILED=1
}
RELOAD_FAILED=0

report() {
    local k n
    k=$(column keryx 1 | median)
    n=$(column nginx 1 | median)
    printf '\n%s\n' "== keryx WEB_SERVER_WORKERS=$WORKERS vs nginx worker_processes $WORKERS, GET $STATUS_PATH, wrk -t$THREADS -c$CONNECTIONS, $RUNS × $DURATION, nothing pinned"
    printf '%-6s %12s %10s %12s %10s\n' server "req/s (med)" "p99 ms" "server CPU" "wrk CPU"
    printf '%-6s %12.0f %10.2f %11s%% %9s%%\n' keryx "$k" "$(column keryx 2 | median | awk '{print $1 / 1000}')" \
        "$(column keryx 4 | median)" "$(column keryx 5 | median)"
    printf '%-6s %12.0f %10.2f %11s%% %9s%%\n' nginx "$n" "$(column nginx 2 | median | awk '{print $1 / 1000}')" \
        "$(column nginx 4 | median)" "$(column nginx 5 | median)"
    printf 'keryx / nginx total req/s: %s\n' "$(ratio "$k" "$n")"
    printf '\n== reloads under load\n| setup | SIGHUPs | requests | failed |\n|---|---:|---:|---:|\n'
    printf '%s\n' "${RELOAD_LINES[@]}"
    if [[ "$WRITE" == 1 ]]; then
        {
            printf '\n## %s — commit %s — workers (bench/workers.sh, BENCH_DURATION=%s BENCH_RUNS=%s)\n\n' \
                "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" \
                "$DURATION" "$RUNS"
            printf '| server (2 workers, SO_REUSEPORT) | req/s (median) | p99 | server CPU | wrk CPU |\n|---|---:|---:|---:|---:|\n'
            printf '| keryx | %.0f | %.2f ms | %s%% | %s%% |\n' "$k" "$(column keryx 2 | median | awk '{print $1 / 1000}')" \
                "$(column keryx 4 | median)" "$(column keryx 5 | median)"
            printf '| nginx + Lua | %.0f | %.2f ms | %s%% | %s%% |\n' "$n" "$(column nginx 2 | median | awk '{print $1 / 1000}')" \
                "$(column nginx 4 | median)" "$(column nginx 5 | median)"
            printf '| **keryx / nginx** | **%s** | | | |\n\n' "$(ratio "$k" "$n")"
            printf 'CPU figures are %% of one CPU (the machine has 2 = 200%%): wrk shares both CPUs with the servers.\n\n'
            printf '| reload under load (wrk -t%s -c%s) | SIGHUPs | requests | failed (non-2xx + socket errors) |\n|---|---:|---:|---:|\n' \
                "$THREADS" "$CONNECTIONS"
            printf '%s\n' "${RELOAD_LINES[@]}"
        } >>"$BENCH_DIR/RESULTS.md"
        log "appended to bench/RESULTS.md"
    fi
}

main() {
    check_prereqs
    TMP=$(mktemp -d)
    trap cleanup EXIT
    trap 'exit 1' INT TERM
    start_redis
    start_keryx "$WORKERS"
    start_nginx
    local run
    log "warm-up"
    wrk_bg "$KERYX_URL" 1s /dev/null && wrk_wait
    wrk_bg "$NGINX_URL" 1s /dev/null && wrk_wait
    for ((run = 1; run <= RUNS; run++)); do
        measure keryx "$KERYX_URL" "$KERYX_PID" "$run"
        measure nginx "$NGINX_URL" "$NGINX_PID" "$run"
    done
    stop_process "$NGINX_PID"
    NGINX_PID=""
    reload_under_load "keryx, WEB_SERVER_WORKERS=$WORKERS (new workers)"
    stop_process "$KERYX_PID"
    start_keryx 1
    reload_under_load "keryx, one process (in-place VM swap)"
    stop_process "$KERYX_PID"
    KERYX_PID=""
    report
    ((RELOAD_FAILED == 0)) || die "a reload under load lost requests"
}

main "$@"
