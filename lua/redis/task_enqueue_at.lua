-- task_enqueue_at.lua — a delayed job in Resque's layout (resque-scheduler / node-resque).
-- ARGV: ts (unix seconds, the job is due at the start of it or later), payload, allow_dup ("1"/"0").
-- RPUSH resque:delayed:<ts> <payload>; SADD resque:timestamps:<payload> resque:delayed:<ts>;
-- ZADD resque:delayed_queue_schedule <ts> <ts>. The same payload at the same second twice is an
-- error unless allow_dup, as node-resque does.
local ts, payload, allow_dup = ARGV[1], ARGV[2], ARGV[3] == "1"
local key = "resque:delayed:" .. ts
if not allow_dup and redis.call("SISMEMBER", "resque:timestamps:" .. payload, key) == 1 then
    return redis.error_reply("Job already enqueued at this time with same arguments")
end
redis.call("RPUSH", key, payload)
redis.call("SADD", "resque:timestamps:" .. payload, key)
redis.call("ZADD", "resque:delayed_queue_schedule", ts, ts)
return 1
