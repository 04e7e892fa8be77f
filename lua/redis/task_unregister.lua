-- task_unregister.lua — a processor stops (its process drains): anything still in its in-flight
-- list goes back to the head of its queue, and it leaves the worker sets.
-- ARGV: worker. Returns the number of jobs put back.
local w = ARGV[1]
local inflight = "resque:keryx:inflight:" .. w
local n = 0
for _, payload in ipairs(redis.call("LRANGE", inflight, 0, -1)) do
    local ok, job = pcall(cjson.decode, payload)
    local q = ok and type(job) == "table" and type(job.queue) == "string" and job.queue or "default"
    redis.call("SADD", "resque:queues", q)
    redis.call("LPUSH", "resque:queue:" .. q, payload)
    n = n + 1
end
redis.call("DEL", inflight, "resque:worker:" .. w, "resque:keryx:alive:" .. w)
redis.call("SREM", "resque:keryx:workers", w)
redis.call("SREM", "resque:workers", w)
if n > 0 then redis.call("PUBLISH", "keryx:tasks", "requeued") end
return n
