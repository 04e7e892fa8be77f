-- Black-box specs for WEB_SERVER_WORKERS (README, Workers and reload) with the real binary, a real
-- redis-server and real clients (lua-socket HTTP and WebSocket; a load process of its own):
--   * N workers answer on one port, each with its own pid (status), none the supervisor's;
--   * a killed worker is replaced within a second while the others keep answering; a replacement
--     that cannot start (the code on disk is broken) is retried with a back-off, not in a loop;
--   * SIGHUP under continuous load: zero failed requests, new pids, code changed on disk served;
--     a new worker that cannot load the app leaves the running ones serving;
--   * WebSockets get close 1001 on a reload and on SIGTERM, and can reconnect after a reload;
--     SIGTERM exits 0;
--   * cross-worker state goes through Redis: one rate-limit window, and a broadcast from a
--     request handled by one worker reaches a socket held by another;
--   * one process (WEB_SERVER_WORKERS=1): SIGHUP swaps the Lua VM in place: an open keep-alive
--     connection and an open WebSocket survive, new code is served.
local H = require "server"
local W = require "ws_client"
local socket = require "socket"
local cjson = require "cjson"

local sh_quote = H.sh_quote

local function kill(pid, sig)
    os.execute(("kill -%s %d 2>/dev/null"):format(sig, pid))
end

--- The pids of pid's child processes.
local function children(pid)
    local p = io.popen("pgrep -P " .. pid)
    local out = {}
    for line in p:lines() do out[#out + 1] = tonumber(line) end
    p:close()
    table.sort(out)
    return out
end

local function ppid_of(pid)
    local f = io.open("/proc/" .. pid .. "/stat")
    if not f then return nil end
    local stat = f:read("*l")
    f:close()
    return tonumber(stat:match("^%d+ %b() %a (%d+)"))
end

--- GET path on an open connection c (kept alive); the parsed response.
local function get_on(c, path, headers)
    assert(c:send(H.build { path = path, headers = headers }))
    return assert(H.read_response(c))
end

--- The pid that answers status on a fresh connection.
local function status_pid(srv)
    local res = H.get(srv, "/api/status")
    assert.are.equal(200, res.status, res.body)
    return H.json(res.body).pid
end

--- Fresh connections until `n` distinct pids answered (at most `tries`): the set of pids.
local function pids_seen(srv, n, tries)
    local seen, count = {}, 0
    for _ = 1, tries or 200 do
        local pid = status_pid(srv)
        if not seen[pid] then seen[pid], count = true, count + 1 end
        if count >= n then break end
    end
    return seen, count
end

local function write_file(path, text)
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
end

--- A throwaway app with one action, GET /api/version → {v = version}.
local function version_app(version)
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. sh_quote(dir .. "/actions")))
    local function set(v)
        write_file(dir .. "/actions/version.lua", ([[
local keryx = require "keryx"
return keryx.action {
    name = "version",
    web = { route = "/version", method = "GET" },
    run = function(params) if params.wait then keryx.sleep(600) end return { v = %q } end,
    inputs = keryx.schema.object { wait = keryx.schema.string():optional() },
}
]]):format(v))
    end
    set(version)
    return dir, set
end

local function version_on(c)
    local res = get_on(c, "/api/version")
    assert.are.equal(200, res.status, res.body)
    return H.json(res.body).v
end

--- Starts `procs` load processes (spec/helpers/http_load.lua) against srv for `seconds`;
--- returns a function that waits for them and gives the summed ok, fail and failure lines.
local function load(srv, path, seconds, procs)
    local outs = {}
    for i = 1, procs do
        outs[i] = os.tmpname()
        os.execute(("luajit spec/helpers/http_load.lua %d %s %s %s >/dev/null 2>&1 &"):format(srv.port,
            sh_quote(path), seconds, sh_quote(outs[i])))
    end
    return function()
        local ok, fail, errors = 0, 0, {}
        for _, out in ipairs(outs) do
            local text
            assert(H.eventually(seconds + 15, function()
                text = H.read_file(out)
                return text:find("\n", 1, true) ~= nil
            end), "load process did not finish")
            local o, f = text:match("^ok=(%d+) fail=(%d+)")
            ok, fail = ok + tonumber(o), fail + tonumber(f)
            errors[#errors + 1] = text:match("^[^\n]*\n(.*)$")
            os.remove(out)
        end
        return ok, fail, table.concat(errors)
    end
end

local function start_workers(n, env, opts)
    opts = opts or {}
    env = env or {}
    env.WEB_SERVER_WORKERS = tostring(n)
    opts.env = env
    return H.start(opts)
end

describe("WEB_SERVER_WORKERS", function()
    local srv
    after_each(function()
        H.stop(srv)
        srv = nil
    end)

    it("N workers answer on one port, each with its own pid, none of them the supervisor", function()
        srv = start_workers(3)
        local kids = children(srv.pid)
        assert.are.equal(3, #kids, srv:log())
        local seen, count = pids_seen(srv, 3)
        assert.are.equal(3, count, srv:log())
        for pid in pairs(seen) do
            assert.are_not.equal(srv.pid, pid)
            assert.are.equal(srv.pid, ppid_of(pid))
        end
    end)

    it("a killed worker is replaced within a second while the others keep answering", function()
        srv = start_workers(2)
        local before = children(srv.pid)
        assert.are.equal(2, #before)
        local victim = before[1]
        local t0 = socket.gettime()
        kill(victim, "KILL")
        -- Requests meanwhile: every one is answered (by the survivor, or the newcomer).
        local answered = 0
        local replaced_at
        while socket.gettime() - t0 < 1.5 do
            assert.are.equal(200, H.get(srv, "/api/status").status)
            answered = answered + 1
            local now = children(srv.pid)
            if not replaced_at and #now == 2 and now[1] ~= victim and now[2] ~= victim then
                replaced_at = socket.gettime()
            end
        end
        assert.truthy(replaced_at, "no replacement: " .. srv:log())
        assert.is_true(replaced_at - t0 < 1.0, ("replaced after %.2f s"):format(replaced_at - t0))
        assert.is_true(answered > 5)
        assert.truthy(srv:log():find("(pid " .. victim .. ") killed by signal 9: starting a replacement", 1, true),
            srv:log())
        -- The replacement serves.
        local seen, count = pids_seen(srv, 2)
        assert.are.equal(2, count)
        assert.is_nil(seen[victim])
    end)

    it("SIGHUP under continuous load: zero failed requests, and new workers afterwards", function()
        srv = start_workers(2, { RATE_LIMIT_ENABLED = "false" })
        local old = children(srv.pid)
        local wait = load(srv, "/api/status", 4, 4)
        H.sleep(1)
        kill(srv.pid, "HUP")
        assert.truthy(srv:wait_log("reload: 2 new worker(s) accepting", 10):find("reload: 2 new", 1, true))
        H.sleep(1)
        kill(srv.pid, "HUP") -- a second reload within the same run
        local ok, fail, errors = wait()
        io.stderr:write(("\n[workers] two SIGHUPs under load: %d requests, %d failed\n"):format(ok, fail))
        assert.are.equal(0, fail, errors)
        assert.is_true(ok > 200, "only " .. ok .. " requests")
        assert.are.equal(2, H.count(srv:log(), "new worker(s) accepting"), srv:log())
        assert.is_true(H.eventually(5, function() return #children(srv.pid) == 2 end))
        local now = children(srv.pid)
        for _, pid in ipairs(now) do
            assert.are_not.equal(old[1], pid)
            assert.are_not.equal(old[2], pid)
        end
    end)

    it("code changed on disk before SIGHUP is served after it; a broken change keeps the old code", function()
        local dir, set = version_app("one")
        srv = start_workers(2, nil, { app = dir })
        local c = srv:connect()
        assert.are.equal("one", version_on(c))
        c:close()
        set("two")
        kill(srv.pid, "HUP")
        srv:wait_log("reload: 2 new worker(s) accepting", 10)
        for _ = 1, 10 do
            c = srv:connect()
            assert.are.equal("two", version_on(c))
            c:close()
        end
        -- A syntax error: the new workers fail to boot, the running ones keep serving "two".
        write_file(dir .. "/actions/version.lua", "return {{{")
        kill(srv.pid, "HUP")
        assert.truthy(srv:wait_log("reload failed", 10):find("reload failed", 1, true), srv:log())
        assert.truthy(srv:log():find("version.lua:1", 1, true), srv:log())
        for _ = 1, 10 do
            c = srv:connect()
            assert.are.equal("two", version_on(c))
            c:close()
        end
        os.execute("rm -rf " .. sh_quote(dir))
    end)

    it("a replacement that cannot start is retried with a growing back-off, never in a tight loop", function()
        local dir = version_app("one")
        srv = start_workers(2, nil, { app = dir })
        -- A replacement loads the code on disk: broken, it dies at start-up every time.
        write_file(dir .. "/actions/version.lua", "return {{{")
        local victim = children(srv.pid)[1]
        kill(victim, "KILL")
        H.sleep(3)
        local deaths = H.count(srv:log(), "starting a replacement")
        -- the kill, then retries 0.1, 0.2, 0.4, 0.8, 1.6 s apart: at most 6 within 3 s
        assert.is_true(deaths >= 3 and deaths <= 6, deaths .. " deaths in 3 s:\n" .. srv:log())
        assert.truthy(srv:log():find("after a back-off", 1, true), srv:log())
        assert.truthy(srv:log():find("closed until one starts", 1, true), srv:log())
        -- The survivor serves every new connection: none waits on the dead worker's socket.
        for _ = 1, 20 do
            local c = srv:connect(2)
            assert.are.equal("one", version_on(c))
            c:close()
        end
        -- Fixed on disk: the next retry comes up.
        write_file(dir .. "/actions/version.lua", [[
local keryx = require "keryx"
return keryx.action { name = "version", web = { route = "/version", method = "GET" },
    run = function() return { v = "fixed" } end }
]])
        assert.is_true(H.eventually(8, function()
            local kids = children(srv.pid)
            return #kids == 2 and kids[1] ~= victim and kids[2] ~= victim and
                H.count(srv:log(), " ready (pid ") >= 3
        end), srv:log())
        -- Its new socket listens: both workers take connections again.
        local _, count = pids_seen(srv, 2)
        assert.are.equal(2, count, srv:log())
        os.execute("rm -rf " .. sh_quote(dir))
    end)

    it("SIGHUP re-reads config.lua: the new workers run with the new settings", function()
        local cfg = os.tmpname()
        write_file(cfg, 'return { process = { name = "before-reload" } }')
        srv = start_workers(2, nil, { config = cfg })
        assert.are.equal("before-reload", H.get(srv, "/api/status").headers["x-server-name"])
        write_file(cfg, 'return { process = { name = "after-reload" } }')
        kill(srv.pid, "HUP")
        srv:wait_log("reload: 2 new worker(s) accepting", 10)
        for _ = 1, 6 do
            assert.are.equal("after-reload", H.get(srv, "/api/status").headers["x-server-name"])
        end
        -- A config.lua that does not run is refused: nothing changes.
        write_file(cfg, "return {{{")
        kill(srv.pid, "HUP")
        assert.truthy(srv:wait_log("reload refused", 5):find("reload refused", 1, true), srv:log())
        assert.are.equal("after-reload", H.get(srv, "/api/status").headers["x-server-name"])
        os.remove(cfg)
    end)

    it("a WebSocket gets close 1001 on SIGHUP and can reconnect to a new worker", function()
        srv = start_workers(2)
        local ws = W.open(srv)
        local reply = ws:request { messageType = "action", action = "status", messageId = 1 }
        local old_pid = reply.response.pid
        kill(srv.pid, "HUP")
        local code = ws:read_close(10)
        assert.are.equal(1001, code)
        ws:close()
        local again = W.open(srv)
        reply = again:request { messageType = "action", action = "status", messageId = 2 }
        assert.are_not.equal(old_pid, reply.response.pid)
        again:close()
    end)

    it("one rate-limit window across workers", function()
        local LIMIT = 8
        srv = start_workers(2, { RATE_LIMIT_ENABLED = "true", RATE_LIMIT_UNAUTH_LIMIT = tostring(LIMIT) })
        -- Two kept-alive connections held by different workers (each probe spends budget).
        local conns, by_pid, spent = {}, {}, 0
        for _ = 1, LIMIT do
            local c = srv:connect()
            local res = get_on(c, "/api/hello")
            spent = spent + 1
            assert.are.equal(200, res.status, res.body)
            local status = get_on(c, "/api/status")
            local pid = H.json(status.body).pid
            if not by_pid[pid] then
                by_pid[pid] = true
                conns[#conns + 1] = c
            else
                c:close()
            end
            if #conns == 2 then break end
        end
        assert.are.equal(2, #conns, "both probes landed on one worker")
        local statuses = {}
        for i = 1, 2 * LIMIT do
            local res = get_on(conns[i % 2 + 1], "/api/hello")
            statuses[#statuses + 1] = res.status
            if res.status == 200 then spent = spent + 1 end
        end
        assert.are.equal(LIMIT, spent, cjson.encode(statuses))
        -- Both workers refuse once the shared window is spent.
        assert.are.equal(429, get_on(conns[1], "/api/hello").status)
        assert.are.equal(429, get_on(conns[2], "/api/hello").status)
        conns[1]:close()
        conns[2]:close()
    end)

    it("a broadcast from a request handled by one worker reaches a WebSocket on another", function()
        srv = start_workers(2)
        local password = "workers-Passw0rd"
        local email = "workers-" .. math.random(1, 1e9) .. "@example.com"
        local res = H.call(srv, "PUT", "/api/user", { name = "Workers User", email = email, password = password })
        assert.are.equal(200, res.status, res.body)
        res = H.call(srv, "PUT", "/api/session", { email = email, password = password })
        local sid = H.json(res.body).session.id
        local cookie = "__session=" .. sid
        local ws = W.open(srv, { Cookie = cookie })
        local reply = ws:request { messageType = "action", action = "status", messageId = 1 }
        local ws_pid = reply.response.pid
        local sub = ws:request { messageType = "subscribe", channel = "messages", messageId = 2 }
        assert.are.same({ channel = "messages" }, sub.subscribed)
        -- A kept-alive connection held by the other worker posts the message.
        local c
        for _ = 1, 100 do
            c = srv:connect()
            if H.json(get_on(c, "/api/status").body).pid ~= ws_pid then break end
            c:close()
            c = nil
        end
        assert.truthy(c, "no connection reached the other worker")
        local body = "across workers " .. math.random(1, 1e9)
        assert(c:send(H.build { method = "PUT", path = "/api/message",
            headers = { { "Content-Type", "application/json" }, { "Cookie", cookie } },
            body = cjson.encode { body = body } }))
        res = assert(H.read_response(c))
        assert.are.equal(200, res.status, res.body)
        c:close()
        local b = ws:broadcast("messages", 5, function(m) return m.sender ~= "presence" end)
        assert.is_table(b, "no broadcast arrived")
        assert.are.equal(body, b.message.message.message.body)
        ws:close()
    end)

    it("start-up: more than 64 workers, or an app that does not load, exits 1 with the reason", function()
        local code, out = H.start_fail({ WEB_SERVER_WORKERS = "65" })
        assert.are.equal(1, code, out)
        assert.truthy(out:find("WEB_SERVER_WORKERS: at most 64", 1, true), out)
        local dir = version_app("one")
        write_file(dir .. "/actions/version.lua", "return {{{")
        code, out = H.start_fail({ WEB_SERVER_WORKERS = "2", REDIS_URL = H.redis().url }, { "--app", dir })
        assert.are.equal(1, code, out)
        assert.truthy(out:find("version.lua:1", 1, true), out)
        assert.truthy(out:find("during start-up: stopping", 1, true), out)
        os.execute("rm -rf " .. sh_quote(dir))
    end)

    it("SIGTERM drains: WebSockets get 1001, in-flight HTTP finishes, the supervisor exits 0", function()
        local log, code_file = os.tmpname(), os.tmpname()
        os.remove(code_file)
        local env = ("env WEB_SERVER_PORT=0 WEB_SERVER_HOST=127.0.0.1 NODE_ENV=test LOG_COLORIZE=false " ..
            "WEB_SERVER_WORKERS=2 REDIS_URL=%s"):format(sh_quote(H.redis().url))
        os.execute(("( %s %s start > %s 2>&1; echo $? > %s ) >/dev/null 2>&1 &"):format(env, sh_quote(H.BIN),
            sh_quote(log), sh_quote(code_file)))
        local text
        assert(H.eventually(10, function()
            text = H.read_file(log)
            return text:find("started server @", 1, true) ~= nil
        end), text)
        local port = tonumber(text:match("started server @ http://[^:]+:(%d+)"))
        local sup = tonumber(text:match("supervisor pid (%d+)"))
        local ws = assert(W.connect(port, "/"))
        -- An in-flight request: an action sleeping on the server while SIGTERM arrives would need
        -- an app of its own; a request sent just before the signal must still be answered.
        local c = socket.tcp()
        c:settimeout(5)
        assert(c:connect("127.0.0.1", port))
        kill(sup, "TERM")
        local code = ws:read_close(10)
        assert.are.equal(1001, code)
        ws:close()
        c:close()
        assert(H.eventually(15, function() return H.read_file(code_file) ~= "" end), H.read_file(log))
        assert.are.equal("0", (H.read_file(code_file):gsub("%s", "")), H.read_file(log))
        assert.are.same({}, children(sup))
        local text_end = H.read_file(log)
        assert.falsy(text_end:find("Sanitizer", 1, true) or text_end:find("runtime error:", 1, true), text_end)
        os.remove(log)
        os.remove(code_file)
    end)
end)

describe("one process (WEB_SERVER_WORKERS=1): SIGHUP", function()
    local srv, dir
    after_each(function()
        H.stop(srv)
        srv = nil
        if dir then os.execute("rm -rf " .. sh_quote(dir)) end
    end)

    local function ws_version(ws, mid)
        local reply, raw = ws:request { messageType = "action", action = "version", messageId = mid }
        assert.is_table(reply.response, raw)
        return reply.response.v
    end

    it("swaps the VM in place: a keep-alive connection and a WebSocket survive, new code is served", function()
        local set
        dir, set = version_app("one")
        srv = H.start { app = dir }
        local pid = status_pid(srv)
        assert.are.equal(srv.pid, pid)
        local c = srv:connect()
        assert.are.equal("one", version_on(c))
        local ws = W.open(srv)
        assert.are.equal("one", ws_version(ws, 1))
        set("two")
        kill(srv.pid, "HUP")
        assert.truthy(srv:wait_log("reload: new requests run", 5):find("reload: new requests run", 1, true),
            srv:log())
        -- The same kept-alive connection, the next request: the new code.
        assert.are.equal("two", version_on(c))
        -- The open socket lives on (it keeps the VM that opened it); a new one runs the new code.
        assert.are.equal("one", ws_version(ws, 2))
        local ws2 = W.open(srv)
        assert.are.equal("two", ws_version(ws2, 3))
        ws2:close()
        -- The previous VM is closed once its last socket is gone.
        ws:close()
        assert.truthy(srv:wait_log("closed the Lua VM replaced by the reload", 5)
            :find("closed the Lua VM", 1, true), srv:log())
        assert.are.equal(srv.pid, status_pid(srv))
        assert.are.equal("two", version_on(c))
        c:close()
    end)

    it("a request in flight during SIGHUP finishes on the old VM, which is closed after it", function()
        local set
        dir, set = version_app("old")
        srv = H.start { app = dir }
        local c = srv:connect()
        assert(c:send(H.build { path = "/api/version?wait=1" }))
        H.sleep(0.2) -- the action is parked in keryx.sleep
        set("new")
        kill(srv.pid, "HUP")
        srv:wait_log("reload: new requests run", 5)
        assert.are.equal("new", version_on(srv:connect()))
        assert.is_nil(srv:log():find("closed the Lua VM", 1, true), "closed while a task ran")
        local res = assert(H.read_response(c))
        assert.are.equal(200, res.status, res.body)
        assert.are.equal("old", H.json(res.body).v)
        assert.truthy(srv:wait_log("closed the Lua VM replaced", 3):find("closed the Lua VM", 1, true), srv:log())
        assert.are.equal("new", version_on(c))
        c:close()
    end)

    it("a file that fails to load keeps the running code and logs file and line", function()
        dir = version_app("one")
        srv = H.start { app = dir }
        local c = srv:connect()
        assert.are.equal("one", version_on(c))
        write_file(dir .. "/actions/version.lua", "local x = \n return {{{")
        kill(srv.pid, "HUP")
        local log = srv:wait_log("reload failed", 5)
        assert.truthy(log:find("reload failed", 1, true), log)
        assert.truthy(log:find("version.lua:2", 1, true), log)
        assert.are.equal("one", version_on(c))
        c:close()
        assert.are.equal("one", version_on(srv:connect()))
    end)

    it("background tasks: the old VM's processors end, the new VM's take over, jobs keep running", function()
        local R = H.redis()
        R.cli("DEL", "test:ran", "resque:queue:default")
        local env = { TASKS_ENABLED = "true", TASK_QUEUES = "default", REDIS_URL = R.url }
        srv = H.start { app = "spec/fixtures/app", env = env }
        local function enqueue(tag)
            local code, out, err = H.cli({ "--app", "spec/fixtures/app", "enqueue", "task:record", "--tag", tag }, env)
            assert.are.equal(0, code, out .. err)
        end
        local function ran(tag)
            return R.cli("LRANGE", "test:ran", "0", "-1"):find('"tag":"' .. tag .. '"', 1, true) ~= nil
        end
        enqueue("before-reload")
        assert.is_true(H.eventually(5, function() return ran("before-reload") end), srv:log())
        kill(srv.pid, "HUP")
        assert.is_true(H.eventually(5, function()
            return H.count(srv:log(), "processor(s) on queue(s)") == 2
        end), srv:log())
        -- The old VM had no socket: once its processors ended it is closed.
        assert.truthy(srv:wait_log("closed the Lua VM replaced", 5):find("closed the Lua VM", 1, true), srv:log())
        enqueue("after-reload")
        assert.is_true(H.eventually(5, function() return ran("after-reload") end), srv:log())
    end)

    it("--watch: an edit under the app reloads it in place without a signal; a broken edit keeps the code", function()
        local set
        dir, set = version_app("one")
        srv = H.start { app = dir, args = { "start", "--watch" } }
        assert.truthy(srv:log():find("watching", 1, true), srv:log())
        local c = srv:connect()
        assert.are.equal("one", version_on(c))
        set("two")
        assert.is_true(H.eventually(3, function() return version_on(c) == "two" end), srv:log())
        -- A new file in a new directory is seen too (lib/ created after the start).
        assert(os.execute("mkdir -p " .. sh_quote(dir .. "/lib")))
        write_file(dir .. "/lib/helper.lua", "return { v = 'three' }")
        set("x")
        write_file(dir .. "/actions/version.lua", [[
local keryx = require "keryx"
return keryx.action { name = "version", web = { route = "/version", method = "GET" },
    run = function() return { v = require("lib.helper").v } end }
]])
        assert.is_true(H.eventually(3, function() return version_on(c) == "three" end), srv:log())
        write_file(dir .. "/lib/helper.lua", "return { v = 'four' }")
        assert.is_true(H.eventually(3, function() return version_on(c) == "four" end), srv:log())
        write_file(dir .. "/actions/version.lua", "return {{{")
        assert.truthy(srv:wait_log("reload failed", 3):find("version.lua:1", 1, true), srv:log())
        assert.are.equal("four", version_on(c))
        c:close()
    end)

    it("--watch is refused with workers and outside start", function()
        local code, out = H.start_fail({ WEB_SERVER_WORKERS = "2" }, { "--watch" })
        assert.are.equal(1, code, out)
        assert.truthy(out:find("--watch goes with `start` and one process", 1, true), out)
    end)

    it("under continuous load: zero failed requests", function()
        srv = H.start { env = { RATE_LIMIT_ENABLED = "false" } }
        local wait = load(srv, "/api/status", 3, 3)
        H.sleep(1)
        kill(srv.pid, "HUP")
        H.sleep(1)
        kill(srv.pid, "HUP")
        local ok, fail, errors = wait()
        io.stderr:write(("\n[one process] two SIGHUPs under load: %d requests, %d failed\n"):format(ok, fail))
        assert.are.equal(0, fail, errors)
        assert.are.equal(2, H.count(srv:log(), "reload: new requests run"), srv:log())
    end)
end)
