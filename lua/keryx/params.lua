-- keryx.params — turns an HTTP request into raw params:
-- route params (percent-decoded) > JSON or form body > query string; a key found in several
-- sources takes the highest one; a key repeated inside the query or a form becomes an array.
local json = require "keryx.json"
local errors = require "keryx.errors"

local M = {}
local char, find, sub, gsub, lower = string.char, string.find, string.sub, string.gsub, string.lower
local tonumber = tonumber

M.MAX_PARAMS = 1000

local function hex(h)
    return char(tonumber(h, 16))
end

--- Decodes %XX (and '+' as space when plus is true). Invalid escapes stay literal.
function M.unescape(s, plus)
    if plus then s = gsub(s, "+", " ") end
    return (gsub(s, "%%(%x%x)", hex))
end

--- Parses "a=1&a=2&b" into { a = {"1","2"}, b = "" }. Returns t, or nil, err past MAX_PARAMS.
function M.parse_urlencoded(s, into)
    local t = into or {}
    local count, pos, len = 0, 1, #s
    while pos <= len do
        local amp = find(s, "&", pos, true) or (len + 1)
        local pair = sub(s, pos, amp - 1)
        pos = amp + 1
        if pair ~= "" then
            count = count + 1
            if count > M.MAX_PARAMS then return nil, "too many parameters (max " .. M.MAX_PARAMS .. ")" end
            local eq = find(pair, "=", 1, true)
            local k = M.unescape(eq and sub(pair, 1, eq - 1) or pair, true)
            local v = eq and M.unescape(sub(pair, eq + 1), true) or ""
            local old = t[k]
            if old == nil then
                t[k] = v
            elseif type(old) == "table" then
                old[#old + 1] = v
            else
                t[k] = { old, v }
            end
        end
    end
    return t
end

local function media_type(ct)
    if not ct then return nil end
    local semi = find(ct, ";", 1, true)
    local mt = semi and sub(ct, 1, semi - 1) or ct
    return lower((gsub(mt, "^%s*(.-)%s*$", "%1")))
end

local function formatting(msg)
    return nil, errors.new("CONNECTION_ACTION_PARAM_FORMATTING", msg)
end

--- Raw params for req = { params?, query?, body?, content_type? } or nil, typed error.
function M.from_request(req)
    local out = {}
    if req.query and req.query ~= "" then
        local q, err = M.parse_urlencoded(req.query)
        if not q then return formatting(err) end
        for k, v in pairs(q) do out[k] = v end
    end
    local body = req.body
    if body and body ~= "" then
        local mt = media_type(req.content_type)
        if mt == "application/json" or (mt and find(mt, "+json", 1, true)) then
            -- cjson decodes [] and {} alike, so look at the text for the object brace.
            if not find(body, "^%s*{") then return formatting("request body must be a JSON object") end
            local v, err = json.decode(body)
            if v == nil then return formatting("cannot parse request body: " .. tostring(err)) end
            if type(v) ~= "table" or json.is_array(v) or (next(v) ~= nil and v[1] ~= nil) then
                return formatting("request body must be a JSON object")
            end
            for k, val in pairs(v) do
                if val ~= json.null then out[k] = val end
            end
        elseif mt == "application/x-www-form-urlencoded" then
            local f, err = M.parse_urlencoded(body)
            if not f then return formatting(err) end
            for k, v in pairs(f) do out[k] = v end
        end
    end
    if req.params then
        for k, v in pairs(req.params) do out[k] = M.unescape(v, false) end
    end
    return out
end

return M
