-- keryx.transport.cli — `keryx run ACTION [--k v…]`: argv → params, one action run, the
-- answer as { code = <exit status>, out = <stdout text | nil>, err = <stderr text | nil> },
-- which lua_bridge.c (cli_finish) prints and exits with.
--
-- Owns: the --flag parsing and the CLI envelopes. Callers: lua_bridge.c (entry point `cli`,
-- through boot.lua). Never: writes to stdout/stderr itself (C does, after the task ends).
local core = require "keryx.core"
local errors = require "keryx.errors"
local json = require "keryx.json"
local conn_mod = require "keryx.conn"
local pipeline = require "keryx.pipeline"

local M = {}

local config = core.config
local type, tostring, ipairs = type, tostring, ipairs

local function add_arg(raw, k, v)
    local old = raw[k]
    if old == nil then raw[k] = v
    elseif type(old) == "table" then old[#old + 1] = v
    else raw[k] = { old, v } end
end

local function cli_args(argv)
    local raw, i = {}, 1
    while i <= #argv do
        local a = argv[i]
        if a == "-q" or a == "--quiet" then -- main.c reads these too (quiet logging)
            i = i + 1
        elseif a:sub(1, 2) == "--" and #a > 2 then
            local k, v = a:match("^%-%-([^=]+)=(.*)$")
            if k then
                i = i + 1
            else
                k = a:sub(3)
                local nxt = argv[i + 1]
                if nxt ~= nil and nxt:sub(1, 2) ~= "--" and nxt ~= "-q" then
                    v, i = nxt, i + 2
                else
                    v, i = "true", i + 1
                end
            end
            add_arg(raw, k, v)
        else
            return nil, errors.new("CONNECTION_ACTION_PARAM_FORMATTING",
                "unexpected argument '" .. a .. "' (use --name value)")
        end
    end
    return raw
end

local function fail_envelope(err)
    local env = errors.to_envelope(err, { include_stack = config.cli.includeStackInErrors, now_ms = core.now_ms() })
    return { code = 1, err = json.encode({ response = {}, error = env.error }) }
end

-- `keryx enqueue ACTION --k v`: validated at enqueue as keryx.tasks.enqueue does.
local function enqueue(name, argv)
    local tasks = require "keryx.tasks"
    local raw, err = cli_args(argv)
    if not raw then return fail_envelope(err) end
    local ok, res, rerr = pcall(tasks.enqueue, name, raw)
    if not ok then return fail_envelope(errors.is(res) and res or errors.from_any(res, nil)) end
    if not res then return fail_envelope(errors.redis_failure(rerr)) end
    return { code = 0, out = json.encode({ enqueued = true }) }
end

local function tasks_text(st)
    local lines = {}
    for _, q in ipairs(st.queue_order) do lines[#lines + 1] = ("%s %d"):format(q, st.queues[q]) end
    lines[#lines + 1] = ("delayed %d"):format(st.delayed)
    lines[#lines + 1] = ("failed %d"):format(st.failed_jobs)
    lines[#lines + 1] = ("workers %d"):format(#st.workers)
    for _, w in ipairs(st.workers) do lines[#lines + 1] = "worker " .. w end
    return table.concat(lines, "\n")
end

-- `keryx tasks [--json]` and `keryx tasks retry-failed`.
local function tasks_command(argv)
    local tasks = require "keryx.tasks"
    local as_json, retry = false, false
    for _, a in ipairs(argv) do
        if a == "--json" then as_json = true
        elseif a == "retry-failed" then retry = true
        else
            return { code = 1, err = "keryx tasks: unknown argument '" .. a .. "' (expected retry-failed or --json)" }
        end
    end
    if retry then
        local n, err = tasks.retry_failed()
        if not n then return fail_envelope(errors.redis_failure(err)) end
        return { code = 0, out = json.encode({ retried = n }) }
    end
    local st, err = tasks.stats()
    if not st then return fail_envelope(errors.redis_failure(err)) end
    if not as_json then return { code = 0, out = tasks_text(st) } end
    return { code = 0, out = json.encode({ queues = st.queues, delayed = st.delayed, failed = st.failed_jobs,
        processed = st.processed, workers = st.workers }) }
end

--- Entry point for `keryx run` (and `keryx enqueue`, `keryx tasks`).
---@param name string
---@param argv string[]
---@param command string?  "run" (default), "enqueue" or "tasks"
---@return {code: integer, out: string?, err: string?}
function M.cli(name, argv, command)
    if command == "enqueue" then return enqueue(name, argv) end
    if command == "tasks" then return tasks_command(argv) end
    local started = core.clock_ms()
    local identifier = "cli:" .. (os.getenv("USER") or "unknown")
    local conn = conn_mod.new { type = "cli", identifier = identifier }
    local action = pipeline.registry.by_name[name]
    local raw, err = cli_args(argv)
    local response
    if not action then
        err = errors.new("CONNECTION_ACTION_NOT_FOUND", "Action not found: " .. tostring(name))
    elseif raw then
        response, err = pipeline.act(action, raw, conn)
    end
    pipeline.log_action("CLI", name, started, nil, identifier, nil, nil, err, action, raw)
    if not err then
        local out, eerr = json.encode({ response = response == nil and {} or response })
        if out then return { code = 0, out = out } end
        err = errors.internal("cannot encode the response as JSON: " .. tostring(eerr))
    end
    return fail_envelope(err)
end

return M
