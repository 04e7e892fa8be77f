-- keryx.middleware — the built-in action middleware:
--
--   rate_limit        the seed's RateLimitMiddleware. No-op
--                     when RATE_LIMIT_ENABLED is false. Identity: `user:<id>` with the
--                     authenticated limit when the session says a user is logged in
--                     (conn.session.data.user_id), else `ip:<conn.identifier>` with the
--                     unauthenticated limit. Adds X-RateLimit-Limit/-Remaining/-Reset to the
--                     answer; over the limit raises 429 CONNECTION_RATE_LIMITED (with
--                     Retry-After). When Redis cannot answer: RATE_LIMIT_FAIL_OPEN lets the
--                     request through without headers, else 503 CONNECTION_SERVER_ERROR.
--   session_required  401 CONNECTION_SESSION_NOT_FOUND unless a user is logged in.
--
-- Use: `middleware = { keryx.middleware.rate_limit, keryx.middleware.session_required }`.
-- Each names in `errors` the error types it raises: the OpenAPI document (keryx.swagger) lists
-- their statuses on every action using it (an app's own middleware may do the same).
local core = require "keryx.core"
local errors = require "keryx.errors"
local rate_limit = require "keryx.rate_limit"
local conn_mod = require "keryx.conn"

local M = {}

local cfg = core.config.rateLimit
local check_values, append_headers, header_list = rate_limit.check_values, rate_limit.append_headers,
    conn_mod.header_list
local pcall, type, tostring, error = pcall, type, tostring, error

-- A usable user id: a number or a non-empty string (anything else is not a login).
local function user_id_of(conn)
    local s = conn.session
    local data = s and s.data
    local uid = type(data) == "table" and data.user_id or nil
    if type(uid) == "number" or (type(uid) == "string" and uid ~= "") then return uid end
    return nil
end

-- "ip:<address>" per address seen, so a returning client's identifier is not built again;
-- bounded: emptied when it holds IP_KEYS_MAX addresses.
local IP_KEYS_MAX = 4096
local ip_keys, n_ip_keys = {}, 0

local function ip_key(ip)
    if ip == nil then return "ip:nil" end -- as "ip:" .. tostring(nil): no key to cache it under
    local k = ip_keys[ip]
    if k then return k end
    if n_ip_keys >= IP_KEYS_MAX then ip_keys, n_ip_keys = {}, 0 end
    k = "ip:" .. tostring(ip)
    ip_keys[ip], n_ip_keys = k, n_ip_keys + 1
    return k
end

local function identity(conn)
    -- Reading conn.session loads it from Redis and raises while Redis is down: the client is
    -- then counted by IP (the check below meets the same outage and applies failOpen).
    local ok, uid = pcall(user_id_of, conn)
    if ok and uid ~= nil then return "user:" .. tostring(uid), true end
    return ip_key(conn.identifier), false
end

M.rate_limit = {
    name = "rate_limit",
    errors = { "CONNECTION_RATE_LIMITED" },
    before = function(_, conn)
        if not cfg.enabled then return end
        local id, authed = identity(conn)
        local allowed, limit, remaining, reset_at, retry_after = check_values(id, authed)
        if allowed == nil then
            if cfg.failOpen then return end
            error(errors.unavailable("Rate limiting unavailable", "Redis: " .. tostring(limit)), 0)
        end
        -- The header names are constants and the values digits, so what conn:set_header checks
        -- (a token name, no CR/LF/NUL) holds by construction: they go straight into the
        -- answer's header list, with no table of their own and no pattern checks.
        if allowed then
            append_headers(header_list(conn), limit, remaining, reset_at)
            return
        end
        append_headers(header_list(conn), limit, 0, reset_at, retry_after)
        -- Retry-After is already in the headers above, so the error carries no retry_after.
        error(errors.new("CONNECTION_RATE_LIMITED",
            ("Rate limit exceeded. Try again in %d seconds."):format(retry_after)), 0)
    end,
}

M.session_required = {
    name = "session_required",
    errors = { "CONNECTION_SESSION_NOT_FOUND" },
    before = function(_, conn)
        -- Not in a pcall: a Redis outage must answer 503, not pretend the user is anonymous.
        if user_id_of(conn) == nil then
            error(errors.new("CONNECTION_SESSION_NOT_FOUND", "Session not found"), 0)
        end
    end,
}

return M
