# lib.sh — helpers shared by bench/run.sh and bench/ratelimit.sh (sourced, never run).
#
# Globals the caller sets before using them: BENCH_TAG (log prefix), START_TIMEOUT_S (wait_http).
# Nothing here starts or stops a process it was not handed by pid, or touches files.
# shellcheck shell=bash

log()  { printf '[%s] %s\n' "${BENCH_TAG:-bench}" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "${BENCH_TAG:-bench}" "$*" >&2; }
die()  { printf '[%s] ERROR: %s\n' "${BENCH_TAG:-bench}" "$*" >&2; exit 1; }

# stop_process <pid>: SIGTERM, up to 5 s of grace, then SIGKILL. Only ever our own children.
stop_process() {
    local pid=$1 i
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# stop_all_and_clean <pid>...: each script's EXIT trap: stops its children (empty pids are
# skipped), then removes its $TMP directory.
stop_all_and_clean() {
    local pid
    for pid in "$@"; do stop_process "$pid"; done
    [[ -n "${TMP:-}" && -d "$TMP" ]] && rm -rf "$TMP"
    return 0
}

# free_port: prints a TCP port nobody listens on (the kernel picks it).
free_port() {
    if command -v python3 >/dev/null &&
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null; then
        return 0
    fi
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        ss -Htln "sport = :$port" | grep -q . || { echo "$port"; return 0; }
    done
}

# wait_http <url> <pid>: true once the URL answers 2xx, false on timeout or when pid died.
wait_http() {
    local url=$1 pid=$2 deadline=$((SECONDS + START_TIMEOUT_S))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || return 1
        curl -sf -o /dev/null --max-time 1 "$url" && return 0
        sleep 0.1
    done
    return 1
}

# need_nginx_lua: nginx and its Lua module (the peer of every comparison) are installed, or die
# saying which Debian packages bring them. NGINX_MODULES_DIR is where the modules are.
need_nginx_lua() {
    command -v nginx >/dev/null || die "nginx not found (apt-get install nginx-light libnginx-mod-http-lua lua-cjson)"
    [[ -f "$NGINX_MODULES_DIR/ngx_http_lua_module.so" && -f "$NGINX_MODULES_DIR/ndk_http_module.so" ]] ||
        die "nginx Lua module missing in $NGINX_MODULES_DIR (apt-get install libnginx-mod-http-lua)"
}

# ---------------------------------------------------------------------------------------------
# /proc readings
# ---------------------------------------------------------------------------------------------

# children <pid>: direct child pids (nginx workers; keryx workers if any).
children() { pgrep -P "$1" || true; }

# cpu_ticks <pid>: utime + stime (fields 14 and 15) of the whole process (all its threads), in
# clock ticks. The command name (field 2) may hold spaces, so fields are counted after ')'.
cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    awk '{print $12 + $13}' <<<"${stat##*) }"
}

# tree_cpu_ticks <pid>: the process and its direct children (nginx: master + workers).
tree_cpu_ticks() {
    local total=0 pid
    for pid in "$1" $(children "$1"); do
        total=$((total + $(cpu_ticks "$pid")))
    done
    echo "$total"
}

# tree_rss_kib <pid>: VmRSS of the process and its direct children, in KiB.
tree_rss_kib() {
    local total=0 pid rss
    for pid in "$1" $(children "$1"); do
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        total=$((total + ${rss:-0}))
    done
    echo "$total"
}

# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------

# parse_wrk: reads wrk output, prints "requests rps p99_us errors".
# Latencies come as 123.45us / 1.23ms / 1.00s; errors = socket errors + non-2xx/3xx replies.
parse_wrk() {
    awk '
        function to_us(v,   n) {
            n = v + 0
            if (v ~ /us$/) return n
            if (v ~ /ms$/) return n * 1000
            if (v ~ /m$/)  return n * 60000000
            if (v ~ /s$/)  return n * 1000000
            return n
        }
        / requests in /              { requests = $1 }
        /^Requests\/sec:/            { rps = $2 }
        $1 == "99%"                  { p99 = to_us($2) }
        /^ *Non-2xx or 3xx/          { errors += $NF }
        /^ *Socket errors:/          { gsub(/[a-z:,]/, ""); for (i = 1; i <= NF; i++) errors += $i }
        END { printf "%d %s %.0f %d\n", requests, rps, p99, errors }
    '
}

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
sum()    { awk '{s += $1} END {print s + 0}'; }

# verdict <value> <op> <target>: PASS or FAIL.
verdict() {
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        ok = (op == ">=") ? v >= t : (op == "<=") ? v <= t : v < t
        print ok ? "PASS" : "FAIL"
    }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'; }

# ---- shared by the scripts that run their own redis-server and keryx ---------------------
# They set TMP, REDIS_CPU, START_TIMEOUT_S, and KERYX_PID / REDIS_PORT / REDIS_PID.

# rcli <args…>: redis-cli against the bench's own Redis only.
rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

# start_redis: a redis-server on a free port, pinned to REDIS_CPU, no persistence.
start_redis() {
    local deadline=$((SECONDS + START_TIMEOUT_S))
    REDIS_PORT=$(free_port)
    mkdir -p "$TMP/redis"
    log "starting redis-server on 127.0.0.1:$REDIS_PORT (CPU $REDIS_CPU, no persistence)"
    # taskset execs redis-server, so $! is Redis itself (and all its threads inherit the CPU).
    taskset -c "$REDIS_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
        --appendonly no --dir "$TMP/redis" --daemonize no --logfile "$TMP/redis/redis.log" \
        >"$TMP/redis/stdout.log" 2>&1 &
    REDIS_PID=$!
    while ((SECONDS < deadline)); do
        kill -0 "$REDIS_PID" 2>/dev/null || break
        [[ "$(rcli ping 2>/dev/null || true)" == PONG ]] && return 0
        sleep 0.1
    done
    tail -n 20 "$TMP/redis/redis.log" "$TMP/redis/stdout.log" >&2 2>/dev/null || true
    die "redis-server exited or did not answer PING on port $REDIS_PORT within ${START_TIMEOUT_S}s"
}

# keryx_log_tail: the end of keryx's log, and how it ended if it is gone.
keryx_log_tail() {
    local rc=0
    tail -n 20 "$TMP/keryx.log" >&2 || true
    if [[ -n "$KERYX_PID" ]] && ! kill -0 "$KERYX_PID" 2>/dev/null; then
        wait "$KERYX_PID" 2>/dev/null || rc=$?
        if ((rc > 128)); then warn "keryx was killed by signal $((rc - 128))"; else warn "keryx exited with status $rc"; fi
    fi
}

# cpu_line N: "busy total" jiffies of CPU N from /proc/stat.
cpu_line() {
    awk -v c="cpu$1" '$1 == c {
        total = $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9
        print total - $5 - $6, total
    }' /proc/stat
}
