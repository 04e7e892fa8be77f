-- hello — GET /api/hello: the smallest action; rate limited, and touches no Redis data but
-- its rate-limit counter.
local keryx = require "keryx"
local z = keryx.schema

return keryx.action {
    name = "hello",
    description = "Say hello",
    inputs = z.object {
        name = z.string():min(1):max(100):default("world"):describe("Who to greet"),
    },
    outputs = z.object { message = z.string():describe("The greeting") },
    web = { route = "/hello", method = "GET" },
    mcp = { tool = true },
    middleware = { keryx.middleware.rate_limit },
    run = function(params)
        return { message = "Hello, " .. params.name .. "!" }
    end,
}
