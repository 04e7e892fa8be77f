-- ws_envelope_cases.lua — the WebSocket messages core.ws_envelope is checked on against
-- json.decode, and the check.
--
--   local cases = dofile "spec/unit/ws_envelope_cases.lua"
--   cases.compare(json, ws_envelope, n_random) → report
-- json is keryx.json; ws_envelope is a core.ws_envelope (src/ws_envelope.c through
-- src/lua_api_ws.c in tests/test_ws_envelope.c; spec/helpers/fake_core.lua's port in
-- spec/unit/ws_spec.lua). Every fixed message and n_random generated ones (simple envelopes,
-- then mutated: bytes replaced, inserted, dropped, cut, keys repeated or foreign, escapes,
-- numbers of every shape, deep or broken params) go through what lua/keryx/ws.lua does: when
-- ws_envelope answers, its params text is decoded with json.decode, and those fields must be
-- exactly the fields json.decode gives for the whole text (strings, messageId's type, value and
-- sign of zero, params deeply, no other key). When the params text does not decode, the whole
-- text must not either (ws.lua then decodes the whole text for its error message).
-- report = { checked, taken, mismatches = {…} }.
local M = {}

local new_rng = dofile("spec/unit/json_cases.lua").new_rng -- the same deterministic generator

local KEYS = { "messageType", "action", "messageId", "channel", "params" }
local FIELDS = { messageType = true, action = true, messageId = true, channel = true, params = true }

local FIXED = {
    '{"messageType":"action","action":"status","messageId":1}',
    '{"messageType":"action","action":"status"}',
    '{"messageType":"subscribe","channel":"messages","messageId":"abc"}',
    '{"messageType":"unsubscribe","channel":"messages","messageId":7}',
    '{"messageType":"action","action":"echo","params":{"a":1,"b":null,"c":[1,2,{"d":"}"}],"e":"\\"}"}}',
    '{"messageType":"action","action":"echo","params":{}}',
    '{"messageType":"action","action":"echo","params":[]}',
    '{"messageType":"action","action":"echo","params":null}',
    '{"messageType":"action","action":"echo","params":"x"}',
    '{"messageType":"action","action":"echo","params":{"a":}}',
    '{"messageType":"action","action":"echo","params":{"a":1,}}',
    '{"messageType":"action","action":"echo","params":{"a":[}]}}',
    '{"messageType":"action","action":"echo","params":{"a":"\\q"}}',
    '{"messageType":"action","action":"echo","params":{"a":"\\u00e9\\ud83d\\ude00"}}',
    '{"messageType":"action","action":"echo","params":{"a":1e400}}',
    '{"messageType":"action","action":"echo","params":{"a":NaN}}',
    '{"messageType":"action","action":"echo","params":{"a":0x10}}',
    ' \t\r\n{ \t\r\n"messageType" \t\r\n: \t\r\n"action" \t\r\n, "messageId" : 5 \t\r\n} \t\r\n',
    '{"messageType":"action"}', '{}', '[]', '"x"', '1', 'null', '', ' ', '{', '}', '{"messageType"',
    '{"messageType":', '{"messageType":"action"', '{"messageType":"action",', '{"messageType":"action"}x',
    '{"messageType":"action"}\0', '{"messageType":"action\0"}', '\0{"messageType":"action"}',
    '{"messageType":"action"}}', '{"messageType":"action",}', '{,"messageType":"action"}',
    '{"messageType":"action","messageType":"subscribe"}', '{"messageType":"action","other":1}',
    '{"messageType":"act\\u0069on"}', '{"message\\u0054ype":"action"}', '{"messageType":"a\\"b"}',
    '{"messageType":"a\1b"}', '{"messageType":"a\127b"}', '{"messageType":"é日本\xff"}',
    '{"messageType":1}', '{"messageType":null}', '{"messageType":true}', '{"action":"status"}',
    '{"messageType":"action","action":null}', '{"messageType":"action","channel":["x"]}',
    '{"messageType":"action","messageId":0}', '{"messageType":"action","messageId":-0}',
    '{"messageType":"action","messageId":-1}', '{"messageType":"action","messageId":00}',
    '{"messageType":"action","messageId":01}', '{"messageType":"action","messageId":-01}',
    '{"messageType":"action","messageId":1.0}', '{"messageType":"action","messageId":1.}',
    '{"messageType":"action","messageId":1e3}', '{"messageType":"action","messageId":1E3}',
    '{"messageType":"action","messageId":-}', '{"messageType":"action","messageId":+1}',
    '{"messageType":"action","messageId":999999999999999}',
    '{"messageType":"action","messageId":-999999999999999}',
    '{"messageType":"action","messageId":1000000000000000}',
    '{"messageType":"action","messageId":9007199254740993}',
    '{"messageType":"action","messageId":12345678901234567890123}',
    '{"messageType":"action","messageId":0x10}', '{"messageType":"action","messageId":Infinity}',
    '{"messageType":"action","messageId":null}', '{"messageType":"action","messageId":true}',
    '{"messageType":"action","messageId":{}}', '{"messageType":"action","messageId":[1]}',
    '{"messageType":"action","messageId":""}', '{"messageType":"action","messageId":"\\n"}',
    '{"messageType":"action","messageId":1 }', '{"messageType":"action","messageId":1\t}',
    '{"messageType":"action","messageId":1x}', '{"messageType":"action","messageId":1"}',
    '{"messageType" "action"}', '{"messageType"::"action"}', '{messageType:"action"}',
    "{'messageType':'action'}", '{"messageType":"action"}\f', '\f{"messageType":"action"}',
    '{"messageType":"action"}\v', '\xef\xbb\xbf{"messageType":"action"}',
    '{"messageType":"action","params":{"a":"b\0"}}', '{"messageType":"action","params":{"a":"\\\0"}}',
    '{"messageType":"action","params":{"a":"\\',
    '{"messageType":"action","params":{"a":"b"}',
    '{"messageType":"action","params":{"a":"b"}}}',
}

-- params nested d deep (the object itself is depth 1), around the limits of both sides.
local function deep(d)
    return '{"messageType":"action","action":"echo","params":' .. string.rep('{"a":', d - 1) .. "{}" ..
        string.rep("}", d - 1) .. "}"
end
for _, d in ipairs({ 1, 2, 63, 64, 65, 998, 999, 1000, 1001 }) do FIXED[#FIXED + 1] = deep(d) end
FIXED[#FIXED + 1] = '{"messageType":"action","params":' .. string.rep("[", 64) .. string.rep("]", 64) .. "}"
FIXED[#FIXED + 1] = '{"messageType":"action","params":{"a":' .. string.rep("[", 63) .. string.rep("]", 63) .. "}}"
FIXED[#FIXED + 1] = '{"messageType":"' .. string.rep("x", 100000) .. '","action":"status"}'
FIXED[#FIXED + 1] = '{"messageType":"action","params":{"s":"' .. string.rep("}", 100000) .. '"}}'

local STRS = { '""', '"status"', '"action"', '"subscribe"', '"unsubscribe"', '"messages"', '"a b"',
    '"é"', '"\\""', '"\\u0041"', '"\\/"', '"\\\\"', '"x\ty"', '"}"', '","', '":"', '"{"' }
local NUMS = { "0", "-0", "1", "-1", "42", "123456789012345", "-123456789012345", "1234567890123456",
    "0.5", "1.0", "1e2", "-1E-2", "01", "1.", "-", "2147483648", "4294967296", "9007199254740993" }
local OTHERS = { "null", "true", "false", "[]", "{}", '[1,"a"]', '{"x":1}', "nul", "tru" }
local PARAMS = { "{}", '{"a":1}', '{"a":null,"b":[1,2,3],"c":{"d":"e"}}', '{"s":"}{][\\"\\\\"}',
    '{"n":1.5e3,"m":-0.25,"z":0}', '{"u":"\\u00e9\\n"}', '{"a":[]}', '{"a":{}}', '{"1":1,"2":2}',
    '{"a":1,"a":2}', '{"a":1,}', '{"a"}', '{"a":[1,]}', '{"a":01}', '{"a":"\\x"}', '[1]', '"p"',
    '{ "a" : [ 1 , { "b" : null } ] }' }
local WSS = { "", "", "", " ", "\t", "\n", "\r", " \r\n\t " }
local JUNK = { "\0", "\1", "\f", "\v", "x", "{", "}", "[", "]", ",", ":", '"', "\\", "0", "-", ".",
    "e", "\127", "\xff", " ", "\t" }

local function pick(rng, t) return t[rng(#t)] end

-- What the fast path takes (most messages: the shapes that must be taken and be right).
local CLEAN = {
    messageType = { '"action"', '"subscribe"', '"unsubscribe"', '"x"', '""' },
    action = { '"status"', '"echo"', '"a b"', '"é"', '"}"' },
    channel = { '"messages"', '"a:b"', '"{"', '","' },
    messageId = { "0", "-0", "1", "-1", "42", "123456789012345", "-123456789012345", '"m1"', '""' },
    params = { "{}", '{"a":1}', '{"a":null,"b":[1,2,3],"c":{"d":"e"}}', '{"s":"}{][\\"\\\\"}',
        '{"n":1.5e3,"m":-0.25,"z":0}', '{"u":"\\u00e9\\n"}', '{"a":[]}', '{ "a" : [ 1 , { "b" : null } ] }' },
}

local function value_for(rng, key, clean)
    if clean and CLEAN[key] then return pick(rng, CLEAN[key]) end
    local r = rng(10)
    if key == "params" then
        if r <= 8 then return pick(rng, PARAMS) end
        return r == 9 and pick(rng, STRS) or pick(rng, OTHERS)
    elseif key == "messageId" then
        if r <= 5 then return pick(rng, NUMS) end
        return r <= 9 and pick(rng, STRS) or pick(rng, OTHERS)
    end
    if r <= 8 then return pick(rng, STRS) end
    return r == 9 and pick(rng, NUMS) or pick(rng, OTHERS)
end

-- A message of the five keys (some absent, some repeated, now and then a foreign one).
local function generate(rng)
    local ws = function() return pick(rng, WSS) end
    local clean = rng(2) == 1
    local parts, order = {}, {}
    for _, k in ipairs(KEYS) do if k == "messageType" or rng(3) > 1 then order[#order + 1] = k end end
    if rng(20) == 1 then order[#order + 1] = pick(rng, KEYS) end
    if rng(30) == 1 then order[#order + 1] = "other" end
    if clean and rng(10) == 1 then order[#order + 1] = "params" end
    for i = #order, 2, -1 do
        local j = rng(i)
        order[i], order[j] = order[j], order[i]
    end
    for _, k in ipairs(order) do
        parts[#parts + 1] = ws() .. '"' .. k .. '"' .. ws() .. ":" .. ws() .. value_for(rng, k, clean) .. ws()
    end
    return ws() .. "{" .. table.concat(parts, ",") .. "}" .. ws()
end

local function mutate(rng, s)
    local n = rng(4)
    for _ = 1, n do
        local at = rng(#s + 1)
        local how = rng(4)
        if how == 1 then s = s:sub(1, at - 1) .. pick(rng, JUNK) .. s:sub(at + 1)
        elseif how == 2 then s = s:sub(1, at - 1) .. pick(rng, JUNK) .. s:sub(at)
        elseif how == 3 then s = s:sub(1, at - 1) .. s:sub(at + 1)
        else s = s:sub(1, at - 1) end
    end
    return s
end

local function deep_equal(a, b, json)
    if a == b then
        if type(a) == "number" and a == 0 then return 1 / a == 1 / b end
        return true
    end
    if type(a) ~= "table" or type(b) ~= "table" then return false end
    for k, v in pairs(a) do if not deep_equal(v, b[k], json) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
end

-- nil when the fast path agrees with json.decode for text, else what differs.
local function check(json, ws_envelope, text)
    local kind, name, mid, channel, params_json = ws_envelope(text)
    if kind == nil then return nil, false end
    local full, err = json.decode(text)
    local params, perr
    if params_json ~= nil then
        params, perr = json.decode(params_json)
        if params == nil then
            if full ~= nil then return "params text fails (" .. tostring(perr) .. ") but the whole decodes" end
            return nil, false
        end
    end
    if type(full) ~= "table" then return "taken, but json.decode gives " .. tostring(full) .. " " .. tostring(err) end
    for k in pairs(full) do
        if not FIELDS[k] then return "json.decode has key " .. tostring(k) end
    end
    local got = { messageType = kind, action = name, messageId = mid, channel = channel, params = params }
    for k in pairs(FIELDS) do
        if type(got[k]) ~= type(full[k]) or not deep_equal(got[k], full[k], json) then
            return ("field %s: fast %s, json.decode %s"):format(k, tostring(got[k]), tostring(full[k]))
        end
    end
    return nil, true
end

function M.compare(json, ws_envelope, n_random)
    local report = { checked = 0, taken = 0, mismatches = {} }
    local function one(text)
        report.checked = report.checked + 1
        local bad, taken = check(json, ws_envelope, text)
        if bad then
            if #report.mismatches < 20 then
                report.mismatches[#report.mismatches + 1] = ("%s: %q"):format(bad, text:sub(1, 300))
            end
        elseif taken then
            report.taken = report.taken + 1
        end
    end
    for _, text in ipairs(FIXED) do one(text) end
    local rng = new_rng(20261203)
    for i = 1, n_random do
        local text = generate(rng)
        if i % 2 == 0 then text = mutate(rng, text) end
        one(text)
    end
    return report
end

M.FIXED = FIXED
return M
