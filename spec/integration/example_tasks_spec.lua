-- The example app's background jobs (app/actions/jobs.lua, README "Background tasks") on the
-- default app and a private redis-server: the users:welcome fan-out reaches every user and
-- reports its progress, and messages:prune (the hourly recurring task) drops old messages when
-- run by hand with `keryx enqueue`.
local H = require "server"
local PR = require "private_redis"
local cjson = require "cjson"

local PASSWORD = "s3cret-Passw0rd"

describe("example app jobs", function()
    local R, srv

    local function call(method, path, body, sid)
        return H.call(srv, method, path, body, sid and "__session=" .. sid)
    end

    setup(function()
        R = PR.new()
        srv = H.start { env = { REDIS_URL = R.url, TASKS_ENABLED = "true", TASK_PROCESSORS = "2" } }
    end)
    teardown(function()
        H.stop(srv)
        R:destroy()
    end)

    it("welcomes every user through a fan-out and reports progress", function()
        local sid
        for i = 1, 5 do
            local email = "u" .. i .. "@example.com"
            assert.are.equal(200, call("PUT", "/api/user", { name = "User " .. i, email = email, password = PASSWORD }).status)
            sid = H.json(call("PUT", "/api/session", { email = email, password = PASSWORD }).body).session.id
        end
        assert.are.equal(401, call("POST", "/api/users/welcome", {}).status)
        local res = call("POST", "/api/users/welcome", {}, sid)
        assert.are.equal(200, res.status, res.body)
        local fan = H.json(res.body)
        assert.are.equal(5, fan.enqueued)
        local st
        assert.is_true(H.eventually(8, function()
            st = H.json(call("GET", "/api/users/welcome/" .. fan.fan_out_id, nil, sid).body)
            return st.completed == 5
        end), cjson.encode(st))
        assert.are.equal(0, st.failed)
        for i = 1, 5 do assert.truthy(tonumber(R:cli("HGET", "user:" .. i, "welcomed_at"))) end
    end)

    it("prunes messages older than max_age_ms (keryx enqueue messages:prune)", function()
        local now = os.time() * 1000
        R:cli("LPUSH", "messages", cjson.encode { id = 1, body = "old", created_at = now - 10 * 86400 * 1000 })
        R:cli("LPUSH", "messages", cjson.encode { id = 2, body = "new", created_at = now })
        local code, out, err = H.cli({ "enqueue", "messages:prune", "--max_age_ms", tostring(86400 * 1000) },
            { REDIS_URL = R.url })
        assert.are.equal(0, code, err)
        assert.are.equal('{"enqueued":true}\n', out)
        assert.is_true(H.eventually(5, function() return R:cli("LLEN", "messages") == "1" end), srv:log())
        assert.are.equal("new", cjson.decode(R:cli("LINDEX", "messages", "0")).body)
        assert.truthy(srv:wait_log("pruned 1 old message(s)"):find("pruned 1 old message(s)", 1, true))
    end)
end)
