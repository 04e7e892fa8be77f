-- config_defaults.lua — the built-in configuration defaults as `core.config` shows them to Lua,
-- read from their one source: the descriptor rows of src/config.c (`DEF(…)` and
-- `DEF_BY_ENV(def, production, test)`), so no spec keeps its own copy.
--
--   local defaults = require "config_defaults"
--   defaults(node_env) → nested table keyed like config.lua, plus nodeEnv (a fresh table)
--
-- Shaped as src/lua_api_util.c push_config shapes it: ints are numbers, booleans booleans,
-- unset strings "". applicationUrl is derived as kx_config_finish derives it. The C test
-- tests/test_config.c checks every default is written exactly as kx_config_get_string prints
-- it back, which is what lets this module use the row's text as the value.
-- Reads src/config.c relative to the repository root (where busted runs).
local SOURCE = "src/config.c"

local function read(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("*a")
    f:close()
    return s
end

--- The value of C string literals written one after another ("a" "b" → ab).
local function c_string(text)
    local out, i, inside = {}, 1, false
    while i <= #text do
        local ch = text:sub(i, i)
        if not inside then
            if ch == '"' then inside = true end
        elseif ch == "\\" then
            i = i + 1
            out[#out + 1] = text:sub(i, i)
        elseif ch == '"' then
            inside = false
        else
            out[#out + 1] = ch
        end
        i = i + 1
    end
    return table.concat(out)
end

-- { "key", "ENV", KX_CT_type, OFF(field), min, DEF(…) | DEF_BY_ENV(…, …, …) },
local ROW = '^%s*{%s*"([%w%.]+)",%s*"[%w_]+",%s*(KX_CT_[%u_]+),%s*OFF%([%w_]+%),%s*%d+,%s*(.*)$'

local rows -- parsed once: { {key=, type=, def=, def_production=, def_test=}, ... }

local function parse()
    local src = read(SOURCE)
    -- String macros used as defaults: #define NAME "…" \ "…"
    local macros = {}
    for name, body in src:gmatch("#define (%u[%u_]*)%s*\\?\n(.-[^\\])\n") do
        if body:find('^%s*"') then macros[name] = c_string(body) end
    end
    local function value(tok)
        tok = tok:match("^%s*(.-)%s*$")
        if tok == "NULL" then return nil end
        if tok:sub(1, 1) == '"' then return c_string(tok) end
        return assert(macros[tok], SOURCE .. ": unknown default " .. tok)
    end
    local out = {}
    for line in src:gmatch("[^\n]+") do
        local key, ct, rest = line:match(ROW)
        if key then
            local row = { key = key, type = ct }
            local one = rest:match("^DEF%((.*)%)%s*},%s*$")
            if one then
                row.def = value(one)
            else
                local args = assert(rest:match("^DEF_BY_ENV%((.*)%)%s*},%s*$"), SOURCE .. ": row " .. key)
                local a, b, c = args:match('^(.-),%s*(.-),%s*(.-)$')
                row.def, row.def_production, row.def_test = value(a), value(b), value(c)
            end
            out[#out + 1] = row
        end
    end
    assert(#out >= 60, SOURCE .. ": too few descriptor rows parsed")
    return out
end

local function convert(ct, s)
    if s == nil then return "" end
    if ct == "KX_CT_INT" or ct == "KX_CT_WORKERS" then return assert(tonumber(s), s) end
    if ct == "KX_CT_BOOL" then return s == "true" end
    return s
end

return function(node_env)
    rows = rows or parse()
    if not node_env or node_env == "" then node_env = "development" end
    local t = { nodeEnv = node_env }
    for _, row in ipairs(rows) do
        local s = row.def
        if node_env == "production" and row.def_production then s = row.def_production end
        if node_env == "test" and row.def_test then s = row.def_test end
        local node, last = t, nil
        for part in row.key:gmatch("[^%.]+") do
            if last then
                node[last] = node[last] or {}
                node = node[last]
            end
            last = part
        end
        node[last] = convert(row.type, s)
    end
    local web = t.server.web
    if web.applicationUrl == "" then
        web.applicationUrl = ("http://%s:%d"):format(web.host, web.port)
    end
    return t
end
