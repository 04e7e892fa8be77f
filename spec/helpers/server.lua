-- Test harness: starts the real keryx binary (KERYX_BIN, default ./keryx) on a free port with
-- the environment a spec asks for, waits for "started server @", and stops it (removing its log
-- file unless KERYX_KEEP_LOGS=1). Also a small HTTP/1.1 client over lua-socket (raw bytes in,
-- parsed response out) for black-box checks, and the small waits and counts the specs share.
-- Assertions on responses live in http_assert.lua; a redis-server a spec may stop in
-- private_redis.lua.
local socket = require "socket"
local cjson = require "cjson"
local http_assert = require "http_assert"
local luassert = require "luassert"
local testing = require "keryx.testing" -- what app authors get: shared, not copied
local T = require "tls_client"

local M = {}

local BIN = os.getenv("KERYX_BIN") or "./keryx"
local ROOT = os.getenv("PWD") or "."
M.BIN, M.ROOT = BIN, ROOT

--- s quoted for /bin/sh.
local sh_quote = testing.sh_quote
M.sh_quote = sh_quote

local function read_file(path)
    local f = io.open(path, "rb")
    if not f then return "" end
    local s = f:read("*a")
    f:close()
    return s
end
M.read_file = read_file

local function sleep(s) socket.sleep(s) end
M.sleep = sleep

--- Polls fn() every 0.1 s for up to `seconds`; true as soon as it returns true, else false.
function M.eventually(seconds, fn)
    local deadline = socket.gettime() + seconds
    repeat
        if fn() then return true end
        sleep(0.1)
    until socket.gettime() > deadline
    return false
end

--- The resident memory (VmRSS) of process pid, in KiB.
function M.rss_kib(pid)
    local f = assert(io.open("/proc/" .. pid .. "/status"))
    local text = f:read("*a")
    f:close()
    return tonumber(text:match("VmRSS:%s+(%d+)"))
end

--- How many times the plain string needle occurs in text (non-overlapping).
function M.count(text, needle)
    local n, from = 0, 1
    while true do
        local s, e = text:find(needle, from, true)
        if not s then return n end
        n, from = n + 1, e + 1
    end
end

--- How many times the Lua pattern occurs in text.
function M.count_matches(text, pattern)
    local n = 0
    for _ in text:gmatch(pattern) do n = n + 1 end
    return n
end

-- ---- a throwaway redis-server per test run ---------------------------------------------------

--- A free TCP port on 127.0.0.1 (bound then released).
M.free_port = testing.free_port

local redis_instance

--- Starts (once per busted process) a real redis-server on a free port, without persistence.
--- A watcher kills it when this busted process exits, so no server outlives the run, and then
--- removes its directory (unless KERYX_KEEP_LOGS=1).
--- Returns { port, url, cli = function(...) → output of redis-cli }.
function M.redis()
    if redis_instance then return redis_instance end
    local port = M.free_port()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. sh_quote(dir))
    local p = io.popen("echo $PPID")
    local owner = p:read("*l")
    p:close()
    -- Once redis has gone, its directory (and log) goes too, unless KERYX_KEEP_LOGS=1.
    local cleanup = os.getenv("KERYX_KEEP_LOGS") == "1" and ":" or
        ("n=0; while kill -0 $rpid 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n+1)); done; rm -rf %s")
            :format(sh_quote(dir))
    local cmd = ("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no --dir %s " ..
        "--daemonize no > %s/redis.log 2>&1 & rpid=$!; " ..
        "( while kill -0 %s 2>/dev/null && kill -0 $rpid 2>/dev/null; do sleep 1; done; " ..
        "kill $rpid 2>/dev/null; %s ) " ..
        ">/dev/null 2>&1 & echo $rpid"):format(port, sh_quote(dir), sh_quote(dir), owner, cleanup)
    p = io.popen(cmd)
    local pid = tonumber(p:read("*l"))
    p:close()
    local inst = { port = port, pid = pid, url = "redis://127.0.0.1:" .. port .. "/0", dir = dir }
    function inst.cli(...)
        local args = { "redis-cli", "-p", tostring(port) }
        for _, a in ipairs({ ... }) do args[#args + 1] = sh_quote(a) end
        local h = io.popen(table.concat(args, " ") .. " 2>&1")
        local out = h:read("*a")
        h:close()
        return (out:gsub("\n$", ""))
    end
    local deadline = socket.gettime() + 5
    while socket.gettime() < deadline do
        if inst.cli("PING") == "PONG" then
            redis_instance = inst
            return inst
        end
        sleep(0.02)
    end
    error("redis-server did not start on port " .. port)
end

local Server = {}
Server.__index = Server

--- Starts keryx. opts: env (table), args (list, default {"start"}), app, config, cwd, bin (default KERYX_BIN),
--- wait (default true), timeout (s, default 10), tls (default: KERYX_TEST_TLS is set; then
--- WEB_SERVER_TLS_CERT/KEY name tls_client's throwaway certificate, and env may still set
--- them, or set them to false). Env defaults: WEB_SERVER_PORT=0, WEB_SERVER_HOST=127.0.0.1,
--- NODE_ENV=test, LOG_COLORIZE=false.
function M.start(opts)
    opts = opts or {}
    local env = {
        WEB_SERVER_PORT = "0", WEB_SERVER_HOST = "127.0.0.1", NODE_ENV = "test",
        LOG_COLORIZE = "false", LOG_LEVEL = "info",
    }
    if opts.redis ~= false and not (opts.env and opts.env.REDIS_URL) then
        env.REDIS_URL = M.redis().url
    end
    local tls = opts.tls
    if tls == nil then tls = T.on() end
    if tls then
        env.WEB_SERVER_TLS_CERT = T.dir() .. "/server.pem"
        env.WEB_SERVER_TLS_KEY = T.dir() .. "/server.key"
    end
    for k, v in pairs(opts.env or {}) do env[k] = v end
    local log = os.tmpname()
    local parts = { "env" }
    for k, v in pairs(env) do
        if v ~= false then parts[#parts + 1] = sh_quote(k .. "=" .. tostring(v)) end
    end
    parts[#parts + 1] = sh_quote(opts.bin or BIN)
    if opts.app then parts[#parts + 1] = "--app " .. sh_quote(opts.app) end
    if opts.config then parts[#parts + 1] = "--config " .. sh_quote(opts.config) end
    for _, a in ipairs(opts.args or { "start" }) do parts[#parts + 1] = sh_quote(a) end
    local cmd = table.concat(parts, " ")
    local cwd = opts.cwd or ROOT
    local p = io.popen("cd " .. sh_quote(cwd) .. " && { " .. cmd .. " > " .. sh_quote(log) .. " 2>&1 & echo $!; }")
    local pid = tonumber(p:read("*l"))
    p:close()
    local self = setmetatable({ pid = pid, log_path = log, env = env }, Server)
    if opts.wait == false then return self end
    local deadline = socket.gettime() + (opts.timeout or 10)
    while socket.gettime() < deadline do
        local text = read_file(log)
        local scheme, port = text:match("started server @ (https?)://[^:]+:(%d+)")
        if port then
            self.port = tonumber(port)
            self.tls = scheme == "https"
            if self.tls then T.mark(self.port) end
            return self
        end
        if not self:alive() then
            self:finish() -- already gone: nothing to signal
            error("keryx exited during start-up:\n" .. self:log(), 2)
        end
        sleep(0.02)
    end
    self:stop()
    error("keryx did not start in time:\n" .. self:log(), 2)
end

function Server:alive()
    -- An exited child may linger as a zombie until something reaps it: that counts as gone.
    local f = io.open("/proc/" .. self.pid .. "/stat", "r")
    if not f then return false end
    local stat = f:read("*l") or ""
    f:close()
    local state = stat:match("^%d+ %b() (%a)")
    return state ~= nil and state ~= "Z" and state ~= "X"
end

--- Asserts keryx is still running and answers GET /api/status with 200 within `timeout`
--- seconds (default 2): what a spec checks after trying to break something.
function Server:assert_serving(timeout)
    luassert.is_true(self:alive(), "keryx died:\n" .. self:log())
    local res = self:request { path = "/api/status", timeout = timeout or 2 }
    luassert.are.equal(200, res.status)
end

--- Everything keryx wrote so far (after stop(): what it had written by then).
function Server:log()
    if self.final_log then return self.final_log end
    return read_file(self.log_path)
end

--- Polls the log (every 20 ms, up to `timeout` s, default 2) until it holds the plain text
--- `needle`; returns the log as it then is (also when the needle never came).
function Server:wait_log(needle, timeout)
    local deadline = socket.gettime() + (timeout or 2)
    repeat
        local log = self:log()
        if log:find(needle, 1, true) then return log end
        sleep(0.02)
    until socket.gettime() > deadline
    return self:log()
end

--- Sends a signal (default TERM) and waits up to timeout seconds for the exit (then KILL).
--- Then fails on a sanitizer finding in the log, and removes the log file unless
--- KERYX_KEEP_LOGS=1 (a log with a finding is kept too; its path is in the error). Once the
--- server is stopped, further calls do nothing and :log() keeps answering from memory.
function Server:stop(sig, timeout)
    if not self.pid or self.final_log then return end
    os.execute("kill -" .. (sig or "TERM") .. " " .. self.pid .. " 2>/dev/null")
    local deadline = socket.gettime() + (timeout or 10)
    while self:alive() and socket.gettime() < deadline do sleep(0.02) end
    if self:alive() then os.execute("kill -KILL " .. self.pid .. " 2>/dev/null") end
    self:finish(3)
end

--- For a process that has exited: keeps the log in memory, fails on a sanitizer finding, then
--- removes the log file (unless KERYX_KEEP_LOGS=1).
function Server:finish(level)
    if self.final_log then return end
    local log = self:log()
    self.final_log = log
    -- Under the sanitizer build a finding is fatal to the run, even if every request passed.
    local finding = log:match("(ERROR: AddressSanitizer[^\n]*)") or log:match("(ERROR: LeakSanitizer[^\n]*)")
        or log:match("([^\n]*runtime error:[^\n]*)")
    if finding then
        error("sanitizer finding in keryx (log kept at " .. self.log_path .. "):\n" .. finding .. "\n" .. log,
            level or 2)
    end
    if os.getenv("KERYX_KEEP_LOGS") ~= "1" then os.remove(self.log_path) end
end

--- Stops srv when there is one (for teardown and finally blocks).
function M.stop(srv)
    if srv then srv:stop() end
end

--- Runs fn(srv) against a server started with opts (as M.start), always stopping it; an error
--- in fn is raised again after the stop.
function M.with_server(opts, fn)
    local srv = M.start(opts)
    local ok, err = pcall(fn, srv)
    srv:stop()
    if not ok then error(err, 0) end
end

--- The server's URL for path; https://localhost:port when it speaks TLS (the certificate's
--- name), else http://127.0.0.1:port.
function Server:url(path)
    if self.tls then return "https://localhost:" .. self.port .. (path or "/") end
    return "http://127.0.0.1:" .. self.port .. (path or "/")
end

--- Opens a connection to the server (timeout in seconds): TCP, and TLS over it when the server
--- speaks TLS (the handshake done). `from`: the local address to bind first (127.0.0.x).
function Server:connect(timeout, from)
    local c = assert(socket.tcp())
    c:settimeout(timeout or 5)
    if from then assert(c:bind(from, 0)) end
    assert(c:connect("127.0.0.1", self.port))
    if not self.tls then return c end
    return assert(T.wrap(c, { timeout = timeout }))
end

--- Opens a connection (from the local address `from`, default 127.0.0.1) that the server must
--- refuse at its connection cap, and checks the refusal: over plain HTTP the 503 with
--- Retry-After: 1 (returned, parsed); over TLS the close without a handshake (src/tls.h
--- kx_tls_refuse: a TLS client cannot read a plain 503), then nil.
function M.assert_refused(srv, from)
    local c = assert(socket.tcp())
    c:settimeout(2)
    if from then assert(c:bind(from, 0)) end
    assert(c:connect("127.0.0.1", srv.port))
    if srv.tls then
        local conn, err = T.wrap(c, { timeout = 2 })
        if conn then conn:close() end
        assert(not conn, "a TLS connection over the cap got a handshake")
        return nil, err
    end
    local res, err = M.read_response(c)
    c:close()
    assert(res, "no 503 over the cap: " .. tostring(err))
    assert(res.status == 503, "over the cap: status " .. res.status)
    assert(res.headers["retry-after"] == "1", "over the cap: no Retry-After: 1")
    return res
end

--- Whether this run speaks TLS (KERYX_TEST_TLS: make test-integration-tls).
function M.over_tls()
    return T.on()
end

--- "https" when srv speaks TLS, else "http" (for log lines and URLs a spec asserts).
function M.scheme(srv)
    return srv and srv.tls and "https" or (not srv and T.on() and "https") or "http"
end

--- Options for a curl command line against srv: trusts the throwaway CA when TLS is on.
function M.curl_args()
    return T.curl_args()
end

-- ---- HTTP over raw sockets ----------------------------------------------------------------

--- Reads one HTTP response from connection c. Returns { status, reason, headers (lower-case
--- names → value; repeated names joined with ", "), header_list, body, raw } or nil, err.
function M.read_response(c, method)
    local line, err = c:receive("*l")
    if not line then return nil, err end
    local status, reason = line:match("^HTTP/1%.%d (%d%d%d) ?(.*)$")
    if not status then return nil, "bad status line: " .. line end
    local res = { status = tonumber(status), reason = reason, headers = {}, header_list = {}, raw = line .. "\r\n" }
    while true do
        local h, herr = c:receive("*l")
        if not h then return nil, herr end
        res.raw = res.raw .. h .. "\r\n"
        if h == "" then break end
        http_assert.add_header(res, h)
    end
    local len = tonumber(res.headers["content-length"] or "")
    if method == "HEAD" or res.status == 204 or res.status == 304 then
        res.body = ""
    elseif len then
        res.body = len > 0 and assert(c:receive(len)) or ""
    else
        res.body = c:receive("*a") or ""
    end
    res.raw = res.raw .. res.body
    return res
end

--- Builds request bytes. req: method, path, headers (table or list of {k, v}), body, version.
function M.build(req)
    local lines = { ("%s %s HTTP/%s"):format(req.method or "GET", req.path or "/", req.version or "1.1") }
    local have_host, have_len = false, false
    local hs = req.headers or {}
    local list = {}
    if hs[1] then list = hs else for k, v in pairs(hs) do list[#list + 1] = { k, v } end end
    for _, kv in ipairs(list) do
        local lk = kv[1]:lower()
        if lk == "host" then have_host = true end
        if lk == "content-length" or lk == "transfer-encoding" then have_len = true end
        lines[#lines + 1] = kv[1] .. ": " .. kv[2]
    end
    if not have_host and req.host ~= false then lines[#lines + 1] = "Host: localhost" end
    if req.body and not have_len then lines[#lines + 1] = "Content-Length: " .. #req.body end
    return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (req.body or "")
end

--- One request on a fresh connection; returns the parsed response.
function Server:request(req)
    if type(req) == "string" then req = { path = req } end
    local c = self:connect(req.timeout)
    assert(c:send(M.build(req)))
    local res, err = M.read_response(c, req.method)
    c:close()
    assert(res, err)
    return res
end

--- A GET (or `method`) of path with headers (a map or a list of {name, value}).
function M.get(srv, path, headers, method)
    return srv:request { method = method or "GET", path = path, headers = headers }
end

--- One request with a JSON body: a table body is encoded, a string body sent as it is; a body
--- gets Content-Type `ctype` (default application/json). cookie: the raw Cookie header value.
function M.call(srv, method, path, body, cookie, ctype)
    local headers = {}
    if body ~= nil then headers[#headers + 1] = { "Content-Type", ctype or "application/json" } end
    if cookie then headers[#headers + 1] = { "Cookie", cookie } end
    if type(body) == "table" then body = cjson.encode(body) end
    return srv:request { method = method, path = path, headers = headers, body = body }
end

--- Sends raw bytes; returns everything the server sent until it closed or `timeout` passed.
function Server:raw(bytes, timeout)
    local c = self:connect(timeout or 2)
    c:send(bytes)
    local out = {}
    while true do
        local chunk, err, partial = c:receive(4096)
        local got = chunk or partial
        if got and #got > 0 then out[#out + 1] = got end
        if not chunk then
            local closed = err == "closed"
            c:close()
            return table.concat(out), closed
        end
    end
end

--- Decodes a JSON body (cjson) or fails the test.
function M.json(body)
    return cjson.decode(body)
end

--- Runs `keryx <args...> start` expecting start-up to be refused: returns the exit code and
--- the combined output. `timeout 5` bounds a keryx that starts anyway (it then exits 124).
--- Env: WEB_SERVER_PORT=0, WEB_SERVER_HOST=127.0.0.1, NODE_ENV=test, LOG_COLORIZE=false, then
--- `env` (no REDIS_URL unless env has one).
function M.start_fail(env, args)
    local out = os.tmpname()
    local parts = { "timeout", "5", "env", "WEB_SERVER_PORT=0", "WEB_SERVER_HOST=127.0.0.1",
        "NODE_ENV=test", "LOG_COLORIZE=false" }
    for k, v in pairs(env or {}) do parts[#parts + 1] = sh_quote(k .. "=" .. v) end
    parts[#parts + 1] = sh_quote(BIN)
    for _, a in ipairs(args or {}) do parts[#parts + 1] = sh_quote(a) end
    parts[#parts + 1] = "start"
    local cmd = "cd " .. sh_quote(ROOT) .. " && " .. table.concat(parts, " ") .. " > " .. sh_quote(out) ..
        " 2>&1; echo $?"
    local p = assert(io.popen(cmd))
    local code = tonumber(p:read("*l"))
    p:close()
    local text = read_file(out)
    os.remove(out)
    return code, text
end

--- Runs the keryx CLI; returns exit code, stdout, stderr.
function M.cli(args, env, cwd)
    local out, errf = os.tmpname(), os.tmpname()
    local parts = { "env", "NODE_ENV=test", "LOG_COLORIZE=false" }
    if not (env and env.REDIS_URL) then parts[#parts + 1] = sh_quote("REDIS_URL=" .. M.redis().url) end
    for k, v in pairs(env or {}) do parts[#parts + 1] = sh_quote(k .. "=" .. v) end
    parts[#parts + 1] = sh_quote(BIN)
    for _, a in ipairs(args) do parts[#parts + 1] = sh_quote(a) end
    local cmd = "cd " .. sh_quote(cwd or ROOT) .. " && " .. table.concat(parts, " ") ..
        " > " .. sh_quote(out) .. " 2> " .. sh_quote(errf)
    local ok, _, code = os.execute(cmd)
    if type(ok) == "number" then code = ok / 256 end -- Lua 5.1: os.execute returns the status
    local so, se = read_file(out), read_file(errf)
    os.remove(out)
    os.remove(errf)
    return code, so, se
end

return M
