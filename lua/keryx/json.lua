-- keryx.json: the one JSON codec of the Lua side (responses, logs, Redis values, OpenAPI).
--
-- A thin wrapper over lua-cjson 2.1.0 (Debian), which has no empty-array support, escapes
-- "/" as "\/", prints numbers with at most 14 significant digits and raises on NaN/Inf.
-- This module fixes those four things and nothing else:
--   * M.empty_array (a read-only sentinel) and tables marked with M.array(t) encode as JSON
--     arrays, even when empty; a plain empty table encodes as {}.
--   * "/" is never escaped.
--   * integers up to 2^63 are printed exactly (1e14 and beyond would lose digits in cjson);
--     other numbers keep cjson's 14 significant digits; NaN and +/-Inf encode as null
--     (what JavaScript's JSON.stringify does).
--   * encode and decode never raise: they return nil, err.
-- It owns private cjson instances (cjson.new), so settings made by other code never leak in.
-- Encoding runs in C when keryx.core has json_encode (src/lua_api_json.c: the same bytes, without
-- this file's two passes and glibc's float printer); the Lua encoder below stays the reference
-- and answers what the C one hands back (errors, tables with a metatable of their own), and
-- everything where keryx.core is absent.
-- Decoding is strict JSON: no NaN/Infinity/hex literals, nesting deeper than 1000 fails.
-- Decoded arrays are plain tables (cjson 2.1.0 cannot mark them): `[]` decodes to an empty
-- table, which re-encodes as {}.

local M = {}

local cjson_base = require "cjson"
local cjson_safe = require "cjson.safe"

local type, pairs = type, pairs
local getmetatable, setmetatable, error = getmetatable, setmetatable, error
local math_floor, math_huge = math.floor, math.huge
local str_format, str_find, str_gsub = string.format, string.find, string.gsub
local concat = table.concat

local MAX_DEPTH = 1000
-- integral numbers at or above this magnitude lose digits with cjson's %.14g
local EXACT_LIMIT = 1e14
local INT64_LIMIT = 2 ^ 63

local codec = cjson_safe.new()
codec.encode_sparse_array(true)       -- excessively sparse arrays become objects, no error
codec.encode_invalid_numbers("null")  -- NaN / Inf encode as null instead of raising
codec.decode_invalid_numbers(false)   -- strict JSON input: no NaN, Infinity, 0x10
codec.encode_max_depth(MAX_DEPTH)
codec.decode_max_depth(MAX_DEPTH)

local raw_encode, raw_decode = codec.encode, codec.decode

M.null = cjson_base.null

-- Arrays marked by M.array share this metatable.
local array_mt = { __name = "keryx.json.array" }

-- The sentinel is its own kind: read-only, so nobody fills the shared empty array by accident.
M.empty_array = setmetatable({}, {
    __name = "keryx.json.empty_array",
    __newindex = function()
        error("keryx.json.empty_array is read-only", 2)
    end,
    __metatable = false,
})
local empty_array = M.empty_array

--- Mark t (or a new table) as a JSON array; returns t.
function M.array(t)
    if t == nil then
        return setmetatable({}, array_mt)
    end
    if type(t) ~= "table" then
        error("keryx.json.array: expected a table or nil, got " .. type(t), 2)
    end
    local mt = getmetatable(t)
    if mt ~= nil and mt ~= array_mt then
        error("keryx.json.array: table already has a metatable", 2)
    end
    return setmetatable(t, array_mt)
end

--- True when v encodes as a JSON array because it is marked (or is the sentinel).
function M.is_array(v)
    return v == empty_array or (type(v) == "table" and getmetatable(v) == array_mt)
end

local function is_big_integer(n)
    return n == n and n ~= math_huge and n ~= -math_huge
        and math_floor(n) == n and (n >= EXACT_LIMIT or n <= -EXACT_LIMIT)
end

local function format_big_integer(n)
    if n < INT64_LIMIT and n > -INT64_LIMIT then
        return str_format("%.0f", n)
    end
    return str_format("%.17g", n)
end

-- cjson escapes "/" as "\/". Walk escape pairs so "\\" followed by "/" is never touched
-- (cjson never emits a raw "/", but the pairwise walk does not rely on that).
local function unescape_pair(c)
    if c == "/" then
        return "/"
    end
    return "\\" .. c
end

local function fix_slashes(s)
    if str_find(s, "\\/", 1, true) == nil then
        return s
    end
    return (str_gsub(s, "\\(.)", unescape_pair))
end
M._fix_slashes = fix_slashes -- exposed for the specs only

-- First pass: find the tables cjson cannot encode as we want (marked arrays, the sentinel,
-- big integers as values or keys) and every table above them. `special` maps such tables
-- to true. Returns whether v itself needs the slow path, or nil, err when too deep.
local function scan(v, depth, special)
    local tv = type(v)
    if tv == "number" then
        return is_big_integer(v)
    end
    if tv ~= "table" then
        return false
    end
    if depth > MAX_DEPTH then
        return nil, "Cannot serialise, excessive nesting (" .. depth .. ")"
    end
    local found = v == empty_array or getmetatable(v) == array_mt
    for k, val in pairs(v) do
        if type(k) == "number" and is_big_integer(k) then
            found = true
        end
        local tval = type(val)
        if tval == "table" or tval == "number" then
            local sub, err = scan(val, depth + 1, special)
            if sub == nil then
                return nil, err
            end
            if sub then
                found = true
            end
        end
    end
    if found and special then
        special[v] = true
    end
    return found
end

local encode_value

-- Largest positive integer key when every key is one, else nil (an object). Mirrors cjson.
local function array_extent(t)
    local max, count = 0, 0
    for k in pairs(t) do
        if type(k) ~= "number" or k < 1 or math_floor(k) ~= k then
            return nil
        end
        if k > max then
            max = k
        end
        count = count + 1
    end
    -- cjson's default sparse rule: ratio 2, safe up to index 10
    if max > 10 and max > count * 2 then
        return nil
    end
    return max
end

local function encode_key(k)
    local tk = type(k)
    if tk == "string" then
        return raw_encode(k)
    end
    if tk == "number" then
        if is_big_integer(k) then
            return '"' .. format_big_integer(k) .. '"'
        end
        local s = raw_encode(k) -- numbers as keys become strings, as cjson does
        if s == nil then
            return nil, "Cannot serialise number key"
        end
        return '"' .. s .. '"'
    end
    return nil, "Cannot serialise table: table key must be a number or string"
end

local function encode_array(t, n, special, out)
    out[#out + 1] = "["
    for i = 1, n do
        if i > 1 then
            out[#out + 1] = ","
        end
        local v = t[i]
        if v == nil then
            out[#out + 1] = "null"
        else
            local ok, err = encode_value(v, special, out)
            if not ok then
                return nil, err
            end
        end
    end
    out[#out + 1] = "]"
    return true
end

local function encode_object(t, special, out)
    out[#out + 1] = "{"
    local first = true
    for k, v in pairs(t) do
        local ks, kerr = encode_key(k)
        if ks == nil then
            return nil, kerr
        end
        if not first then
            out[#out + 1] = ","
        end
        first = false
        out[#out + 1] = ks
        out[#out + 1] = ":"
        local ok, err = encode_value(v, special, out)
        if not ok then
            return nil, err
        end
    end
    out[#out + 1] = "}"
    return true
end

-- Slow path, only along the spine of tables marked in `special`; everything else is
-- handed to cjson whole.
function encode_value(v, special, out)
    local tv = type(v)
    if tv == "number" and is_big_integer(v) then
        out[#out + 1] = format_big_integer(v)
        return true
    end
    if tv ~= "table" or not special[v] then
        local s, err = raw_encode(v)
        if s == nil then
            return nil, err
        end
        out[#out + 1] = s
        return true
    end
    if v == empty_array then
        out[#out + 1] = "[]"
        return true
    end
    local n = array_extent(v)
    if getmetatable(v) == array_mt then
        if n == nil then
            -- a marked table with other keys or too sparse: keep the data, as an object
            return encode_object(v, special, out)
        end
        return encode_array(v, n, special, out)
    end
    if n ~= nil and n > 0 then
        return encode_array(v, n, special, out)
    end
    return encode_object(v, special, out)
end

-- The Lua encoder: json.lua's reference for every value (tests/test_json_encode.c holds the C
-- encoder to it byte for byte).
local function encode_lua(v)
    -- Detect first without allocating: most values need no special handling.
    local needs, err = scan(v, 1, nil)
    if needs == nil then
        return nil, err
    end
    if not needs then
        local s, e = raw_encode(v)
        if s == nil then
            return nil, e
        end
        return fix_slashes(s)
    end
    local special = {}
    scan(v, 1, special)
    local out = {}
    local ok, e = encode_value(v, special, out)
    if not ok then
        return nil, e
    end
    return fix_slashes(concat(out))
end
M._encode_lua = encode_lua -- exposed for the specs only

-- core.json_encode(v, array_mt, empty_array) → text, or nil when the Lua encoder must answer.
local c_encode
do
    local ok, core = pcall(require, "keryx.core")
    if ok and type(core) == "table" and type(core.json_encode) == "function" then
        c_encode = core.json_encode
    end
end

--- Compact JSON text for v, or nil, err (functions, userdata, cycles, bad keys).
function M.encode(v)
    if c_encode ~= nil then
        local s = c_encode(v, array_mt, empty_array)
        if s ~= nil then
            return s
        end
    end
    return encode_lua(v)
end

--- Value for JSON text s, or nil, err. Never raises; JSON null decodes to M.null.
function M.decode(s)
    if type(s) ~= "string" then
        return nil, "expected a JSON string, got " .. type(s)
    end
    local v, err = raw_decode(s)
    if v == nil and err ~= nil then
        return nil, err
    end
    return v
end

return M
