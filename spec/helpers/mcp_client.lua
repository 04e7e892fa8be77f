-- mcp_client.lua — a raw-HTTP MCP Streamable HTTP client for the mcp_* integration specs:
-- JSON-RPC POSTs with a bearer token, initialize, the GET notification stream read off a
-- raw socket. Every step returns the parsed response so a spec can check status and headers.
local H = require "server"
local O = require "oauth_client"
local cjson = require "cjson"
local socket = require "socket"

local M = {}

M.HOST = "auth.example.com" -- APPLICATION_URL's host under O.env()
M.ACCEPT = "application/json, text/event-stream"

--- Headers of an MCP request: Host, Accept, the bearer (token false: none) and the session.
--- extra: {name, value} pairs appended (a pair whose value is false removes that header).
function M.headers(token, sid, extra)
    local hs = { Host = M.HOST, Accept = M.ACCEPT }
    if token then hs.Authorization = "Bearer " .. token end
    if sid then hs["Mcp-Session-Id"] = sid end
    for _, kv in ipairs(extra or {}) do hs[kv[1]] = kv[2] or nil end
    local list = {}
    for k, v in pairs(hs) do list[#list + 1] = { k, v } end
    table.sort(list, function(a, b) return a[1] < b[1] end)
    return list
end

--- POST /mcp of body (a table is JSON-encoded; a string sent as it is).
function M.post(srv, token, body, sid, extra)
    local hs = M.headers(token, sid, extra)
    hs[#hs + 1] = { "Content-Type", "application/json" }
    if type(body) == "table" then body = cjson.encode(body) end
    return srv:request { method = "POST", path = "/mcp", headers = hs, body = body }
end

function M.initialize_body(version, id)
    return { jsonrpc = "2.0", id = id or 1, method = "initialize",
        params = { protocolVersion = version or "2025-06-18", capabilities = {},
            clientInfo = { name = "spec", version = "1" } } }
end

--- initialize + notifications/initialized: the session id (the spec fails on a refusal).
function M.open(srv, token, version)
    local res = M.post(srv, token, M.initialize_body(version))
    assert(res.status == 200, res.status .. " " .. res.body)
    local sid = res.headers["mcp-session-id"]
    assert(sid, "no Mcp-Session-Id")
    local ack = M.post(srv, token, { jsonrpc = "2.0", method = "notifications/initialized" }, sid)
    assert(ack.status == 202, ack.status .. " " .. ack.body)
    return sid, cjson.decode(res.body)
end

--- One request of a session: decoded body, response.
function M.rpc(srv, token, sid, method, params, id)
    local res = M.post(srv, token, { jsonrpc = "2.0", id = id or 7, method = method, params = params }, sid)
    local ok, v = pcall(cjson.decode, res.body)
    return ok and v or nil, res
end

--- tools/call name(args): the result table (the spec fails on a JSON-RPC error), response.
function M.call(srv, token, sid, name, args)
    local v, res = M.rpc(srv, token, sid, "tools/call", { name = name, arguments = args or {} })
    assert(v and v.result, res.status .. " " .. res.body)
    return v.result, res
end

--- A fresh user signed up through the app, its client and tokens (email must be unique).
function M.other_user_tokens(srv, email)
    local res = H.call(srv, "PUT", "/api/user", { name = "Other User", email = email, password = O.PASSWORD })
    assert(res.status == 200, res.body)
    local client_id = O.client(srv)
    local page = O.sign_in(srv, O.authorize_params(client_id), email, O.PASSWORD)
    assert(page.status == 302, page.body)
    local code = O.query_of(page.headers["location"]).code
    local t = O.exchange(srv, client_id, code)
    assert(t.status == 200, t.body)
    return client_id, cjson.decode(t.body)
end

-- ---- the GET stream ------------------------------------------------------------------------

local Stream = {}
Stream.__index = Stream

--- Opens GET /mcp; returns a stream whose head (status line + headers) has been read.
function M.stream(srv, token, sid, extra)
    local c = srv:connect(5)
    assert(c:send(H.build { method = "GET", path = "/mcp", headers = M.headers(token, sid, extra) }))
    local head = {}
    while true do
        local line = assert(c:receive("*l"))
        if line == "" then break end
        head[#head + 1] = line
    end
    return setmetatable({ sock = c, head = table.concat(head, "\n"), buf = "" }, Stream)
end

function Stream:status()
    return tonumber(self.head:match("^HTTP/1%.1 (%d+)"))
end

--- The next `data:` JSON of the stream satisfying pred, within timeout seconds, or nil.
function Stream:next(pred, timeout)
    local deadline = socket.gettime() + (timeout or 3)
    while true do
        for data in self.buf:gmatch("data: ([^\r\n]+)") do
            local ok, v = pcall(cjson.decode, data)
            if ok and (pred == nil or pred(v)) then
                self.buf = self.buf:sub((self.buf:find(data, 1, true)) + #data)
                return v
            end
        end
        local left = deadline - socket.gettime()
        if left <= 0 then return nil end
        self.sock:settimeout(math.min(left, 0.1))
        local chunk, err, partial = self.sock:receive(4096)
        local got = chunk or partial
        if got and #got > 0 then self.buf = self.buf .. got end
        if err == "closed" then
            self.closed = true
            if not got or #got == 0 then return nil end
        end
    end
end

function Stream:close()
    self.sock:close()
end

return M
