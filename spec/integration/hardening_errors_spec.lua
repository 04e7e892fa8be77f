-- Hardening: internal text never reaches a production client (no stack traces or internal
-- messages in production answers). Where stacks are off (WEB_SERVER_INCLUDE_STACK_IN_ERRORS / CLI_INCLUDE_STACK_IN_ERRORS
-- false, NODE_ENV=production) an untyped error answers the generic "Internal server error" and
-- its text and traceback go to the log; a Redis failure (error reply such as OOM, outage) is
-- always the generic 503 CONNECTION_SERVER_ERROR. Where stacks are on every error raised in Lua
-- carries `stack`, the framework's own included. Over HTTP, WebSocket replies and the CLI.
local H = require "server"
local A = require "http_assert"
local W = require "ws_client"
local PR = require "private_redis"
local cjson = require "cjson"

local APP, CONFIG = "spec/fixtures/app", "spec/fixtures/config.lua"
local SECRET = "secret-internal-detail"
local GENERIC = "Internal server error"
local UNAVAILABLE = "Service unavailable, try again shortly"

local stop, get, envelope = H.stop, H.get, A.envelope

local function start(env)
    return H.start { app = APP, config = CONFIG, env = env }
end

--- The one JSON line of a CLI error output (stderr also holds the log lines).
local function cli_error(stderr)
    for line in stderr:gmatch("[^\n]+") do
        if line:sub(1, 1) == "{" then return cjson.decode(line).error end
    end
    error("no JSON line in stderr:\n" .. stderr)
end

local function cli(args, env)
    local all = { "--app", APP, "--config", CONFIG }
    for _, a in ipairs(args) do all[#all + 1] = a end
    return H.cli(all, env)
end

describe("hardening: untyped errors", function()
    for _, env in ipairs {
        { WEB_SERVER_INCLUDE_STACK_IN_ERRORS = "false" },
        { NODE_ENV = "production" },
    } do
        local name, value = next(env)
        it(("answer the generic message over HTTP with %s=%s, the text and stack go to the log"):format(name, value),
            function()
                local srv = start(env)
                finally(function() stop(srv) end)
                local res = get(srv, "/api/leak")
                local e = envelope(res, 500, "CONNECTION_ACTION_RUN")
                assert.are.equal(GENERIC, e.message)
                assert.is_nil(e.stack)
                assert.are.equal(A.JSON_CONTENT_TYPE, res.headers["content-type"])
                assert.is_nil(res.body:find("secret", 1, true), res.body)
                assert.is_nil(res.body:find("leak", 1, true), res.body)
                local log = srv:wait_log("stack traceback")
                assert.truthy(log:find("%[ACTION:WEB:ERROR%] leak [^\n]*" .. SECRET:gsub("%-", "%%-")), log)
                assert.truthy(log:find("stack traceback", 1, true), log)
            end)
    end

    it("answer over a WebSocket with the generic message where stacks are off", function()
        local srv = start { WEB_SERVER_INCLUDE_STACK_IN_ERRORS = "false" }
        finally(function() stop(srv) end)
        local ws = W.open(srv)
        local reply, raw = ws:request { messageType = "action", action = "leak", messageId = 1 }
        local e = W.error_of(reply, raw)
        assert.are.equal("CONNECTION_ACTION_RUN", e.type)
        assert.are.equal(GENERIC, e.message)
        assert.is_nil(e.stack)
        assert.is_nil(raw:find("secret", 1, true), raw)
        ws:close()
        assert.truthy(srv:wait_log(SECRET):find(SECRET, 1, true))
    end)

    it("answer on the CLI with the generic message where CLI stacks are off, logged on stderr", function()
        local code, out, err = cli({ "run", "leak" }, { CLI_INCLUDE_STACK_IN_ERRORS = "false" })
        assert.are.equal(1, code)
        assert.are.equal("", out)
        local e = cli_error(err)
        assert.are.equal(GENERIC, e.message)
        assert.is_nil(e.stack)
        -- the log line (stderr, before the JSON line) still has the text
        local json_line = err:match("\n?(%b{})%s*$")
        assert.is_nil(json_line:find("secret", 1, true), json_line)
        assert.truthy(err:find("[ACTION:CLI:ERROR] leak", 1, true), err)
        assert.truthy(err:find(SECRET, 1, true), err)
    end)

    it("carry their text and stack where stacks are on (HTTP, WebSocket, CLI)", function()
        local srv = start { NODE_ENV = "development" }
        finally(function() stop(srv) end)
        local e = envelope(get(srv, "/api/leak"), 500, "CONNECTION_ACTION_RUN")
        assert.truthy(e.message:find(SECRET, 1, true), e.message)
        assert.truthy(e.stack:find("stack traceback", 1, true), e.stack)
        local ws = W.open(srv)
        local reply, raw = ws:request { messageType = "action", action = "leak", messageId = 1 }
        assert.truthy(W.error_of(reply, raw).stack:find(SECRET, 1, true), raw)
        ws:close()
        local code, _, err = cli({ "run", "leak", "-q" })
        assert.are.equal(1, code)
        assert.truthy(cli_error(err).stack:find("stack traceback", 1, true))
    end)

    it("typed errors keep their message where stacks are off", function()
        local srv = start { NODE_ENV = "production" }
        finally(function() stop(srv) end)
        local e = envelope(get(srv, "/api/typed"), 401, "CONNECTION_SESSION_NOT_FOUND")
        assert.are.equal("Session not found", e.message)
        assert.is_nil(e.stack)
    end)
end)

describe("hardening: the framework's own errors carry a stack where stacks are on", function()
    it("keryx run of an unknown action (CLI_INCLUDE_STACK_IN_ERRORS defaults to true)", function()
        local code, out, err = cli({ "run", "nope", "-q" })
        assert.are.equal(1, code)
        assert.are.equal("", out)
        local e = cli_error(err)
        assert.are.equal("CONNECTION_ACTION_NOT_FOUND", e.type)
        assert.is_string(e.stack)
        assert.truthy(e.stack:find("stack traceback", 1, true), e.stack)
        code, out, err = cli({ "run", "nope", "-q" }, { CLI_INCLUDE_STACK_IN_ERRORS = "false" })
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.is_nil(cli_error(err).stack)
    end)

    it("an unknown action over a WebSocket; errors decided in C never carry one", function()
        local srv = start { NODE_ENV = "development" }
        finally(function() stop(srv) end)
        local ws = W.open(srv)
        local reply, raw = ws:request { messageType = "action", action = "nope", messageId = 1 }
        local e = W.error_of(reply, raw)
        assert.are.equal("CONNECTION_ACTION_NOT_FOUND", e.type)
        assert.truthy(e.stack:find("stack traceback", 1, true), raw)
        ws:close()
        -- no route: decided in C
        A.assert_envelope(get(srv, "/api/no-such-route"), 404, "CONNECTION_ACTION_NOT_FOUND")
    end)
end)

describe("hardening: Redis failures answer the generic 503", function()
    local P

    before_each(function() P = PR.new() end)
    after_each(function()
        if P then P:destroy() end
        P = nil
    end)

    local function generic_503(res, what)
        local e = envelope(res, 503, "CONNECTION_SERVER_ERROR")
        assert.are.equal(UNAVAILABLE, e.message, what)
        assert.are.equal("1", res.headers["retry-after"], what)
        -- A development stack may name the code that failed; nothing else may say what Redis did.
        local shown = e.stack and e.message or res.body
        for _, leak in ipairs { "OOM", "maxmemory", "closed", "timeout", "Redis" } do
            assert.is_nil(shown:find(leak, 1, true), what .. ": " .. res.body)
        end
        return e
    end

    for _, env in ipairs { { NODE_ENV = "production" }, { NODE_ENV = "development" } } do
        it("an error reply (OOM under maxmemory) with NODE_ENV=" .. env.NODE_ENV .. ", logged with Redis' text",
            function()
                local srv = start { REDIS_URL = P.url, NODE_ENV = env.NODE_ENV }
                finally(function() stop(srv) end)
                assert.are.equal(200, get(srv, "/api/redis-write").status)
                P:cli("FLUSHALL")
                P:cli("CONFIG", "SET", "maxmemory-policy", "noeviction")
                P:cli("CONFIG", "SET", "maxmemory", "1")
                generic_503(get(srv, "/api/redis-write"), "call")
                generic_503(get(srv, "/api/redis-pipe"), "pipeline")
                local log = srv:wait_log("OOM")
                assert.truthy(log:find("%[ACTION:WEB:ERROR%] redis:write [^\n]*OOM"), log)
                P:cli("CONFIG", "SET", "maxmemory", "0")
                assert.are.equal(200, get(srv, "/api/redis-write").status)
            end)
    end

    it("an outage: actions, sessions and WebSocket replies answer the generic 503", function()
        local srv = start { REDIS_URL = P.url, NODE_ENV = "production" }
        finally(function() stop(srv) end)
        assert.are.equal(200, get(srv, "/api/redis-write").status)
        local ws = W.open(srv)
        P:stop()
        generic_503(get(srv, "/api/redis-write"), "call")
        generic_503(get(srv, "/api/redis-pipe"), "pipeline")
        local cookie = "__session=" .. ("a"):rep(42) .. "A"
        generic_503(get(srv, "/api/whoami", { Cookie = cookie }), "session")
        local reply, raw = ws:request { messageType = "action", action = "redis:write", messageId = 1 }
        local e = W.error_of(reply, raw)
        assert.are.equal("CONNECTION_SERVER_ERROR", e.type)
        assert.are.equal(UNAVAILABLE, e.message)
        assert.is_nil(raw:find("closed", 1, true), raw)
        ws:close()
        assert.is_true(srv:alive())
    end)
end)
