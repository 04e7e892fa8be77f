-- session:create (PUT /api/session: log in) and session:destroy (DELETE /api/session).
local keryx = require "keryx"
local users = require "lib.users"
local z = keryx.schema

-- Verified when the email is unknown, so both failures take the same time (no user
-- enumeration by timing).
local DUMMY_HASH

-- Login attempts per account, on top of the per-IP limit of the middleware: an attacker
-- rotating addresses still gets LOGIN_LIMIT guesses per window at one account. Counted
-- before the password is checked, so a burst of parallel guesses cannot all slip in ahead of
-- the count; successful attempts count too (the rate-limit window has no refund).
local LOGIN_LIMIT, LOGIN_WINDOW_MS, LOGIN_PREFIX = 5, 15 * 60 * 1000, "login"

-- Unknown e-mails are counted like known ones, so the answer says nothing about the account.
local function check_login_attempts(email)
    if not keryx.config.rateLimit.enabled then return end
    -- Braces would move the Redis hash tag; e-mails never contain parentheses (the schema
    -- refuses them), so this mapping cannot merge two accounts' counters.
    local id = users.normalize_email(email):gsub("{", "("):gsub("}", ")")
    local info = keryx.redis.ok(keryx.rate_limit.check(id, false,
        { limit = LOGIN_LIMIT, window_ms = LOGIN_WINDOW_MS, key_prefix = LOGIN_PREFIX }))
    if not info.limited then return end
    local err = keryx.errors.new("CONNECTION_RATE_LIMITED",
        ("Too many login attempts. Try again in %d seconds."):format(info.retry_after))
    err.retry_after = info.retry_after
    error(err, 0)
end

return {
    keryx.action {
        name = "session:create",
        description = "Log in: start a session for a user",
        inputs = z.object {
            email = z.string():email(),
            password = z.string():min(1):max(256):secret(),
        },
        outputs = z.object { user = users.schema, session = z.object { id = z.string() } },
        -- A wrong e-mail or password (401); too many attempts at one account (429).
        errors = { "CONNECTION_SESSION_NOT_FOUND", "CONNECTION_RATE_LIMITED" },
        web = { route = "/session", method = "PUT" },
        middleware = { keryx.middleware.rate_limit },
        mcp = { tool = true, login = true },
        run = function(params, conn)
            check_login_attempts(params.email)
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
        outputs = z.object { success = z.boolean() },
        web = { route = "/session", method = "DELETE" },
        mcp = { tool = true },
        run = function(_, conn)
            conn:destroy_session()
            return { success = true }
        end,
    },
}
