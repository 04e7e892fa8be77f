-- Black-box specs for the example chat app (README, the Lua API tour) on the default app (./app,
-- ./config.lua) and a real redis-server: the sign-up → login → me → post → list → logout flow,
-- typed errors for bad input to every action, secrets never echoed, passwords stored as scrypt
-- hashes, logins not stalling the loop, and the README's curl walkthrough with a real cookie jar.
local H = require "server"
local A = require "http_assert"
local socket = require "socket"
local cjson = require "cjson"

local PASSWORD = "s3cret-Passw0rd"

local stop, envelope = H.stop, A.envelope

--- One request; a table body is sent as JSON, a string body as is (Content-Type JSON unless
--- ctype); cookie is a session id.
local function call(srv, method, path, body, cookie, ctype)
    return H.call(srv, method, path, body, cookie and "__session=" .. cookie, ctype)
end

--- A 406 validation error for key with exactly message.
local function invalid(res, key, message)
    local err = envelope(res, 406, "CONNECTION_ACTION_PARAM_REQUIRED")
    assert.are.equal(key, err.key)
    assert.are.equal(message, err.message)
    return err
end

local function keys_of(t)
    local list = {}
    for k in pairs(t) do list[#list + 1] = k end
    table.sort(list)
    return list
end

local function set_cookie_value(res)
    local v = res.headers["set-cookie"]
    return v and v:match("^__session=([^;]*)")
end

local function signup(srv, name, email, password)
    return call(srv, "PUT", "/api/user", { name = name, email = email, password = password or PASSWORD })
end

local function login(srv, email, password)
    return call(srv, "PUT", "/api/session", { email = email, password = password or PASSWORD })
end

--- Signs up and logs in; returns the user id and the session id.
local function logged_in(srv, email)
    local res = signup(srv, "Chatter", email)
    assert.are.equal(200, res.status, res.body)
    local l = login(srv, email)
    assert.are.equal(200, l.status, l.body)
    return H.json(res.body).user.id, H.json(l.body).session.id
end

describe("chat app", function()
    local R, srv

    setup(function()
        R = H.redis()
        srv = H.start {}
    end)
    teardown(function() stop(srv) end)
    before_each(function() R.cli("FLUSHALL") end)

    it("the full flow: sign up, log in, me, post, list, log out", function()
        -- Sign up: the public user only.
        local res = signup(srv, "Evan", "evan@example.com")
        assert.are.equal(200, res.status, res.body)
        local body = H.json(res.body)
        assert.are.same({ "user" }, keys_of(body))
        assert.are.same({ "email", "id", "name" }, keys_of(body.user))
        assert.is_number(body.user.id)
        assert.are.equal("Evan", body.user.name)
        assert.are.equal("evan@example.com", body.user.email)
        local user = body.user
        for _, needle in ipairs { "password", "hash", "scrypt", PASSWORD } do
            assert.is_nil(res.body:lower():find(needle:lower(), 1, true), needle .. " in " .. res.body)
        end
        assert.is_nil(res.headers["set-cookie"])

        -- Duplicate email (any case): a 406 with key email; the first account is untouched.
        for _, email in ipairs { "evan@example.com", "EVAN@Example.com", " evan@example.com" } do
            local dup = signup(srv, "Other", email, "another-password")
            assert.are.equal(406, dup.status, email .. ": " .. dup.body)
            local err = H.json(dup.body).error
            assert.are.equal("email", err.key)
            assert.is_string(err.type)
            assert.is_nil(dup.body:find("another-password", 1, true))
        end

        -- Wrong password, unknown email: the same 401 and message.
        local wrong = login(srv, "evan@example.com", "not-the-password")
        local e1 = envelope(wrong, 401, "CONNECTION_SESSION_NOT_FOUND")
        assert.are.equal("Invalid email or password", e1.message)
        assert.is_nil(wrong.body:find("not-the-password", 1, true))
        local unknown = login(srv, "nobody@example.com")
        local e2 = envelope(unknown, 401, "CONNECTION_SESSION_NOT_FOUND")
        assert.are.equal(e1.message, e2.message)
        assert.is_nil(wrong.headers["set-cookie"])
        assert.is_nil(unknown.headers["set-cookie"])

        -- Log in (email in any case): user + session id, and the cookie carries that id.
        local l = login(srv, "Evan@Example.COM")
        assert.are.equal(200, l.status, l.body)
        local lb = H.json(l.body)
        assert.are.same({ "session", "user" }, keys_of(lb))
        assert.are.same(user, lb.user)
        assert.are.same({ "id" }, keys_of(lb.session))
        assert.are.equal(lb.session.id, set_cookie_value(l))
        assert.is_nil(l.body:find(PASSWORD, 1, true))
        local sid = lb.session.id

        -- Me.
        local me = call(srv, "GET", "/api/me", nil, sid)
        assert.are.equal(200, me.status)
        assert.are.same({ user = user }, H.json(me.body))
        envelope(call(srv, "GET", "/api/me"), 401, "CONNECTION_SESSION_NOT_FOUND")

        -- Posting needs a login.
        local anon = call(srv, "PUT", "/api/message", { body = "anonymous" })
        envelope(anon, 401, "CONNECTION_SESSION_NOT_FOUND")
        assert.are.equal("0", R.cli("EXISTS", "messages"))
        local before = socket.gettime() * 1000
        local posted = call(srv, "PUT", "/api/message", { body = "Hello, chat! ünïcødé <b>&</b>" }, sid)
        assert.are.equal(200, posted.status, posted.body)
        local m = H.json(posted.body)
        assert.are.same({ "message" }, keys_of(m))
        assert.are.same({ "body", "created_at", "id", "user_id" }, keys_of(m.message))
        assert.is_number(m.message.id)
        assert.are.equal("Hello, chat! ünïcødé <b>&</b>", m.message.body)
        assert.are.equal(user.id, m.message.user_id)
        assert.is_true(m.message.created_at >= before - 1000 and m.message.created_at <= socket.gettime() * 1000 + 1000,
            tostring(m.message.created_at))

        -- Listed.
        local list = H.json(call(srv, "GET", "/api/messages").body)
        assert.are.same({ m.message }, list.data)
        assert.are.same({ page = 1, limit = 25, total = 1, pages = 1 }, list.pagination)

        -- Log out.
        local out = call(srv, "DELETE", "/api/session", nil, sid)
        assert.are.equal(200, out.status)
        assert.are.equal('{"success":true}', out.body)
        envelope(call(srv, "GET", "/api/me", nil, sid), 401, "CONNECTION_SESSION_NOT_FOUND")
        envelope(call(srv, "PUT", "/api/message", { body = "late" }, sid), 401, "CONNECTION_SESSION_NOT_FOUND")
    end)

    it("messages are paginated newest first; an empty list is a JSON array", function()
        local empty = call(srv, "GET", "/api/messages")
        assert.are.equal(200, empty.status)
        assert.matches('"data":%[%]', empty.body)
        local eb = H.json(empty.body)
        assert.are.same({ page = 1, limit = 25, total = 0, pages = 0 }, eb.pagination)

        local _, sid = logged_in(srv, "pager@example.com")
        local ids = {}
        for i = 1, 3 do
            local res = call(srv, "PUT", "/api/message", { body = "message " .. i }, sid)
            assert.are.equal(200, res.status, res.body)
            ids[i] = H.json(res.body).message.id
        end
        local p1 = H.json(call(srv, "GET", "/api/messages?limit=2").body)
        assert.are.same({ page = 1, limit = 2, total = 3, pages = 2 }, p1.pagination)
        assert.are.equal(2, #p1.data)
        assert.are.same({ ids[3], ids[2] }, { p1.data[1].id, p1.data[2].id })
        assert.are.same({ "message 3", "message 2" }, { p1.data[1].body, p1.data[2].body })
        local p2 = H.json(call(srv, "GET", "/api/messages?limit=2&page=2").body)
        assert.are.same({ page = 2, limit = 2, total = 3, pages = 2 }, p2.pagination)
        assert.are.equal(1, #p2.data)
        assert.are.equal(ids[1], p2.data[1].id)
        assert.are.equal("message 1", p2.data[1].body)
        -- Past the end: still an array.
        local p3 = call(srv, "GET", "/api/messages?limit=2&page=3")
        assert.are.equal(200, p3.status)
        assert.matches('"data":%[%]', p3.body)
        assert.are.same({ page = 3, limit = 2, total = 3, pages = 2 }, H.json(p3.body).pagination)
        -- Limits at the edges.
        local all = H.json(call(srv, "GET", "/api/messages?limit=100").body)
        assert.are.equal(3, #all.data)
        local one = H.json(call(srv, "GET", "/api/messages?limit=1&page=3").body)
        assert.are.same({ page = 3, limit = 1, total = 3, pages = 3 }, one.pagination)
        assert.are.equal(ids[1], one.data[1].id)
    end)

    it("the password is stored as an scrypt hash, never in the clear", function()
        local res = signup(srv, "Hashed", "hash@example.com")
        assert.are.equal(200, res.status, res.body)
        local id = H.json(res.body).user.id
        local hash = R.cli("HGET", "user:" .. id, "password_hash")
        assert.are.equal("scrypt$16384$8$1$", hash:sub(1, 17), hash)
        local salt, digest = hash:match("^scrypt%$16384%$8%$1%$([^$]+)%$([^$]+)$")
        assert.is_truthy(salt, hash)
        assert.is_truthy(digest, hash)
        assert.is_true(#salt >= 16 and #digest >= 32, hash)
        local everything = R.cli("HGETALL", "user:" .. id) .. R.cli("KEYS", "*")
        assert.is_nil(everything:find(PASSWORD, 1, true))
        -- A second user with the same password gets a different salt.
        assert.are.equal(200, signup(srv, "Hashed2", "hash2@example.com").status)
        local hash2 = R.cli("HGET", "user:" .. (id + 1), "password_hash")
        assert.are.equal("scrypt$16384$8$1$", hash2:sub(1, 17))
        assert.are_not.equal(hash, hash2)
    end)

    describe("bad input gets typed errors", function()
        it("user:create", function()
            local full = { name = "Valid Name", email = "ok@example.com", password = PASSWORD }
            for _, key in ipairs { "name", "email", "password" } do
                local t = {}
                for k, v in pairs(full) do if k ~= key then t[k] = v end end
                invalid(call(srv, "PUT", "/api/user", t), key, "Missing required param: " .. key)
            end
            invalid(call(srv, "PUT", "/api/user", { name = 123, email = "ok@example.com", password = PASSWORD }),
                "name", "name must be a string")
            invalid(call(srv, "PUT", "/api/user", { name = "abc", email = true, password = PASSWORD }),
                "email", "email must be a string")
            invalid(call(srv, "PUT", "/api/user", { name = "abc", email = "ok@example.com", password = { 1 } }),
                "password", "password must be a string")
            invalid(call(srv, "PUT", "/api/user", { name = "Al", email = "ok@example.com", password = PASSWORD }),
                "name", "name must be at least 3 characters")
            invalid(call(srv, "PUT", "/api/user", { name = ("n"):rep(101), email = "ok@example.com", password = PASSWORD }),
                "name", "name must be at most 100 characters")
            for _, email in ipairs { "not-an-email", "a@", "@b.co", "a b@c.de", "" } do
                invalid(call(srv, "PUT", "/api/user", { name = "abc", email = email, password = PASSWORD }),
                    "email", "email must be a valid email")
            end
            -- Secrets: rejected without the value anywhere in the answer.
            for _, pw in ipairs { "Sh0rt!x", ("Z"):rep(257) } do
                local res = call(srv, "PUT", "/api/user", { name = "abc", email = "ok@example.com", password = pw })
                local err = envelope(res, 406, "CONNECTION_ACTION_PARAM_REQUIRED")
                assert.are.equal("password", err.key)
                assert.is_nil(err.value)
                assert.is_nil(res.body:find(pw, 1, true), "password echoed: " .. res.body)
            end
            local res = call(srv, "PUT", "/api/user", { name = "abc", email = "ok@example.com", password = 12345678 })
            invalid(res, "password", "password must be a string")
            assert.is_nil(res.body:find("12345678", 1, true), res.body)
            assert.are.equal("0", R.cli("DBSIZE"))
        end)

        it("session:create", function()
            invalid(call(srv, "PUT", "/api/session", { password = PASSWORD }), "email", "Missing required param: email")
            invalid(call(srv, "PUT", "/api/session", { email = "a@b.co" }), "password", "Missing required param: password")
            invalid(call(srv, "PUT", "/api/session", { email = "nope", password = PASSWORD }),
                "email", "email must be a valid email")
            local res = call(srv, "PUT", "/api/session", { email = "a@b.co", password = false })
            invalid(res, "password", "password must be a string")
            res = call(srv, "PUT", "/api/session", { email = "a@b.co", password = ("Q"):rep(300) })
            envelope(res, 406, "CONNECTION_ACTION_PARAM_REQUIRED")
            assert.is_nil(res.body:find(("Q"):rep(300), 1, true))
            assert.are.equal("0", R.cli("DBSIZE"))
        end)

        it("message:create", function()
            local _, sid = logged_in(srv, "poster@example.com")
            invalid(call(srv, "PUT", "/api/message", {}, sid), "body", "Missing required param: body")
            invalid(call(srv, "PUT", "/api/message", { body = "" }, sid), "body", "body must be at least 1 characters")
            invalid(call(srv, "PUT", "/api/message", { body = 42 }, sid), "body", "body must be a string")
            invalid(call(srv, "PUT", "/api/message", { body = ("x"):rep(1001) }, sid),
                "body", "body must be at most 1000 characters")
            local ok = call(srv, "PUT", "/api/message", { body = ("x"):rep(1000) }, sid)
            assert.are.equal(200, ok.status, ok.body)
            assert.are.equal(1000, #H.json(ok.body).message.body)
            assert.are.equal("1", R.cli("LLEN", "messages"))
            -- Validation comes before the login check (pipeline order).
            invalid(call(srv, "PUT", "/api/message", {}), "body", "Missing required param: body")
        end)

        it("messages:list", function()
            invalid(call(srv, "GET", "/api/messages?limit=0"), "limit", "limit must be >= 1")
            invalid(call(srv, "GET", "/api/messages?limit=101"), "limit", "limit must be <= 100")
            invalid(call(srv, "GET", "/api/messages?limit=-5"), "limit", "limit must be >= 1")
            invalid(call(srv, "GET", "/api/messages?limit=2.5"), "limit", "limit must be an integer")
            invalid(call(srv, "GET", "/api/messages?page=0"), "page", "page must be >= 1")
            invalid(call(srv, "GET", "/api/messages?page=abc"), "page", "page must be an integer")
            invalid(call(srv, "GET", "/api/messages?page=1e999"), "page", "page must be an integer")
        end)

        it("a malformed or non-object JSON body is a 400 envelope on every action", function()
            local _, sid = logged_in(srv, "json@example.com")
            for _, path in ipairs { "/api/user", "/api/session", "/api/message" } do
                for _, raw in ipairs { '{"name":', "{'a':1}", "{\"a\":1}}", "not json" } do
                    local res = call(srv, "PUT", path, raw, sid)
                    envelope(res, 400, "CONNECTION_ACTION_PARAM_FORMATTING")
                    assert.is_nil(res.body:find("<html", 1, true))
                end
                for _, raw in ipairs { "[1,2]", '"abc"', "42" } do
                    envelope(call(srv, "PUT", path, raw, sid), 400, "CONNECTION_ACTION_PARAM_FORMATTING")
                end
                -- With parameters on the media type too (`; charset=utf-8`).
                envelope(call(srv, "PUT", path, "{", sid, "application/json; charset=utf-8"), 400,
                    "CONNECTION_ACTION_PARAM_FORMATTING")
            end
            -- A bad password inside malformed JSON is not echoed either.
            local res = call(srv, "PUT", "/api/session", '{"email":"a@b.co","password":"leak-me-123"', nil)
            envelope(res, 400, "CONNECTION_ACTION_PARAM_FORMATTING")
            assert.is_nil(res.body:find("leak-me-123", 1, true), res.body)
            assert.are.equal(200, call(srv, "GET", "/api/status").status)
        end)
    end)

    it("logins do not stall the server: status answers in < 50 ms while 4 logins hash", function()
        local email = "parallel@example.com"
        assert.are.equal(200, signup(srv, "Parallel", email).status)
        local req = H.build {
            method = "PUT", path = "/api/session",
            headers = { { "Content-Type", "application/json" } },
            body = cjson.encode { email = email, password = PASSWORD },
        }
        -- Baseline: how long does one login take?
        local t0 = socket.gettime()
        assert.are.equal(200, login(srv, email).status)
        local one = socket.gettime() - t0
        local conns = {}
        for i = 1, 4 do
            conns[i] = srv:connect(10)
            assert(conns[i]:send(req))
        end
        H.sleep(0.005) -- let the loop pick them up
        local s0 = socket.gettime()
        local status = srv:request "/api/status"
        local status_at = socket.gettime()
        local took = status_at - s0
        assert.are.equal(200, status.status)
        local last_login = 0
        for i = 1, 4 do
            local res = assert(H.read_response(conns[i]))
            conns[i]:close()
            assert.are.equal(200, res.status, res.body)
            last_login = math.max(last_login, socket.gettime())
        end
        assert.is_true(took < 0.05, ("status took %.1f ms (one login %.1f ms)"):format(took * 1000, one * 1000))
        -- The logins really were in flight while status answered.
        assert.is_true(last_login > status_at, "the logins finished before status was asked")
    end)

    it("the README walkthrough with curl and a cookie jar", function()
        local dir = os.tmpname()
        os.remove(dir)
        os.execute("mkdir -p " .. dir)
        finally(function() os.execute("rm -rf " .. dir) end)
        local jar = dir .. "/jar.txt"
        local base = srv:url(""):gsub("/$", "")
        --- Runs curl with the jar; returns status and body.
        local function curl(args)
            local cmd = ("curl -s -S %s -b %s -c %s -o %s/body -w '%%{http_code}' %s"):format(H.curl_args(), jar, jar,
                dir, args)
            local p = io.popen(cmd .. " 2>&1")
            local code = p:read("*a")
            p:close()
            return tonumber(code), H.read_file(dir .. "/body")
        end
        local json = "-H 'Content-Type: application/json'"

        local code, body = curl(("-X PUT %s %s/api/user -d '%s'"):format(json, base,
            cjson.encode { name = "Curl User", email = "curl@example.com", password = PASSWORD }))
        assert.are.equal(200, code, body)
        local user = H.json(body).user

        code, body = curl(("-X PUT %s %s/api/session -d '%s'"):format(json, base,
            cjson.encode { email = "curl@example.com", password = PASSWORD }))
        assert.are.equal(200, code, body)
        local sid = H.json(body).session.id
        -- The jar holds it as an HttpOnly cookie for this host.
        local jar_text = H.read_file(jar)
        local host = srv.tls and "localhost" or "127%.0%.0%.1" -- over TLS: the certificate's name
        assert.matches("#HttpOnly_" .. host .. "\t[^\n]*\t__session\t" .. sid:gsub("%-", "%%-"), jar_text)

        code, body = curl(base .. "/api/me")
        assert.are.equal(200, code, body)
        assert.are.same({ user = user }, H.json(body))

        code, body = curl(("-X PUT %s %s/api/message -d '{\"body\":\"hi from curl\"}'"):format(json, base))
        assert.are.equal(200, code, body)
        assert.are.equal(user.id, H.json(body).message.user_id)

        code, body = curl(("-X PUT %s/api/message --data-urlencode 'body=form & more'"):format(base))
        assert.are.equal(200, code, body)
        assert.are.equal("form & more", H.json(body).message.body)

        code, body = curl(base .. "/api/messages?limit=1")
        assert.are.equal(200, code, body)
        local list = H.json(body)
        assert.are.equal("form & more", list.data[1].body)
        assert.are.same({ page = 1, limit = 1, total = 2, pages = 2 }, list.pagination)

        code, body = curl(base .. "/api/hello?name=Evan")
        assert.are.equal(200, code)
        assert.are.same({ message = "Hello, Evan!" }, H.json(body))

        code, body = curl("-X DELETE " .. base .. "/api/session")
        assert.are.equal(200, code)
        assert.are.same({ success = true }, H.json(body))
        assert.is_nil(H.read_file(jar):find(sid, 1, true), "the jar still holds the session")

        code, body = curl(base .. "/api/me")
        assert.are.equal(401, code)
        assert.are.equal("CONNECTION_SESSION_NOT_FOUND", H.json(body).error.type)
    end)
end)
