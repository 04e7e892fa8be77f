#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# ratelimit.sh — the cost of keryx's Redis rate limiting: the same tiny action with and without
# `keryx.middleware.rate_limit`, anonymous and logged in, against nginx + its Lua module doing the
# same sliding-window check in the same Redis, plus redis-benchmark running the script alone.
#
# Routes (interleaved wrk runs, in this order):
#   plain     keryx GET /api/bench/plain, no rate limit
#   limited   keryx GET /api/bench/limited, rate limited, anonymous (identity ip:127.0.0.1)
#   loggedin  the same with the session cookie of a logged-in user (POST /api/bench/login made
#             it): the session is read (GETEX) and the identity is user:<id>
#   nginx     nginx (one worker, CPU 0) GET /api/bench/limited: EVALSHA of the same
#             lua/redis/ratelimit.lua with the same key and arguments, through a minimal RESP
#             client over ngx.socket.tcp with keepalive pooling (Debian has no lua-resty-redis),
#             the same X-RateLimit headers and body
# Then each route's Redis commands per request, counted with MONITOR over sequential requests
# (one request at a time, so each command is its own round trip).
#
# It starts its own redis-server (free port, no persistence) and one keryx process serving a
# throw-away app with two actions, `bench:plain` (GET /api/bench/plain) and `bench:limited`
# (GET /api/bench/limited, rate limited), both answering {"ok":true}. The limit is 10^9 per
# minute, so nothing is refused, and RATE_LIMIT_FAIL_OPEN=false, so a Redis failure would show
# as 503s. wrk loads the two routes in interleaved runs (plain, limited, plain, …) with
# bench/wrk-status.lua counting statuses: any reply other than 200, or any socket error, stops
# the bench with exit status 1. Then redis-benchmark runs EVALSHA of lua/redis/ratelimit.lua
# with the same key layout and arguments: what one Redis can do for this script when every
# command is its own round trip.
#
# CPUs (two needed): keryx on CPU 0, wrk on CPU 1, Redis on CPU 1 with wrk (BENCH_REDIS_CPU to
# move it). redis-benchmark runs on CPU 0 — keryx is idle by then — so Redis keeps CPU 1.
# Why this placement, and how to read the figures: bench/README.md.
#
# Environment (the same names as bench/run.sh):
#   BENCH_DURATION   wrk duration per run (default 10s; a bare number means seconds)
#   BENCH_RUNS       measured runs per route (default 3)
#   BENCH_WARMUP     unmeasured warm-up run per route first (default 1s; 0 = none)
#   BENCH_WRITE      1 = append a dated section to bench/RESULTS.md
#   BENCH_REDIS_CPU  the CPU redis-server is pinned to (default 1, wrk's)
#
# Exit status: 0 whatever the PASS/FAIL word says; 1 when Redis or keryx fails to start (or
# dies), a reply is not 200, wrk or redis-benchmark fails, or a prerequisite is missing.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck disable=SC2034  # read by lib.sh's log/warn/die
BENCH_TAG=bench:ratelimit
# shellcheck source=lib.sh disable=SC1091  # followed by `shellcheck -x`
. "$BENCH_DIR/lib.sh"

DURATION=${BENCH_DURATION:-10s}
RUNS=${BENCH_RUNS:-3}
WARMUP=${BENCH_WARMUP:-1s}
WRITE=${BENCH_WRITE:-0}
REDIS_CPU=${BENCH_REDIS_CPU:-1}

SERVER_CPU=0
CLIENT_CPU=1
CONNECTIONS=50
START_TIMEOUT_S=10
MIN_BUSY_PCT=90            # keryx below this was not saturated: a warning is printed
API_ROUTE=/api
ROUTES=(plain limited loggedin nginx) # interleaving order (see the top)
NGINX_MODULES_DIR=/usr/lib/nginx/modules
MONITOR_REQUESTS=50        # sequential requests per route while MONITOR counts commands

TARGET_RATIO=0.7           # limited req/s / plain req/s must be >= this
TARGET_NGINX=2.5           # keryx limited req/s / nginx limited req/s must be >= this
TARGET_LOGGEDIN=0.8        # logged-in req/s / anonymous req/s (both limited) must be >= this

# The rate-limit settings keryx gets, and the same ones redis-benchmark sends.
RL_LIMIT=1000000000        # kx_ratelimit's maximum; at ~10^5 req/s a window never fills
RL_WINDOW_MS=60000
RL_PREFIX=ratelimit
RL_SCRIPT=$ROOT/lua/redis/ratelimit.lua
RB_REQUESTS=200000
RB_CLIENTS=50

CLK_TCK=$(getconf CLK_TCK)
TMP=""
REDIS_PID=""
REDIS_PORT=""
KERYX_PID=""
KERYX_BASE=""
NGINX_BASE=""
NGINX_PID=""
COOKIE=""
WRK_PID=""
SCRIPT_SHA=""
LOAD_AT_START=""

# Redis commands per request, per route (MONITOR): RTT[<route>].
declare -A RTT=()
# Per-run figures, indexed by route then run:
# "rps p99_us keryx_cpu_us keryx_busy redis_cpu_us evalsha_per_req cpu1_busy".
declare -A RESULT=()
# Medians per route: MED[<route>,rps|p99_ms|cpu_us|redis_us|evalsha].
declare -A MED=()
# redis-benchmark: "ops_per_s p50_ms p99_ms".
RB_RESULT=""

# ---------------------------------------------------------------------------------------------
# Setup and teardown
# ---------------------------------------------------------------------------------------------

check_args() {
    [[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$RUNS'"
    [[ "$REDIS_CPU" =~ ^[0-9]+$ ]] || die "BENCH_REDIS_CPU must be a CPU number, not '$REDIS_CPU'"
}

check_prereqs() {
    local cmd
    for cmd in wrk taskset curl awk getconf pgrep sha1sum; do
        command -v "$cmd" >/dev/null || die "'$cmd' not found (Debian: apt-get install wrk util-linux curl procps coreutils)"
    done
    for cmd in redis-server redis-cli redis-benchmark; do
        command -v "$cmd" >/dev/null || die "'$cmd' not found (Debian: apt-get install redis-server redis-tools)"
    done
    taskset -c "$CLIENT_CPU" true 2>/dev/null ||
        die "CPU $CLIENT_CPU is not available: the bench needs two CPUs (keryx on $SERVER_CPU, wrk on $CLIENT_CPU)"
    taskset -c "$REDIS_CPU" true 2>/dev/null || die "BENCH_REDIS_CPU=$REDIS_CPU is not an available CPU"
    [[ -x "$ROOT/keryx" ]] || die "$ROOT/keryx not built (run 'make')"
    [[ -f "$RL_SCRIPT" ]] || die "$RL_SCRIPT missing"
    [[ -f "$BENCH_DIR/wrk-status.lua" ]] || die "$BENCH_DIR/wrk-status.lua missing"
    need_nginx_lua
}

cleanup() { stop_all_and_clean "$WRK_PID" "$KERYX_PID" "$NGINX_PID" "$REDIS_PID"; }

# load_script: SCRIPT LOAD of the exact file bytes (-x: the last argument from stdin), so the
# SHA1 is the one keryx computes from the same file and both share one cached script.
load_script() {
    local file_sha reply
    file_sha=$(sha1sum "$RL_SCRIPT" | awk '{print $1}')
    SCRIPT_SHA=$(rcli -x SCRIPT LOAD <"$RL_SCRIPT")
    [[ "$SCRIPT_SHA" == "$file_sha" ]] ||
        die "SCRIPT LOAD answered '$SCRIPT_SHA', expected the file's SHA1 $file_sha"
    # One call by hand, a batch of one: "now_ms requests-left" — a fresh key leaves limit - 1.
    reply=$(rcli EVALSHA "$SCRIPT_SHA" 1 "$RL_PREFIX:{ip:check}" "$RL_LIMIT" "$RL_WINDOW_MS" | awk '{print $2}')
    [[ "$reply" == "$((RL_LIMIT - 1))" ]] || die "EVALSHA check answered '$reply', expected $((RL_LIMIT - 1)) requests left"
    log "script $SCRIPT_SHA loaded"
}

# write_app: the throw-away app dir keryx serves (--app).
write_app() {
    mkdir -p "$TMP/app/actions"
    cat >"$TMP/app/actions/bench.lua" <<'LUA'
-- Written by bench/ratelimit.sh: two identical actions, one behind the rate limiter.
local keryx = require "keryx"

return {
    keryx.action {
        name = "bench:plain",
        description = "Answer {ok = true}",
        web = { route = "/bench/plain", method = "GET" },
        run = function() return { ok = true } end,
    },
    keryx.action {
        name = "bench:limited",
        description = "Answer {ok = true}, rate limited",
        web = { route = "/bench/limited", method = "GET" },
        middleware = { keryx.middleware.rate_limit },
        run = function() return { ok = true } end,
    },
    keryx.action {
        name = "bench:login",
        description = "Log user 1 in: a session with user_id (its cookie comes back)",
        web = { route = "/bench/login", method = "POST" },
        run = function(_, conn)
            conn:update_session { user_id = 1 }
            return { ok = true }
        end,
    },
}
LUA
}

start_keryx() {
    local port
    port=$(free_port)
    KERYX_BASE="http://127.0.0.1:$port$API_ROUTE/bench"
    log "starting keryx on 127.0.0.1:$port (CPU $SERVER_CPU, app $TMP/app)"
    # cwd = the repo root so ./config.lua applies; the environment overrides what matters here.
    # env → taskset → keryx all exec, so $! is keryx itself.
    (cd "$ROOT" && exec env REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
        WEB_SERVER_PORT="$port" WEB_SERVER_HOST=127.0.0.1 WEB_SERVER_API_ROUTE="$API_ROUTE" \
        WEB_SERVER_WORKERS=1 LOG_LEVEL=warn NODE_ENV=production \
        RATE_LIMIT_ENABLED=true RATE_LIMIT_UNAUTH_LIMIT="$RL_LIMIT" RATE_LIMIT_AUTH_LIMIT="$RL_LIMIT" \
        RATE_LIMIT_WINDOW_MS="$RL_WINDOW_MS" \
        RATE_LIMIT_KEY_PREFIX="$RL_PREFIX" RATE_LIMIT_FAIL_OPEN=false TASKS_ENABLED=false \
        taskset -c "$SERVER_CPU" ./keryx --app "$TMP/app" start) >"$TMP/keryx.log" 2>&1 &
    KERYX_PID=$!
    if ! wait_http "$KERYX_BASE/plain" "$KERYX_PID"; then
        keryx_log_tail
        die "keryx exited or did not answer $KERYX_BASE/plain within ${START_TIMEOUT_S}s"
    fi
    log "keryx pid $KERYX_PID"
}

# login: POST /api/bench/login; COOKIE gets the session cookie (name=value) it set.
login() {
    COOKIE=$(curl -s -D - -o /dev/null -X POST "$KERYX_BASE/login" | tr -d '\r' |
        awk -F': ' 'tolower($1) == "set-cookie" { split($2, a, ";"); print a[1] }' | tail -n 1)
    [[ "$COOKIE" == *=?* ]] || die "POST $KERYX_BASE/login set no session cookie"
    log "logged in: session cookie ${COOKIE%%=*}=…"
}

# route_url <route> / route_header <route> / route_pid <route>: what wrk loads for a route.
route_url() {
    case $1 in
        plain) echo "$KERYX_BASE/plain" ;;
        limited | loggedin) echo "$KERYX_BASE/limited" ;;
        nginx) echo "$NGINX_BASE/limited" ;;
    esac
}
route_header() { [[ $1 == loggedin ]] && echo "Cookie: $COOKIE"; return 0; }
route_pid() { if [[ $1 == nginx ]]; then echo "$NGINX_PID"; else echo "$KERYX_PID"; fi; }

# curl_route <route> <curl args…>: one GET of the route (with its cookie).
curl_route() {
    local r=$1 h
    shift
    h=$(route_header "$r")
    if [[ -n "$h" ]]; then curl -s -H "$h" "$@" "$(route_url "$r")"; else curl -s "$@" "$(route_url "$r")"; fi
}

# check_routes: every route answers 200 with the same body; all but plain carry the rate-limit
# headers with our limit (else the check did not run and the bench would compare plain with
# plain); the logged-in route is counted under user:1, not the IP.
check_routes() {
    local route head body plain_body="" limit keys
    for route in "${ROUTES[@]}"; do
        head=$(curl_route "$route" -D - -o "$TMP/body.$route" | tr -d '\r')
        body=$(<"$TMP/body.$route")
        [[ "$head" == "HTTP/1.1 200"* ]] || die "GET $(route_url "$route") answered '$(head -n 1 <<<"$head")', not 200"
        limit=$(awk -F': ' 'tolower($1) == "x-ratelimit-limit" {print $2}' <<<"$head")
        if [[ $route == plain ]]; then
            plain_body=$body
            [[ -z "$limit" ]] || die "the plain route carries X-RateLimit-Limit: it is rate limited too"
        else
            [[ "$body" == "$plain_body" ]] || die "$route answers '$body', plain '$plain_body'"
            [[ "$limit" == "$RL_LIMIT" ]] ||
                die "$route: X-RateLimit-Limit is '$limit', not $RL_LIMIT: the check did not run as configured"
        fi
    done
    keys=$(rcli --scan --pattern "$RL_PREFIX:{user:1}:*" | wc -l)
    ((keys == 1)) || die "the logged-in route left $keys keys under $RL_PREFIX:{user:1}: not counted as the user"
}

# start_nginx: nginx + Lua doing keryx's check: the same script (by SHA), key, arguments,
# headers and body. A minimal RESP client: EVALSHA out, the reply "now_ms code" in; the
# connection goes back to a keepalive pool (setkeepalive), so each request borrows an open one.
start_nginx() {
    local port prefix="$TMP/nginx" body
    port=$(free_port)
    NGINX_BASE="http://127.0.0.1:$port$API_ROUTE/bench"
    body=$(<"$TMP/body.plain")
    mkdir -p "$prefix"
    cat >"$prefix/nginx.conf" <<NGINX
load_module $NGINX_MODULES_DIR/ndk_http_module.so;
load_module $NGINX_MODULES_DIR/ngx_http_lua_module.so;
daemon off;
master_process on;
worker_processes 1;
worker_cpu_affinity 1;
pid $prefix/nginx.pid;
error_log $prefix/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $prefix/tmp;
    lua_socket_log_errors on;
    server {
        listen 127.0.0.1:$port reuseport backlog=1024;
        keepalive_requests 1000000;
        location = $API_ROUTE/bench/limited {
            default_type application/json;
            content_by_lua_block {
                local SHA, LIMIT, WINDOW = "$SCRIPT_SHA", "$RL_LIMIT", "$RL_WINDOW_MS"
                local key = "$RL_PREFIX:{ip:" .. ngx.var.remote_addr .. "}"
                local sock = ngx.socket.tcp()
                sock:settimeout(5000)
                local ok, err = sock:connect("127.0.0.1", $REDIS_PORT)
                if not ok then ngx.status = 503 ngx.say("redis: ", err) return end
                local ok2 = sock:send({ "*6\r\n\$7\r\nEVALSHA\r\n\$40\r\n", SHA, "\r\n\$1\r\n1\r\n\$", #key, "\r\n", key,
                    "\r\n\$", #LIMIT, "\r\n", LIMIT, "\r\n\$", #WINDOW, "\r\n", WINDOW, "\r\n" })
                local head = ok2 and sock:receive("*l")
                local line = head and head:sub(1, 1) == "\$" and sock:receive("*l")
                local now, code = (line or ""):match("^(%d+) (%-?%d+)\$")
                if not code then ngx.status = 503 ngx.say("redis: ", head) sock:close() return end
                sock:setkeepalive(60000, 100)
                now, code = tonumber(now), tonumber(code)
                local window = tonumber(WINDOW)
                local w = math.floor(now / window)
                ngx.header["X-RateLimit-Limit"] = LIMIT
                ngx.header["X-RateLimit-Remaining"] = code >= 0 and code or 0
                ngx.header["X-RateLimit-Reset"] = math.ceil((w + 1) * window / 1000)
                if code < 0 then
                    ngx.header["Retry-After"] = math.max(1, math.ceil((window - (now - w * window)) / 1000))
                    ngx.status = 429
                end
                ngx.print([==[$body]==])
            }
        }
    }
}
NGINX
    mkdir -p "$prefix/tmp"
    log "starting nginx on 127.0.0.1:$port (CPU $SERVER_CPU, prefix $prefix)"
    taskset -c "$SERVER_CPU" nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" \
        >"$prefix/stdout.log" 2>&1 &
    NGINX_PID=$!
    if ! wait_http "$NGINX_BASE/limited" "$NGINX_PID"; then
        tail -n 20 "$prefix/error.log" "$prefix/stdout.log" >&2 || true
        die "nginx exited or did not answer $NGINX_BASE/limited within ${START_TIMEOUT_S}s"
    fi
    log "nginx master pid $NGINX_PID"
}

# count_round_trips <route>: Redis commands per request, MONITOR over MONITOR_REQUESTS
# sequential requests (curl, one connection): one request at a time, so each command is a
# round trip of its own.
count_round_trips() {
    local route=$1 mon="$TMP/monitor.$1" pid i urls=() n h
    for ((i = 0; i < MONITOR_REQUESTS; i++)); do urls+=("$(route_url "$route")"); done
    rcli MONITOR >"$mon" 2>/dev/null &
    pid=$!
    sleep 0.3
    h=$(route_header "$route")
    if [[ -n "$h" ]]; then curl -s -H "$h" "${urls[@]}" >/dev/null; else curl -s "${urls[@]}" >/dev/null; fi
    sleep 0.3
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # Lines are `<time> [<db> <client>] "CMD" …`; MONITOR's own OK is not one, and the
    # commands a script runs inside Redis (client "lua") are not round trips.
    grep '^[0-9.]* \[' "$mon" | grep -v '^[0-9.]* \[[0-9]* lua\]' | awk '{print $4}' >"$mon.cmds" || true
    n=$(wc -l <"$mon.cmds")
    RTT[$route]=$(awk -v n="$n" -v r="$MONITOR_REQUESTS" 'BEGIN {printf "%.2f", n / r}')
    log "$route: $n Redis commands for $MONITOR_REQUESTS sequential requests: ${RTT[$route]} per request ($(sort "$mon.cmds" | uniq -c | awk '{printf "%s×%s ", $2, $1}'))"
}

# ---------------------------------------------------------------------------------------------
# Readings
# ---------------------------------------------------------------------------------------------

# redis_counters: "evalsha_calls failed_or_rejected" so far, from INFO commandstats (a failed
# EVAL counts too: keryx falls back to EVAL on NOSCRIPT).
redis_counters() {
    rcli INFO commandstats 2>/dev/null | tr -d '\r' | awk -F'[:,=]' '
        $1 == "cmdstat_evalsha" {
            for (i = 2; i < NF; i++) {
                if ($i == "calls") calls = $(i + 1)
                if ($i == "failed_calls" || $i == "rejected_calls") bad += $(i + 1)
            }
        }
        $1 == "cmdstat_eval" {
            for (i = 2; i < NF; i++) if ($i == "failed_calls" || $i == "rejected_calls") bad += $(i + 1)
        }
        END { printf "%d %d\n", calls, bad }'
}

# ---------------------------------------------------------------------------------------------
# Load runs
# ---------------------------------------------------------------------------------------------

# wrk_run <url> <duration> [header]: wrk with the status counter, pinned to the client CPU; its output on
# stdout. Backgrounded and waited for, so a TERM/INT trap fires at once and cleanup can stop it.
wrk_run() {
    local out="$TMP/wrk.out" rc=0
    local hdr=()
    [[ -n "${3:-}" ]] && hdr=(-H "$3")
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"$2" --latency "${hdr[@]}" -s "$BENCH_DIR/wrk-status.lua" "$1" \
        >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    cat "$out"
    return "$rc"
}

# parse_statuses: reads wrk output, prints "ok other codes socket_errors".
parse_statuses() {
    awk '
        $1 == "kx_status_200"   { ok = $2 }
        $1 == "kx_status_other" { other = $2 }
        $1 == "kx_status_codes" { codes = $2 }
        /^ *Socket errors:/     { gsub(/[a-z:,]/, ""); for (i = 1; i <= NF; i++) sock += $i }
        END { printf "%d %d %s %d\n", ok, other, (codes == "") ? "?" : codes, sock }
    '
}

# check_statuses <label> <wrk output>: dies unless every reply was 200 and no socket failed.
check_statuses() {
    local label=$1 out=$2 ok other codes sock
    read -r ok other codes sock <<<"$(parse_statuses <<<"$out")"
    if [[ "$codes" == "?" ]]; then
        echo "$out" >&2
        die "$label: wrk printed no status counts (bench/wrk-status.lua not run?)"
    fi
    if ((other > 0 || sock > 0)); then
        echo "$out" >&2
        keryx_log_tail
        die "$label: $other replies were not 200 (status:count $codes), $sock socket errors, $ok were 200 — a 429 means the limit was reached, a 503 that Redis failed: the figures would not measure the rate-limit check"
    fi
    ((ok > 0)) || { echo "$out" >&2; die "$label: no reply at all"; }
}

warm_up() {
    [[ "$WARMUP" == 0 || "$WARMUP" == 0s ]] && return 0
    local out
    log "warm-up $1 ($WARMUP)"
    # Not in $(…): WRK_PID must be set in this shell for cleanup to see it.
    wrk_run "$(route_url "$1")" "$WARMUP" "$(route_header "$1")" >"$TMP/wrk.txt" || { cat "$TMP/wrk.txt" >&2; die "wrk failed against $1"; }
    out=$(<"$TMP/wrk.txt")
    check_statuses "warm-up $1" "$out"
}

# measure <route> <run>: one measured run, stored in RESULT[<route>,<run>].
measure() {
    local route=$1 run=$2 url pid out
    url=$(route_url "$1")
    pid=$(route_pid "$1")
    local k0 k1 r0 r1 t0 t1 calls0 calls1 bad0 bad1 busy0 tot0 busy1 tot1
    local requests rps p99 keryx_cpu keryx_busy redis_cpu evalsha cpu1_busy
    read -r calls0 bad0 <<<"$(redis_counters)"
    read -r busy0 tot0 <<<"$(cpu_line "$CLIENT_CPU")"
    k0=$(tree_cpu_ticks "$pid"); r0=$(cpu_ticks "$REDIS_PID"); t0=$EPOCHREALTIME
    wrk_run "$url" "$DURATION" "$(route_header "$route")" >"$TMP/wrk.txt" || { cat "$TMP/wrk.txt" >&2; die "wrk failed against $url"; }
    t1=$EPOCHREALTIME; k1=$(tree_cpu_ticks "$pid"); r1=$(cpu_ticks "$REDIS_PID")
    read -r busy1 tot1 <<<"$(cpu_line "$CLIENT_CPU")"
    read -r calls1 bad1 <<<"$(redis_counters)"
    out=$(<"$TMP/wrk.txt")

    kill -0 "$KERYX_PID" 2>/dev/null || { keryx_log_tail; die "keryx died during $route run $run"; }
    kill -0 "$NGINX_PID" 2>/dev/null || die "nginx died during $route run $run"
    kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server died during $route run $run"
    check_statuses "$route run $run" "$out"
    ((bad1 == bad0)) || die "$route run $run: Redis counted $((bad1 - bad0)) failed EVAL/EVALSHA calls"
    # Errors were checked above (check_statuses is stricter than wrk's own count).
    read -r requests rps p99 _ <<<"$(parse_wrk <<<"$out")"

    keryx_cpu=$(per_request_us $((k1 - k0)) "$requests")
    redis_cpu=$(per_request_us $((r1 - r0)) "$requests")
    keryx_busy=$(awk -v t=$((k1 - k0)) -v hz="$CLK_TCK" -v a="$t0" -v b="$t1" \
        'BEGIN {printf "%.0f", t / hz / (b - a) * 100}')
    # wrk counts only replies that arrived: requests in flight at the end were checked too, so
    # a limited run shows slightly more than 1.00.
    evalsha=$(awk -v c=$((calls1 - calls0)) -v n="$requests" 'BEGIN {printf "%.2f", c / n}')
    cpu1_busy=$(awk -v b=$((busy1 - busy0)) -v t=$((tot1 - tot0)) 'BEGIN {printf "%.0f", (t > 0) ? b / t * 100 : 0}')
    # keryx sends the checks of one loop iteration in one call: fewer calls than requests.
    if [[ $route != plain ]] && ((calls1 == calls0)); then
        die "$route run $run: $requests requests but no EVALSHA call in Redis"
    fi
    if [[ $route == plain ]] && ((calls1 != calls0)); then
        die "plain run $run: Redis saw $((calls1 - calls0)) EVALSHA calls: the plain route is rate limited"
    fi
    ((keryx_busy >= MIN_BUSY_PCT)) ||
        warn "$route run $run: the server on CPU only $keryx_busy% of the run (see 'CPU $CLIENT_CPU busy': wrk + Redis, or another process)"
    RESULT[$route,$run]="$rps $p99 $keryx_cpu $keryx_busy $redis_cpu $evalsha $cpu1_busy"
    log "$(printf '%-8s run %d: %8.0f req/s  p99 %6.2f ms  keryx %5.2f us/req busy %3d%%  redis %5.2f us/req  %4.2f EVALSHA/req  CPU%d busy %3d%%' \
        "$route" "$run" "$rps" "$(awk -v u="$p99" 'BEGIN {print u / 1000}')" "$keryx_cpu" "$keryx_busy" \
        "$redis_cpu" "$evalsha" "$CLIENT_CPU" "$cpu1_busy")"
}

# per_request_us <ticks> <requests>: CPU microseconds per request.
per_request_us() {
    awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN {printf "%.2f", (n > 0) ? t / hz * 1000000 / n : 0}'
}

run_all() {
    local route run
    for route in "${ROUTES[@]}"; do warm_up "$route"; done
    for ((run = 1; run <= RUNS; run++)); do
        for route in "${ROUTES[@]}"; do measure "$route" "$run"; done
    done
}

# redis_bench: EVALSHA alone, redis-benchmark on keryx's (now idle) CPU, Redis on its own.
redis_bench() {
    local out calls0 calls1 bad0 bad1 key="$RL_PREFIX:{ip:bench}"
    log "redis-benchmark: EVALSHA $SCRIPT_SHA 1 $key $RL_LIMIT $RL_WINDOW_MS (-n $RB_REQUESTS -c $RB_CLIENTS -P 1, CPU $SERVER_CPU)"
    read -r calls0 bad0 <<<"$(redis_counters)"
    out=$(taskset -c "$SERVER_CPU" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -n "$RB_REQUESTS" \
        -c "$RB_CLIENTS" -P 1 --csv EVALSHA "$SCRIPT_SHA" 1 "$key" "$RL_LIMIT" "$RL_WINDOW_MS" 2>&1) ||
        { echo "$out" >&2; die "redis-benchmark failed"; }
    read -r calls1 bad1 <<<"$(redis_counters)"
    ((bad1 == bad0)) || die "redis-benchmark: $((bad1 - bad0)) EVALSHA calls failed in Redis"
    ((calls1 - calls0 >= RB_REQUESTS)) ||
        { echo "$out" >&2; die "redis-benchmark: Redis saw $((calls1 - calls0)) EVALSHA calls, expected $RB_REQUESTS"; }
    # CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    RB_RESULT=$(awk -F'","' 'NR > 1 && NF >= 8 { printf "%.0f %s %s\n", $2, $5, $7; exit }' <<<"$out")
    [[ -n "$RB_RESULT" ]] || { echo "$out" >&2; die "could not read redis-benchmark's CSV"; }
    log "redis-benchmark: $(awk '{printf "%s ops/s, p50 %s ms, p99 %s ms", $1, $2, $3}' <<<"$RB_RESULT")"
}

# ---------------------------------------------------------------------------------------------
# Figures and report
# ---------------------------------------------------------------------------------------------

# column <route> <n>: the n-th per-run figure of every run (see RESULT).
column() {
    local run
    for ((run = 1; run <= RUNS; run++)); do
        awk -v n="$2" '{print $n}' <<<"${RESULT[$1,$run]}"
    done
}

summarise() {
    local r
    for r in "${ROUTES[@]}"; do
        MED[$r,rps]=$(column "$r" 1 | median | awk '{printf "%.0f", $1}')
        MED[$r,p99_ms]=$(column "$r" 2 | median | awk '{printf "%.2f", $1 / 1000}')
        MED[$r,cpu_us]=$(column "$r" 3 | median | awk '{printf "%.2f", $1}')
        MED[$r,redis_us]=$(column "$r" 5 | median | awk '{printf "%.2f", $1}')
        MED[$r,evalsha]=$(column "$r" 6 | median | awk '{printf "%.2f", $1}')
    done
}

route_label() {
    case $1 in
        plain) echo "keryx plain (\`GET $API_ROUTE/bench/plain\`)" ;;
        limited) echo "keryx limited, anonymous (\`GET $API_ROUTE/bench/limited\`, rate_limit)" ;;
        loggedin) echo "keryx limited, logged in (the same with a session cookie)" ;;
        nginx) echo "nginx + Lua limited (EVALSHA of the same script per request)" ;;
    esac
}

# keryx_bound_ratio: plain CPU per request / limited CPU per request — the req/s ratio keryx
# would reach if its own core were the only limit (wrk and Redis on cores of their own).
keryx_bound_ratio() { ratio "${MED[plain,cpu_us]}" "${MED[limited,cpu_us]}"; }

loggedin_ratio() { ratio "${MED[loggedin,rps]}" "${MED[limited,rps]}"; }
nginx_ratio() { ratio "${MED[limited,rps]}" "${MED[nginx,rps]}"; }

markdown_tables() {
    local r run rps_ratio kb_ratio rps p99 cpu busy redis evalsha cpu1 rb_ops rb_p50 rb_p99
    rps_ratio=$(ratio "${MED[limited,rps]}" "${MED[plain,rps]}")
    kb_ratio=$(keryx_bound_ratio)
    read -r rb_ops rb_p50 rb_p99 <<<"$RB_RESULT"
    echo "| route | req/s (median) | p99 latency (median) | server CPU per request (median) | Redis CPU per request (median) | EVALSHA calls per request | Redis commands per request (MONITOR, sequential) | non-200 |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for r in "${ROUTES[@]}"; do
        printf '| %s | %s | %s ms | %s µs | %s µs | %s | %s | 0 |\n' "$(route_label "$r")" "${MED[$r,rps]}" \
            "${MED[$r,p99_ms]}" "${MED[$r,cpu_us]}" "${MED[$r,redis_us]}" "${MED[$r,evalsha]}" "${RTT[$r]}"
    done
    printf '| **limited / plain** | %s (target ≥ %s: %s) | %s | %s (keryx-bound req/s ratio %s: %s) | | | |\n' \
        "$rps_ratio" "$TARGET_RATIO" "$(verdict "$rps_ratio" ">=" "$TARGET_RATIO")" \
        "$(ratio "${MED[limited,p99_ms]}" "${MED[plain,p99_ms]}")" \
        "$(ratio "${MED[limited,cpu_us]}" "${MED[plain,cpu_us]}")" \
        "$kb_ratio" "$(verdict "$kb_ratio" ">=" "$TARGET_RATIO")"
    printf '| **logged in / anonymous** | %s (target ≥ %s: %s) | | | | | | |\n' "$(loggedin_ratio)" "$TARGET_LOGGEDIN" \
        "$(verdict "$(loggedin_ratio)" ">=" "$TARGET_LOGGEDIN")"
    printf '| **keryx limited / nginx limited** | %s (target ≥ %s: %s) | | | | | | |\n' "$(nginx_ratio)" "$TARGET_NGINX" \
        "$(verdict "$(nginx_ratio)" ">=" "$TARGET_NGINX")"
    echo
    echo "| redis-benchmark EVALSHA ratelimit.lua (\`-n $RB_REQUESTS -c $RB_CLIENTS -P 1\`, CPU $SERVER_CPU) | ops/s | p50 latency | p99 latency | keryx limited req/s as a share of it |"
    echo "|---|---:|---:|---:|---:|"
    printf '| one Redis on CPU %s, one round trip per check | %s | %s ms | %s ms | %s%% |\n' "$REDIS_CPU" \
        "$rb_ops" "$rb_p50" "$rb_p99" \
        "$(awk -v a="${MED[limited,rps]}" -v b="$rb_ops" 'BEGIN {printf "%.0f", (b > 0) ? a / b * 100 : 0}')"
    echo
    echo "| run | route | req/s | p99 latency | keryx CPU per request | keryx CPU busy | Redis CPU per request | EVALSHA per request | CPU $CLIENT_CPU busy (wrk + Redis + others) |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    for ((run = 1; run <= RUNS; run++)); do
        for r in "${ROUTES[@]}"; do
            read -r rps p99 cpu busy redis evalsha cpu1 <<<"${RESULT[$r,$run]}"
            printf '| %d | %s | %.0f | %.2f ms | %s µs | %s%% | %s µs | %s | %s%% |\n' "$run" "$r" "$rps" \
                "$(awk -v u="$p99" 'BEGIN {print u / 1000}')" "$cpu" "$busy" "$redis" "$evalsha" "$cpu1"
        done
    done
}

machine_line() {
    local cpu redis_version
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
    redis_version=$(redis-server --version 2>/dev/null | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^v=/) print substr($i, 3)}')
    printf '%s, %s CPUs, Linux %s, load average %s at start; Redis %s (no persistence); keryx on CPU %s, wrk -t1 -c%s -d%s on CPU %s, Redis on CPU %s; %s run(s) per route, interleaved' \
        "${cpu:-unknown CPU}" "$(nproc)" "$(uname -r)" "$LOAD_AT_START" "${redis_version:-?}" \
        "$SERVER_CPU" "$CONNECTIONS" "$DURATION" "$CLIENT_CPU" "$REDIS_CPU" "$RUNS"
}

report() {
    local tables rps_ratio kb_ratio
    summarise
    tables=$(markdown_tables)
    rps_ratio=$(ratio "${MED[limited,rps]}" "${MED[plain,rps]}")
    kb_ratio=$(keryx_bound_ratio)
    echo
    echo "Rate limiting — machine: $(machine_line)"
    echo
    echo "$tables"
    echo
    printf 'req/s ratio limited/plain:           %s  (target >= %s)  %s\n' "$rps_ratio" "$TARGET_RATIO" \
        "$(verdict "$rps_ratio" ">=" "$TARGET_RATIO")"
    printf 'keryx-bound ratio (CPU/req plain/limited): %s  (same target, keryx core alone)  %s\n' "$kb_ratio" \
        "$(verdict "$kb_ratio" ">=" "$TARGET_RATIO")"
    printf 'req/s ratio logged in/anonymous:     %s  (target >= %s)  %s\n' "$(loggedin_ratio)" "$TARGET_LOGGEDIN" \
        "$(verdict "$(loggedin_ratio)" ">=" "$TARGET_LOGGEDIN")"
    printf 'req/s ratio keryx limited/nginx:     %s  (target >= %s)  %s\n' "$(nginx_ratio)" "$TARGET_NGINX" \
        "$(verdict "$(nginx_ratio)" ">=" "$TARGET_NGINX")"
    printf 'Redis commands per request:          plain %s, anonymous %s, logged in %s, nginx %s\n' \
        "${RTT[plain]}" "${RTT[limited]}" "${RTT[loggedin]}" "${RTT[nginx]}"
    printf 'redis-benchmark EVALSHA:             %s ops/s\n' "${RB_RESULT%% *}"
    if [[ "$WRITE" == 1 ]]; then write_results "$tables"; fi
}

# write_results <tables>: appends a dated section to bench/RESULTS.md.
write_results() {
    local rev
    rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    {
        echo
        echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — commit $rev — rate limiting (bench/ratelimit.sh)"
        echo
        echo "$(machine_line)."
        echo
        echo "$1"
    } >>"$BENCH_DIR/RESULTS.md"
    log "appended to $BENCH_DIR/RESULTS.md"
}

main() {
    check_args
    check_prereqs
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    LOAD_AT_START=$(awk '{print $1, $2, $3}' /proc/loadavg)
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/keryx-bench-rl.XXXXXX")
    start_redis
    load_script
    write_app
    start_keryx
    login
    curl -s -o "$TMP/body.plain" "$KERYX_BASE/plain"
    start_nginx
    check_routes
    local r
    for r in "${ROUTES[@]}"; do count_round_trips "$r"; done
    run_all
    redis_bench
    report
}

main "$@"
