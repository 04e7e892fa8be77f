-- oauth_family.lua — one OAuth token family (the tokens issued from one authorization code),
-- changed atomically INSIDE Redis (EVALSHA via lua/keryx/scripts.lua). The family is a hash
-- at KEYS[1] = `oauth:family:{<family id>}` (one key, so one slot: Redis Cluster safe):
--   state      "code" (code not yet used) | "consumed" (code used, tokens not yet issued) |
--              "active" (tokens issued) | "revoked"
--   client, user, redirect, challenge   fixed at authorize time
--   at, rt     SHA-256 (base64url) of the current access and refresh token: never the tokens
--
--   ARGV[1] = "consume"                         → {client, user, redirect, challenge} when the
--             code was unused (now "consumed"); "reused" when it was used before, and the
--             family is then revoked (RFC 9700: a replayed code revokes what it issued); false
--             when the family is gone (expired).
--   ARGV[1] = "issue", at, rt, ttl              → 1 (now "active", TTL ttl s) | 0
--   ARGV[1] = "rotate", old rt, client, at, rt, ttl
--             → user id on success; "client" on a client mismatch (nothing changes);
--               "reused" when old rt is not the current one (a rotated token presented
--               again: the family is revoked); "invalid" when not active or gone.
--   ARGV[1] = "revoke", client                  → 1 when the family was this client's (now
--             "revoked"), 0 otherwise.
local key, op = KEYS[1], ARGV[1]
if redis.call("EXISTS", key) == 0 then
    if op == "consume" then return false end
    if op == "rotate" then return "invalid" end
    return 0
end
local state = redis.call("HGET", key, "state")

if op == "consume" then
    if state == "code" then
        redis.call("HSET", key, "state", "consumed")
        return redis.call("HMGET", key, "client", "user", "redirect", "challenge")
    end
    redis.call("HSET", key, "state", "revoked")
    return "reused"
elseif op == "issue" then
    local ttl = tonumber(ARGV[4])
    if state ~= "consumed" or not ttl or ttl < 1 then return 0 end
    redis.call("HSET", key, "state", "active", "at", ARGV[2], "rt", ARGV[3])
    redis.call("EXPIRE", key, ttl)
    return 1
elseif op == "rotate" then
    local ttl = tonumber(ARGV[6])
    if state ~= "active" or not ttl or ttl < 1 then return "invalid" end
    if redis.call("HGET", key, "client") ~= ARGV[3] then return "client" end
    if redis.call("HGET", key, "rt") ~= ARGV[2] then
        redis.call("HSET", key, "state", "revoked")
        return "reused"
    end
    redis.call("HSET", key, "at", ARGV[4], "rt", ARGV[5])
    redis.call("EXPIRE", key, ttl)
    return redis.call("HGET", key, "user")
elseif op == "revoke" then
    if redis.call("HGET", key, "client") ~= ARGV[2] then return 0 end
    redis.call("HSET", key, "state", "revoked")
    return 1
end
return redis.error_reply("ERR oauth_family: unknown operation")
