-- task_step.lua — a task processor's one round trip per job: record the job it finished (if
-- any), then take the next one.
-- ARGV: worker, run_at (a date string for Resque's worker status),
--       done_payload ("" when nothing to record), ok ("1"/"0"), failure (JSON of Resque's
--       failure record, when not ok), fan_out_id ("" when none), fan_out_entry (JSON
--       {"params":…,"result"|"error":…}),
--       then the queues to take from (none: record only; "*": every queue in resque:queues,
--       sorted by name).
-- Recording: the job leaves the in-flight list and its crash count; resque:stat:processed
-- (and :<worker>) on success, else RPUSH resque:failed <failure> and resque:stat:failed (and
-- :<worker>); fan-out (README "Background tasks"): RPUSH fanout:<id>:results or :errors, HINCRBY
-- fanout:<id> completed|failed, then the meta hash's remaining TTL is copied onto both lists
-- (nothing once the meta hash expired).
-- Taking: a processor runs one job at a time, so an entry still in its in-flight list
-- resque:keryx:inflight:<worker> is one it has not heard of (a blocking BLMOVE's, or a reply
-- lost to a timeout): it is taken first. Otherwise the job moves atomically (LMOVE) from the
-- first non-empty queue to that list, where it stays until recorded, put back by
-- task_requeue / task_unregister, or recovered by the leader's dead-worker check (task_tick)
-- when the worker's process died. Resque's worker status resque:worker:<worker> shows it.
-- Returns { queue, payload } or nil when there is nothing to take.
local worker, run_at = ARGV[1], ARGV[2]
local done, ok, failure, fid, entry = ARGV[3], ARGV[4] == "1", ARGV[5], ARGV[6], ARGV[7]
local inflight = "resque:keryx:inflight:" .. worker

if done ~= "" then
    redis.call("LREM", inflight, 1, done)
    redis.call("DEL", "resque:worker:" .. worker)
    redis.call("HDEL", "resque:keryx:attempts", done)
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
            redis.call("RPUSH", meta .. (ok and ":results" or ":errors"), entry)
            redis.call("HINCRBY", meta, ok and "completed" or "failed", 1)
            redis.call("EXPIRE", meta .. ":results", ttl)
            redis.call("EXPIRE", meta .. ":errors", ttl)
        end
    end
end

if #ARGV < 8 then return nil end
local queues = {}
for i = 8, #ARGV do queues[#queues + 1] = ARGV[i] end
if #queues == 1 and queues[1] == "*" then
    queues = redis.call("SMEMBERS", "resque:queues")
    table.sort(queues)
end

local q
local payload = redis.call("LINDEX", inflight, 0)
if payload then
    local okd, job = pcall(cjson.decode, payload)
    q = okd and type(job) == "table" and type(job.queue) == "string" and job.queue or queues[1] or "default"
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
redis.call("SET", "resque:worker:" .. worker,
    '{"run_at":' .. cjson.encode(run_at) .. ',"queue":' .. cjson.encode(q) .. ',"payload":' .. payload ..
    ',"worker":' .. cjson.encode(worker) .. '}')
return { q, payload }
