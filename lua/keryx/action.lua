-- keryx.action — validates an action definition so mistakes fail at boot with the
-- file and field named, never at request time.
local errors = require "keryx.errors"

local M = {}

local METHODS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true }

local function fail(level, name, msg)
    error(("action %s: %s"):format(name and ("'" .. name .. "'") or "(unnamed)", msg), level + 1)
end

local function check_middleware(list, name, level)
    level = level + 1 -- errors point past this helper, at define's caller
    if list == nil then return {} end
    if type(list) ~= "table" then fail(level, name, "middleware must be a list") end
    for i, mw in ipairs(list) do
        if type(mw) ~= "table" then fail(level, name, "middleware[" .. i .. "] must be a table") end
        if mw.before ~= nil and type(mw.before) ~= "function" then
            fail(level, name, "middleware[" .. i .. "].before must be a function")
        end
        if mw.after ~= nil and type(mw.after) ~= "function" then
            fail(level, name, "middleware[" .. i .. "].after must be a function")
        end
    end
    return list
end

---@class keryx.Middleware
---@field name string?
---@field before fun(params: table, conn: keryx.Conn): table? replacement params, or nil
---@field after fun(params: table, conn: keryx.Conn, response: any, err: table?): any replacement response, or nil

---@class keryx.ActionDef
---@field name string letters, digits and : . _ -
---@field description string?
---@field inputs keryx.Schema? a z.object{...}
--- outputs: what run returns on success, a z.object{...} like inputs: documentation only (the
--- 200 schema in the OpenAPI document, `<name>_Response`), never checked at run time.
---@field outputs keryx.Schema?
--- errors: error types the action raises itself (keryx.errors.types names): each adds its status
--- to the OpenAPI responses, beside the framework's own (validation, timeout, middleware's).
---@field errors string[]?
--- web.absolute: the route is a path of its own, not under WEB_SERVER_API_ROUTE (framework
--- endpoints such as /oauth/token).
---@field web {route: string, method: "GET"|"POST"|"PUT"|"PATCH"|"DELETE"?, absolute: boolean?}?
--- internal: a framework endpoint, reachable only by its HTTP route: hidden from swagger and
--- `keryx actions`, never an MCP tool, not runnable by name (WebSocket, `keryx run`).
---@field internal boolean?
---@field raw_body boolean? internal actions only: the request body reaches the action unparsed
--- as conn.raw_body (the MCP endpoint reads JSON-RPC itself) and the params are empty.
---@field mcp {tool: boolean?, login: boolean?, signup: boolean?, resource: table?, prompt: table?}?
--- tool: an MCP tool (opt-in); resource / prompt: keryx.mcp_resources; login/signup: the action
--- the OAuth authorize page runs to sign a user in / up (it must return {user = {id = <number>}}).
---@field timeout number? ms; default ACTION_TIMEOUT (0 = none)
---@field middleware keryx.Middleware[]?
--- The response: JSON-encoded, or a string body under conn:set_content_type.
---@field run fun(params: table, conn: keryx.Conn): any

---@class keryx.Action: keryx.ActionDef
---@field description string
---@field middleware keryx.Middleware[]
---@field __keryx_action true

--- Checks def and returns the action; raises naming the field, blamed `level` frames up.
---@param def keryx.ActionDef
---@param level integer?
---@return keryx.Action
function M.define(def, level)
    level = (level or 1) + 1
    if type(def) ~= "table" then error("keryx.action expects a table", level) end
    local name = def.name
    if type(name) ~= "string" or not name:match("^[%w:._-]+$") then
        fail(level, name, "name must be a string of letters, digits and : . _ -")
    end
    if type(def.run) ~= "function" then fail(level, name, "run must be a function") end
    if def.inputs ~= nil and (type(def.inputs) ~= "table" or def.inputs.kind ~= "object"
        or type(def.inputs.parse) ~= "function") then
        fail(level, name, "inputs must be a keryx.schema object (z.object{...})")
    end
    if def.outputs ~= nil and (type(def.outputs) ~= "table" or def.outputs.kind ~= "object"
        or type(def.outputs.parse) ~= "function") then
        fail(level, name, "outputs must be a keryx.schema object (z.object{...})")
    end
    local errs = def.errors
    if errs ~= nil then
        if type(errs) ~= "table" then fail(level, name, "errors must be a list of error types") end
        for i, t in ipairs(errs) do
            if type(t) ~= "string" or not errors.known(t) then
                fail(level, name, "errors[" .. i .. "] must be a keryx.errors type (got " .. tostring(t) .. ")")
            end
        end
    end
    if def.description ~= nil and type(def.description) ~= "string" then
        fail(level, name, "description must be a string")
    end
    if def.timeout ~= nil and (type(def.timeout) ~= "number" or def.timeout < 0) then
        fail(level, name, "timeout must be a number of milliseconds >= 0")
    end
    local web = def.web
    if web ~= nil then
        if type(web) ~= "table" or type(web.route) ~= "string" or web.route:sub(1, 1) ~= "/" then
            fail(level, name, "web.route must be a string starting with /")
        end
        local method = (web.method or "GET"):upper()
        if not METHODS[method] then
            fail(level, name, "web.method must be one of GET, POST, PUT, PATCH, DELETE")
        end
        if web.absolute ~= nil and type(web.absolute) ~= "boolean" then
            fail(level, name, "web.absolute must be a boolean")
        end
        -- App routes live under the API prefix (swagger and `keryx actions` say so); only the
        -- framework's own endpoints sit beside it.
        if web.absolute and not def.internal then
            fail(level, name, "web.absolute is for internal (framework) actions only")
        end
        web = { route = web.route, method = method, absolute = web.absolute or nil }
    end
    local task = def.task
    if task ~= nil then
        if type(task) ~= "table" then fail(level, name, "task must be a table {queue =, frequency =}") end
        local q = task.queue
        if q ~= nil and not require("keryx.core").queue_name_valid(q) then
            fail(level, name, "task.queue must be a queue name (letters, digits and _ . : -)")
        end
        local f = task.frequency
        if f ~= nil and (type(f) ~= "number" or f ~= f or f < 0) then
            fail(level, name, "task.frequency must be a number of milliseconds >= 0")
        end
        task = { queue = q or "default", frequency = (f and f > 0) and f or nil }
    end
    if def.internal ~= nil and type(def.internal) ~= "boolean" then
        fail(level, name, "internal must be a boolean")
    end
    -- Tools are opt-in (mcp = { tool = true }): a destructive or private action must never
    -- be reachable by every authenticated MCP client by accident.
    local mcp = { tool = false }
    if type(def.mcp) == "table" then
        for k, v in pairs(def.mcp) do mcp[k] = v end
    end
    -- A framework endpoint (OAuth) is never a tool, whatever its definition says.
    if def.internal then mcp = { tool = false } end
    return {
        name = name,
        description = def.description or ("An Action: " .. name),
        inputs = def.inputs,
        outputs = def.outputs,
        errors = errs,
        web = web,
        task = task,
        middleware = check_middleware(def.middleware, name, level),
        timeout = def.timeout,
        internal = def.internal or nil,
        -- Framework endpoints only (MCP): the body reaches the action as conn.raw_body, unparsed.
        raw_body = (def.internal and def.raw_body == true) or nil,
        mcp = mcp,
        run = def.run,
        __keryx_action = true,
    }
end

return M
