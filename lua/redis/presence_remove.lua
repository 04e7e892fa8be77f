-- presence_remove.lua — one connection leaves a channel's presence, run INSIDE Redis (EVALSHA
-- via lua/keryx/scripts.lua) so "last connection of this key gone → key leaves the channel" is
-- atomic across every keryx process.
--
--   KEYS[1]  `presence:{<channel>}:<presenceKey>`  SET of the connection ids behind that key
--   KEYS[2]  `presence:{<channel>}`                SET of the channel's presence keys
--   ARGV[1]  connection id
--   ARGV[2]  presence key
--
-- Returns 1 when this was the key's last connection (the key left the channel: the caller
-- publishes a leave event), else 0 (the id was not there, or other connections still hold the
-- key). Both keys share the channel's hash tag: one slot.
if ARGV[1] == nil or ARGV[2] == nil then
    return redis.error_reply("ERR presence_remove: expects connection id, presence key")
end
if redis.call("SREM", KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call("SCARD", KEYS[1]) > 0 then return 0 end
redis.call("DEL", KEYS[1])
redis.call("SREM", KEYS[2], ARGV[2])
return 1
