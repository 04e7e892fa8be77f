-- status — GET /api/status: process health; `healthy` is true when every check is.
local keryx = require "keryx"
local core = require "keryx.core"

local floor = math.floor
local name = core.config.process.name
local pid = core.pid()

return keryx.action {
    name = "status",
    description = "Return the status of the server",
    web = { route = "/status", method = "GET" },
    mcp = { tool = true },
    run = function()
        local redis_ok = core.redis_ready()
        return {
            name = name,
            pid = pid,
            version = core.version,
            uptime = floor(core.uptime_ms()),
            consumedMemoryMB = floor(core.rss() / 1048576 * 100 + 0.5) / 100,
            healthy = redis_ok,
            checks = { redis = redis_ok },
        }
    end,
}
