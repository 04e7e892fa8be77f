-- keryx.boot — loads the framework's built-in actions and the app's actions/*.lua, then the
-- app's channels/*.lua (each sorted by file name), checks names, routes and channels are
-- unique, registers HTTP routes with the C router, and returns the entry points lua_bridge.c
-- calls: web (keryx.transport.web), cli (keryx.transport.cli), list_actions, ws_open,
-- ws_message, ws_close (keryx.ws, which runs actions through keryx.transport.websocket), and
-- on_start (server mode, once the server is up: the presence heartbeat and keryx.task_worker).
-- lua_bridge.c reads what each returns: web six values (see keryx.transport.web), cli {code, out, err}, the others
-- true when their coroutine is spoiled (must not be pooled). With MCP_SERVER_ENABLED the OAuth endpoints
-- (keryx.actions.oauth) load too: internal actions on absolute routes (core.add_route's
-- absolute flag), answering their route only — not in by_name, swagger or list_actions.
local core = require "keryx.core"
local pipeline = require "keryx.pipeline"
local channels = require "keryx.channels"
local ws = require "keryx.ws"
local web = require "keryx.transport.web"
local cli = require "keryx.transport.cli"

local M = {}

local BUILTIN = { "keryx.actions.status", "keryx.actions.swagger" }
-- The OAuth 2.1 authorization server exists only with MCP on: off, its paths are plain 404s.
if core.config.server.mcp.enabled then
    BUILTIN[#BUILTIN + 1] = "keryx.actions.oauth"
    BUILTIN[#BUILTIN + 1] = "keryx.actions.mcp"
end

-- Internal actions are kept out of by_name; their names must still be unique.
local function internal_named(registry, name)
    for _, a in ipairs(registry.list) do
        if a.internal and a.name == name then return true end
    end
    return false
end

local function add(registry, action, source)
    if type(action) ~= "table" or not action.__keryx_action then
        error(source .. ": must return keryx.action{...} or a list of them", 0)
    end
    if registry.by_name[action.name] or internal_named(registry, action.name) then
        error(source .. ": duplicate action name '" .. action.name .. "'", 0)
    end
    local id = #registry.list + 1
    registry.list[id] = action
    -- Internal (framework) actions answer their HTTP route only: never run by name.
    if not action.internal then registry.by_name[action.name] = action end
    if action.web then
        local ok, err = pcall(core.add_route, action.web.method, action.web.route, id, action.web.absolute)
        if not ok then error(source .. ": action '" .. action.name .. "': " .. tostring(err), 0) end
    end
end

local function add_all(registry, value, source)
    if type(value) == "table" and not value.__keryx_action and value[1] ~= nil then
        for _, a in ipairs(value) do add(registry, a, source) end
    else
        add(registry, value, source)
    end
end

local function load_file(path)
    local chunk, err = loadfile(path)
    if not chunk then error(err, 0) end
    local ok, value = pcall(chunk)
    if not ok then error(path .. ": " .. tostring(value), 0) end
    return value
end

-- A channels/*.lua file returns one keryx.channel{...} or a list of them.
local function add_channels(value, source)
    if type(value) == "table" and not value.__keryx_channel and value[1] ~= nil then
        for _, c in ipairs(value) do channels.register(c, source) end
    else
        channels.register(value, source)
    end
end

function M.start(app_dir)
    local registry = pipeline.registry
    for _, mod in ipairs(BUILTIN) do add_all(registry, require(mod), mod) end
    local dir = app_dir .. "/actions"
    local files = core.list_dir(dir)
    for _, f in ipairs(files or {}) do
        local path = dir .. "/" .. f
        add_all(registry, load_file(path), path)
    end
    local cdir = app_dir .. "/channels"
    for _, f in ipairs(core.list_dir(cdir) or {}) do
        local path = cdir .. "/" .. f
        add_channels(load_file(path), path)
    end
    return {
        web = web.from_c, cli = cli.cli, list_actions = M.list_actions,
        ws_open = ws.open, ws_message = ws.message, ws_close = ws.close, on_start = M.on_start,
    }
end

--- Server mode, once the server is up: the background work (lua_bridge.c runs it as a task).
function M.on_start()
    -- Also with no socket open: a presence removal that failed during a Redis outage (the
    -- process's last socket closing) is retried by the heartbeat.
    core.every(core.config.channels.presenceHeartbeatInterval * 1000, ws.heartbeat)
    require("keryx.task_worker").start()
    return false
end

function M.list_actions()
    local api = core.config.server.web.apiRoute
    local lines = {}
    for _, a in ipairs(pipeline.registry.list) do
        if not a.internal then
            local route = a.web and (a.web.method .. " " .. api .. a.web.route) or "-"
            lines[#lines + 1] = ("%-24s %-28s %s"):format(a.name, route, a.description)
            for _, l in ipairs(cli.input_lines(a, "    ")) do lines[#lines + 1] = l end
        end
    end
    return table.concat(lines, "\n") .. "\n"
end

return M
