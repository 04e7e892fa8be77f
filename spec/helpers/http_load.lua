-- A continuous HTTP load for the reload specs: run as its own process, it sends GET requests
-- one after another for `seconds`, alternating a kept-alive connection and a fresh one (so a
-- reload is crossed both by reused connections and by new accepts), and writes what happened:
--
--   luajit spec/helpers/http_load.lua PORT PATH SECONDS OUTFILE
--   OUTFILE: "ok=N fail=M" on the first line, then one line per failure (at most 20)
--
-- A failure is any answer but 200, and any socket error (refused, reset, closed before a
-- whole answer, timeout). A server that ends a kept-alive connection with `Connection: close`
-- after a complete answer is following HTTP/1.1: the next request opens a new connection.
local socket = require "socket"

local port, path, seconds, outfile = tonumber(arg[1]), arg[2], tonumber(arg[3]), arg[4]
local REQUEST = "GET " .. path .. " HTTP/1.1\r\nHost: localhost\r\n\r\n"

local ok, fail, errors = 0, 0, {}

local function failed(why)
    fail = fail + 1
    if #errors < 20 then errors[#errors + 1] = why end
end

local function connect()
    local c = socket.tcp()
    c:settimeout(10)
    local r, err = c:connect("127.0.0.1", port)
    if not r then
        c:close()
        return nil, "connect: " .. tostring(err)
    end
    return c
end

--- One request on c: true, keep (the connection may be reused) | nil, why.
local function exchange(c)
    local sent, serr = c:send(REQUEST)
    if not sent then return nil, "send: " .. tostring(serr) end
    local line, err = c:receive("*l")
    if not line then return nil, "status line: " .. tostring(err) end
    local status = tonumber(line:match("^HTTP/1%.1 (%d%d%d)"))
    local len, keep = 0, true
    repeat
        local h, herr = c:receive("*l")
        if not h then return nil, "headers: " .. tostring(herr) end
        local name, value = h:match("^([^:]+):%s*(.*)$")
        name = name and name:lower()
        if name == "content-length" then len = tonumber(value) end
        if name == "connection" and value:lower() == "close" then keep = false end
    until h == ""
    if len > 0 then
        local body, berr = c:receive(len)
        if not body then return nil, "body: " .. tostring(berr) end
    end
    if status ~= 200 then return nil, "status " .. tostring(status) end
    return true, keep
end

local kept -- the kept-alive connection, opened on demand
local n = 0
local deadline = socket.gettime() + seconds
while socket.gettime() < deadline do
    n = n + 1
    local fresh = n % 2 == 0
    local c, err
    if fresh then
        c, err = connect()
    else
        if not kept then kept, err = connect() end
        c = kept
    end
    if not c then
        failed(err)
    else
        local r, keep = exchange(c)
        if r then ok = ok + 1 else failed(keep) end
        if fresh or not r or not keep then
            c:close()
            if not fresh then kept = nil end
        end
    end
end
if kept then kept:close() end

local f = assert(io.open(outfile, "w"))
f:write(("ok=%d fail=%d\n"):format(ok, fail))
for _, e in ipairs(errors) do f:write(e, "\n") end
f:close()
