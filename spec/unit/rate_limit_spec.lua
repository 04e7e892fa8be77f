-- keryx.rate_limit and keryx.middleware (rate_limit, session_required) against the fake core,
-- whose core.rate_limit runs the real Redis script (lua/redis/ratelimit.lua) on the fake store
-- with the fake wall clock.
local fake = require "keryx.core"
local rate_limit = require "keryx.rate_limit"
local middleware = require "keryx.middleware"
local conn_mod = require "keryx.conn"
local pipeline = require "keryx.pipeline"
local web_transport = require "keryx.transport.web"
local action = require "keryx.action"
local errors = require "keryx.errors"
local json = require "keryx.json"

local WALL_EPOCH = 1700000000000 -- fake now_ms() at clock 0
local cfg = fake.config.rateLimit

local function run(fn, ...)
    return fake.run(fn, ...)
end

local function check(id, authed, opts)
    return run(function() return rate_limit.check(id, authed, opts) end)
end

--- Moves the fake wall clock to `ms` after the start of window w (window size `win`).
local function goto_window(w, ms, win)
    fake.clock = w * win + ms - WALL_EPOCH
end

-- The response headers a conn holds, as "Name: value\r\n" lines (nil when none).
local function header_text(list)
    if not list then return nil end
    local out = {}
    for i = 1, #list, 2 do out[#out + 1] = list[i] .. ": " .. list[i + 1] .. "\r\n" end
    return table.concat(out)
end

local function headers_of(c)
    return header_text(rawget(c, "_headers"))
end

local function web_conn(fields)
    local c = { type = "web", identifier = "10.0.0.1" }
    for k, v in pairs(fields or {}) do c[k] = v end
    return conn_mod.new(c)
end

--- Runs a middleware hook in a task; returns ok, err (the raised value).
local function before(mw, conn)
    return run(function() return pcall(mw.before, {}, conn) end)
end

local function store_session(id, data)
    fake.store["session:" .. id] = json.encode { id = id, createdAt = 0, data = data }
end

before_each(function()
    fake.reset()
    cfg.enabled = true
    -- Start in the middle of a fresh minute so window arithmetic is easy to reason about.
    goto_window(math.floor(WALL_EPOCH / 60000) + 10, 30000, 60000)
end)

describe("the Redis script (run on the fake store)", function()
    it("allows `limit` requests, counting remaining down, then refuses", function()
        for i = 1, 20 do
            local info = check("ip:1.2.3.4", false)
            assert.are.equal(20, info.limit)
            assert.are.equal(20 - i, info.remaining)
            assert.is_nil(info.limited)
            assert.is_nil(info.retry_after)
        end
        local info = check("ip:1.2.3.4", false)
        assert.is_true(info.limited)
        assert.are.equal(0, info.remaining)
        assert.are.equal(20, info.limit)
        assert.is_true(info.retry_after >= 1)
    end)

    it("stores the count under <prefix>:{<identifier>}:<window> with a PEXPIRE of two windows", function()
        check("ip:1.2.3.4", false)
        check("ip:1.2.3.4", false)
        local w = math.floor(fake.now_ms() / 60000)
        local key = "ratelimit:{ip:1.2.3.4}:" .. w
        assert.are.equal("2", fake.store[key])
        assert.are.equal(120000, fake.pttl[key])
        local n = 0
        for _ in pairs(fake.store) do n = n + 1 end
        assert.are.equal(1, n)
    end)

    it("does not count refused requests", function()
        for _ = 1, 3 do check("k", false, { limit = 3 }) end
        for _ = 1, 10 do assert.is_true(check("k", false, { limit = 3 }).limited) end
        local w = math.floor(fake.now_ms() / 60000)
        assert.are.equal("3", fake.store["ratelimit:{k}:" .. w])
    end)

    it("reports reset_at as the end of the current fixed window in unix seconds", function()
        local w = math.floor(fake.now_ms() / 60000)
        local info = check("k", false)
        assert.are.equal(math.ceil((w + 1) * 60000 / 1000), info.reset_at)
        assert.is_true(info.reset_at * 1000 > fake.now_ms())
    end)

    it("retry_after is the time left in the current window, rounded up, at least 1 s", function()
        local w = math.floor(fake.now_ms() / 60000)
        goto_window(w, 0, 60000)
        check("k", false, { limit = 1 })
        goto_window(w, 59999, 60000) -- 1 ms left
        assert.are.equal(1, check("k", false, { limit = 1 }).retry_after)
        goto_window(w, 20500, 60000) -- 39.5 s left
        assert.are.equal(40, check("k", false, { limit = 1 }).retry_after)
    end)

    it("slides: the previous window counts by the part of it still inside the window", function()
        local w = math.floor(fake.now_ms() / 60000)
        goto_window(w, 0, 60000)
        for _ = 1, 10 do assert.is_nil(check("k", false, { limit = 10 }).limited) end
        assert.is_true(check("k", false, { limit = 10 }).limited)
        -- Half-way through the next window: 10 * 0.5 = 5 still weigh, so 5 more fit.
        goto_window(w + 1, 30000, 60000)
        for i = 1, 5 do
            local info = check("k", false, { limit = 10 })
            assert.is_nil(info.limited)
            assert.are.equal(5 - i, info.remaining)
        end
        assert.is_true(check("k", false, { limit = 10 }).limited)
        -- At 90% of the window after that, w+1 weighs 10% of its 5: floor(0.5) = 0.
        goto_window(w + 2, 54000, 60000)
        assert.are.equal(9, check("k", false, { limit = 10 }).remaining)
    end)

    it("keeps identifiers and prefixes apart", function()
        assert.is_true(check("a", false, { limit = 1 }).remaining == 0)
        assert.is_true(check("a", false, { limit = 1 }).limited)
        assert.is_nil(check("b", false, { limit = 1 }).limited)
        assert.is_nil(check("a", false, { limit = 1, key_prefix = "other" }).limited)
    end)

    it("limit 0 refuses everything", function()
        local info = check("k", false, { limit = 0 })
        assert.is_true(info.limited)
        assert.are.equal(0, info.remaining)
    end)

    it("answers an error reply for bad arguments", function()
        local chunk = assert(loadfile("lua/redis/ratelimit.lua"))
        for _, argv in ipairs { { "-1", "1000" }, { "1", "0" }, { "x", "1000" }, { "1.5", "1000" }, { "5" } } do
            local called = false
            setfenv(chunk, {
                KEYS = { "p:{k}" }, ARGV = argv, math = math, string = string, tonumber = tonumber,
                redis = {
                    call = function() called = true end,
                    error_reply = function(m) return { err = m } end,
                },
            })
            local r = chunk()
            assert.is_string(r.err)
            assert.matches("^ERR ", r.err)
            assert.is_false(called)
        end
    end)
end)

describe("keryx.rate_limit.check", function()
    it("uses the configured limits, window and prefix by default", function()
        check("ip:x", false)
        check("user:1", true)
        assert.are.same({ identifier = "ip:x", limit = 20, window_ms = 60000, prefix = "ratelimit" },
            fake.rate_limit_calls[1])
        assert.are.same({ identifier = "user:1", limit = 200, window_ms = 60000, prefix = "ratelimit" },
            fake.rate_limit_calls[2])
        cfg.unauthenticatedLimit, cfg.windowMs, cfg.keyPrefix = 3, 1000, "rl"
        check("ip:x", false)
        assert.are.same({ identifier = "ip:x", limit = 3, window_ms = 1000, prefix = "rl" }, fake.rate_limit_calls[3])
    end)

    it("opts override limit, window_ms and key_prefix", function()
        local info = check("custom:x", false, { limit = 2, window_ms = 5000, key_prefix = "ratelimit:oauth-register" })
        assert.are.same({ identifier = "custom:x", limit = 2, window_ms = 5000, prefix = "ratelimit:oauth-register" },
            fake.rate_limit_calls[1])
        assert.are.equal(2, info.limit)
        assert.are.equal(1, info.remaining)
        local w = math.floor(fake.now_ms() / 5000)
        assert.are.equal("1", fake.store["ratelimit:oauth-register:{custom:x}:" .. w])
    end)

    it("returns nil, err when Redis is down or failing", function()
        fake.redis_up = false
        assert.are.same({ nil, "closed" }, { check("k", false) })
        fake.redis_up = true
        fake.rate_limit_failure = "OOM command not allowed"
        assert.are.same({ nil, "OOM command not allowed" }, { check("k", false) })
    end)

    it("logs a failure streak once (not per request), and never for a closed connection", function()
        fake.redis_up = false
        for _ = 1, 5 do check("k", false) end
        assert.are.equal(0, #fake.logs) -- the C Redis client logs the outage itself
        fake.redis_up = true
        check("k", false)
        fake.rate_limit_failure = "timeout"
        for _ = 1, 5 do check("k", false) end
        assert.are.equal(1, #fake.logs)
        assert.are.equal("warn", fake.logs[1].level)
        assert.matches("timeout", fake.logs[1].msg)
        fake.rate_limit_failure = nil
        check("k", false) -- recovery ends the streak
        fake.rate_limit_failure = "ERR boom"
        check("k", false)
        check("k", false)
        assert.are.equal(2, #fake.logs)
        assert.matches("ERR boom", fake.logs[2].msg)
    end)

    it("raises the action timeout when the task was aborted", function()
        local ok, err = run(function()
            fake.abort_current()
            return pcall(rate_limit.check, "k", false)
        end)
        assert.is_false(ok)
        assert.is_true(errors.is(err))
        assert.are.equal("CONNECTION_ACTION_TIMEOUT", err.type)
        assert.are.equal(0, #fake.rate_limit_calls)
    end)

    it("refuses hostile identifiers and bad options loudly", function()
        local bad = { "", "a{b", "a}b", "ip:{x}", "a\r\nb", "a\0b", ("x"):rep(257) }
        for _, id in ipairs(bad) do
            local ok, err = run(function() return pcall(rate_limit.check, id, false) end)
            assert.is_false(ok, ("identifier %q was accepted"):format(id))
            assert.matches("identifier", tostring(err))
        end
        assert.is_truthy((check(("x"):rep(256), false)))
        for _, opts in ipairs { { limit = 1.5 }, { limit = "3" }, { window_ms = 0 }, { limit = -1 },
            { key_prefix = "a{" }, { key_prefix = 3 }, { key_prefix = "" } } do
            local ok = run(function() return pcall(rate_limit.check, "k", false, opts) end)
            assert.is_false(ok)
        end
        assert.is_false((run(function() return pcall(rate_limit.check, 42, false) end)))
        assert.is_false((run(function() return pcall(rate_limit.check, "k", false, "x") end)))
        assert.are.equal(1, #fake.rate_limit_calls) -- only the 256-byte identifier got through
    end)
end)

describe("keryx.rate_limit.headers", function()
    it("lists limit, remaining and reset, and Retry-After only when limited", function()
        assert.are.same({ "X-RateLimit-Limit", "20", "X-RateLimit-Remaining", "7", "X-RateLimit-Reset", "1700000060" },
            rate_limit.headers { limit = 20, remaining = 7, reset_at = 1700000060 })
        assert.are.same({ "X-RateLimit-Limit", "20", "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1700000060",
            "Retry-After", "12" },
            rate_limit.headers { limit = 20, remaining = 0, reset_at = 1700000060, retry_after = 12, limited = true })
    end)
end)

describe("keryx.rate_limit.check_values", function()
    it("answers as check does, with values instead of a table", function()
        cfg.unauthenticatedLimit, cfg.authenticatedLimit = 2, 5
        local function values(id, authed)
            return { run(function() return rate_limit.check_values(id, authed) end) }
        end
        local first = values("ip:v", false)
        assert.are.same({ identifier = "ip:v", limit = 2, window_ms = 60000, prefix = "ratelimit" },
            fake.rate_limit_calls[1])
        assert.are.same({ true, 2, 1 }, { first[1], first[2], first[3] })
        local info = check("ip:v", false) -- the same counter: the second of two
        assert.are.equal(0, info.remaining)
        local refused = values("ip:v", false)
        assert.is_false(refused[1])
        assert.are.equal(info.reset_at, refused[4])
        assert.is_true(refused[5] >= 1)
        assert.are.equal(5, values("user:1", true)[2])
        fake.redis_up = false
        assert.are.same({ nil, "closed" }, values("ip:v", false))
        assert.is_false((run(function() return pcall(rate_limit.check_values, 42, false) end)))
    end)

    it("appends the same pairs as headers() to a list that already holds some", function()
        local h = { "X-Own", "1" }
        assert.are.equal(h, rate_limit.append_headers(h, 20, 7, 1700000060, nil))
        assert.are.same({ "X-Own", "1", "X-RateLimit-Limit", "20", "X-RateLimit-Remaining", "7",
            "X-RateLimit-Reset", "1700000060" }, h)
        rate_limit.append_headers(h, 30, 0, 1700000120, 12)
        assert.are.same({ "X-RateLimit-Limit", "30", "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1700000120",
            "Retry-After", "12" }, { unpack(h, 9) })
    end)
end)

describe("keryx.middleware.rate_limit", function()
    local mw = middleware.rate_limit

    it("is a named before-hook", function()
        assert.are.equal("rate_limit", mw.name)
        assert.is_function(mw.before)
    end)

    it("does nothing when rate limiting is disabled", function()
        cfg.enabled = false
        local c = web_conn()
        assert.is_true((before(mw, c)))
        assert.are.equal(0, #fake.rate_limit_calls)
        assert.is_nil(headers_of(c))
    end)

    it("limits anonymous clients by IP with the unauthenticated limit and appends headers", function()
        local c = web_conn()
        c:set_header("X-Before", 1)
        assert.is_true((before(mw, c)))
        assert.are.same({ identifier = "ip:10.0.0.1", limit = 20, window_ms = 60000, prefix = "ratelimit" },
            fake.rate_limit_calls[1])
        local h = headers_of(c)
        assert.matches("^X%-Before: 1\r\nX%-RateLimit%-Limit: 20\r\nX%-RateLimit%-Remaining: 19\r\nX%-RateLimit%-Reset: %d+\r\n$", h)
        assert.is_nil(h:find("Retry-After", 1, true))
    end)

    it("keeps each address's own identifier past the bound on kept identifiers (4,096)", function()
        for i = 1, 5000 do
            local ip = ("10.%d.%d.%d"):format(math.floor(i / 65536), math.floor(i / 256) % 256, i % 256)
            assert.is_true((before(mw, web_conn { identifier = ip })))
            assert.are.equal("ip:" .. ip, fake.rate_limit_calls[i].identifier)
        end
        -- the first addresses again, after the bound emptied what was kept
        assert.is_true((before(mw, web_conn { identifier = "10.0.0.1" })))
        assert.are.equal("ip:10.0.0.1", fake.rate_limit_calls[5001].identifier)
    end)

    it("limits a logged-in user by id with the authenticated limit", function()
        local id = fake.random_id()
        store_session(id, { user_id = 7 })
        local c = web_conn { session_id = id }
        assert.is_true((before(mw, c)))
        assert.are.same({ identifier = "user:7", limit = 200, window_ms = 60000, prefix = "ratelimit" },
            fake.rate_limit_calls[1])
        assert.matches("X%-RateLimit%-Limit: 200\r\n", headers_of(c))
    end)

    it("treats a session without a usable user_id as anonymous", function()
        for _, data in ipairs { {}, { user_id = false }, { user_id = "" }, { user_id = { 1 } } } do
            fake.reset()
            cfg.enabled = true
            local id = fake.random_id()
            store_session(id, data)
            assert.is_true((before(mw, web_conn { session_id = id })))
            assert.are.equal("ip:10.0.0.1", fake.rate_limit_calls[1].identifier)
        end
    end)

    it("falls back to the IP when reading the session raises (Redis down)", function()
        local methods_of = conn_mod.new { type = "web" } -- set_header and friends
        local c = setmetatable({ type = "web", identifier = "10.0.0.9" }, {
            __index = function(_, k)
                if k == "session" then error(errors.unavailable("Sessions are unavailable (closed)")) end
                return methods_of[k]
            end,
        })
        assert.is_true((before(mw, c)))
        assert.are.equal("ip:10.0.0.9", fake.rate_limit_calls[1].identifier)
    end)

    it("over the limit raises 429 with the message, X-RateLimit-* and one Retry-After", function()
        cfg.unauthenticatedLimit = 2
        local c = web_conn()
        assert.is_true((before(mw, c)))
        c = web_conn()
        assert.is_true((before(mw, c)))
        c = web_conn()
        local ok, err = before(mw, c)
        assert.is_false(ok)
        assert.is_true(errors.is(err))
        assert.are.equal("CONNECTION_RATE_LIMITED", err.type)
        assert.are.equal(429, errors.status(err.type))
        local secs = tonumber(err.message:match("^Rate limit exceeded%. Try again in (%d+) seconds%.$"))
        assert.is_number(secs)
        assert.is_nil(err.retry_after) -- else the pipeline would add a second Retry-After
        local h = headers_of(c)
        assert.matches("X%-RateLimit%-Limit: 2\r\n", h)
        assert.matches("X%-RateLimit%-Remaining: 0\r\n", h)
        assert.matches("Retry%-After: " .. secs .. "\r\n", h)
    end)

    it("fails open without headers when Redis cannot answer and failOpen is on", function()
        cfg.failOpen = true
        fake.redis_up = false
        local c = web_conn()
        assert.is_true((before(mw, c)))
        assert.is_nil(headers_of(c))
        fake.redis_up = true
        fake.rate_limit_failure = "OOM command not allowed"
        assert.is_true((before(mw, c)))
        assert.is_nil(headers_of(c))
    end)

    it("fails closed with 503 + Retry-After: 1 when failOpen is off", function()
        cfg.failOpen = false
        for _, why in ipairs { "closed", "timeout", "ERR x" } do
            if why == "closed" then fake.redis_up = false else fake.redis_up, fake.rate_limit_failure = true, why end
            local c = web_conn()
            local ok, err = before(mw, c)
            assert.is_false(ok)
            assert.are.equal("CONNECTION_SERVER_ERROR", err.type)
            assert.are.equal(503, err.status)
            assert.are.equal(1, err.retry_after)
            assert.are.equal("Rate limiting unavailable", err.message)
            assert.is_nil(headers_of(c))
        end
    end)
end)

describe("keryx.middleware.session_required", function()
    local mw = middleware.session_required

    it("raises 401 CONNECTION_SESSION_NOT_FOUND without a logged-in session", function()
        assert.are.equal("session_required", mw.name)
        local id = fake.random_id()
        store_session(id, { theme = "dark" })
        for _, c in ipairs { web_conn(), web_conn { session_id = fake.random_id() }, web_conn { session_id = id } } do
            local ok, err = before(mw, c)
            assert.is_false(ok)
            assert.are.equal("CONNECTION_SESSION_NOT_FOUND", err.type)
            assert.are.equal("Session not found", err.message)
            assert.are.equal(401, errors.status(err.type))
        end
    end)

    it("lets a logged-in session through", function()
        local id = fake.random_id()
        store_session(id, { user_id = "u-1" })
        assert.is_true((before(mw, web_conn { session_id = id })))
    end)

    it("does not hide a Redis outage as 'not logged in'", function()
        fake.redis_up = false
        local ok, err = before(mw, web_conn { session_id = fake.random_id() })
        assert.is_false(ok)
        assert.are.equal("CONNECTION_SERVER_ERROR", err.type)
        assert.are.equal(503, err.status)
    end)
end)

describe("through the pipeline", function()
    local function register(def)
        local a = action.define(def)
        local reg = pipeline.registry
        local id = #reg.list + 1
        reg.list[id], reg.by_name[a.name] = a, a
        return id
    end

    it("a refused request answers 429 with exactly one Retry-After and never runs the action", function()
        cfg.unauthenticatedLimit = 1
        local runs = 0
        local id = register {
            name = "rl:unit", middleware = { middleware.rate_limit },
            run = function() runs = runs + 1; return { ok = true } end,
        }
        local r = { method = "GET", target = "/api/x", host = "h", identifier = "10.1.1.1" }
        local res = web_transport.result(run(web_transport.web, id, r))
        assert.are.equal(200, res.status)
        assert.matches("X%-RateLimit%-Remaining: 0\r\n", header_text(res.headers))
        local res2 = web_transport.result(run(web_transport.web, id, r))
        assert.are.equal(429, res2.status)
        assert.are.equal("CONNECTION_RATE_LIMITED", json.decode(res2.body).error.type)
        local _, count = header_text(res2.headers):gsub("Retry%-After:", "")
        assert.are.equal(1, count)
        assert.are.equal(1, runs)
    end)
end)
