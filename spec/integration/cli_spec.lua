-- Black-box specs for the command line (README, Command line): `keryx run`, `actions`,
-- `--help`, `--version`, exit codes, and stdout carrying only the JSON result.
local H = require "server"
local cjson = require "cjson"

local FIX = { "--app", "spec/fixtures/app", "--config", "spec/fixtures/config.lua" }

--- H.cli with the fixture app and config in front of args.
local function fx(args, env)
    local all = {}
    for _, a in ipairs(FIX) do all[#all + 1] = a end
    for _, a in ipairs(args) do all[#all + 1] = a end
    return H.cli(all, env)
end

--- The one JSON line of a CLI error output (stderr may also hold log lines before it).
local function error_json(stderr)
    local found
    for line in stderr:gmatch("[^\n]+") do
        if line:sub(1, 1) == "{" then
            assert.is_nil(found, "more than one JSON line in:\n" .. stderr)
            found = line
        end
    end
    assert.is_string(found, "no JSON line in stderr:\n" .. stderr)
    local doc = cjson.decode(found)
    assert.is_table(doc.error)
    assert.are.same({}, doc.response)
    assert.is_number(doc.error.timestamp)
    return doc.error
end

describe("keryx run", function()
    it("prints exactly the JSON result on stdout and exits 0", function()
        local code, out, err = H.cli({ "run", "hello", "--name", "Evan" })
        assert.are.equal(0, code)
        assert.are.equal('{"response":{"message":"Hello, Evan!"}}\n', out)
        assert.truthy(err:find("[ACTION:CLI:OK] hello", 1, true), err)
        assert.truthy(err:find('%[ACTION:CLI:OK%] hello %(%d+ms%) cli:[^ ]+ {"name":"Evan"}\n'), err)
    end)

    it("applies input defaults", function()
        local code, out = H.cli({ "run", "hello", "-q" })
        assert.are.equal(0, code)
        assert.are.equal('{"response":{"message":"Hello, world!"}}\n', out)
    end)

    it("is silent on stderr with -q, --quiet and CLI_QUIET=true", function()
        for _, case in ipairs {
            { { "run", "hello", "--name", "Evan", "-q" } },
            { { "run", "hello", "-q", "--name", "Evan" } },
            { { "run", "hello", "--name", "Evan", "--quiet" } },
            { { "run", "hello", "--name", "Evan" }, { CLI_QUIET = "true" } },
        } do
            local code, out, err = H.cli(case[1], case[2])
            assert.are.equal(0, code)
            assert.are.equal('{"response":{"message":"Hello, Evan!"}}\n', out)
            assert.are.equal("", err)
        end
    end)

    it("keeps log lines off stdout, even at LOG_LEVEL=trace", function()
        local code, out, err = H.cli({ "run", "hello", "--name", "Evan" }, { LOG_LEVEL = "trace" })
        assert.are.equal(0, code)
        assert.are.equal('{"response":{"message":"Hello, Evan!"}}\n', out)
        assert.truthy(err:find("[ACTION:CLI:OK] hello", 1, true))
    end)

    it("accepts --k=v, repeats a flag into an array, and a bare flag as true", function()
        local code, out = fx({ "run", "echo", "--name=abcd", "--tag", "a", "--tag", "b", "-q" })
        assert.are.equal(0, code)
        assert.are.same({ response = { name = "abcd", tag = { "a", "b" } } }, cjson.decode(out))
        code, out = fx({ "run", "numbers", "-q", "--n", "3", "--b" })
        assert.are.equal(0, code)
        assert.are.same({ response = { n = 3, b = true } }, cjson.decode(out))
    end)

    it("does not take -q as the value of a preceding bare flag", function()
        local code, out, err = fx({ "run", "numbers", "--n", "3", "--b", "-q" })
        assert.are.equal(0, code)
        assert.are.same({ response = { n = 3, b = true } }, cjson.decode(out))
        assert.are.equal("", err)
    end)

    it("prints {} for an action returning nothing", function()
        local code, out = fx({ "run", "nothing", "-q" })
        assert.are.equal(0, code)
        assert.are.equal('{"response":{}}\n', out)
    end)

    it("runs actions that sleep (the loop runs for the CLI too)", function()
        local code, out = fx({ "run", "sleep", "--ms", "20", "-q" })
        assert.are.equal(0, code)
        assert.are.equal('{"response":{"slept":20}}\n', out)
    end)

    it("exits 1 on a validation failure with the error JSON on stderr and nothing on stdout", function()
        local code, out, err = fx({ "run", "echo", "--name", "ab" })
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.truthy(err:find("[ACTION:CLI:ERROR] echo", 1, true), err)
        local e = error_json(err)
        assert.are.equal("CONNECTION_ACTION_PARAM_REQUIRED", e.type)
        assert.are.equal("name must be at least 3 characters", e.message)
        assert.are.equal("name", e.key)
        assert.are.equal("ab", e.value)
    end)

    it("reports a missing required input", function()
        local code, out, err = fx({ "run", "echo", "-q" })
        assert.are.equal(1, code)
        assert.are.equal("", out)
        local e = error_json(err)
        assert.are.equal("CONNECTION_ACTION_PARAM_REQUIRED", e.type)
        assert.are.equal("Missing required param: name", e.message)
    end)

    it("includes a stack in a validation error by default (CLI_INCLUDE_STACK_IN_ERRORS=true)", function()
        local code, _, err = fx({ "run", "echo", "--name", "ab", "-q" })
        assert.are.equal(1, code)
        local e = error_json(err)
        assert.is_string(e.stack)
        assert.is_true(#e.stack > 0)
    end)

    it("includes the stack of a Lua error, and leaves it out with CLI_INCLUDE_STACK_IN_ERRORS=false", function()
        local code, out, err = fx({ "run", "boom", "-q" })
        assert.are.equal(1, code)
        assert.are.equal("", out)
        local e = error_json(err)
        assert.are.equal("CONNECTION_ACTION_RUN", e.type)
        assert.truthy(e.message:find("kaboom$"))
        assert.is_string(e.stack)
        assert.truthy(e.stack:find("stack traceback", 1, true))

        code, out, err = fx({ "run", "boom", "-q" }, { CLI_INCLUDE_STACK_IN_ERRORS = "false" })
        assert.are.equal(1, code)
        assert.are.equal("", out)
        e = error_json(err)
        assert.are.equal("CONNECTION_ACTION_RUN", e.type)
        assert.is_nil(e.stack)
        assert.is_nil(err:find("traceback", 1, true))

        code, out, err = fx({ "run", "echo", "--name", "ab", "-q" }, { CLI_INCLUDE_STACK_IN_ERRORS = "false" })
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.is_nil(error_json(err).stack)
    end)

    it("reports typed errors and timeouts with their type", function()
        local code, _, err = fx({ "run", "typed", "-q" })
        assert.are.equal(1, code)
        local e = error_json(err)
        assert.are.equal("CONNECTION_SESSION_NOT_FOUND", e.type)
        assert.are.equal("Session not found", e.message)
        code, _, err = fx({ "run", "slow", "-q" })
        assert.are.equal(1, code)
        e = error_json(err)
        assert.are.equal("CONNECTION_ACTION_TIMEOUT", e.type)
        assert.are.equal("Action 'slow' timed out after 100ms", e.message)
    end)

    it("exits 1 with CONNECTION_ACTION_NOT_FOUND for an unknown action", function()
        local code, out, err = H.cli({ "run", "no:such-action" })
        assert.are.equal(1, code)
        assert.are.equal("", out)
        local e = error_json(err)
        assert.are.equal("CONNECTION_ACTION_NOT_FOUND", e.type)
        assert.are.equal("Action not found: no:such-action", e.message)
    end)

    it("refuses a stray positional argument", function()
        local code, out, err = H.cli({ "run", "hello", "stray", "-q" })
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.are.equal("CONNECTION_ACTION_PARAM_FORMATTING", error_json(err).type)
    end)

    it("exits 1 when run has no action name", function()
        local code, out, err = H.cli({ "run" })
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.truthy(err:find("usage", 1, true))
    end)
end)

describe("keryx actions", function()
    it("lists every action with its route and description", function()
        local code, out, err = H.cli({ "actions" })
        assert.are.equal(0, code)
        assert.are.equal("", err)
        assert.truthy(out:find("status%s+GET /api/status%s+Return the status of the server\n"), out)
        assert.truthy(out:find("swagger%s+GET /api/swagger%s+"), out)
        assert.truthy(out:find("hello%s+GET /api/hello%s+Say hello\n"), out)
        assert.is_nil(out:find("[info]", 1, true))
    end)

    it("lists the fixture app's actions, route params included", function()
        local code, out = fx({ "actions" })
        assert.are.equal(0, code)
        assert.truthy(out:find("user:show%s+GET /api/user/:id%s+Show a user by id\n"), out)
        assert.truthy(out:find("echo%s+POST /api/echo%s+"), out)
        assert.truthy(out:find("boom%s+GET /api/boom%s+An Action: boom\n"), out)
        assert.is_nil(out:find("hello", 1, true))
    end)
end)

describe("keryx global commands", function()
    it("--version prints keryx 0.1.0", function()
        local code, out = H.cli({ "--version" })
        assert.are.equal(0, code)
        assert.are.equal("keryx 0.1.0\n", out)
    end)

    it("--help prints the usage on stdout and exits 0", function()
        local code, out = H.cli({ "--help" })
        assert.are.equal(0, code)
        assert.truthy(out:find("usage:", 1, true))
        assert.truthy(out:find("keryx [--app DIR] [--config FILE] start", 1, true))
    end)

    it("no command prints the usage on stderr and exits 1", function()
        local code, out, err = H.cli({})
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.truthy(err:find("usage:", 1, true))
    end)

    it("an unknown command exits 1 naming it", function()
        local code, out, err = H.cli({ "frobnicate" })
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.truthy(err:find("error: unknown command 'frobnicate'", 1, true))
    end)
end)

describe("keryx run ACTION --help", function()
    it("prints the inputs from the schema on stdout, exits 0 and runs nothing", function()
        local code, out, err = fx({ "run", "echo", "--help" })
        assert.are.equal(0, code, err)
        assert.truthy(out:find("keryx run echo - Echo the params (POST)", 1, true), out)
        assert.truthy(out:find("usage: keryx run echo --name <string> [--tag <array>] [-q]", 1, true), out)
        assert.truthy(out:find("\n  %-%-name <string>%s+required%s+Who is echoed; length >= 3\n"), out)
        assert.truthy(out:find("\n  %-%-tag <array>%s+optional%s+tag parameter\n"), out)
        assert.truthy(out:find("route: POST /api/echo", 1, true), out)
        assert.is_nil(err:find("[ACTION:", 1, true), err) -- nothing ran
    end)

    it("shows defaults and secrets, also with -h", function()
        local code, out = H.cli({ "run", "hello", "-h" })
        assert.are.equal(0, code)
        assert.truthy(out:find('%-%-name <string>%s+default "world"%s+Who to greet; length 1..100\n'), out)
        code, out = H.cli({ "run", "user:create", "--help" })
        assert.are.equal(0, code)
        assert.truthy(out:find("%-%-password <string>%s+required, secret%s+password parameter; length 8..256\n"), out)
        assert.truthy(out:find("%-%-email <string>%s+required%s+email parameter; an email address\n"), out)
    end)

    it("works with Redis unreachable", function()
        local code, out = H.cli({ "run", "hello", "--help" }, { REDIS_URL = "redis://127.0.0.1:1/0" })
        assert.are.equal(0, code)
        assert.truthy(out:find("usage: keryx run hello [--name <string>] [-q]", 1, true), out)
    end)
end)

describe("keryx run: unknown flags", function()
    it("refuses a flag the schema does not declare, naming it, with a hint when one is close", function()
        local code, out, err = H.cli({ "run", "hello", "--nmae", "Evan" })
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.truthy(err:find("error: unknown option '--nmae' for action hello (did you mean --name?)", 1, true), err)
        assert.is_nil(err:find("[ACTION:", 1, true), err)
        code, out, err = fx({ "run", "echo", "--name", "abcd", "--colour", "red", "-q" })
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.truthy(err:find("unknown option '--colour' for action echo (see keryx run echo --help)", 1, true), err)
    end)
end)

describe("keryx actions: inputs", function()
    it("lists each action's inputs under it", function()
        local code, out = H.cli({ "actions" })
        assert.are.equal(0, code)
        assert.truthy(out:find('hello%s+GET /api/hello%s+Say hello\n    %-%-name <string>%s+default "world"%s+Who to greet'), out)
        assert.truthy(out:find("\n    %-%-password <string>%s+required, secret"), out)
    end)
end)

-- A RESP subscriber over lua-socket: SUBSCRIBE, then the published payloads as they come.
local socket = require "socket"

local function subscriber(port, channel)
    local c = assert(socket.tcp())
    c:settimeout(5)
    assert(c:connect("127.0.0.1", port))
    assert(c:send(("*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n"):format(#channel, channel)))
    local function read_array()
        local head = assert(c:receive("*l"))
        local n = tonumber(head:match("^%*(%d+)$"))
        local items = {}
        for i = 1, n do
            local line = assert(c:receive("*l"))
            local len = line:match("^%$(%d+)$")
            if len then
                items[i] = c:receive(tonumber(len))
                c:receive("*l")
            else
                items[i] = line:sub(2)
            end
        end
        return items
    end
    assert.are.equal("subscribe", read_array()[1])
    return {
        next = function(timeout)
            c:settimeout(timeout)
            local ok, items = pcall(read_array)
            if ok then return items[3] end
            return nil
        end,
        close = function() c:close() end,
    }
end

describe("keryx run: work the action started is flushed before exit", function()
    it("delivers every broadcast the action made (PUBLISH written before the process exits)", function()
        local sub = subscriber(H.redis().port, "keryx:pubsub")
        local room = "cli-flush-" .. tostring(os.time())
        local code, out, err = fx({ "run", "announce", "--room", room, "--text", "hi", "--times", "5", "-q" })
        assert.are.equal(0, code, err)
        assert.are.same({ response = { sent = 5 } }, cjson.decode(out))
        local got = {}
        while #got < 5 do
            local payload = sub.next(3)
            if not payload then break end
            local msg = cjson.decode(payload)
            if msg.channel == "room:" .. room then got[#got + 1] = msg.message.n end
        end
        sub.close()
        assert.are.same({ 1, 2, 3, 4, 5 }, got)
    end)
end)
