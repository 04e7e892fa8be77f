-- ratelimit.lua — the sliding-window rate-limit check, run INSIDE Redis (EVALSHA) so that each
-- request's read-decide-count is atomic across every keryx process sharing the Redis.
--
-- Loaded by src/ratelimit.c at boot (its SHA1 is sent with EVALSHA; on NOSCRIPT the text is sent
-- once with EVAL). One call checks a batch: the checks that the requests of one event-loop
-- iteration asked for (src/ratelimit.c), in order, as if each were its own call made at the same
-- instant. A call's fixed cost in Redis (command, script set-up, TIME, the reply) is most of
-- a single check's, so a batch costs far less than as many calls.
--
--   KEYS[i]        base key `<prefix>:{<identifier>}` of check i (1 <= i <= #KEYS)
--   ARGV[2i - 1]   its limit (requests per window, integer >= 0)
--   ARGV[2i]       its window in milliseconds (integer >= 1)
--   or, when every check of the batch has the same limit and window (one policy, the usual
--   case), only ARGV[1] limit and ARGV[2] window, for all of them.
--
-- Returns ONE bulk string of #KEYS + 1 decimal integers separated by single spaces,
-- "now_ms code_1 … code_n": now_ms is Redis' clock (unix ms), and code_i is the requests left in
-- check i's window after this one when it is allowed (>= 0), -1 when it is refused. One string
-- rather than an array of integers: the caller parses it in one pass, where a client library
-- builds an object per array element. The caller derives the window's reset time and the retry
-- delay from now_ms and the window (w and elapsed below), which saves building them here.
--
-- Algorithm: two fixed windows, the previous one weighted by the part of it that still lies
-- inside the sliding window: w = floor(now / window); estimate = floor(prev * (1 - progress))
-- + cur where progress = (now % window) / window. A request is allowed when estimate + 1 <=
-- limit; only allowed requests are counted (a client hammering a closed door does not push
-- its own reopening further away). The clock is Redis TIME, so every process agrees on it.
--
-- Keys: the current and previous window keys are KEYS[i] .. ":" .. w and KEYS[i] .. ":" ..
-- (w - 1). They are derived here, not passed in, because w comes from Redis' own clock (Lua
-- writes an integral number below 1e14 with all its digits, so w needs no format). Each
-- client's keys share the hash tag `{…}`; a batch mixes clients, hence slots: keryx speaks to one
-- Redis (a standalone or Sentinel-managed primary, README "One Redis"), never a Cluster.
-- Redis >= 6.2 (keryx needs GETEX) replicates a script's effects, so TIME before a write is fine.

local n = #KEYS
local tonumber, floor = tonumber, math.floor
local shared = #ARGV == 2
if not shared and #ARGV ~= 2 * n then
    return redis.error_reply("ERR ratelimit: ARGV must hold a limit and a window for every key, or one pair for all")
end
local limits, windows = {}, {}
for i = 1, n do
    local a = shared and 1 or 2 * i - 1
    local limit, window = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
    if not limit or not window or limit < 0 or window < 1 or limit ~= floor(limit) or window ~= floor(window) then
        return redis.error_reply("ERR ratelimit: limit must be an integer >= 0 and window an integer >= 1")
    end
    limits[i], windows[i] = limit, window
end

local t = redis.call("TIME")
local now_ms = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
local out = { now_ms }

for i = 1, n do
    local limit, window, key = limits[i], windows[i], KEYS[i]
    local w = floor(now_ms / window)
    local elapsed = now_ms - w * window
    local cur_key = key .. ":" .. w
    local counts = redis.call("MGET", cur_key, key .. ":" .. (w - 1))
    local estimate = floor((tonumber(counts[2]) or 0) * (1 - elapsed / window)) + (tonumber(counts[1]) or 0)
    if estimate + 1 > limit then
        out[i + 1] = -1
    else
        -- Two windows: the key is still read as "previous" during the whole next window. The key
        -- is created by its first INCR, and only then does it need its expiry.
        if redis.call("INCR", cur_key) == 1 then
            redis.call("PEXPIRE", cur_key, 2 * window)
        end
        out[i + 1] = limit - (estimate + 1)
    end
end
-- Every value is an integer below 1e14, which Lua writes with all its digits.
return table.concat(out, " ")
