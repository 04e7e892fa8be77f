-- Hardening: a request waits for Redis at most REDIS_COMMAND_TIMEOUT_MS in total. With Redis
-- stalled (CLIENT PAUSE), a logged-in, rate-limited request used to wait once for its session
-- and once more for the rate-limit check (2 × the timeout) before its 503; now every Redis call
-- of a request shares one budget, and a call after the budget is spent fails at once. Time an
-- action spends elsewhere (sleeping) is not counted, so long actions are not cut short.
local H = require "server"
local A = require "http_assert"
local PR = require "private_redis"
local socket = require "socket"

local stop, get, envelope, eventually = H.stop, H.get, A.envelope, H.eventually

local SID = ("b"):rep(42) .. "A"
local COOKIE = { Cookie = "__session=" .. SID }

describe("hardening: one Redis budget per request", function()
    local P

    before_each(function() P = PR.new() end)
    after_each(function()
        if P then P:destroy() end
        P = nil
    end)

    local function start(app, env)
        local e = { REDIS_URL = P.url, REDIS_COMMAND_TIMEOUT_MS = "1000", RATE_LIMIT_ENABLED = "true" }
        for k, v in pairs(env or {}) do e[k] = v end
        return H.start { app = app, config = "spec/fixtures/config.lua", env = e }
    end

    local function log_in()
        P:cli("SET", "session:" .. SID, '{"id":"' .. SID .. '","createdAt":0,"data":{"user_id":7}}', "EX", "600")
    end

    --- Pauses every client of the private Redis for `ms` (the CLIENT PAUSE returns at once).
    local function stall(ms)
        assert.are.equal("OK", P:cli("CLIENT", "PAUSE", tostring(ms), "ALL"))
    end

    local function timed(fn)
        local t0 = socket.gettime()
        local res = fn()
        return res, socket.gettime() - t0
    end

    for _, fail_open in ipairs { "false", "true" } do
        it("a stalled Redis answers a logged-in rate-limited request within one timeout (RATE_LIMIT_FAIL_OPEN="
            .. fail_open .. ")", function()
            local srv = start("spec/fixtures/ratelimit_app", { RATE_LIMIT_FAIL_OPEN = fail_open })
            finally(function() stop(srv) end)
            log_in()
            local ok = get(srv, "/api/me", COOKIE)
            assert.are.equal(200, ok.status, ok.body)
            assert.are.equal("200", ok.headers["x-ratelimit-limit"]) -- counted as the user
            stall(5000)
            local res, took = timed(function() return get(srv, "/api/me", COOKIE) end)
            envelope(res, 503, "CONNECTION_SERVER_ERROR")
            assert.is_true(took >= 0.9, "answered before the timeout: " .. took .. " s")
            assert.is_true(took < 1.5, "took " .. took .. " s (one timeout is 1 s)")
            -- The server keeps serving meanwhile (no Redis needed) and after the pause.
            assert.are.equal(200, get(srv, "/api/status").status)
            assert.is_true(eventually(8, function() return get(srv, "/api/me", COOKIE).status == 200 end),
                "no recovery after the pause:\n" .. srv:log())
        end)
    end

    it("time spent outside Redis is not counted: calls around a 1.2 s sleep both succeed", function()
        local srv = start("spec/fixtures/app")
        finally(function() stop(srv) end)
        local res, took = timed(function() return get(srv, "/api/redis-steps?pause=1200") end)
        assert.are.equal(200, res.status, res.body)
        assert.are.same({ pong = "PONG" }, H.json(res.body))
        assert.is_true(took >= 1.2, took)
    end)

    it("each request has its own budget: the next request after a timeout waits again, then recovers", function()
        local srv = start("spec/fixtures/app")
        finally(function() stop(srv) end)
        assert.are.equal(200, get(srv, "/api/redis-steps").status)
        stall(2500)
        local res, took = timed(function() return get(srv, "/api/redis-steps") end)
        envelope(res, 503, "CONNECTION_SERVER_ERROR")
        assert.is_true(took >= 0.9 and took < 1.5, took)
        assert.is_true(eventually(8, function() return get(srv, "/api/redis-steps").status == 200 end))
    end)
end)
