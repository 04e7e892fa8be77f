-- user:create (PUT /api/user, rate-limited per client) and user:me.
local keryx = require "keryx"
local users = require "lib.users"
local z = keryx.schema

return {
    keryx.action {
        name = "user:create",
        description = "Create a new user",
        inputs = z.object {
            name = z.string():min(3):max(100),
            email = z.string():email(),
            password = z.string():min(8):max(256):secret(),
        },
        outputs = z.object { user = users.schema },
        -- Besides validation (406): an e-mail already registered.
        errors = { "CONNECTION_ACTION_PARAM_VALIDATION" },
        web = { route = "/user", method = "PUT" },
        middleware = { keryx.middleware.rate_limit },
        mcp = { tool = true, signup = true },
        run = function(params)
            local user = users.create(params.name, params.email, params.password)
            if not user then
                keryx.error("CONNECTION_ACTION_PARAM_VALIDATION", "email is already registered", "email")
            end
            return { user = users.public(user) }
        end,
    },
    keryx.action {
        name = "user:me",
        description = "The logged-in user",
        outputs = z.object { user = users.schema },
        web = { route = "/me", method = "GET" },
        mcp = { tool = true },
        middleware = { keryx.middleware.session_required },
        run = function(_, conn)
            local user = users.find(conn.session.data.user_id)
            if not user then keryx.error("CONNECTION_SESSION_NOT_FOUND", "Session not found") end
            return { user = users.public(user) }
        end,
    },
}
