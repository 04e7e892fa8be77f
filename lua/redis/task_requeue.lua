-- task_requeue.lua — a job the process could not finish (shutdown) goes back to the head of
-- its queue: it counts neither as a crash nor as a failure.
-- ARGV: worker, queue, payload. Returns 1.
local worker, q, payload = ARGV[1], ARGV[2], ARGV[3]
redis.call("LREM", "resque:keryx:inflight:" .. worker, 1, payload)
redis.call("DEL", "resque:worker:" .. worker)
redis.call("SADD", "resque:queues", q)
redis.call("LPUSH", "resque:queue:" .. q, payload)
redis.call("PUBLISH", "keryx:tasks", "requeued")
return 1
