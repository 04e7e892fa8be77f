-- hello — GET /api/hello?name=…: the smallest action. The same action answers HTTP,
-- WebSocket, `keryx run hello --name you`, background jobs and MCP tool calls.
local keryx = require "keryx"
local z = keryx.schema

return keryx.action {
    name = "hello",
    description = "Say hello",
    inputs = z.object {
        name = z.string():min(1):max(100):default("world"):describe("Who to greet"),
    },
    web = { route = "/hello", method = "GET" },
    run = function(params)
        return { message = "Hello, " .. params.name .. "!" }
    end,
}
