-- swagger — GET /api/swagger: the OpenAPI 3.0 document generated from the action definitions.
local keryx = require "keryx"
local core = require "keryx.core"

local cached

return keryx.action {
    name = "swagger",
    description = "Return API documentation in the OpenAPI specification",
    web = { route = "/swagger", method = "GET" },
    run = function()
        if not cached then
            local cfg = core.config
            cached = keryx.swagger.document(require("keryx.pipeline").registry.list, {
                title = "keryx",
                version = core.version,
                description = "API of " .. cfg.process.name .. ", served by keryx",
                server_url = cfg.server.web.applicationUrl .. cfg.server.web.apiRoute,
                cookie_name = cfg.session.cookieName,
            })
        end
        return cached
    end,
}
