-- keryx.channel — validates a channel definition so mistakes fail at
-- boot with the definition named, never when a client subscribes. Applications write
-- `keryx.channel { … }` (lua/keryx/init.lua); boot.lua registers the result with keryx.channels.
--
--   keryx.channel {
--     name = "messages",                 -- an exact channel name (^[a-zA-Z0-9:._-]{1,200}$), or
--     pattern = "^room:[%w-]+$",         -- a Lua pattern, anchored by the author (^…$)
--     authorize = function(channel, conn) end,   -- optional; raise a typed error to refuse
--                                                -- (returning false refuses too)
--     middleware = { { before = function(channel, conn) end, after = function(channel, conn) end } },
--     presence_key = function(conn) return … end, -- optional; default: the connection's uid
--   }
--
-- Never touches Redis or sockets.
local core = require "keryx.core"

local M = {}

local type, tostring, pcall, ipairs, find = type, tostring, pcall, ipairs, string.find

local function fail(level, what, msg)
    error(("channel %s: %s"):format(what, msg), level + 1)
end

local function check_middleware(list, what, level)
    level = level + 1
    if list == nil then return {} end
    if type(list) ~= "table" then fail(level, what, "middleware must be a list") end
    local out = {}
    for i, mw in ipairs(list) do
        if type(mw) ~= "table" then fail(level, what, "middleware[" .. i .. "] must be a table") end
        if mw.before ~= nil and type(mw.before) ~= "function" then
            fail(level, what, "middleware[" .. i .. "].before must be a function")
        end
        if mw.after ~= nil and type(mw.after) ~= "function" then
            fail(level, what, "middleware[" .. i .. "].after must be a function")
        end
        out[i] = mw
    end
    return out
end

-- Lua reports a malformed pattern only when the matcher reaches the bad part, so it is tried
-- on a few subjects here; channels.find still guards every match with pcall.
local function pattern_ok(p)
    for _, subject in ipairs { "", "a", "room:x", ("a:"):rep(20) } do
        local ok, err = pcall(find, subject, p)
        if not ok then return false, err end
    end
    return true
end

function M.define(def, level)
    level = (level or 1) + 1
    if type(def) ~= "table" then error("keryx.channel expects a table", level) end
    local name, pattern = def.name, def.pattern
    local what = name ~= nil and ("'" .. tostring(name) .. "'")
        or (pattern ~= nil and ("pattern '" .. tostring(pattern) .. "'") or "(unnamed)")
    if (name == nil) == (pattern == nil) then
        fail(level, what, "give exactly one of name (an exact channel name) or pattern (a Lua pattern)")
    end
    if name ~= nil and (type(name) ~= "string" or not core.channel_name_valid(name)) then
        fail(level, what, "name must be 1..200 characters of letters, digits and : . _ -")
    end
    if pattern ~= nil then
        if type(pattern) ~= "string" or pattern == "" then fail(level, what, "pattern must be a non-empty string") end
        local ok, err = pattern_ok(pattern)
        if not ok then fail(level, what, "pattern is not a valid Lua pattern: " .. tostring(err)) end
    end
    if def.authorize ~= nil and type(def.authorize) ~= "function" then
        fail(level, what, "authorize must be a function(channel, conn)")
    end
    if def.presence_key ~= nil and type(def.presence_key) ~= "function" then
        fail(level, what, "presence_key must be a function(conn)")
    end
    if def.description ~= nil and type(def.description) ~= "string" then
        fail(level, what, "description must be a string")
    end
    for k in pairs(def) do
        if k ~= "name" and k ~= "pattern" and k ~= "authorize" and k ~= "middleware"
            and k ~= "presence_key" and k ~= "description" then
            fail(level, what, "unknown field '" .. tostring(k) .. "'")
        end
    end
    return {
        name = name,
        pattern = pattern,
        description = def.description,
        authorize = def.authorize,
        middleware = check_middleware(def.middleware, what, level),
        presence_key = def.presence_key,
        __keryx_channel = true,
    }
end

return M
