-- MCP resources and prompts (README "Use your actions from an AI agent"): an app whose actions
-- declare mcp.resource (a fixed URI and a URI template) and mcp.prompt; listing, reading with
-- the template's variables as params and the token's user as the session, getting a prompt
-- with its arguments; an unknown URI (-32002) or prompt (-32602); an action error as a JSON-RPC
-- error with the public message only; the example app, which declares none, advertises none.
local H = require "server"
local O = require "oauth_client"
local M = require "mcp_client"

local function app_with_resources()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir .. " && cp -r " .. H.ROOT .. "/app/. " .. dir)
    local f = assert(io.open(dir .. "/actions/docs.lua", "w"))
    f:write([[
local keryx = require "keryx"
local z = keryx.schema
return {
    keryx.action {
        name = "chat:about",
        description = "What this chat is",
        mcp = { resource = { uri = "chat://about", mimeType = "text/plain" } },
        run = function() return "a keryx chat" end,
    },
    keryx.action {
        name = "chat:page",
        description = "One page of the chat, as its reader",
        inputs = z.object { page = z.string() },
        mcp = { resource = { uriTemplate = "chat://pages/{page}" } },
        run = function(p, conn) return { page = p.page, reader = conn.session.data.user_id, kind = conn.type } end,
    },
    keryx.action {
        name = "chat:broken",
        description = "Always fails",
        mcp = { resource = { uri = "chat://broken" } },
        run = function() error("internal detail 4242") end,
    },
    keryx.action {
        name = "chat:summarize",
        description = "Ask for a summary",
        inputs = z.object { topic = z.string():describe("What to summarize") },
        mcp = { prompt = { title = "Summarize the chat" } },
        run = function(p)
            return { description = "summary", messages = { { role = "user",
                content = { type = "text", text = "Summarize " .. p.topic } } } }
        end,
    },
}
]])
    f:close()
    return dir
end

describe("mcp: resources and prompts", function()
    local srv, app, token, sid, uid

    setup(function()
        H.redis().cli("FLUSHALL")
        app = app_with_resources()
        srv = H.start { env = O.env(), app = app }
        uid = O.create_user(srv)
        local _, t = O.tokens(srv)
        token = t.access_token
        local init
        sid, init = M.open(srv, token)
        assert.is_table(init.result.capabilities.resources)
        assert.is_table(init.result.capabilities.prompts)
    end)
    teardown(function()
        H.stop(srv)
        if app then os.execute("rm -rf " .. app) end
    end)

    it("lists resources and templates named like tools", function()
        local v = M.rpc(srv, token, sid, "resources/list")
        local by = {}
        for _, r in ipairs(v.result.resources) do by[r.uri] = r end
        assert.are.same({ uri = "chat://about", name = "chat-about", description = "What this chat is",
            mimeType = "text/plain" }, by["chat://about"])
        assert.is_table(by["chat://broken"])
        local t = M.rpc(srv, token, sid, "resources/templates/list")
        assert.are.equal(1, #t.result.resourceTemplates)
        assert.are.equal("chat://pages/{page}", t.result.resourceTemplates[1].uriTemplate)
        assert.are.equal("chat-page", t.result.resourceTemplates[1].name)
    end)

    it("reads a resource: a string as text, a table as JSON; template variables as params", function()
        local v = M.rpc(srv, token, sid, "resources/read", { uri = "chat://about" })
        assert.are.same({ { uri = "chat://about", mimeType = "text/plain", text = "a keryx chat" } }, v.result.contents)
        local p = M.rpc(srv, token, sid, "resources/read", { uri = "chat://pages/7%20b" })
        local c = p.result.contents[1]
        assert.are.equal("chat://pages/7%20b", c.uri)
        assert.are.equal("application/json", c.mimeType)
        assert.are.same({ page = "7 b", reader = uid, kind = "mcp" }, require("cjson").decode(c.text))
        assert.matches("%[ACTION:MCP:OK%] chat:page", srv:wait_log("[ACTION:MCP:OK] chat:page"))
    end)

    it("answers an unknown URI with -32002 and an action error without its detail", function()
        for _, uri in ipairs { "chat://nope", "chat://pages/", "chat://pages/1/2", "chat://about/x" } do
            local v = M.rpc(srv, token, sid, "resources/read", { uri = uri })
            assert.are.equal(-32002, v.error.code, uri)
        end
        local b = M.rpc(srv, token, sid, "resources/read", { uri = "chat://broken" })
        assert.are.equal(-32603, b.error.code)
        assert.is_nil(b.error.message:find("4242", 1, true))
        assert.are.equal(-32602, M.rpc(srv, token, sid, "resources/read", {}).error.code)
    end)

    it("lists prompts with their arguments and gets one", function()
        local v = M.rpc(srv, token, sid, "prompts/list")
        assert.are.equal(1, #v.result.prompts)
        local p = v.result.prompts[1]
        assert.are.equal("chat-summarize", p.name)
        assert.are.equal("Summarize the chat", p.title)
        assert.are.same({ { name = "topic", description = "What to summarize", required = true } }, p.arguments)
        local g = M.rpc(srv, token, sid, "prompts/get", { name = "chat-summarize", arguments = { topic = "today" } })
        assert.are.equal("Summarize today", g.result.messages[1].content.text)
        assert.are.equal(-32602, M.rpc(srv, token, sid, "prompts/get", { name = "nope" }).error.code)
        local bad = M.rpc(srv, token, sid, "prompts/get", { name = "chat-summarize", arguments = {} })
        assert.are.equal(-32603, bad.error.code)
    end)

    it("keeps resource and prompt actions out of tools/list unless they opt in", function()
        local v = M.rpc(srv, token, sid, "tools/list")
        for _, t in ipairs(v.result.tools) do assert.is_nil(t.name:find("^chat%-"), t.name) end
    end)
end)

describe("mcp: an app without resources or prompts", function()
    local srv

    setup(function()
        H.redis().cli("FLUSHALL")
        srv = H.start { env = O.env() }
        O.create_user(srv)
    end)
    teardown(function() H.stop(srv) end)

    it("advertises neither, and lists none", function()
        local _, t = O.tokens(srv)
        local sid, init = M.open(srv, t.access_token)
        assert.is_nil(init.result.capabilities.resources)
        assert.is_nil(init.result.capabilities.prompts)
        assert.are.equal(0, #M.rpc(srv, t.access_token, sid, "resources/list").result.resources)
        assert.are.equal(0, #M.rpc(srv, t.access_token, sid, "prompts/list").result.prompts)
    end)
end)
