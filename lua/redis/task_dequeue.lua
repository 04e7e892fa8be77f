-- task_dequeue.lua — a task processor takes the next job.
-- ARGV: worker, run_at (a date string for Resque's worker status), taken ("" or a payload a
--       blocking BLMOVE already moved), queue1, queue2, … ("*": every queue in resque:queues,
--       sorted by name).
-- The job moves atomically (LMOVE) from the first non-empty queue to the worker's in-flight
-- list resque:keryx:inflight:<worker>, where it stays until task_finish / task_requeue, or
-- until the leader's dead-worker check (task_tick) puts it back when the worker's process died.
-- The attempt count (resque:keryx:attempts, by payload) goes up by one; Resque's worker status
-- resque:worker:<worker> shows the job. Returns { queue, payload, attempts } or nil when every
-- queue is empty.
local worker, run_at, taken = ARGV[1], ARGV[2], ARGV[3]
local inflight = "resque:keryx:inflight:" .. worker
local queues = {}
for i = 4, #ARGV do queues[#queues + 1] = ARGV[i] end
if #queues == 1 and queues[1] == "*" then
    queues = redis.call("SMEMBERS", "resque:queues")
    table.sort(queues)
end
local q, payload
if taken ~= "" then
    payload = taken
    local ok, job = pcall(cjson.decode, payload)
    q = ok and type(job) == "table" and type(job.queue) == "string" and job.queue or queues[1]
else
    for _, name in ipairs(queues) do
        payload = redis.call("LMOVE", "resque:queue:" .. name, inflight, "LEFT", "RIGHT")
        if payload then
            q = name
            break
        end
    end
end
if not payload then return nil end
-- Alive from its first job on (the tick refreshes it): the leader can tell when it dies.
redis.call("SET", "resque:keryx:alive:" .. worker, "1", "PX", 5000)
redis.call("SADD", "resque:keryx:workers", worker)
local attempts = redis.call("HINCRBY", "resque:keryx:attempts", payload, 1)
redis.call("SET", "resque:worker:" .. worker,
    '{"run_at":' .. cjson.encode(run_at) .. ',"queue":' .. cjson.encode(q) .. ',"payload":' .. payload ..
    ',"worker":' .. cjson.encode(worker) .. '}')
return { q, payload, attempts }
