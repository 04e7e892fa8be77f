-- keryx.testing (README, "Testing your app") used against the example app exactly as an app
-- author uses it from a spec in the project directory: the real binary, a private Redis, HTTP
-- with cookies, a WebSocket subscription that sees a broadcast, `keryx run`, a flush between
-- tests, and the binary found through KERYX_BIN or PATH.
local testing = require "keryx.testing"

describe("keryx.testing against the example app", function()
    local app
    setup(function() app = testing.start() end)
    teardown(function() if app then app:stop() end end)
    before_each(function()
        app:flush()
        app:clear_cookies()
    end)

    it("answers HTTP with the JSON decoded", function()
        local res = app:get("/api/hello?name=Ada")
        assert.are.equal(200, res.status)
        assert.are.same({ message = "Hello, Ada!" }, res.json)
        assert.truthy(app:log():find("[ACTION:WEB:OK] hello", 1, true))
    end)

    it("keeps the session cookie between requests, and forgets it on clear_cookies", function()
        local res = app:put("/api/user", { name = "Ada", email = "ada@example.com", password = "correct-horse" })
        assert.are.equal(200, res.status, res.body)
        res = app:put("/api/session", { email = "ada@example.com", password = "correct-horse" })
        assert.are.equal(200, res.status, res.body)
        assert.is_string(res.json.session.id)
        res = app:get("/api/me")
        assert.are.equal(200, res.status, res.body)
        assert.are.equal("Ada", res.json.user.name)
        app:clear_cookies()
        res = app:get("/api/me")
        assert.are.equal(401, res.status)
        assert.are.equal("CONNECTION_SESSION_NOT_FOUND", res.json.error.type)
    end)

    it("starts each test with an empty Redis (flush)", function()
        assert.are.equal(0, app:redis("DBSIZE"))
        app:put("/api/user", { name = "Bob", email = "bob@example.com", password = "correct-horse" })
        assert.is_true(app:redis("DBSIZE") > 0)
        app:flush()
        assert.are.equal(0, app:redis("DBSIZE"))
        -- the user is gone: logging in fails
        local res = app:put("/api/session", { email = "bob@example.com", password = "correct-horse" })
        assert.is_true(res.status >= 400, res.body)
    end)

    it("subscribes a WebSocket to a channel and waits for the message an action broadcasts", function()
        assert.are.equal(200, app:put("/api/user", { name = "Cyd", email = "cy@example.com", password = "correct-horse" }).status)
        assert.are.equal(200, app:put("/api/session", { email = "cy@example.com", password = "correct-horse" }).status)
        local ws = app:subscribe("messages") -- carries the session cookie: messages needs a login
        local res = app:put("/api/message", { body = "hi there" })
        assert.are.equal(200, res.status, res.body)
        local got = ws:next_message("messages", 3) -- what message:create broadcast
        assert.is_table(got, "no broadcast")
        assert.are.equal("hi there", got.message.body)
        -- the same socket runs actions too
        local reply = ws:action("hello", { name = "ws" })
        assert.are.same({ message = "Hello, ws!" }, reply.response)
        ws:close(1000)
    end)

    it("refuses a subscription the channel does not allow, with the reason", function()
        local ok, err = pcall(app.subscribe, app, "messages") -- anonymous
        assert.is_false(ok)
        assert.truthy(tostring(err):find("subscribe messages refused", 1, true), err)
    end)

    it("runs an action through `keryx run` against the same Redis", function()
        local code, doc, _, stderr = app:run("user:create", { name = "Dee", email = "dee@example.com",
            password = "correct-horse" })
        assert.are.equal(0, code, stderr)
        assert.are.equal("Dee", doc.response.user.name)
        local res = app:put("/api/session", { email = "dee@example.com", password = "correct-horse" })
        assert.are.equal(200, res.status, res.body)
    end)
end)

describe("keryx.testing: finding the binary", function()
    local function find_in_child(env)
        local cmd = ("cd %s && env -u KERYX_BIN %s luajit -e %s 2>&1"):format(testing.sh_quote(os.getenv("PWD")),
            env, testing.sh_quote('package.path = "lua/?.lua;" .. package.path; ' ..
                'print(select(2, pcall(require("keryx.testing").find_bin)))'))
        local p = assert(io.popen(cmd))
        local out = p:read("*a")
        p:close()
        return out
    end

    it("takes KERYX_BIN, then keryx on PATH, and names both when neither is there", function()
        local bin = assert(os.getenv("KERYX_BIN"), "the integration suite sets KERYX_BIN")
        assert.are.equal(bin .. "\n", find_in_child("KERYX_BIN=" .. testing.sh_quote(bin)))
        local dir = bin:match("^(.*)/[^/]+$")
        assert.are.equal(dir .. "/keryx\n", find_in_child("PATH=" .. testing.sh_quote(dir .. ":/usr/bin:/bin")))
        local out = find_in_child("PATH=/usr/bin:/bin")
        assert.truthy(out:find("set KERYX_BIN, or put keryx on PATH", 1, true), out)
    end)

    it("serves a project copied outside the repository (root = its directory)", function()
        local dir = io.popen("mktemp -d"):read("*l")
        os.execute(("cp -r app config.lua %s/"):format(testing.sh_quote(dir)))
        local app = testing.start { root = dir }
        local ok, err = pcall(function()
            local res = app:get("/api/hello")
            assert.are.equal(200, res.status)
            assert.are.same({ message = "Hello, world!" }, res.json)
        end)
        app:stop()
        os.execute("rm -rf " .. testing.sh_quote(dir))
        assert(ok, err)
    end)
end)
