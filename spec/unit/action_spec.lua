-- keryx.action: definition checks at boot and the defaults a definition gets.
local action = require "keryx.action"
local keryx = require "keryx"
local z = require "keryx.schema"

local function run() return {} end

-- Defines with def merged over a valid base; returns the error message (or fails).
local function define_error(def)
    local full = { name = "thing:do", run = run }
    for k, v in pairs(def) do full[k] = v end
    if def.name == false then full.name = nil end
    local ok, err = pcall(action.define, full)
    assert.is_false(ok, "expected define() to raise")
    return tostring(err)
end

describe("action.define validation", function()
    it("refuses a non-table definition", function()
        local ok, err = pcall(action.define, "status")
        assert.is_false(ok)
        assert.matches("keryx.action expects a table", err, 1, true)
    end)

    it("refuses a missing name, naming the action as (unnamed)", function()
        local msg = define_error({ name = false })
        assert.matches("action (unnamed): name must be a string of letters, digits and : . _ -", msg, 1, true)
    end)

    it("refuses names with characters outside letters, digits and : . _ -", function()
        for _, bad in ipairs { "has space", "slash/name", "", "semi;colon", "new\nline", "ümlaut" } do
            local msg = define_error({ name = bad })
            assert.matches("action '" .. bad .. "': name must be", msg, 1, true)
        end
    end)

    it("refuses a non-string name", function()
        assert.matches("action '42': name must be", define_error({ name = 42 }), 1, true)
    end)

    it("accepts names with letters, digits and : . _ -", function()
        local a = action.define({ name = "user:v2.create_x-y", run = run })
        assert.are.equal("user:v2.create_x-y", a.name)
    end)

    it("refuses a missing or non-function run", function()
        assert.matches("action 'thing:do': run must be a function", define_error({ run = false }), 1, true)
        assert.matches("action 'thing:do': run must be a function", define_error({ run = "fn" }), 1, true)
    end)

    it("refuses inputs that are not a schema", function()
        for _, bad in ipairs { {}, "z.object", 5, { parse = "nope" } } do
            local msg = define_error({ inputs = bad })
            assert.matches("action 'thing:do': inputs must be a keryx.schema object (z.object{...})", msg, 1, true)
        end
    end)

    it("refuses a non-object schema as inputs", function()
        define_error({ inputs = z.string() })
    end)

    it("refuses outputs that are not an object schema, and keeps one that is", function()
        for _, bad in ipairs { {}, "z.object", 5, { parse = "nope" }, z.string(), z.array(z.string()) } do
            local msg = define_error({ outputs = bad })
            assert.matches("action 'thing:do': outputs must be a keryx.schema object (z.object{...})", msg, 1, true)
        end
        local out = z.object { ok = z.boolean() }
        assert.are.equal(out, action.define({ name = "a", run = run, outputs = out }).outputs)
        assert.is_nil(action.define({ name = "a", run = run }).outputs)
    end)

    it("refuses errors that are not a list of known error types, and keeps one that is", function()
        assert.matches("action 'thing:do': errors must be a list of error types", define_error({ errors = "X" }), 1,
            true)
        assert.matches("action 'thing:do': errors[2] must be a keryx.errors type (got CONNECTION_NOPE)",
            define_error({ errors = { "CONNECTION_RATE_LIMITED", "CONNECTION_NOPE" } }), 1, true)
        assert.matches("errors[1] must be a keryx.errors type", define_error({ errors = { 401 } }), 1, true)
        local a = action.define({ name = "a", run = run, errors = { "CONNECTION_RATE_LIMITED" } })
        assert.are.same({ "CONNECTION_RATE_LIMITED" }, a.errors)
    end)

    it("refuses a description that is not a string", function()
        assert.matches("action 'thing:do': description must be a string", define_error({ description = 7 }), 1, true)
    end)

    it("refuses a negative or non-number timeout", function()
        for _, bad in ipairs { -1, -0.5, "100", true } do
            local msg = define_error({ timeout = bad })
            assert.matches("action 'thing:do': timeout must be a number of milliseconds >= 0", msg, 1, true)
        end
    end)

    it("accepts a zero timeout (disabled)", function()
        assert.are.equal(0, action.define({ name = "t", run = run, timeout = 0 }).timeout)
    end)

    it("refuses a web table without a route starting with /", function()
        for _, bad in ipairs { "x", { route = "status" }, { route = 5 }, { method = "GET" }, { route = "" } } do
            local msg = define_error({ web = bad })
            assert.matches("action 'thing:do': web.route must be a string starting with /", msg, 1, true)
        end
    end)

    it("refuses a method outside GET POST PUT PATCH DELETE", function()
        for _, bad in ipairs { "FETCH", "HEAD", "OPTIONS", "" } do
            local msg = define_error({ web = { route = "/x", method = bad } })
            assert.matches("action 'thing:do': web.method must be one of GET, POST, PUT, PATCH, DELETE", msg, 1, true)
        end
    end)

    it("refuses middleware that is not a list of tables", function()
        assert.matches("action 'thing:do': middleware must be a list", define_error({ middleware = "auth" }), 1, true)
        assert.matches("action 'thing:do': middleware[2] must be a table",
            define_error({ middleware = { {}, "auth" } }), 1, true)
    end)

    it("refuses middleware whose before or after is not a function", function()
        assert.matches("action 'thing:do': middleware[1].before must be a function",
            define_error({ middleware = { { before = "x" } } }), 1, true)
        assert.matches("action 'thing:do': middleware[1].after must be a function",
            define_error({ middleware = { { before = function() end, after = {} } } }), 1, true)
    end)

    -- Non-tail calls on purpose: a tail call removes the caller's frame from the stack.
    local function via_define(def)
        local a = action.define(def)
        return a
    end
    local function via_facade(def)
        local a = keryx.action(def)
        return a
    end

    it("blames the caller's file and line when called directly", function()
        local ok, err = pcall(via_define, { name = "x" })
        assert.is_false(ok)
        assert.matches("^[^:]*action_spec%.lua:%d+: action 'x': run must be a function$", err)
    end)

    it("blames the caller's file and line through keryx.action", function()
        local ok, err = pcall(via_facade, { name = "x" })
        assert.is_false(ok)
        assert.matches("^[^:]*action_spec%.lua:%d+: action 'x': run must be a function$", err)
    end)

    it("blames the caller for middleware mistakes when called directly", function()
        local ok, err = pcall(via_define, { name = "x", run = run, middleware = "m" })
        assert.is_false(ok)
        assert.matches("^[^:]*action_spec%.lua:%d+: action 'x': middleware must be a list$", err)
    end)
end)

describe("action.define defaults", function()
    it("describes an action as 'An Action: <name>' unless told", function()
        assert.are.equal("An Action: user:view", action.define({ name = "user:view", run = run }).description)
        assert.are.equal("Shows a user",
            action.define({ name = "user:view", run = run, description = "Shows a user" }).description)
    end)

    it("defaults the method to GET and upper-cases a given one", function()
        assert.are.same({ route = "/x", method = "GET" }, action.define({ name = "a", run = run, web = { route = "/x" } }).web)
        assert.are.same({ route = "/x", method = "POST" },
            action.define({ name = "a", run = run, web = { route = "/x", method = "post" } }).web)
        assert.are.equal("PATCH", action.define({ name = "a", run = run, web = { route = "/x", method = "Patch" } }).web.method)
    end)

    it("copies web (only route and method) so later edits of the definition do not leak in", function()
        local web = { route = "/x", method = "put", extra = 1 }
        local a = action.define({ name = "a", run = run, web = web })
        web.route = "/changed"
        assert.are.same({ route = "/x", method = "PUT" }, a.web)
    end)

    it("has no web route when none is given", function()
        assert.is_nil(action.define({ name = "a", run = run }).web)
    end)

    it("leaves mcp.tool false unless the definition opts in, merging what it gives", function()
        assert.are.same({ tool = false }, action.define({ name = "a", run = run }).mcp)
        assert.are.same({ tool = false, isLoginAction = true },
            action.define({ name = "a", run = run, mcp = { tool = false, isLoginAction = true } }).mcp)
        assert.are.same({ tool = false, resource = "r" },
            action.define({ name = "a", run = run, mcp = { resource = "r" } }).mcp)
        assert.are.same({ tool = true }, action.define({ name = "a", run = run, mcp = { tool = true } }).mcp)
    end)

    it("puts internal (framework) actions on absolute routes, never as MCP tools", function()
        local a = action.define({ name = "a", run = run, internal = true, mcp = { tool = true, login = true },
            web = { route = "/oauth/x", method = "post", absolute = true } })
        assert.are.same({ route = "/oauth/x", method = "POST", absolute = true }, a.web)
        assert.is_true(a.internal)
        assert.are.same({ tool = false }, a.mcp)
        assert.is_nil(action.define({ name = "a", run = run }).internal)
        assert.is_nil(a.raw_body)
        assert.is_true(action.define({ name = "a", run = run, internal = true, raw_body = true }).raw_body)
        assert.is_nil(action.define({ name = "a", run = run, raw_body = true }).raw_body)
    end)

    it("refuses web.absolute on an app action and non-boolean flags", function()
        assert.has_error(function()
            action.define({ name = "a", run = run, web = { route = "/x", absolute = true } })
        end, "action 'a': web.absolute is for internal (framework) actions only")
        assert.has_error(function()
            action.define({ name = "a", run = run, internal = true, web = { route = "/x", absolute = "yes" } })
        end, "action 'a': web.absolute must be a boolean")
        assert.has_error(function() action.define({ name = "a", run = run, internal = 1 }) end,
            "action 'a': internal must be a boolean")
    end)

    it("defaults middleware to an empty list and timeout to nil (the global one)", function()
        local a = action.define({ name = "a", run = run })
        assert.are.same({}, a.middleware)
        assert.is_nil(a.timeout)
    end)

    it("keeps inputs, task, middleware, run and marks the result", function()
        local inputs = z.object({ id = z.integer() })
        local mw = { { before = function() end } }
        local a = action.define({ name = "a", run = run, inputs = inputs, task = { queue = "q" }, middleware = mw, timeout = 5 })
        assert.are.equal(inputs, a.inputs)
        assert.are.same({ queue = "q" }, a.task)
        assert.are.equal(mw, a.middleware)
        assert.are.equal(run, a.run)
        assert.are.equal(5, a.timeout)
        assert.is_true(a.__keryx_action)
    end)

    it("works through the keryx.action facade", function()
        local a = keryx.action({ name = "facade", run = run })
        assert.is_true(a.__keryx_action)
        assert.are.equal("An Action: facade", a.description)
    end)
end)
