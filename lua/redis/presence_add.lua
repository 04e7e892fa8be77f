-- presence_add.lua — one connection joins a channel's presence, run INSIDE Redis (EVALSHA via
-- lua/keryx/scripts.lua) so the two sets change together.
--
--   KEYS[1]  `presence:{<channel>}:<presenceKey>`  SET of the connection ids behind that key
--   KEYS[2]  `presence:{<channel>}`                SET of the channel's presence keys
--   ARGV[1]  connection id (cluster-unique: `<node>:<socket id>`)
--   ARGV[2]  presence key
--   ARGV[3]  TTL in seconds (PRESENCE_TTL, integer >= 1)
--
-- Returns the SADD result on the channel set: 1 when the presence key is new to the channel
-- (the caller then publishes a join event), 0 when another connection already holds it.
-- Both keys carry the channel as hash tag, so they sit in one slot (Redis Cluster safe).
local ttl = tonumber(ARGV[3])
if not ttl or ttl < 1 or ttl ~= math.floor(ttl) or ARGV[1] == nil or ARGV[2] == nil then
    return redis.error_reply("ERR presence_add: expects connection id, presence key, ttl >= 1")
end
redis.call("SADD", KEYS[1], ARGV[1])
redis.call("EXPIRE", KEYS[1], ttl)
local added = redis.call("SADD", KEYS[2], ARGV[2])
redis.call("EXPIRE", KEYS[2], ttl)
return added
