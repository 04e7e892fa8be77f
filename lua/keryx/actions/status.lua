-- status — GET /api/status: process health; `healthy` is true when every check is.
local keryx = require "keryx"
local core = require "keryx.core"
local z = keryx.schema

local floor = math.floor
local name = core.config.process.name
local pid = core.pid()

return keryx.action {
    name = "status",
    description = "Return the status of the server",
    outputs = z.object {
        name = z.string():describe("PROCESS_NAME"),
        pid = z.integer(),
        version = z.string(),
        uptime = z.integer():describe("ms since boot"),
        consumedMemoryMB = z.number():describe("Resident memory, MB"),
        healthy = z.boolean(),
        checks = z.object { redis = z.boolean() },
    },
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
