-- keryx.rate_limit — the seed's checkRateLimit(): the previous window weighted by what is left
-- of it, plus the current one; refused requests are not counted.
--
--   check(identifier, is_authenticated, opts)
--       opts: limit (default RATE_LIMIT_AUTH_LIMIT / RATE_LIMIT_UNAUTH_LIMIT per
--       is_authenticated), window_ms (RATE_LIMIT_WINDOW_MS), key_prefix (RATE_LIMIT_KEY_PREFIX)
--       → { limit, remaining, reset_at (unix s) }                      when allowed
--       → { limit, remaining = 0, reset_at, retry_after (s), limited = true }  when refused
--       → nil, err   Redis unreachable ("closed"), too slow ("timeout") or answering errors
--       Raises CONNECTION_ACTION_TIMEOUT when the action's timeout fired while waiting, and a
--       plain error for a bad identifier (empty, > 256 bytes, CR/LF/NUL or braces).
--   headers(info) → { "X-RateLimit-Limit", "n", "X-RateLimit-Remaining", "n", "X-RateLimit-Reset", "s" }
--       plus "Retry-After", "s" when refused: name, value pairs for conn:set_header.
--
-- The same without a table per request (framework code: keryx.middleware.rate_limit):
--   check_values(identifier, is_authenticated)
--       → allowed, limit, remaining, reset_at, retry_after   (the configured limit and window)
--       → nil, err                                           as check
--   append_headers(list, limit, remaining, reset_at, retry_after_or_nil)
--       appends headers()'s pairs to the flat name, value list `list`.
--
-- The counting happens in Redis (lua/redis/ratelimit.lua via core.rate_limit), atomically, so
-- every keryx process on one Redis shares each client's budget. Refused requests are not
-- counted. Nothing here logs per request: a failure streak is logged once (connection losses
-- are already logged once by the C Redis client).
local core = require "keryx.core"
local errors = require "keryx.errors"

local M = {}

local cfg = core.config.rateLimit
local rate_limit = core.rate_limit
local type, tostring, error, floor = type, tostring, error, math.floor

local failing = false -- inside a failure streak already reported
local NO_OPTS = {} -- read only: spares each check without opts a table

local function note_failure(err)
    if failing then return end
    failing = true
    -- "closed" is the connection itself being down: redis.c has logged that outage.
    if err ~= "closed" and core.log_enabled("warn") then
        core.log("warn", "rate limiting: the Redis check failed (" .. tostring(err)
            .. "); further failures are not logged until a check succeeds")
    end
end

local function int_opt(v, name, default)
    if v == nil then return default end
    if type(v) ~= "number" or v ~= floor(v) then
        error("keryx.rate_limit.check: opts." .. name .. " must be an integer", 3)
    end
    return v
end

-- core.rate_limit's answer, passed on; a failure is reported (once per streak) as nil, err.
local function checked(allowed, lim, remaining, reset_at, retry_after)
    if allowed == nil then
        local err = lim
        -- The action's timeout fired meanwhile: the request is over, do not let it go on.
        errors.check_aborted(nil, err)
        note_failure(err)
        return nil, err
    end
    failing = false
    return allowed, lim, remaining, reset_at, retry_after
end

function M.check(identifier, is_authenticated, opts)
    if type(identifier) ~= "string" then
        error("keryx.rate_limit.check: identifier must be a string", 2)
    end
    if opts ~= nil and type(opts) ~= "table" then
        error("keryx.rate_limit.check: opts must be a table", 2)
    end
    opts = opts or NO_OPTS
    local limit = int_opt(opts.limit, "limit", is_authenticated and cfg.authenticatedLimit or cfg.unauthenticatedLimit)
    local window_ms = int_opt(opts.window_ms, "window_ms", cfg.windowMs)
    local prefix = opts.key_prefix
    if prefix == nil then prefix = cfg.keyPrefix end
    if type(prefix) ~= "string" then error("keryx.rate_limit.check: opts.key_prefix must be a string", 2) end

    local allowed, lim, remaining, reset_at, retry_after = checked(rate_limit(identifier, limit, window_ms, prefix))
    if allowed == nil then return nil, lim end
    if allowed then return { limit = lim, remaining = remaining, reset_at = reset_at } end
    return { limit = lim, remaining = 0, reset_at = reset_at, retry_after = retry_after, limited = true }
end

function M.check_values(identifier, is_authenticated)
    if type(identifier) ~= "string" then
        error("keryx.rate_limit.check_values: identifier must be a string", 2)
    end
    local limit = is_authenticated and cfg.authenticatedLimit or cfg.unauthenticatedLimit
    return checked(rate_limit(identifier, limit, cfg.windowMs, cfg.keyPrefix))
end

local function n(v)
    return ("%d"):format(v)
end

-- The limit and the window's end are the same for most requests in a row: their text is kept
-- from the last request rather than formatted (and interned) again each time.
local last_limit, last_limit_text, last_reset, last_reset_text

function M.append_headers(h, limit, remaining, reset, retry_after)
    if limit ~= last_limit then last_limit, last_limit_text = limit, n(limit) end
    if reset ~= last_reset then last_reset, last_reset_text = reset, n(reset) end
    local i = #h
    h[i + 1], h[i + 2] = "X-RateLimit-Limit", last_limit_text
    h[i + 3], h[i + 4] = "X-RateLimit-Remaining", n(remaining)
    h[i + 5], h[i + 6] = "X-RateLimit-Reset", last_reset_text
    if retry_after ~= nil then h[i + 7], h[i + 8] = "Retry-After", n(retry_after) end
    return h
end

function M.headers(info)
    return M.append_headers({}, info.limit, info.remaining, info.reset_at, info.limited and info.retry_after or nil)
end

return M
