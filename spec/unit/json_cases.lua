-- json_cases.lua — the values keryx.json's two encoders are compared on, and the comparison.
--
--   local cases = require "json_cases"
--   cases.compare(json, json_encode, n_random) → report
-- json is keryx.json; json_encode is a core.json_encode (src/lua_api_json.c in
-- tests/test_json_encode.c; spec/helpers/fake_core.lua's in spec/unit/json_spec.lua). Every fixed
-- case and n_random generated values are encoded by json.encode, by json._encode_lua (the
-- reference) and by json_encode directly. report = { checked, by_c, mismatches = {…} }:
-- json.encode must give the reference's result (text, or nil and the same message) every time,
-- and json_encode either that same text or nil — nil only where the reference fails or the value
-- holds a table with a metatable of its own (json.lua's Lua encoder answers those).
local M = {}

-- Deterministic generator (a linear congruential one: the same values on every run); also
-- ws_envelope_cases.lua's.
local function new_rng(seed)
    local state = seed
    return function(n) -- integer in 1..n
        state = (state * 1103515245 + 12345) % 2147483648
        return state % n + 1
    end
end
M.new_rng = new_rng

local function byte_string()
    local t = {}
    for i = 0, 255 do t[#t + 1] = string.char(i) end
    return table.concat(t)
end

local STRINGS = {
    "", "a", "/", "\\", "\\/", "//", "a/b", "/api/status", "http://x/y?z=1", '"', "\\\"/", "\0",
    "\127", "\n\r\t\b\f", "é", "日本", "\xff\xfe", "\xed\xa0\x80", "x\\/\\/y", byte_string(),
    string.rep("ab/", 50),
}

local NUMBERS = {
    0, -0, 1, -1, 2, 10, 11, 0.5, -0.5, 0.1, 0.2, 0.1 + 0.2, 1 / 3, 12.34, 99.99, 3.25, 1e-4, 1e-5,
    1e-7, 123.456, 1712345678901, 99999999999999, 1e14, -1e14, 1e14 + 1, 123456789012345,
    123456789012345.5, 2 ^ 31 - 1, 2 ^ 31, 2 ^ 32, 3e9, 2 ^ 53, 2 ^ 53 + 2, -2 ^ 53, 2 ^ 63, -2 ^ 63,
    2 ^ 63 - 1024, 2 ^ 64, 1e300, -1e300, 1.7976931348623157e308, 4.9e-324, 0 / 0, math.huge,
    -math.huge, 0.30000000000000004, 5e-324, 2.5e-5, 1e21, 1e22, 1e23,
}

-- Keys that decide between array and object (lua-cjson keeps the largest one in a C int).
local NUMBER_KEYS = {
    1, 2, 3, 5, 10, 11, 12, 20, 0, -1, 0.5, 2 ^ 31 - 1, 2 ^ 31, 3e9, 1e14, 2 ^ 53, 1e300, math.huge, -math.huge,
}

local function fixed_cases(json)
    local c = {}
    local function add(name, v) c[#c + 1] = { name, v } end
    add("nil", nil)
    add("true", true)
    add("false", false)
    add("null", json.null)
    for i, s in ipairs(STRINGS) do add("string " .. i, s) end
    -- every byte that needs an escape (and its neighbours) at every offset of a 24-byte
    -- string: C copies eight plain bytes at a time and must stop at each of them
    for _, byte in ipairs({ 0, 1, 31, 32, 34, 47, 92, 126, 127, 128, 255 }) do
        for at = 1, 24 do
            add(("byte %d at %d"):format(byte, at), ("abcdefghijklmnopqrstuvwx"):sub(1, at - 1) .. string.char(byte)
                .. ("ABCDEFGHIJKLMNOPQRSTUVWX"):sub(at + 1))
        end
    end
    for i, n in ipairs(NUMBERS) do
        add("number " .. i, n)
        add("number in array " .. i, { n })
        add("number in object " .. i, { v = n, w = json.array({ n }) })
    end
    for i, k in ipairs(NUMBER_KEYS) do
        add("number key " .. i, { [k] = "v" })
        add("number key with array " .. i, { [k] = "v", [1] = 1, [2] = 2 })
        add("number key under marked " .. i, { [k] = json.array() })
        add("marked with number key " .. i, json.array({ [k] = true }))
    end
    add("status", {
        name = "keryx", pid = 4242, version = "0.1.0", uptime = 123456, consumedMemoryMB = 12.34,
        healthy = true, checks = { redis = true },
    })
    add("empty table", {})
    add("empty_array", json.empty_array)
    add("marked empty", json.array())
    add("nested marks", { json.array(), {}, { json.empty_array } })
    add("deep mark", { a = { b = { c = { json.array(), "x" } } } })
    add("marked holes", json.array({ [1] = "a", [3] = "c" }))
    add("marked sparse", json.array({ [1] = "a", [20] = "b" }))
    add("marked with string key", json.array({ 1, 2, x = 3 }))
    add("plain holes", { 1, nil, 3 })
    add("plain sparse", { [1] = "a", [1000] = "b" })
    add("sparse at 10", { [10] = 1 })
    add("sparse at 11", { [11] = 1 })
    add("sparse 12 of 6", { [1] = 1, [2] = 1, [3] = 1, [4] = 1, [5] = 1, [12] = 1 })
    add("wrapped int key, plain", { [3e9] = 1, [5] = 1 })
    -- the same pairs order as the plain case (assigning an existing key keeps it), where only
    -- the values make json.lua take its own rule (an object: 3e9 is far past twice the count)
    local under_mark = { [3e9] = 1, [5] = 1 }
    under_mark[5] = json.array()
    add("wrapped int key, under a mark", under_mark)
    local big_value = { [3e9] = 1, [5] = 1 }
    big_value[5] = 2 ^ 60
    add("wrapped int key, big value", big_value)
    local deep_mark = { [3e9] = 1, [5] = 1 }
    deep_mark[5] = { a = { json.empty_array } }
    add("wrapped int key, mark further down", deep_mark)
    add("wrapped int then more", { [1] = 1, [2] = 2, [3e9] = 3 })
    -- lua-cjson's wrapped largest key decides only when its key comes first in pairs order and
    -- the table goes to lua-cjson whole: every small set of such keys, inserted both ways, with
    -- plain values, a marked table or a big integer as the last value (json.lua's own rule then)
    local pool = { 1, 2, 3, 5, 9, 2 ^ 31, 3e9, 2 ^ 40 }
    local function subsets(from, chosen)
        if #chosen > 0 then
            for _, reverse in ipairs({ false, true }) do
                for variant = 1, 3 do
                    local t = {}
                    for i = 1, #chosen do
                        local k = chosen[reverse and #chosen + 1 - i or i]
                        local last = i == #chosen
                        t[k] = (last and variant == 2) and json.array() or (last and variant == 3) and 2 ^ 60 or i
                    end
                    add(("wrap set %s %s %d"):format(table.concat(chosen, ","), tostring(reverse), variant), t)
                end
            end
        end
        if #chosen == 4 then return end
        for i = from, #pool do
            chosen[#chosen + 1] = pool[i]
            subsets(i + 1, chosen)
            chosen[#chosen] = nil
        end
    end
    subsets(1, {})
    add("slashes in keys", { ["a/b"] = "c/d", ["\\/"] = "/" })
    add("mixed", { list = { "a", "b" }, n = 3, ok = true, obj = { x = "/y" }, big = 2 ^ 62 })
    -- failures: the reference's error text must come back
    add("function", print)
    add("function inside", { f = print })
    add("userdata", io.stdout)
    add("thread", coroutine.create(function() end))
    add("boolean key", { [true] = 1 })
    add("boolean key under mark", { [true] = 1, x = json.array() })
    add("table key", { [{}] = 1 })
    add("table key under mark", { [{}] = 1, x = json.array() })
    add("lightuserdata-free null in array", { json.null, json.null })
    local cycle = {}
    cycle.self = cycle
    add("cycle", cycle)
    local marked_cycle = json.array()
    marked_cycle[1] = marked_cycle
    add("marked cycle", marked_cycle)
    add("cycle and a bad key", { a = cycle, [true] = 1 })
    -- the depth limit (1000 nested tables) on both sides of it
    for _, depth in ipairs({ 999, 1000, 1001, 1500 }) do
        local v = {}
        for _ = 2, depth do v = { v } end
        add("depth " .. depth, v)
        local w = json.array()
        for _ = 2, depth do w = { x = w } end
        add("marked depth " .. depth, w)
    end
    -- a table with the app's own metatable: the Lua encoder answers
    add("foreign metatable", setmetatable({ 1, 2 }, { __index = function() return "z" end }))
    add("foreign metatable inside", { x = setmetatable({ a = 1 }, {}) })
    -- larger than the buffer C keeps between calls (src/lua_api_json.c KX_JSON_KEEP, 1 MiB),
    -- then small again: the buffer is given back and grown anew
    local big = {}
    for i = 1, 30000 do big[i] = { id = i, name = "item/" .. i, ratio = i / 7 } end
    add("2 MiB", big)
    add("small after big", { a = 1 })
    add("big string", string.rep("x/\n", 500000))
    add("small after big string", "ok")
    return c
end

local function random_value(json, rng, depth)
    local r = rng(100)
    if depth > 4 or r <= 45 then
        local s = rng(12)
        if s <= 4 then return STRINGS[rng(#STRINGS)] end
        if s <= 8 then return NUMBERS[rng(#NUMBERS)] end
        if s == 9 then return rng(2) == 1 end
        if s == 10 then return json.null end
        if s == 11 then return (rng(2) == 1 and -1 or 1) * rng(1000000) / 10 ^ rng(8) end
        if rng(40) == 1 then return print end -- rare: a failure somewhere in the value
        return rng(1000000000)
    end
    if r <= 50 then return json.empty_array end
    local t = {}
    local shape = rng(6)
    local n = rng(8) - 1
    if shape <= 2 then -- sequence (maybe with holes)
        for i = 1, n do
            if rng(6) > 1 then t[i] = random_value(json, rng, depth + 1) end
        end
    elseif shape == 3 then -- number keys of every kind
        for _ = 1, n do t[NUMBER_KEYS[rng(#NUMBER_KEYS)]] = random_value(json, rng, depth + 1) end
    else -- string keys, sometimes with number ones
        for _ = 1, n do
            local k = rng(3) == 1 and NUMBER_KEYS[rng(#NUMBER_KEYS)] or STRINGS[rng(#STRINGS)]
            if type(k) ~= "string" or #k < 100 then t[k] = random_value(json, rng, depth + 1) end
        end
    end
    if rng(200) == 1 then t[true] = 1 end -- a bad key, rarely
    if rng(4) == 1 then json.array(t) end
    return t
end

function M.compare(json, json_encode, n_random)
    local array_mt = getmetatable(json.array())
    local empty = json.empty_array
    local report = { checked = 0, by_c = 0, mismatches = {} }
    local function fail(name, what)
        if #report.mismatches < 20 then report.mismatches[#report.mismatches + 1] = name .. ": " .. what end
    end
    local function check(name, v)
        report.checked = report.checked + 1
        local ref, ref_err = json._encode_lua(v)
        local got, got_err = json.encode(v)
        if got ~= ref or got_err ~= ref_err then
            fail(name, ("json.encode %q %q, reference %q %q"):format(tostring(got), tostring(got_err),
                tostring(ref), tostring(ref_err)))
        end
        local c = json_encode(v, array_mt, empty)
        if c ~= nil then
            report.by_c = report.by_c + 1
            if c ~= ref then
                fail(name, ("json_encode %q, reference %q"):format(c:sub(1, 300), tostring(ref):sub(1, 300)))
            end
        elseif ref ~= nil and not name:find("metatable", 1, true) then
            fail(name, "json_encode gave nil where the reference encodes")
        end
    end
    for _, case in ipairs(fixed_cases(json)) do check(case[1], case[2]) end
    local rng = new_rng(20261203)
    for i = 1, n_random do check("random " .. i, random_value(json, rng, 1)) end
    return report
end

return M
