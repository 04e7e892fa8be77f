#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# websocket.sh — keryx's WebSockets: memory per idle socket, broadcast fan-out latency, and the
# `status` action over a WebSocket against the same action over HTTP keep-alive.
#
# It starts its own redis-server (free port, no persistence) and one keryx process (CPU 0,
# NODE_ENV=production, WEB_SERVER_MAX_CONNECTIONS=20000, WS_MAX_MESSAGES_PER_SECOND=100000000) serving a
# throw-away app: the channel `room:bench` (anyone may join; one presence key for all sockets,
# see bench/README.md for why) and a probe action reporting the Lua heap. Clients run on CPU 1.
#
#   1. Fan-out (bench/ws-fanout.c, compiled here; BENCH_WS_FANOUT_CLIENT=node uses
#      bench/ws-load.js instead): keryx's VmRSS, then BENCH_WS_CONNECTIONS idle sockets each
#      subscribed to room:bench, VmRSS again → RSS per socket (target ≤ 8 KiB). Then
#      BENCH_WS_BROADCASTS broadcasts, each a PUBLISH on keryx:pubsub (the client's own
#      connection to Redis) with the send time in the message; the time until the LAST socket
#      has it, median over broadcasts (target ≤ 50 ms). Then as many bursts: BENCH_WS_BURST
#      PUBLISHes in one write to Redis; the time until the last socket has the last of them,
#      and keryx's CPU per socket per message. When perf is installed, one more broadcast and
#      one more burst, untimed, count keryx's write syscalls per socket per message.
#   2. Round trips, on a fresh keryx: 50 WebSockets each sending `status` actions back to back,
#      one in flight per socket (bench/ws-rt.c, C and epoll like wrk, compiled into build/;
#      BENCH_WS_RT_CLIENT=node uses `bench/ws-load.js actions` instead, npm `ws`) against
#      `wrk -t1 -c50` on GET /api/status; runs interleaved, medians, and their ratio.
#
# npm `ws` is installed into bench/node_modules when missing, only if a Node client is used.
#
# keryx's CPU time is read from /proc/<pid>/task/*/schedstat (ns, every thread).
# How to read the figures: bench/README.md ("WebSockets").
#
# Environment (the same names as bench/run.sh where they mean the same):
#   BENCH_DURATION          length of each measured round-trip run (default 10s; s or m suffix,
#                           a bare number means seconds)
#   BENCH_RUNS              measured round-trip runs per transport (default 3)
#   BENCH_WARMUP            unmeasured round-trip run per transport first (default 1s; 0 = none)
#   BENCH_WRITE             1 = append a dated section to bench/RESULTS.md
#   BENCH_WS_CONNECTIONS    idle sockets for the memory and fan-out figures (default 10000)
#   BENCH_WS_BROADCASTS     broadcasts timed (default 5; the median is reported)
#   BENCH_WS_FANOUT_CLIENT  c (default) or node
#   BENCH_WS_RT_CLIENT      c (default: build/ws-rt) or node (ws-load.js actions)
#   BENCH_WS_BURST          PUBLISHes per burst (default 10; 0 = no bursts; the C client only)
#
# Exit status: 0 whatever the PASS/FAIL words say; 1 when Redis or keryx fails to start (or
# dies), a client reports a failure (refused upgrade, closed socket, wrong reply, a broadcast
# that misses a socket), wrk fails or sees a non-2xx reply, or a prerequisite is missing.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck disable=SC2034  # read by lib.sh's log/warn/die
BENCH_TAG=bench:websocket
# shellcheck source=lib.sh disable=SC1091  # followed by `shellcheck -x`
. "$BENCH_DIR/lib.sh"

DURATION=${BENCH_DURATION:-10s}
RUNS=${BENCH_RUNS:-3}
WARMUP=${BENCH_WARMUP:-1s}
WRITE=${BENCH_WRITE:-0}
CONNECTIONS=${BENCH_WS_CONNECTIONS:-10000}
BROADCASTS=${BENCH_WS_BROADCASTS:-5}
FANOUT_CLIENT=${BENCH_WS_FANOUT_CLIENT:-c}
RT_CLIENT=${BENCH_WS_RT_CLIENT:-c}
BURST=${BENCH_WS_BURST:-10}

SERVER_CPU=0
CLIENT_CPU=1
REDIS_CPU=1                # with the clients: during the timed parts Redis has next to nothing to do
RT_SOCKETS=50              # round trips: WebSockets, and wrk connections
CHANNEL=room:bench
API_ROUTE=/api
STATUS_PATH=$API_ROUTE/status
PROBE_PATH=$API_ROUTE/bench/lua-heap
MAX_CONNECTIONS=20000      # keryx's WEB_SERVER_MAX_CONNECTIONS
FD_WANTED=65536
CONCURRENCY=200            # handshakes in flight while opening the idle sockets (keryx's backlog is 1024)
CLIENT_RAMP_MS=500         # unmeasured start of each WebSocket round-trip run (50 handshakes)
START_TIMEOUT_S=10
MIN_BUSY_PCT=90            # keryx below this during round trips was not saturated: a warning

TARGET_RSS_KIB=8           # RSS per idle socket must be <= this
TARGET_LAST_MS=50          # broadcast to the last socket must take <= this (the performance issue)

TMP=""
REDIS_PID=""
REDIS_PORT=""
KERYX_PID=""
KERYX_PORT=""
CHILD_PID=""               # the client or wrk currently running
LOAD_AT_START=""
DURATION_MS=0
WARMUP_MS=0

# Fan-out figures, from the client's JSON: FAN[<field>] and FAN[broadcasts.<i>.<field>].
declare -A FAN=()
# Round-trip runs: RT[<transport>,<run>] = "ops_per_s p50_ms p99_ms cpu_us_per_op keryx_busy cpu1_busy".
declare -A RT=()
declare -A MED=()

# ---------------------------------------------------------------------------------------------
# Setup and teardown
# ---------------------------------------------------------------------------------------------

# duration_ms <d>: 10 / 10s → 10000, 2m → 120000; empty on anything else.
duration_ms() {
    case "$1" in
        *[!0-9sm]* | "" | s | m) ;;
        *m) [[ "${1%m}" =~ ^[0-9]+$ ]] && echo $((${1%m} * 60000)) ;;
        *s) [[ "${1%s}" =~ ^[0-9]+$ ]] && echo $((${1%s} * 1000)) ;;
        *) [[ "$1" =~ ^[0-9]+$ ]] && echo $(($1 * 1000)) ;;
    esac
}

check_args() {
    [[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$RUNS'"
    [[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_WS_CONNECTIONS must be a positive integer"
    ((CONNECTIONS <= 25000)) || die "BENCH_WS_CONNECTIONS is at most 25000 (one client address, ephemeral ports)"
    if ! [[ "$BROADCASTS" =~ ^[1-9][0-9]*$ ]] || ((BROADCASTS > 100)); then die "BENCH_WS_BROADCASTS must be 1..100"; fi
    case "$FANOUT_CLIENT" in c|node) ;; *) die "BENCH_WS_FANOUT_CLIENT must be c or node";; esac
    case "$RT_CLIENT" in c|node) ;; *) die "BENCH_WS_RT_CLIENT must be c or node";; esac
    if ! [[ "$BURST" =~ ^[0-9]+$ ]] || ((BURST > 100)); then die "BENCH_WS_BURST must be 0..100"; fi
    DURATION_MS=$(duration_ms "$DURATION")
    if [[ -z "$DURATION_MS" ]] || ((DURATION_MS == 0)); then die "BENCH_DURATION must be like 10, 10s or 1m, not '$DURATION'"; fi
    WARMUP_MS=$(duration_ms "$WARMUP")
    [[ -n "$WARMUP_MS" ]] || die "BENCH_WARMUP must be like 1, 1s or 0, not '$WARMUP'"
}

# node_client_used: whether either client is the Node one (ws-load.js, npm `ws`).
node_client_used() { [[ "$FANOUT_CLIENT" == node || "$RT_CLIENT" == node ]]; }

check_prereqs() {
    local cmd
    # node reads the clients' JSON; npm only installs ws-load.js's `ws` when a Node client runs.
    for cmd in wrk taskset curl awk cc node; do
        command -v "$cmd" >/dev/null || die "'$cmd' not found (Debian: apt-get install wrk util-linux curl gcc nodejs)"
    done
    if node_client_used; then
        command -v npm >/dev/null || die "'npm' not found (Debian: apt-get install npm), needed for the Node clients"
    fi
    for cmd in redis-server redis-cli; do
        command -v "$cmd" >/dev/null || die "'$cmd' not found (Debian: apt-get install redis-server redis-tools)"
    done
    taskset -c "$CLIENT_CPU" true 2>/dev/null ||
        die "CPU $CLIENT_CPU is not available: the bench needs two CPUs (keryx on $SERVER_CPU, clients on $CLIENT_CPU)"
    [[ -x "$ROOT/keryx" ]] || die "$ROOT/keryx not built (run 'make')"
    [[ -r /proc/self/schedstat ]] || die "/proc/<pid>/schedstat missing (kernel without CONFIG_SCHED_INFO)"
}

# raise_fd_limit: every socket is a descriptor in keryx and in the client (both inherit this).
raise_fd_limit() {
    local need=$((CONNECTIONS + 200))
    ulimit -n "$FD_WANTED" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    (($(ulimit -n) >= need)) ||
        die "open-file limit is $(ulimit -n) (hard $(ulimit -Hn)); $need needed for $CONNECTIONS sockets"
    log "open-file limit $(ulimit -n)"
}

# ensure_node_modules: npm `ws`, for ws-load.js; only when a Node client runs.
ensure_node_modules() {
    node_client_used || return 0
    [[ -f "$BENCH_DIR/node_modules/ws/package.json" ]] && return 0
    log "installing bench/node_modules (npm ws, from bench/package.json)"
    npm install --prefix "$BENCH_DIR" --no-audit --no-fund >&2 || die "npm install --prefix bench failed"
}

build_clients() {
    if [[ "$FANOUT_CLIENT" == c ]]; then
        cc -O2 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "$TMP/ws-fanout" "$BENCH_DIR/ws-fanout.c" ||
            die "cannot compile bench/ws-fanout.c"
    fi
    if [[ "$RT_CLIENT" == c ]]; then
        mkdir -p "$ROOT/build"
        cc -O2 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "$ROOT/build/ws-rt" "$BENCH_DIR/ws-rt.c" ||
            die "cannot compile bench/ws-rt.c"
    fi
}

cleanup() { stop_all_and_clean "$CHILD_PID" "$KERYX_PID" "$REDIS_PID"; }

# write_app: the throw-away app keryx serves (--app). The built-in `status` action comes with
# keryx itself.
write_app() {
    mkdir -p "$TMP/app/actions" "$TMP/app/channels"
    cat >"$TMP/app/channels/bench.lua" <<LUA
-- Written by bench/websocket.sh. Anyone may join; every socket shares one presence key, so only
-- the first subscription announces a join (with the default per-connection key, each of N
-- subscriptions would broadcast a join to every socket already there: N²/2 frames).
local keryx = require "keryx"

return keryx.channel {
    name = "$CHANNEL",
    description = "bench/websocket.sh broadcast target",
    presence_key = function() return "bench" end,
}
LUA
    cat >"$TMP/app/actions/bench.lua" <<LUA
-- Written by bench/websocket.sh: the Lua heap in KiB, before and after a full collection.
local keryx = require "keryx"

return keryx.action {
    name = "bench:lua_heap",
    description = "Lua heap (KiB): kib = now, live_kib = after a full garbage collection",
    web = { route = "/bench/lua-heap", method = "GET" },
    run = function()
        local kib = collectgarbage("count")
        collectgarbage("collect")
        return { kib = kib, live_kib = collectgarbage("count") }
    end,
}
LUA
}

start_keryx() {
    KERYX_PORT=$(free_port)
    log "starting keryx on 127.0.0.1:$KERYX_PORT (CPU $SERVER_CPU, app $TMP/app)"
    # cwd = the repo root so ./config.lua applies; env → taskset → keryx all exec: $! is keryx.
    (cd "$ROOT" && exec env REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
        WEB_SERVER_PORT="$KERYX_PORT" WEB_SERVER_HOST=127.0.0.1 WEB_SERVER_API_ROUTE="$API_ROUTE" \
        WEB_SERVER_WORKERS=1 LOG_LEVEL=warn NODE_ENV=production \
        WEB_SERVER_MAX_CONNECTIONS="$MAX_CONNECTIONS" WS_MAX_MESSAGES_PER_SECOND=100000000 \
        taskset -c "$SERVER_CPU" ./keryx --app "$TMP/app" start) >>"$TMP/keryx.log" 2>&1 &
    KERYX_PID=$!
    if ! wait_http "http://127.0.0.1:$KERYX_PORT$STATUS_PATH" "$KERYX_PID"; then
        keryx_log_tail
        die "keryx exited or did not answer $STATUS_PATH within ${START_TIMEOUT_S}s"
    fi
    log "keryx pid $KERYX_PID, RSS $(awk '/^VmRSS:/ {print $2}' "/proc/$KERYX_PID/status") KiB"
}

stop_keryx() {
    alive keryx "$KERYX_PID"
    stop_process "$KERYX_PID"
    KERYX_PID=""
}

# alive <what> <pid>: dies when it is gone.
alive() {
    kill -0 "$2" 2>/dev/null && return 0
    [[ $1 == keryx ]] && keryx_log_tail
    die "$1 died"
}

# ---------------------------------------------------------------------------------------------
# Readings
# ---------------------------------------------------------------------------------------------

# keryx_cpu_ns: nanoseconds on CPU of every keryx thread so far.
keryx_cpu_ns() {
    cat /proc/"$KERYX_PID"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'
}

busy_pct() { awk -v b="$1" -v t="$2" 'BEGIN {printf "%.0f", (t > 0) ? b / t * 100 : 0}'; }

# flatten_json <file>: "key value" lines; arrays of objects as "name.<i>.key value".
# shellcheck disable=SC2016  # JavaScript, not shell
flatten_json() {
    node -e '
        const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        const out = (k, v) => { if (typeof v !== "object") console.log(k, v); };
        for (const [k, v] of Object.entries(r)) {
            if (Array.isArray(v)) v.forEach((o, i) => Object.entries(o).forEach(([kk, vv]) => out(`${k}.${i}.${kk}`, vv)));
            else out(k, v);
        }' "$1"
}

# run_child <out> <cmd…>: runs a client in the background (so a TERM reaches cleanup at once)
# with stdout to <out>; returns its exit status.
run_child() {
    local out=$1 rc=0
    shift
    "$@" >"$out" &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    return "$rc"
}

# ---------------------------------------------------------------------------------------------
# 1. Idle sockets and broadcasts
# ---------------------------------------------------------------------------------------------

run_fanout() {
    local out="$TMP/fanout.json" key value count=0
    # Counting keryx's writes needs perf and its syscall tracepoints; without them: not counted.
    if command -v perf >/dev/null && perf stat -e syscalls:sys_enter_sendto true >/dev/null 2>&1; then count=1; fi
    log "fan-out: $CONNECTIONS sockets on $CHANNEL, $BROADCASTS broadcasts (client: $FANOUT_CLIENT, CPU $CLIENT_CPU)"
    if [[ "$FANOUT_CLIENT" == c ]]; then
        run_child "$out" taskset -c "$CLIENT_CPU" "$TMP/ws-fanout" --host 127.0.0.1 --port "$KERYX_PORT" \
            --keryx-pid "$KERYX_PID" --redis-port "$REDIS_PORT" --connections "$CONNECTIONS" \
            --broadcasts "$BROADCASTS" --channel "$CHANNEL" --concurrency "$CONCURRENCY" --probe "$PROBE_PATH" \
            --burst "$BURST" --count-syscalls "$count" ||
            { keryx_log_tail; die "the fan-out client failed"; }
    else
        run_child "$out" taskset -c "$CLIENT_CPU" node "$BENCH_DIR/ws-load.js" fanout \
            --url "ws://127.0.0.1:$KERYX_PORT/" --keryx-pid "$KERYX_PID" --redis-port "$REDIS_PORT" \
            --connections "$CONNECTIONS" --broadcasts "$BROADCASTS" --channel "$CHANNEL" \
            --concurrency "$CONCURRENCY" --probe "http://127.0.0.1:$KERYX_PORT$PROBE_PATH" ||
            { keryx_log_tail; die "the fan-out client failed"; }
    fi
    alive keryx "$KERYX_PID"
    while read -r key value; do FAN[$key]=$value; done < <(flatten_json "$out")
    [[ -n "${FAN[last_ms_median]:-}" && -n "${FAN[rss_after_kib]:-}" ]] || die "the fan-out client printed no figures"
}

# ---------------------------------------------------------------------------------------------
# 2. Round trips: WebSocket vs HTTP keep-alive
# ---------------------------------------------------------------------------------------------

# ws_run <duration_ms> <key>: one WebSocket run; RT[<key>] = "ops_per_s p50_ms p99_ms
# cpu_us_per_op keryx_busy cpu1_busy". (Not called in $(…): CHILD_PID must be set in this shell.)
ws_run() {
    local out="$TMP/actions.json" b0 t0 b1 t1 key value
    local -A R=()
    read -r b0 t0 <<<"$(cpu_line "$CLIENT_CPU")"
    local -a client=(node "$BENCH_DIR/ws-load.js" actions)
    [[ "$RT_CLIENT" == c ]] && client=("$ROOT/build/ws-rt")
    run_child "$out" taskset -c "$CLIENT_CPU" "${client[@]}" \
        --url "ws://127.0.0.1:$KERYX_PORT/" --keryx-pid "$KERYX_PID" --sockets "$RT_SOCKETS" \
        --duration-ms "$1" --warmup-ms "$CLIENT_RAMP_MS" || { keryx_log_tail; die "the WebSocket round-trip client failed"; }
    read -r b1 t1 <<<"$(cpu_line "$CLIENT_CPU")"
    alive keryx "$KERYX_PID"
    while read -r key value; do R[$key]=$value; done < <(flatten_json "$out")
    # CPU 1 over the whole client run (its ramp included): close enough to the measured window.
    RT[$2]=$(printf '%.0f %.3f %.3f %.2f %.0f %s' "${R[rps]}" "${R[p50_ms]}" "${R[p99_ms]}" \
        "${R[keryx_cpu_us_per_op]}" "${R[keryx_busy_pct]}" "$(busy_pct $((b1 - b0)) $((t1 - t0)))")
}

# http_run <duration> <key>: the same for wrk on GET /api/status.
http_run() {
    local out="$TMP/wrk.txt" n0 n1 b0 t0 b1 t1 w0 w1 requests rps p99 errors p50
    read -r b0 t0 <<<"$(cpu_line "$CLIENT_CPU")"
    n0=$(keryx_cpu_ns); w0=$EPOCHREALTIME
    run_child "$out" taskset -c "$CLIENT_CPU" wrk -t1 -c"$RT_SOCKETS" -d"$1" --latency \
        "http://127.0.0.1:$KERYX_PORT$STATUS_PATH" || { cat "$out" >&2; die "wrk failed"; }
    w1=$EPOCHREALTIME; n1=$(keryx_cpu_ns)
    read -r b1 t1 <<<"$(cpu_line "$CLIENT_CPU")"
    alive keryx "$KERYX_PID"
    read -r requests rps p99 errors <<<"$(parse_wrk <"$out")"
    ((errors == 0)) || { cat "$out" >&2; die "wrk: $errors socket errors or non-2xx replies"; }
    ((requests > 0)) || { cat "$out" >&2; die "wrk completed no request"; }
    p50=$(awk '$1 == "50%" {v = $2; n = v + 0
            if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000
            printf "%.3f", n}' "$out")
    RT[$2]=$(awk -v rps="$rps" -v p50="$p50" -v p99="$p99" -v ns=$((n1 - n0)) -v n="$requests" -v a="$w0" \
        -v b="$w1" -v cpu1="$(busy_pct $((b1 - b0)) $((t1 - t0)))" \
        'BEGIN {printf "%.0f %.3f %.3f %.2f %.0f %s", rps, p50, p99 / 1000, ns / 1000 / n, ns / 1e9 / (b - a) * 100, cpu1}')
}

run_roundtrips() {
    local run
    if ((WARMUP_MS > 0)); then
        log "round trips: warm-up ($WARMUP per transport)"
        ws_run "$WARMUP_MS" warm
        http_run "$((WARMUP_MS < 1000 ? 1 : WARMUP_MS / 1000))s" warm
        unset 'RT[warm]'
    fi
    for ((run = 1; run <= RUNS; run++)); do
        ws_run "$DURATION_MS" "ws,$run"
        log_rt ws "$run" "${RT[ws,$run]}"
        http_run "$DURATION" "http,$run"
        log_rt http "$run" "${RT[http,$run]}"
    done
}

log_rt() {
    local ops p50 p99 cpu busy cpu1
    read -r ops p50 p99 cpu busy cpu1 <<<"$3"
    log "$(printf '%-4s run %d: %7.0f ops/s  p50 %6.2f ms  p99 %6.2f ms  keryx %5.2f us/op busy %3d%%  CPU%d busy %3d%%' \
        "$1" "$2" "$ops" "$p50" "$p99" "$cpu" "$busy" "$CLIENT_CPU" "$cpu1")"
    ((busy >= MIN_BUSY_PCT)) ||
        warn "$1 run $2: keryx on CPU only $busy% of the run (the client, or another process, was the limit)"
}

# ---------------------------------------------------------------------------------------------
# Figures and report
# ---------------------------------------------------------------------------------------------

rt_column() {
    local run
    for ((run = 1; run <= RUNS; run++)); do awk -v n="$2" '{print $n}' <<<"${RT[$1,$run]}"; done
}

summarise() {
    local t
    for t in ws http; do
        MED[$t,ops]=$(rt_column "$t" 1 | median | awk '{printf "%.0f", $1}')
        MED[$t,p50]=$(rt_column "$t" 2 | median | awk '{printf "%.2f", $1}')
        MED[$t,p99]=$(rt_column "$t" 3 | median | awk '{printf "%.2f", $1}')
        MED[$t,cpu]=$(rt_column "$t" 4 | median | awk '{printf "%.2f", $1}')
    done
    MED[rss_per_conn]=$(awk -v a="${FAN[rss_after_kib]}" -v b="${FAN[rss_before_kib]}" -v n="$CONNECTIONS" \
        'BEGIN {printf "%.2f", (a - b) / n}')
    MED[lua_per_conn]=$(awk -v a="${FAN[lua_heap_after_kib]}" -v b="${FAN[lua_heap_before_kib]}" -v n="$CONNECTIONS" \
        'BEGIN {printf "%.2f", (a - b) / n}')
    MED[lua_live_per_conn]=$(awk -v a="${FAN[lua_heap_after_live_kib]}" -v b="${FAN[lua_heap_before_kib]}" -v n="$CONNECTIONS" \
        'BEGIN {printf "%.2f", (a - b) / n}')
    MED[last]=$(printf '%.1f' "${FAN[last_ms_median]}")
    MED[ratio]=$(ratio "${MED[ws,ops]}" "${MED[http,ops]}")
}

kib_mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }

# shellcheck disable=SC2016  # the backquotes are markdown
markdown_tables() {
    local i run t ops p50 p99 cpu busy cpu1
    echo "| figure | measured | target |"
    echo "|---|---:|---|"
    printf '| keryx RSS per idle WebSocket (%d sockets, each subscribed to `%s`) | %s KiB | ≤ %s KiB: %s |\n' \
        "$CONNECTIONS" "$CHANNEL" "${MED[rss_per_conn]}" "$TARGET_RSS_KIB" \
        "$(verdict "${MED[rss_per_conn]}" "<=" "$TARGET_RSS_KIB")"
    printf '| broadcast → last of %d sockets (median of %d) | %s ms | ≤ %s ms: %s |\n' "$CONNECTIONS" "$BROADCASTS" \
        "${MED[last]}" "$TARGET_LAST_MS" "$(verdict "${MED[last]}" "<=" "$TARGET_LAST_MS")"
    if [[ -n "${FAN[burst_last_ms_median]:-}" ]]; then
        printf '| burst of %d `PUBLISH`es in one write → last of %d sockets has the last (median of %d) | %.1f ms | |\n' \
            "$BURST" "$CONNECTIONS" "$BROADCASTS" "${FAN[burst_last_ms_median]}"
    fi
    printf '| `status` round trips/s over WebSocket (%d sockets, one in flight each; median of %d) | %s | |\n' \
        "$RT_SOCKETS" "$RUNS" "${MED[ws,ops]}"
    printf '| `GET %s` req/s over HTTP keep-alive (`wrk -t1 -c%d`; median of %d) | %s | |\n' "$STATUS_PATH" \
        "$RT_SOCKETS" "$RUNS" "${MED[http,ops]}"
    printf '| **WebSocket / HTTP** round trips | %s | |\n' "${MED[ratio]}"
    echo
    echo "| memory | VmRSS | Lua heap (live after full GC) |"
    echo "|---|---:|---:|"
    printf '| keryx started, no socket | %s KiB | %.0f KiB |\n' "${FAN[rss_before_kib]}" "${FAN[lua_heap_before_kib]}"
    printf '| %d sockets open and subscribed (1 s later) | %s KiB | %.0f KiB (%.0f KiB) |\n' "$CONNECTIONS" \
        "${FAN[rss_after_kib]}" "${FAN[lua_heap_after_kib]}" "${FAN[lua_heap_after_live_kib]}"
    printf '| **per socket** | **%s KiB** | %s KiB (%s KiB live) |\n' "${MED[rss_per_conn]}" "${MED[lua_per_conn]}" \
        "${MED[lua_live_per_conn]}"
    echo
    printf 'Opening and subscribing the %d sockets took %.1f s (%s in flight), keryx CPU %.0f µs per socket.\n' \
        "$CONNECTIONS" "$(awk -v m="${FAN[connect_ms]}" 'BEGIN {print m / 1000}')" "$CONCURRENCY" \
        "$(awk -v c="${FAN[connect_keryx_cpu_ms]}" -v n="$CONNECTIONS" 'BEGIN {print c * 1000 / n}')"
    echo
    echo "| broadcast | first socket | half of the sockets | last socket | keryx CPU | keryx CPU per socket | client CPU |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    for ((i = 0; i < BROADCASTS; i++)); do
        printf '| %d | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f µs | %.2f ms |\n' $((i + 1)) \
            "${FAN[broadcasts.$i.first_ms]}" "${FAN[broadcasts.$i.p50_ms]}" "${FAN[broadcasts.$i.last_ms]}" \
            "${FAN[broadcasts.$i.keryx_cpu_ms]}" \
            "$(awk -v c="${FAN[broadcasts.$i.keryx_cpu_ms]}" -v n="$CONNECTIONS" 'BEGIN {print c * 1000 / n}')" \
            "${FAN[broadcasts.$i.client_cpu_ms]}"
    done
    printf '| **median** | %.2f ms | %.2f ms | **%.2f ms** | %.2f ms | %.2f µs | %.2f ms |\n' \
        "${FAN[first_ms_median]}" "${FAN[p50_ms_median]}" "${FAN[last_ms_median]}" "${FAN[keryx_cpu_ms_median]}" \
        "$(awk -v c="${FAN[keryx_cpu_ms_median]}" -v n="$CONNECTIONS" 'BEGIN {print c * 1000 / n}')" \
        "${FAN[client_cpu_ms_median]}"
    if [[ -n "${FAN[burst_last_ms_median]:-}" ]]; then burst_table; fi
    echo
    echo "| transport | round trips/s (median) | p50 | p99 | keryx CPU per round trip |"
    echo "|---|---:|---:|---:|---:|"
    printf '| WebSocket (`%s`, %d sockets) | %s | %s ms | %s ms | %s µs |\n' "$(rt_client_name)" "$RT_SOCKETS" \
        "${MED[ws,ops]}" "${MED[ws,p50]}" "${MED[ws,p99]}" "${MED[ws,cpu]}"
    printf '| HTTP keep-alive (`wrk -t1 -c%d`) | %s | %s ms | %s ms | %s µs |\n' "$RT_SOCKETS" \
        "${MED[http,ops]}" "${MED[http,p50]}" "${MED[http,p99]}" "${MED[http,cpu]}"
    printf '| **WebSocket / HTTP** | %s | | | %s |\n' "${MED[ratio]}" "$(ratio "${MED[ws,cpu]}" "${MED[http,cpu]}")"
    echo
    echo "| run | transport | round trips/s | p50 | p99 | keryx CPU per round trip | keryx CPU busy | CPU $CLIENT_CPU busy (client + others) |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|"
    for ((run = 1; run <= RUNS; run++)); do
        for t in ws http; do
            read -r ops p50 p99 cpu busy cpu1 <<<"${RT[$t,$run]}"
            printf '| %d | %s | %s | %.2f ms | %.2f ms | %s µs | %s%% | %s%% |\n' "$run" \
                "$([[ $t == ws ]] && echo WebSocket || echo HTTP)" "$ops" "$p50" "$p99" "$cpu" "$busy" "$cpu1"
        done
    done
}

# per_socket_message <ms>: µs per socket per message of a burst.
per_socket_message() { awk -v c="$1" -v n="$CONNECTIONS" -v m="$BURST" 'BEGIN {print c * 1000 / n / m}'; }

# burst_table: the bursts, as the broadcasts above, per socket per message; then the writes.
burst_table() {
    local i
    echo
    echo "| burst of $BURST | first socket has all | half of the sockets | last socket | keryx CPU | keryx CPU per socket per message | client CPU |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    for ((i = 0; i < BROADCASTS; i++)); do
        printf '| %d | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f µs | %.2f ms |\n' $((i + 1)) \
            "${FAN[bursts.$i.first_ms]}" "${FAN[bursts.$i.p50_ms]}" "${FAN[bursts.$i.last_ms]}" \
            "${FAN[bursts.$i.keryx_cpu_ms]}" "$(per_socket_message "${FAN[bursts.$i.keryx_cpu_ms]}")" \
            "${FAN[bursts.$i.client_cpu_ms]}"
    done
    printf '| **median** | %.2f ms | %.2f ms | **%.2f ms** | %.2f ms | %.2f µs | %.2f ms |\n' \
        "${FAN[burst_first_ms_median]}" "${FAN[burst_p50_ms_median]}" "${FAN[burst_last_ms_median]}" \
        "${FAN[burst_keryx_cpu_ms_median]}" "$(per_socket_message "${FAN[burst_keryx_cpu_ms_median]}")" \
        "${FAN[burst_client_cpu_ms_median]}"
    echo
    if [[ "${FAN[writes_per_socket_single]:-}" == -1* ]]; then
        echo "keryx's write syscalls: not counted (perf, or its syscall tracepoints, unavailable)."
    else
        printf "keryx's write syscalls (sendto, sendmsg, write, writev; perf stat, untimed runs): %.3f per socket for one broadcast, %.3f per socket per message in a burst of %d.\n" \
            "${FAN[writes_per_socket_single]}" "${FAN[writes_per_socket_message_burst]}" "$BURST"
    fi
}

# rt_client_name: the round-trip client, as the tables name it.
rt_client_name() { [[ "$RT_CLIENT" == c ]] && echo "ws-rt.c" || echo "ws-load.js actions"; }

# node_client_line: "node vX, ws Y" when a Node client ran, else nothing.
node_client_line() {
    node_client_used || return 0
    printf ' (Node clients: node %s, ws %s)' "$(node --version)" \
        "$(node -p 'require(process.argv[1]).version' "$BENCH_DIR/node_modules/ws/package.json")"
}

machine_line() {
    local cpu redis_version
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
    redis_version=$(redis-server --version 2>/dev/null | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^v=/) print substr($i, 3)}')
    printf '%s, %s CPUs, Linux %s, load average %s at start; Redis %s (no persistence, CPU %s); keryx on CPU %s; clients on CPU %s: fan-out %s, round trips %s WebSockets (bench/%s) vs wrk -t1 -c%s, %s × %s per transport, interleaved%s' \
        "${cpu:-unknown CPU}" "$(nproc)" "$(uname -r)" "$LOAD_AT_START" "${redis_version:-?}" "$REDIS_CPU" \
        "$SERVER_CPU" "$CLIENT_CPU" \
        "$([[ $FANOUT_CLIENT == c ]] && echo "bench/ws-fanout.c" || echo "bench/ws-load.js")" \
        "$RT_SOCKETS" "$(rt_client_name)" "$RT_SOCKETS" "$RUNS" "$DURATION" "$(node_client_line)"
}

report() {
    local tables
    summarise
    tables=$(markdown_tables)
    echo
    echo "WebSockets — machine: $(machine_line)"
    echo
    echo "$tables"
    echo
    printf 'RSS per idle WebSocket:       %s KiB  (target <= %s KiB)  %s\n' "${MED[rss_per_conn]}" "$TARGET_RSS_KIB" \
        "$(verdict "${MED[rss_per_conn]}" "<=" "$TARGET_RSS_KIB")"
    printf 'broadcast to the last socket: %s ms  (target <= %s ms)  %s\n' "${MED[last]}" "$TARGET_LAST_MS" \
        "$(verdict "${MED[last]}" "<=" "$TARGET_LAST_MS")"
    if [[ -n "${FAN[burst_last_ms_median]:-}" ]]; then
        printf 'burst of %d, last socket:     %.1f ms\n' "$BURST" "${FAN[burst_last_ms_median]}"
    fi
    printf 'round trips WebSocket / HTTP: %s / %s = %s\n' "${MED[ws,ops]}" "${MED[http,ops]}" "${MED[ratio]}"
    if [[ "$WRITE" == 1 ]]; then write_results "$tables"; fi
}

write_results() {
    local rev
    rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    {
        echo
        echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — commit $rev — WebSockets (bench/websocket.sh)"
        echo
        echo "$(machine_line)."
        echo
        echo "Targets: RSS per idle socket ≤ $TARGET_RSS_KIB KiB; broadcast to the last of $CONNECTIONS sockets ≤ $TARGET_LAST_MS ms. Channel \`$CHANNEL\` with one shared presence key; broadcasts are \`PUBLISH keryx:pubsub\` on the client's own Redis connection with the send time in the message; bursts are $BURST of them in one write. How to read them: [README.md](README.md#websockets-benchwebsocketsh)."
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
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/keryx-bench-ws.XXXXXX")
    raise_fd_limit
    ensure_node_modules
    build_clients
    start_redis
    write_app
    start_keryx
    run_fanout
    # A fresh keryx for the round trips: the first one still holds the heap of the idle sockets.
    stop_keryx
    start_keryx
    run_roundtrips
    report
}

main "$@"
