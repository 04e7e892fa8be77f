-- ratelimit.lua — the sliding-window rate-limit check, run INSIDE Redis (EVALSHA) so that one
-- request's read-decide-count is atomic across every keryx process sharing the Redis.
--
-- Loaded by src/ratelimit.c at boot (its SHA1 is sent with EVALSHA; on NOSCRIPT the text is sent
-- once with EVAL). Never touches keys other than the two windows of one client.
--
--   KEYS[1]  base key `<prefix>:{<identifier>}`
--   ARGV[1]  limit (requests per window, integer >= 0)
--   ARGV[2]  window in milliseconds (integer >= 1)
--
-- Returns five integers: {allowed (1|0), limit, remaining, reset_at (unix s), retry_after (s)}.
--
-- Algorithm: two fixed windows, the previous one weighted by the part of it that still lies
-- inside the sliding window: w = floor(now / window); estimate = floor(prev * (1 - progress))
-- + cur where progress = (now % window) / window. A request is allowed when estimate + 1 <=
-- limit; only allowed requests are counted (a client hammering a closed door does not push
-- its own reopening further away). The clock is Redis TIME, so every process agrees on it.
--
-- Keys: the current and previous window keys are KEYS[1] .. ":" .. w and KEYS[1] .. ":" ..
-- (w - 1). They are derived here, not passed in, because w comes from Redis' own clock. The
-- identifier sits in a hash tag `{…}`, so both keys hash to the same slot as KEYS[1]: the
-- script is safe on a Redis Cluster (every script touches one hash slot only).

-- Redis < 5 refuses writes after a non-deterministic command (TIME) unless effects are
-- replicated; from Redis 5 on this is the default and the call is a no-op.
if redis.replicate_commands then redis.replicate_commands() end

local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
if not limit or not window or limit < 0 or window < 1 or limit ~= math.floor(limit)
    or window ~= math.floor(window) then
    return redis.error_reply("ERR ratelimit: limit must be an integer >= 0 and window an integer >= 1")
end

local t = redis.call("TIME")
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local w = math.floor(now_ms / window)
local elapsed = now_ms - w * window
local cur_key = KEYS[1] .. ":" .. string.format("%.0f", w)
local prev_key = KEYS[1] .. ":" .. string.format("%.0f", w - 1)

local counts = redis.call("MGET", cur_key, prev_key)
local cur = tonumber(counts[1]) or 0
local prev = tonumber(counts[2]) or 0
local estimate = math.floor(prev * (1 - elapsed / window)) + cur
local reset_at = math.ceil((w + 1) * window / 1000)

if estimate + 1 > limit then
    local retry_after = math.ceil((window - elapsed) / 1000)
    if retry_after < 1 then retry_after = 1 end
    return { 0, limit, 0, reset_at, retry_after }
end

-- Two windows: the key is still read as "previous" during the whole next window. The key is
-- created by its first INCR, and only then does it need its expiry (one call less per request).
if redis.call("INCR", cur_key) == 1 then
    redis.call("PEXPIRE", cur_key, 2 * window)
end
return { 1, limit, limit - (estimate + 1), reset_at, 0 }
