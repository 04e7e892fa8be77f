#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# matrix.sh — the performance matrix of `make bench`: every figure keryx is held to, each as
# keryx against its peer in ONE run on this machine, so a regression shows as a ratio.
#
# Per-request rows (this script): keryx and nginx + its Lua module (bench/nginx.matrix.conf.
# template) each run one process pinned to CPU 0; wrk -t1 runs on CPU 1 with Redis beside it.
# Rounds are interleaved (every row's keryx and peer run, then the next round), medians are
# reported. "Per core" is requests per second of server CPU (utime+stime of every thread, from
# /proc/<pid>/task/*/schedstat), so a server that did not saturate its core is not flattered
# or punished. Each row also prints how busy the load generator's core (CPU 1) was.
#
#   trivial JSON         GET /api/bench/trivial {"ok":true}, keryx / nginx per core
#   /api/status          the status action, keryx / nginx per core
#   instructions/request user-space instructions per request under callgrind (trivial, status),
#                        keryx and nginx each alone, same requests (wrk -c1 for a fixed count)
#   rate-limited / plain keryx's rate-limited route / its plain twin, per core
#   rate-limited vs peer keryx / nginx doing the same EVALSHA of lua/redis/ratelimit.lua
#   logged-in / anon     the rate-limited route with a logged-in session cookie / without
#   1 MiB response       CPU per request and p99 keryx / nginx (wrk -c10), keryx's RSS after
#                        the runs against before them
# Then, unless BENCH_MATRIX_QUICK=1, the rows other scripts own, read from their output:
#   routes (bench/routes.sh with 10 and 5,000 routes), idle keep-alive memory and 5,000
#   connections (bench/memory.sh), WebSocket round trips and broadcast (bench/websocket.sh).
#
# Environment: BENCH_DURATION (default 5s), BENCH_RUNS (default 3), BENCH_WRITE (1 = append
# the table to bench/RESULTS.md), BENCH_MATRIX_QUICK (1 = this script's rows only),
# BENCH_CALLGRIND (0 = skip the instruction counts, default 1), BENCH_REDIS_CPU (default 1:
# Redis beside wrk, the issue's layout; 0 puts it beside the server, so that wrk alone has
# CPU 1 and the rate-limited rows saturate the server too, see bench/README.md).
#
# Exit status: 0 whatever PASS/FAIL says; 1 when a server fails to start or dies, a reply is
# not what the row expects, or a prerequisite is missing.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck disable=SC2034  # read by lib.sh's log/warn/die
BENCH_TAG=bench:matrix
# shellcheck source=lib.sh disable=SC1091
. "$BENCH_DIR/lib.sh"

DURATION=${BENCH_DURATION:-5s}
RUNS=${BENCH_RUNS:-3}
WRITE=${BENCH_WRITE:-0}
QUICK=${BENCH_MATRIX_QUICK:-0}
CALLGRIND=${BENCH_CALLGRIND:-1}

SERVER_CPU=0
CLIENT_CPU=1
REDIS_CPU=${BENCH_REDIS_CPU:-1}
CONNECTIONS=50
BIG_CONNECTIONS=10
START_TIMEOUT_S=60        # keryx and nginx under callgrind start slowly
CALLGRIND_REQUESTS=3000
NGINX_MODULES_DIR=/usr/lib/nginx/modules
RL_PREFIX=benchrl
RL_LIMIT=1000000000
RL_WINDOW_MS=60000
SERVER_NAME=keryx-bench

TMP=$(mktemp -d)
KERYX_PID=""
NGINX_PID=""
REDIS_PID=""
REDIS_PORT=""
COOKIE=""
declare -A VAL=()      # "<row>,<server>,<metric>" → space-separated values over rounds
declare -A ONE=()      # single readings
MATRIX=()              # the printed table rows

cleanup() { stop_all_and_clean "$KERYX_PID" "$NGINX_PID" "$REDIS_PID"; }
trap cleanup EXIT

# ---- set-up -----------------------------------------------------------------------------

check_prereqs() {
    local cmd
    for cmd in wrk taskset curl awk redis-server redis-cli nginx valgrind callgrind_control; do
        command -v "$cmd" >/dev/null || die "'$cmd' not found"
    done
    taskset -c "$CLIENT_CPU" true 2>/dev/null || die "the bench needs two CPUs"
    [[ -x "$ROOT/keryx" ]] || die "$ROOT/keryx not built (run 'make')"
    need_nginx_lua
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
}

write_app() {
    mkdir -p "$TMP/app/actions"
    cat >"$TMP/app/actions/bench.lua" <<'LUA'
-- Written by bench/matrix.sh.
local keryx = require "keryx"
local big = string.rep("0123456789abcdef", 65536) -- 1 MiB

return {
    keryx.action {
        name = "bench:trivial", description = "{ok = true}",
        web = { route = "/bench/trivial", method = "GET" },
        run = function() return { ok = true } end,
    },
    keryx.action {
        name = "bench:limited", description = "{ok = true}, rate limited",
        web = { route = "/bench/limited", method = "GET" },
        middleware = { keryx.middleware.rate_limit },
        run = function() return { ok = true } end,
    },
    keryx.action {
        name = "bench:login", description = "log in as user 1",
        web = { route = "/bench/login", method = "GET" },
        run = function(_, conn)
            conn:update_session { user_id = 1 }
            return { ok = true }
        end,
    },
    keryx.action {
        name = "bench:big", description = "1 MiB of text",
        web = { route = "/bench/big", method = "GET" },
        run = function(_, conn)
            conn:set_content_type("text/plain")
            return big
        end,
    },
}
LUA
}

# start_keryx [wrapper…]: keryx on CPU 0 (under the wrapper, e.g. valgrind, when given).
start_keryx() {
    local port
    port=$(free_port)
    KERYX_URL="http://127.0.0.1:$port"
    (cd "$ROOT" && exec env REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
        WEB_SERVER_PORT="$port" WEB_SERVER_HOST=127.0.0.1 WEB_SERVER_WORKERS=1 LOG_LEVEL=warn \
        NODE_ENV=production PROCESS_NAME="$SERVER_NAME" WEB_SERVER_MAX_CONNECTIONS=20000 WS_MAX_MESSAGES_PER_SECOND=100000000 \
        RATE_LIMIT_ENABLED=true RATE_LIMIT_UNAUTH_LIMIT="$RL_LIMIT" RATE_LIMIT_AUTH_LIMIT="$RL_LIMIT" \
        RATE_LIMIT_WINDOW_MS="$RL_WINDOW_MS" RATE_LIMIT_KEY_PREFIX="$RL_PREFIX" RATE_LIMIT_FAIL_OPEN=false \
        taskset -c "$SERVER_CPU" "$@" ./keryx --app "$TMP/app" start) >"$TMP/keryx.log" 2>&1 &
    KERYX_PID=$!
    wait_http "$KERYX_URL/api/bench/trivial" "$KERYX_PID" || { keryx_log_tail; die "keryx did not start"; }
}

# start_nginx on|off [wrapper…]: master on = master + one worker (measured: the worker);
# off = one process (callgrind).
start_nginx() {
    local master=$1 port sha
    shift
    port=$(free_port)
    NGINX_URL="http://127.0.0.1:$port"
    sha=$(sha1sum "$ROOT/lua/redis/ratelimit.lua" | awk '{print $1}')
    mkdir -p "$TMP/nginx"
    sed -e "s|@MODULES_DIR@|$NGINX_MODULES_DIR|g" -e "s|@PREFIX@|$TMP/nginx|g" -e "s|@PORT@|$port|g" \
        -e "s|@SERVER_NAME@|$SERVER_NAME|g" -e "s|@REDIS_PORT@|$REDIS_PORT|g" -e "s|@RL_SHA@|$sha|g" \
        -e "s|@RL_KEY@|$RL_PREFIX:{ip:127.0.0.1}|g" -e "s|@RL_LIMIT@|$RL_LIMIT|g" \
        -e "s|@RL_WINDOW_MS@|$RL_WINDOW_MS|g" -e "s|@MASTER@|$master|g" -e "s|@WORKER_CONNECTIONS@|20000|g" \
        "$BENCH_DIR/nginx.matrix.conf.template" >"$TMP/nginx/nginx.conf"
    taskset -c "$SERVER_CPU" "$@" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" >"$TMP/nginx/stdout.log" 2>&1 &
    NGINX_PID=$!
    wait_http "$NGINX_URL/api/bench/trivial" "$NGINX_PID" || { tail "$TMP/nginx/error.log" >&2; die "nginx did not start"; }
}

# The measured process of a server: keryx itself; nginx's worker when it has a master.
server_pid() {
    if [[ $1 == keryx ]]; then echo "$KERYX_PID"; return; fi
    local w
    w=$(children "$NGINX_PID" | head -n 1)
    echo "${w:-$NGINX_PID}"
}

# cpu_ns <pid>: CPU time of every thread of the process, in ns.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'; }

url_of() { if [[ $1 == keryx ]]; then echo "$KERYX_URL"; else echo "$NGINX_URL"; fi; }

# ---- one wrk run ------------------------------------------------------------------------

# run_wrk <row> <server> <path> <connections> [header]: records rps, CPU µs per request, p99
# (µs) and CPU 1 busy % under VAL[<row>,<server>,*].
run_wrk() {
    local row=$1 server=$2 path=$3 conns=$4 header=${5:-} pid c0 c1 b0 b1 out n rps p99 errs
    local -a hdr=()
    [[ -n "$header" ]] && hdr=(-H "$header")
    pid=$(server_pid "$server")
    c0=$(cpu_ns "$pid")
    read -r b0 t0 < <(cpu_line "$CLIENT_CPU")
    out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"$DURATION" --latency "${hdr[@]}" \
        -s "$BENCH_DIR/wrk-status.lua" "$(url_of "$server")$path" 2>&1) || die "wrk failed: $out"
    read -r b1 t1 < <(cpu_line "$CLIENT_CPU")
    c1=$(cpu_ns "$pid")
    kill -0 "$pid" 2>/dev/null || die "$server died during $row"
    grep -q '^kx_status_other 0$' <<<"$out" || die "$server $path: replies other than 200: $(grep kx_status_codes <<<"$out")"
    read -r n rps p99 errs < <(parse_wrk <<<"$out")
    ((n > 0 && errs == 0)) || die "$server $path: $n requests, $errs errors"
    VAL[$row,$server,rps]+="$rps "
    VAL[$row,$server,cpu]+="$(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN {printf "%.2f", (b - a) / n / 1000}') "
    VAL[$row,$server,p99]+="$p99 "
    VAL[$row,$server,load]+="$(awk -v a="$b0" -v b="$b1" -v x="$t0" -v y="$t1" 'BEGIN {printf "%.0f", (y > x) ? 100 * (b - a) / (y - x) : 0}') "
}

med() { tr ' ' '\n' <<<"${VAL[$1]:-}" | grep . | median; }

# ---- rows --------------------------------------------------------------------------------

login() {
    COOKIE=$(curl -s -D - -o /dev/null "$KERYX_URL/api/bench/login" | tr -d '\r' |
        awk -F'[:;] *' 'tolower($1) == "set-cookie" {print $2; exit}')
    [[ "$COOKIE" == *=* ]] || die "bench:login set no session cookie"
    curl -s -H "Cookie: $COOKIE" -D - -o /dev/null "$KERYX_URL/api/bench/limited" | tr -d '\r' |
        grep -qi '^x-ratelimit-limit: ' || die "the limited route did not run the rate limiter"
}

throughput_rounds() {
    local round
    for ((round = 1; round <= RUNS; round++)); do
        log "round $round/$RUNS"
        run_wrk trivial keryx /api/bench/trivial "$CONNECTIONS"
        run_wrk trivial nginx /api/bench/trivial "$CONNECTIONS"
        run_wrk status keryx /api/status "$CONNECTIONS"
        run_wrk status nginx /api/status "$CONNECTIONS"
        run_wrk limited keryx /api/bench/limited "$CONNECTIONS"
        run_wrk limited nginx /api/bench/limited "$CONNECTIONS"
        run_wrk loggedin keryx /api/bench/limited "$CONNECTIONS" "Cookie: $COOKIE"
        run_wrk big keryx /api/bench/big "$BIG_CONNECTIONS"
        run_wrk big nginx /api/bench/big "$BIG_CONNECTIONS"
    done
}

# per_core <row> <server>: requests per second of server CPU (median of CPU per request).
per_core() { awk -v c="$(med "$1,$2,cpu")" 'BEGIN {printf "%.0f", (c > 0) ? 1e6 / c : 0}'; }

add_row() { MATRIX+=("| $1 | $2 | $3 | $4 | $5 | $6 | $7 |"); }

# row_vs <label> <row> <target>: keryx / nginx per core.
row_vs() {
    local k n r
    k=$(per_core "$2" keryx)
    n=$(per_core "$2" nginx)
    r=$(ratio "$k" "$n")
    add_row "$1" "$k/s ($(med "$2,keryx,rps") req/s)" "$n/s ($(med "$2,nginx,rps") req/s)" "$r" "≥ $3" \
        "$(verdict "$r" ">=" "$3")" "$(med "$2,keryx,load")% / $(med "$2,nginx,load")%"
}

keryx_rows() {
    local p l li r rb
    row_vs "trivial JSON action, req/s per server core" trivial 1.2
    row_vs "/api/status, req/s per server core" status 1.2
    p=$(per_core trivial keryx)
    l=$(per_core limited keryx)
    r=$(ratio "$l" "$p")
    rb=$(ratio "$(med limited,keryx,rps)" "$(med trivial,keryx,rps)")
    add_row "rate-limited / plain (keryx), per core (req/s ratio $rb)" "$l/s" "$p/s" "$r" "≥ 0.7" "$(verdict "$r" ">=" 0.7)" \
        "$(med limited,keryx,load)% / $(med trivial,keryx,load)%"
    row_vs "rate-limited, keryx / nginx + Lua (same EVALSHA)" limited 2.5
    li=$(per_core loggedin keryx)
    r=$(ratio "$li" "$l")
    add_row "logged-in / anonymous (keryx, rate-limited route), per core" "$li/s" "$l/s" "$r" "≥ 0.8" "$(verdict "$r" ">=" 0.8)" \
        "$(med loggedin,keryx,load)% / $(med limited,keryx,load)%"
    local kc nc kp np rc rp
    kc=$(med big,keryx,cpu)
    nc=$(med big,nginx,cpu)
    kp=$(med big,keryx,p99)
    np=$(med big,nginx,p99)
    rc=$(ratio "$kc" "$nc")
    rp=$(ratio "$kp" "$np")
    add_row "1 MiB response: CPU per request" "$kc µs" "$nc µs" "$rc" "≤ 1.0" "$(verdict "$rc" "<=" 1.0)" \
        "$(med big,keryx,load)% / $(med big,nginx,load)%"
    add_row "1 MiB response: p99 (wrk -c$BIG_CONNECTIONS)" "$((kp / 1000)) ms" "$((np / 1000)) ms" "$rp" "≤ 1.5" \
        "$(verdict "$rp" "<=" 1.5)" ""
    add_row "1 MiB response: keryx RSS before → after the runs" "${ONE[rss_before]} → ${ONE[rss_after]} KiB" "" \
        "$(ratio "${ONE[rss_after]}" "${ONE[rss_before]}")" "≤ 1.25" \
        "$(verdict "$(ratio "${ONE[rss_after]}" "${ONE[rss_before]}")" "<=" 1.25)" ""
}

# ---- instructions per request (callgrind) ------------------------------------------------

# count_per_run <pid> <command…>: user-space instructions per request of that process while
# the command makes CALLGRIND_REQUESTS requests: counters zeroed, the command run, dumped; the
# same time idle is measured the same way and subtracted (timers, the task poller).
count_per_run() {
    local pid=$1 t0 t1 busy idle
    shift
    callgrind_control -z "$pid" >/dev/null 2>&1
    t0=$(date +%s.%N)
    taskset -c "$CLIENT_CPU" "$@" >/dev/null || die "the fixed-count client failed: $*"
    t1=$(date +%s.%N)
    busy=$(dump_total "$pid")
    callgrind_control -z "$pid" >/dev/null 2>&1
    sleep "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')"
    idle=$(dump_total "$pid")
    awk -v b="$busy" -v i="$idle" -v n="$CALLGRIND_REQUESTS" 'BEGIN {printf "%.0f", (b - i) / n}'
}

# count_instructions <server> <path>: HTTP GETs of path over one connection (bench/bench-get.c).
count_instructions() {
    count_per_run "$(server_pid "$1")" "$BENCH_DIR/../build/bench-get" "$(url_of "$1")$2" "$CALLGRIND_REQUESTS"
}

# count_ws_instructions: the `status` action over one WebSocket (bench/ws-get.c), one round trip
# at a time: set against /api/status over HTTP, the WebSocket path's own cost without the load
# generator (ws-load.js, Node) limiting the rate.
count_ws_instructions() {
    count_per_run "$KERYX_PID" "$ROOT/build/ws-get" "${KERYX_URL##*:}" "$CALLGRIND_REQUESTS"
}

# dump_total <pid>: dump callgrind's counters now and print the dump's total Ir.
dump_total() {
    local f
    rm -f "$TMP"/cg.out.*
    callgrind_control -d "$1" >/dev/null 2>&1
    f=$(find "$TMP" -maxdepth 1 -name 'cg.out.*' | sort | tail -n 1)
    [[ -n "$f" ]] || die "callgrind wrote no dump"
    awk '/^(summary|totals):/ {print $2; exit}' "$f"
}

build_client() {
    mkdir -p "$ROOT/build"
    cc -O2 -Wall -Wextra -Werror -o "$ROOT/build/bench-get" "$BENCH_DIR/bench-get.c" || die "cannot build bench/bench-get.c"
    cc -O2 -Wall -Wextra -Werror -o "$ROOT/build/ws-get" "$BENCH_DIR/ws-get.c" || die "cannot build bench/ws-get.c"
}

instruction_rows() {
    local cg=(valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out.%p" --dump-instr=no)
    local kt ks kw nt ns
    log "instructions per request: keryx under callgrind"
    start_keryx "${cg[@]}"
    kt=$(count_instructions keryx /api/bench/trivial)
    ks=$(count_instructions keryx /api/status)
    kw=$(count_ws_instructions)
    stop_process "$KERYX_PID"
    KERYX_PID=""
    log "instructions per request: nginx under callgrind"
    start_nginx off "${cg[@]}"
    nt=$(count_instructions nginx /api/bench/trivial)
    ns=$(count_instructions nginx /api/status)
    stop_process "$NGINX_PID"
    NGINX_PID=""
    add_row "user-space instructions per request: trivial" "$kt" "$nt" "$(ratio "$kt" "$nt")" "< 1.0" \
        "$(verdict "$(ratio "$kt" "$nt")" "<" 1.0)" "callgrind, 1 connection"
    add_row "user-space instructions per request: /api/status" "$ks" "$ns" "$(ratio "$ks" "$ns")" "< 1.0" \
        "$(verdict "$(ratio "$ks" "$ns")" "<" 1.0)" "callgrind, 1 connection"
    add_row "user-space instructions: WebSocket status round trip / HTTP GET /api/status (keryx)" "$kw" "$ks" \
        "$(ratio "$kw" "$ks")" "≤ 1.0" "$(verdict "$(ratio "$kw" "$ks")" "<=" 1.0)" "callgrind, 1 connection"
}

# ---- rows read from the other scripts ----------------------------------------------------

other_rows() {
    local out v a b c
    log "routes (bench/routes.sh, 10 and 5000 routes)"
    out=$(BENCH_ROUTES="10 5000" BENCH_DURATION="$DURATION" BENCH_RUNS="$RUNS" BENCH_WRITE=0 "$BENCH_DIR/routes.sh" 2>&1) ||
        die "bench/routes.sh failed: $(tail -n 5 <<<"$out")"
    v=$(grep -o '5000 routes: last/first CPU per request — static [0-9.]*[^,]*, parameterised [0-9.]* ([A-Z]*)' <<<"$out" | head -n 1)
    add_row "last of 5,000 routes vs first, CPU per request" "${v#5000 routes: last/first CPU per request — }" "" "" "≤ 1.05" "" ""
    if [[ -x "$BENCH_DIR/memory.sh" ]]; then
        log "idle keep-alive memory and 5,000 connections (bench/memory.sh)"
        out=$(BENCH_DURATION="$DURATION" BENCH_RUNS="$RUNS" BENCH_WRITE=0 "$BENCH_DIR/memory.sh" 2>&1) ||
            die "bench/memory.sh failed: $(tail -n 5 <<<"$out")"
        local kc nc kr nr pc rr
        kc=$(sed -n 's/^keryx RSS per idle connection: *\([0-9.]*\) KiB.*/\1/p' <<<"$out")
        kr=$(sed -n 's/^keryx kept after closing: *\([0-9-]*\) KiB.*/\1/p' <<<"$out")
        read -r nc nr < <(sed -n 's/^nginx RSS per idle connection: *\([0-9.]*\) KiB, kept after closing \([0-9-]*\) KiB.*/\1 \2/p' <<<"$out")
        rr=$(sed -n 's/^req\/s ratio keryx\/nginx (-c[0-9]*): *\([0-9.]*\) .*/\1/p' <<<"$out")
        pc=$(sed -n 's/^CPU\/request ratio keryx\/nginx: .*(nginx\/keryx \([0-9.]*\):.*/\1/p' <<<"$out")
        add_row "RSS per idle keep-alive connection (10,000 open)" "${kc:-?} KiB" "${nc:-?} KiB" "$(ratio "${kc:-0}" "${nc:-0}")" \
            "≤ 1.5 KiB" "$(verdict "${kc:-99}" "<=" 1.5)" ""
        add_row "RSS kept after the 10,000 close (after close − idle)" "${kr:-?} KiB" "${nr:-?} KiB" "" \
            "near idle (≤ 4096 KiB)" "$(verdict "${kr:-99999}" "<=" 4096)" ""
        add_row "5,000 concurrent connections, req/s per server core (req/s ratio ${rr:-?})" "" "" "${pc:-?}" "≥ 1.0" \
            "$(verdict "${pc:-0}" ">=" 1.0)" ""
    fi
    log "WebSockets (bench/websocket.sh)"
    out=$(BENCH_DURATION="$DURATION" BENCH_RUNS="$RUNS" BENCH_WRITE=0 "$BENCH_DIR/websocket.sh" 2>&1) ||
        die "bench/websocket.sh failed: $(tail -n 5 <<<"$out")"
    # Per core: keryx CPU per HTTP round trip / per WebSocket round trip; the rate ratio is
    # shown beside it. Both sides are driven by C clients on CPU 1 (wrk; bench/ws-rt.c), which
    # keep keryx saturated, so the CPU per operation is compared at the same load.
    v=$(sed -n 's/^| \*\*WebSocket \/ HTTP\*\* | *\([0-9.]*\) |.*| *\([0-9.]*\) |$/\1 \2/p' <<<"$out")
    read -r a b <<<"$v"
    c=$(awk -v x="${b:-0}" 'BEGIN {printf "%.2f", (x > 0) ? 1 / x : 0}')
    add_row "WebSocket round trips / HTTP keep-alive (keryx), per core" "rate ratio ${a:-?}" "" "$c" "≥ 1.0" \
        "$(verdict "$c" ">=" 1.0)" ""
    v=$(sed -n 's/^broadcast to the last socket: *\([0-9.]*\) ms.*/\1/p' <<<"$out")
    add_row "broadcast to the last of 10,000 subscribers" "${v:-?} ms" "" "" "≤ 50 ms" "$(verdict "${v:-999}" "<=" 50)" ""
}

# ---- main --------------------------------------------------------------------------------

main() {
    check_prereqs
    [[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer"
    write_app
    start_redis
    start_keryx
    start_nginx on
    login
    curl -sf -o /dev/null "$NGINX_URL/api/bench/limited" || die "nginx's rate-limited route fails (Redis EVALSHA)"
    ONE[rss_before]=$(tree_rss_kib "$KERYX_PID")
    throughput_rounds
    sleep 1
    ONE[rss_after]=$(tree_rss_kib "$KERYX_PID")
    stop_process "$KERYX_PID"
    stop_process "$NGINX_PID"
    KERYX_PID=""
    NGINX_PID=""
    keryx_rows
    if [[ "$CALLGRIND" == 1 ]]; then
        build_client
        instruction_rows
    fi
    stop_process "$REDIS_PID"
    REDIS_PID=""
    [[ "$QUICK" == 1 ]] || other_rows

    local rev table
    rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    table=$(
        printf '| figure | keryx | peer | ratio | target | verdict | load generator core busy (keryx / peer run) |\n'
        printf '|---|---:|---:|---:|---|---|---|\n'
        printf '%s\n' "${MATRIX[@]}"
    )
    echo
    echo "Performance matrix — commit $rev — $(nproc) CPUs, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg);"
    echo "servers on CPU $SERVER_CPU, wrk -t1 on CPU $CLIENT_CPU with Redis; $RUNS interleaved rounds of $DURATION, medians."
    echo
    echo "$table"
    if [[ "$WRITE" == 1 ]]; then
        {
            echo
            echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — commit $rev — performance matrix (bench/matrix.sh, BENCH_DURATION=$DURATION BENCH_RUNS=$RUNS)"
            echo
            echo "$table"
        } >>"$BENCH_DIR/RESULTS.md"
    fi
}

main "$@"
