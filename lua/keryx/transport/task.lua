-- keryx.transport.task — one background job through the pipeline: a `task` connection
-- (identifier job:<PROCESS_NAME>:<n>, no session), `_correlationId` from the inputs as
-- conn.correlation_id (checked as the HTTP layer checks one, else dropped) and `_fanOutId`
-- taken out before validation, the action's timeout, and the log line
-- [ACTION:TASK:OK|ERROR] … [cor:<id>].
--
-- Owns: the job's connection and its log line. Callers: keryx.task_worker (through
-- core.run_job, so each job is a task of its own with its own timeout). Never: touches Redis
-- (the processor records the outcome).
local core = require "keryx.core"
local errors = require "keryx.errors"
local conn_mod = require "keryx.conn"
local pipeline = require "keryx.pipeline"
local tasks = require "keryx.tasks"

local M = {}

local pairs, tostring = pairs, tostring
local counter = 0

--- Runs one decoded job ({class, queue, inputs}); returns
--- { ok, response?, error = {message, type}?, discard? } (lua_bridge.c's job_finish hands it over).
function M.run(job)
    local started = core.clock_ms()
    counter = counter + 1
    local identifier = ("job:%s:%d"):format(core.config.process.name, counter)
    local inputs, cor = {}, nil
    for k, v in pairs(job.inputs) do
        if k == "_correlationId" then cor = tasks.correlation_id(v)
        elseif k ~= "_fanOutId" then inputs[k] = v end
    end
    local conn = conn_mod.new { type = "task", identifier = identifier, correlation_id = cor }
    local action = pipeline.registry.by_name[job.class]
    local response, err
    if not action then
        err = errors.new("CONNECTION_TASK_DEFINITION", "action " .. tostring(job.class) .. " not found")
    else
        response, err = pipeline.act(action, inputs, conn)
    end
    pipeline.log_action("TASK", job.class, started, nil, identifier, nil, cor, err, action, inputs)
    core.metrics_task("executed", tostring(job.class), err == nil)
    if err then
        return { ok = false, error = { message = err.message, type = err.type, stack = err.stack },
            discard = conn.discard_thread }
    end
    return { ok = true, response = response, discard = conn.discard_thread }
end

return M
