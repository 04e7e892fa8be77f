#!/usr/bin/env bash
# testssl.sh [BIN] — `make testssl`: testssl.sh (Debian package testssl.sh, command `testssl`)
# against keryx (BIN, default ./keryx) serving the throwaway certificate of
# scripts/tls-test-certs.sh, with its own redis-server. Fails (exit 1) on:
#   - any finding rated MEDIUM, HIGH or CRITICAL;
#   - a CBC, 3DES, RC4, NULL, export or non-forward-secret suite offered (testssl's cipher lists
#     other than STRONG must read "not offered", and every suite it lists must be AES-GCM or
#     ChaCha20-Poly1305 with ECDH key exchange);
#   - a protocol other than TLS 1.2 and 1.3 offered.
# Prints a summary (protocols, suites, findings by severity) for bench/RESULTS.md; the whole
# testssl output is kept in TESTSSL_OUT when set. Takes about a minute.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${1:-$ROOT/keryx}
TMP=$(mktemp -d)
KERYX_PID=""
REDIS_PID=""

cleanup() {
    local pid
    for pid in "$KERYX_PID" "$REDIS_PID"; do
        [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    rm -rf "$TMP"
    return 0
}
trap cleanup EXIT

command -v testssl >/dev/null || { echo "testssl not found (apt-get install testssl.sh)" >&2; exit 1; }
[[ -x "$BIN" ]] || { echo "$BIN not built (make)" >&2; exit 1; }

"$ROOT/scripts/tls-test-certs.sh" "$TMP/certs"
redis-server --port 0 --unixsocket "$TMP/redis.sock" --save '' --appendonly no --daemonize no \
    >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 50); do [[ -S "$TMP/redis.sock" ]] && break; sleep 0.1; done

cd "$ROOT"
WEB_SERVER_PORT=0 WEB_SERVER_HOST=127.0.0.1 NODE_ENV=production LOG_COLORIZE=false \
    REDIS_URL="unix://$TMP/redis.sock" WEB_SERVER_TLS_CERT="$TMP/certs/server.pem" \
    WEB_SERVER_TLS_KEY="$TMP/certs/server.key" "$BIN" start >"$TMP/keryx.log" 2>&1 &
KERYX_PID=$!
port=""
for _ in $(seq 100); do
    port=$(sed -n 's/.*started server @ https:\/\/[^:]*:\([0-9]*\).*/\1/p' "$TMP/keryx.log")
    [[ -n "$port" ]] && break
    kill -0 "$KERYX_PID" 2>/dev/null || break
    sleep 0.1
done
[[ -n "$port" ]] || { cat "$TMP/keryx.log" >&2; echo "keryx did not start" >&2; exit 1; }

echo "testssl against keryx on https://localhost:$port (throwaway CA, P-256 certificate)"
testssl --quiet --color 0 --warnings batch --add-ca "$TMP/certs/ca.pem" --jsonfile "$TMP/testssl.json" \
    "https://localhost:$port" >"$TMP/testssl.txt" 2>&1 || true
[[ -n "${TESTSSL_OUT:-}" ]] && cp "$TMP/testssl.txt" "$TESTSSL_OUT"
[[ -s "$TMP/testssl.json" ]] || { tail -20 "$TMP/testssl.txt" >&2; echo "testssl wrote no findings" >&2; exit 1; }

# The verdict, from testssl's JSON findings (luajit + cjson: already keryx's dependencies).
luajit - "$TMP/testssl.json" <<'EOF'
local cjson = require "cjson"
local f = assert(io.open(arg[1]))
local findings = cjson.decode(f:read("*a"))
f:close()
local bad, by_sev, suites, protos = {}, {}, {}, {}
local SEVERE = { MEDIUM = true, HIGH = true, CRITICAL = true }
for _, e in ipairs(findings) do
    local sev, id, finding = e.severity or "", e.id or "", e.finding or ""
    by_sev[sev] = (by_sev[sev] or 0) + 1
    if SEVERE[sev] then bad[#bad + 1] = ("%s %s: %s"):format(sev, id, finding) end
    if sev == "LOW" then print(("LOW %s: %s"):format(id, finding)) end
    -- Cipher lists other than the strong forward-secret one must be empty.
    if id:match("^cipherlist_") and id ~= "cipherlist_STRONG" and finding ~= "not offered" then
        bad[#bad + 1] = ("offered: %s (%s)"):format(id, finding)
    end
    if id:match("^cipher_x") then
        local name, kx, enc = finding:match("^%S+%s+(%S+)%s+(%S+)%s+%S+%s+(%S+)")
        suites[#suites + 1] = name or finding
        if kx ~= "ECDH" or not (enc == "AESGCM" or enc == "ChaCha20") then
            bad[#bad + 1] = "suite without ECDHE + AEAD: " .. finding
        end
    end
    if (id:match("^SSLv") or id:match("^TLS1")) and finding:match("^offered") then
        protos[#protos + 1] = id
        if id ~= "TLS1_2" and id ~= "TLS1_3" then bad[#bad + 1] = "protocol offered: " .. id end
    end
end
local sev_list = {}
for _, s in ipairs { "CRITICAL", "HIGH", "MEDIUM", "LOW", "WARN", "OK", "INFO" } do
    sev_list[#sev_list + 1] = ("%s %d"):format(s, by_sev[s] or 0)
end
print("protocols offered: " .. table.concat(protos, ", "))
print("suites offered:    " .. table.concat(suites, " "))
print("findings:          " .. table.concat(sev_list, ", "))
if #suites == 0 then bad[#bad + 1] = "testssl listed no suite (scan incomplete?)" end
if #bad > 0 then
    print("FAIL:")
    for _, b in ipairs(bad) do print("  " .. b) end
    os.exit(1)
end
print("PASS: no finding rated MEDIUM or above, no CBC or non-forward-secret suite")
EOF
