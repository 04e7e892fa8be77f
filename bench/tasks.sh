#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# tasks.sh — keryx's background tasks against node-resque (npm `node-resque`, pinned in
# bench/package.json) on the same trivial jobs, the same queue and the same Redis, side by side
# in one run.
#
# 1. Jobs per second through enqueue → run → done. BENCH_TASKS_JOBS copies of the trivial job
#    {"class":"bench:noop","queue":"bench","args":[{}]} are staged in Redis (bench:staging, which
#    no worker reads) while the workers start and go idle; then one MULTI renames the staging
#    list to resque:queue:bench, adds the queue to resque:queues and PUBLISHes keryx:tasks, and
#    the clock runs until resque:stat:processed (which keryx and node-resque both increment)
#    reaches the count. Start-up is thus not timed. Set-ups, BENCH_RUNS runs each, interleaved:
#      keryx 1 process (TASK_PROCESSORS=1) on CPU 0;
#      keryx 2 processes (TASK_PROCESSORS=1 each), one on CPU 0, one on CPU 1 (with Redis and
#        the meter: both CPUs busy);
#      keryx 1 process with TASK_PROCESSORS=4 (four jobs at a time in one event loop), CPU 0;
#      node-resque 1 worker process on CPU 0; 2 worker processes on CPU 0 and CPU 1.
#    node-resque's polling timeout is BENCH_TASKS_POLL_MS here (it only matters for the first
#    job: a worker drains a non-empty queue without sleeping). keryx serves TASK_QUEUES=*.
# 2. Enqueue-to-start latency on an idle server: BENCH_TASKS_LAT_JOBS jobs, one at a time,
#    ~BENCH_TASKS_LAT_GAP_MS apart; each carries enqueued_at (CLOCK_MONOTONIC ms) and records
#    now - enqueued_at when it starts. keryx jobs are enqueued with keryx's own
#    lua/redis/task_enqueue.lua (SADD, RPUSH, PUBLISH keryx:tasks: what keryx.tasks.enqueue
#    sends); node-resque jobs with its Queue.enqueue. keryx: TASK_QUEUES=* (the processor waits
#    for the PUBLISH signal) and TASK_QUEUES=bench (one queue: a blocking BLMOVE); node-resque:
#    its default polling timeout (5000 ms) and BENCH_TASKS_POLL_MS.
#
# CPUs: the job runners on CPU 0 (the second process of a two-process set-up on CPU 1), Redis
# and the Node client (stager, meter, enqueuer: bench/tasks-client.js) on CPU 1. A private
# redis-server on a free port, no persistence, FLUSHALLed before each set-up. The runners'
# and Redis's CPU time per job come from /proc/<pid>/stat (clock ticks).
# keryx runs bench/tasks_app (bench:noop, bench:latency); bench/resque-worker.js defines the
# same two jobs for node-resque. bench/node_modules is installed from package.json if missing.
#
# Environment:
#   BENCH_TASKS_JOBS        jobs per jobs/s run (default 20000)
#   BENCH_RUNS              jobs/s runs per set-up (default 3; the median is reported)
#   BENCH_TASKS_LAT_JOBS    jobs per latency set-up (default 300)
#   BENCH_TASKS_LAT_GAP_MS  mean gap between two latency jobs (default 20)
#   BENCH_TASKS_POLL_MS     node-resque's low polling timeout (default 5)
#   BENCH_WRITE             1 = append a dated section to bench/RESULTS.md
# Exit status: 0 whatever the figures; 1 when Redis, keryx or a node-resque worker fails, a
# run does not complete (a job lost) or a prerequisite is missing.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck disable=SC2034  # read by lib.sh's log/warn/die
BENCH_TAG=bench:tasks
# shellcheck source=lib.sh disable=SC1091  # followed by `shellcheck -x`
. "$BENCH_DIR/lib.sh"

JOBS=${BENCH_TASKS_JOBS:-20000}
RUNS=${BENCH_RUNS:-3}
LAT_JOBS=${BENCH_TASKS_LAT_JOBS:-300}
LAT_GAP_MS=${BENCH_TASKS_LAT_GAP_MS:-20}
POLL_MS=${BENCH_TASKS_POLL_MS:-5}
WRITE=${BENCH_WRITE:-0}

RUNNER_CPU=0
SECOND_CPU=1      # the second runner process of a two-process set-up
CLIENT_CPU=1
REDIS_CPU=1
QUEUE=bench
RESQUE_DEFAULT_POLL_MS=5000
START_TIMEOUT_S=10
CLK_TCK=$(getconf CLK_TCK)

TMP=""
REDIS_PID=""
REDIS_PORT=""
KERYX_PID=""      # lib.sh's keryx_log_tail reads it: the last keryx started
CLIENT_PID=""
WORKER_PIDS=()
LOAD_AT_START=""
LOAD_AT_END=""
LOADS=()          # the 1-minute load average after each run
COMMAND=./bench/tasks.sh  # as RESULTS.md quotes it (run from the repo root)

# Set-ups: name → "kind procs processors cpus queues poll" (kind keryx|resque).
declare -A SETUP=(
    [keryx-1]="keryx 1 1 $RUNNER_CPU * -"
    [keryx-2]="keryx 2 1 $RUNNER_CPU,$SECOND_CPU * -"
    [keryx-1x4]="keryx 1 4 $RUNNER_CPU * -"
    [resque-1]="resque 1 1 $RUNNER_CPU $QUEUE $POLL_MS"
    [resque-2]="resque 2 1 $RUNNER_CPU,$SECOND_CPU $QUEUE $POLL_MS"
    [lat-keryx-signal]="keryx 1 1 $RUNNER_CPU * -"
    [lat-keryx-blmove]="keryx 1 1 $RUNNER_CPU $QUEUE -"
    [lat-resque-low]="resque 1 1 $RUNNER_CPU $QUEUE $POLL_MS"
    [lat-resque-default]="resque 1 1 $RUNNER_CPU $QUEUE $RESQUE_DEFAULT_POLL_MS"
)
TPUT_SETUPS=(keryx-1 keryx-2 keryx-1x4 resque-1 resque-2)
LAT_SETUPS=(lat-keryx-signal lat-keryx-blmove lat-resque-low lat-resque-default)

# Figures: TPUT[<setup>,<run>] = "jobs_per_s ms runner_us_per_job redis_us_per_job processed left";
# LAT[<setup>] = "p50 p99 max mean n" (ms).
declare -A TPUT=()
declare -A LAT=()

cleanup() { stop_all_and_clean "$CLIENT_PID" "${WORKER_PIDS[@]}" "$REDIS_PID"; }

check_args() {
    local v
    for v in "$JOBS" "$RUNS" "$LAT_JOBS" "$LAT_GAP_MS" "$POLL_MS"; do
        [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "BENCH_TASKS_JOBS, BENCH_RUNS, BENCH_TASKS_LAT_* and BENCH_TASKS_POLL_MS must be positive integers, not '$v'"
    done
}

check_prereqs() {
    local cmd
    for cmd in taskset curl awk getconf node npm redis-server redis-cli; do
        command -v "$cmd" >/dev/null || die "'$cmd' not found (Debian: apt-get install util-linux curl nodejs npm redis-server)"
    done
    taskset -c "$SECOND_CPU" true 2>/dev/null || die "CPU $SECOND_CPU is not available: the bench needs two CPUs"
    [[ -x "$ROOT/keryx" ]] || die "$ROOT/keryx not built (run 'make')"
}

ensure_node_modules() {
    [[ -f "$BENCH_DIR/node_modules/node-resque/package.json" ]] && return 0
    log "installing bench/node_modules (npm node-resque, from bench/package.json)"
    npm install --prefix "$BENCH_DIR" --no-audit --no-fund >&2 || die "npm install --prefix bench failed"
}

# ---------------------------------------------------------------------------------------------
# Runners
# ---------------------------------------------------------------------------------------------

# start_keryx <cpu> <processors> <queues>: one keryx process serving bench/tasks_app.
start_keryx() {
    local cpu=$1 processors=$2 queues=$3 port
    port=$(free_port)
    # cwd = the repo root so ./config.lua applies; env → taskset → keryx all exec: $! is keryx.
    (cd "$ROOT" && exec env REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
        WEB_SERVER_PORT="$port" WEB_SERVER_HOST=127.0.0.1 WEB_SERVER_WORKERS=1 LOG_LEVEL=warn \
        NODE_ENV=production TASKS_ENABLED=true TASK_PROCESSORS="$processors" TASK_QUEUES="$queues" \
        taskset -c "$cpu" ./keryx --app "$BENCH_DIR/tasks_app" start) >"$TMP/keryx.log" 2>&1 &
    KERYX_PID=$!
    WORKER_PIDS+=("$KERYX_PID")
    if ! wait_http "http://127.0.0.1:$port/api/status" "$KERYX_PID"; then
        keryx_log_tail
        die "keryx did not answer http://127.0.0.1:$port/api/status within ${START_TIMEOUT_S}s"
    fi
}

# start_resque <cpu> <queue> <poll_ms>: one node-resque worker process.
start_resque() {
    local cpu=$1 queue=$2 poll=$3 out deadline=$((SECONDS + START_TIMEOUT_S)) pid
    out="$TMP/resque-${#WORKER_PIDS[@]}.log"
    taskset -c "$cpu" node "$BENCH_DIR/resque-worker.js" --port "$REDIS_PORT" --queue "$queue" \
        --timeout "$poll" >"$out" 2>&1 &
    pid=$!
    WORKER_PIDS+=("$pid")
    until grep -q '^ready' "$out" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
            tail -n 20 "$out" >&2 || true
            die "node-resque worker did not start within ${START_TIMEOUT_S}s"
        fi
        sleep 0.05
    done
}

# start_setup <setup>: its runner processes, started and idle.
start_setup() {
    local kind procs processors cpus queues poll i cpu
    read -r kind procs processors cpus queues poll <<<"${SETUP[$1]}"
    for ((i = 1; i <= procs; i++)); do
        cpu=$(cut -d, -f"$i" <<<"$cpus")
        if [[ $kind == keryx ]]; then start_keryx "$cpu" "$processors" "$queues"
        else start_resque "$cpu" "$queues" "$poll"; fi
    done
    sleep 0.3 # every processor / worker reaches its idle wait
}

stop_setup() {
    local pid
    for pid in "${WORKER_PIDS[@]}"; do stop_process "$pid"; done
    WORKER_PIDS=()
    KERYX_PID=""
}

# check_alive <setup>: every runner still runs (a crash is a finding, not a figure).
check_alive() {
    local pid
    for pid in "${WORKER_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && continue
        tail -n 20 "$TMP"/*.log >&2 || true
        die "$1: runner pid $pid died"
    done
}

# client <out> <args…>: bench/tasks-client.js on the client CPU, in the background and waited
# for (so a TERM reaches cleanup at once); its JSON line goes to <out>.
client() {
    local out=$1 rc=0
    shift
    (cd "$ROOT" && exec taskset -c "$CLIENT_CPU" node "$BENCH_DIR/tasks-client.js" "$@" --port "$REDIS_PORT") \
        >"$out" 2>"$out.err" &
    CLIENT_PID=$!
    wait "$CLIENT_PID" || rc=$?
    CLIENT_PID=""
    if ((rc != 0)); then cat "$out" "$out.err" >&2; fi
    return "$rc"
}

# field <json line> <name>: a number from the client's flat JSON.
field() { sed -n "s/.*\"$2\":\\([-0-9.]*\\).*/\\1/p" <<<"$1"; }

runner_ticks() {
    local total=0 pid
    for pid in "${WORKER_PIDS[@]}"; do total=$((total + $(cpu_ticks "$pid"))); done
    echo "$total"
}

# per_job_us <ticks> <jobs>
per_job_us() { awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN {printf "%.1f", t / hz * 1000000 / n}'; }

# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------

# tput_run <setup> <run>
tput_run() {
    local setup=$1 run=$2 out r0 r1 d0 d1 line ms processed left jps
    out="$TMP/client.out"
    rcli flushall >/dev/null
    client "$out" preload --queue "$QUEUE" --n "$JOBS" || die "staging $JOBS jobs failed"
    start_setup "$setup"
    r0=$(runner_ticks)
    d0=$(cpu_ticks "$REDIS_PID")
    client "$out" release --queue "$QUEUE" --n "$JOBS" ||
        warn "$setup run $run: not every job was done (see above)"
    r1=$(runner_ticks)
    d1=$(cpu_ticks "$REDIS_PID")
    check_alive "$setup"
    line=$(<"$out")
    ms=$(field "$line" ms)
    processed=$(field "$line" processed)
    left=$(field "$line" left)
    [[ "$processed" == "$JOBS" && "$left" == 0 ]] ||
        warn "$setup run $run: resque:stat:processed = $processed (expected $JOBS), $left left in the queue"
    if [[ ${SETUP[$setup]} == keryx* ]]; then check_keryx_books "$setup $run"; fi
    stop_setup
    note_load
    jps=$(awk -v n="$JOBS" -v ms="$ms" 'BEGIN {printf "%.0f", n / (ms / 1000)}')
    TPUT[$setup,$run]="$jps $ms $(per_job_us $((r1 - r0)) "$JOBS") $(per_job_us $((d1 - d0)) "$JOBS") $processed $left"
    log "$(printf '%-10s run %d: %7s jobs/s (%s ms for %s jobs; runner %s µs/job, Redis %s µs/job)' \
        "$setup" "$run" "$jps" "$ms" "$JOBS" "$(awk '{print $3}' <<<"${TPUT[$setup,$run]}")" \
        "$(awk '{print $4}' <<<"${TPUT[$setup,$run]}")")"
}

note_load() { LOADS+=("$(awk '{print $1}' /proc/loadavg)"); }

# load_range: "min–max" of the 1-minute load averages noted after each run.
load_range() { printf '%s\n' "${LOADS[@]}" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "–" hi}'; }

# check_keryx_books <label>: after a keryx run, nothing failed and no in-flight list holds a job.
check_keryx_books() {
    local failed inflight key
    failed=$(rcli llen resque:failed)
    inflight=0
    for key in $(rcli --scan --pattern 'resque:keryx:inflight:*'); do
        inflight=$((inflight + $(rcli llen "$key")))
    done
    ((failed == 0 && inflight == 0)) || warn "$1: $failed job(s) in resque:failed, $inflight left in in-flight lists"
}

# lat_run <setup>
lat_run() {
    local setup=$1 via=keryx out line p50 p99 max mean n
    out="$TMP/client.out"
    if [[ ${SETUP[$setup]} == resque* ]]; then via=resque; fi
    rcli flushall >/dev/null
    start_setup "$setup"
    client "$out" latency --queue "$QUEUE" --n "$LAT_JOBS" --gap-ms "$LAT_GAP_MS" --via "$via" \
        --script "$ROOT/lua/redis/task_enqueue.lua" --wait-s $((RESQUE_DEFAULT_POLL_MS / 1000 + 30)) ||
        die "$setup: the latency run did not complete"
    check_alive "$setup"
    stop_setup
    note_load
    line=$(<"$out")
    LAT[$setup]="$(field "$line" p50) $(field "$line" p99) $(field "$line" max) $(field "$line" mean) $(field "$line" n)"
    read -r p50 p99 max mean n <<<"${LAT[$setup]}"
    log "$(printf '%-18s p50 %s ms, p99 %s ms, max %s ms, mean %s ms (%s jobs)' "$setup" "$p50" "$p99" "$max" "$mean" "$n")"
}

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

# ratio_sig <a> <b>: a / b to 3 significant digits (latency ratios can be 0.0003).
ratio_sig() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3g", (b > 0) ? a / b : 0}'; }

# med <setup> <column>: the median over runs of one TPUT column.
med() {
    local run
    for ((run = 1; run <= RUNS; run++)); do awk -v c="$2" '{print $c}' <<<"${TPUT[$1,$run]}"; done | median
}

label() {
    case $1 in
        keryx-1) echo "keryx, 1 process × 1 processor (CPU $RUNNER_CPU)" ;;
        keryx-2) echo "keryx, 2 processes × 1 processor (CPUs $RUNNER_CPU and $SECOND_CPU)" ;;
        keryx-1x4) echo "keryx, 1 process × 4 processors (CPU $RUNNER_CPU)" ;;
        resque-1) echo "node-resque, 1 worker process (CPU $RUNNER_CPU)" ;;
        resque-2) echo "node-resque, 2 worker processes (CPUs $RUNNER_CPU and $SECOND_CPU)" ;;
        lat-keryx-signal) echo "keryx, TASK_QUEUES=* (waits for the PUBLISH signal, 1 s fallback poll)" ;;
        lat-keryx-blmove) echo "keryx, TASK_QUEUES=$QUEUE (one queue: blocking BLMOVE)" ;;
        lat-resque-low) echo "node-resque, polling timeout $POLL_MS ms" ;;
        lat-resque-default) echo "node-resque, polling timeout $RESQUE_DEFAULT_POLL_MS ms (its default)" ;;
    esac
}

markdown_tables() {
    local s run jps ms rus dus processed left p50 p99 max mean n
    echo "| jobs/s: $JOBS trivial jobs, enqueue → run → done | jobs/s (median of $RUNS) | runner CPU per job | Redis CPU per job |"
    echo "|---|---:|---:|---:|"
    for s in "${TPUT_SETUPS[@]}"; do
        printf '| %s | %.0f | %s µs | %s µs |\n' "$(label "$s")" "$(med "$s" 1)" "$(med "$s" 3)" "$(med "$s" 4)"
    done
    printf '| **keryx / node-resque**, 1 process each | **%s** | %s | %s |\n' \
        "$(ratio "$(med keryx-1 1)" "$(med resque-1 1)")" "$(ratio "$(med keryx-1 3)" "$(med resque-1 3)")" \
        "$(ratio "$(med keryx-1 4)" "$(med resque-1 4)")"
    printf '| **keryx / node-resque**, 2 processes each | **%s** | %s | %s |\n' \
        "$(ratio "$(med keryx-2 1)" "$(med resque-2 1)")" "$(ratio "$(med keryx-2 3)" "$(med resque-2 3)")" \
        "$(ratio "$(med keryx-2 4)" "$(med resque-2 4)")"
    printf '| **keryx 1 × 4 processors / node-resque 1 worker** | **%s** | | |\n' \
        "$(ratio "$(med keryx-1x4 1)" "$(med resque-1 1)")"
    echo
    echo "| enqueue → start latency, idle server ($LAT_JOBS jobs, ~$LAT_GAP_MS ms apart) | p50 | p99 | max | mean |"
    echo "|---|---:|---:|---:|---:|"
    for s in "${LAT_SETUPS[@]}"; do
        read -r p50 p99 max mean n <<<"${LAT[$s]}"
        printf '| %s | %s ms | %s ms | %s ms | %s ms |\n' "$(label "$s")" "$p50" "$p99" "$max" "$mean"
    done
    local a b
    for a in lat-keryx-signal lat-keryx-blmove; do
        for b in lat-resque-low lat-resque-default; do
            printf '| **%s / %s** | %s | %s | | |\n' "${a#lat-}" "${b#lat-}" \
                "$(ratio_sig "${LAT[$a]%% *}" "${LAT[$b]%% *}")" \
                "$(ratio_sig "$(awk '{print $2}' <<<"${LAT[$a]}")" "$(awk '{print $2}' <<<"${LAT[$b]}")")"
        done
    done
    echo
    echo "| run | set-up | jobs/s | time for $JOBS jobs | runner CPU per job | Redis CPU per job | resque:stat:processed | left in queue |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|"
    for ((run = 1; run <= RUNS; run++)); do
        for s in "${TPUT_SETUPS[@]}"; do
            read -r jps ms rus dus processed left <<<"${TPUT[$s,$run]}"
            printf '| %d | %s | %s | %s ms | %s µs | %s µs | %s | %s |\n' "$run" "$s" "$jps" "$ms" "$rus" "$dus" \
                "$processed" "$left"
        done
    done
}

machine_line() {
    local cpu redis_version resque_version
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
    redis_version=$(redis-server --version 2>/dev/null | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^v=/) print substr($i, 3)}')
    resque_version=$(node -p 'require(process.argv[1]).version' "$BENCH_DIR/node_modules/node-resque/package.json")
    printf '%s, %s CPUs, Linux %s, load average %s at start and %s at end (1-minute load %s after the runs); Redis %s (no persistence) and the Node client on CPU %s; node-resque %s on Node %s; runners on CPU %s (second process on CPU %s)' \
        "${cpu:-unknown CPU}" "$(nproc)" "$(uname -r)" "$LOAD_AT_START" "$LOAD_AT_END" "$(load_range)" "${redis_version:-?}" \
        "$REDIS_CPU" "$resque_version" "$(node --version)" "$RUNNER_CPU" "$SECOND_CPU"
}

report() {
    local tables
    tables=$(markdown_tables)
    echo
    echo "Tasks vs node-resque — machine: $(machine_line)"
    echo
    echo "$tables"
    if [[ "$WRITE" == 1 ]]; then write_results "$tables"; fi
}

# write_results <tables>: appends a dated section to bench/RESULTS.md.
write_results() {
    local rev
    rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    {
        echo
        echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — commit $rev — Tasks vs node-resque (bench/tasks.sh)"
        echo
        echo "Command: \`BENCH_WRITE=1 BENCH_TASKS_JOBS=$JOBS BENCH_RUNS=$RUNS BENCH_TASKS_LAT_JOBS=$LAT_JOBS BENCH_TASKS_LAT_GAP_MS=$LAT_GAP_MS BENCH_TASKS_POLL_MS=$POLL_MS $COMMAND\`."
        echo
        echo "$(machine_line)."
        echo
        echo "$1"
    } >>"$BENCH_DIR/RESULTS.md"
    log "appended to $BENCH_DIR/RESULTS.md"
}

main() {
    local run s
    check_args
    check_prereqs
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    LOAD_AT_START=$(awk '{print $1, $2, $3}' /proc/loadavg)
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/keryx-bench-tasks.XXXXXX")
    ensure_node_modules
    start_redis
    for ((run = 1; run <= RUNS; run++)); do
        for s in "${TPUT_SETUPS[@]}"; do tput_run "$s" "$run"; done
    done
    for s in "${LAT_SETUPS[@]}"; do lat_run "$s"; done
    LOAD_AT_END=$(awk '{print $1, $2, $3}' /proc/loadavg)
    report
}

main "$@"
