-- {{name}} — {{method}} /api{{route}}
local keryx = require "keryx"
local z = keryx.schema

return keryx.action {
    name = "{{name}}",
    description = "{{name}}", -- shown by `keryx actions`, in Swagger and to MCP clients: say what it does
    inputs = z.object {
        -- id = z.integer():min(1):describe("…"),
    },
    web = { route = "{{route}}", method = "{{method}}" },
    run = function(params, conn) -- luacheck: ignore 212
        return {}
    end,
}
