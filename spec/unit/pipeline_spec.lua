-- keryx.pipeline: act() (validate → before → run → after, timeout) and the action log line;
-- the web and cli transports (keryx.transport.web / .cli) that lua_bridge.c calls, against the pure-Lua fake of keryx.core
-- (spec/helpers/fake_core.lua: virtual clock, log capture, a scheduler that drives sleeps).
local fake = require "keryx.core"
local pipeline = require "keryx.pipeline"
local web_transport = require "keryx.transport.web"
local cli_transport = require "keryx.transport.cli"
local action = require "keryx.action"
local keryx = require "keryx"
local z = require "keryx.schema"
local json = require "keryx.json"
local errors = require "keryx.errors"

local config = fake.config

-- Registers a definition in the pipeline's registry (as boot does); returns action, id.
local function register(def)
    if def.run == nil then def.run = function(params) return params end end
    local a = action.define(def)
    local reg = pipeline.registry
    local id = #reg.list + 1
    reg.list[id], reg.by_name[a.name] = a, a
    return a, id
end

local function req(over)
    local r = { method = "GET", target = "/api/x", host = "host", identifier = "127.0.0.1" }
    for k, v in pairs(over or {}) do r[k] = v end
    return r
end

-- status, body, headers (flat name, value list or nil), the whole result table.
local function web(id, r)
    local res = web_transport.result(fake.run(web_transport.web, id, req(r)))
    return res.status, res.body, res.headers, res
end

local function act(a, raw, conn)
    conn = conn or { type = "web", identifier = "127.0.0.1" }
    return fake.run(pipeline.act, a, raw, conn)
end

local function decode(s)
    local v, err = json.decode(s)
    assert(v ~= nil, err)
    return v
end

local function last_log()
    local l = fake.logs[#fake.logs]
    assert(l, "no log line")
    return l.msg, l.level
end

local USER = os.getenv("USER") or "unknown"

before_each(function()
    fake.reset()
    local reg = pipeline.registry
    for k in pairs(reg.list) do reg.list[k] = nil end
    for k in pairs(reg.by_name) do reg.by_name[k] = nil end
end)

describe("pipeline.act", function()
    it("runs the action with validated, coerced params and the connection", function()
        local seen_conn
        local a = register({
            name = "add",
            inputs = z.object({ a = z.integer(), b = z.integer():default(1) }),
            run = function(p, conn) seen_conn = conn; return { sum = p.a + p.b, extra = p.extra } end,
        })
        local conn = { type = "web", identifier = "1.2.3.4" }
        local response, err = act(a, { a = "41", extra = "dropped" }, conn)
        assert.is_nil(err)
        assert.are.same({ sum = 42 }, response)
        assert.are.equal(conn, seen_conn)
        assert.are.same({}, conn.metadata)
    end)

    it("passes raw params through untouched when the action has no inputs", function()
        local a = register({ name = "raw" })
        assert.are.same({ any = "thing" }, (act(a, { any = "thing" })))
    end)

    it("counts every run for the metrics: name, outcome, run time", function()
        local obs = require("keryx.core").config.observability
        obs.enabled = true
        finally(function() obs.enabled = false end)
        local ok_action = register({ name = "fine", run = function() fake.sleep(25) return {} end })
        local bad_action = register({ name = "broken", run = function() error("nope") end })
        local invalid = register({ name = "strict", inputs = z.object({ n = z.integer() }) })
        act(ok_action, {})
        act(bad_action, {})
        act(invalid, {})
        assert.are.same({
            { fn = "action", name = "fine", ok = true, ms = 25 },
            { fn = "action", name = "broken", ok = false, ms = 0 },
            { fn = "action", name = "strict", ok = false, ms = 0 },
        }, fake.metrics)
    end)

    it("does not call into the metrics while they are off (the default)", function()
        assert.is_false(require("keryx.core").config.observability.enabled)
        act(register({ name = "quiet", run = function() return {} end }), {})
        assert.are.same({}, fake.metrics)
    end)

    it("resets conn.metadata on every act", function()
        local a = register({ name = "m", run = function(_, conn) conn.metadata.n = (conn.metadata.n or 0) + 1 end })
        local conn = { type = "web", identifier = "x", metadata = { n = 5, stale = true } }
        act(a, {}, conn)
        assert.are.same({ n = 1 }, conn.metadata)
    end)

    describe("validation", function()
        local ran, before_ran, a
        before_each(function()
            ran, before_ran = false, false
            a = register({
                name = "user:create",
                inputs = z.object({ name = z.string():min(3), password = z.string():min(8):secret() }),
                middleware = { { before = function() before_ran = true end } },
                run = function() ran = true end,
            })
        end)

        it("answers CONNECTION_ACTION_PARAM_REQUIRED with key and value, running nothing", function()
            local response, err = act(a, { name = "ab", password = "long enough" })
            assert.is_nil(response)
            assert.are.equal("CONNECTION_ACTION_PARAM_REQUIRED", err.type)
            assert.are.equal(406, errors.status(err.type))
            assert.are.equal("name", err.key)
            assert.are.equal("ab", err.value)
            assert.are.equal("name must be at least 3 characters", err.message)
            assert.is_false(ran)
            assert.is_false(before_ran)
        end)

        it("never echoes the value of a secret field", function()
            local _, err = act(a, { name = "abc", password = "short" })
            assert.are.equal("CONNECTION_ACTION_PARAM_REQUIRED", err.type)
            assert.are.equal("password", err.key)
            assert.is_nil(err.value)
            local env = json.encode(errors.to_envelope(err, { include_stack = true }))
            assert.is_nil(env:find("short", 1, true))
        end)

        it("drops the value of a secret field itself, whatever the validator reports", function()
            -- a duck-typed inputs object whose error carries the value: the pipeline's own guard
            local leaky = register({
                name = "leaky",
                inputs = {
                    kind = "object",
                    parse = function() return nil, { key = "pin", message = "bad pin", value = "1234", secret = true } end,
                    redact = function(_, raw) return raw end,
                },
            })
            local _, err = act(leaky, { pin = "1234" })
            assert.are.equal("CONNECTION_ACTION_PARAM_REQUIRED", err.type)
            assert.are.equal("pin", err.key)
            assert.are.equal("bad pin", err.message)
            assert.is_nil(err.value)
        end)

        it("reports a missing param by name", function()
            local _, err = act(a, { password = "long enough" })
            assert.are.equal("name", err.key)
            assert.are.equal("Missing required param: name", err.message)
        end)
    end)

    describe("middleware", function()
        it("runs before hooks in list order, a returned table replacing params", function()
            local order = {}
            local a = register({
                name = "mw",
                middleware = {
                    { before = function(p) order[#order + 1] = "1:" .. tostring(p.v); return { v = "one" } end },
                    { before = function(p) order[#order + 1] = "2:" .. p.v end }, -- nil keeps params
                    { before = function(p) order[#order + 1] = "3:" .. p.v; return { v = "three" } end },
                },
                run = function(p) order[#order + 1] = "run:" .. p.v; return { v = p.v } end,
            })
            local response = act(a, { v = "raw" })
            assert.are.same({ "1:raw", "2:one", "3:one", "run:three" }, order)
            assert.are.same({ v = "three" }, response)
        end)

        it("lets after hooks replace the response and see the final params", function()
            local seen
            local a = register({
                name = "mw",
                middleware = {
                    { before = function() return { v = "b" } end, after = function(p, _, r) seen = { p = p.v, r = r.n }; return { n = r.n + 1 } end },
                    { after = function(_, _, r) return { n = r.n * 10 } end },
                    { after = function() end }, -- nil keeps the response
                },
                run = function() return { n = 1 } end,
            })
            local response, err = act(a, {})
            assert.is_nil(err)
            assert.are.same({ n = 20 }, response)
            assert.are.same({ p = "b", r = 1 }, seen)
        end)

        it("runs after hooks even when run() errors, handing them the typed error", function()
            local got = {}
            local a = register({
                name = "boom",
                middleware = { { after = function(p, conn, response, err) got = { p = p, conn = conn, response = response, err = err } end } },
                run = function() error("kaboom") end,
            })
            local conn = { type = "web", identifier = "x" }
            local response, err = act(a, { k = "v" }, conn)
            assert.is_nil(response)
            assert.are.equal("CONNECTION_ACTION_RUN", err.type)
            assert.are.equal(err, got.err)
            assert.is_nil(got.response)
            assert.are.same({ k = "v" }, got.p)
            assert.are.equal(conn, got.conn)
        end)

        it("stops at a before hook raising a typed error, keeping its type; after still runs", function()
            local ran, after_err = false, nil
            local a = register({
                name = "auth",
                middleware = {
                    { before = function() keryx.error("CONNECTION_SESSION_NOT_FOUND", "Session not found") end,
                      after = function(_, _, _, e) after_err = e end },
                },
                run = function() ran = true end,
            })
            local response, err = act(a, {})
            assert.is_nil(response)
            assert.is_false(ran)
            assert.are.equal("CONNECTION_SESSION_NOT_FOUND", err.type)
            assert.are.equal("Session not found", err.message)
            -- raised errors carry their traceback (shown only where stacks are enabled)
            assert.matches("^Session not found\nstack traceback:", err.stack)
            assert.are.equal(err, after_err)
        end)

        it("turns an error raised in an after hook into the action's error", function()
            local a = register({
                name = "after:boom",
                middleware = { { after = function() error("after failed") end } },
                run = function() return { ok = true } end,
            })
            local response, err = act(a, {})
            assert.is_nil(response)
            assert.are.equal("CONNECTION_ACTION_RUN", err.type)
            assert.matches("after failed", err.message, 1, true)
        end)
    end)

    describe("errors from run()", function()
        it("turns a plain Lua error into CONNECTION_ACTION_RUN with a traceback", function()
            local a = register({ name = "boom", run = function() error("boom here") end })
            local _, err = act(a, {})
            assert.are.equal("CONNECTION_ACTION_RUN", err.type)
            assert.matches("boom here", err.message, 1, true)
            assert.are.equal("string", type(err.stack))
            assert.matches("stack traceback:", err.stack, 1, true)
            assert.matches("pipeline_spec.lua", err.stack, 1, true)
        end)

        it("turns a non-string error value into CONNECTION_ACTION_RUN", function()
            local a = register({ name = "tbl", run = function() error(setmetatable({}, { __tostring = function() return "custom" end })) end })
            local _, err = act(a, {})
            assert.are.equal("CONNECTION_ACTION_RUN", err.type)
            assert.are.equal("custom", err.message)
        end)

        it("keeps a typed error raised by run() as it is", function()
            local a = register({ name = "typed", run = function() keryx.error("CONNECTION_RATE_LIMITED", "slow down", "ip") end })
            local _, err = act(a, {})
            assert.are.equal("CONNECTION_RATE_LIMITED", err.type)
            assert.are.equal("slow down", err.message)
            assert.are.equal("ip", err.key)
        end)
    end)

    describe("timeout", function()
        it("arms the action's own timeout", function()
            local a = register({ name = "t", timeout = 1234 })
            act(a, {})
            assert.are.same({ 1234 }, fake.timeouts)
        end)

        it("arms config.actions.timeout (default 300000) when the action has none", function()
            local a = register({ name = "t" })
            act(a, {})
            config.actions.timeout = 777
            act(a, {})
            assert.are.same({ 300000, 777 }, fake.timeouts)
        end)

        it("arms nothing when the effective timeout is 0", function()
            local a = register({ name = "t", timeout = 0 })
            act(a, {})
            config.actions.timeout = 0
            act(register({ name = "u" }), {})
            assert.are.same({}, fake.timeouts)
        end)

        it("lets an action sleep within its timeout; the clock moves by the sleep", function()
            local a = register({ name = "nap", timeout = 50, run = function() keryx.sleep(20); return { ok = true } end })
            local response, err = act(a, {})
            assert.is_nil(err)
            assert.are.same({ ok = true }, response)
            assert.are.equal(20, fake.clock_ms())
        end)

        it("answers CONNECTION_ACTION_TIMEOUT when the timeout fires while the action sleeps", function()
            local after_err
            local a = register({
                name = "slow", timeout = 50,
                middleware = { { after = function(_, _, _, e) after_err = e end } },
                run = function() keryx.sleep(1000); return { never = true } end,
            })
            local response, err = act(a, {})
            assert.is_nil(response)
            assert.are.equal("CONNECTION_ACTION_TIMEOUT", err.type)
            assert.are.equal("Action 'slow' timed out after 50ms", err.message)
            assert.are.equal(408, errors.status(err.type))
            assert.are.equal(50, fake.clock_ms())
            assert.are.equal(err, after_err)
        end)

        it("uses config.actions.timeout in the message when the action has none", function()
            config.actions.timeout = 30
            local a = register({ name = "slow", run = function() keryx.sleep(31) end })
            local _, err = act(a, {})
            assert.are.equal("Action 'slow' timed out after 30ms", err.message)
        end)

        it("still answers the timeout when the action pcall-swallows the abort and returns", function()
            local swallowed
            local a = register({
                name = "stubborn", timeout = 10,
                run = function()
                    local ok, e = pcall(keryx.sleep, 1000)
                    swallowed = { ok = ok, e = e }
                    return { finished = true }
                end,
            })
            local response, err = act(a, {})
            assert.is_nil(response)
            assert.are.equal("CONNECTION_ACTION_TIMEOUT", err.type)
            assert.are.equal("Action 'stubborn' timed out after 10ms", err.message)
            assert.is_false(swallowed.ok)
            assert.are.equal("CONNECTION_ACTION_TIMEOUT", swallowed.e.type)
        end)

        it("answers the timeout when the abort comes while the action is running", function()
            local a = register({ name = "cpu", timeout = 5, run = function() fake.abort_current(); return { done = true } end })
            local response, err = act(a, {})
            assert.is_nil(response)
            assert.are.equal("Action 'cpu' timed out after 5ms", err.message)
        end)

        it("answers the timeout even when an after hook returns a response", function()
            local _, id = register({
                name = "slow", timeout = 5,
                middleware = { { after = function() return { rescued = true } end } },
                run = function() keryx.sleep(10) end,
            })
            local status, body = web(id)
            assert.are.equal(408, status)
            assert.are.equal("CONNECTION_ACTION_TIMEOUT", decode(body).error.type)
            assert.is_nil(body:find("rescued", 1, true))
        end)

        it("answers the timeout when it fires during an after hook that swallows it", function()
            local a = register({
                name = "cleanup", timeout = 10,
                middleware = { { after = function() pcall(keryx.sleep, 100) end } },
                run = function() return { ok = true } end,
            })
            local response, err = act(a, {})
            assert.is_nil(response)
            assert.are.equal("CONNECTION_ACTION_TIMEOUT", err.type)
            assert.are.equal("Action 'cleanup' timed out after 10ms", err.message)
        end)

        it("names the action and ms when the timeout fires during an after hook", function()
            local a = register({
                name = "cleanup", timeout = 10,
                middleware = { { after = function() keryx.sleep(100) end } },
                run = function() return { ok = true } end,
            })
            local _, err = act(a, {})
            assert.are.equal("CONNECTION_ACTION_TIMEOUT", err.type)
            assert.are.equal("Action 'cleanup' timed out after 10ms", err.message)
        end)

        it("replaces the action's own error with the timeout", function()
            local a = register({ name = "slow", timeout = 5, run = function() keryx.sleep(10); error("late") end })
            local _, err = act(a, {})
            assert.are.equal("CONNECTION_ACTION_TIMEOUT", err.type)
        end)
    end)
end)

describe("transport.web", function()
    it("answers 200 with a compact JSON body", function()
        local _, id = register({ name = "x", run = function() return { message = "hi", list = { 1, 2 } } end })
        local status, body, extra = web(id)
        assert.are.equal(200, status)
        assert.are.same({ message = "hi", list = { 1, 2 } }, decode(body))
        assert.is_nil(body:find("%s"))
        assert.is_nil(extra)
    end)

    it("answers {} when the action returns nothing", function()
        local _, id = register({ name = "x", run = function() end })
        local status, body = web(id)
        assert.are.equal(200, status)
        assert.are.equal("{}", body)
    end)

    it("uses conn.status and the headers set by the action, in order, repeats kept", function()
        local _, id = register({ name = "x", run = function(_, conn)
            conn.status = 201
            conn:set_header("X-Thing", 1)
            conn:set_header("Link", "</a>")
            conn:set_header("Link", "</b>")
            return { id = 9 }
        end })
        local status, body, headers, res = web(id)
        assert.are.equal(201, status)
        assert.are.equal('{"id":9}', body)
        assert.are.same({ "X-Thing", "1", "Link", "</a>", "Link", "</b>" }, headers)
        assert.are.equal("application/json; charset=utf-8", res.content_type)
        assert.is_nil(res.session)
        assert.is_false(res.discard)
    end)

    it("answers a string verbatim under the content type the action set", function()
        local _, id = register({ name = "page", run = function(_, conn)
            conn:set_content_type("text/html; charset=utf-8")
            return "<h1>hi</h1>"
        end })
        local status, body, _, res = web(id)
        assert.are.equal(200, status)
        assert.are.equal("<h1>hi</h1>", body)
        assert.are.equal("text/html; charset=utf-8", res.content_type)
    end)

    it("still JSON-encodes a table under a chosen content type, and answers errors as JSON", function()
        local _, id = register({ name = "problem", run = function(_, conn)
            conn:set_content_type("application/problem+json")
            return { title = "x" }
        end })
        local _, body, _, res = web(id)
        assert.are.same({ title = "x" }, decode(body))
        assert.are.equal("application/problem+json", res.content_type)
        local _, id2 = register({ name = "page:boom", run = function(_, conn)
            conn:set_content_type("text/html")
            error("boom")
        end })
        local status2, body2, _, res2 = web(id2)
        assert.are.equal(500, status2)
        assert.are.equal("CONNECTION_ACTION_RUN", decode(body2).error.type)
        assert.are.equal("application/json; charset=utf-8", res2.content_type)
    end)

    it("without a content type a string response is JSON, as before", function()
        local _, id = register({ name = "s", run = function() return "plain" end })
        local _, body, _, res = web(id)
        assert.are.equal('"plain"', body)
        assert.are.equal("application/json; charset=utf-8", res.content_type)
    end)

    it("set_content_type refuses what is not a header value", function()
        local _, id = register({ name = "bad:ct", run = function(_, conn)
            conn:set_content_type("text/html\r\nSet-Cookie: x=1")
        end })
        local status, body, _, res = web(id)
        assert.are.equal(500, status)
        assert.matches("set_content_type", decode(body).error.message)
        assert.are.equal("application/json; charset=utf-8", res.content_type)
    end)

    it("appends Retry-After to the headers of a 503 from an unreachable dependency", function()
        local _, id = register({ name = "down", run = function(_, conn)
            conn:set_header("X-A", "1")
            error(errors.unavailable("Redis is unavailable (closed), try again shortly"))
        end })
        local status, _, headers = web(id)
        assert.are.equal(503, status)
        assert.are.same({ "X-A", "1", "Retry-After", "1" }, headers)
    end)

    it("hands the session cookie operation to C: {set = id} on create, {expire = true} on logout", function()
        local _, id = register({ name = "login", run = function(_, conn) conn:update_session { user_id = 1 } end })
        local _, _, _, res = web(id)
        assert.is_true(fake.valid_id(res.session.set))
        local _, out_id = register({ name = "logout", run = function(_, conn) conn:destroy_session() end })
        local sid = res.session.set
        local _, _, _, res2 = web(out_id, { session_id = sid })
        assert.are.same({ expire = true }, res2.session)
    end)

    it("conn:header reads the request's headers lazily (any case); nil when absent or gone", function()
        local seen
        local _, id = register({ name = "hdr", run = function(_, conn)
            seen = { conn:header("authorization"), conn:header("MCP-Protocol-Version"), conn:header("X-None") }
            fake.req_gone = true
            seen[4] = conn:header("Authorization")
        end })
        fake.req_headers = { authorization = "Bearer t", ["mcp-protocol-version"] = "2025-06-18" }
        web(id)
        assert.are.same({ "Bearer t", "2025-06-18", nil, nil }, seen)
        local conn_mod = require "keryx.conn"
        assert.has_error(function() conn_mod.new({ type = "web" }):header(1) end, "header: name must be a string")
        fake.req_gone = false
        local cli_seen = fake.run(function() return conn_mod.new({ type = "cli" }):header("Authorization") end)
        assert.is_nil(cli_seen)
        assert.is_nil(conn_mod.new({ type = "web" }):header("Authorization")) -- outside a task
    end)

    it("gives the action a web connection built from the request", function()
        local conn
        local _, id = register({ name = "x", run = function(_, c) conn = c end })
        web(id, { method = "POST", identifier = "10.0.0.1", correlation_id = "c-1" })
        assert.are.equal("web", conn.type)
        assert.are.equal("10.0.0.1", conn.identifier)
        assert.are.equal("c-1", conn.correlation_id)
        assert.are.equal("POST", conn.method)
    end)

    it("merges query, body and route params for the action", function()
        local _, id = register({ name = "x" })
        local _, body = web(id, {
            method = "POST", query = "q=1&id=q", content_type = "application/json",
            body = '{"b":2,"id":"body"}', params = { id = "r%2Fx" },
        })
        assert.are.same({ q = "1", b = 2, id = "r/x" }, decode(body))
    end)

    it("answers an error with its type's status and the envelope", function()
        local _, id = register({ name = "x", run = function() keryx.error("CONNECTION_SESSION_NOT_FOUND", "Session not found", "sid", "v") end })
        local status, body = web(id)
        assert.are.equal(401, status)
        local env = decode(body)
        assert.is_string(env.error.stack) -- NODE_ENV=test: stacks on
        env.error.stack = nil
        assert.are.same({
            message = "Session not found", type = "CONNECTION_SESSION_NOT_FOUND",
            timestamp = fake.now_ms(), key = "sid", value = "v",
        }, env.error)
    end)

    it("includes the stack of a run error only when includeStackInErrors is on", function()
        local _, id = register({ name = "x", run = function() error("broken") end })
        assert.is_true(config.server.web.includeStackInErrors) -- test default (not production)
        local status, body = web(id)
        assert.are.equal(500, status)
        local env = decode(body)
        assert.are.equal("CONNECTION_ACTION_RUN", env.error.type)
        assert.matches("stack traceback:", env.error.stack, 1, true)

        config.server.web.includeStackInErrors = false
        status, body = web(id)
        assert.are.equal(500, status)
        env = decode(body)
        assert.are.equal("Internal server error", env.error.message)
        assert.is_nil(env.error.stack)
        assert.is_nil(body:find("traceback", 1, true))
        assert.is_nil(body:find("broken", 1, true))
    end)

    it("hides stacks in production defaults", function()
        fake.reset("production")
        local _, id = register({ name = "x", run = function() error("broken") end })
        local _, body = web(id)
        assert.is_nil(decode(body).error.stack)
    end)

    it("answers 500 CONNECTION_ACTION_RUN for a response JSON cannot encode", function()
        local _, id = register({ name = "x", run = function() return { f = function() end } end })
        local status, body = web(id)
        assert.are.equal(500, status)
        local env = decode(body)
        assert.are.equal("CONNECTION_ACTION_RUN", env.error.type)
        assert.matches("^cannot encode the response as JSON: ", env.error.message)
        assert.matches("[ACTION:WEB:ERROR]", last_log(), 1, true)
    end)

    it("answers 400 for a malformed JSON body without running the action", function()
        local ran = false
        local _, id = register({ name = "x", run = function() ran = true end })
        local status, body = web(id, { method = "POST", content_type = "application/json", body = "{nope" })
        assert.are.equal(400, status)
        assert.are.equal("CONNECTION_ACTION_PARAM_FORMATTING", decode(body).error.type)
        assert.is_false(ran)
        assert.are.same({}, fake.timeouts)
    end)

    it("answers 406 with key and value for a validation error", function()
        local _, id = register({ name = "x", inputs = z.object({ n = z.integer() }) })
        local status, body = web(id, { query = "n=abc" })
        assert.are.equal(406, status)
        local e = decode(body).error
        assert.are.equal("CONNECTION_ACTION_PARAM_REQUIRED", e.type)
        assert.are.equal("n", e.key)
        assert.are.equal("abc", e.value)
    end)

    it("answers 408 when the action times out", function()
        local _, id = register({ name = "slow", timeout = 25, run = function() keryx.sleep(100) end })
        local status, body = web(id)
        assert.are.equal(408, status)
        assert.are.equal("Action 'slow' timed out after 25ms", decode(body).error.message)
    end)

    describe("log line", function()
        it("has the exact documented shape", function()
            local _, id = register({ name = "x", run = function() return {} end })
            web(id)
            assert.are.equal(1, #fake.logs)
            local msg, level = last_log()
            assert.are.equal("info", level)
            assert.are.equal("[ACTION:WEB:OK] x (0ms) [GET] 127.0.0.1(http://host/api/x) {}", msg)
        end)

        it("measures the duration with the monotonic clock", function()
            local _, id = register({ name = "nap", run = function() keryx.sleep(20) end })
            web(id)
            assert.are.equal("[ACTION:WEB:OK] nap (20ms) [GET] 127.0.0.1(http://host/api/x) {}", last_log())
        end)

        it("shows the path without the query (it may hold secrets) and the correlation id", function()
            local _, id = register({ name = "x" })
            web(id, { target = "/api/x?a=1", query = "a=1", correlation_id = "abc-123" })
            assert.are.equal('[ACTION:WEB:OK] x (0ms) [GET] 127.0.0.1(http://host/api/x) [cor:abc-123] {"a":"1"}', last_log())
        end)

        it("falls back to localhost without a Host header", function()
            local _, id = register({ name = "x" })
            web(id, { host = false })
            assert.matches("127.0.0.1(http://localhost/api/x) {}", last_log(), 1, true)
        end)

        it("adds 'Error: <message>' on failure", function()
            local _, id = register({ name = "x", run = function() keryx.error("CONNECTION_SESSION_NOT_FOUND", "Session not found") end })
            web(id)
            assert.are.equal("[ACTION:WEB:ERROR] x (0ms) [GET] 127.0.0.1(http://host/api/x) Error: Session not found {}", last_log())
        end)

        it("appends the traceback of a run error on the next lines", function()
            local _, id = register({ name = "x", run = function() error("kaput", 0) end })
            web(id)
            local msg = last_log()
            assert.matches("^%[ACTION:WEB:ERROR%] x %(0ms%) %[GET%] 127%.0%.0%.1%(http://host/api/x%) Error: kaput {}\nkaput\nstack traceback:", msg)
        end)

        it("shows secret params as [[secret]] and never their value", function()
            local _, id = register({
                name = "login",
                inputs = z.object({ email = z.string(), password = z.string():secret() }),
            })
            web(id, { method = "POST", content_type = "application/json", body = '{"email":"a@b.c","password":"hunter22"}' })
            local msg = last_log()
            assert.matches('"password":"[[secret]]"', msg, 1, true)
            assert.matches('"email":"a@b.c"', msg, 1, true)
            assert.is_nil(msg:find("hunter22", 1, true))
        end)

        it("redacts secrets of a failed validation too", function()
            local _, id = register({
                name = "login",
                inputs = z.object({ password = z.string():min(20):secret() }),
            })
            local status, body = web(id, { query = "password=hunter22" })
            assert.are.equal(406, status)
            assert.is_nil(body:find("hunter22", 1, true))
            assert.are.equal("[ACTION:WEB:ERROR] login (0ms) [GET] 127.0.0.1(http://host/api/x) "
                .. 'Error: password must be at least 20 characters {"password":"[[secret]]"}', last_log())
        end)

        it("cuts long values at logger.maxParamLength", function()
            config.logger.maxParamLength = 5
            local _, id = register({ name = "x", inputs = z.object({ s = z.string() }) })
            web(id, { query = "s=abcdefghij" })
            assert.matches('{"s":"abcde... (truncated, original length: 10)"}', last_log(), 1, true)
        end)

        it("writes nothing when info is disabled", function()
            fake.log_level = "warn"
            local _, id = register({ name = "x" })
            local status = web(id)
            assert.are.equal(200, status)
            assert.are.same({}, fake.logs)
        end)
    end)
end)

describe("transport.cli", function()
    local function cli(name, argv)
        local res = fake.run(cli_transport.cli, name, argv)
        return res.code, res.out, res.err
    end

    -- Echoes the raw params the CLI parsed.
    local function echo_params(argv)
        register({ name = "echo" })
        local code, out, errout = cli("echo", argv)
        assert.are.equal(0, code, errout)
        assert.is_nil(errout)
        return decode(out).response
    end

    it("--help prints the inputs from the schema and does not run the action", function()
        local ran = false
        register({ name = "greet", description = "Greet", inputs = z.object {
            name = z.string():min(1):describe("Who"), loud = z.boolean():default(false) },
            run = function() ran = true end })
        local code, out, errout = cli("greet", { "--name", "x", "--help" })
        assert.are.equal(0, code)
        assert.is_nil(errout)
        assert.is_false(ran)
        assert.truthy(out:find("usage: keryx run greet [--loud <boolean>] --name <string> [-q]", 1, true), out)
        assert.truthy(out:find("\n  --loud <boolean>  default false  loud parameter\n", 1, true), out)
        assert.truthy(out:find("\n  --name <string>   required       Who; length >= 1", 1, true), out)
    end)

    it("refuses an undeclared flag by name, with a hint, without running the action", function()
        local ran = false
        register({ name = "greet2", inputs = z.object { name = z.string() }, run = function() ran = true end })
        local code, out, errout = cli("greet2", { "--nam", "x" })
        assert.are.equal(1, code)
        assert.is_nil(out)
        assert.are.equal("error: unknown option '--nam' for action greet2 (did you mean --name?) " ..
            "(see keryx run greet2 --help)", errout)
        assert.is_false(ran)
        local out2
        code, out2, errout = cli("greet2", { "--name", "x", "--zzz", "1" })
        assert.are.equal(1, code)
        assert.is_nil(out2)
        assert.are.equal("error: unknown option '--zzz' for action greet2 (see keryx run greet2 --help)", errout)
    end)

    it("parses --k v and --k=v", function()
        assert.are.same({ a = "1", b = "two", c = "x=y", d = "" },
            echo_params({ "--a", "1", "--b=two", "--c=x=y", "--d=" }))
    end)

    it("takes a flag without a value as \"true\"", function()
        assert.are.same({ flag = "true", other = "v", last = "true" },
            echo_params({ "--flag", "--other", "v", "--last" }))
    end)

    it("keeps a value that starts with a single dash", function()
        assert.are.same({ n = "-5" }, echo_params({ "--n", "-5" }))
    end)

    it("turns a repeated flag into an array", function()
        assert.are.same({ tag = { "a", "b", "c" } }, echo_params({ "--tag", "a", "--tag=b", "--tag", "c" }))
    end)

    it("ignores -q and --quiet", function()
        assert.are.same({ a = "1" }, echo_params({ "-q", "--a", "1", "--quiet" }))
    end)

    it("refuses a bare word with a formatting error, not running the action", function()
        local ran = false
        register({ name = "x", run = function() ran = true end })
        for _, argv in ipairs { { "word" }, { "--a", "1", "2" }, { "--" } } do
            local code, out, errout = cli("x", argv)
            assert.are.equal(1, code)
            assert.is_nil(out)
            local e = decode(errout).error
            assert.are.equal("CONNECTION_ACTION_PARAM_FORMATTING", e.type)
            assert.matches("^unexpected argument '.*' %(use %-%-name value%)$", e.message)
        end
        assert.is_false(ran)
    end)

    it("answers exit 1 and CONNECTION_ACTION_NOT_FOUND for an unknown action", function()
        local code, out, errout = cli("nope", {})
        assert.are.equal(1, code)
        assert.is_nil(out)
        local v = decode(errout)
        assert.are.same({}, v.response)
        assert.are.equal("CONNECTION_ACTION_NOT_FOUND", v.error.type)
        assert.are.equal("Action not found: nope", v.error.message)
        assert.are.equal("[ACTION:CLI:ERROR] nope (0ms) cli:" .. USER .. " Error: Action not found: nope {}", last_log())
    end)

    it("answers exit 0 and {\"response\":…} on success", function()
        register({ name = "status", run = function() return { ok = true } end })
        local code, out, errout = cli("status", {})
        assert.are.equal(0, code)
        assert.is_nil(errout)
        assert.are.equal('{"response":{"ok":true}}', out)
        assert.are.equal("[ACTION:CLI:OK] status (0ms) cli:" .. USER .. " {}", last_log())
    end)

    it("answers {\"response\":{}} when the action returns nothing", function()
        register({ name = "quiet", run = function() end })
        local code, out = cli("quiet", {})
        assert.are.equal(0, code)
        assert.are.equal('{"response":{}}', out)
    end)

    it("gives the action a cli connection", function()
        local conn
        register({ name = "who", run = function(_, c) conn = c end })
        cli("who", {})
        assert.are.equal("cli", conn.type)
        assert.are.equal("cli:" .. USER, conn.identifier)
    end)

    it("logs the parsed params with secrets redacted", function()
        register({ name = "login", inputs = z.object({ user = z.string(), password = z.string():secret() }) })
        local code = cli("login", { "--password", "hunter22", "--user", "ada" })
        assert.are.equal(0, code)
        local msg = last_log()
        assert.matches("^%[ACTION:CLI:OK%] login %(0ms%) cli:", msg)
        assert.matches('"password":"[[secret]]"', msg, 1, true)
        assert.is_nil(msg:find("hunter22", 1, true))
    end)

    it("answers a validation error with key on stderr", function()
        register({ name = "v", inputs = z.object({ n = z.integer() }) })
        local code, out, errout = cli("v", { "--n", "x" })
        assert.are.equal(1, code)
        assert.is_nil(out)
        local e = decode(errout).error
        assert.are.equal("CONNECTION_ACTION_PARAM_REQUIRED", e.type)
        assert.are.equal("n", e.key)
    end)

    it("includes the stack per config.cli.includeStackInErrors", function()
        register({ name = "boom", run = function() error("cli broke") end })
        assert.is_true(config.cli.includeStackInErrors)
        local code, _, errout = cli("boom", {})
        assert.are.equal(1, code)
        local e = decode(errout).error
        assert.are.equal("CONNECTION_ACTION_RUN", e.type)
        assert.matches("stack traceback:", e.stack, 1, true)

        config.cli.includeStackInErrors = false
        code, _, errout = cli("boom", {})
        assert.are.equal(1, code)
        e = decode(errout).error
        assert.are.equal("Internal server error", e.message)
        assert.is_nil(errout:find("cli broke", 1, true))
        assert.is_nil(e.stack)
    end)

    it("answers exit 1 CONNECTION_ACTION_RUN for a response JSON cannot encode", function()
        register({ name = "fn", run = function() return { f = print } end })
        local code, out, errout = cli("fn", {})
        assert.are.equal(1, code)
        assert.is_nil(out)
        assert.matches("^cannot encode the response as JSON", decode(errout).error.message)
    end)
end)

-- The fake itself: it must keep matching the C module it stands in for.
describe("fake keryx.core", function()
    local function read(path)
        local f = assert(io.open(path, "rb"))
        local s = f:read("*a")
        f:close()
        return s
    end

    it("exports every function the C module registers", function()
        local names = {}
        for _, file in ipairs { "src/lua_bridge.c", "src/lua_api_util.c", "src/lua_api_redis.c", "src/lua_api_ws.c",
            "src/lua_api_ratelimit.c", "src/lua_api_crypto.c" } do
            for name in read(file):gmatch('{%s*"([%w_]+)",%s*l_[%w_]+%s*}') do names[#names + 1] = name end
        end
        assert.is_true(#names >= 21)
        for _, n in ipairs(names) do
            assert.are.equal("function", type(fake[n]), "fake_core lacks " .. n)
        end
        assert.are.equal("string", type(fake.version))
        assert.are.equal("string", type(fake.home))
        assert.are.equal("server", fake.mode)
    end)

    it("has every config key of src/config.c with the right Lua type, and no other", function()
        local want = { KX_CT_STRING = "string", KX_CT_INT = "number", KX_CT_WORKERS = "number",
            KX_CT_BOOL = "boolean", KX_CT_LOGLEVEL = "string", KX_CT_SAMESITE = "string", KX_CT_LOGFORMAT = "string" }
        local seen, count = {}, 0
        for key, ct in read("src/config.c"):gmatch('{%s*"([%w%.]+)",%s*"[%w_]+",%s*(KX_CT_[%u_]+)') do
            count = count + 1
            local v = config
            for part in key:gmatch("[^%.]+") do
                if type(v) == "table" then v = v[part] else v = nil end
            end
            assert.are.equal(want[ct], type(v), "config." .. key)
            seen[key] = true
        end
        assert.is_true(count >= 60)
        local function walk(t, prefix)
            for k, v in pairs(t) do
                local key = prefix .. k
                if type(v) == "table" then walk(v, key .. ".")
                elseif key ~= "nodeEnv" then assert.is_true(seen[key], "extra config key " .. key) end
            end
        end
        walk(config, "")
        assert.are.equal("test", config.nodeEnv)
    end)

    it("refills config in place on reset, keeping captured sub-tables live", function()
        local web_cfg = config.server.web
        web_cfg.includeStackInErrors = false
        config.actions.timeout = 1
        fake.reset()
        assert.are.equal(web_cfg, config.server.web)
        assert.is_true(web_cfg.includeStackInErrors)
        assert.are.equal(300000, config.actions.timeout)
        fake.reset("production")
        assert.is_false(web_cfg.includeStackInErrors)
        assert.is_true(config.rateLimit.enabled)
        assert.is_false(config.rateLimit.failOpen)
    end)

    it("refuses sleep, arm_timeout outside a task, like the C module", function()
        assert.has_error(function() fake.sleep(1) end, "keryx.sleep called outside a request")
        assert.has_error(function() fake.arm_timeout(1) end, "arm_timeout called outside a request")
        assert.is_false(fake.aborted())
    end)

    it("refuses sleep from a coroutine nested inside a task", function()
        local ok, err = fake.run(function()
            return coroutine.wrap(function() return pcall(fake.sleep, 1) end)()
        end)
        assert.is_false(ok)
        assert.matches("keryx.sleep called outside a request", err, 1, true)
    end)

    it("wakes sleeping tasks in timer order on a virtual clock", function()
        local order = {}
        local function task(name, ms)
            assert(fake.sleep(ms))
            order[#order + 1] = name .. "@" .. fake.clock_ms()
        end
        fake.spawn(task, "b", 30)
        fake.spawn(task, "a", 10)
        fake.spawn(function() fake.sleep(5); task("c", 20) end)
        fake.drain()
        assert.are.same({ "a@10", "c@25", "b@30" }, order)
        assert.are.equal(fake.clock_ms() + 1700000000000, fake.now_ms())
    end)

    it("fires an armed timeout while parked (winning a tie), then every sleep answers aborted", function()
        local r = { fake.run(function()
            fake.arm_timeout(10)
            local a1, a2 = fake.sleep(10)
            local b1, b2 = fake.sleep(1)
            return a1, a2, b1, b2, fake.aborted()
        end) }
        assert.are.same({ nil, "aborted", nil, "aborted", true }, { unpack(r, 1, 5) })
        assert.are.equal(10, fake.clock_ms())
    end)

    it("disarms a timeout with arm_timeout(0)", function()
        local ok = fake.run(function()
            fake.arm_timeout(10)
            fake.arm_timeout(0)
            return fake.sleep(100)
        end)
        assert.is_true(ok)
        assert.are.same({ 10, 0 }, fake.timeouts)
    end)

    it("re-raises a task's error with its traceback", function()
        assert.has_error(function() fake.run(function() error("inside", 0) end) end)
        local ok, err = pcall(fake.run, function() error("inside", 0) end)
        assert.is_false(ok)
        assert.matches("^inside\nstack traceback:", err)
    end)

    it("refuses duplicate and malformed routes like kx_router_add", function()
        fake.add_route("GET", "/user/:id", 1)
        fake.add_route("POST", "/user/:id", 2)
        assert.has_error(function() fake.add_route("GET", "/user/:id", 3) end, "duplicate route GET /user/:id")
        assert.has_error(function() fake.add_route("get", "/x", 3) end)
        assert.has_error(function() fake.add_route("GET", "x", 3) end, 'invalid route "x": must start with /')
        assert.has_error(function() fake.add_route("GET", "/a//b", 3) end)
        assert.has_error(function() fake.add_route("GET", "/a/:b-c", 3) end)
        assert.has_error(function() fake.add_route("GET", "/a/", 3) end)
        local segs, params = {}, {}
        for i = 1, 33 do segs[i] = "s" end
        for i = 1, 17 do params[i] = ":p" .. i end
        assert.has_error(function() fake.add_route("GET", "/" .. table.concat(segs, "/"), 3) end)
        assert.has_error(function() fake.add_route("GET", "/" .. table.concat(params, "/"), 3) end,
            'invalid route "/' .. table.concat(params, "/") .. '": more than 16 parameters')
        fake.add_route("GET", "/" .. table.concat(params, "/", 1, 16), 3)
        fake.add_route("GET", "/" .. table.concat(segs, "/", 1, 32), 4)
        table.remove(fake.routes); table.remove(fake.routes)
        assert.are.same({ { method = "GET", route = "/user/:id", id = 1 }, { method = "POST", route = "/user/:id", id = 2 } }, fake.routes)
    end)

    it("filters log lines by level and refuses unknown levels", function()
        fake.log_level = "warn"
        fake.log("info", "hidden")
        fake.log("error", "shown")
        assert.is_true(fake.log_enabled("WARN"))
        assert.is_false(fake.log_enabled("debug"))
        assert.is_false(fake.log_enabled("nonsense")) -- counts as info
        assert.has_error(function() fake.log("loud", "x") end, "unknown log level 'loud'")
        assert.are.same({ { level = "error", msg = "shown" } }, fake.logs)
    end)

    it("lists .lua files sorted, from overrides or the disk", function()
        fake.dirs["/app/actions"] = { "z.lua", "a.lua", ".hidden.lua", "notes.txt", ".lua", "b.lua" }
        assert.are.same({ "a.lua", "b.lua", "z.lua" }, fake.list_dir("/app/actions"))
        local files = fake.list_dir("lua/keryx/actions")
        assert.are.same({ "mcp.lua", "oauth.lua", "status.lua", "swagger.lua" }, files)
        local none, err = fake.list_dir("/no/such/dir")
        assert.is_nil(none)
        assert.are.equal("cannot open /no/such/dir: No such file or directory", err)
    end)
end)
