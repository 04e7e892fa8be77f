-- Hardening: login brute force on the example app (app/actions/session.lua). session:create
-- counts attempts per account (5 per 15 minutes per e-mail, keryx.rate_limit.check under the
-- key prefix "login") on top of the per-IP limit, so rotating client addresses does not buy an
-- attacker more guesses; unknown e-mails are counted and answered exactly like wrong passwords.
-- Distinct client addresses are real: each attempt connects from its own 127.0.0.x (the whole
-- of 127/8 is loopback on Linux), which keryx sees as the peer address, the rate-limit
-- identifier of anonymous requests.
local H = require "server"
local A = require "http_assert"
local socket = require "socket"
local cjson = require "cjson"

local PASSWORD = "s3cret-Passw0rd"
local EMAIL = "victim@example.com"

--- One JSON request from the client address `from` (127.0.0.x).
local function from_addr(srv, from, method, path, body)
    local c = srv:connect(5, from)
    local text = cjson.encode(body)
    assert(c:send(H.build { method = method, path = path, body = text,
        headers = { { "Content-Type", "application/json" } } }))
    local res, err = H.read_response(c, method)
    c:close()
    return assert(res, err)
end

local function login(srv, from, email, password)
    return from_addr(srv, from, "PUT", "/api/session", { email = email, password = password })
end

--- Sleeps into the next 15-minute window when fewer than 15 s are left in this one: the
--- sliding window weighs the previous window's count down (rounding down), so attempts that
--- straddle a boundary would allow one more than the limit.
local function fresh_login_window()
    local window_ms = 15 * 60 * 1000
    local left = window_ms - (socket.gettime() * 1000) % window_ms
    if left < 15000 then H.sleep((left + 50) / 1000) end
end

--- The parts of an error answer an attacker could compare: status, type, message, and which
--- headers came (not their values, which count down).
local function shape(res)
    local err = cjson.decode(res.body).error
    local names = {}
    for _, kv in ipairs(res.header_list) do
        local n = kv[1]:lower()
        if n ~= "date" and n ~= "content-length" then names[#names + 1] = n end
    end
    table.sort(names)
    return { status = res.status, type = err.type, message = err.message, headers = table.concat(names, " ") }
end

describe("hardening: login attempts per account", function()
    local R, srv

    setup(function()
        R = H.redis()
        srv = H.start { env = { RATE_LIMIT_ENABLED = "true", NODE_ENV = "production" } }
    end)
    teardown(function() H.stop(srv) end)
    before_each(function()
        fresh_login_window()
        R.cli("FLUSHALL")
        local res = H.call(srv, "PUT", "/api/user", { name = "Victim", email = EMAIL, password = PASSWORD })
        assert.are.equal(200, res.status, res.body)
    end)

    it("5 wrong passwords from 5 addresses: the 6th attempt, from a 6th, is refused even with the right password",
        function()
            for i = 1, 5 do
                local res = login(srv, "127.0.0." .. (i + 1), EMAIL, "wrong-password-" .. i)
                local err = A.envelope(res, 401, "CONNECTION_SESSION_NOT_FOUND")
                assert.are.equal("Invalid email or password", err.message)
                assert.are.equal("19", res.headers["x-ratelimit-remaining"]) -- each address is fresh
            end
            local res = login(srv, "127.0.0.7", EMAIL, PASSWORD)
            local err = A.envelope(res, 429, "CONNECTION_RATE_LIMITED")
            assert.matches("^Too many login attempts%. Try again in %d+ seconds%.$", err.message)
            local retry = tonumber(res.headers["retry-after"])
            assert.is_true(retry >= 1 and retry <= 15 * 60, tostring(retry))
            assert.is_nil(res.headers["set-cookie"])
            -- the addresses really differed: one per-IP window each
            for i = 2, 7 do
                assert.are_not.equal("", R.cli("KEYS", "ratelimit:{ip:127.0.0." .. i .. "}:*"), "127.0.0." .. i)
            end
            -- the account's own counter, keyed by the normalised e-mail
            assert.are_not.equal("", R.cli("KEYS", "login:{" .. EMAIL .. "}:*"))
            -- other accounts are untouched
            local other = H.call(srv, "PUT", "/api/user", { name = "Other", email = "other@example.com", password = PASSWORD })
            assert.are.equal(200, other.status, other.body)
            assert.are.equal(200, login(srv, "127.0.0.8", "other@example.com", PASSWORD).status)
        end)

    it("an unknown e-mail gets the same answer as a wrong password, and is limited the same way", function()
        local wrong = login(srv, "127.0.0.2", EMAIL, "wrong-password")
        local unknown = login(srv, "127.0.0.3", "nobody@example.com", "wrong-password")
        assert.are.same(shape(wrong), shape(unknown))
        assert.are.equal(401, unknown.status)
        for i = 2, 5 do
            login(srv, "127.0.0." .. (i + 2), EMAIL, "wrong-password")
            login(srv, "127.0.0." .. (i + 2), "nobody@example.com", "wrong-password")
        end
        local limited_known = login(srv, "127.0.0.9", EMAIL, PASSWORD)
        local limited_unknown = login(srv, "127.0.0.10", "nobody@example.com", PASSWORD)
        A.envelope(limited_known, 429, "CONNECTION_RATE_LIMITED")
        A.envelope(limited_unknown, 429, "CONNECTION_RATE_LIMITED")
        local a, b = shape(limited_known), shape(limited_unknown)
        -- the seconds left may differ by one between the two answers
        a.message, b.message = a.message:gsub("%d+", "N"), b.message:gsub("%d+", "N")
        assert.are.same(a, b)
    end)

    it("the e-mail is normalised: its case does not open a fresh counter", function()
        for i, email in ipairs { EMAIL:upper(), "Victim@example.com", "victim@EXAMPLE.com", "vIctim@example.com", EMAIL } do
            A.envelope(login(srv, "127.0.0." .. (i + 1), email, "wrong-password"), 401, "CONNECTION_SESSION_NOT_FOUND")
        end
        A.envelope(login(srv, "127.0.0.7", "Victim@Example.com", PASSWORD), 429, "CONNECTION_RATE_LIMITED")
    end)
end)
