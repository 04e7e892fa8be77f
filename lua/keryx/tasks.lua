-- keryx.tasks — background jobs: the same actions, run later, on a schedule or in parallel,
-- through a Redis queue in Resque's layout (namespace `resque`), so Resque's and node-resque's
-- tooling read what keryx writes and keryx runs what they push.
--
--   tasks.enqueue(action, inputs?, queue?)                → true | nil, err
--   tasks.enqueue_in(ms, action, inputs?, queue?, opts?)  → true | nil, err | false, "…already enqueued…"
--   tasks.enqueue_at(unix_ms, action, inputs?, queue?, opts?)   opts.allow_duplicate
--   tasks.fan_out(action, inputs_list, queue?, opts?) or tasks.fan_out(jobs, opts?)
--       jobs = { {action=, inputs=, queue=}, … }; opts = {correlation_id, batch_size (100),
--       result_ttl (600 s)} → { fan_out_id, enqueued, errors = { {index, error}, … } } | nil, err
--   tasks.fan_out_status(id)   → { total, completed, failed, results, errors } | nil, err
--   tasks.del(action, inputs?, queue?, count?)          → jobs removed from the queue | nil, err
--   tasks.del_delayed(action, inputs?, queue?)          → delayed copies removed | nil, err
--   tasks.queued(queue, start?, stop?)                  → { {class, queue, args}, … } | nil, err
--   tasks.stats()    → { processed, failed, delayed, queues = {name = length}, workers = {…} }
--   tasks.failed(start?, stop?)                         → Resque failure records | nil, err
--   tasks.retry_failed(index?)                          → jobs put back on their queue | nil, err
--
-- Rules (README "Background tasks"): an unknown action raises
-- CONNECTION_TASK_DEFINITION; inputs are validated against the action's schema at enqueue and a
-- bad input raises the same typed error as over HTTP (406), with nothing queued; Redis being
-- unreachable returns nil, "closed" | "timeout" as keryx.redis does. `_correlationId` and
-- `_fanOutId` ride in the inputs and are taken out before validation. A payload is compact JSON
-- {"class":…,"queue":…,"args":[{…}]} with the keys in that order and the inputs' keys sorted,
-- so the same job always has the same text (node-resque finds jobs by exact string).
-- Delayed jobs are filed under the whole second at or after their due time: they never run
-- early.
--
-- Owns: payloads, the enqueue API, fan-out bookkeeping. Callers: actions (keryx.tasks),
-- keryx.task_worker (recurring payloads), keryx.transport.cli (`keryx enqueue`, `keryx tasks`).
-- Never: runs a job (keryx.task_worker does).
local core = require "keryx.core"
local errors = require "keryx.errors"
local json = require "keryx.json"
local redis = require "keryx.redis"
local scripts = require "keryx.scripts"
local pipeline = require "keryx.pipeline"

local M = {}

local type, pairs, ipairs, tostring, tonumber, sort, concat = type, pairs, ipairs, tostring, tonumber, table.sort,
    table.concat
local floor, ceil = math.floor, math.ceil

M.FAN_OUT_BATCH = 100
M.FAN_OUT_TTL = 600
M.MAX_FAN_OUT = 100000

-- ---- payloads ---------------------------------------------------------------------------

local function is_sequence(t)
    local n = #t
    if n == 0 then return false end
    local count = 0
    for _ in pairs(t) do count = count + 1 end
    return count == n
end

-- JSON with object keys sorted, so equal inputs give equal text. Raises on what JSON cannot carry.
local function canonical(v, out, depth)
    if depth > 32 then error("inputs nested too deep", 0) end
    if type(v) ~= "table" or v == json.null then
        local s, err = json.encode(v)
        if not s then error(err, 0) end
        out[#out + 1] = s
        return
    end
    if is_sequence(v) then
        out[#out + 1] = "["
        for i = 1, #v do
            if i > 1 then out[#out + 1] = "," end
            canonical(v[i], out, depth + 1)
        end
        out[#out + 1] = "]"
        return
    end
    local keys = {}
    for k in pairs(v) do
        if type(k) ~= "string" then error("input keys must be strings", 0) end
        keys[#keys + 1] = k
    end
    sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = json.encode(k)
        out[#out + 1] = ":"
        canonical(v[k], out, depth + 1)
    end
    out[#out + 1] = "}"
end

--- The exact Resque payload text of one job.
function M.payload(class, queue, inputs)
    local out = { '{"class":', json.encode(class), ',"queue":', json.encode(queue), ',"args":[' }
    canonical(inputs or {}, out, 1)
    out[#out + 1] = "]}"
    return concat(out)
end

--- Decodes a payload: { class, queue, args, inputs = args[1] or {} } or nil, why.
function M.decode(payload)
    local job = json.decode(payload)
    if type(job) ~= "table" or type(job.class) ~= "string" then return nil, "not a Resque job" end
    if type(job.args) ~= "table" then job.args = {} end
    local first = job.args[1]
    job.inputs = type(first) == "table" and first ~= json.null and first or {}
    if type(job.queue) ~= "string" then job.queue = "default" end
    return job
end

-- ---- checks -----------------------------------------------------------------------------

-- A queue name as TASK_QUEUES takes one (the rule is C's: config.h).
local queue_ok = core.queue_name_valid

--- A correlation id as the HTTP layer accepts one (the rule is C's: http_guard.h), else nil.
function M.correlation_id(v)
    if core.correlation_id_valid(v) then return v end
    return nil
end

-- The action, its queue, and a copy of the inputs fit to store; raises for an unknown action,
-- a bad queue name or inputs the schema refuses (nothing is queued then).
local function prepare(name, inputs, queue, level)
    level = level + 1
    local action = type(name) == "string" and pipeline.registry.by_name[name] or nil
    if not action then
        error(errors.new("CONNECTION_TASK_DEFINITION", "action " .. tostring(name) .. " not found"), level)
    end
    if inputs ~= nil and type(inputs) ~= "table" then
        error(errors.new("CONNECTION_TASK_DEFINITION", "inputs of " .. name .. " must be a table"), level)
    end
    queue = queue or (action.task and action.task.queue) or "default"
    if not queue_ok(queue) then
        error(errors.new("CONNECTION_TASK_DEFINITION", "invalid queue name " .. tostring(queue)), level)
    end
    local stored, raw = {}, {}
    for k, v in pairs(inputs or {}) do
        stored[k] = v
        if k ~= "_correlationId" and k ~= "_fanOutId" then raw[k] = v end
    end
    if action.inputs then
        local _, verr = action.inputs:parse(raw)
        if verr then
            local e = errors.new("CONNECTION_ACTION_PARAM_REQUIRED", verr.message, verr.key)
            if not verr.secret then e.value = verr.value end
            error(e, level)
        end
    end
    local ok, payload = pcall(M.payload, name, queue, stored)
    if not ok then
        error(errors.new("CONNECTION_TASK_DEFINITION", "inputs of " .. name .. " cannot be stored: " .. payload), level)
    end
    return payload, queue
end

-- ---- enqueue ----------------------------------------------------------------------------

function M.enqueue(name, inputs, queue)
    local payload, q = prepare(name, inputs, queue, 2)
    local n, err = scripts.run("task_enqueue", {}, { q, payload })
    if not n then return nil, err end
    core.metrics_task("enqueued", name)
    return true
end

local function delayed(unix_ms, name, inputs, queue, opts, level)
    if type(unix_ms) ~= "number" or unix_ms ~= unix_ms then
        error(errors.new("CONNECTION_TASK_DEFINITION", "the time must be a number of milliseconds"), level + 1)
    end
    local payload = prepare(name, inputs, queue, level + 1)
    -- Resque files delayed jobs by whole seconds: the second at or after the due time.
    local ts = ceil(unix_ms / 1000)
    local allow = type(opts) == "table" and opts.allow_duplicate and "1" or "0"
    local v, err = scripts.run("task_enqueue_at", {}, { ts, payload, allow })
    if v == false then return false, err end
    if not v then return nil, err end
    core.metrics_task("enqueued", name)
    return true
end

function M.enqueue_at(unix_ms, name, inputs, queue, opts)
    return delayed(unix_ms, name, inputs, queue, opts, 2)
end

function M.enqueue_in(ms, name, inputs, queue, opts)
    if type(ms) ~= "number" or ms ~= ms or ms < 0 then
        error(errors.new("CONNECTION_TASK_DEFINITION", "the delay must be a number of milliseconds >= 0"), 2)
    end
    return delayed(core.now_ms() + ms, name, inputs, queue, opts, 2)
end

-- ---- fan-out ----------------------------------------------------------------------------

local function uuid()
    local h = core.sha1_hex(core.random_id())
    local variant = ("89ab"):sub(tonumber(h:sub(17, 17), 16) % 4 + 1, tonumber(h:sub(17, 17), 16) % 4 + 1)
    return ("%s-%s-4%s-%s%s-%s"):format(h:sub(1, 8), h:sub(9, 12), h:sub(14, 16), variant, h:sub(18, 20),
        h:sub(21, 32))
end
M._uuid = uuid

local function joined(set)
    local list = {}
    for v in pairs(set) do list[#list + 1] = v end
    sort(list)
    return concat(list, ",")
end

-- fan_out(action, inputs_list, queue?, opts?) | fan_out(jobs, opts?)
function M.fan_out(a, b, c, d)
    local jobs, opts = {}, nil
    if type(a) == "string" then
        if type(b) ~= "table" then
            error(errors.new("CONNECTION_TASK_DEFINITION", "fan_out: inputs_list must be a list"), 2)
        end
        for i, inputs in ipairs(b) do jobs[i] = { action = a, inputs = inputs, queue = c } end
        opts = d
    elseif type(a) == "table" then
        jobs, opts = a, b
    else
        error(errors.new("CONNECTION_TASK_DEFINITION", "fan_out: an action name or a list of jobs is required"), 2)
    end
    opts = opts or {}
    if #jobs > M.MAX_FAN_OUT then
        error(errors.new("CONNECTION_TASK_DEFINITION", "fan_out: at most " .. M.MAX_FAN_OUT .. " jobs"), 2)
    end
    local batch = floor(tonumber(opts.batch_size) or M.FAN_OUT_BATCH)
    local ttl = floor(tonumber(opts.result_ttl) or M.FAN_OUT_TTL)
    if batch < 1 or ttl < 1 then
        error(errors.new("CONNECTION_TASK_DEFINITION", "fan_out: batch_size and result_ttl must be >= 1"), 2)
    end
    local cor = opts.correlation_id ~= nil and M.correlation_id(opts.correlation_id) or nil
    -- Every action is checked before anything is written.
    for i, job in ipairs(jobs) do
        if type(job) ~= "table" or not pipeline.registry.by_name[job.action] then
            error(errors.new("CONNECTION_TASK_DEFINITION",
                "action " .. tostring(type(job) == "table" and job.action or job) .. " not found (job " .. i .. ")"), 2)
        end
    end
    local id = uuid()
    local names, queues = {}, {}
    for _, job in ipairs(jobs) do
        local action = pipeline.registry.by_name[job.action]
        names[job.action] = true
        queues[job.queue or (action.task and action.task.queue) or "default"] = true
    end
    local meta = "fanout:" .. id
    local ok, err = redis.pipeline {
        { "HSET", meta, "total", #jobs, "completed", 0, "failed", 0, "actionName", joined(names),
            "queue", joined(queues) },
        { "EXPIRE", meta, ttl },
    }
    if not ok then return nil, err end
    local enqueued, errs, args, batch_names = 0, json.array(), {}, {}
    local function flush()
        if #args == 0 then return true end
        local n, ferr = scripts.run("task_enqueue", {}, args)
        if not n then return nil, ferr end
        enqueued = enqueued + n
        for _, name in ipairs(batch_names) do core.metrics_task("enqueued", name) end
        args, batch_names = {}, {}
        return true
    end
    for i, job in ipairs(jobs) do
        local inputs = {}
        for k, v in pairs(job.inputs or {}) do inputs[k] = v end
        inputs._fanOutId = id
        if cor then inputs._correlationId = cor end
        local pok, payload, q = pcall(prepare, job.action, inputs, job.queue, 1)
        if pok then
            args[#args + 1] = q
            args[#args + 1] = payload
            batch_names[#batch_names + 1] = job.action
        else
            errs[#errs + 1] = { index = i - 1, error = errors.is(payload) and payload.message or tostring(payload) }
        end
        if #args >= batch * 2 then
            local fok, ferr = flush()
            if not fok then return nil, ferr end
        end
    end
    local fok, ferr = flush()
    if not fok then return nil, ferr end
    -- total counts the jobs that were queued: completed + failed reach it when all are done.
    if enqueued ~= #jobs then
        local v, herr = redis.call("HSET", meta, "total", enqueued)
        if not v then return nil, herr end
    end
    return { fan_out_id = id, enqueued = enqueued, errors = errs }
end

local function decode_list(list)
    local out = {}
    for i, s in ipairs(list) do out[i] = json.decode(s) or s end
    return out
end

function M.fan_out_status(id)
    if type(id) ~= "string" or not id:match("^[%w-]+$") or #id > 64 then
        return { total = 0, completed = 0, failed = 0, results = json.array {}, errors = json.array {} }
    end
    local meta = "fanout:" .. id
    local res, err = redis.pipeline {
        { "HMGET", meta, "total", "completed", "failed" },
        { "LRANGE", meta .. ":results", 0, -1 },
        { "LRANGE", meta .. ":errors", 0, -1 },
    }
    if not res then return nil, err end
    local h = res[1]
    local function num(v) return tonumber(v) or 0 end
    return {
        total = num(h[1]), completed = num(h[2]), failed = num(h[3]),
        results = json.array(decode_list(res[2])), errors = json.array(decode_list(res[3])),
    }
end

-- ---- queues, failures, stats ------------------------------------------------------------

function M.del(name, inputs, queue, count)
    local payload, q = prepare(name, inputs, queue, 2)
    return redis.call("LREM", "resque:queue:" .. q, tonumber(count) or 0, payload)
end

function M.del_delayed(name, inputs, queue)
    local payload = prepare(name, inputs, queue, 2)
    local tkey = "resque:timestamps:" .. payload
    local keys, err = redis.call("SMEMBERS", tkey)
    if not keys then return nil, err end
    local cmds = {}
    for _, k in ipairs(keys) do cmds[#cmds + 1] = { "LREM", k, 0, payload } end
    cmds[#cmds + 1] = { "DEL", tkey }
    local res, perr = redis.pipeline(cmds)
    if not res then return nil, perr end
    local n = 0
    for i = 1, #keys do n = n + (tonumber(res[i]) or 0) end
    return n
end

function M.queued(queue, start, stop)
    if not queue_ok(queue) then return nil, "invalid queue name" end
    local list, err = redis.call("LRANGE", "resque:queue:" .. queue, tonumber(start) or 0, tonumber(stop) or 100)
    if not list then return nil, err end
    local out = {}
    for _, p in ipairs(list) do
        local job = M.decode(p)
        if job then out[#out + 1] = { class = job.class, queue = job.queue, args = job.args } end
    end
    return json.array(out)
end

function M.failed(start, stop)
    local list, err = redis.call("LRANGE", "resque:failed", tonumber(start) or 0, tonumber(stop) or 100)
    if not list then return nil, err end
    return json.array(decode_list(list))
end

-- One failure record back on its queue; true when it was put back.
local function retry_entry(entry)
    local rec = json.decode(entry)
    if type(rec) ~= "table" or type(rec.payload) ~= "table" or type(rec.payload.class) ~= "string" then
        return false
    end
    local p = rec.payload
    local q = type(p.queue) == "string" and queue_ok(p.queue) and p.queue or (queue_ok(rec.queue) and rec.queue)
        or "default"
    local args = type(p.args) == "table" and p.args or {}
    local ok, payload = pcall(M.payload, p.class, q, type(args[1]) == "table" and args[1] or {})
    if not ok then return false end
    local res, err = redis.pipeline {
        { "LREM", "resque:failed", 1, entry },
        { "SADD", "resque:queues", q },
        { "RPUSH", "resque:queue:" .. q, payload },
        { "PUBLISH", "keryx:tasks", "retried" },
    }
    if not res then return nil, err end
    return true
end

function M.retry_failed(index)
    local start, stop = 0, -1
    if index ~= nil then start, stop = tonumber(index), tonumber(index) end
    if not start then return nil, "invalid index" end
    local list, err = redis.call("LRANGE", "resque:failed", start, stop)
    if not list then return nil, err end
    local n = 0
    for _, entry in ipairs(list) do
        local ok, rerr = retry_entry(entry)
        if ok == nil then return nil, rerr end
        if ok then n = n + 1 end
    end
    return n
end

function M.stats()
    local res, err = redis.pipeline {
        { "GET", "resque:stat:processed" },
        { "GET", "resque:stat:failed" },
        { "SMEMBERS", "resque:queues" },
        { "ZRANGE", "resque:delayed_queue_schedule", 0, -1 },
        { "SMEMBERS", "resque:keryx:workers" },
        { "LLEN", "resque:failed" },
    }
    if not res then return nil, err end
    for _, r in ipairs(res) do
        if type(r) == "table" and r.err then return false, r.err end
    end
    local queues, timestamps = res[3], res[4]
    sort(queues)
    local cmds = {}
    for _, q in ipairs(queues) do cmds[#cmds + 1] = { "LLEN", "resque:queue:" .. q } end
    for _, ts in ipairs(timestamps) do cmds[#cmds + 1] = { "LLEN", "resque:delayed:" .. ts } end
    local lens = {}
    if #cmds > 0 then
        lens, err = redis.pipeline(cmds)
        if not lens then return nil, err end
    end
    local out = { processed = tonumber(res[1]) or 0, failed = tonumber(res[2]) or 0,
        failed_jobs = tonumber(res[6]) or 0, queues = {}, queue_order = queues, delayed = 0 }
    for i, q in ipairs(queues) do out.queues[q] = tonumber(lens[i]) or 0 end
    for i = 1, #timestamps do out.delayed = out.delayed + (tonumber(lens[#queues + i]) or 0) end
    local workers = res[5]
    sort(workers)
    out.workers = json.array(workers)
    return out
end

return M
