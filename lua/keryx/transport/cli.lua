-- keryx.transport.cli — `keryx run ACTION [--k v…]`: argv → params, one action run, the
-- answer as { code = <exit status>, out = <stdout text | nil>, err = <stderr text | nil> },
-- which lua_bridge.c (cli_finish) prints and exits with.
--
-- Owns: the --flag parsing, `keryx run ACTION --help` and the refusal of flags the action's
-- schema does not declare (both from schema.lua field_docs; input_lines also serves
-- `keryx actions`), and the CLI envelopes. Callers: lua_bridge.c (entry point `cli`,
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

-- ---- the schema on the command line ---------------------------------------------------------

-- Edit distance with adjacent transpositions counted as one edit ("nmae" is 1 from "name").
local function edit_distance(a, b)
    local d = {}
    for i = 0, #a do d[i] = { [0] = i } end
    for j = 0, #b do d[0][j] = j end
    for i = 1, #a do
        for j = 1, #b do
            local cost = a:byte(i) == b:byte(j) and 0 or 1
            local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
                v = math.min(v, d[i - 2][j - 2] + 1)
            end
            d[i][j] = v
        end
    end
    return d[#a][#b]
end

--- The closest of `names` to `word` when it is close enough to be a likely typo, else nil.
function M.closest(word, names)
    local best, best_d
    for _, n in ipairs(names) do
        local d = edit_distance(word:lower(), n:lower())
        if (not best_d or d < best_d) and d <= math.max(1, math.min(3, math.floor(#n / 3))) then
            best, best_d = n, d
        end
    end
    return best
end

local function value_text(v)
    if type(v) == "string" then return '"' .. v .. '"' end
    return json.encode(v) or tostring(v)
end

--- One line per input of the action, columns aligned: "--name <string>  required  text".
--- `indent` starts each line. An action without an inputs schema has none.
---@return string[]
function M.input_lines(action, indent)
    local docs = action.inputs and action.inputs.kind == "object" and action.inputs:field_docs() or {}
    local rows, w1, w2 = {}, 0, 0
    for _, d in ipairs(docs) do
        local flag = "--" .. d.name .. " <" .. d.type .. ">"
        local status = d.required and "required" or (d.default ~= nil and ("default " .. value_text(d.default)))
            or "optional"
        if d.secret then status = status .. ", secret" end
        local text = d.description or (d.name .. " parameter")
        if d.constraints then text = text .. "; " .. d.constraints end
        rows[#rows + 1] = { flag, status, text }
        w1, w2 = math.max(w1, #flag), math.max(w2, #status)
    end
    local lines = {}
    for i, r in ipairs(rows) do
        lines[i] = ("%s%-" .. w1 .. "s  %-" .. w2 .. "s  %s"):format(indent or "", r[1], r[2], r[3])
    end
    return lines
end

-- `keryx run|enqueue ACTION --help`: the action's description, usage and inputs (stdout, exit 0).
local function help_text(action, verb)
    verb = verb or "run"
    local usage = { "usage: keryx " .. verb .. " " .. action.name }
    local docs = action.inputs and action.inputs.kind == "object" and action.inputs:field_docs() or {}
    for _, d in ipairs(docs) do
        local flag = "--" .. d.name .. " <" .. d.type .. ">"
        usage[#usage + 1] = d.required and flag or ("[" .. flag .. "]")
    end
    usage[#usage + 1] = "[-q]"
    local out = { "keryx " .. verb .. " " .. action.name .. " - " .. (action.description or ""), "",
        table.concat(usage, " "), "" }
    if #docs == 0 then
        out[#out + 1] = action.inputs and "inputs: none" or "inputs: not declared (any --name value is passed on)"
    else
        out[#out + 1] = "inputs:"
        for _, l in ipairs(M.input_lines(action, "  ")) do out[#out + 1] = l end
    end
    if action.web and action.web.route then
        out[#out + 1] = ""
        out[#out + 1] = "route: " .. action.web.method .. " " .. config.server.web.apiRoute .. action.web.route
    end
    out[#out + 1] = ""
    out[#out + 1] = "-q, --quiet: no log lines on stderr. Values are strings, coerced by the schema; " ..
        "a repeated flag gives an array, a bare flag true."
    return table.concat(out, "\n")
end

-- Flags the action's schema does not declare: an error naming the first (with a hint when a
-- declared input is close). Actions without an object schema take any flag.
local function unknown_flag(action, raw, verb, allowed)
    if not (action.inputs and action.inputs.kind == "object") then return nil end
    local fields = action.inputs.fields
    local unknown = {}
    for k in pairs(raw) do
        if fields[k] == nil and not (allowed and allowed[k]) then unknown[#unknown + 1] = k end
    end
    if #unknown == 0 then return nil end
    table.sort(unknown)
    local hint = M.closest(unknown[1], action.inputs.field_keys)
    return ("error: unknown option '--%s' for action %s%s (see keryx %s %s --help)"):format(unknown[1],
        action.name, hint and (" (did you mean --" .. hint .. "?)") or "", verb or "run", action.name)
end

local function wants_help(argv)
    for _, a in ipairs(argv) do
        if a == "--help" or a == "-h" then return true end
    end
    return false
end

local function fail_envelope(err)
    local env = errors.to_envelope(err, { include_stack = config.cli.includeStackInErrors, now_ms = core.now_ms() })
    return { code = 1, err = json.encode({ response = {}, error = env.error }) }
end

-- `keryx enqueue ACTION --k v`: validated at enqueue as keryx.tasks.enqueue does.
-- The job's bookkeeping inputs (keryx.tasks) pass the unknown-flag check.
local JOB_INPUTS = { _correlationId = true }

local function enqueue(name, argv)
    local tasks = require "keryx.tasks"
    local action = pipeline.registry.by_name[name]
    if action and wants_help(argv) then return { code = 0, out = help_text(action, "enqueue") } end
    local raw, err = cli_args(argv)
    if not raw then return fail_envelope(err) end
    local bad = action and unknown_flag(action, raw, "enqueue", JOB_INPUTS)
    if bad then return { code = 1, err = bad } end
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
    if action and wants_help(argv) then return { code = 0, out = help_text(action) } end
    local raw, err = cli_args(argv)
    local bad = action and raw and unknown_flag(action, raw)
    if bad then return { code = 1, err = bad } end
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
