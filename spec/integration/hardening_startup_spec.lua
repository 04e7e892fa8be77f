-- Black-box specs for start-up hardening found by an attack run, each trying to break it:
--   * settings that would run wrong refuse to start (exit 1) and name the variable: an unknown
--     NODE_ENV, a CR/LF or other control byte in a header-valued setting (WEB_SECURITY_*,
--     PROCESS_NAME, the correlation header name), a session cookie name that is empty or not a
--     token, a rate or count limit of 0 where 0 does not mean "off", an --app directory that
--     does not exist or has no actions;
--   * the command line: --app/--config work before the command and after `start` (they were
--     silently ignored there), every flag after `run ACTION` is the action's input, and an
--     unknown option or stray argument is an error naming it (exit 1).
local H = require "server"
local cjson = require "cjson"

local function refused(env, args, needle)
    local code, out, err = H.cli(args or { "actions" }, env)
    assert.are.equal(1, code, "accepted: " .. out .. err)
    assert.truthy(err:find(needle, 1, true), err)
    return err
end

describe("start-up refuses unsafe settings", function()
    it("an unknown NODE_ENV (prod would have run as development)", function()
        refused({ NODE_ENV = "prod" }, nil, "NODE_ENV")
        refused({ NODE_ENV = "Production" }, { "start" }, "NODE_ENV")
    end)

    it("a header-valued setting with CR, LF or another control byte", function()
        refused({ WEB_SECURITY_CSP = "default-src 'self'\r\nX-Injected: 1" }, { "start" }, "WEB_SECURITY_CSP")
        refused({ WEB_SECURITY_FRAME_OPTIONS = "DENY\n" }, nil, "WEB_SECURITY_FRAME_OPTIONS")
        refused({ PROCESS_NAME = "a\rb" }, nil, "PROCESS_NAME")
        refused({ WEB_CORRELATION_ID_HEADER = "X-Id\r\nSet-Cookie: a=b" }, nil, "WEB_CORRELATION_ID_HEADER")
    end)

    it("a session cookie name that is empty or not a token", function()
        refused({ SESSION_COOKIE_NAME = "a;b=c" }, { "start" }, "SESSION_COOKIE_NAME")
        refused({ SESSION_COOKIE_NAME = "" }, nil, "SESSION_COOKIE_NAME")
    end)

    it("a rate or count limit of 0 or below where 0 does not mean off", function()
        for _, var in ipairs { "WS_MAX_MESSAGES_PER_SECOND", "WS_MAX_SUBSCRIPTIONS", "RATE_LIMIT_UNAUTH_LIMIT",
            "RATE_LIMIT_AUTH_LIMIT", "RATE_LIMIT_OAUTH_REGISTER_LIMIT" } do
            refused({ [var] = "0" }, nil, var)
            refused({ [var] = "-3" }, nil, var)
        end
    end)

    it("still starts where 0 means off (documented), and with a valid unusual cookie name", function()
        local srv = H.start { env = { WEB_MAX_BODY_SIZE = "0", ACTION_TIMEOUT = "0",
            WEB_SERVER_MAX_CONNECTIONS_PER_IP = "0", SESSION_COOKIE_NAME = "__Host-sid.v2" } }
        assert.are.equal(200, srv:request("/api/status").status)
        srv:stop()
    end)

    it("an --app directory that does not exist or has no actions", function()
        refused(nil, { "--app", "no/such/dir", "start" }, "no/such/dir")
        local empty = os.tmpname()
        os.remove(empty)
        assert(os.execute("mkdir -p " .. empty .. "/actions"))
        local err = refused(nil, { "start", "--app", empty }, "no actions")
        os.execute("rm -rf " .. empty)
        assert.truthy(err:find(empty, 1, true), err)
    end)
end)

describe("the command line", function()
    it("takes --app and --config after `start` (they were silently ignored)", function()
        local srv = H.start { args = { "start", "--app", "spec/fixtures/app", "--config", "spec/fixtures/config.lua" } }
        -- the fixture app has /api/echo-ish actions the example app lacks
        local res = srv:request("/api/core/keys")
        assert.are.equal(200, res.status, res.body)
        srv:stop()
    end)

    it("takes --app=DIR and --config=FILE forms, before or after the command", function()
        local code, out = H.cli { "--app=spec/fixtures/app", "actions", "--config=spec/fixtures/config.lua" }
        assert.are.equal(0, code)
        assert.truthy(out:find("core", 1, true), out)
    end)

    it("treats every flag after `run ACTION` as the action's input, --app included", function()
        -- were --app global here, no/such/dir would stop start-up
        -- hello declares no `app` input: the flag is refused by name, as any unknown input
        local code, out, err = H.cli { "run", "hello", "--name", "Eve", "--app", "no/such/dir" }
        assert.are.equal(1, code, err)
        assert.are.equal("", out)
        assert.truthy(err:find("unknown option '--app' for action hello", 1, true), err)
        assert.is_nil(err:find("no/such/dir", 1, true), err)
        -- a global option between `run` and ACTION still counts as one
        code, out, err = H.cli { "run", "--config", "config.lua", "hello", "--name", "Ada" }
        assert.are.equal(0, code, err)
        assert.are.same({ response = { message = "Hello, Ada!" } }, cjson.decode(out))
    end)

    it("names an unknown option or a stray argument and exits 1", function()
        local code, out, err = H.cli { "--verbose", "start" }
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.truthy(err:find("unknown option '--verbose'", 1, true), err)
        code, out, err = H.cli { "start", "--port", "9" }
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.truthy(err:find("unknown option '--port'", 1, true), err)
        code, out, err = H.cli { "actions", "extra" }
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.truthy(err:find("unexpected argument 'extra'", 1, true), err)
        code, out, err = H.cli { "start", "--app" }
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.truthy(err:find("--app needs a value", 1, true), err)
    end)
end)
