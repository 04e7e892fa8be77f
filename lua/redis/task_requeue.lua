-- task_requeue.lua — a job the process could not finish (shutdown) goes back to the head of
-- its queue: it is not counted as an attempt and not as a failure.
-- ARGV: worker, queue, payload. Returns 1.
local worker, q, payload = ARGV[1], ARGV[2], ARGV[3]
redis.call("LREM", "resque:keryx:inflight:" .. worker, 1, payload)
redis.call("DEL", "resque:worker:" .. worker)
if redis.call("HINCRBY", "resque:keryx:attempts", payload, -1) <= 0 then
    redis.call("HDEL", "resque:keryx:attempts", payload)
end
redis.call("SADD", "resque:queues", q)
redis.call("LPUSH", "resque:queue:" .. q, payload)
redis.call("PUBLISH", "keryx:tasks", "requeued")
return 1
