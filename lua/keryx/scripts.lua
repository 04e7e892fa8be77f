-- keryx.scripts — runs the Redis-side scripts of lua/redis/<name>.lua.
--
--   scripts.run(name, keys, args) → the script's reply | false, "ERR …" | nil, "closed"/"timeout"
--       Through core.redis_script (redis_script.c, the one runner every script shares, the
--       rate limiter's included): EVALSHA <sha1 of the file>, and on a NOSCRIPT reply (Redis
--       restarted, SCRIPT FLUSH, a failover) the text once with EVAL. Yields like
--       keryx.redis.call; raises CONNECTION_ACTION_TIMEOUT when the running action's timeout
--       fired meanwhile, and raises for a name with no file (a packaging bug).
--   scripts.sha1(text) → 40 lowercase hex digits (core.sha1_hex: OpenSSL, in C).
--
-- The files are read once, at boot, by the C core. Never logs; never retries anything but the
-- one NOSCRIPT fallback. Callers own the key layout: every key of one call must share a hash
-- tag (one slot per script, for Redis Cluster) — except the task scripts, whose Resque key
-- names are fixed (tasks need one Redis, not a Cluster: README).
local core = require "keryx.core"
local errors = require "keryx.errors"

local M = {}

local check_abort = errors.check_aborted
local redis_script = core.redis_script

--- SHA-1 of text as Redis names scripts (OpenSSL, in C).
M.sha1 = core.sha1_hex

function M.run(name, keys, args)
    return check_abort(redis_script(name, keys or {}, args or {}))
end

return M
