-- The MCP Streamable HTTP endpoint (README "Use your actions from an AI agent"): POST (JSON-RPC),
-- GET (the SSE stream of notifications) and DELETE (end the session) on MCP_SERVER_ROUTE, as
-- internal actions on an absolute route, loaded by keryx.boot only with MCP_SERVER_ENABLED
-- (off, the route is a plain 404). The rules are keryx.mcp's; each action only orders them:
-- guard (Origin, Host, bearer, protocol version) → body → session → dispatch.
-- The bodies are read raw (raw_body): JSON-RPC batches are arrays and a malformed body must be
-- answered with a JSON-RPC error, not the API's parameter error.
local keryx = require "keryx"
local core = require "keryx.core"
local json = require "keryx.json"
local mcp = require "keryx.mcp"
local channels = require "keryx.channels"

local route = core.config.server.mcp.route
local rawget, ipairs, pcall, error, find = rawget, ipairs, pcall, error, string.find
local clock_ms = core.clock_ms

-- The GET stream looks at the feed every POLL_MS, and every KEEPALIVE_MS checks that its
-- session still exists and that the client is still there (a comment line it must accept).
local POLL_MS, KEEPALIVE_MS = 50, 5000

local function endpoint(def)
    def.internal = true
    def.raw_body = true
    def.web.absolute = true
    def.web.route = route
    return keryx.action(def)
end

local function refuse(conn, status, message)
    conn.status = status
    return { error = message }
end

-- A notification or a client's response needs no answer: 202 and an empty body.
local function accepted(conn)
    conn.status = 202
    conn:set_content_type("text/plain; charset=utf-8")
    return ""
end

-- JSON, or one SSE event when the client's Accept names text/event-stream only.
local function reply(conn, value)
    if not mcp.wants_sse_only(conn:header("Accept")) then return value end
    local s = conn:stream { sse = true }
    if s then
        s:event(nil, value)
        s:close()
    end
    return nil
end

-- The session the request names, checked against the token: rec, sid | nil, answer.
local function session_of(conn, who)
    local sid = conn:header("Mcp-Session-Id")
    if sid == nil then return nil, refuse(conn, 400, "Mcp-Session-Id header required") end
    local rec, status = mcp.load_session(sid, who)
    if rec then return rec, sid end
    if status == 403 then return nil, refuse(conn, 403, "Token does not match session") end
    return nil, refuse(conn, 404, "Session not found")
end

-- GET and DELETE: the guard, then the session they name. Returns who, rec, sid or nil, the answer.
local function guarded_session(conn)
    local who, refused = mcp.guard(conn)
    if not who then return nil, refused end
    local rec, sid = session_of(conn, who)
    if not rec then return nil, sid end
    return who, rec, sid
end

local function open(conn, who, msg, batch)
    if batch or type(msg) ~= "table" or msg.method ~= "initialize" then
        return mcp.rpc_error_answer(conn, 400, nil, -32000, "Bad Request: Mcp-Session-Id header required")
    end
    if msg.jsonrpc ~= "2.0" or (type(msg.id) ~= "string" and type(msg.id) ~= "number") then
        return mcp.rpc_error_answer(conn, 400, nil, mcp.INVALID_REQUEST, "Invalid Request")
    end
    local answer, sid = mcp.initialize(who, msg)
    conn:set_header("Mcp-Session-Id", sid)
    return reply(conn, answer)
end

local function run_batch(conn, ctx, list, version)
    if mcp.batches_refused(version) then
        return mcp.rpc_error_answer(conn, 400, nil, mcp.INVALID_REQUEST,
            "Batches are not supported by protocol version " .. version)
    end
    if #list == 0 then return mcp.rpc_error_answer(conn, 400, nil, mcp.INVALID_REQUEST, "Empty batch") end
    local out = json.array()
    for _, m in ipairs(list) do
        local r = mcp.handle(ctx, m)
        if r then out[#out + 1] = r end
    end
    if #out == 0 then return accepted(conn) end
    return reply(conn, out)
end

local function post(_, conn)
    local who, version = mcp.guard(conn)
    if not who then return version end
    local msg, batch = mcp.parse(rawget(conn, "raw_body"))
    if msg == nil then return mcp.rpc_error_answer(conn, 400, nil, mcp.PARSE_ERROR, "Parse error: invalid JSON") end
    if conn:header("Mcp-Session-Id") == nil then return open(conn, who, msg, batch) end
    local rec, sid = session_of(conn, who)
    if not rec then return sid end
    conn:set_header("Mcp-Session-Id", sid)
    local ctx = { conn = conn, who = who, sid = sid }
    if batch then return run_batch(conn, ctx, msg, version or rec.version or mcp.DEFAULT_VERSION) end
    local r = mcp.handle(ctx, msg)
    if not r then return accepted(conn) end
    return reply(conn, r)
end

-- Relays the broadcasts of every keryx process to the stream, each only when the channel's authorize
-- accepts the session's user (checked once per channel between two keep-alives).
local function relay(s, conn, who, sid)
    local user_conn = mcp.call_conn(conn, who, sid)
    local pos = mcp.feed_open()
    local ok, err = pcall(function()
        local allowed, last = {}, clock_ms()
        while true do
            if not core.sleep(POLL_MS) then return end
            local entries
            entries, pos = mcp.feed_since(pos)
            for _, e in ipairs(entries) do
                local yes = allowed[e.channel]
                if yes == nil then
                    yes = mcp.authorized(channels, e.channel, user_conn)
                    allowed[e.channel] = yes
                end
                if yes and not s:event(nil, mcp.notification(e)) then return end
            end
            if clock_ms() - last >= KEEPALIVE_MS then
                if not mcp.session_alive(sid) or not s:write(": keep-alive\n\n") then return end
                allowed, last = {}, clock_ms()
            end
        end
    end)
    mcp.feed_close()
    if not ok then error(err, 0) end
end

local function get(_, conn)
    local who, rec, sid = guarded_session(conn)
    if not who then return rec end
    local accept = conn:header("Accept") or ""
    if not find(accept, "text/event-stream", 1, true) then
        return refuse(conn, 406, "Not Acceptable: the client must accept text/event-stream")
    end
    local s = conn:stream { sse = true, headers = { ["Mcp-Session-Id"] = sid } }
    if not s then return nil end
    -- A first comment gets the headers and a byte to the client at once.
    if not s:write(": stream open\n\n") then return nil end
    relay(s, conn, who, sid)
    s:close()
    return nil
end

local function delete(_, conn)
    local who, answer, sid = guarded_session(conn)
    if not who then return answer end
    mcp.close_session(sid)
    return {}
end

return {
    endpoint {
        name = "mcp:post",
        description = "MCP Streamable HTTP: JSON-RPC messages",
        web = { method = "POST" },
        timeout = 0, -- each tools/call arms its own action's timeout
        run = post,
    },
    endpoint {
        name = "mcp:get",
        description = "MCP Streamable HTTP: the notification stream",
        web = { method = "GET" },
        timeout = 0, -- lives as long as the client and the session
        run = get,
    },
    endpoint {
        name = "mcp:delete",
        description = "MCP Streamable HTTP: end the session",
        web = { method = "DELETE" },
        run = delete,
    },
}
