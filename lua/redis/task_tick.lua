-- task_tick.lua — the task scheduler's tick, run by every keryx process with tasks enabled
-- (every 200 ms), all in one atomic step:
-- 1. liveness of this process's processors: resque:keryx:alive:<worker> with a TTL, members
--    of resque:keryx:workers (keryx's own) and resque:workers (Resque's tooling lists them);
-- 2. leadership: resque:keryx:leader holds one process's token with a TTL (at most 10 s), taken
--    over by another process once it lapses (its owner died). Only the leader goes on:
-- 3. delayed jobs that are due (score <= now in resque:delayed_queue_schedule) move to their
--    queues, oldest second first, up to 1000 per tick; their resque:timestamps entries go;
-- 4. recurring actions: one run per period across every process: resque:keryx:recurring:<action>
--    is set NX for the period; when it was free and no copy waits in the queue, one job is pushed
--    on the action's own queue;
-- 5. dead workers (in resque:keryx:workers without an alive key): each job of their in-flight
--    lists goes back to the head of its queue, or to resque:failed once its process died with
--    it 3 times (resque:keryx:attempts counts crashes by payload; recording the job's outcome
--    clears its count).
-- ARGV: token, leader_ttl_ms, alive_ttl_ms, now_s, failed_at, n_workers, worker…,
--       then per recurring action: name, queue, frequency_ms, payload.
-- Returns { is_leader (0/1), jobs moved to a queue }.
local token, leader_ttl, alive_ttl, now_s, failed_at = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local nw = tonumber(ARGV[6])
for i = 7, 6 + nw do
    local w = ARGV[i]
    redis.call("SET", "resque:keryx:alive:" .. w, token, "PX", alive_ttl)
    redis.call("SADD", "resque:keryx:workers", w)
    redis.call("SADD", "resque:workers", w)
end

local holder = redis.call("GET", "resque:keryx:leader")
if holder == token then
    redis.call("PEXPIRE", "resque:keryx:leader", leader_ttl)
elseif holder then
    return { 0, 0 }
elseif not redis.call("SET", "resque:keryx:leader", token, "NX", "PX", leader_ttl) then
    return { 0, 0 }
end

local function queue_of(payload, default)
    local ok, job = pcall(cjson.decode, payload)
    if ok and type(job) == "table" and type(job.queue) == "string" and job.queue ~= "" then return job.queue end
    return default
end

local function push(q, payload, head)
    redis.call("SADD", "resque:queues", q)
    redis.call(head and "LPUSH" or "RPUSH", "resque:queue:" .. q, payload)
end

local moved = 0

-- 3. due delayed jobs
local due = redis.call("ZRANGEBYSCORE", "resque:delayed_queue_schedule", "-inf", now_s, "LIMIT", 0, 50)
for _, ts in ipairs(due) do
    local key = "resque:delayed:" .. ts
    while moved < 1000 do
        local payload = redis.call("LPOP", key)
        if not payload then break end
        redis.call("SREM", "resque:timestamps:" .. payload, key)
        push(queue_of(payload, "default"), payload, false)
        moved = moved + 1
    end
    if redis.call("LLEN", key) == 0 then
        redis.call("DEL", key)
        redis.call("ZREM", "resque:delayed_queue_schedule", ts)
    end
end

-- 4. recurring actions
local i = 7 + nw
while i + 3 <= #ARGV do
    local name, q, every, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    if redis.call("SET", "resque:keryx:recurring:" .. name, token, "NX", "PX", every) then
        if not redis.call("LPOS", "resque:queue:" .. q, payload) then
            push(q, payload, false)
            moved = moved + 1
        end
    end
    i = i + 4
end

-- 5. dead workers
for _, w in ipairs(redis.call("SMEMBERS", "resque:keryx:workers")) do
    if redis.call("EXISTS", "resque:keryx:alive:" .. w) == 0 then
        local inflight = "resque:keryx:inflight:" .. w
        local counted = {} -- identical jobs of one worker count one crash, not one each
        for _, payload in ipairs(redis.call("LRANGE", inflight, 0, -1)) do
            local q = queue_of(payload, "default")
            local attempts = counted[payload]
            if not attempts then
                attempts = redis.call("HINCRBY", "resque:keryx:attempts", payload, 1)
                counted[payload] = attempts
            end
            if attempts >= 3 then
                redis.call("HDEL", "resque:keryx:attempts", payload)
                redis.call("RPUSH", "resque:failed", '{"failed_at":' .. cjson.encode(failed_at) ..
                    ',"payload":' .. payload .. ',"exception":"WorkerDied","error":' ..
                    cjson.encode("the worker's process died while running this job " .. attempts .. " times") ..
                    ',"backtrace":[],"worker":' .. cjson.encode(w) .. ',"queue":' .. cjson.encode(q) .. '}')
                redis.call("INCR", "resque:stat:failed")
            else
                push(q, payload, true)
                moved = moved + 1
            end
        end
        redis.call("DEL", inflight, "resque:worker:" .. w)
        redis.call("SREM", "resque:keryx:workers", w)
        redis.call("SREM", "resque:workers", w)
    end
end

if moved > 0 then redis.call("PUBLISH", "keryx:tasks", "moved") end
return { 1, moved }
