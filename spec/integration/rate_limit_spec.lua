-- Black-box specs for rate limiting (README, Production checklist: RATE_LIMIT_FAIL_OPEN) against a
-- real redis-server: the sliding window in one Redis script, headers, 429s, keys, sharing between
-- processes, custom checks, and Redis outages/errors with RATE_LIMIT_FAIL_OPEN on and off.
local H = require "server"
local A = require "http_assert"
local private_redis = require("private_redis").new
local socket = require "socket"

local APP, CONFIG = "spec/fixtures/ratelimit_app", "spec/fixtures/config.lua"

local function start(env, redis_url)
    local e = { RATE_LIMIT_ENABLED = "true", LOG_LEVEL = "info" }
    for k, v in pairs(env or {}) do e[k] = v end
    if redis_url then e.REDIS_URL = redis_url end
    return H.start { app = APP, config = CONFIG, env = e }
end

local stop, get, count, eventually = H.stop, H.get, H.count, H.eventually
local header_count, envelope = A.header_count, A.envelope

--- Sleeps past the end of the current window when fewer than `need_ms` are left in it, so a
--- burst of requests that must land in one fixed window does not straddle two.
local function fresh_window(window_ms, need_ms)
    local now = socket.gettime() * 1000
    local left = window_ms - now % window_ms
    if left < need_ms then H.sleep((left + 50) / 1000) end
end

local function window_of(window_ms)
    return math.floor(socket.gettime() * 1000 / window_ms)
end

-- ---- specs ----------------------------------------------------------------------------------

describe("rate limiting", function()
    local R

    setup(function() R = H.redis() end)

    -- Script calls Redis has run so far (EVAL and EVALSHA): how many calls a batch took.
    local function evals()
        local info = R.cli("INFO", "commandstats")
        local n = 0
        for calls in info:gmatch("cmdstat_eval%a*:calls=(%d+)") do n = n + tonumber(calls) end
        return n
    end
    before_each(function() R.cli("FLUSHALL") end)

    it("allows the limit with counting-down headers, then answers 429 with Retry-After", function()
        local srv = start { RATE_LIMIT_UNAUTH_LIMIT = "20" }
        finally(function() stop(srv) end)
        fresh_window(60000, 10000)
        local w = window_of(60000)
        for i = 1, 20 do
            local res = get(srv, "/api/limited")
            assert.are.equal(200, res.status)
            assert.are.equal("20", res.headers["x-ratelimit-limit"])
            assert.are.equal(tostring(20 - i), res.headers["x-ratelimit-remaining"])
            local reset = tonumber(res.headers["x-ratelimit-reset"])
            assert.is_true(reset > os.time() - 1 and reset <= os.time() + 61)
            assert.is_nil(res.headers["retry-after"])
        end
        for _ = 1, 3 do
            local res = get(srv, "/api/limited")
            local err = envelope(res, 429, "CONNECTION_RATE_LIMITED")
            local secs = err.message:match("^Rate limit exceeded%. Try again in (%d+) seconds%.$")
            assert.is_truthy(secs, err.message)
            assert.is_true(tonumber(secs) >= 1 and tonumber(secs) <= 60)
            assert.are.equal(1, header_count(res, "Retry-After"))
            assert.are.equal(secs, res.headers["retry-after"])
            assert.are.equal("20", res.headers["x-ratelimit-limit"])
            assert.are.equal("0", res.headers["x-ratelimit-remaining"])
            assert.is_truthy(tonumber(res.headers["x-ratelimit-reset"]))
        end
        -- One key, in the documented layout, with a TTL; refused requests were not counted.
        local key = "ratelimit:{ip:127.0.0.1}:" .. w
        assert.are.equal(key, R.cli("KEYS", "ratelimit:*"))
        assert.are.equal("20", R.cli("GET", key))
        local pttl = tonumber(R.cli("PTTL", key))
        assert.is_true(pttl > 0 and pttl <= 120000, "PTTL " .. tostring(pttl))
    end)

    it("honours RATE_LIMIT_KEY_PREFIX", function()
        local srv = start { RATE_LIMIT_KEY_PREFIX = "rlx" }
        finally(function() stop(srv) end)
        fresh_window(60000, 3000)
        local w = window_of(60000)
        assert.are.equal(200, get(srv, "/api/limited").status)
        assert.are.equal("rlx:{ip:127.0.0.1}:" .. w, R.cli("KEYS", "*"))
    end)

    it("two keryx processes on one Redis share one budget", function()
        local env = { RATE_LIMIT_UNAUTH_LIMIT = "15" }
        local a, b = start(env), start(env)
        finally(function() stop(a); stop(b) end)
        fresh_window(60000, 10000)
        for i = 1, 10 do
            local res = get(a, "/api/limited")
            assert.are.equal(200, res.status)
            assert.are.equal(tostring(15 - i), res.headers["x-ratelimit-remaining"])
        end
        local statuses = {}
        for i = 1, 10 do
            local res = get(b, "/api/limited")
            statuses[i] = res.status
            if i <= 5 then assert.are.equal(tostring(5 - i), res.headers["x-ratelimit-remaining"]) end
        end
        assert.are.same({ 200, 200, 200, 200, 200, 429, 429, 429, 429, 429 }, statuses)
        assert.are.equal(429, get(a, "/api/limited").status)
    end)

    -- Checks asked for in one loop iteration go out as one script call (src/ratelimit.c): with
    -- keryx stopped (SIGSTOP) while 150 requests of two clients queue up, they are read in one
    -- iteration or few, more than KX_RATELIMIT_BATCH_MAX (128) checks, so at least two calls.
    -- The batches must count like 150 separate checks: each client's budget exact, every
    -- "remaining" value given once, the two clients' counts apart.
    it("batches of concurrent checks count each client exactly, past the batch cap", function()
        local srv = start { RATE_LIMIT_UNAUTH_LIMIT = "20" }
        finally(function() os.execute("kill -CONT " .. srv.pid .. " 2>/dev/null"); stop(srv) end)
        fresh_window(60000, 10000)
        local before = evals()
        -- Connected (and over TLS handshaken) while keryx runs; the requests go out while it
        -- is stopped, so they wait for it together.
        local socks = {}
        for i = 1, 150 do
            local path = i % 6 == 0 and "/api/custom" or "/api/limited" -- 125 limited, 25 custom
            socks[i] = { c = srv:connect(10), path = path }
        end
        os.execute("kill -STOP " .. srv.pid)
        for _, s in ipairs(socks) do
            assert(s.c:send("GET " .. s.path .. " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
        end
        os.execute("kill -CONT " .. srv.pid)
        local limited, remaining, custom_ok, custom_refused = {}, {}, 0, 0
        for _, s in ipairs(socks) do
            local raw = assert(s.c:receive("*a"))
            s.c:close()
            local status = tonumber(raw:match("^HTTP/1%.1 (%d+)"))
            if s.path == "/api/limited" then
                limited[status] = (limited[status] or 0) + 1
                local left = raw:lower():match("\r\nx%-ratelimit%-remaining: (%d+)")
                if status == 200 then remaining[#remaining + 1] = tonumber(left) end
            else
                assert.are.equal(200, status)
                if raw:match('"limited":true') then custom_refused = custom_refused + 1
                elseif raw:match('"remaining":') then custom_ok = custom_ok + 1 end
            end
        end
        assert.are.same({ [200] = 20, [429] = 105 }, limited)
        table.sort(remaining)
        for i = 1, 20 do assert.are.equal(i - 1, remaining[i]) end
        assert.are.equal(2, custom_ok)
        assert.are.equal(23, custom_refused)
        -- Fewer script calls than checks, and at least two: batched, and capped (a NOSCRIPT
        -- retry adds one EVAL).
        local calls = evals() - before
        assert.is_true(calls >= 2 and calls < 150, "script calls: " .. calls)
    end)

    -- 150 checks started in one loop iteration (spawned tasks run back to back from the ready
    -- queue): more than KX_RATELIMIT_BATCH_MAX (128), so a full batch is sent at once and the
    -- rest in a second call. Both count exactly: 50 allowed per client, every "remaining"
    -- value once, 25 refused each.
    it("checks past the batch cap go out in a second call and count exactly", function()
        local srv = start { RATE_LIMIT_UNAUTH_LIMIT = "20" }
        finally(function() stop(srv) end)
        fresh_window(60000, 10000)
        local before = evals()
        local res = get(srv, "/api/burst")
        assert.are.equal(200, res.status)
        local body = require("cjson").decode(res.body)
        assert.are.equal(0, body.failed)
        assert.are.equal(25, body.refused0)
        assert.are.equal(25, body.refused1)
        for _, list in ipairs { body.left0, body.left1 } do
            table.sort(list)
            assert.are.equal(50, #list)
            for i = 1, 50 do assert.are.equal(i - 1, list[i]) end
        end
        local calls = evals() - before
        assert.is_true(calls == 2 or calls == 3, "script calls: " .. calls) -- + EVAL after a NOSCRIPT
    end)

    it("the window slides: refused, then allowed again once it has moved on", function()
        local srv = start { RATE_LIMIT_WINDOW_MS = "1000", RATE_LIMIT_UNAUTH_LIMIT = "3" }
        finally(function() stop(srv) end)
        fresh_window(1000, 400)
        for _ = 1, 3 do assert.are.equal(200, get(srv, "/api/limited").status) end
        local refused = get(srv, "/api/limited")
        envelope(refused, 429, "CONNECTION_RATE_LIMITED")
        assert.are.equal("1", refused.headers["retry-after"])
        local t0 = socket.gettime()
        local ok = eventually(3, function() return get(srv, "/api/limited").status == 200 end)
        assert.is_true(ok, "still refused 3 s later")
        assert.is_true(socket.gettime() - t0 < 2.5)
    end)

    it("a custom check from an action uses its own identifier and limit", function()
        local srv = start { RATE_LIMIT_ENABLED = "false" } -- the check is explicit, not the middleware
        finally(function() stop(srv) end)
        fresh_window(60000, 3000)
        local w = window_of(60000)
        local r1 = H.json(get(srv, "/api/custom").body).info
        assert.are.equal(2, r1.limit)
        assert.are.equal(1, r1.remaining)
        assert.is_true(r1.reset_at > os.time() - 1)
        local r2 = H.json(get(srv, "/api/custom").body).info
        assert.are.equal(0, r2.remaining)
        assert.is_nil(r2.limited)
        local res3 = get(srv, "/api/custom")
        assert.are.equal(200, res3.status)
        assert.is_nil(res3.headers["x-ratelimit-limit"]) -- no middleware, no headers
        local r3 = H.json(res3.body).info
        assert.is_true(r3.limited)
        assert.is_true(r3.retry_after >= 1)
        assert.are.equal("2", R.cli("GET", "ratelimit:{custom:x}:" .. w))
    end)

    it("refuses identifiers and prefixes that would move the hash tag or split the key, storing nothing", function()
        local srv = start { RATE_LIMIT_ENABLED = "false" }
        finally(function() stop(srv) end)
        local function enc(s)
            return (s:gsub("[^%w]", function(c) return ("%%%02X"):format(c:byte()) end))
        end
        local function try(id, prefix)
            local q = "/api/hostile?id=" .. enc(id) .. (prefix and ("&prefix=" .. enc(prefix)) or "")
            return H.json(get(srv, q).body)
        end
        for _, id in ipairs { "a{b", "a}b", "a\r\nb", string.rep("x", 257) } do
            local r = try(id)
            assert.is_nil(r.accepted, id)
            assert.truthy(tostring(r.refused):find("identifier must be 1..256 bytes", 1, true), r.refused)
        end
        local r = try("ip:1", "rl{x")
        assert.truthy(tostring(r.refused):find("key prefix must be 1..256 bytes", 1, true), r.refused)
        assert.is_true(try(string.rep("x", 256)).accepted)
        assert.are.equal("", R.cli("KEYS", "*{a*"))
    end)

    it("RATE_LIMIT_ENABLED=false: no headers, no keys, no limit", function()
        local srv = start { RATE_LIMIT_ENABLED = "false", RATE_LIMIT_UNAUTH_LIMIT = "2" }
        finally(function() stop(srv) end)
        for _ = 1, 5 do
            local res = get(srv, "/api/limited")
            assert.are.equal(200, res.status)
            assert.is_nil(res.headers["x-ratelimit-limit"])
            assert.is_nil(res.headers["x-ratelimit-remaining"])
            assert.is_nil(res.headers["x-ratelimit-reset"])
        end
        assert.are.equal("", R.cli("KEYS", "*"))
    end)

    it("a logged-in user is limited by user id with the authenticated limit", function()
        local srv = start { RATE_LIMIT_UNAUTH_LIMIT = "20", RATE_LIMIT_AUTH_LIMIT = "200" }
        finally(function() stop(srv) end)
        fresh_window(60000, 3000)
        local w = window_of(60000)
        local id = ("a"):rep(42) .. "A"
        R.cli("SET", "session:" .. id, '{"id":"' .. id .. '","createdAt":0,"data":{"user_id":7}}', "EX", "600")
        local res = get(srv, "/api/me", { Cookie = "__session=" .. id })
        assert.are.equal(200, res.status, res.body)
        assert.are.equal(7, H.json(res.body).user_id)
        assert.are.equal("200", res.headers["x-ratelimit-limit"])
        assert.are.equal("199", res.headers["x-ratelimit-remaining"])
        assert.are.equal("1", R.cli("GET", "ratelimit:{user:7}:" .. w))
        -- Anonymous: counted by IP with the unauthenticated limit, then refused by session_required.
        local anon = get(srv, "/api/me")
        envelope(anon, 401, "CONNECTION_SESSION_NOT_FOUND")
        assert.are.equal("20", anon.headers["x-ratelimit-limit"])
        assert.are.equal("19", anon.headers["x-ratelimit-remaining"])
    end)
end)

describe("rate limiting when Redis fails", function()
    local P

    before_each(function() P = private_redis() end)
    after_each(function()
        if P then P:destroy() end
        P = nil
    end)

    it("fails closed (503, Retry-After: 1), logs the outage once, and recovers after a restart", function()
        local srv = start({ RATE_LIMIT_FAIL_OPEN = "false" }, P.url)
        finally(function() stop(srv) end)
        local ok = get(srv, "/api/limited")
        assert.are.equal(200, ok.status)
        assert.are.equal("20", ok.headers["x-ratelimit-limit"])
        P:stop()
        for _ = 1, 5 do
            local res = get(srv, "/api/limited")
            local err = envelope(res, 503, "CONNECTION_SERVER_ERROR")
            assert.are.equal("Rate limiting unavailable", err.message)
            assert.are.equal("1", res.headers["retry-after"])
            assert.are.equal(1, header_count(res, "Retry-After"))
            assert.is_nil(res.headers["x-ratelimit-limit"])
        end
        assert.is_true(srv:alive())
        local log = srv:log()
        assert.are.equal(1, count(log, "Redis unreachable"), log)
        assert.are.equal(0, count(log, "rate limiting:"), log)
        -- Same port again: the reconnect backoff is at most 5 s. The new Redis has an empty
        -- script cache, so this also goes through the NOSCRIPT → EVAL fallback.
        P:start()
        local back = eventually(8, function() return get(srv, "/api/limited").status == 200 end)
        assert.is_true(back, "no recovery after Redis came back:\n" .. srv:log())
        local res = get(srv, "/api/limited")
        assert.are.equal(200, res.status)
        assert.are.equal("20", res.headers["x-ratelimit-limit"])
        assert.is_truthy(tonumber(res.headers["x-ratelimit-remaining"]))
    end)

    it("fails open (200 without rate headers) when RATE_LIMIT_FAIL_OPEN=true", function()
        local srv = start({ RATE_LIMIT_FAIL_OPEN = "true" }, P.url)
        finally(function() stop(srv) end)
        assert.are.equal("20", get(srv, "/api/limited").headers["x-ratelimit-limit"])
        P:stop()
        for _ = 1, 25 do -- more than the limit: nothing counts while Redis is away
            local res = get(srv, "/api/limited")
            assert.are.equal(200, res.status)
            assert.is_nil(res.headers["x-ratelimit-limit"])
            assert.is_nil(res.headers["retry-after"])
        end
        P:start()
        assert.is_true(eventually(8, function()
            return get(srv, "/api/limited").headers["x-ratelimit-limit"] == "20"
        end), "rate headers did not come back:\n" .. srv:log())
    end)

    it("Redis answering errors (OOM) gives a clean 503 envelope, logged once, then recovers", function()
        local srv = start({ RATE_LIMIT_FAIL_OPEN = "false" }, P.url)
        finally(function() stop(srv) end)
        assert.are.equal(200, get(srv, "/api/limited").status)
        P:cli("FLUSHALL")
        P:cli("SCRIPT", "FLUSH") -- also forces the NOSCRIPT → EVAL path under OOM
        P:cli("CONFIG", "SET", "maxmemory-policy", "noeviction")
        P:cli("CONFIG", "SET", "maxmemory", "1")
        for _ = 1, 3 do
            local t0 = socket.gettime()
            local res = get(srv, "/api/limited")
            assert.is_true(socket.gettime() - t0 < 2)
            assert.is_true(res.status == 503 or res.status == 500, res.body)
            local body = H.json(res.body)
            assert.is_string(body.error.message)
            assert.is_string(body.error.type)
            assert.is_nil(res.headers["x-ratelimit-limit"])
        end
        assert.is_true(srv:alive())
        assert.are.equal(1, count(srv:log(), "rate limiting: the Redis check failed"), srv:log())
        P:cli("CONFIG", "SET", "maxmemory", "0")
        local res = get(srv, "/api/limited")
        assert.are.equal(200, res.status)
        assert.are.equal("20", res.headers["x-ratelimit-limit"])
    end)

    it("a Redis that answers too late is a timeout: 503 at once, never a hang", function()
        local srv = start({ RATE_LIMIT_FAIL_OPEN = "false", REDIS_COMMAND_TIMEOUT_MS = "200" }, P.url)
        finally(function() stop(srv) end)
        assert.are.equal(200, get(srv, "/api/limited").status)
        P:debug_sleep(1.5)
        H.sleep(0.2)
        local t0 = socket.gettime()
        local res = get(srv, "/api/limited")
        local took = socket.gettime() - t0
        envelope(res, 503, "CONNECTION_SERVER_ERROR")
        assert.is_true(took < 1.2, "took " .. took .. " s")
        assert.is_true(eventually(5, function() return get(srv, "/api/limited").status == 200 end))
        assert.matches("rate limiting: the Redis check failed %(timeout%)", srv:log())
    end)

    it("the action timeout firing during the check answers 408 and drops the late reply", function()
        local srv = start({ RATE_LIMIT_FAIL_OPEN = "false", REDIS_COMMAND_TIMEOUT_MS = "5000",
            ACTION_TIMEOUT = "300" }, P.url)
        finally(function() stop(srv) end)
        assert.are.equal(200, get(srv, "/api/limited").status)
        P:debug_sleep(1.2)
        H.sleep(0.2)
        local t0 = socket.gettime()
        local res = get(srv, "/api/limited")
        envelope(res, 408, "CONNECTION_ACTION_TIMEOUT")
        assert.is_true(socket.gettime() - t0 < 0.9)
        -- The late answer arrives for a request that is gone: dropped, the server goes on.
        assert.is_true(eventually(5, function() return get(srv, "/api/limited").status == 200 end))
        assert.is_true(srv:alive())
    end)
end)
