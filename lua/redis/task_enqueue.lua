-- task_enqueue.lua — pushes jobs onto Resque queues and wakes idle task processors.
-- KEYS: none (Resque's key names are fixed: tasks need one Redis, not a Cluster).
-- ARGV: queue1, payload1, queue2, payload2, … (payloads are compact JSON
--       {"class":…,"queue":…,"args":[…]} built by keryx.tasks).
-- Does, atomically: SADD resque:queues <q>; RPUSH resque:queue:<q> <payload> for each pair;
-- then one PUBLISH keryx:tasks (the tasks signal; the payload is ignored by subscribers).
-- Returns the number of jobs pushed.
local n = 0
for i = 1, #ARGV, 2 do
    local q, payload = ARGV[i], ARGV[i + 1]
    redis.call("SADD", "resque:queues", q)
    redis.call("RPUSH", "resque:queue:" .. q, payload)
    n = n + 1
end
if n > 0 then redis.call("PUBLISH", "keryx:tasks", "enqueued") end
return n
