#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# routes.sh — does a request cost more when the app has many routes? keryx serving a throw-away
# app of N routes (N = 10, 1,000 and 10,000 by default), half static (`/s<i>`) and half
# parameterised (`/p<i>/:id`), each answering {"ok":true}. For each N, wrk loads the first and
# the last static route and the first and the last parameterised route in interleaved runs;
# the figure is keryx's CPU time per request (utime+stime from /proc/<pid>/stat before and after
# a run, divided by the requests wrk completed) and the ratio last/first, which the target wants
# within 1.05 (the target: a match must not scan the route table). Requests/s are printed too.
#
# CPUs (two needed): keryx on CPU 0, wrk on CPU 1. No Redis is needed by the actions; keryx
# still gets a REDIS_URL nobody answers (its reconnect timer costs nothing measurable).
#
# Environment:
#   BENCH_DURATION  wrk duration per run (default 5s)
#   BENCH_RUNS      measured runs per route (default 3)
#   BENCH_ROUTES    the route counts, space-separated (default "10 1000 10000")
#   BENCH_WRITE     1 = append a dated section to bench/RESULTS.md
#
# Exit status: 0 whatever the PASS/FAIL words say; 1 when keryx fails to start, a reply is not
# 200, wrk fails or a prerequisite is missing.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck disable=SC2034  # read by lib.sh's log/warn/die
BENCH_TAG=bench:routes
# shellcheck source=lib.sh disable=SC1091  # followed by `shellcheck -x`
. "$BENCH_DIR/lib.sh"

DURATION=${BENCH_DURATION:-5s}
RUNS=${BENCH_RUNS:-3}
COUNTS=${BENCH_ROUTES:-10 1000 10000}
WRITE=${BENCH_WRITE:-0}

SERVER_CPU=0
CLIENT_CPU=1
CONNECTIONS=50
START_TIMEOUT_S=30
TARGET=1.05

CLK_TCK=$(getconf CLK_TCK)
TMP=$(mktemp -d)
KERYX_PID=""
WRK_PID=""
BASE=""
REPORT=()

cleanup() { stop_all_and_clean "$WRK_PID" "$KERYX_PID"; }
trap cleanup EXIT

check_prereqs() {
    local cmd
    for cmd in wrk taskset curl awk getconf; do
        command -v "$cmd" >/dev/null || die "'$cmd' not found (Debian: apt-get install wrk util-linux curl)"
    done
    taskset -c "$CLIENT_CPU" true 2>/dev/null || die "CPU $CLIENT_CPU is not available: the bench needs two CPUs"
    [[ -x "$ROOT/keryx" ]] || die "$ROOT/keryx not built (run 'make')"
    [[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$RUNS'"
}

# write_app <n>: n/2 static and n/2 parameterised routes in one file (a list of actions).
write_app() {
    local n=$1
    rm -rf "$TMP/app"
    mkdir -p "$TMP/app/actions"
    cat >"$TMP/app/actions/routes.lua" <<LUA
-- Written by bench/routes.sh: $n routes answering {ok = true}.
local keryx = require "keryx"
local list = {}
local function ok() return { ok = true } end
for i = 1, $((n / 2)) do
    list[#list + 1] = keryx.action { name = "s" .. i, web = { route = "/s" .. i, method = "GET" }, run = ok }
    list[#list + 1] = keryx.action { name = "p" .. i, web = { route = "/p" .. i .. "/:id", method = "GET" }, run = ok }
end
return list
LUA
}

start_keryx() {
    local port
    port=$(free_port)
    BASE="http://127.0.0.1:$port/api"
    (cd "$TMP" && exec env REDIS_URL="redis://127.0.0.1:1/0" WEB_SERVER_PORT="$port" WEB_SERVER_HOST=127.0.0.1 \
        LOG_LEVEL=error NODE_ENV=production RATE_LIMIT_ENABLED=false TASKS_ENABLED=false \
        WEB_SERVER_STATIC_ENABLED=false taskset -c "$SERVER_CPU" "$ROOT/keryx" --app "$TMP/app" start) \
        >"$TMP/keryx.log" 2>&1 &
    KERYX_PID=$!
    wait_http "$BASE/s1" "$KERYX_PID" || { keryx_log_tail; die "keryx did not start with $1 routes"; }
}

# one_run <path>: prints "rps cpu_us_per_request".
one_run() {
    local path=$1 before after out requests rps errors
    curl -sf -o /dev/null "$BASE$path" || die "GET $BASE$path did not answer 200"
    before=$(cpu_ticks "$KERYX_PID")
    out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "$BASE$path")
    after=$(cpu_ticks "$KERYX_PID")
    read -r requests rps _ errors < <(parse_wrk <<<"$out")
    ((errors == 0)) || die "wrk saw $errors errors on $path"
    ((requests > 0)) || die "wrk completed no request on $path"
    awk -v r="$rps" -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" \
        'BEGIN {printf "%s %.2f\n", r, t / hz * 1e6 / n}'
}

bench_count() {
    local n=$1 half=$(($1 / 2)) path run key
    local -A cpu=() rps=()
    write_app "$n"
    start_keryx "$n"
    local paths=("/s1" "/s$half" "/p1/x" "/p$half/x")
    for ((run = 1; run <= RUNS; run++)); do
        for path in "${paths[@]}"; do
            read -r r c < <(one_run "$path")
            rps[$path]+="$r "
            cpu[$path]+="$c "
        done
    done
    stop_process "$KERYX_PID"
    KERYX_PID=""
    local s_first s_last p_first p_last
    for key in "${paths[@]}"; do
        local m_cpu m_rps
        m_cpu=$(tr ' ' '\n' <<<"${cpu[$key]}" | grep . | median)
        m_rps=$(tr ' ' '\n' <<<"${rps[$key]}" | grep . | median)
        REPORT+=("$(printf '| %6d | %-10s | %8.0f | %6.2f |' "$n" "$key" "$m_rps" "$m_cpu")")
        case $key in
            /s1) s_first=$m_cpu ;; "/s$half") s_last=$m_cpu ;;
            /p1/x) p_first=$m_cpu ;; *) p_last=$m_cpu ;;
        esac
    done
    local rs rp
    rs=$(ratio "$s_last" "$s_first")
    rp=$(ratio "$p_last" "$p_first")
    REPORT+=("| $n routes: last/first CPU per request — static $rs ($(verdict "$rs" "<=" "$TARGET")), parameterised $rp ($(verdict "$rp" "<=" "$TARGET")) | | | |")
}

main() {
    check_prereqs
    local n
    for n in $COUNTS; do
        if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 2)); then die "BENCH_ROUTES holds '$n', not a count >= 2"; fi
        log "$n routes"
        bench_count "$n"
    done
    local out
    out=$(printf '%s\n' "| routes | path | req/s | CPU µs/req |" "|---:|---|---:|---:|" "${REPORT[@]}")
    printf '%s\n' "$out"
    if [[ "$WRITE" == 1 ]]; then
        {
            printf '\n## %s — commit %s — route table size (bench/routes.sh, BENCH_DURATION=%s BENCH_RUNS=%s)\n\n' \
                "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(git -C "$ROOT" rev-parse --short HEAD)" "$DURATION" "$RUNS"
            printf 'keryx on CPU 0, wrk -t1 -c%d on CPU 1; medians; target: last/first CPU per request <= %s.\n\n' \
                "$CONNECTIONS" "$TARGET"
            printf '%s\n' "$out"
        } >>"$ROOT/bench/RESULTS.md"
    fi
}

main "$@"
