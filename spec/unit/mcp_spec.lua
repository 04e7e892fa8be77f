-- keryx.mcp and keryx.mcp_resources over the fake core: the pure Lua parts — version
-- negotiation, batches per version, the SSE-only Accept, body parsing, JSON-RPC message shapes
-- (notifications, responses, invalid ids, unknown methods), which actions are tools and their
-- schemas, a tool call's connection (type mcp, the token's user, session changes refused), the
-- feed decoding and the URI templates. The header parsing is C (tests/test_mcp_guard.c); the
-- guard, sessions and streams over HTTP are spec/integration/mcp_*_spec.lua.
local mcp = require "keryx.mcp"
local mcp_resources = require "keryx.mcp_resources"
local action = require "keryx.action"
local pipeline = require "keryx.pipeline"
local json = require "keryx.json"
local z = require "keryx.schema"
local fake = require "fake_core"

local function run(p, conn) return { p = p, user = conn.session.data.user_id, type = conn.type } end

describe("keryx.mcp", function()
    local saved
    before_each(function()
        fake.reset()
        saved = pipeline.registry.list
        pipeline.registry.list = {
            action.define { name = "user:me", run = run, mcp = { tool = true } },
            action.define { name = "hidden", run = run },
            action.define { name = "internal", run = run, internal = true, mcp = { tool = true } },
            action.define { name = "msg:create", run = run, mcp = { tool = true },
                inputs = z.object { body = z.string():min(1) } },
            action.define { name = "logout", mcp = { tool = true },
                run = function(_, conn) conn:destroy_session() end },
        }
    end)
    after_each(function() pipeline.registry.list = saved end)

    it("negotiates a supported version, else the latest", function()
        assert.are.equal("2025-03-26", mcp.negotiate { protocolVersion = "2025-03-26" })
        assert.are.equal("2025-11-25", mcp.negotiate { protocolVersion = "2024-11-05" })
        assert.are.equal("2025-11-25", mcp.negotiate(nil))
    end)

    it("refuses batches from 2025-06-18 on", function()
        assert.is_false(mcp.batches_refused("2025-03-26"))
        assert.is_true(mcp.batches_refused("2025-06-18"))
        assert.is_true(mcp.batches_refused("2025-11-25"))
    end)

    it("answers as SSE only when Accept names text/event-stream alone", function()
        assert.is_true(mcp.wants_sse_only("text/event-stream"))
        assert.is_false(mcp.wants_sse_only("application/json, text/event-stream"))
        assert.is_false(mcp.wants_sse_only("*/*, text/event-stream"))
        assert.is_false(mcp.wants_sse_only(nil))
    end)

    it("parses a body: object, batch, or nil when malformed", function()
        local v, batch = mcp.parse('{"jsonrpc":"2.0"}')
        assert.are.equal("2.0", v.jsonrpc)
        assert.is_false(batch)
        v, batch = mcp.parse(" [] ")
        assert.is_table(v)
        assert.is_true(batch)
        assert.is_nil(mcp.parse("{"))
        assert.is_nil(mcp.parse("3"))
        assert.is_nil(mcp.parse(nil))
    end)

    it("handles notifications and responses silently, refuses invalid messages", function()
        local ctx = { who = { client = "c", user = "1" }, sid = "s", conn = { identifier = "ip" } }
        assert.is_nil(mcp.handle(ctx, { jsonrpc = "2.0", method = "notifications/initialized" }))
        assert.is_nil(mcp.handle(ctx, { jsonrpc = "2.0", id = 1, result = {} }))
        assert.are.equal(-32600, mcp.handle(ctx, { id = 1, method = "ping" }).error.code)
        assert.are.equal(-32600, mcp.handle(ctx, { jsonrpc = "2.0", id = { 1 }, method = "ping" }).error.code)
        assert.are.equal(-32601, mcp.handle(ctx, { jsonrpc = "2.0", id = 1, method = "nope" }).error.code)
        assert.are.same({}, mcp.handle(ctx, { jsonrpc = "2.0", id = "a", method = "ping" }).result)
        assert.are.equal(json.null, mcp.rpc_error(nil, -32700, "x").id)
    end)

    it("lists opted-in, non-internal actions as tools with - names and their schema", function()
        local names = {}
        for _, t in ipairs(mcp.tools()) do names[#names + 1] = t.name end
        assert.are.same({ "user-me", "msg-create", "logout" }, names)
        assert.are.same({ "body" }, mcp.tools()[2].inputSchema.required)
        assert.are.same({}, mcp.tools()[1].inputSchema.properties)
        assert.is_nil(mcp.tool_action("hidden"))
        assert.is_nil(mcp.tool_action("internal"))
        assert.are.equal("msg:create", mcp.tool_action("msg-create").name)
    end)

    it("calls a tool as the token's user on an mcp connection", function()
        local ctx = { who = { client = "c", user = "7" }, sid = "s", conn = { identifier = "ip" } }
        local r = fake.run(mcp.call_tool, ctx, { name = "msg-create", arguments = { body = "hi" } })
        assert.are.same({ p = { body = "hi" }, user = 7, type = "mcp" }, r.structuredContent)
        assert.are.same(r.structuredContent, json.decode(r.content[1].text))
        local bad = fake.run(mcp.call_tool, ctx, { name = "msg-create", arguments = {} })
        assert.is_true(bad.isError)
        local _, code = fake.run(mcp.call_tool, ctx, { name = "hidden" })
        assert.are.equal(-32602, code)
        local out = fake.run(mcp.call_tool, ctx, { name = "logout" })
        assert.is_true(out.isError)
        assert.are.equal("CONNECTION_TYPE_NOT_FOUND", json.decode(out.content[1].text).type)
    end)

    it("decodes the broadcast feed, skipping what is not a broadcast", function()
        local pos = mcp.feed_open()
        fake.publish('{"channel":"room:a","message":{"x":1},"sender":"server"}')
        fake.feed.seq = fake.feed.seq + 1
        fake.feed[fake.feed.seq] = "not json"
        local entries, last = mcp.feed_since(pos)
        assert.are.equal(1, #entries)
        assert.are.same({ channel = "room:a", message = { x = 1 }, sender = "server" }, entries[1])
        assert.are.same({ jsonrpc = "2.0", method = "notifications/message", params = { level = "info",
            logger = "keryx", data = entries[1] } }, mcp.notification(entries[1]))
        assert.are.same({}, (mcp.feed_since(last)))
        mcp.feed_close()
    end)
end)

describe("keryx.mcp_resources", function()
    it("turns a URI template into an anchored pattern with its variables", function()
        local pat, names = mcp_resources._template_pattern("chat://a.b/{x}/c-{y}")
        assert.are.same({ "x", "y" }, names)
        assert.are.same({ "1", "2" }, { ("chat://a.b/1/c-2"):match(pat) })
        assert.is_nil(("chat://aXb/1/c-2"):match(pat))
        assert.is_nil(("chat://a.b/1/2/c-2"):match(pat))
        assert.is_nil(("xchat://a.b/1/c-2"):match(pat))
    end)
end)
