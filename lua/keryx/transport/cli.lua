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
local type, tostring = type, tostring

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

--- Entry point for `keryx run`.
---@param name string
---@param argv string[]
---@return {code: integer, out: string?, err: string?}
function M.cli(name, argv)
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
    local env = errors.to_envelope(err, { include_stack = config.cli.includeStackInErrors, now_ms = core.now_ms() })
    return { code = 1, err = json.encode({ response = {}, error = env.error }) }
end

return M
