-- keryx — the facade an application requires: `local keryx = require "keryx"`.
-- Submodules load lazily on first use (so `keryx.schema` costs nothing until touched).
local core = require "keryx.core"

local M = {}

local lazy = {
    schema = "keryx.schema",
    errors = "keryx.errors",
    json = "keryx.json",
    log = "keryx.log",
    swagger = "keryx.swagger",
    params = "keryx.params",
    middleware = "keryx.middleware",
    redis = "keryx.redis",
    crypto = "keryx.crypto",
    rate_limit = "keryx.rate_limit",
    session = "keryx.session",
    channels = "keryx.channels",
    tasks = "keryx.tasks",
}

setmetatable(M, {
    __index = function(t, k)
        local mod = lazy[k]
        if not mod then return nil end
        local v = require(mod)
        rawset(t, k, v)
        return v
    end,
})

M.version = core.version
M.config = core.config

--- Defines an action (README, the Lua API tour). Returns the validated definition.
---@param def keryx.ActionDef
---@return keryx.Action
function M.action(def)
    -- Not a tail call: define's error level counts this frame to blame the caller's line.
    local action = require("keryx.action").define(def, 2)
    return action
end

--- Defines a channel: keryx.channel{ name = "x" } or { pattern = "^room:[%w-]+$" }.
function M.channel(def)
    local channel = require("keryx.channel").define(def, 2)
    return channel
end

--- Raises a typed error: keryx.error("CONNECTION_SESSION_NOT_FOUND", "Session not found").
function M.error(err_type, message, key, value)
    local errors = require "keryx.errors"
    error(errors.new(err_type, message, key, value), 2)
end

--- Parks the request for ms milliseconds without blocking the server.
function M.sleep(ms)
    if type(ms) ~= "number" then error("keryx.sleep: ms must be a number", 2) end
    local ok, why = core.sleep(ms)
    if not ok then require("keryx.errors").check_aborted(ok, why) end
    return true
end

--- Wall-clock milliseconds since the epoch.
M.now_ms = core.now_ms

return M
