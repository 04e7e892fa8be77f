-- keryx.oauth over the fake core: the parts that are pure Lua — parameter shapes, the authorize
-- page (escaping, the forms generated from the flagged actions), which fields reach the login
-- action, the issuer origin with untrusted proxy headers, and the 429 shape. The C checks and
-- the Redis-backed flow are covered by tests/test_oauth.c and spec/integration/oauth_*_spec.lua.
local oauth = require "keryx.oauth"
local action = require "keryx.action"
local conn_mod = require "keryx.conn"
local z = require "keryx.schema"
local fake = require "fake_core"

local function run() return {} end

local login = action.define { name = "session:create", run = run, mcp = { login = true },
    inputs = z.object { email = z.string():email(), password = z.string():secret() } }
local signup = action.define { name = "user:create", run = run, mcp = { signup = true },
    inputs = z.object { name = z.string():describe("display name"), email = z.string(),
        password = z.string():secret(), nickname = z.string():optional() } }
local plain = action.define { name = "other", run = run }

describe("keryx.oauth", function()
    before_each(function() fake.reset() end)

    it("param: a string, nil when absent, false when repeated or not a string", function()
        local p = { a = "x", b = { "1", "2" }, c = 3 }
        assert.are.equal("x", oauth.param(p, "a"))
        assert.is_false(oauth.param(p, "b"))
        assert.is_false(oauth.param(p, "c"))
        assert.is_nil(oauth.param(p, "d"))
    end)

    it("finds the flagged login and signup actions, never an internal one", function()
        local internal = action.define { name = "i", run = run, internal = true, mcp = { login = true } }
        local l, s = oauth.flagged { internal, plain, login, signup }
        assert.are.equal(login, l)
        assert.are.equal(signup, s)
        l, s = oauth.flagged { plain }
        assert.is_nil(l)
        assert.is_nil(s)
    end)

    it("renders both forms from the actions' inputs, every echoed value escaped", function()
        local p = { client_id = "c", redirect_uri = "https://a.example/cb?x=1&y=\"2\"", state = "<script>",
            code_challenge = "ch", code_challenge_method = "S256", response_type = "code" }
        local page = oauth.page(p, login, signup, "bad <b>")
        assert.is_truthy(page:find('<p class="error">bad &lt;b&gt;</p>', 1, true))
        assert.is_truthy(page:find('value="&lt;script&gt;"', 1, true))
        assert.is_truthy(page:find('value="https://a.example/cb?x=1&amp;y=&quot;2&quot;"', 1, true))
        assert.is_nil(page:find("<script>", 1, true))
        assert.is_truthy(page:find('<label>Display name <input name="name" type="text" required></label>', 1, true))
        assert.is_truthy(page:find('<input name="password" type="password" required>', 1, true))
        assert.is_truthy(page:find('<input name="email" type="email" required>', 1, true))
        assert.is_truthy(page:find('<input name="nickname" type="text"></label>', 1, true))
        assert.are.equal(2, select(2, page:gsub("<form ", "")))
    end)

    it("shows no form for a missing action or one without inputs", function()
        local page = oauth.page({}, nil, plain)
        assert.is_nil(page:find("<form", 1, true))
    end)

    it("hands the login action the posted fields minus the OAuth ones", function()
        local f = oauth.action_fields { client_id = "c", redirect_uri = "r", code_challenge = "x", state = "s",
            code_challenge_method = "S256", response_type = "code", resource = "r", mode = "signin",
            email = "e@x.io", password = "pw" }
        assert.are.same({ email = "e@x.io", password = "pw" }, f)
    end)

    it("takes the issuer from APPLICATION_URL, not from request headers (trust proxy off)", function()
        fake.req_headers = { host = "evil.example", ["x-forwarded-host"] = "evil.example",
            ["x-forwarded-proto"] = "https" }
        local conn = conn_mod.new { type = "web", identifier = "127.0.0.1" }
        local origin = oauth.origin(conn)
        assert.is_nil(origin:find("evil", 1, true))
        assert.are.equal(origin .. "/mcp", oauth.resource(conn))
    end)

    it("answers JSON errors in the OAuth shape, no-store where asked", function()
        local conn = conn_mod.new { type = "web", identifier = "127.0.0.1" }
        local body = oauth.fail(conn, 400, "invalid_grant", "why", true)
        assert.are.same({ error = "invalid_grant", error_description = "why" }, body)
        assert.are.equal(400, conn.status)
        assert.are.same({ "Cache-Control", "no-store", "Pragma", "no-cache" }, rawget(conn, "_headers"))
    end)
end)
