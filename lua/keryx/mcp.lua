-- keryx.mcp — the MCP Streamable HTTP endpoint behind MCP_SERVER_ENABLED (README "Use your
-- actions from an AI agent"; protocol versions in M.VERSIONS): the request guard, sessions,
-- JSON-RPC dispatch, tools from actions and the notification feed of the GET stream.
--
-- Guard, in this order, before anything else: Origin (DNS rebinding), Host, bearer token
-- (keryx.oauth.access), MCP-Protocol-Version. Parsing each header is C (src/mcp_guard.c through
-- core.mcp_origin / mcp_host / mcp_bearer / mcp_version_ok), and so is the Origin decision
-- (core.mcp_origin_allowed: the allow-list of the CORS grant) and the Host decision
-- (core.mcp_host_allowed). The body limit (413) is C's, before any Lua runs.
--
-- Redis layout (one key per command):
--   mcp:session:{<session id>}   JSON {client, user, version, createdAt}   EX SESSION_TTL_S
-- The session id is core.random_id (256-bit, base64url); it is not a secret that grants
-- anything alone: every request must also carry a bearer token of the same client and user.
--
-- Owns: the rules of issue 9 item 3. Callers: keryx.actions.mcp (the three endpoints).
-- Never: stores or logs a token; derives a Redis key from one; touches the cookie session
-- (tools/call runs with an in-memory session of the token's user).
local core = require "keryx.core"
local json = require "keryx.json"
local redis = require "keryx.redis"
local errors = require "keryx.errors"
local oauth = require "keryx.oauth"
local conn_mod = require "keryx.conn"
local pipeline = require "keryx.pipeline"
local mcp_resources = require "keryx.mcp_resources"

local M = {}

local cfg = core.config
local mcp_cfg = cfg.server.mcp
local type, tostring, tonumber, ipairs, pairs, pcall, next = type, tostring, tonumber, ipairs, pairs, pcall, next
local find, lower, gsub = string.find, string.lower, string.gsub

M.VERSIONS = { ["2025-03-26"] = true, ["2025-06-18"] = true, ["2025-11-25"] = true }
M.LATEST = "2025-11-25"
-- The version a request without MCP-Protocol-Version is taken to speak (the MCP transport
-- page: a server without another way to know assumes 2025-03-26).
M.DEFAULT_VERSION = "2025-03-26"
M.SESSION_TTL_S = 86400

-- JSON-RPC error codes (JSON-RPC 2.0 §5.1).
M.PARSE_ERROR, M.INVALID_REQUEST, M.METHOD_NOT_FOUND, M.INVALID_PARAMS, M.INTERNAL = -32700, -32600, -32601,
    -32602, -32603

-- ---- the guard -------------------------------------------------------------------------------

local mcp_bearer, mcp_version_ok = core.mcp_bearer, core.mcp_version_ok
local mcp_origin_allowed, mcp_host_allowed = core.mcp_origin_allowed, core.mcp_host_allowed

--- Whether the Origin header (nil when absent: non-browser clients) may reach /mcp: APPLICATION_URL's
--- origin, MCP_ALLOWED_ORIGINS, or one named in WEB_SERVER_ALLOWED_ORIGINS (its `*` opens the API to
--- any page, never /mcp). Decided in C from the allow-list the CORS grant uses too.
function M.origin_ok(origin)
    if origin == nil then return true end
    return mcp_origin_allowed(origin)
end

--- Whether the Host header names this server as APPLICATION_URL does (DNS rebinding); a
--- loopback APPLICATION_URL accepts every loopback name on any port. Decided in C.
function M.host_ok(host)
    return type(host) == "string" and mcp_host_allowed(host)
end

--- The token of an `Authorization: Bearer <token>` value, or nil.
function M.bearer(value)
    if type(value) ~= "string" then return nil end
    return mcp_bearer(value)
end

--- WWW-Authenticate for a 401 (RFC 9728 §5.1): where the client learns how to get a token.
function M.challenge(conn)
    return ('Bearer resource_metadata="%s/.well-known/oauth-protected-resource%s", scope="mcp"'):format(
        oauth.origin(conn), mcp_cfg.route)
end

local function http_error(conn, status, message)
    conn.status = status
    return { error = message }
end

--- Runs the guard: nil, an answer (status set on conn) when refused; else the token's
--- {client, user} and the protocol version the request speaks (header or nil).
function M.guard(conn)
    if not M.origin_ok(conn:header("Origin")) then return nil, http_error(conn, 403, "Origin not allowed") end
    if not M.host_ok(conn:header("Host")) then return nil, http_error(conn, 403, "Host not allowed") end
    local who = oauth.access(M.bearer(conn:header("Authorization")))
    if not who then
        conn:set_header("WWW-Authenticate", M.challenge(conn))
        return nil, http_error(conn, 401, "Authentication required")
    end
    local version = conn:header("MCP-Protocol-Version")
    if version ~= nil and not mcp_version_ok(version) then
        return nil, M.rpc_error_answer(conn, 400, nil, M.INVALID_REQUEST,
            "Bad Request: Unsupported protocol version: " .. tostring(version))
    end
    return who, version
end

-- ---- JSON-RPC shapes -------------------------------------------------------------------------

local function rpc_error(id, code, message)
    return { jsonrpc = "2.0", id = id == nil and json.null or id, error = { code = code, message = message } }
end
M.rpc_error = rpc_error

function M.rpc_error_answer(conn, status, id, code, message)
    conn.status = status
    return rpc_error(id, code, message)
end

local function rpc_result(id, result)
    return { jsonrpc = "2.0", id = id, result = result }
end

-- ---- sessions --------------------------------------------------------------------------------

local function session_key(sid)
    return "mcp:session:{" .. sid .. "}"
end

--- A new session for who ({client, user}) speaking version: its id.
function M.open_session(who, version)
    local sid = core.random_id()
    local rec = json.encode { client = who.client, user = who.user, version = version, createdAt = core.now_ms() }
    redis.ok(redis.call("SET", session_key(sid), rec, "EX", tostring(M.SESSION_TTL_S)))
    return sid
end

--- The session sid for who: rec, or nil, status (404 unknown or deleted, 403 another client's or
--- user's). A session in use has its TTL renewed.
function M.load_session(sid, who)
    if type(sid) ~= "string" or not core.valid_id(sid) then return nil, 404 end
    local v = redis.ok(redis.call("GET", session_key(sid)))
    if v == redis.null then return nil, 404 end
    local rec = json.decode(v)
    if type(rec) ~= "table" then return nil, 404 end
    if rec.client ~= who.client or tostring(rec.user) ~= tostring(who.user) then return nil, 403 end
    redis.call("EXPIRE", session_key(sid), tostring(M.SESSION_TTL_S))
    return rec
end

--- Ends session sid (DELETE): true when it existed.
function M.close_session(sid)
    return redis.ok(redis.call("DEL", session_key(sid))) == 1
end

--- Whether session sid still exists (the GET stream ends when it does not).
function M.session_alive(sid)
    local v = redis.call("EXISTS", session_key(sid))
    if v == nil or v == false then return true end -- Redis unreachable: keep the stream for now
    return v == 1
end

-- ---- tools -----------------------------------------------------------------------------------

local function tool_name(action_name)
    return (gsub(action_name, ":", "-"))
end

--- Whether action is an MCP tool: opted in with mcp = { tool = true }, never internal.
function M.is_tool(action)
    return not action.internal and type(action.mcp) == "table" and action.mcp.tool == true
end

--- The action behind tool `name`, or nil.
function M.tool_action(name)
    if type(name) ~= "string" then return nil end
    for _, a in ipairs(pipeline.registry.list) do
        if M.is_tool(a) and tool_name(a.name) == name then return a end
    end
    return nil
end

local function input_schema(action)
    if not action.inputs or not action.inputs.field_keys then
        return { type = "object", properties = {}, additionalProperties = false }
    end
    local s = action.inputs:json_schema()
    s.type = "object"
    s.properties = s.properties or {}
    return s
end

--- tools/list: every tool, in load order, named with `:` → `-`.
function M.tools()
    local out = json.array()
    for _, a in ipairs(pipeline.registry.list) do
        if M.is_tool(a) then
            out[#out + 1] = { name = tool_name(a.name), description = a.description, inputSchema = input_schema(a) }
        end
    end
    return out
end

-- What the client is told about an action error: message and type only (no value, no stack:
-- a rejected secret input or an internal detail is never echoed back). An internal error's
-- public message replaces its own, as on the web.
local function error_text(err)
    local env = errors.to_envelope(err, { include_stack = false })
    return json.encode { error = env.error.message, type = env.error.type }
end

-- The connection of one tools/call: type "mcp", the token's user as an in-memory session.
local function call_conn(outer, who, sid)
    local uid = tonumber(who.user) or who.user
    return conn_mod.new {
        type = "mcp",
        identifier = outer.identifier,
        correlation_id = outer.correlation_id,
        method = "POST",
        mcp_session_id = sid,
        session = { id = "mcp:" .. tostring(sid), createdAt = core.now_ms(), data = { user_id = uid } },
        _session_loaded = true,
    }
end
M.call_conn = call_conn

local function is_object(v)
    return type(v) == "table" and not json.is_array(v) and (next(v) == nil or v[1] == nil)
end

--- Runs action for one MCP request (tools/call, resources/read, prompts/get): the pipeline as
--- over HTTP, the `[ACTION:MCP:…]` log line. → response, err (typed or nil).
function M.run_action(ctx, action, args)
    local started = core.clock_ms()
    local conn = call_conn(ctx.conn, ctx.who, ctx.sid)
    local response, err = pipeline.act(action, args, conn)
    pipeline.log_action("MCP", action.name, started, nil, conn.identifier, nil, conn.correlation_id, err, action, args)
    return response, err
end

--- What a client may read of an action error: its public message.
local function public_message(err)
    return errors.to_envelope(err, { include_stack = false }).error.message
end

--- tools/call: the pipeline as over HTTP. → result | nil, JSON-RPC code, message.
function M.call_tool(ctx, params)
    if not is_object(params) then return nil, M.INVALID_PARAMS, "params must be an object" end
    local action = M.tool_action(params.name)
    if not action then return nil, M.INVALID_PARAMS, "Unknown tool: " .. tostring(params.name) end
    local args = params.arguments
    if args == nil or args == json.null then args = {} end
    if not is_object(args) then return nil, M.INVALID_PARAMS, "arguments must be an object" end
    local response, err = M.run_action(ctx, action, args)
    local text
    if not err then text, err = pipeline.encode_response(response) end
    if err then
        return { content = { { type = "text", text = error_text(err) } }, isError = true }
    end
    local result = { content = { { type = "text", text = text } } }
    if is_object(response) and next(response) ~= nil then result.structuredContent = response end
    return result
end

-- ---- dispatch --------------------------------------------------------------------------------

local function server_info()
    return { name = "keryx", version = core.version }
end

local function initialize_result(version)
    return {
        protocolVersion = version,
        capabilities = mcp_resources.capabilities { tools = { listChanged = false }, logging = {} },
        serverInfo = server_info(),
    }
end

--- The version an initialize request asks for when we speak it, else our latest.
function M.negotiate(params)
    local v = type(params) == "table" and params.protocolVersion or nil
    if M.VERSIONS[v] then return v end
    return M.LATEST
end

-- One request's handlers: result | nil, code, message.
local handlers = {
    ping = function() return {} end,
    ["tools/list"] = function() return { tools = M.tools() } end,
    ["tools/call"] = M.call_tool,
    ["logging/setLevel"] = function() return {} end,
    initialize = function() return nil, M.INVALID_REQUEST, "Session already initialized" end,
}
for method, h in pairs(mcp_resources.handlers(M.run_action, public_message)) do handlers[method] = h end

--- One JSON-RPC message of a session: the response, or nil for a notification or a client's
--- response (nothing to answer).
function M.handle(ctx, msg)
    if not is_object(msg) or msg.jsonrpc ~= "2.0" then
        return rpc_error(nil, M.INVALID_REQUEST, "Invalid Request")
    end
    local id, method = msg.id, msg.method
    if method == nil then return nil end -- a response to a request of ours: nothing to say
    if id == nil or id == json.null then return nil end -- a notification
    if type(id) ~= "string" and type(id) ~= "number" then return rpc_error(nil, M.INVALID_REQUEST, "Invalid id") end
    if type(method) ~= "string" then return rpc_error(id, M.INVALID_REQUEST, "Invalid Request") end
    local h = handlers[method]
    if not h then return rpc_error(id, M.METHOD_NOT_FOUND, "Method not found: " .. method) end
    local params = msg.params
    if params == json.null then params = nil end
    local result, code, message = h(ctx, params)
    if result == nil then return rpc_error(id, code or M.INTERNAL, message or "Internal error") end
    return rpc_result(id, result)
end

--- The initialize answer (the request opens the session): response, session id.
function M.initialize(who, msg)
    local version = M.negotiate(msg.params)
    local sid = M.open_session(who, version)
    return rpc_result(msg.id, initialize_result(version)), sid
end

--- Parses a POST body: value, is_batch | nil (malformed JSON). `[]` and `{}` decode alike,
--- so the batch is read from the text.
function M.parse(body)
    if type(body) ~= "string" then return nil end
    local v = json.decode(body)
    if type(v) ~= "table" then return nil end
    return v, find(body, "^%s*%[") ~= nil
end

--- Whether a version forbids JSON-RPC batches (2025-06-18 removed them).
function M.batches_refused(version)
    return version ~= "2025-03-26"
end

--- Whether Accept asks for an SSE stream only (then a POST is answered as one event).
function M.wants_sse_only(accept)
    if type(accept) ~= "string" then return false end
    local a = lower(accept)
    return find(a, "text/event-stream", 1, true) ~= nil and find(a, "application/json", 1, true) == nil
        and find(a, "*/*", 1, true) == nil
end

-- ---- the notification feed (GET stream) ---------------------------------------------------------

-- Every broadcast of any keryx process on the Redis (the pub/sub messages src/channels.c
-- receives), kept in a ring in C while a GET stream reads it (core.mcp_feed_open/close). Each
-- stream keeps its own position in it.

--- Registers a reader: the position to read after.
function M.feed_open()
    return core.mcp_feed_open()
end

function M.feed_close()
    core.mcp_feed_close()
end

--- The broadcasts after position `after` ({channel, message, sender}), the new position.
function M.feed_since(after)
    local payloads, last = core.mcp_feed(after)
    local out = {}
    for _, p in ipairs(payloads) do
        local e = json.decode(p)
        if type(e) == "table" and type(e.channel) == "string" then out[#out + 1] = e end
    end
    return out, last
end

-- Whether who's user may see channel: the channel's authorize, run as if that user subscribed.
local function authorized(channels, channel, conn)
    local def = channels.find(channel)
    if not def then return false end
    if not def.authorize then return true end
    local ok = pcall(def.authorize, channel, conn)
    return ok
end
M.authorized = authorized

--- The notifications/message of one broadcast (logger "keryx"; data: channel, message, sender).
function M.notification(e)
    return { jsonrpc = "2.0", method = "notifications/message",
        params = { level = "info", logger = "keryx", data = { channel = e.channel, message = e.message,
            sender = e.sender } } }
end

return M
