local errors = require "keryx.errors"
local json = require "keryx.json"

describe("keryx.errors", function()
    describe("new / is / tostring", function()
        it("builds a typed error with all fields", function()
            local e = errors.new("CONNECTION_ACTION_RUN", "boom", "id", 42)
            assert.are.equal("CONNECTION_ACTION_RUN", e.type)
            assert.are.equal("boom", e.message)
            assert.are.equal("id", e.key)
            assert.are.equal(42, e.value)
            assert.are.equal(errors.mt, getmetatable(e))
            assert.are.equal("boom", tostring(e))
        end)

        it("recognises only its own errors", function()
            assert.is_true(errors.is(errors.new("CONFIG_ERROR", "x")))
            assert.is_false(errors.is({ type = "CONFIG_ERROR", message = "x" }))
            assert.is_false(errors.is("CONFIG_ERROR"))
            assert.is_false(errors.is(nil))
        end)

        it("uses the type as message when none is given and stringifies others", function()
            assert.are.equal("CONNECTION_RATE_LIMITED", errors.new("CONNECTION_RATE_LIMITED").message)
            assert.are.equal("12", errors.new("CONNECTION_ACTION_RUN", 12).message)
        end)

        it("raises a plain error when the type is not a string", function()
            assert.has_error(function() errors.new(nil, "x") end)
            assert.has_error(function() errors.new("", "x") end)
            assert.has_error(function() errors.new(404, "x") end)
        end)
    end)

    describe("raise", function()
        it("throws a typed error that pcall returns intact", function()
            local ok, e = pcall(errors.raise, "CONNECTION_SESSION_NOT_FOUND", "Please log in", "session")
            assert.is_false(ok)
            assert.is_true(errors.is(e))
            assert.are.equal("CONNECTION_SESSION_NOT_FOUND", e.type)
            assert.are.equal("Please log in", e.message)
            assert.are.equal("session", e.key)
        end)

        it("crosses coroutine boundaries as the same object", function()
            local co = coroutine.create(function()
                errors.raise("CONNECTION_RATE_LIMITED", "slow down")
            end)
            local ok, e = coroutine.resume(co)
            assert.is_false(ok)
            assert.are.equal(429, errors.status(e.type))
        end)
    end)

    describe("status", function()
        it("maps every Keryx error type", function()
            local expected = {
                SERVER_INITIALIZATION = 500, SERVER_START = 500, SERVER_STOP = 500,
                CONFIG_ERROR = 500, INITIALIZER_VALIDATION = 500, ACTION_VALIDATION = 500,
                TASK_VALIDATION = 500, SERVER_VALIDATION = 500,
                CONNECTION_SESSION_NOT_FOUND = 401, CONNECTION_SERVER_ERROR = 500,
                CONNECTION_ACTION_NOT_FOUND = 404, CONNECTION_ACTION_PARAM_REQUIRED = 406,
                CONNECTION_ACTION_PARAM_DEFAULT = 406, CONNECTION_ACTION_TIMEOUT = 408,
                CONNECTION_TASK_DEFINITION = 500, CONNECTION_ACTION_PARAM_VALIDATION = 406,
                CONNECTION_ACTION_RUN = 500, CONNECTION_TYPE_NOT_FOUND = 406,
                CONNECTION_NOT_SUBSCRIBED = 406, CONNECTION_CHANNEL_AUTHORIZATION = 403,
                CONNECTION_CHANNEL_VALIDATION = 400, CONNECTION_RATE_LIMITED = 429,
            }
            for t, status in pairs(expected) do
                assert.are.equal(status, errors.status(t), t)
                assert.is_true(errors.known(t), t)
            end
        end)

        it("makes a malformed JSON body 400 and maps the C-decided types", function()
            assert.are.equal(400, errors.status("CONNECTION_ACTION_PARAM_FORMATTING"))
            assert.are.equal(400, errors.status("CONNECTION_BAD_REQUEST"))
            assert.are.equal(403, errors.status("CONNECTION_FORBIDDEN"))
            assert.are.equal(408, errors.status("CONNECTION_REQUEST_TIMEOUT"))
            assert.are.equal(413, errors.status("CONNECTION_PAYLOAD_TOO_LARGE"))
            assert.are.equal(431, errors.status("CONNECTION_HEADERS_TOO_LARGE"))
            assert.are.equal(503, errors.status("CONNECTION_SERVER_BUSY"))
            assert.are.equal(404, errors.status("CHANNEL_NOT_FOUND"))
        end)

        it("answers 500 for unknown or odd types", function()
            assert.are.equal(500, errors.status("NO_SUCH_TYPE"))
            assert.are.equal(500, errors.status(nil))
            assert.are.equal(500, errors.status(404))
            assert.is_false(errors.known("NO_SUCH_TYPE"))
        end)

        it("exposes type constants that fail loudly on typos", function()
            assert.are.equal("CONNECTION_ACTION_RUN", errors.types.CONNECTION_ACTION_RUN)
            assert.has_error(function() return errors.types.CONNECTION_ACTON_RUN end)
            assert.has_error(function() errors.types.X = "X" end)
        end)
    end)

    describe("from_any", function()
        it("turns a string error into CONNECTION_ACTION_RUN keeping the traceback", function()
            local ok, raw = pcall(error, "boom")
            assert.is_false(ok)
            local e = errors.from_any(raw, "stack traceback:\n\tx.lua:1")
            assert.are.equal("CONNECTION_ACTION_RUN", e.type)
            assert.are.equal(tostring(raw), e.message)
            assert.are.equal("stack traceback:\n\tx.lua:1", e.stack)
            assert.are.equal(500, errors.status(e.type))
        end)

        it("stringifies tables, nil and objects whose __tostring fails", function()
            assert.are.equal("nil", errors.from_any(nil).message)
            local t = setmetatable({}, { __tostring = function() return "custom" end })
            assert.are.equal("custom", errors.from_any(t).message)
            local bad = setmetatable({}, { __tostring = function() error("nope") end })
            assert.are.equal("unknown error", errors.from_any(bad).message)
        end)

        it("passes typed errors through unchanged", function()
            local e = errors.new("CONNECTION_ACTION_TIMEOUT", "late")
            assert.are.equal(e, errors.from_any(e, "tb"))
            assert.are.equal("CONNECTION_ACTION_TIMEOUT", e.type)
            assert.are.equal("tb", e.stack)
        end)
    end)

    describe("to_envelope", function()
        it("builds the envelope with a fixed timestamp and omits absent key/value", function()
            local env = errors.to_envelope(errors.new("CONNECTION_ACTION_NOT_FOUND", "Action not found: x"),
                { now_ms = 1700000000123 })
            assert.are.same({
                error = { message = "Action not found: x", type = "CONNECTION_ACTION_NOT_FOUND",
                    timestamp = 1700000000123 },
            }, env)
            local s = json.encode(env)
            assert.is_nil(s:find('"key"', 1, true))
            assert.is_nil(s:find('"stack"', 1, true))
        end)

        it("includes key and value when set", function()
            local env = errors.to_envelope(errors.new("CONNECTION_ACTION_PARAM_REQUIRED",
                "name must be at least 3 characters", "name", "ab"), { now_ms = 1 })
            assert.are.equal("name", env.error.key)
            assert.are.equal("ab", env.error.value)
        end)

        it("adds the stack only when asked, from opts.stack, the error, or a traceback taken there", function()
            local e = errors.from_any("boom", "TRACE")
            assert.is_nil(errors.to_envelope(e, { now_ms = 1 }).error.stack)
            assert.are.equal("TRACE", errors.to_envelope(e, { now_ms = 1, include_stack = true }).error.stack)
            assert.are.equal("OTHER",
                errors.to_envelope(e, { now_ms = 1, include_stack = true, stack = "OTHER" }).error.stack)
            -- an error built without being raised still shows where it was answered from
            local plain = errors.new("CONNECTION_ACTION_RUN", "x")
            local stack = errors.to_envelope(plain, { include_stack = true }).error.stack
            assert.matches("^CONNECTION_ACTION_RUN: x\nstack traceback:\n", stack)
            assert.matches("errors_spec.lua", stack, 1, true)
            assert.is_nil(errors.to_envelope(plain, {}).error.stack)
        end)

        it("defaults the timestamp to the current time in whole milliseconds", function()
            local before = os.time() * 1000
            local ts = errors.to_envelope(errors.new("CONFIG_ERROR", "x")).error.timestamp
            assert.is_true(ts >= before and ts <= (os.time() + 1) * 1000)
            assert.are.equal(math.floor(ts), ts)
            assert.are.equal(1234, errors.to_envelope(errors.new("CONFIG_ERROR", "x"), { now_ms = 1234.9 }).error.timestamp)
        end)

        it("wraps untyped errors before building the envelope; their text shows only with stacks", function()
            local env = errors.to_envelope("raw failure", { now_ms = 5 })
            assert.are.equal("CONNECTION_ACTION_RUN", env.error.type)
            assert.are.equal("Internal server error", env.error.message)
            env = errors.to_envelope("raw failure", { now_ms = 5, include_stack = true })
            assert.are.equal("raw failure", env.error.message)
        end)

        it("keeps the message of a typed error without stacks, and never shows a detail", function()
            local env = errors.to_envelope(errors.new("CONNECTION_SESSION_NOT_FOUND", "Session not found"), {})
            assert.are.equal("Session not found", env.error.message)
            local down = errors.redis_failure("OOM command not allowed when used memory > 'maxmemory'.")
            for _, with in ipairs { false, true } do
                env = errors.to_envelope(down, { include_stack = with })
                assert.are.equal("Service unavailable, try again shortly", env.error.message)
                assert.are.equal("CONNECTION_SERVER_ERROR", env.error.type)
                assert.is_nil(env.error.detail)
            end
            assert.are.equal(503, down.status)
            assert.are.equal(1, down.retry_after)
            assert.matches("OOM", down.detail, 1, true)
        end)
    end)
end)
