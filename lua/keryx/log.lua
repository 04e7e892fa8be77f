-- keryx.log — levelled logging through the C logger (one format, one sink, one filter).
local core = require "keryx.core"
local json = require "keryx.json"

local M = {}
local core_log, enabled = core.log, core.log_enabled
local select, tostring, type, concat = select, tostring, type, table.concat

local function format(...)
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do
        local v = select(i, ...)
        if type(v) == "table" then
            v = json.encode(v) or tostring(v)
        else
            v = tostring(v)
        end
        parts[i] = v
    end
    return concat(parts, " ")
end

for _, level in ipairs { "trace", "debug", "info", "warn", "error", "fatal" } do
    M[level] = function(...)
        if enabled(level) then core_log(level, format(...)) end
    end
end

M.enabled = enabled

return M
