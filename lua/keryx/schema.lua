-- keryx.schema: a small zod-like input schema; validation messages are keryx's own, stable wording.
--
--   local z = require "keryx.schema"
--   local inputs = z.object {
--       name     = z.string():min(3):describe("Display name"),
--       email    = z.string():email(),
--       password = z.string():min(8):secret(),
--       tags     = z.array(z.string()):max(5):optional(),
--   }
--   local params, err = inputs:parse(raw)  -- params | nil, {key, message, value, secret}
--
-- One schema gives three things: validation with coercion (here), JSON Schema (for MCP tools
-- and OpenAPI), and the key list / descriptions the CLI turns into flags.
--
-- Rules worth knowing:
--   * Schemas are immutable: every modifier returns a new schema, so a shared base can be
--     refined in several places without surprises.
--   * Defining a schema wrongly (bad argument types, malformed Lua pattern) raises a plain Lua
--     error at load time. Validating input never raises: it returns nil, err.
--   * Strings are never coerced from other types. min/max count UTF-8 characters (bytes that
--     are not continuation bytes), not bytes.
--   * number/integer accept numbers and decimal strings only ("42", "-1.5", "1e3"); "", " 42 ",
--     "0x10", "inf", "nan" fail. Integers must be whole and within +/-(2^53-1).
--   * boolean accepts true/false, and the strings "true"/"false" (any case), "1"/"0".
--   * array wraps a single non-table value into a one-element array (a query `?tag=a` gives a
--     string); item errors read `<key>[<i>] ...` with 1-based i; key stays the top-level key.
--   * A JSON null (keryx.json.null) counts as absent. `:default(v)` applies to absent values
--     and implies optional; table defaults are deep-copied per parse.
--   * Objects check their keys in sorted order; the first failure wins. Unknown keys are
--     dropped from the result. A field that is (or contains) a secret never has its value
--     echoed in an error (Keryx echoes them; keryx never does).
--   * :pattern() takes a Lua pattern, matched with string.find (unanchored unless you write
--     ^/$). JSON Schema gets an equivalent ECMAScript `pattern` when the translation is exact
--     for ASCII input; patterns using %b, %f, back-references or non-ASCII bytes are described
--     in `description` instead ("Must match Lua pattern: ...") and carry no `pattern`.

local M = {}

local json = require "keryx.json"

local type, pairs, ipairs, tostring, tonumber, select = type, pairs, ipairs, tostring, tonumber, select
local setmetatable, getmetatable, error, pcall = setmetatable, getmetatable, error, pcall
local str_find, str_sub, str_gsub, str_lower = string.find, string.sub, string.gsub, string.lower
local str_byte, str_char, str_format = string.byte, string.char, string.format
local math_floor, math_huge, math_max, math_min = math.floor, math.huge, math.max, math.min
local tbl_sort, tbl_concat, tbl_insert = table.sort, table.concat, table.insert

local null = json.null
local MAX_SAFE_INTEGER = 2 ^ 53 - 1

---@class keryx.Schema
---@field kind "string"|"number"|"integer"|"boolean"|"array"|"object"
---@field fields table<string, keryx.Schema>? object schemas: their fields
---@field item keryx.Schema? array schemas: the item schema
local Schema = {}
local schema_mt = { __index = Schema, __name = "keryx.schema" }

local function is_schema(v)
    return type(v) == "table" and getmetatable(v) == schema_mt
end
M.is_schema = is_schema

local function new_schema(kind)
    return setmetatable({
        kind = kind,
        checks = {},
        required = true,
        is_optional = false,
        has_default = false,
        is_secret = false,
        has_secret = false,
    }, schema_mt)
end

local function clone(s)
    local c = {}
    for k, v in pairs(s) do
        c[k] = v
    end
    local checks = {}
    for i, chk in ipairs(s.checks) do
        checks[i] = chk
    end
    c.checks = checks
    return setmetatable(c, schema_mt)
end

local function deep_copy(v)
    if type(v) ~= "table" or v == json.empty_array then
        return v
    end
    local c = {}
    for k, val in pairs(v) do
        c[deep_copy(k)] = deep_copy(val)
    end
    if json.is_array(v) then
        json.array(c) -- keep the JSON array marker; other metatables are not copied
    end
    return c
end

-- A type noun per kind, used in `<key> must be a <noun>` (wording clients may match on).
local NOUN = {
    string = "a string",
    number = "a number",
    integer = "an integer",
    boolean = "a boolean",
    array = "an array",
    object = "an object",
}

local function fmt_num(n)
    if math_floor(n) == n and n > -1e15 and n < 1e15 then
        return str_format("%d", n)
    end
    return tostring(n)
end

local function utf8_len(s)
    local _, continuation = str_gsub(s, "[\128-\191]", "")
    return #s - continuation
end

-- The first n UTF-8 characters of s.
local function utf8_prefix(s, n)
    local count, len = 0, #s
    for i = 1, len do
        local b = str_byte(s, i)
        if b < 128 or b > 191 then
            if count == n then
                return str_sub(s, 1, i - 1)
            end
            count = count + 1
        end
    end
    return s
end

local function is_absent(v)
    return v == nil or v == null
end

---------------------------------------------------------------------------------------------
-- Lua pattern parsing: validates a pattern at definition time (Lua only reports malformed
-- patterns when the matcher reaches the bad part) and translates it to an ECMAScript regex.

local REGEX_SYNTAX = {}
for c in ("^$\\.*+?()[]{}|/"):gmatch(".") do
    REGEX_SYNTAX[str_byte(c)] = true
end
local CLASS_SPECIAL = { [str_byte("\\")] = true, [str_byte("]")] = true,
    [str_byte("[")] = true, [str_byte("^")] = true, [str_byte("-")] = true }

local function regex_char(b, in_class)
    if b < 32 or b == 127 then
        return str_format("\\x%02x", b)
    end
    local c = str_char(b)
    if in_class then
        if CLASS_SPECIAL[b] then
            return "\\" .. c
        end
    elseif REGEX_SYNTAX[b] then
        return "\\" .. c
    end
    return c
end

-- Regex character-class body for the set bytes (all < 128), with ranges.
local function class_body(set)
    local out, b = {}, 0
    while b < 128 do
        if set[b] then
            local e = b
            while e + 1 < 128 and set[e + 1] do
                e = e + 1
            end
            if e == b then
                out[#out + 1] = regex_char(b, true)
            elseif e == b + 1 then
                out[#out + 1] = regex_char(b, true) .. regex_char(e, true)
            else
                out[#out + 1] = regex_char(b, true) .. "-" .. regex_char(e, true)
            end
            b = e + 1
        else
            b = b + 1
        end
    end
    return tbl_concat(out)
end

-- Regex for one Lua single-character class (".", "%a", "x", "[^%s,]"...), computed from the
-- bytes Lua itself matches with it, so every Lua rule (ranges, escapes, classes) is honoured.
-- Returns nil when no exact ASCII-equivalent class exists.
local function class_regex(cls)
    local probe = "^" .. cls .. "$"
    local set, count, high = {}, 0, 0
    for b = 0, 255 do
        if str_find(str_char(b), probe) then
            set[b] = true
            count = count + 1
            if b >= 128 then
                high = high + 1
            end
        end
    end
    if count == 1 then
        for b = 0, 127 do
            if set[b] then
                return regex_char(b, false)
            end
        end
        return nil
    end
    if high == 128 then
        -- every non-ASCII byte matches: say it as a negated class (code points >= 128 match)
        local comp, any = {}, false
        for b = 0, 127 do
            if not set[b] then
                comp[b] = true
                any = true
            end
        end
        if not any then
            return "[\\s\\S]"
        end
        return "[^" .. class_body(comp) .. "]"
    end
    if high ~= 0 or count == 0 then
        return nil
    end
    return "[" .. class_body(set) .. "]"
end

-- End (exclusive) of the single-char class starting at i; mirrors lstrlib's classEnd.
local function class_end(pat, i)
    local len = #pat
    local c = str_sub(pat, i, i)
    i = i + 1
    if c == "%" then
        if i > len then
            error("malformed pattern (ends with '%')", 0)
        end
        return i + 1
    end
    if c == "[" then
        if str_sub(pat, i, i) == "^" then
            i = i + 1
        end
        repeat
            if i > len then
                error("malformed pattern (missing ']')", 0)
            end
            local cc = str_sub(pat, i, i)
            i = i + 1
            if cc == "%" and i <= len then
                i = i + 1
            end
        until str_sub(pat, i, i) == "]"
        return i + 1
    end
    return i
end

local QUANTIFIER = { ["*"] = "*", ["+"] = "+", ["-"] = "*?", ["?"] = "?" }

-- Parses a Lua pattern. Raises (message only) when malformed; returns the ECMAScript
-- regex, or nil when the pattern cannot be translated exactly.
local function lua_pattern_to_regex(pat)
    local len, i, depth = #pat, 1, 0
    local out, exact = {}, true
    if str_find(pat, "[\128-\255]") then
        exact = false
    end
    if str_sub(pat, 1, 1) == "^" then
        out[1] = "^"
        i = 2
    end
    while i <= len do
        local c = str_sub(pat, i, i)
        local nxt = str_sub(pat, i + 1, i + 1)
        if c == "(" then
            depth = depth + 1
            out[#out + 1] = "("
            i = i + 1
        elseif c == ")" then
            depth = depth - 1
            if depth < 0 then
                error("invalid pattern capture", 0)
            end
            out[#out + 1] = ")"
            i = i + 1
        elseif c == "$" and i == len then
            out[#out + 1] = "$"
            i = i + 1
        elseif c == "%" and nxt == "b" then
            if i + 3 > len then
                error("missing arguments to '%b'", 0)
            end
            exact = false
            i = i + 4
        elseif c == "%" and nxt == "f" then
            if str_sub(pat, i + 2, i + 2) ~= "[" then
                error("missing '[' after '%f' in pattern", 0)
            end
            exact = false
            i = class_end(pat, i + 2)
        elseif c == "%" and str_find(nxt, "^%d$") then
            exact = false
            i = i + 2
        else
            local e = class_end(pat, i)
            local cls = str_sub(pat, i, e - 1)
            local q = QUANTIFIER[str_sub(pat, e, e)]
            if exact then
                local rx = class_regex(cls)
                if rx == nil then
                    exact = false
                else
                    out[#out + 1] = rx .. (q or "")
                end
            end
            i = q and e + 1 or e
        end
    end
    if depth ~= 0 then
        error("unfinished capture", 0)
    end
    if not exact then
        return nil
    end
    return tbl_concat(out)
end
M._lua_pattern_to_regex = lua_pattern_to_regex -- exposed for the specs

---------------------------------------------------------------------------------------------
-- Validation. Each validator returns true, value or false, message.

local validate -- forward

local function is_email(s)
    if #s > 254 or str_find(s, "[%s%c<>()%[%],;:\"\\]") then
        return false
    end
    local at = str_find(s, "@", 1, true)
    if at == nil or str_find(s, "@", at + 1, true) then
        return false
    end
    local loc, dom = str_sub(s, 1, at - 1), str_sub(s, at + 1)
    if loc == "" or #loc > 64 then
        return false
    end
    if str_sub(loc, 1, 1) == "." or str_sub(loc, -1) == "." or str_find(loc, "..", 1, true) then
        return false
    end
    if not str_find(dom, ".", 1, true) or str_sub(dom, 1, 1) == "." or str_sub(dom, -1) == "."
        or str_find(dom, "..", 1, true) then
        return false
    end
    return true
end

local function check_string(s, raw, name)
    if type(raw) ~= "string" then
        return false, name .. " must be a string"
    end
    local chars
    for _, chk in ipairs(s.checks) do
        local op = chk.op
        if op == "min" or op == "max" then
            chars = chars or utf8_len(raw)
            if op == "min" and chars < chk.n then
                return false, name .. " must be at least " .. fmt_num(chk.n) .. " characters"
            end
            if op == "max" and chars > chk.n then
                return false, name .. " must be at most " .. fmt_num(chk.n) .. " characters"
            end
        elseif op == "email" then
            if not is_email(raw) then
                return false, name .. " must be a valid email"
            end
        elseif op == "pattern" then
            local ok, found = pcall(str_find, raw, chk.pattern)
            if not ok or not found then
                return false, name .. " does not match the required pattern"
            end
        elseif op == "enum" then
            if not chk.set[raw] then
                return false, name .. " must be one of: " .. tbl_concat(chk.values, ", ")
            end
        end
    end
    return true, raw
end

local function to_number(raw)
    local n
    if type(raw) == "number" then
        n = raw
    elseif type(raw) == "string" then
        if not (str_find(raw, "^%-?%d+$") or str_find(raw, "^%-?%d+%.%d+$")
            or str_find(raw, "^%-?%d+%.?%d*[eE][%+%-]?%d+$")) then
            return nil
        end
        n = tonumber(raw)
    else
        return nil
    end
    if n == nil or n ~= n or n == math_huge or n == -math_huge then
        return nil
    end
    if n == 0 then
        n = 0 -- no -0 in output
    end
    return n
end

local function check_number(s, raw, name)
    local n = to_number(raw)
    if n == nil then
        return false, name .. " must be " .. NOUN[s.kind]
    end
    if s.kind == "integer" and (math_floor(n) ~= n or n > MAX_SAFE_INTEGER or n < -MAX_SAFE_INTEGER) then
        return false, name .. " must be " .. NOUN.integer
    end
    for _, chk in ipairs(s.checks) do
        if chk.op == "min" and n < chk.n then
            return false, name .. " must be >= " .. fmt_num(chk.n)
        end
        if chk.op == "max" and n > chk.n then
            return false, name .. " must be <= " .. fmt_num(chk.n)
        end
    end
    return true, n
end

local function check_boolean(_, raw, name)
    if raw == true or raw == false then
        return true, raw
    end
    if type(raw) == "string" then
        local l = str_lower(raw)
        if l == "true" or l == "1" then
            return true, true
        end
        if l == "false" or l == "0" then
            return true, false
        end
    end
    return false, name .. " must be a boolean"
end

-- Number of elements when t is a sequence 1..n with no other keys, else nil.
local function sequence_length(t)
    local count, max = 0, 0
    for k in pairs(t) do
        if type(k) ~= "number" or k < 1 or math_floor(k) ~= k then
            return nil
        end
        count = count + 1
        if k > max then
            max = k
        end
    end
    if max ~= count then
        return nil
    end
    return count
end

local function check_array(s, raw, name)
    local items
    if type(raw) == "table" then
        if sequence_length(raw) == nil then
            return false, name .. " must be " .. NOUN.array
        end
        items = raw
    else
        items = { raw }
    end
    local n = #items
    for _, chk in ipairs(s.checks) do
        if chk.op == "min" and n < chk.n then
            return false, name .. " must have at least " .. fmt_num(chk.n) .. " items"
        end
        if chk.op == "max" and n > chk.n then
            return false, name .. " must have at most " .. fmt_num(chk.n) .. " items"
        end
    end
    local out = json.array()
    for i = 1, n do
        local ok, v = validate(s.item, items[i], name .. "[" .. i .. "]")
        if not ok then
            return false, v
        end
        out[i] = v
    end
    return true, out
end

-- Absent values: default, optional or the missing-param message.
local function validate_field(s, raw, name)
    if is_absent(raw) then
        if s.has_default then
            return true, deep_copy(s.default_value)
        end
        if s.is_optional then
            return true, nil
        end
        return false, "Missing required param: " .. name
    end
    return validate(s, raw, name)
end

-- Returns true, value or false, message, failing top-level key.
local function check_object_fields(s, raw, prefix)
    local out = {}
    for _, key in ipairs(s.field_keys) do
        local ok, v = validate_field(s.fields[key], raw[key], prefix .. key)
        if not ok then
            return false, v, key
        end
        out[key] = v
    end
    return true, out
end

local function check_object(s, raw, name)
    if type(raw) ~= "table" or raw == json.empty_array then
        return false, name .. " must be " .. NOUN.object
    end
    local ok, v = check_object_fields(s, raw, name .. ".")
    return ok, v
end

local CHECKERS = {
    string = check_string,
    number = check_number,
    integer = check_number,
    boolean = check_boolean,
    array = check_array,
    object = check_object,
}

-- Present values (null already treated as absent by the caller, except for array items).
function validate(s, raw, name)
    if raw == null or raw == nil then
        return false, name .. " must be " .. NOUN[s.kind]
    end
    return CHECKERS[s.kind](s, raw, name)
end

---------------------------------------------------------------------------------------------
-- Constructors

---@return keryx.Schema
function M.string()
    return new_schema("string")
end

---@return keryx.Schema numbers (strings are coerced)
function M.number()
    return new_schema("number")
end

---@return keryx.Schema
function M.integer()
    return new_schema("integer")
end

---@return keryx.Schema "true"/"false"/"1"/"0" are coerced
function M.boolean()
    return new_schema("boolean")
end

---@param item keryx.Schema
---@return keryx.Schema
function M.array(item)
    if not is_schema(item) then
        error("keryx.schema.array: item must be a schema", 2)
    end
    local s = new_schema("array")
    s.item = item
    s.has_secret = item.has_secret
    return s
end

local function check_fields(fields, where)
    if type(fields) ~= "table" or is_schema(fields) then
        error(where .. ": expected a table of field schemas", 3)
    end
    for k, v in pairs(fields) do
        if type(k) ~= "string" or k == "" then
            error(where .. ": field names must be non-empty strings (got " .. tostring(k) .. ")", 3)
        end
        if not is_schema(v) then
            error(where .. ": field '" .. k .. "' is not a schema", 3)
        end
    end
end

---@param fields table<string, keryx.Schema>?
---@return keryx.Schema
function M.object(fields)
    if fields == nil then
        fields = {}
    end
    check_fields(fields, "keryx.schema.object")
    local s = new_schema("object")
    local own, keys = {}, {}
    for k, v in pairs(fields) do
        own[k] = v
        keys[#keys + 1] = k
        if v.has_secret then
            s.has_secret = true
        end
    end
    tbl_sort(keys)
    s.fields = own
    s.field_keys = keys
    return s
end

--- Merge field tables (or object schemas' fields); later arguments win on a shared key.
--   z.object(z.extend(z.pagination(), { q = z.string():optional() }))
---@param ... table<string, keryx.Schema>|keryx.Schema field tables or object schemas
---@return table<string, keryx.Schema>
function M.extend(...)
    local out = {}
    for i = 1, select("#", ...) do
        local part = select(i, ...)
        if is_schema(part) then
            if part.kind ~= "object" then
                error("keryx.schema.extend: argument " .. i .. " is a " .. part.kind .. " schema, not an object", 2)
            end
            part = part.fields
        end
        check_fields(part, "keryx.schema.extend")
        for k, v in pairs(part) do
            out[k] = v
        end
    end
    return out
end

--- Fields `page` (integer >= 1, default 1) and `limit` (1..max_limit, default default_limit).
---@param opts {default_limit: integer?, max_limit: integer?}?
---@return table<string, keryx.Schema>
function M.pagination(opts)
    opts = opts or {}
    local default_limit = opts.default_limit or 25
    local max_limit = opts.max_limit or 100
    if type(default_limit) ~= "number" or type(max_limit) ~= "number" or default_limit < 1
        or max_limit < default_limit then
        error("keryx.schema.pagination: need 1 <= default_limit <= max_limit", 2)
    end
    return {
        page = M.integer():min(1):default(1):describe("Page number (1-based)"),
        limit = M.integer():min(1):max(max_limit):default(default_limit)
            :describe("Items per page (max " .. fmt_num(max_limit) .. ")"),
    }
end

---------------------------------------------------------------------------------------------
-- Modifiers (each returns a new schema)

local function need_kind(s, method, kinds)
    if not is_schema(s) then
        error("keryx.schema: " .. method .. "() must be called with ':'", 3)
    end
    if not kinds[s.kind] then
        error("keryx.schema: " .. method .. "() is not available on " .. s.kind .. " schemas", 3)
    end
end

local SIZED = { string = true, number = true, integer = true, array = true }
local STRING_ONLY = { string = true }

local function bound(self, op, n)
    need_kind(self, op, SIZED)
    if type(n) ~= "number" or n ~= n or n == math_huge or n == -math_huge then
        error("keryx.schema: " .. op .. "() needs a finite number", 3)
    end
    if (self.kind == "string" or self.kind == "array") and (n < 0 or math_floor(n) ~= n) then
        error("keryx.schema: " .. op .. "() on " .. self.kind .. " needs a non-negative integer", 3)
    end
    local c = clone(self)
    c.checks[#c.checks + 1] = { op = op, n = n }
    return c
end

---@param n number length for strings and arrays, value for numbers
---@return keryx.Schema
function Schema:min(n)
    return bound(self, "min", n)
end

---@param n number
---@return keryx.Schema
function Schema:max(n)
    return bound(self, "max", n)
end

---@return keryx.Schema
function Schema:email()
    need_kind(self, "email", STRING_ONLY)
    local c = clone(self)
    c.checks[#c.checks + 1] = { op = "email" }
    return c
end

---@param pat string a Lua pattern
---@return keryx.Schema
function Schema:pattern(pat)
    need_kind(self, "pattern", STRING_ONLY)
    if type(pat) ~= "string" then
        error("keryx.schema: pattern() needs a Lua pattern string", 2)
    end
    local ok, regex = pcall(lua_pattern_to_regex, pat)
    if not ok then
        error("keryx.schema: bad Lua pattern '" .. pat .. "': " .. tostring(regex), 2)
    end
    local c = clone(self)
    c.checks[#c.checks + 1] = { op = "pattern", pattern = pat, regex = regex }
    return c
end

---@param values string[]
---@return keryx.Schema
function Schema:enum(values)
    need_kind(self, "enum", STRING_ONLY)
    if type(values) ~= "table" or #values == 0 then
        error("keryx.schema: enum() needs a non-empty list of strings", 2)
    end
    local list, set = {}, {}
    for i, v in ipairs(values) do
        if type(v) ~= "string" then
            error("keryx.schema: enum() value " .. i .. " is not a string", 2)
        end
        list[i] = v
        set[v] = true
    end
    local c = clone(self)
    c.checks[#c.checks + 1] = { op = "enum", values = list, set = set }
    return c
end

---@return keryx.Schema
function Schema:optional()
    need_kind(self, "optional", CHECKERS)
    local c = clone(self)
    c.is_optional = true
    c.required = false
    return c
end

---@param v any
---@return keryx.Schema
function Schema:default(v)
    need_kind(self, "default", CHECKERS)
    if v == nil then
        error("keryx.schema: default() needs a value (use optional() for none)", 2)
    end
    local c = clone(self)
    c.has_default = true
    c.default_value = deep_copy(v)
    c.required = false
    return c
end

---@return keryx.Schema redacted in logs, never echoed in errors
function Schema:secret()
    need_kind(self, "secret", CHECKERS)
    local c = clone(self)
    c.is_secret = true
    c.has_secret = true
    return c
end

---@param text string
---@return keryx.Schema
function Schema:describe(text)
    need_kind(self, "describe", CHECKERS)
    if type(text) ~= "string" then
        error("keryx.schema: describe() needs a string", 2)
    end
    local c = clone(self)
    c.description = text
    return c
end

---------------------------------------------------------------------------------------------
-- Object API

local OBJECT_ONLY = { object = true }

--- Object: value | nil, {key, message, value, secret}. Other kinds: value | nil, {message, value}.
---@param raw any
---@return any value, table? err
function Schema:parse(raw)
    if not is_schema(self) then
        error("keryx.schema: parse() must be called with ':'", 2)
    end
    if self.kind ~= "object" then
        local ok, v = validate_field(self, raw, "value")
        if ok then
            return v
        end
        local hide = self.has_secret or is_absent(raw)
        return nil, { message = v, value = (not hide) and raw or nil, secret = self.has_secret }
    end
    if is_absent(raw) then
        raw = {}
    end
    if type(raw) ~= "table" or raw == json.empty_array then
        return nil, { message = "params must be " .. NOUN.object, secret = false }
    end
    local ok, v, key = check_object_fields(self, raw, "")
    if ok then
        return v
    end
    local field = self.fields[key]
    local rv = raw[key]
    local hide = field.has_secret or is_absent(rv)
    return nil, { key = key, message = v, value = (not hide) and rv or nil, secret = field.has_secret }
end

---@return string[]
function Schema:keys()
    need_kind(self, "keys", OBJECT_ONLY)
    local out = {}
    for i, k in ipairs(self.field_keys) do
        out[i] = k
    end
    return out
end

---@param key string
---@return keryx.Schema?
function Schema:field(key)
    need_kind(self, "field", OBJECT_ONLY)
    return self.fields[key]
end

local function log_string(v)
    local tv = type(v)
    if tv == "string" then
        return v
    end
    if tv == "table" then
        local s = json.encode(v)
        if s ~= nil then
            return s
        end
    elseif v == null then
        return "null"
    end
    return tostring(v)
end

--- A copy of raw params for the log line: secret fields become
-- "[[secret]]", long values (> max_len UTF-8 characters of their string or JSON form) are cut.
---@param raw table
---@param max_len integer?
---@return table
function Schema:redact(raw, max_len)
    need_kind(self, "redact", OBJECT_ONLY)
    if max_len == nil then
        max_len = 100
    elseif type(max_len) ~= "number" then
        error("keryx.schema: redact() max_len must be a number", 2)
    end
    local out = {}
    if type(raw) ~= "table" then
        return out
    end
    for k, v in pairs(raw) do
        local f = self.fields[k]
        if f ~= nil and f.has_secret then
            out[k] = "[[secret]]"
        elseif max_len > 0 then
            local s = log_string(v)
            local n = utf8_len(s)
            if n > max_len then
                out[k] = utf8_prefix(s, max_len) .. "... (truncated, original length: " .. n .. ")"
            else
                out[k] = v
            end
        else
            out[k] = v
        end
    end
    return out
end

---------------------------------------------------------------------------------------------
-- JSON Schema

local function to_json_schema(s)
    local out = { type = s.kind }
    local notes = {}
    local lo, hi
    local patterns = {}
    for _, chk in ipairs(s.checks) do
        local op = chk.op
        if op == "min" then
            lo = lo and math_max(lo, chk.n) or chk.n
        elseif op == "max" then
            hi = hi and math_min(hi, chk.n) or chk.n
        elseif op == "email" then
            out.format = "email"
        elseif op == "pattern" then
            if chk.regex then
                patterns[#patterns + 1] = chk.regex
            else
                notes[#notes + 1] = "Must match Lua pattern: " .. chk.pattern
            end
        elseif op == "enum" then
            local values = json.array()
            for i, v in ipairs(chk.values) do
                values[i] = v
            end
            out.enum = values
        end
    end
    local kind = s.kind
    if kind == "string" then
        out.minLength, out.maxLength = lo, hi
    elseif kind == "array" then
        out.minItems, out.maxItems = lo, hi
        out.items = to_json_schema(s.item)
    elseif kind == "number" or kind == "integer" then
        out.minimum, out.maximum = lo, hi
    elseif kind == "object" then
        local props, required = {}, json.array()
        for _, k in ipairs(s.field_keys) do
            local f = s.fields[k]
            props[k] = to_json_schema(f)
            if f.required then
                required[#required + 1] = k
            end
        end
        out.properties = props
        if #required > 0 then
            out.required = required -- OpenAPI 3.0 forbids an empty `required`
        end
        out.additionalProperties = false
    end
    if #patterns == 1 then
        out.pattern = patterns[1]
    elseif #patterns > 1 then
        local all = json.array()
        for i, p in ipairs(patterns) do
            all[i] = { pattern = p }
        end
        out.allOf = all
    end
    if s.is_secret then
        out.writeOnly = true
        if kind == "string" and out.format == nil then
            out.format = "password"
        end
    end
    if s.has_default then
        out.default = deep_copy(s.default_value)
    end
    local desc = s.description
    if #notes > 0 then
        local note = tbl_concat(notes, "; ")
        desc = desc and (desc .. " (" .. note .. ")") or note
    end
    out.description = desc
    return out
end

-- One line of constraints for a field ("length 3..100, email"), for the CLI help.
local function constraints_text(s)
    local lo, hi, parts = nil, nil, {}
    for _, chk in ipairs(s.checks) do
        if chk.op == "min" then lo = lo and math_max(lo, chk.n) or chk.n
        elseif chk.op == "max" then hi = hi and math_min(hi, chk.n) or chk.n
        elseif chk.op == "email" then parts[#parts + 1] = "an email address"
        elseif chk.op == "pattern" then parts[#parts + 1] = "matching " .. chk.pattern
        elseif chk.op == "enum" then
            local vals = {}
            for i, v in ipairs(chk.values) do vals[i] = tostring(v) end
            parts[#parts + 1] = "one of " .. tbl_concat(vals, ", ")
        end
    end
    local what = (s.kind == "string" and "length ") or (s.kind == "array" and "items ") or ""
    if lo and hi then tbl_insert(parts, 1, what .. fmt_num(lo) .. ".." .. fmt_num(hi))
    elseif lo then tbl_insert(parts, 1, what .. ">= " .. fmt_num(lo))
    elseif hi then tbl_insert(parts, 1, what .. "<= " .. fmt_num(hi)) end
    if #parts == 0 then return nil end
    return tbl_concat(parts, ", ")
end

--- An object schema's fields, sorted by name, for documentation (`keryx run ACTION --help`,
--- `keryx actions`): { name, type, required, default (the value, or nil), description,
--- secret, constraints (text or nil) }.
---@return table[]
function Schema:field_docs()
    if not is_schema(self) or self.kind ~= "object" then
        error("keryx.schema: field_docs() needs an object schema", 2)
    end
    local out = {}
    for i, k in ipairs(self.field_keys) do
        local f = self.fields[k]
        out[i] = {
            name = k, type = f.kind, required = f.required, description = f.description, secret = f.has_secret,
            constraints = constraints_text(f),
        }
        if f.has_default then out[i].default = f.default_value end -- false is a default too
    end
    return out
end

--- JSON Schema for this schema (OpenAPI 3.0 compatible subset); encode with keryx.json.
---@return table
function Schema:json_schema()
    if not is_schema(self) then
        error("keryx.schema: json_schema() must be called with ':'", 2)
    end
    return to_json_schema(self)
end

return M
