-- The TLS switch of the integration harness: with KERYX_TEST_TLS=1 (make test-integration-tls)
-- server.lua starts keryx with a throwaway certificate, and every client of the harness
-- (server.lua's raw HTTP client, ws_client.lua, the curl commands built by curl_args) speaks
-- TLS to it, trusting the throwaway CA. The CA and certificates are made once per busted
-- process by scripts/tls-test-certs.sh (openssl) and removed when that process exits.
-- Run one spec over TLS: KERYX_TEST_TLS=1 KERYX_BIN=$PWD/keryx luajit /usr/bin/busted
-- --helper=spec/helpers/integration_env.lua spec/integration/<f>_spec.lua.
--
-- Specs left out of the TLS run (Makefile TLS_SPECS), each for its reason: tls_spec (turns TLS
-- on itself, runs in the plain run), core_contract (compares Lua's config with fake_core's
-- defaults, which TLS changes on purpose), cli (no connection), hardening_redis_deadline (Redis
-- deadlines; nothing in it depends on the transport, and it takes 15 s), mcp_clients (Node clients, tens of seconds;
-- over TLS they would need NODE_EXTRA_CA_CERTS and bearer_proxy.mjs an https upstream; /mcp
-- over TLS is covered by mcp_flow, mcp_rules and mcp_cors). Inside the specs that
-- run, a test that cannot hold over TLS calls pending() with its reason (the 503 envelope at
-- the connection cap: over TLS the cap closes without a handshake).
--
--   local T = require "tls_client"
--   T.on()                   -- KERYX_TEST_TLS is set: specs run over https/wss
--   T.dir()                  -- the directory with ca.pem, server.pem/.key, other.pem/.key
--   T.mark(port) / T.is_tls(port)   -- server.lua marks the ports that speak TLS
--   T.wrap(tcp) → conn | nil, err   -- a connected lua-socket TCP object, after the handshake
--   T.curl_args()            -- "--cacert <ca.pem>" when on, "" otherwise
local M = {}

local tls_ports = {}
local cert_dir

local function sh_quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function M.on()
    local v = os.getenv("KERYX_TEST_TLS")
    return v ~= nil and v ~= "" and v ~= "0"
end

function M.dir()
    if cert_dir then return cert_dir end
    local dir = os.tmpname()
    os.remove(dir)
    local root = os.getenv("PWD") or "."
    local ok = os.execute(sh_quote(root .. "/scripts/tls-test-certs.sh") .. " " .. sh_quote(dir) .. " >/dev/null")
    assert(ok == 0 or ok == true, "scripts/tls-test-certs.sh failed")
    -- Removed once this busted process is gone (the certificates are worth nothing anyway).
    os.execute(("owner=$PPID; ( while kill -0 $owner 2>/dev/null; do sleep 1; done; rm -rf %s ) " ..
        ">/dev/null 2>&1 &"):format(sh_quote(dir)))
    cert_dir = dir
    return dir
end

function M.mark(port) tls_ports[port] = true end
function M.is_tls(port) return tls_ports[port] == true end

-- lua-sec reports a read that timed out as "wantread" (or "wantwrite") and the peer's close
-- without close_notify in OpenSSL's words; the specs were written against lua-socket's
-- "timeout" and "closed". The proxy speaks lua-socket's words, and adds setoption (lua-sec's
-- object has none) through a lua-socket object lent the same descriptor.
local function socket_words(a, err, ...)
    if err == "wantread" or err == "wantwrite" then err = "timeout"
    elseif type(err) == "string" and (err:find("eof") or err:find("closed") or err:find("reset")) then
        err = "closed"
    end
    return a, err, ...
end

local Proxy = {}
Proxy.__index = function(self, k)
    if k == "setoption" then
        return function(_, name, value)
            local socket = require "socket"
            local t = socket.tcp()
            t:close()
            t:setfd(self._c:getfd())
            local r, e = t:setoption(name, value)
            t:setfd(-1)
            return r, e
        end
    end
    local v = self._c[k]
    if type(v) ~= "function" then return v end
    return function(_, ...) return socket_words(v(self._c, ...)) end
end

--- Wraps a connected TCP object; returns the TLS connection after the handshake, or nil and
--- the error. opts: timeout (s, default 5), protocol (lua-sec's, default "any"), alpn, sni.
function M.wrap(tcp, opts)
    local ssl = require "ssl"
    opts = opts or {}
    local conn, err = ssl.wrap(tcp, {
        mode = "client", protocol = opts.protocol or "any", verify = "peer",
        cafile = M.dir() .. "/ca.pem", options = { "all" }, alpn = opts.alpn,
    })
    if not conn then return nil, err end
    conn:sni(opts.sni or "localhost")
    conn:settimeout(opts.timeout or 5)
    local ok, herr = conn:dohandshake()
    if not ok then
        conn:close()
        return nil, herr
    end
    return setmetatable({ _c = conn }, Proxy)
end

function M.curl_args()
    if not M.on() then return "" end
    return "--cacert " .. sh_quote(M.dir() .. "/ca.pem")
end

return M
