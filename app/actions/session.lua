-- session:create (PUT /api/session: log in) and session:destroy (DELETE /api/session).
local keryx = require "keryx"
local users = require "lib.users"
local z = keryx.schema

-- Verified when the email is unknown, so both failures take the same time (no user
-- enumeration by timing).
local DUMMY_HASH

return {
    keryx.action {
        name = "session:create",
        description = "Log in: start a session for a user",
        inputs = z.object {
            email = z.string():email(),
            password = z.string():min(1):max(256):secret(),
        },
        web = { route = "/session", method = "PUT" },
        middleware = { keryx.middleware.rate_limit },
        mcp = { tool = true, isLoginAction = true },
        run = function(params, conn)
            local user = users.find_by_email(params.email)
            if not user then
                DUMMY_HASH = DUMMY_HASH or keryx.crypto.hash_password("not a real password")
                keryx.crypto.verify_password(params.password, DUMMY_HASH)
                keryx.error("CONNECTION_SESSION_NOT_FOUND", "Invalid email or password")
            end
            if not keryx.crypto.verify_password(params.password, user.password_hash) then
                keryx.error("CONNECTION_SESSION_NOT_FOUND", "Invalid email or password")
            end
            -- A new id first, then the login: the pre-login id never names a logged-in session.
            conn:regenerate_session()
            local session = conn:update_session { user_id = tonumber(user.id) }
            return { user = users.public(user), session = { id = session.id } }
        end,
    },
    keryx.action {
        name = "session:destroy",
        description = "Log out: end the session",
        web = { route = "/session", method = "DELETE" },
        run = function(_, conn)
            conn:destroy_session()
            return { success = true }
        end,
    },
}
