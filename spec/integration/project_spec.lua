-- An app in its own directory, as a new user gets one (README "Your own project"): `make install`
-- into a staging prefix (the binary finds its Lua without KERYX_HOME), `keryx new`, `keryx
-- generate`, `keryx start` inside the project and `keryx --root DIR start` from elsewhere (the
-- app, config.lua and assets/ resolve against the project), no config.lua at all, a clear
-- error outside a project, and the skeleton's own spec passing with busted.
local H = require "server"

local BIN = H.BIN:sub(1, 1) == "/" and H.BIN or (H.ROOT .. "/" .. H.BIN)

local function sh(cmd)
    local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
    local out = p:read("*a")
    p:close()
    local rc = tonumber(out:match("rc=(%d+)\n?$"))
    return rc, (out:gsub("rc=%d+\n?$", ""))
end

local function tmpdir()
    local d = os.tmpname()
    os.remove(d)
    assert(os.execute("mkdir -p " .. H.sh_quote(d)))
    return d
end

local function file(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
end

describe("a project of its own", function()
    local stage, prefix, keryx, work

    setup(function()
        stage = tmpdir()
        prefix = "/usr/local"
        -- As a packager would: DESTDIR stages PREFIX; the installed binary is then run from there.
        local rc, out = sh(("cd %s && make -s install DESTDIR=%s PREFIX=%s BIN=%s"):format(H.sh_quote(H.ROOT),
            H.sh_quote(stage), prefix, H.sh_quote(BIN)))
        assert(rc == 0, out)
        keryx = stage .. prefix .. "/bin/keryx"
        work = tmpdir()
    end)

    teardown(function()
        os.execute("rm -rf " .. H.sh_quote(stage) .. " " .. H.sh_quote(work))
    end)

    local function run(args, cwd, env)
        local e = "env -u KERYX_HOME NODE_ENV=test LOG_COLORIZE=false"
        for k, v in pairs(env or {}) do e = e .. " " .. H.sh_quote(k .. "=" .. v) end
        return sh(("cd %s && %s %s %s"):format(H.sh_quote(cwd), e, H.sh_quote(keryx), args))
    end

    it("installs the binary and the framework's Lua where the binary finds them", function()
        assert.truthy(file(stage .. prefix .. "/share/keryx/lua/keryx/boot.lua"))
        assert.truthy(file(stage .. prefix .. "/share/keryx/lua/redis/task_step.lua"))
        assert.truthy(file(stage .. prefix .. "/share/keryx/lua/keryx/templates/new/config.lua"))
        local rc, out = run("--version", work)
        assert.are.equal(0, rc, out)
    end)

    it("keryx new writes a runnable project and refuses to overwrite one", function()
        local rc, out = run("new myapp", work)
        assert.are.equal(0, rc, out)
        assert.truthy(out:find("created myapp", 1, true), out)
        for _, f in ipairs { "config.lua", "app/actions/hello.lua", "app/channels/room.lua", "assets/index.html",
            "spec/hello_spec.lua", ".busted" } do
            assert.truthy(file(work .. "/myapp/" .. f), f)
        end
        assert.truthy(file(work .. "/myapp/config.lua"):find('name = "myapp"', 1, true))
        -- .busted points at the installed Lua, so the project's specs find keryx.testing.
        assert.truthy(file(work .. "/myapp/.busted"):find(prefix .. "/share/keryx/lua/?.lua", 1, true))
        rc, out = run("new myapp", work)
        assert.are.equal(1, rc)
        assert.truthy(out:find("already exists and is not empty", 1, true), out)
    end)

    it("keryx generate adds an action and a channel from templates, never overwriting", function()
        local dir = work .. "/gen"
        assert.are.equal(0, (run("new gen", work)))
        local rc, out = run("generate action user:show --route /users/:id", dir)
        assert.are.equal(0, rc, out)
        assert.are.equal("created app/actions/user_show.lua\n", out)
        local text = file(dir .. "/app/actions/user_show.lua")
        assert.truthy(text:find('route = "/users/:id", method = "GET"', 1, true), text)
        rc, out = run("g channel news", dir)
        assert.are.equal(0, rc, out)
        assert.truthy(file(dir .. "/app/channels/news.lua"):find('name = "news"', 1, true))
        rc, out = run("generate action user:show", dir)
        assert.are.equal(1, rc)
        assert.truthy(out:find("already exists", 1, true), out)
        rc, out = run("generate action 'bad name'", dir)
        assert.are.equal(1, rc)
        assert.truthy(out:find("invalid name", 1, true), out)
        rc = run("generate widget x", dir)
        assert.are.equal(1, rc)
        -- The generated action boots: the project still lists its actions.
        rc, out = run("actions", dir)
        assert.are.equal(0, rc, out)
        assert.truthy(out:find("user:show", 1, true), out)
    end)

    it("serves the project from inside it and with --root from elsewhere, config.lua optional", function()
        local dir = work .. "/served"
        assert.are.equal(0, (run("new served", work)))
        for _, how in ipairs { { cwd = dir, args = { "start" } }, { cwd = "/", args = { "--root", dir, "start" } } } do
            local srv = H.start { cwd = how.cwd, args = how.args, bin = keryx }
            local res = H.get(srv, "/api/hello?name=Ada")
            local page = H.get(srv, "/")
            srv:stop()
            assert.are.equal(200, res.status, res.body)
            assert.are.same({ message = "Hello, Ada!" }, H.json(res.body))
            assert.are.equal(200, page.status)
            assert.truthy(page.body:find("<h1>served</h1>", 1, true), page.body)
        end
        os.remove(dir .. "/config.lua")
        local srv = H.start { cwd = "/", args = { "--root", dir, "start" }, bin = keryx }
        local res = H.get(srv, "/api/hello")
        srv:stop()
        assert.are.equal(200, res.status)
    end)

    it("says how to start a project when run outside one", function()
        local empty = tmpdir()
        local rc, out = run("start", empty)
        os.execute("rm -rf " .. H.sh_quote(empty))
        assert.are.equal(1, rc)
        assert.truthy(out:find("keryx new DIR", 1, true), out)
        rc, out = run("--root /nonexistent/x start", work)
        assert.are.equal(1, rc)
        assert.truthy(out:find("--root", 1, true), out)
    end)

    it("the skeleton's own spec passes (busted in the project, keryx.testing, the installed binary)", function()
        local dir = work .. "/tested"
        assert.are.equal(0, (run("new tested", work)))
        local rc, out = sh(("cd %s && env -u KERYX_HOME -u LUA_PATH KERYX_BIN=%s luajit /usr/bin/busted -o TAP")
            :format(H.sh_quote(dir), H.sh_quote(keryx)))
        assert.are.equal(0, rc, out)
        assert.truthy(out:find("ok 2 ", 1, true), out)
    end)
end)
