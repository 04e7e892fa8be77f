-- keryx.conn + keryx.session against the fake core's in-memory Redis.
local fake = require "fake_core"
local conn_mod = require "keryx.conn"
local json = require "keryx.json"
local errors = require "keryx.errors"

local function web(session_id)
    return conn_mod.new { type = "web", identifier = "127.0.0.1", session_id = session_id }
end

local function store(id, data)
    fake.store["session:" .. id] = json.encode { id = id, createdAt = 1, data = data }
end

describe("sessions", function()
    before_each(function() fake.reset() end)

    it("an anonymous request has no session and touches no Redis key", function()
        local c = web(nil)
        assert.is_nil(c.session)
        assert.are.equal(0, #fake.redis_log)
        assert.is_nil(rawget(c, "_session_op"))
    end)

    it("loads the record named by the cookie and refreshes its TTL", function()
        local id = fake.random_id()
        store(id, { user_id = 7 })
        local c = web(id)
        assert.are.equal(7, c.session.data.user_id)
        assert.are.equal(fake.config.session.ttl, fake.ttl["session:" .. id])
        c.session.data.x = 1 -- loaded once, cached on the connection
        assert.are.equal(1, c.session.data.x)
        assert.are.same({ { "GETEX", "session:" .. id, "EX", fake.config.session.ttl } }, fake.redis_log)
    end)

    it("each load of the same stored record gets tables of its own", function()
        local id = fake.random_id()
        store(id, { user_id = 7, name = "ann", gone = json.null })
        local first = web(id).session
        first.data.user_id, first.data.extra, first.extra = 8, true, true -- not saved
        for _ = 1, 3 do
            local rec = web(id).session -- the same text again: from the decoded-record memo
            assert.are_not.equal(first, rec)
            assert.are_not.equal(first.data, rec.data)
            assert.are.same({ id = id, createdAt = 1, data = { user_id = 7, name = "ann", gone = json.null } }, rec)
            rec.data.user_id = 9
        end
        -- nested data is not kept, and still loads whole, unshared
        store(id, { user_id = 7, prefs = { theme = "dark" } })
        local a, b = web(id).session, web(id).session
        assert.are.same({ theme = "dark" }, b.data.prefs)
        a.data.prefs.theme = "light"
        assert.are.equal("dark", web(id).session.data.prefs.theme)
        assert.are_not.equal(a.data.prefs, b.data.prefs)
    end)

    it("the memo's bound: 1,100 sessions each load their own record, the first again after", function()
        local ids = {}
        for i = 1, 1100 do
            ids[i] = fake.random_id()
            store(ids[i], { user_id = i })
            assert.are.equal(i, web(ids[i]).session.data.user_id)
        end
        for _, i in ipairs { 1, 2, 1024, 1025, 1100 } do
            assert.are.equal(i, web(ids[i]).session.data.user_id)
            assert.are.equal(ids[i], web(ids[i]).session.id)
        end
        -- a changed record is read as changed (the memo is keyed by the stored text)
        store(ids[5], { user_id = 55 })
        assert.are.equal(55, web(ids[5]).session.data.user_id)
    end)

    it("never adopts a cookie that names no session (no fixation), and sets no cookie", function()
        local c = web(fake.random_id())
        assert.is_nil(c.session)
        assert.is_nil(rawget(c, "_session_op"))
        for _ in pairs(fake.store) do error("a key was written") end
    end)

    it("ignores a stored record whose id does not match its key", function()
        local id, other = fake.random_id(), fake.random_id()
        fake.store["session:" .. id] = json.encode { id = other, createdAt = 1, data = {} }
        assert.is_nil(web(id).session)
        fake.store["session:" .. id] = "not json"
        assert.is_nil(web(id).session)
    end)

    it("update_session creates a session with a fresh id and sets the cookie once", function()
        local supplied = fake.random_id()
        local c = web(supplied) -- a cookie naming nothing: must not become the id
        c:update_session { theme = "dark" }
        local id = c.session.id
        assert.are_not.equal(supplied, id)
        assert.is_true(fake.valid_id(id))
        assert.are.equal("dark", json.decode(fake.store["session:" .. id]).data.theme)
        assert.are.same({ set = id }, rawget(c, "_session_op"))
        rawset(c, "_session_op", nil)
        c:update_session { theme = "light" }
        assert.is_nil(rawget(c, "_session_op")) -- existing session: no new cookie
        assert.are.equal("light", json.decode(fake.store["session:" .. id]).data.theme)
    end)

    it("update_session removes keys set to json.null", function()
        local c = web(nil)
        c:update_session { a = 1, b = 2 }
        c:update_session { a = json.null }
        assert.are.same({ b = 2 }, json.decode(fake.store["session:" .. c.session.id]).data)
    end)

    it("regenerate_session moves the data to a new id and deletes the old key", function()
        local id = fake.random_id()
        store(id, { user_id = 7 })
        local c = web(id)
        local rec = c:regenerate_session()
        assert.are_not.equal(id, rec.id)
        assert.is_nil(fake.store["session:" .. id])
        assert.are.equal(7, json.decode(fake.store["session:" .. rec.id]).data.user_id)
        assert.are.same({ set = rec.id }, rawget(c, "_session_op"))
    end)

    it("destroy_session deletes the record and expires the cookie", function()
        local id = fake.random_id()
        store(id, { user_id = 7 })
        local c = web(id)
        assert.is_true(c:destroy_session())
        assert.is_nil(fake.store["session:" .. id])
        assert.is_nil(c.session)
        assert.are.same({ expire = true }, rawget(c, "_session_op"))
    end)

    it("answers 503 CONNECTION_SERVER_ERROR with Retry-After when Redis is unreachable", function()
        fake.redis_up = false
        local c = web(fake.random_id())
        local ok, err = pcall(function() return c.session end)
        assert.is_false(ok)
        assert.is_true(errors.is(err))
        assert.are.equal("CONNECTION_SERVER_ERROR", err.type)
        assert.are.equal(503, err.status)
        assert.are.equal(1, err.retry_after)
    end)

    -- The cookie's flags are C's (src/session.c): spec/integration/sessions_spec.lua checks them.
    it("a non-web connection never gets a cookie operation", function()
        for _, kind in ipairs { "cli", "websocket" } do
            local c = conn_mod.new { type = kind, identifier = "x" }
            c:update_session { a = 1 }
            c:destroy_session()
            assert.is_nil(rawget(c, "_session_op"))
        end
    end)

    it("set_header refuses header injection", function()
        local c = web(nil)
        assert.has_error(function() c:set_header("X-A", "a\r\nSet-Cookie: x=y") end)
        assert.has_error(function() c:set_header("Bad Name", "v") end)
        assert.has_error(function() c:set_content_type("text/html\nX: y") end)
        assert.has_error(function() c:set_content_type("") end)
        c:set_header("X-A", "ok")
        assert.are.same({ "X-A", "ok" }, rawget(c, "_headers"))
    end)
end)
