-- keryx.conn's streamed answers (conn:stream → keryx.Stream) and what keryx.transport.web
-- returns for an action that streamed, against the pure-Lua fake of keryx.core
-- (spec/helpers/fake_core.lua records the stream in fake.stream; src/lua_api_http.c is the
-- real thing, spec/integration/streaming_spec.lua its black-box check).
local fake = require "keryx.core"
local conn_mod = require "keryx.conn"
local pipeline = require "keryx.pipeline"
local web_transport = require "keryx.transport.web"
local action = require "keryx.action"

local function web_conn()
    return conn_mod.new { type = "web", identifier = "127.0.0.1" }
end

--- Runs fn(conn) as a task; returns its results.
local function run(fn, conn)
    return fake.run(fn, conn or web_conn())
end

local function register(def)
    local a = action.define(def)
    local reg = pipeline.registry
    local id = #reg.list + 1
    reg.list[id], reg.by_name[a.name] = a, a
    return id
end

before_each(function()
    fake.reset()
    local reg = pipeline.registry
    for k in pairs(reg.list) do reg.list[k] = nil end
    for k in pairs(reg.by_name) do reg.by_name[k] = nil end
end)

describe("conn:stream", function()
    it("begins an SSE stream with status, headers (set_header's, then opts.headers by name) and sends events", function()
        run(function(conn)
            conn:set_header("X-First", "1")
            local s = assert(conn:stream { sse = true, headers = { ["X-B"] = "b", ["X-A"] = 2 } })
            assert.is_true(s.sse)
            assert.is_true(s:event("tick", "a\nb"))
            assert.is_true(s:event(nil, { n = 1 }))
            assert.is_true(s:write(": keep-alive\n\n"))
            s:close()
            s:close() -- twice: nothing more
        end)
        local st = fake.stream
        assert.are.same({ status = 200, framing = "sse", headers = { "X-First", "1", "X-A", "2", "X-B", "b" },
            out = { "event: tick\ndata: a\ndata: b\n\n", 'data: {"n":1}\n\n', ": keep-alive\n\n" }, ended = true },
            st)
    end)

    it("a chunked stream takes conn.status and the content type set before, else text/plain", function()
        run(function(conn)
            conn.status = 202
            conn:set_content_type("application/x-ndjson")
            assert(conn:stream()):write("{}\n")
        end)
        assert.are.same({ 202, "chunked", "application/x-ndjson", { "{}\n" }, false },
            { fake.stream.status, fake.stream.framing, fake.stream.content_type, fake.stream.out, fake.stream.ended })
        fake.reset()
        run(function(conn) assert(conn:stream { status = 207 }) end)
        assert.are.same({ 207, "text/plain; charset=utf-8" }, { fake.stream.status, fake.stream.content_type })
    end)

    it("answers nil, \"closed\" when the client is gone, at the start or on a write", function()
        fake.req_gone = true
        local s, err = run(function(conn) return conn:stream { sse = true } end)
        assert.are.same({ nil, "closed" }, { s, err })
        fake.reset()
        local ok, werr = run(function(conn)
            local st = assert(conn:stream { sse = true })
            fake.req_gone = true
            return st:event("x", "y")
        end)
        assert.are.same({ nil, "closed" }, { ok, werr })
    end)

    it("a write waiting on backpressure answers nil, \"aborted\" when the action's timeout fires", function()
        fake.stream_pause_ms = 500
        local r1, r2, r3 = run(function(conn)
            fake.arm_timeout(200)
            local s = assert(conn:stream { sse = true })
            local ok, err = s:event(nil, "slow client")
            return ok, err, fake.aborted()
        end)
        assert.are.same({ nil, "aborted", true }, { r1, r2, r3 })
    end)

    it("raises a typed error on WebSocket and CLI connections", function()
        for _, kind in ipairs { "websocket", "cli" } do
            local ok, err = run(function(conn) return pcall(conn.stream, conn, { sse = true }) end,
                conn_mod.new { type = kind, identifier = "x" })
            assert.is_false(ok)
            assert.are.equal("CONNECTION_TYPE_NOT_FOUND", err.type, tostring(err))
            assert.are.equal("conn:stream is for web requests only, not " .. kind, err.message)
        end
        assert.is_nil(fake.stream)
    end)

    it("raises on misuse: begun twice, bad options, a bad event name, event on a chunked stream, write after close", function()
        local cases = {
            { function(c) c:stream { sse = true }; c:stream { sse = true } end, "already begun" },
            { function(c) c:stream(42) end, "options must be a table" },
            { function(c) c:stream { headers = { ["Bad Name"] = "x" } } end, "invalid header name" },
            { function(c) c:stream { headers = { ["X-A"] = "a\r\nInjected: 1" } } end, "CR, LF or NUL" },
            { function(c) c:stream { headers = { ["Content-Length"] = "5" } } end, "belong to the stream" },
            { function(c) c:stream { status = 101 } end, "200..599" },
            { function(c) c:stream { sse = true }:event("a\nb", "x") end, "without CR, LF or NUL" },
            { function(c) c:stream():event("a", "x") end, "not SSE" },
            { function(c) c:stream { sse = true }:event("a", true) end, "data must be" },
            { function(c) c:stream():write({}) end, "text must be a string" },
            { function(c) local s = c:stream(); s:close(); s:write("late") end, "the stream was closed" },
        }
        for i, case in ipairs(cases) do
            fake.reset()
            local ok, err = pcall(run, case[1])
            assert.is_false(ok, "case " .. i)
            assert.is_truthy(tostring(err):find(case[2], 1, true), ("case %d: %s"):format(i, tostring(err)))
        end
    end)

    it("no session cookie with a stream: a pending one refuses the stream, a later one raises before Redis", function()
        local ok, err = pcall(run, function(conn)
            conn:update_session { user_id = 1 }
            conn:stream { sse = true }
        end)
        assert.is_false(ok)
        assert.is_truthy(tostring(err):find("session cookie is pending", 1, true), tostring(err))
        fake.reset()
        ok, err = pcall(run, function(conn)
            conn:stream { sse = true }
            conn:update_session { user_id = 1 }
        end)
        assert.is_false(ok)
        assert.is_truthy(tostring(err):find("no session cookie can follow", 1, true), tostring(err))
        assert.is_nil(next(fake.store), "nothing written to Redis")
    end)
end)

describe("transport.web after a streamed action", function()
    local function web(id)
        return web_transport.result(fake.run(web_transport.web, id, { method = "GET", target = "/api/s",
            path = "/api/s", host = "h", identifier = "127.0.0.1" }))
    end

    it("returns no status or body, only discard, and writes the action log line", function()
        local id = register { name = "s", web = { route = "/s" }, run = function(_, conn)
            assert(conn:stream { sse = true }):event(nil, "x")
            return { ignored = true }
        end }
        assert.are.same({ streamed = true, discard = false }, web(id))
        assert.is_false(fake.stream.ended) -- C ends it (src/lua_bridge.c web epilogue)
        assert.is_truthy(fake.logs[#fake.logs].msg:find("[ACTION:WEB:OK] s", 1, true))
    end)

    it("an error after the stream began goes to the log line only", function()
        local id = register { name = "s-boom", web = { route = "/s" }, run = function(_, conn)
            assert(conn:stream { sse = true })
            error("midway")
        end }
        local res = web(id)
        assert.is_true(res.streamed)
        assert.is_nil(res.body)
        local line = fake.logs[#fake.logs].msg
        assert.is_truthy(line:find("[ACTION:WEB:ERROR] s-boom", 1, true), line)
        assert.is_truthy(line:find("midway", 1, true), line)
        assert.is_true(res.discard) -- an untyped error may have been a stack overflow
    end)

    it("the action timeout while a write waits is logged as the timeout", function()
        fake.stream_pause_ms = 1000
        local id = register { name = "s-slow", web = { route = "/s" }, timeout = 100, run = function(_, conn)
            local s = assert(conn:stream())
            local _, err = s:write("x")
            return { err = err }
        end }
        local res = web(id)
        assert.is_true(res.streamed)
        assert.is_truthy(fake.logs[#fake.logs].msg:find("timed out after 100ms", 1, true))
        assert.are.same({ "x" }, fake.stream.out)
    end)
end)
