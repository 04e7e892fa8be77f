-- A redis-server of a spec's own (not the shared one of server.lua's H.redis()), on a free port,
-- without persistence, which the spec may stop, kill and start again on the same port to test
-- keryx through a Redis outage:
--
--   local PR = require "private_redis"
--   local R = PR.new()      -- started; R.port, R.url, R.dir
--   PR.new{ aof = true }    -- with an append-only file fsynced on every write: what it
--                           -- acknowledged survives a kill and restart
--   R:cli("SET", "k", "v")  -- redis-cli output, trailing newline removed
--   R:stop()                -- SHUTDOWN NOSAVE, waits until PING fails
--   R:kill()                -- SIGKILL (a crash), waits until PING fails
--   R:start()               -- the same port again, empty; waits for PONG
--   R:debug_sleep(1.5)      -- DEBUG SLEEP in the background: Redis answers nothing meanwhile
--   R:destroy()             -- SHUTDOWN NOSAVE without waiting, removes its directory
--
-- Daemonized (its pid in <dir>/redis.pid): a spec must destroy() it in after_each/finally.
local H = require "server"

local M = {}

local Private = {}
Private.__index = Private

--- A new private redis-server, already started (fails the test when it does not answer PONG
--- within 5 s).
function M.new(opts)
    local self = setmetatable({ port = H.free_port(), aof = opts and opts.aof }, Private)
    self.dir = os.tmpname()
    os.remove(self.dir)
    os.execute("mkdir -p " .. H.sh_quote(self.dir))
    self.url = "redis://127.0.0.1:" .. self.port .. "/0"
    self:start()
    return self
end

--- Runs redis-cli against this server; returns its output (stderr included) without the
--- trailing newline.
function Private:cli(...)
    local args = { "redis-cli", "-p", tostring(self.port) }
    for _, a in ipairs({ ... }) do args[#args + 1] = H.sh_quote(a) end
    local h = io.popen(table.concat(args, " ") .. " 2>&1")
    local out = h:read("*a")
    h:close()
    return (out:gsub("\n$", ""))
end

--- Starts redis-server on this port (again) and waits up to 5 s for PONG.
function Private:start()
    local dir = H.sh_quote(self.dir)
    local aof = self.aof and "--appendonly yes --appendfsync always" or "--appendonly no"
    os.execute(("redis-server --port %d --bind 127.0.0.1 --save '' %s --dir %s " ..
        "--enable-debug-command local --daemonize yes --pidfile %s/redis.pid --logfile %s/redis.log")
        :format(self.port, aof, dir, dir, dir))
    assert(H.eventually(5, function() return self:cli("PING") == "PONG" end), "private redis did not start")
end

--- Shuts the server down (SHUTDOWN NOSAVE) and waits up to 5 s until it no longer answers.
function Private:stop()
    self:cli("SHUTDOWN", "NOSAVE")
    assert(H.eventually(5, function() return self:cli("PING") ~= "PONG" end), "private redis did not stop")
end

--- Kills the server with SIGKILL (no shutdown of its own) and waits up to 5 s until it no
--- longer answers.
function Private:kill()
    local pid = H.read_file(self.dir .. "/redis.pid"):match("%d+")
    assert(pid, "no redis pid")
    os.execute("kill -KILL " .. pid)
    assert(H.eventually(5, function() return self:cli("PING") ~= "PONG" end), "private redis did not die")
    os.remove(self.dir .. "/redis.pid")
end

--- Makes the server busy for `seconds` (DEBUG SLEEP, sent in the background: returns at once).
function Private:debug_sleep(seconds)
    os.execute(("redis-cli -p %d DEBUG SLEEP %s >/dev/null 2>&1 &"):format(self.port, tostring(seconds)))
end

--- Shuts the server down (without waiting) and removes its directory.
function Private:destroy()
    self:cli("SHUTDOWN", "NOSAVE")
    os.execute("rm -rf " .. H.sh_quote(self.dir))
end

return M
