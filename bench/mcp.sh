#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# mcp.sh — the cost of MCP: the built-in `status` action called as an MCP tool (POST /mcp,
# JSON-RPC tools/call with a bearer token and a session) against the same action over plain
# HTTP (GET /api/status), on one keryx process with its own redis-server.
#
# Setup over curl, as an MCP client would: a user through PUT /api/user, a client through
# POST /oauth/register, the sign-in form of POST /oauth/authorize (PKCE S256, the RFC 7636
# Appendix B pair), the code exchanged at POST /oauth/token, then initialize for a session.
# wrk then loads the two in interleaved runs (http, mcp, http, …), counting statuses with
# bench/wrk-status.lua (any reply other than 200 stops the bench). Each tools/call does what
# an HTTP call does plus the bearer lookup (two Redis reads), the session lookup and renewal
# (two more) and the JSON-RPC envelope: the ratio says what that costs.
#
# CPUs: keryx on CPU 0, wrk and Redis on CPU 1 (as bench/ratelimit.sh).
# Environment: BENCH_DURATION (default 10s), BENCH_RUNS (3), BENCH_WARMUP (1s), as run.sh.
# Exit status: 0 whatever the figures; 1 when Redis or keryx fails, a reply is not 200, or a
# setup step fails.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck disable=SC2034  # read by lib.sh's log/warn/die
BENCH_TAG=bench:mcp
# shellcheck source=lib.sh disable=SC1091  # followed by `shellcheck -x`
. "$BENCH_DIR/lib.sh"

DURATION=${BENCH_DURATION:-10s}
RUNS=${BENCH_RUNS:-3}
WARMUP=${BENCH_WARMUP:-1s}
REDIS_CPU=1
SERVER_CPU=0
CLIENT_CPU=1
CONNECTIONS=50
START_TIMEOUT_S=10

VERIFIER=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk
CHALLENGE=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM
REDIRECT=http://localhost:3000/callback
EMAIL=bench@example.com
PASSWORD=bench-password-1

TMP=""
REDIS_PID=""
REDIS_PORT=""
KERYX_PID=""
WRK_PID=""
BASE=""
TOKEN=""
SESSION=""
declare -A RPS=()

cleanup() { stop_all_and_clean "$WRK_PID" "$KERYX_PID" "$REDIS_PID"; }

start_keryx() {
    local port
    port=$(free_port)
    BASE="http://127.0.0.1:$port"
    log "starting keryx on 127.0.0.1:$port (CPU $SERVER_CPU, MCP on)"
    (cd "$ROOT" && exec env REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
        WEB_SERVER_PORT="$port" WEB_SERVER_HOST=127.0.0.1 WEB_SERVER_WORKERS=1 LOG_LEVEL=warn \
        NODE_ENV=production RATE_LIMIT_ENABLED=false MCP_SERVER_ENABLED=true APPLICATION_URL="$BASE" \
        taskset -c "$SERVER_CPU" ./keryx start) >"$TMP/keryx.log" 2>&1 &
    KERYX_PID=$!
    if ! wait_http "$BASE/api/status" "$KERYX_PID"; then
        keryx_log_tail
        die "keryx did not answer $BASE/api/status within ${START_TIMEOUT_S}s"
    fi
}

# field <json-ish text> <name>: the string value of "name" (enough for these flat answers).
field() { sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p" <<<"$1"; }

get_token() {
    local body client code
    curl -sf -X PUT -H 'Content-Type: application/json' \
        -d "{\"name\":\"Bench\",\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" "$BASE/api/user" >/dev/null ||
        die "PUT /api/user failed"
    body=$(curl -sf -H 'Content-Type: application/json' -d "{\"redirect_uris\":[\"$REDIRECT\"]}" "$BASE/oauth/register") ||
        die "POST /oauth/register failed"
    client=$(field "$body" client_id)
    code=$(curl -s -o /dev/null -w '%{redirect_url}' "$BASE/oauth/authorize" \
        --data-urlencode "client_id=$client" --data-urlencode "redirect_uri=$REDIRECT" \
        --data-urlencode response_type=code --data-urlencode "code_challenge=$CHALLENGE" \
        --data-urlencode code_challenge_method=S256 --data-urlencode state=b --data-urlencode mode=signin \
        --data-urlencode "email=$EMAIL" --data-urlencode "password=$PASSWORD" | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
    [[ -n "$code" ]] || die "the sign-in form gave no code"
    body=$(curl -sf "$BASE/oauth/token" --data-urlencode grant_type=authorization_code \
        --data-urlencode "code=$code" --data-urlencode "code_verifier=$VERIFIER" \
        --data-urlencode "client_id=$client" --data-urlencode "redirect_uri=$REDIRECT") || die "POST /oauth/token failed"
    TOKEN=$(field "$body" access_token)
    [[ -n "$TOKEN" ]] || die "no access token"
    SESSION=$(curl -sf -D - -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' \
        -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
        "$BASE/mcp" | tr -d '\r' | awk -F': ' 'tolower($1) == "mcp-session-id" {print $2}')
    [[ -n "$SESSION" ]] || die "initialize gave no Mcp-Session-Id"
    log "token and session ready"
}

# wrk_script <kind>: the wrk script of one side (the MCP side sets method, body and headers).
wrk_script() {
    local f="$TMP/wrk-$1.lua"
    if [[ $1 == mcp ]]; then
        cat >"$f" <<LUA
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"status","arguments":{}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.headers["Mcp-Session-Id"] = "$SESSION"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
LUA
    else
        : >"$f"
    fi
    cat "$BENCH_DIR/wrk-status.lua" >>"$f"
    echo "$f"
}

# run_one <kind> <duration>: prints requests/s; dies on any non-200 reply.
run_one() {
    local kind=$1 duration=$2 url out other
    url=$BASE/api/status
    [[ $kind == mcp ]] && url=$BASE/mcp
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"$duration" --latency -s "$(wrk_script "$kind")" "$url" \
        >"$TMP/wrk.out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || die "wrk failed: $(tail -n 5 "$TMP/wrk.out")"
    WRK_PID=""
    out=$(<"$TMP/wrk.out")
    other=$(awk '$1 == "kx_status_other" {print $2}' <<<"$out")
    [[ "$other" == 0 ]] || die "$kind: replies other than 200: $(awk '$1 == "kx_status_codes" {print $2}' <<<"$out")"
    parse_wrk <<<"$out" | awk '{print $2}'
}

main() {
    local run kind rps
    for cmd in wrk taskset curl redis-server redis-cli; do
        command -v "$cmd" >/dev/null || die "'$cmd' not found"
    done
    [[ -x "$ROOT/keryx" ]] || die "$ROOT/keryx not built (run 'make')"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/keryx-bench-mcp.XXXXXX")
    start_redis
    start_keryx
    get_token
    if [[ "$WARMUP" != 0 ]]; then
        run_one http "$WARMUP" >/dev/null
        run_one mcp "$WARMUP" >/dev/null
    fi
    for ((run = 1; run <= RUNS; run++)); do
        for kind in http mcp; do
            rps=$(run_one "$kind" "$DURATION")
            log "$kind run $run: $rps req/s"
            RPS[$kind]+="$rps "
        done
    done
    local http mcp
    http=$(tr ' ' '\n' <<<"${RPS[http]}" | grep . | median)
    mcp=$(tr ' ' '\n' <<<"${RPS[mcp]}" | grep . | median)
    echo "== MCP tools/call vs HTTP (action: status; median of $RUNS runs of $DURATION, $CONNECTIONS connections)"
    printf '%-28s %12s req/s\n' "GET /api/status" "$http" "POST /mcp tools/call status" "$mcp"
    echo "tools/call / HTTP ratio: $(ratio "$mcp" "$http")"
}

main "$@"
