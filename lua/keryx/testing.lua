-- keryx.testing — test an app from a busted spec in its directory, through the real keryx
-- binary: a private redis-server on a free port, keryx started on another free port, HTTP
-- requests (JSON in and out, a cookie jar), WebSockets (keryx.testing.ws), `keryx run`, Redis
-- commands and a flush between tests (README, "Testing your app").
--
--   local testing = require "keryx.testing"
--   local app = testing.start()                 -- serves ./app with ./config.lua (if present)
--   local res = app:get("/api/hello?name=Ada")  -- { status, headers, body, json }
--   app:put("/api/user", { name = "Ada", ... }) -- a table body is sent as JSON
--   local ws = app:ws()                         -- a WebSocket carrying the jar's cookies
--   ws:subscribe("messages"); ws:broadcast("messages", 2)
--   app:run("hello", { name = "Ada" })          -- `keryx run`: code, json, stdout, stderr
--   app:redis("GET", "k"); app:flush()          -- the private Redis (FLUSHALL between tests)
--   app:stop()                                  -- keryx, then redis-server; files removed
--
-- The binary: opts.bin, else $KERYX_BIN, else `keryx` on PATH. Runs in the test process only
-- (plain LuaJIT + lua-socket + lua-cjson): never inside the server, never requires keryx.core.
-- A watcher ends keryx and redis-server when the test process exits without app:stop().
local socket = require "socket"
local cjson = require "cjson"
local ws_client = require "keryx.testing.ws"

local M = {}

M.ws_client = ws_client

local function sh_quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.sh_quote = sh_quote

local function read_file(path)
    local f = io.open(path, "rb")
    if not f then return "" end
    local s = f:read("*a")
    f:close()
    return s
end

local function shell_line(cmd)
    local p = assert(io.popen(cmd))
    local line = p:read("*l")
    p:close()
    return line
end

--- Polls fn() every 20 ms for up to `seconds`: true as soon as it returns true, else false.
function M.eventually(seconds, fn)
    local deadline = socket.gettime() + seconds
    repeat
        if fn() then return true end
        socket.sleep(0.02)
    until socket.gettime() > deadline
    return false
end

--- A free TCP port on 127.0.0.1 (bound, then released).
function M.free_port()
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    return tonumber(port)
end

--- The keryx binary: bin, else $KERYX_BIN, else `keryx` on PATH (an error naming all three).
function M.find_bin(bin)
    bin = bin or os.getenv("KERYX_BIN")
    if bin and bin ~= "" then return bin end
    local found = shell_line("command -v keryx 2>/dev/null")
    if found and found ~= "" then return found end
    error("keryx.testing: no keryx binary (pass bin = ..., set KERYX_BIN, or put keryx on PATH)", 3)
end

-- Starts `cmd` (a shell command line) in the background, its output into `log`; a watcher ends
-- it (TERM) once the test process (the shell's parent) is gone. Returns its pid.
local function spawn(cmd, log)
    local owner = shell_line("echo $PPID")
    local line = ("{ %s ; } > %s 2>&1 & pid=$!; " ..
        "( while kill -0 %s 2>/dev/null && kill -0 $pid 2>/dev/null; do sleep 1; done; " ..
        "kill $pid 2>/dev/null ) >/dev/null 2>&1 & echo $pid"):format(cmd, sh_quote(log), owner)
    return tonumber(shell_line(line))
end

local function alive(pid)
    local f = io.open("/proc/" .. pid .. "/stat", "r")
    if not f then return false end
    local stat = f:read("*l") or ""
    f:close()
    local state = stat:match("^%d+ %b() (%a)")
    return state ~= nil and state ~= "Z" and state ~= "X"
end

local function stop_pid(pid, timeout)
    if not pid or not alive(pid) then return end
    os.execute("kill -TERM " .. pid .. " 2>/dev/null")
    if not M.eventually(timeout or 10, function() return not alive(pid) end) then
        os.execute("kill -KILL " .. pid .. " 2>/dev/null")
    end
end

-- ---- Redis (RESP over lua-socket) ----------------------------------------------------------

local function resp_read(c)
    local line, err = c:receive("*l")
    if not line then return nil, err end
    local kind, rest = line:sub(1, 1), line:sub(2)
    if kind == "+" then return rest end
    if kind == "-" then return nil, rest end
    if kind == ":" then return tonumber(rest) end
    if kind == "$" then
        local n = tonumber(rest)
        if n < 0 then return cjson.null end
        local s = c:receive(n + 2)
        return s and s:sub(1, n)
    end
    if kind == "*" then
        local n = tonumber(rest)
        if n < 0 then return cjson.null end
        local out = {}
        for i = 1, n do
            local v, e = resp_read(c)
            if v == nil then v = { err = e } end
            out[i] = v
        end
        return out
    end
    return nil, "bad reply: " .. line
end

local function resp_command(args)
    local parts = { "*" .. #args }
    for _, a in ipairs(args) do
        a = tostring(a)
        parts[#parts + 1] = "$" .. #a
        parts[#parts + 1] = a
    end
    return table.concat(parts, "\r\n") .. "\r\n"
end

--- One command on a new connection to 127.0.0.1:port: the reply (string, number, table, or
--- cjson.null), or nil, the error.
function M.redis_call(port, ...)
    local c = socket.tcp()
    c:settimeout(5)
    local ok, err = c:connect("127.0.0.1", port)
    if not ok then return nil, err end
    c:send(resp_command({ ... }))
    local v, rerr = resp_read(c)
    c:close()
    return v, rerr
end

--- A redis-server of the test's own on a free port (no persistence), in a fresh directory.
--- → { port, url, dir, pid, stop = function }
function M.start_redis()
    local port = M.free_port()
    local dir = shell_line("mktemp -d")
    local cmd = ("exec redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no --dir %s")
        :format(port, sh_quote(dir))
    local r = { port = port, url = "redis://127.0.0.1:" .. port .. "/0", dir = dir }
    r.pid = spawn(cmd, dir .. "/redis.log")
    if not M.eventually(5, function() return M.redis_call(port, "PING") == "PONG" end) then
        error("keryx.testing: redis-server did not start on port " .. port .. ":\n" .. read_file(dir .. "/redis.log"))
    end
    function r.stop()
        stop_pid(r.pid, 5)
        os.execute("rm -rf " .. sh_quote(dir))
    end
    return r
end

-- ---- HTTP ----------------------------------------------------------------------------------

local function read_chunked(c)
    local out = {}
    while true do
        local size_line = c:receive("*l")
        local n = size_line and tonumber(size_line:match("^%x+"), 16)
        if not n or n == 0 then
            c:receive("*l")
            return table.concat(out)
        end
        out[#out + 1] = c:receive(n) or ""
        c:receive("*l")
    end
end

-- One response from c: { status, headers (lower-case names; repeats joined with ", "),
-- header_list, cookies (the Set-Cookie lines), body, json (decoded when the body is JSON) }.
local function read_response(c, method)
    local line, err = c:receive("*l")
    if not line then return nil, err end
    local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
    if not status then return nil, "bad status line: " .. line end
    local res = { status = status, headers = {}, header_list = {}, set_cookies = {} }
    while true do
        local h = c:receive("*l")
        if not h or h == "" then break end
        ws_client.add_header(res, h)
        local name, value = h:match("^([^:]+):%s*(.-)%s*$")
        if name and name:lower() == "set-cookie" then res.set_cookies[#res.set_cookies + 1] = value end
    end
    local len = tonumber(res.headers["content-length"] or "")
    if method == "HEAD" or status == 204 or status == 304 then
        res.body = ""
    elseif (res.headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
        res.body = read_chunked(c)
    elseif len then
        res.body = len > 0 and (c:receive(len) or "") or ""
    else
        res.body = c:receive("*a") or ""
    end
    local ctype = res.headers["content-type"] or ""
    if ctype:find("json", 1, true) and res.body ~= "" then
        local ok, v = pcall(cjson.decode, res.body)
        if ok then res.json = v end
    end
    return res
end

-- The jar keeps name → value; Max-Age=0, an empty value or an Expires in the past drop it.
local function store_cookies(jar, set_cookies)
    for _, sc in ipairs(set_cookies) do
        local name, value = sc:match("^%s*([^=;]+)=([^;]*)")
        if name then
            local attrs = sc:lower()
            local gone = value == "" or attrs:find("max%-age=0") or attrs:find("max%-age=%-")
                or attrs:find("expires=thu, 01 jan 1970", 1, true)
            jar[name] = (not gone) and value or nil
        end
    end
end

local function cookie_header(jar)
    local names = {}
    for k in pairs(jar) do names[#names + 1] = k end
    if #names == 0 then return nil end
    table.sort(names)
    for i, k in ipairs(names) do names[i] = k .. "=" .. jar[k] end
    return table.concat(names, "; ")
end

-- ---- the app ------------------------------------------------------------------------------

local App = {}
App.__index = App

--- Starts the app. opts (all optional):
---   root     the project directory (default: the current directory)
---   app      the app directory (default "app", relative to root)
---   config   the config file (default "config.lua" in root when it exists)
---   env      extra environment variables (a table; false unsets a default)
---   bin      the keryx binary (default: $KERYX_BIN, then `keryx` on PATH)
---   redis_url  use this Redis instead of starting a private redis-server
---   timeout  seconds to wait for "started server @" (default 10)
--- Environment defaults: NODE_ENV=test, WEB_SERVER_HOST=127.0.0.1, WEB_SERVER_PORT=<free>,
--- LOG_COLORIZE=false, REDIS_URL=<the private Redis>.
function M.start(opts)
    opts = opts or {}
    local self = setmetatable({ jar = {} }, App)
    self.bin = M.find_bin(opts.bin)
    self.root = opts.root or "."
    self.dir = shell_line("mktemp -d")
    self.log_path = self.dir .. "/keryx.log"
    if not opts.redis_url then self.redis_server = M.start_redis() end
    self.redis_url = opts.redis_url or self.redis_server.url
    self.redis_port = tonumber(self.redis_url:match("^redis://[^/]-:(%d+)")) or 6379
    local env = {
        NODE_ENV = "test", WEB_SERVER_HOST = "127.0.0.1", WEB_SERVER_PORT = tostring(M.free_port()),
        LOG_COLORIZE = "false", REDIS_URL = self.redis_url,
    }
    for k, v in pairs(opts.env or {}) do env[k] = v end
    self.env = env
    local args = {}
    if opts.app then args[#args + 1] = "--app " .. sh_quote(opts.app) end
    local config = opts.config
    if not config and io.open(self.root .. "/config.lua", "r") then config = "config.lua" end
    if config then args[#args + 1] = "--config " .. sh_quote(config) end
    self.args = table.concat(args, " ")
    self.pid = spawn(("cd %s && exec %s %s %s start"):format(sh_quote(self.root), self:env_prefix(),
        sh_quote(self.bin), self.args), self.log_path)
    local ok = M.eventually(opts.timeout or 10, function()
        local port = read_file(self.log_path):match("started server @ http://[^:]+:(%d+)")
        if port then self.port = tonumber(port) end
        return self.port ~= nil or not alive(self.pid)
    end)
    if not ok or not self.port then
        local log = self:log()
        self:stop()
        error("keryx.testing: keryx did not start (" .. self.bin .. "):\n" .. log, 2)
    end
    self.base_url = "http://127.0.0.1:" .. self.port
    return self
end

function App:env_prefix()
    local parts = { "env" }
    local names = {}
    for k in pairs(self.env) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do
        if self.env[k] ~= false then parts[#parts + 1] = sh_quote(k .. "=" .. tostring(self.env[k])) end
    end
    return table.concat(parts, " ")
end

--- Everything keryx wrote so far (stdout and stderr).
function App:log()
    return self.final_log or read_file(self.log_path)
end

--- The URL of path on the running app.
function App:url(path)
    return self.base_url .. (path or "/")
end

--- One HTTP request. req: method (GET), path, body (a table is sent as JSON), headers (a map),
--- content_type, cookies (false: send none; default: the app's jar), timeout (s, 5).
--- → { status, headers, header_list, set_cookies, body, json }. Set-Cookie lands in the jar.
function App:request(req)
    if type(req) == "string" then req = { path = req } end
    local method = req.method or "GET"
    local body = req.body
    local headers = {}
    for k, v in pairs(req.headers or {}) do headers[#headers + 1] = k .. ": " .. v end
    if type(body) == "table" then
        body = cjson.encode(body)
        headers[#headers + 1] = "Content-Type: " .. (req.content_type or "application/json")
    elseif body ~= nil then
        headers[#headers + 1] = "Content-Type: " .. (req.content_type or "application/json")
    end
    local jar = req.cookies == false and {} or self.jar
    local cookie = cookie_header(jar)
    if cookie then headers[#headers + 1] = "Cookie: " .. cookie end
    if body then headers[#headers + 1] = "Content-Length: " .. #body end
    local head = ("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s\r\n"):format(method,
        req.path or "/", self.port, #headers > 0 and (table.concat(headers, "\r\n") .. "\r\n") or "")
    local c = assert(socket.tcp())
    c:settimeout(req.timeout or 5)
    assert(c:connect("127.0.0.1", self.port))
    assert(c:send(head .. (body or "")))
    local res, err = read_response(c, method)
    c:close()
    if not res then error("keryx.testing: " .. method .. " " .. tostring(req.path) .. ": " .. tostring(err), 2) end
    if req.cookies ~= false then store_cookies(self.jar, res.set_cookies) end
    return res
end

function App:get(path, headers) return self:request { path = path, headers = headers } end
function App:post(path, body, headers)
    return self:request { method = "POST", path = path, body = body, headers = headers }
end
function App:put(path, body, headers)
    return self:request { method = "PUT", path = path, body = body, headers = headers }
end
function App:patch(path, body, headers)
    return self:request { method = "PATCH", path = path, body = body, headers = headers }
end
function App:delete(path, body, headers)
    return self:request { method = "DELETE", path = path, body = body, headers = headers }
end

--- Forgets every cookie (a new anonymous visitor).
function App:clear_cookies()
    self.jar = {}
end

--- Opens a WebSocket at path ("/") carrying the jar's cookies (a logged-in session follows).
--- → a keryx.testing.ws client (ws:action, ws:subscribe, ws:broadcast, ws:close, …); raises
--- when the upgrade is refused.
function App:ws(path, headers)
    local h = {}
    for k, v in pairs(headers or {}) do h[k] = v end
    h.Cookie = h.Cookie or cookie_header(self.jar)
    local ws, res = ws_client.connect(self.port, path or "/", h)
    if not ws then
        local why = type(res) == "table" and (res.status .. " " .. tostring(res.body)) or tostring(res)
        error("keryx.testing: WebSocket upgrade refused: " .. why, 2)
    end
    return ws
end

--- Subscribes a new WebSocket to channel and returns it once subscribed; ws:broadcast(channel,
--- timeout) then waits for the next message (raises when the subscription is refused).
function App:subscribe(channel, headers)
    local ws = self:ws("/", headers)
    local reply, err = ws:subscribe(channel)
    if type(reply) ~= "table" or reply.error then
        ws:close(1000)
        error("keryx.testing: subscribe " .. channel .. " refused: " ..
            (type(reply) == "table" and cjson.encode(reply.error) or tostring(err)), 2)
    end
    return ws
end

--- `keryx run ACTION --k v …` against the same Redis and config. params: a table (a list value
--- repeats the flag). → code, json (the decoded stdout or nil), stdout, stderr.
function App:run(action, params)
    local argv = { "run", action }
    local names = {}
    for k in pairs(params or {}) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do
        local v = params[k]
        for _, x in ipairs(type(v) == "table" and v or { v }) do
            argv[#argv + 1] = "--" .. k
            argv[#argv + 1] = tostring(x)
        end
    end
    argv[#argv + 1] = "-q"
    for i, a in ipairs(argv) do argv[i] = sh_quote(a) end
    local out, errf = self.dir .. "/run.out", self.dir .. "/run.err"
    local cmd = ("cd %s && %s %s %s %s > %s 2> %s; echo $?"):format(sh_quote(self.root), self:env_prefix(),
        sh_quote(self.bin), self.args, table.concat(argv, " "), sh_quote(out), sh_quote(errf))
    local code = tonumber(shell_line(cmd))
    local so, se = read_file(out), read_file(errf)
    local ok, doc = pcall(cjson.decode, so)
    return code, ok and doc or nil, so, se
end

--- One Redis command on the app's Redis: the reply, or nil, the error.
function App:redis(...)
    return M.redis_call(self.redis_port, ...)
end

--- Empties the app's Redis (FLUSHALL): call it between tests (before_each).
function App:flush()
    local ok, err = self:redis("FLUSHALL")
    if ok ~= "OK" then error("keryx.testing: FLUSHALL failed: " .. tostring(err), 2) end
end

--- Stops keryx (SIGTERM, drained; SIGKILL after `timeout` s, default 10), then the private
--- redis-server, and removes the temporary files. The log stays readable through app:log().
function App:stop(timeout)
    if self.stopped then return end
    self.stopped = true
    stop_pid(self.pid, timeout)
    self.final_log = read_file(self.log_path)
    if self.redis_server then self.redis_server.stop() end
    os.execute("rm -rf " .. sh_quote(self.dir))
end

return M
