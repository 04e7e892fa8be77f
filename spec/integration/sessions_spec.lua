-- Black-box specs for sessions (security: session cookies, session fixation) against the default
-- app (./app, ./config.lua) and a real redis-server: the cookie's flags for every configuration, id
-- shape, when Set-Cookie is (not) sent, no writes for anonymous requests, no fixation, malformed
-- cookies ignored, regeneration on login, logout, TTL refresh, and a Redis outage (503 +
-- Retry-After, status unhealthy, recovery).
local H = require "server"
local A = require "http_assert"
local PR = require "private_redis"
local socket = require "socket"
local cjson = require "cjson"

local ID_PATTERN = "^[A-Za-z0-9_-]+$"
local PASSWORD = "correct horse battery"
math.randomseed(math.floor(socket.gettime() * 1000) % 2147483647)

-- ---- helpers ----------------------------------------------------------------------------------

-- call(srv, method, path, body, cookie): body (a table) is sent as JSON; cookie is the raw
-- Cookie header value.
local stop, call, eventually, envelope = H.stop, H.call, H.eventually, A.envelope

local function start(env)
    return H.start { env = env }
end

local function set_cookies(res)
    local list = {}
    for _, kv in ipairs(res.header_list) do
        if kv[1]:lower() == "set-cookie" then list[#list + 1] = kv[2] end
    end
    return list
end

--- Parses the only Set-Cookie of res: { name, value, attrs (lower-case name → value or true),
--- names (attribute names in order, as sent) }.
local function the_cookie(res)
    local list = set_cookies(res)
    assert.are.equal(1, #list, "expected exactly one Set-Cookie, got " .. #list .. ":\n" .. res.raw)
    local parts = {}
    for p in (list[1] .. ";"):gmatch("([^;]*);") do parts[#parts + 1] = p:match("^%s*(.-)%s*$") end
    local name, value = parts[1]:match("^([^=]+)=(.*)$")
    assert.is_truthy(name, list[1])
    local c = { name = name, value = value, attrs = {}, names = {}, raw = list[1] }
    for i = 2, #parts do
        local k, v = parts[i]:match("^([^=]+)=(.*)$")
        k = k or parts[i]
        assert.is_nil(c.attrs[k:lower()], "attribute repeated: " .. list[1])
        c.attrs[k:lower()] = v or true
        c.names[#c.names + 1] = k
    end
    return c
end

local function no_cookie(res, what)
    assert.are.same({}, set_cookies(res), (what or "") .. " sent a Set-Cookie:\n" .. (res.raw or ""))
end

local user_seq = 0

--- Signs a fresh user up; returns its email and id.
local function signup(srv)
    user_seq = user_seq + 1
    local email = ("user%d.%d@example.com"):format(user_seq, math.random(1e6))
    local res = call(srv, "PUT", "/api/user", { name = "User " .. user_seq, email = email, password = PASSWORD })
    assert.are.equal(200, res.status, res.body)
    return email, H.json(res.body).user.id
end

--- Logs in (optionally presenting a cookie); returns the response and the session id of its body.
local function login(srv, email, cookie)
    local res = call(srv, "PUT", "/api/session", { email = email, password = PASSWORD }, cookie)
    assert.are.equal(200, res.status, res.body)
    return res, H.json(res.body).session.id
end

--- A random id that passes the server's shape check (43 base64url chars, last one carrying
--- only 2 bits: 256 bits do not fill the 43rd sextet).
local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local LAST = "AEIMQUYcgkosw048"
local function random_id()
    local t = {}
    for i = 1, 42 do
        local k = math.random(64)
        t[i] = ALPHABET:sub(k, k)
    end
    local k = math.random(16)
    return table.concat(t) .. LAST:sub(k, k)
end

local function count_lines(s)
    return H.count_matches(s, "[^\n]+")
end

--- Writes a session record straight into Redis (as keryx stores them).
local function plant_session(R, id, user_id)
    local rec = cjson.encode { id = id, createdAt = 0, data = { user_id = user_id } }
    assert.are.equal("OK", R.cli("SET", "session:" .. id, rec, "EX", "600"))
end

-- ---- cookie flags per configuration -------------------------------------------------------------

describe("session cookie flags", function()
    local R

    setup(function() R = H.redis() end)
    before_each(function() R.cli("FLUSHALL") end)

    --- Logs in and out on a server started with env; checks both cookies against `want`
    --- (name, ttl, http_only, same_site, secure); returns the login cookie.
    local function check_flags(env, want)
        local srv = start(env)
        finally(function() stop(srv) end)
        local email = signup(srv)
        local res, id = login(srv, email)
        local c = the_cookie(res)
        assert.are.equal(want.name or "__session", c.name)
        assert.are.equal(id, c.value)
        assert.are.equal(tostring(want.ttl or 86400), c.attrs["max-age"])
        assert.are.equal("/", c.attrs.path)
        assert.are.equal(want.same_site or "Strict", c.attrs.samesite)
        assert.are.equal(want.http_only ~= false, c.attrs.httponly == true, c.raw)
        -- Over TLS (make test-integration-tls) the cookie is always Secure.
        assert.are.equal(want.secure == true or srv.tls == true, c.attrs.secure == true, c.raw)
        assert.is_nil(c.attrs.domain)
        assert.is_nil(c.attrs.expires)
        -- The same flags on the expiring cookie sent at logout.
        local out = call(srv, "DELETE", "/api/session", nil, c.name .. "=" .. id)
        assert.are.equal(200, out.status, out.body)
        local gone = the_cookie(out)
        assert.are.equal(c.name, gone.name)
        assert.are.equal("", gone.value)
        assert.are.equal("0", gone.attrs["max-age"])
        assert.are.equal("/", gone.attrs.path)
        assert.are.same(c.names, gone.names)
        assert.are.equal(c.attrs.samesite, gone.attrs.samesite)
        return c, id, srv
    end

    it("defaults: HttpOnly; SameSite=Strict; Max-Age=86400; Path=/; no Secure", function()
        local c, id, srv = check_flags({}, {})
        assert.are.equal(("__session=%s; Max-Age=86400; Path=/; HttpOnly; SameSite=Strict%s"):format(id,
            srv.tls and "; Secure" or ""), c.raw)
    end)

    it("SESSION_COOKIE_SECURE=true adds Secure", function()
        check_flags({ SESSION_COOKIE_SECURE = "true" }, { secure = true })
    end)

    it("SESSION_COOKIE_HTTP_ONLY=false drops HttpOnly", function()
        check_flags({ SESSION_COOKIE_HTTP_ONLY = "false" }, { http_only = false })
    end)

    it("SESSION_COOKIE_SAME_SITE=Lax (any case)", function()
        check_flags({ SESSION_COOKIE_SAME_SITE = "lax" }, { same_site = "Lax" })
    end)

    it("SESSION_COOKIE_SAME_SITE=None with SESSION_COOKIE_SECURE=true", function()
        check_flags({ SESSION_COOKIE_SAME_SITE = "None", SESSION_COOKIE_SECURE = "true" },
            { same_site = "None", secure = true })
    end)

    it("SESSION_TTL=60: Max-Age=60 and the Redis key expires within 60 s", function()
        local _, id, srv = check_flags({ SESSION_TTL = "60" }, { ttl = 60 })
        -- check_flags logged out; log in again and look at the live key.
        local email = signup(srv)
        local _, id2 = login(srv, email)
        assert.are_not.equal(id, id2)
        local ttl = tonumber(R.cli("TTL", "session:" .. id2))
        assert.is_true(ttl ~= nil and ttl > 0 and ttl <= 60, "TTL " .. tostring(ttl))
        -- A use refreshes it to at most 60 again (never the default day).
        R.cli("EXPIRE", "session:" .. id2, "5")
        assert.are.equal(200, call(srv, "GET", "/api/me", nil, "__session=" .. id2).status)
        ttl = tonumber(R.cli("TTL", "session:" .. id2))
        assert.is_true(ttl > 5 and ttl <= 60, "TTL " .. tostring(ttl))
    end)

    it("SESSION_COOKIE_NAME=sid: the cookie is named sid and only sid is read", function()
        local srv = start { SESSION_COOKIE_NAME = "sid" }
        finally(function() stop(srv) end)
        local email = signup(srv)
        local res, id = login(srv, email)
        local c = the_cookie(res)
        assert.are.equal("sid", c.name)
        assert.are.equal(id, c.value)
        assert.are.equal(200, call(srv, "GET", "/api/me", nil, "sid=" .. id).status)
        envelope(call(srv, "GET", "/api/me", nil, "__session=" .. id), 401, "CONNECTION_SESSION_NOT_FOUND")
        local out = call(srv, "DELETE", "/api/session", nil, "sid=" .. id)
        local gone = the_cookie(out)
        assert.are.equal("sid", gone.name)
        assert.are.equal("0", gone.attrs["max-age"])
    end)

    it("APPLICATION_URL=https://… makes the cookie Secure", function()
        check_flags({ APPLICATION_URL = "https://chat.example.com" }, { secure = true })
    end)

    it("APPLICATION_URL=http://… leaves it without Secure", function()
        check_flags({ APPLICATION_URL = "http://chat.example.com" }, {})
    end)

    --- Runs `keryx start` with env (bounded by `timeout`); returns exit code and output.
    local function start_fails(env)
        local e = { REDIS_URL = R.url }
        for k, v in pairs(env) do e[k] = v end
        return H.start_fail(e)
    end

    it("SESSION_COOKIE_SAME_SITE=None without Secure refuses to start with a clear message", function()
        for _, v in ipairs { "None", "none", "NONE" } do
            local code, text = start_fails { SESSION_COOKIE_SAME_SITE = v }
            assert.are_not.equal(0, code)
            assert.are_not.equal(124, code, "still running after 5 s: " .. text) -- timeout(1)
            assert.matches("SESSION_COOKIE_SAME_SITE=None requires SESSION_COOKIE_SECURE=true", text, 1, true)
            assert.is_nil(text:find("started server @", 1, true), text)
        end
        local code, text = start_fails { SESSION_COOKIE_SAME_SITE = "None", SESSION_COOKIE_SECURE = "false" }
        assert.are_not.equal(0, code)
        assert.matches("SESSION_COOKIE_SAME_SITE=None requires SESSION_COOKIE_SECURE=true", text, 1, true)
        -- Other bad values stop start-up too.
        code, text = start_fails { SESSION_COOKIE_SAME_SITE = "Sometimes" }
        assert.are_not.equal(0, code)
        assert.matches("SESSION_COOKIE_SAME_SITE", text, 1, true)
    end)

    it("SESSION_COOKIE_SAME_SITE=None with APPLICATION_URL=https://… (cookie Secure through the URL) starts", function()
        check_flags({ SESSION_COOKIE_SAME_SITE = "None", APPLICATION_URL = "https://chat.example.com" },
            { same_site = "None", secure = true })
    end)
end)

-- ---- behaviour on the default configuration -----------------------------------------------------

describe("sessions", function()
    local R, srv

    setup(function()
        R = H.redis()
        srv = start()
    end)
    teardown(function() stop(srv) end)
    before_each(function() R.cli("FLUSHALL") end)

    it("ids are 43 base64url characters (256 bits), equal in body and cookie, new per login", function()
        local email = signup(srv)
        local seen = {}
        for _ = 1, 5 do
            local res, id = login(srv, email)
            assert.are.equal(43, #id)
            assert.matches(ID_PATTERN, id)
            assert.are.equal(id, the_cookie(res).value)
            assert.is_nil(seen[id], "id repeated: " .. id)
            seen[id] = true
            -- The record: {"id","createdAt","data"} with the user logged in (data.user_id set).
            local rec = cjson.decode(R.cli("GET", "session:" .. id))
            assert.are.equal(id, rec.id)
            assert.is_number(rec.createdAt)
            assert.is_true(rec.createdAt > (os.time() - 60) * 1000)
            assert.is_table(rec.data)
            assert.is_number(rec.data.user_id)
        end
        -- Independent logins: five sessions side by side.
        assert.are.equal(5, count_lines(R.cli("KEYS", "session:*")))
    end)

    it("anonymous requests send no Set-Cookie and write nothing to Redis", function()
        assert.are.equal("0", R.cli("DBSIZE"))
        local paths = { "/api/status", "/api/hello", "/api/hello?name=Evan", "/api/messages",
            "/api/messages?page=2&limit=5", "/api/me", "/api/swagger" }
        for _, p in ipairs(paths) do
            local res = call(srv, "GET", p)
            assert.is_true(res.status == 200 or res.status == 401, p .. " → " .. res.status)
            no_cookie(res, p)
        end
        -- A cookie naming no session changes nothing either (not adopted, no key created).
        local planted = random_id()
        for _, p in ipairs(paths) do no_cookie(call(srv, "GET", p, nil, "__session=" .. planted), p) end
        -- A failed login (unknown email) and an invalid one neither.
        local bad = call(srv, "PUT", "/api/session", { email = "nobody@example.com", password = PASSWORD })
        envelope(bad, 401, "CONNECTION_SESSION_NOT_FOUND")
        no_cookie(bad, "failed login")
        no_cookie(call(srv, "PUT", "/api/session", { email = "x" }), "invalid login")
        assert.are.equal("0", R.cli("DBSIZE"))
        assert.are.equal("", R.cli("KEYS", "*"))
    end)

    it("logged in: status, hello, messages, me and posting send no Set-Cookie", function()
        local email, uid = signup(srv)
        local _, id = login(srv, email)
        local cookie = "__session=" .. id
        for _, p in ipairs { "/api/status", "/api/hello", "/api/messages", "/api/me" } do
            local res = call(srv, "GET", p, nil, cookie)
            assert.are.equal(200, res.status, p)
            no_cookie(res, p)
        end
        local me = H.json(call(srv, "GET", "/api/me", nil, cookie).body)
        assert.are.equal(uid, me.user.id)
        local posted = call(srv, "PUT", "/api/message", { body = "hi" }, cookie)
        assert.are.equal(200, posted.status, posted.body)
        no_cookie(posted, "PUT /api/message")
        -- A wrong password while logged in neither sends a cookie nor ends the session.
        local wrong = call(srv, "PUT", "/api/session", { email = email, password = "not it at all" }, cookie)
        envelope(wrong, 401, "CONNECTION_SESSION_NOT_FOUND")
        no_cookie(wrong, "failed login")
        assert.are.equal(200, call(srv, "GET", "/api/me", nil, cookie).status)
    end)

    it("fixation: a well-formed cookie naming no session is not adopted, and login replaces it", function()
        local email, uid = signup(srv)
        local planted = random_id()
        local cookie = "__session=" .. planted
        local me = call(srv, "GET", "/api/me", nil, cookie)
        envelope(me, 401, "CONNECTION_SESSION_NOT_FOUND")
        no_cookie(me)
        assert.are.equal("0", R.cli("EXISTS", "session:" .. planted))
        -- Logging in while presenting it: a fresh id, never the planted one.
        local res, id = login(srv, email, cookie)
        assert.are_not.equal(planted, id)
        assert.are.equal(id, the_cookie(res).value)
        assert.are.equal("0", R.cli("EXISTS", "session:" .. planted))
        assert.are.equal("session:" .. id, R.cli("KEYS", "session:*"))
        envelope(call(srv, "GET", "/api/me", nil, cookie), 401, "CONNECTION_SESSION_NOT_FOUND")
        assert.are.equal(uid, H.json(call(srv, "GET", "/api/me", nil, "__session=" .. id).body).user.id)
    end)

    it("malformed cookies are ignored even when Redis holds a session under that value", function()
        local good = random_id()
        local cases = {
            short = good:sub(1, 20),
            empty = "",
            plus = good:sub(1, 10) .. "+" .. good:sub(12),
            slash = good:sub(1, 10) .. "/" .. good:sub(12),
            equals = good:sub(1, 42) .. "=",
            padded = good .. "=",
            long44 = good .. "A",
            long86 = good .. good,
            bad_last_char = good:sub(1, 42) .. "B", -- low bits set: not 256 bits
            space_inside = good:sub(1, 20) .. " " .. good:sub(22),
            percent = good:sub(1, 20) .. "%41" .. good:sub(24),
        }
        for what, value in pairs(cases) do
            if value ~= "" then plant_session(R, value, 1) end
            local res = call(srv, "GET", "/api/me", nil, "__session=" .. value)
            envelope(res, 401, "CONNECTION_SESSION_NOT_FOUND")
            no_cookie(res, what)
        end
        -- The parser is exact about the name, and fine with neighbours and quotes.
        plant_session(R, good, 1)
        R.cli("HSET", "user:1", "id", "1", "name", "Planted", "email", "p@example.com")
        local function me(cookie) return call(srv, "GET", "/api/me", nil, cookie).status end
        assert.are.equal(200, me("__session=" .. good))
        assert.are.equal(200, me("a=1; __session=" .. good .. "; b=2"))
        assert.are.equal(200, me('__session="' .. good .. '"'))
        assert.are.equal(401, me("x__session=" .. good))
        assert.are.equal(401, me("__session2=" .. good))
        assert.are.equal(401, me("__SESSION=" .. good))
        assert.are.equal(401, me("__session " .. good))
        -- Nothing was created by any of this.
        local keys = R.cli("KEYS", "session:*")
        assert.are.equal(11, count_lines(keys), keys) -- the 10 planted (non-empty) values + good
    end)

    it("two session cookies with the same name are ambiguous and ignored", function()
        local a, b = random_id(), random_id()
        plant_session(R, a, 1)
        plant_session(R, b, 2)
        R.cli("HSET", "user:1", "id", "1", "name", "One", "email", "1@example.com")
        R.cli("HSET", "user:2", "id", "2", "name", "Two", "email", "2@example.com")
        for _, cookie in ipairs { "__session=" .. a .. "; __session=" .. b, "__session=" .. b .. "; __session=" .. a,
            "__session=" .. a .. "; x=1; __session=" .. a:sub(1, 20) } do
            local res = call(srv, "GET", "/api/me", nil, cookie)
            envelope(res, 401, "CONNECTION_SESSION_NOT_FOUND")
            no_cookie(res)
        end
        local res = srv:request { method = "GET", path = "/api/me",
            headers = { { "Cookie", "__session=" .. a }, { "Cookie", "__session=" .. b } } }
        envelope(res, 401, "CONNECTION_SESSION_NOT_FOUND")
    end)

    it("login regenerates: a new id, the old key deleted, the old cookie dead", function()
        local email1 = signup(srv)
        local email2, uid2 = signup(srv)
        local _, before = login(srv, email1)
        local created = cjson.decode(R.cli("GET", "session:" .. before)).createdAt
        local res, after = login(srv, email2, "__session=" .. before)
        assert.are_not.equal(before, after)
        assert.are.equal(after, the_cookie(res).value)
        assert.are.equal("0", R.cli("EXISTS", "session:" .. before))
        assert.are.equal("session:" .. after, R.cli("KEYS", "session:*"))
        local rec = cjson.decode(R.cli("GET", "session:" .. after))
        assert.are.equal(uid2, rec.data.user_id)
        assert.are.equal(created, rec.createdAt)
        envelope(call(srv, "GET", "/api/me", nil, "__session=" .. before), 401, "CONNECTION_SESSION_NOT_FOUND")
        assert.are.equal(uid2, H.json(call(srv, "GET", "/api/me", nil, "__session=" .. after).body).user.id)
    end)

    it("logout deletes the key and expires the cookie; the old cookie then gets 401", function()
        local email = signup(srv)
        local _, id = login(srv, email)
        local cookie = "__session=" .. id
        assert.are.equal(200, call(srv, "GET", "/api/me", nil, cookie).status)
        local out = call(srv, "DELETE", "/api/session", nil, cookie)
        assert.are.equal(200, out.status)
        assert.are.same({ success = true }, H.json(out.body))
        local c = the_cookie(out)
        assert.are.equal("__session", c.name)
        assert.are.equal("", c.value)
        assert.are.equal("0", c.attrs["max-age"])
        assert.matches("^__session=; Max%-Age=0", c.raw)
        assert.are.equal("0", R.cli("EXISTS", "session:" .. id))
        assert.are.equal("", R.cli("KEYS", "session:*"))
        local me = call(srv, "GET", "/api/me", nil, cookie)
        envelope(me, 401, "CONNECTION_SESSION_NOT_FOUND")
        no_cookie(me)
        envelope(call(srv, "PUT", "/api/message", { body = "after logout" }, cookie), 401,
            "CONNECTION_SESSION_NOT_FOUND")
        -- Logging out with no cookie at all: success, nothing to expire, nothing written.
        local anon = call(srv, "DELETE", "/api/session")
        assert.are.equal(200, anon.status)
        assert.are.same({ success = true }, H.json(anon.body))
        no_cookie(anon, "anonymous logout")
        assert.are.equal("", R.cli("KEYS", "session:*"))
    end)

    it("the Redis TTL is refreshed on use", function()
        local email = signup(srv)
        local _, id = login(srv, email)
        local ttl = tonumber(R.cli("TTL", "session:" .. id))
        assert.is_true(ttl > 86000 and ttl <= 86400, "TTL " .. tostring(ttl))
        R.cli("EXPIRE", "session:" .. id, "30")
        assert.are.equal("30", R.cli("TTL", "session:" .. id))
        assert.are.equal(200, call(srv, "GET", "/api/me", nil, "__session=" .. id).status)
        ttl = tonumber(R.cli("TTL", "session:" .. id))
        assert.is_true(ttl > 86000 and ttl <= 86400, "TTL after use " .. tostring(ttl))
        -- Reading it through another action (rate-limit identity is off in test) also counts.
        R.cli("EXPIRE", "session:" .. id, "30")
        assert.are.equal(200, call(srv, "PUT", "/api/message", { body = "x" }, "__session=" .. id).status)
        assert.is_true(tonumber(R.cli("TTL", "session:" .. id)) > 86000)
    end)

    it("an expired session is gone: 401, no cookie, nothing recreated", function()
        local email = signup(srv)
        local _, id = login(srv, email)
        R.cli("DEL", "session:" .. id) -- what expiry does
        local me = call(srv, "GET", "/api/me", nil, "__session=" .. id)
        envelope(me, 401, "CONNECTION_SESSION_NOT_FOUND")
        no_cookie(me)
        assert.are.equal("0", R.cli("EXISTS", "session:" .. id))
    end)
end)

-- ---- Redis going away -------------------------------------------------------------------------

describe("sessions when Redis goes away", function()
    local P

    before_each(function() P = PR.new() end)
    after_each(function() P:destroy() end)

    it("503 with Retry-After: 1 for session reads, status unhealthy, no crash, then recovery", function()
        local srv = start { REDIS_URL = P.url }
        finally(function() stop(srv) end)
        local email = signup(srv)
        local _, id = login(srv, email)
        local cookie = "__session=" .. id
        assert.are.equal(200, call(srv, "GET", "/api/me", nil, cookie).status)
        local st = H.json(call(srv, "GET", "/api/status").body)
        assert.is_true(st.checks.redis)
        assert.is_true(st.healthy)
        local record = P:cli("GET", "session:" .. id)
        local user = P:cli("HGETALL", "user:1")

        P:kill()
        for _ = 1, 3 do
            local res = call(srv, "GET", "/api/me", nil, cookie)
            local err = envelope(res, 503, "CONNECTION_SERVER_ERROR")
            assert.is_string(err.message)
            assert.are.equal("1", res.headers["retry-after"])
            no_cookie(res)
            local status = call(srv, "GET", "/api/status")
            assert.are.equal(200, status.status)
            local body = H.json(status.body)
            assert.is_false(body.checks.redis)
            assert.is_false(body.healthy)
        end
        -- Posting and logging out need Redis too: the same clean 503, never a crash.
        local posted = call(srv, "PUT", "/api/message", { body = "while down" }, cookie)
        envelope(posted, 503, "CONNECTION_SERVER_ERROR")
        assert.are.equal("1", posted.headers["retry-after"])
        envelope(call(srv, "DELETE", "/api/session", nil, cookie), 503, "CONNECTION_SERVER_ERROR")
        -- Anonymous requests that need no session still work.
        assert.are.equal(200, call(srv, "GET", "/api/hello").status)
        envelope(call(srv, "GET", "/api/me"), 401, "CONNECTION_SESSION_NOT_FOUND")
        assert.is_true(srv:alive())

        -- Same port again (empty: no persistence): put the user and session back, then poll.
        P:start()
        P:cli("SET", "session:" .. id, record, "EX", "600")
        local fields = {}
        for line in user:gmatch("[^\n]+") do fields[#fields + 1] = line end
        P:cli("HSET", "user:1", unpack(fields))
        local t0 = socket.gettime()
        local back = eventually(8, function() return call(srv, "GET", "/api/me", nil, cookie).status == 200 end)
        local took = socket.gettime() - t0
        assert.is_true(back, "no recovery after Redis came back:\n" .. srv:log())
        assert.is_true(took < 6.5, "recovery took " .. took .. " s")
        local body = H.json(call(srv, "GET", "/api/status").body)
        assert.is_true(body.checks.redis)
        assert.is_true(body.healthy)
        assert.is_true(srv:alive())
    end)
end)
