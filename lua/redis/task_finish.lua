-- task_finish.lua — a job ended: out of the in-flight list, counted, failures recorded,
-- fan-out results collected.
-- ARGV: worker, payload, ok ("1"/"0"), failure (JSON of Resque's failure record, when not ok),
--       fan_out_id ("" when none), fan_out_entry (JSON {"params":…,"result"|"error":…}).
-- resque:stat:processed (and :<worker>) on success; on failure RPUSH resque:failed <failure>
-- and resque:stat:failed (and :<worker>). Fan-out (reference §9): RPUSH fanout:<id>:results or
-- :errors, HINCRBY fanout:<id> completed|failed, then the meta hash's remaining TTL is copied
-- onto both lists; nothing is collected once the meta hash has expired. Returns 1.
local worker, payload, ok, failure, fid, entry = ARGV[1], ARGV[2], ARGV[3] == "1", ARGV[4], ARGV[5], ARGV[6]
redis.call("LREM", "resque:keryx:inflight:" .. worker, 1, payload)
redis.call("DEL", "resque:worker:" .. worker)
if redis.call("HINCRBY", "resque:keryx:attempts", payload, -1) <= 0 then
    redis.call("HDEL", "resque:keryx:attempts", payload)
end
if ok then
    redis.call("INCR", "resque:stat:processed")
    redis.call("INCR", "resque:stat:processed:" .. worker)
else
    redis.call("RPUSH", "resque:failed", failure)
    redis.call("INCR", "resque:stat:failed")
    redis.call("INCR", "resque:stat:failed:" .. worker)
end
if fid ~= "" then
    local meta = "fanout:" .. fid
    local ttl = redis.call("TTL", meta)
    if ttl > 0 then
        local list = meta .. (ok and ":results" or ":errors")
        redis.call("RPUSH", list, entry)
        redis.call("HINCRBY", meta, ok and "completed" or "failed", 1)
        redis.call("EXPIRE", meta .. ":results", ttl)
        redis.call("EXPIRE", meta .. ":errors", ttl)
    end
end
return 1
