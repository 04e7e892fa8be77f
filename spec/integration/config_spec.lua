-- Black-box specs for configuration (README, Configuration): precedence defaults < config.lua < env
-- (VAR_<NODE_ENV> before VAR), validation that stops start-up naming the variable, and app
-- loading failures that stop start-up naming the file.
local H = require "server"

local APP, CONFIG = "spec/fixtures/app", "spec/fixtures/config.lua"

local sh_quote, with_server = H.sh_quote, H.with_server

local function write(path, text)
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
end

local tmp_paths = {}

local function tmpdir()
    local p = assert(io.popen("mktemp -d"))
    local dir = p:read("*l")
    p:close()
    tmp_paths[#tmp_paths + 1] = dir
    return dir
end

--- A temp config file holding `text`.
local function config_file(text)
    local dir = tmpdir()
    local path = dir .. "/config.lua"
    write(path, text)
    return path
end

--- A temp app dir whose actions/ holds files = { name = source }.
local function app_dir(files)
    local dir = tmpdir()
    os.execute("mkdir -p " .. sh_quote(dir .. "/actions"))
    for name, src in pairs(files) do write(dir .. "/actions/" .. name, src) end
    return dir
end

--- Runs `keryx --app --config start` expecting it to fail fast: returns exit code and the
--- combined output. `timeout 5` bounds a keryx that starts anyway (it would then exit 124).
local function start_fail(env, app, config)
    return H.start_fail(env, { "--app", app or APP, "--config", config or CONFIG })
end

--- Asserts start-up stopped with a non-zero exit (not the timeout) and a message holding all
--- the plain `needles`.
local function assert_refused(code, text, needles)
    assert.is_number(code)
    assert.are_not.equal(0, code, text)
    assert.are_not.equal(124, code, "keryx started instead of refusing:\n" .. text)
    assert.is_nil(text:find("started server", 1, true), text)
    for _, n in ipairs(needles) do
        assert.truthy(text:find(n, 1, true), ("expected %q in:\n%s"):format(n, text))
    end
end

local function server_name(srv)
    local res = srv:request("/api/status")
    assert.are.equal(200, res.status)
    assert.are.equal(res.headers["x-server-name"], H.json(res.body).name)
    return res.headers["x-server-name"]
end

teardown(function()
    for _, p in ipairs(tmp_paths) do os.execute("rm -rf " .. sh_quote(p)) end
end)

describe("configuration precedence", function()
    local cfg
    setup(function() cfg = config_file('return { process = { name = "from-config" } }\n') end)

    it("uses the built-in default without a setting", function()
        with_server({ app = APP, config = config_file("return {}\n") }, function(srv)
            assert.are.equal("server", server_name(srv))
        end)
    end)

    it("config.lua beats the default", function()
        with_server({ app = APP, config = cfg }, function(srv)
            assert.are.equal("from-config", server_name(srv))
        end)
    end)

    it("an env var beats config.lua", function()
        with_server({ app = APP, config = cfg, env = { PROCESS_NAME = "from-env" } }, function(srv)
            assert.are.equal("from-env", server_name(srv))
        end)
    end)

    it("VAR_<NODE_ENV> beats VAR; another environment's VAR_<ENV> is ignored", function()
        with_server({ app = APP, config = cfg, env = {
            NODE_ENV = "test", PROCESS_NAME = "from-env", PROCESS_NAME_TEST = "from-env-test",
            PROCESS_NAME_PRODUCTION = "from-env-production",
        } }, function(srv)
            assert.are.equal("from-env-test", server_name(srv))
        end)
    end)

    it("reads nested config.lua keys (securityHeaders, correlationId)", function()
        local nested = config_file([[
return {
    process = { name = "nested" },
    server = { web = {
        securityHeaders = { frameOptions = "SAMEORIGIN", hsts = "" },
        correlationId = { trustProxy = true, header = "X-Trace" },
    } },
}
]])
        with_server({ app = APP, config = nested }, function(srv)
            local res = srv:request { path = "/api/status", headers = { { "X-Trace", "t-1" } } }
            assert.are.equal(200, res.status)
            assert.are.equal("nested", res.headers["x-server-name"])
            assert.are.equal("SAMEORIGIN", res.headers["x-frame-options"])
            assert.is_nil(res.headers["strict-transport-security"])
            assert.are.equal("t-1", res.headers["x-trace"])
        end)
        with_server({ app = APP, config = nested, env = { WEB_SECURITY_FRAME_OPTIONS = "DENY" } }, function(srv)
            assert.are.equal("DENY", srv:request("/api/status").headers["x-frame-options"])
        end)
    end)
end)

describe("invalid settings stop start-up naming the variable", function()
    local cases = {
        { { WEB_SERVER_PORT = "abc" }, { "WEB_SERVER_PORT", "abc" } },
        { { WEB_SERVER_PORT = "8080x" }, { "WEB_SERVER_PORT" } },
        { { WEB_SERVER_PORT = "70000" }, { "WEB_SERVER_PORT" } },
        { { WEB_SERVER_PORT_TEST = "abc" }, { "WEB_SERVER_PORT_TEST" } },
        { { RATE_LIMIT_ENABLED = "maybe" }, { "RATE_LIMIT_ENABLED", "maybe" } },
        { { WEB_CORRELATION_ID_TRUST_PROXY = "on" }, { "WEB_CORRELATION_ID_TRUST_PROXY" } },
        { { SESSION_COOKIE_SAME_SITE = "Sideways" }, { "SESSION_COOKIE_SAME_SITE", "Sideways" } },
        { { LOG_LEVEL = "loud" }, { "LOG_LEVEL" } },
        { { WEB_SERVER_ALLOWED_ORIGINS = "https://a.example/path" }, { "WEB_SERVER_ALLOWED_ORIGINS" } },
        { { WEB_SERVER_ALLOWED_ORIGINS = "https://a.example/" }, { "WEB_SERVER_ALLOWED_ORIGINS" } },
        { { WEB_SERVER_ALLOWED_ORIGINS = "null" }, { "WEB_SERVER_ALLOWED_ORIGINS" } },
        { { WEB_SERVER_ALLOWED_ORIGINS = "*,https://a.example" }, { "WEB_SERVER_ALLOWED_ORIGINS" } },
        { { WEB_SERVER_ALLOWED_ORIGINS = "https://a.example,," }, { "WEB_SERVER_ALLOWED_ORIGINS" } },
        { { WEB_SERVER_ALLOWED_ORIGINS = "https://user@a.example" }, { "WEB_SERVER_ALLOWED_ORIGINS" } },
        { { WEB_SERVER_ALLOWED_ORIGINS = "a.example" }, { "WEB_SERVER_ALLOWED_ORIGINS" } },
        { { SESSION_COOKIE_SAME_SITE = "None" }, { "SESSION_COOKIE_SAME_SITE", "SESSION_COOKIE_SECURE" } },
        { { SESSION_COOKIE_SAME_SITE = "none", SESSION_COOKIE_SECURE = "false" },
            { "SESSION_COOKIE_SAME_SITE", "SESSION_COOKIE_SECURE" } },
    }
    for _, c in ipairs(cases) do
        local label = {}
        for k, v in pairs(c[1]) do label[#label + 1] = k .. "=" .. v end
        table.sort(label)
        it(table.concat(label, " "), function()
            local code, text = start_fail(c[1])
            assert_refused(code, text, c[2])
        end)
    end

    it("a bad value in config.lua names the key and the file", function()
        local cfg = config_file('return { server = { web = { port = "abc" } } }\n')
        local code, text = start_fail({}, APP, cfg)
        assert_refused(code, text, { "server.web.port", cfg })
        cfg = config_file('return { rateLimit = { enabled = "maybe" } }\n')
        code, text = start_fail({}, APP, cfg)
        assert_refused(code, text, { "rateLimit.enabled", cfg })
    end)

    it("accepts the valid neighbours of those values", function()
        with_server({ app = APP, config = CONFIG, env = {
            SESSION_COOKIE_SAME_SITE = "none", SESSION_COOKIE_SECURE = "TRUE",
            WEB_SERVER_ALLOWED_ORIGINS = " https://a.example:8443 , http://localhost:3000",
            RATE_LIMIT_ENABLED = "No", LOG_LEVEL = "INFO",
        } }, function(srv)
            local res = srv:request { path = "/api/status", headers = { { "Origin", "http://localhost:3000" } } }
            assert.are.equal(200, res.status)
            assert.are.equal("http://localhost:3000", res.headers["access-control-allow-origin"])
            res = srv:request { path = "/api/status", headers = { { "Origin", "https://a.example:8443" } } }
            assert.are.equal("https://a.example:8443", res.headers["access-control-allow-origin"])
        end)
    end)
end)

describe("booleans", function()
    local FIX = { "--app", APP, "--config", CONFIG, "run", "boom", "-q" }

    local function stack_shown(value)
        local code, out, err = H.cli(FIX, { CLI_INCLUDE_STACK_IN_ERRORS = value })
        assert.are.equal(1, code, value .. ": " .. err)
        assert.are.equal("", out)
        local doc = H.json(err:match("[^\n]+"))
        assert.are.equal("CONNECTION_ACTION_RUN", doc.error.type)
        return doc.error.stack ~= nil
    end

    it("accept true/yes/1 in any case", function()
        for _, v in ipairs { "true", "TRUE", "True", "yes", "YES", "Yes", "yEs", "1" } do
            assert.is_true(stack_shown(v), v)
        end
    end)

    it("accept false/no/0 in any case", function()
        for _, v in ipairs { "false", "FALSE", "False", "no", "NO", "No", "0" } do
            assert.is_false(stack_shown(v), v)
        end
    end)

    it("refuse anything else, naming the variable", function()
        for _, v in ipairs { "maybe", "2", "y", "on", "off", "truthy", " true" } do
            local code, out, err = H.cli(FIX, { CLI_INCLUDE_STACK_IN_ERRORS = v })
            assert.are.equal(1, code, v)
            assert.are.equal("", out, v)
            assert.truthy(err:find("CLI_INCLUDE_STACK_IN_ERRORS", 1, true), v .. ": " .. err)
        end
    end)

    it("work the same for the server (WEB_CORRELATION_ID_TRUST_PROXY=Yes / nO)", function()
        with_server({ app = APP, config = CONFIG, env = { WEB_CORRELATION_ID_TRUST_PROXY = "Yes" } }, function(srv)
            local res = srv:request { path = "/api/status", headers = { { "X-Request-Id", "b-1" } } }
            assert.are.equal("b-1", res.headers["x-request-id"])
        end)
        with_server({ app = APP, config = CONFIG, env = { WEB_CORRELATION_ID_TRUST_PROXY = "nO" } }, function(srv)
            local res = srv:request { path = "/api/status", headers = { { "X-Request-Id", "b-1" } } }
            assert.is_nil(res.headers["x-request-id"])
        end)
    end)
end)

describe("start-up failures name the file", function()
    it("a config.lua with a syntax error", function()
        local cfg = config_file("return { process = { name = \"x\" }\n")
        local code, text = start_fail({}, APP, cfg)
        assert_refused(code, text, { cfg })
    end)

    it("a config.lua raising an error or not returning a table", function()
        local cfg = config_file('error("config exploded")\n')
        local code, text = start_fail({}, APP, cfg)
        assert_refused(code, text, { cfg, "config exploded" })
        cfg = config_file('return "nope"\n')
        code, text = start_fail({}, APP, cfg)
        assert_refused(code, text, { cfg, "must return a table" })
    end)

    it("a --config file that does not exist", function()
        local missing = tmpdir() .. "/missing.lua"
        local code, text = start_fail({}, APP, missing)
        assert_refused(code, text, { missing })
    end)

    local GOOD = [[
local keryx = require "keryx"
return keryx.action { name = "good", web = { route = "/good" }, run = function() return { ok = true } end }
]]

    it("an action file with a syntax error", function()
        local dir = app_dir { ["a_good.lua"] = GOOD, ["b_broken.lua"] = "return keryx.action {\n" }
        local code, text = start_fail({}, dir)
        assert_refused(code, text, { dir .. "/actions/b_broken.lua" })
    end)

    it("an action file raising an error while loading", function()
        local dir = app_dir { ["a_good.lua"] = GOOD, ["raises.lua"] = 'error("load-time failure")\n' }
        local code, text = start_fail({}, dir)
        assert_refused(code, text, { dir .. "/actions/raises.lua", "load-time failure" })
    end)

    it("an action file returning something that is not an action", function()
        local dir = app_dir { ["a_good.lua"] = GOOD, ["not_action.lua"] = 'return { name = "x" }\n' }
        local code, text = start_fail({}, dir)
        assert_refused(code, text, { dir .. "/actions/not_action.lua" })
    end)

    it("an invalid action definition", function()
        local dir = app_dir { ["bad_method.lua"] = [[
local keryx = require "keryx"
return keryx.action { name = "bad", web = { route = "/bad", method = "FETCH" }, run = function() end }
]] }
        local code, text = start_fail({}, dir)
        assert_refused(code, text, { "bad_method.lua", "web.method" })
    end)

    it("a duplicate route", function()
        local dir = app_dir {
            ["a_one.lua"] = [[
local keryx = require "keryx"
return keryx.action { name = "one", web = { route = "/dup", method = "GET" }, run = function() end }
]],
            ["b_two.lua"] = [[
local keryx = require "keryx"
return keryx.action { name = "two", web = { route = "/dup", method = "GET" }, run = function() end }
]],
        }
        local code, text = start_fail({}, dir)
        assert_refused(code, text, { dir .. "/actions/b_two.lua", "duplicate route", "/dup" })
    end)

    it("a route clashing with a built-in action", function()
        local dir = app_dir { ["mine.lua"] = [[
local keryx = require "keryx"
return keryx.action { name = "my:status", web = { route = "/status", method = "GET" }, run = function() end }
]] }
        local code, text = start_fail({}, dir)
        assert_refused(code, text, { "mine.lua", "duplicate route", "/status" })
    end)

    it("a duplicate action name", function()
        local dir = app_dir {
            ["a_one.lua"] = [[
local keryx = require "keryx"
return keryx.action { name = "same", run = function() end }
]],
            ["b_two.lua"] = [[
local keryx = require "keryx"
return keryx.action { name = "same", run = function() end }
]],
        }
        local code, text = start_fail({}, dir)
        assert_refused(code, text, { dir .. "/actions/b_two.lua", "duplicate action name 'same'" })
    end)

    it("the same route with another method is fine", function()
        local dir = app_dir {
            ["a_one.lua"] = [[
local keryx = require "keryx"
return keryx.action { name = "one", web = { route = "/dup", method = "GET" }, run = function() return { m = "get" } end }
]],
            ["b_two.lua"] = [[
local keryx = require "keryx"
return keryx.action { name = "two", web = { route = "/dup", method = "POST" }, run = function() return { m = "post" } end }
]],
        }
        with_server({ app = dir, config = CONFIG }, function(srv)
            assert.are.same({ m = "get" }, H.json(srv:request("/api/dup").body))
            assert.are.same({ m = "post" }, H.json(srv:request { method = "POST", path = "/api/dup" }.body))
        end)
    end)
end)
