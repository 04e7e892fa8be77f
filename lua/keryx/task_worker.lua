-- keryx.task_worker — inside `keryx start`: TASK_PROCESSORS processors that run jobs, and the
-- scheduler tick (delayed jobs, recurring actions, dead workers). Never extra processes: with
-- several workers, each runs its own.
--
-- A processor (a background task of its own, core.spawn) owns a Redis connection of its own
-- (core.redis_open), so a blocking dequeue never stalls the shared one. It loops on one round
-- trip per job (lua/redis/task_step.lua): record the last job's outcome (stats,
-- resque:failed, fan-out results) and take the next (LMOVE from the first non-empty queue of
-- TASK_QUEUES to its in-flight list) → run it as a job task (core.run_job: its own action
-- timeout and Redis budget). While Redis is away the outcome is kept and sent again, so a
-- finished job is never lost or run twice because Redis blinked.
-- When every queue is empty it waits on its own connection: a blocking BLMOVE (1 s) when it
-- serves one queue, else the tasks signal every enqueue publishes (core.task_wait) with a 1 s
-- fallback poll.
-- At least once: a job stays in the in-flight list until recorded. On SIGTERM processors stop
-- taking jobs; running jobs get until WS_DRAIN_TIMEOUT, then are cut (kx_lua_cut_jobs) and
-- put back at the head of their queue (task_requeue.lua); a processor that stops puts back
-- whatever its list still holds (task_unregister.lua). After SIGKILL the leader's tick puts
-- the dead worker's jobs back once its alive key lapses (5 s), or to resque:failed once a job
-- has died with its process 3 times.
--
-- The tick (every 200 ms, lua/redis/task_tick.lua) refreshes this process's workers' alive
-- keys, holds or takes the leader lock (TTL 5 s), and as leader promotes due delayed jobs,
-- pushes recurring actions (one run per period across every process) and recovers dead
-- workers.
--
-- Owns: processors, worker names (<host>:<pid>+<i>), the tick. Callers: keryx.boot (on_start,
-- server mode only). Never: builds payloads (keryx.tasks does), runs actions itself
-- (keryx.transport.task does, inside the job task).
local core = require "keryx.core"
local json = require "keryx.json"
local log = require "keryx.log"
local scripts = require "keryx.scripts"
local tasks = require "keryx.tasks"
local pipeline = require "keryx.pipeline"
local task_transport = require "keryx.transport.task"

local M = {}

local type, ipairs, tostring, floor, date = type, ipairs, tostring, math.floor, os.date
local redis_null = core.redis_null

M.TICK_MS = 200
M.LEADER_TTL_MS = 5000
M.ALIVE_TTL_MS = 5000
M.IDLE_POLL_MS = 1000

local state = { workers = {}, token = nil, host = nil }

local function hostname()
    local f = io.open("/proc/sys/kernel/hostname", "rb")
    local h = f and f:read("*l")
    if f then f:close() end
    h = h and h:gsub("[^%w._-]", "") or ""
    return h ~= "" and h or "localhost"
end

--- TASK_QUEUES as a list ("*" stays the one entry "*").
function M.queues(spec)
    local out = {}
    for name in tostring(spec):gmatch("[^,]+") do
        name = name:match("^%s*(.-)%s*$")
        if name ~= "" then out[#out + 1] = name end
    end
    if #out == 0 then out[1] = "*" end
    return out
end

local function failed_at()
    return date("!%Y/%m/%d %H:%M:%S UTC")
end

-- ---- Redis on the processor's own connection -------------------------------------------

local function run_script(rc, name, args)
    return core.redis_conn_script(rc, name, {}, args)
end

-- Repeats a bookkeeping script until Redis takes it: what it records must not be lost.
local function until_done(rc, name, args)
    local warned = false
    while true do
        local v, err = run_script(rc, name, args)
        if v ~= nil and v ~= false then return v end
        if not warned then
            log.warn(("tasks: cannot record a job outcome (%s: %s); retrying every second"):format(name, tostring(err)))
            warned = true
        end
        core.sleep(1000)
    end
end

-- One round trip (lua/redis/task_step.lua): records `done` (the last job's outcome, or nil)
-- and, unless `queues` is nil, takes the next job.
-- → queue, payload | false (nothing to take) | nil, err (Redis unreachable: nothing recorded).
local function step(rc, worker, done, queues)
    local args = { worker, date("!%Y-%m-%dT%H:%M:%SZ") }
    if done then
        for i = 1, 5 do args[2 + i] = done[i] end
    else
        args[3], args[4], args[5], args[6], args[7] = "", "0", "", "", ""
    end
    for _, q in ipairs(queues or {}) do args[#args + 1] = q end
    local r, err = run_script(rc, "task_step", args)
    if r == nil or r == false then return nil, err end
    if r == redis_null or type(r) ~= "table" then return false end
    return r[1], r[2]
end

-- ---- one job -----------------------------------------------------------------------------

local function failure_record(worker, q, payload, err)
    local lines = {}
    for line in tostring(err.stack or ""):gmatch("[^\n]+") do lines[#lines + 1] = line end
    return table.concat {
        '{"failed_at":', json.encode(failed_at()), ',"payload":', payload,
        ',"exception":', json.encode(err.type or "Error"), ',"error":', json.encode(err.message or "failed"),
        ',"backtrace":', json.encode(json.array(lines)), ',"worker":', json.encode(worker),
        ',"queue":', json.encode(q), "}",
    }
end

local function fan_out_entry(job, res)
    local params = json.encode(job.inputs) or "{}"
    if res.ok then
        local result = json.encode(res.response == nil and {} or res.response) or "{}"
        return '{"params":' .. params .. ',"result":' .. result .. "}"
    end
    return '{"params":' .. params .. ',"error":' .. json.encode(res.error.message or "failed") .. "}"
end

-- Runs one job; returns what task_step must record ({payload, ok, failure, fan-out id, entry}),
-- or nil when the job was cut by the shutdown and put back on its queue.
local function run_one(rc, worker, q, payload)
    local job, why = tasks.decode(payload)
    local res, cut
    if job then
        local r, c, jerr = core.run_job(task_transport.run, job)
        res, cut = r, c
        if res == nil then
            res = { ok = false, error = { message = jerr or "failed", type = "CONNECTION_ACTION_RUN" } }
        end
    else
        res = { ok = false, error = { message = "malformed job payload: " .. tostring(why), type = "TASK_VALIDATION" } }
    end
    if cut and not res.ok then
        until_done(rc, "task_requeue", { worker, q, payload })
        return nil
    end
    local failure = res.ok and "" or failure_record(worker, q, payload, res.error)
    local fid = job and job.inputs._fanOutId
    fid = type(fid) == "string" and fid:match("^[%w-]+$") and #fid <= 64 and fid or ""
    local entry = fid ~= "" and fan_out_entry(job, res) or ""
    return { payload, res.ok and "1" or "0", failure, fid, entry }
end

-- ---- processors --------------------------------------------------------------------------

local function remove_worker(name)
    for i, w in ipairs(state.workers) do
        if w == name then
            table.remove(state.workers, i)
            return
        end
    end
end

-- Idle: a blocking BLMOVE on the processor's own connection when it serves one queue (the job
-- lands in its in-flight list, where the next step takes it), else the tasks signal or the
-- poll interval.
local function wait_for_work(rc, worker, single)
    if not single then
        core.task_wait(M.IDLE_POLL_MS)
        return
    end
    local v = core.redis_conn_call(rc, 1, "BLMOVE", "resque:queue:" .. single, "resque:keryx:inflight:" .. worker,
        "LEFT", "RIGHT", 1)
    if v == nil then core.sleep(200) end
end

local function processor(i, queues)
    local worker = ("%s:%d+%d"):format(state.host, core.pid(), i)
    local rc = core.redis_open("Redis task processor " .. i)
    state.workers[#state.workers + 1] = worker
    local single = #queues == 1 and queues[1] ~= "*" and queues[1] or nil
    local done -- the outcome of the last job, until Redis has taken it
    local warned = false
    while not core.draining() do
        local q, payload = step(rc, worker, done, queues)
        if q == nil then
            if done and not warned then
                log.warn("tasks: cannot record a job outcome (" .. tostring(payload) .. "); retrying")
                warned = true
            end
            core.sleep(200) -- Redis unreachable (redis.c logs the outage once)
        else
            done, warned = nil, false
            if q then done = run_one(rc, worker, q, payload)
            else wait_for_work(rc, worker, single) end
        end
    end
    -- Draining: the last outcome is recorded, then whatever the in-flight list still holds (a
    -- job BLMOVE took meanwhile) goes back to its queue.
    while done do
        if step(rc, worker, done, nil) ~= nil then done = nil else core.sleep(200) end
    end
    for _ = 1, 10 do
        local v = run_script(rc, "task_unregister", { worker })
        if v ~= nil and v ~= false then break end
        core.sleep(200)
    end
    remove_worker(worker)
    core.redis_conn_close(rc)
    return false
end

-- ---- scheduler ---------------------------------------------------------------------------

local function recurring_args(args)
    for _, action in ipairs(pipeline.registry.list) do
        local t = action.task
        if t and t.frequency and t.frequency > 0 and not action.internal then
            local q = t.queue or "default"
            args[#args + 1] = action.name
            args[#args + 1] = q
            args[#args + 1] = floor(t.frequency)
            args[#args + 1] = tasks.payload(action.name, q, {})
        end
    end
end

function M.tick()
    local args = { state.token, M.LEADER_TTL_MS, M.ALIVE_TTL_MS, floor(core.now_ms() / 1000), failed_at(),
        #state.workers }
    for _, w in ipairs(state.workers) do args[#args + 1] = w end
    recurring_args(args)
    local r, err = scripts.run("task_tick", {}, args)
    if r == false then log.warn("tasks: scheduler tick failed: " .. tostring(err)) end
    return false
end

--- Starts the processors and the tick (TASKS_ENABLED; called once the server is up).
function M.start()
    local cfg = core.config.tasks
    if not cfg.enabled then return end
    state.host = hostname()
    state.token = ("%s:%d:%s"):format(state.host, core.pid(), core.random_id():sub(1, 12))
    local queues = M.queues(cfg.queues)
    for i = 1, cfg.processors do core.spawn(processor, i, queues) end
    core.spawn(M.tick)
    core.every(M.TICK_MS, M.tick)
    log.info(("tasks: %d processor(s) on queue(s) %s"):format(cfg.processors, table.concat(queues, ",")))
end

return M
