-- Black-box specs for "config that tells you" (README, Configuration and Logging): an unknown
-- key in config.lua stops start-up naming the key, the file and the close known key;
-- LOG_FORMAT=text|json (LOG_JSON kept as an alias); JSON action lines carry structured fields.
local H = require "server"
local W = require "ws_client"
local cjson = require "cjson"

local APP, CONFIG = "spec/fixtures/app", "spec/fixtures/config.lua"

local tmp_dirs = {}

--- A temp config file holding `text`.
local function config_file(text)
    local p = assert(io.popen("mktemp -d"))
    local dir = p:read("*l")
    p:close()
    tmp_dirs[#tmp_dirs + 1] = dir
    local f = assert(io.open(dir .. "/config.lua", "wb"))
    f:write(text)
    f:close()
    return dir .. "/config.lua"
end

teardown(function()
    for _, d in ipairs(tmp_dirs) do os.execute("rm -rf " .. H.sh_quote(d)) end
end)

--- The JSON log lines of text (other lines skipped), decoded.
local function json_lines(text)
    local out = {}
    for line in text:gmatch("[^\n]+") do
        if line:sub(1, 1) == "{" then out[#out + 1] = cjson.decode(line) end
    end
    return out
end

--- The first decoded JSON line whose message starts with prefix.
local function entry(text, prefix)
    for _, e in ipairs(json_lines(text)) do
        if type(e.message) == "string" and e.message:sub(1, #prefix) == prefix then return e end
    end
    error("no JSON line starting with " .. prefix .. " in:\n" .. text)
end

describe("config.lua: unknown keys", function()
    it("stops start-up naming the key (dotted), the file and the close known key", function()
        local cfg = config_file('return { server = { web = { prot = 9999, host = "127.0.0.1" } } }\n')
        local code, text = H.start_fail({}, { "--app", APP, "--config", cfg })
        assert.are.equal(1, code, text)
        assert.truthy(text:find("keryx: config file " .. cfg .. ": unknown key server.web.prot " ..
            "(did you mean server.web.port?)", 1, true), text)
        assert.is_nil(text:find("started server", 1, true), text)
    end)

    it("names every unknown key, sorted, a hint only where a known key is close", function()
        local cfg = config_file('return { logger = { levle = "info" }, database = { url = "x" }, ' ..
            'rateLimit = { enabled = false, windowMS = 10 } }\n')
        local code, text = H.start_fail({}, { "--app", APP, "--config", cfg })
        assert.are.equal(1, code, text)
        assert.truthy(text:find("unknown keys database, logger.levle (did you mean logger.level?), " ..
            "rateLimit.windowMS (did you mean rateLimit.windowMs?)", 1, true), text)
    end)

    it("refuses a value where a section of settings belongs", function()
        local cfg = config_file('return { logger = "json" }\n')
        local code, text = H.start_fail({}, { "--app", APP, "--config", cfg })
        assert.are.equal(1, code, text)
        assert.truthy(text:find("invalid value for logger in " .. cfg .. ": expected a table", 1, true), text)
    end)

    it("checks the CLI's config too, and the repository's own config.lua passes", function()
        local cfg = config_file('return { cli = { quite = true } }\n')
        local code, out, err = H.cli({ "--config", cfg, "run", "hello" })
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.truthy(err:find("unknown key cli.quite (did you mean cli.quiet?)", 1, true), err)
        code = H.cli({ "--config", "config.lua", "run", "hello", "-q" })
        assert.are.equal(0, code)
    end)
end)

describe("LOG_FORMAT", function()
    it("json: one JSON object per line; text: the usual line; anything else is refused", function()
        local code, out, err = H.cli({ "run", "hello", "--name", "Ada" }, { LOG_FORMAT = "json" })
        assert.are.equal(0, code, err)
        assert.are.equal('{"response":{"message":"Hello, Ada!"}}\n', out)
        local e = entry(err, "[ACTION:CLI:OK] hello")
        assert.are.equal("info", e.level)
        assert.is_number(e.pid)
        assert.is_string(e.timestamp)
        assert.are.equal("hello", e.action)
        assert.are.equal("cli", e.connection_type)
        assert.are.equal("OK", e.status)
        assert.is_nil(e.ip) -- the CLI has no client address
        code, out, err = H.cli({ "run", "hello", "--name", "Ada" }, { LOG_FORMAT = "text" })
        assert.are.equal(0, code, err)
        assert.are.equal('{"response":{"message":"Hello, Ada!"}}\n', out)
        assert.truthy(err:find('%[info%] %[ACTION:CLI:OK%] hello %(%d+ms%) cli:[^ ]+ {"name":"Ada"}\n'), err)
        assert.is_nil(err:find("{\"timestamp\"", 1, true), err)
        code, out, err = H.cli({ "run", "hello" }, { LOG_FORMAT = "yaml" })
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.truthy(err:find('invalid value for LOG_FORMAT: "yaml" (expected text or json)', 1, true), err)
    end)

    it("LOG_JSON=true still means json, and config.lua logger.format = \"json\" works", function()
        local _, _, err = H.cli({ "run", "hello" }, { LOG_JSON = "true" })
        assert.are.equal("hello", entry(err, "[ACTION:CLI:OK]").action)
        local cfg = config_file('return { logger = { format = "json" } }\n')
        _, _, err = H.cli({ "--config", cfg, "run", "hello" })
        assert.are.equal("hello", entry(err, "[ACTION:CLI:OK]").action)
    end)
end)

describe("JSON action lines through the server", function()
    local srv
    setup(function()
        srv = H.start { app = APP, config = CONFIG,
            env = { LOG_FORMAT = "json", WEB_CORRELATION_ID_TRUST_PROXY = "true" } }
    end)
    teardown(function() H.stop(srv) end)

    it("a web action: action, connection_type, status, duration_ms, method, url, correlation_id, ip", function()
        local res = H.get(srv, "/api/echo-get?name=abcd", { ["X-Request-Id"] = "req-42" })
        assert.are.equal(200, res.status)
        local e = entry(srv:wait_log("[ACTION:WEB:OK] echo:get"), "[ACTION:WEB:OK] echo:get")
        assert.are.equal("echo:get", e.action)
        assert.are.equal("web", e.connection_type)
        assert.are.equal("OK", e.status)
        assert.is_number(e.duration_ms)
        assert.are.equal("GET", e.method)
        assert.truthy(e.url:find("/api/echo-get", 1, true), e.url)
        assert.are.equal("req-42", e.correlation_id)
        assert.are.equal("127.0.0.1", e.ip)
        assert.truthy(e.message:find("[cor:req-42]", 1, true), e.message)
    end)

    it("a failed action: status ERROR with the error's message and type", function()
        local res = H.get(srv, "/api/echo-get?name=a")
        assert.are.equal(406, res.status)
        local e = entry(srv:wait_log("[ACTION:WEB:ERROR] echo:get"), "[ACTION:WEB:ERROR] echo:get")
        assert.are.equal("ERROR", e.status)
        assert.are.equal("CONNECTION_ACTION_PARAM_REQUIRED", e.error_type)
        assert.is_string(e.error)
        assert.is_nil(e.correlation_id)
    end)

    it("a WebSocket action: connection_type websocket, method WEBSOCKET, the client's ip", function()
        local ws = W.open(srv)
        local reply = ws:request({ messageType = "action", action = "status", messageId = 1 })
        assert.is_table(reply)
        ws:close(1000)
        local e = entry(srv:wait_log("[ACTION:WEBSOCKET:OK] status"), "[ACTION:WEBSOCKET:OK] status")
        assert.are.equal("websocket", e.connection_type)
        assert.are.equal("WEBSOCKET", e.method)
        assert.are.equal("127.0.0.1", e.ip)
        -- every line of the server's log is JSON
        for line in srv:log():gmatch("[^\n]+") do
            assert.are.equal("{", line:sub(1, 1), line)
        end
    end)
end)
