-- Black-box specs of the production self-check (README "Production self-check") through the
-- real binary: `keryx check` evaluates the configuration as NODE_ENV=production would (exit 1
-- and one line per unsafe setting, exit 0 when none); `start` with NODE_ENV=production warns
-- once per unsafe setting and stays silent when none is; KERYX_STRICT_PRODUCTION=true refuses
-- to start (exit 1) on any of them. Each case tries to slip an unsafe setting past the check.
local H = require "server"

-- Every checklist item made safe.
local SAFE = {
    SESSION_COOKIE_SECURE = "true",
    WEB_SERVER_ALLOWED_ORIGINS = "https://app.example.com",
    APPLICATION_URL = "https://app.example.com",
}

local function env_with(extra)
    local env = {}
    for k, v in pairs(SAFE) do env[k] = v end
    for k, v in pairs(extra or {}) do env[k] = v end
    return env
end

local function unsafe_lines(text)
    local lines = {}
    for line in text:gmatch("[^\n]*unsafe in production: [^\n]*") do lines[#lines + 1] = line end
    return lines
end

describe("keryx check", function()
    it("reports the production defaults' unsafe settings and exits 1", function()
        local code, out = H.cli({ "check" })
        assert.are.equal(1, code, out)
        local lines = unsafe_lines(out)
        assert.are.equal(3, #lines, out)
        assert.truthy(lines[1]:find("SESSION_COOKIE_SECURE=true", 1, true), out)
        assert.truthy(lines[2]:find("WEB_SERVER_ALLOWED_ORIGINS", 1, true), out)
        assert.truthy(lines[3]:find("APPLICATION_URL", 1, true) and lines[3]:find("WEB_SERVER_TLS_CERT", 1, true), out)
        assert.truthy(out:find("production check: 3 unsafe setting(s)", 1, true), out)
    end)

    it("exits 0 and reports nothing unsafe for a safe configuration", function()
        local code, out, err = H.cli({ "check" }, env_with())
        assert.are.equal(0, code, out .. err)
        assert.are.equal(0, #unsafe_lines(out), out)
        assert.truthy(out:find("production check: 0 unsafe setting(s)", 1, true), out)
    end)

    it("names each unsafe switch with its safe value, one line each", function()
        local cases = {
            { RATE_LIMIT_ENABLED = "false" }, "RATE_LIMIT_ENABLED=true",
            { WEB_SERVER_INCLUDE_STACK_IN_ERRORS = "true" }, "WEB_SERVER_INCLUDE_STACK_IN_ERRORS=false",
            { WEB_SERVER_ALLOWED_ORIGINS = "*" }, "WEB_SERVER_ALLOWED_ORIGINS",
            { WEB_SECURITY_HSTS = "" }, "WEB_SECURITY_HSTS",
            { WEB_SECURITY_CSP = "" }, "WEB_SECURITY_CSP",
            { WEB_SECURITY_FRAME_OPTIONS = "" }, "WEB_SECURITY_FRAME_OPTIONS",
            { WEB_SECURITY_CONTENT_TYPE_OPTIONS = "" }, "WEB_SECURITY_CONTENT_TYPE_OPTIONS",
            { WEB_SECURITY_REFERRER_POLICY = "" }, "WEB_SECURITY_REFERRER_POLICY",
            { APPLICATION_URL = "http://app.example.com" }, "WEB_SERVER_TLS_CERT",
            { MCP_SERVER_ENABLED = "true", MCP_ALLOWED_ORIGINS = "*" }, "MCP_ALLOWED_ORIGINS",
        }
        for i = 1, #cases, 2 do
            local code, out = H.cli({ "check" }, env_with(cases[i]))
            assert.are.equal(1, code, out)
            local lines = unsafe_lines(out)
            assert.are.equal(1, #lines, out)
            assert.truthy(lines[1]:find(cases[i + 1], 1, true), out)
        end
    end)

    it("evaluates as NODE_ENV=production: the _PRODUCTION variables count, test defaults do not", function()
        -- H.cli runs with NODE_ENV=test, whose default turns rate limiting off: check ignores it.
        local code, out = H.cli({ "check" }, env_with())
        assert.are.equal(0, code, out)
        code, out = H.cli({ "check" }, env_with { RATE_LIMIT_ENABLED_PRODUCTION = "false" })
        assert.are.equal(1, code, out)
        assert.truthy(out:find("RATE_LIMIT_ENABLED=true", 1, true), out)
    end)

    it("does not count the CLI's stacks (the guide's default is on)", function()
        local code, out = H.cli({ "check" }, env_with { CLI_INCLUDE_STACK_IN_ERRORS = "true" })
        assert.are.equal(0, code, out)
    end)

    it("refuses a setting that does not parse, naming it", function()
        local code, _, err = H.cli({ "check" }, env_with { RATE_LIMIT_ENABLED = "maybe" })
        assert.are.equal(1, code)
        assert.truthy(err:find("RATE_LIMIT_ENABLED", 1, true), err)
    end)
end)

describe("start-up with NODE_ENV=production", function()
    it("warns once per unsafe setting and still serves", function()
        local srv = H.start { env = { NODE_ENV = "production", RATE_LIMIT_ENABLED = "false" } }
        local ok, err = pcall(function()
            assert.are.equal(200, srv:request("/api/status").status)
            local lines = unsafe_lines(srv:log())
            assert.are.equal(4, #lines, srv:log())
            local all = table.concat(lines, "\n")
            for _, var in ipairs { "SESSION_COOKIE_SECURE", "WEB_SERVER_ALLOWED_ORIGINS", "RATE_LIMIT_ENABLED",
                "APPLICATION_URL" } do
                assert.truthy(all:find(var, 1, true), all)
            end
            for _, line in ipairs(lines) do assert.truthy(line:find("[warn]", 1, true), line) end
        end)
        srv:stop()
        assert(ok, err)
    end)

    it("prints no warning when nothing is unsafe", function()
        local srv = H.start { env = env_with { NODE_ENV = "production" } }
        local log = srv:log()
        srv:stop()
        assert.are.equal(0, #unsafe_lines(log), log)
        assert.falsy(log:find("[warn]", 1, true), log)
    end)

    it("does not check outside production", function()
        local srv = H.start { env = { NODE_ENV = "development", RATE_LIMIT_ENABLED = "false" } }
        local log = srv:log()
        srv:stop()
        assert.are.equal(0, #unsafe_lines(log), log)
    end)

    it("KERYX_STRICT_PRODUCTION=true refuses to start on any unsafe setting", function()
        local code, out, err = H.cli({ "start" }, env_with {
            NODE_ENV = "production", KERYX_STRICT_PRODUCTION = "true", WEB_SECURITY_HSTS = "",
            WEB_SERVER_PORT = "0", WEB_SERVER_HOST = "127.0.0.1" })
        err = out .. err -- the warning is a log line (stdout), the refusal is on stderr
        assert.are.equal(1, code, err)
        assert.truthy(err:find("KERYX_STRICT_PRODUCTION", 1, true), err)
        assert.truthy(err:find("WEB_SECURITY_HSTS", 1, true), err)
        assert.falsy(err:find("started server", 1, true), err)
    end)

    it("KERYX_STRICT_PRODUCTION=true starts when nothing is unsafe", function()
        local srv = H.start { env = env_with { NODE_ENV = "production", KERYX_STRICT_PRODUCTION = "true" } }
        local status = srv:request("/api/status").status
        srv:stop()
        assert.are.equal(200, status)
    end)
end)
