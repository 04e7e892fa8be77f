-- Raw HTTP/1.1 for the black-box specs, and the assertions they share on what keryx answers:
--
--   local A = require "http_assert"
--   local raw, how, t = A.exchange(srv, bytes, timeout)  -- one write, then all until close
--   A.parse_all(raw) → { {status, status_line, headers, body} | {partial}, ... }
--   A.parse_one(raw, no_body) → res, rest                  -- one HTTP/1.1 response
--   A.assert_security_headers(res)                         -- the five defaults, exact values
--   A.assert_envelope(res, status, type)                   -- the envelope the C side writes
--   A.envelope(res, status, type) → error                  -- an action's error envelope
--
-- Needs no running server itself (srv is a server.lua handle); never retries a request.
local socket = require "socket"
local cjson = require "cjson"
local assert = require "luassert"

local M = {}

M.HOST = "Host: localhost\r\n"

--- The Content-Type of every JSON answer the Lua transports build (results and errors).
M.JSON_CONTENT_TYPE = "application/json; charset=utf-8"
--- The Content-Type of the errors src/response.c decides (no route, pipeline failure…): the
--- same, charset included.
M.C_JSON_CONTENT_TYPE = "application/json; charset=utf-8"

--- The five security headers every response carries by default, lower-case names.
M.SECURITY_HEADERS = {
    ["content-security-policy"] = "default-src 'self'; script-src 'self' https://cdn.jsdelivr.net; " ..
        "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; font-src 'self' https://cdn.jsdelivr.net data:; " ..
        "img-src 'self' data: blob:; connect-src 'self'; worker-src blob:",
    ["x-content-type-options"] = "nosniff",
    ["x-frame-options"] = "DENY",
    ["strict-transport-security"] = "max-age=31536000; includeSubDomains",
    ["referrer-policy"] = "strict-origin-when-cross-origin",
}

-- ---- raw bytes --------------------------------------------------------------------------------

--- Reads from c until the server closes, resets, or `timeout` seconds (default 2) pass in total;
--- closes c. Returns the bytes, how it ended ("closed" (FIN), "reset" or "timeout") and when.
function M.drain(c, timeout)
    local out = {}
    local deadline = socket.gettime() + (timeout or 2)
    while true do
        local left = deadline - socket.gettime()
        if left <= 0 then
            c:close()
            return table.concat(out), "timeout", socket.gettime()
        end
        c:settimeout(left)
        local chunk, err, partial = c:receive(4096)
        local got = chunk or partial
        if got and #got > 0 then out[#out + 1] = got end
        if not chunk then
            local t = socket.gettime()
            c:close()
            if err == "closed" then return table.concat(out), "closed", t end
            if err == "timeout" then return table.concat(out), "timeout", t end
            return table.concat(out), "reset", t
        end
    end
end

--- One write of raw bytes on a fresh connection; then as drain (timeout default 2 s).
function M.exchange(srv, bytes, timeout)
    local c = srv:connect(timeout or 2)
    assert(c:send(bytes))
    return M.drain(c, timeout)
end

--- Adds one header line ("Name: value") to res.headers (lower-case name; a repeated name's
--- values joined with ", ") and res.header_list ({name, value} as sent). False if not a header.
function M.add_header(res, line)
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if not name then return false end
    local k = name:lower()
    res.header_list[#res.header_list + 1] = { name, value }
    res.headers[k] = res.headers[k] and (res.headers[k] .. ", " .. value) or value
    return true
end

-- The header lines of a head (the status line excluded).
local function headers_of(head)
    local res = { headers = {}, header_list = {} }
    for line in head:gmatch("\r\n([^\r]*)") do M.add_header(res, line) end
    return res
end

--- Splits a byte stream into responses, framed by Content-Length (1xx/204/304 and a response
--- without a status line have no body). A head cut short ends the list as { partial = bytes }.
function M.parse_all(raw)
    local list, pos = {}, 1
    while pos <= #raw do
        local he = raw:find("\r\n\r\n", pos, true)
        if not he then
            list[#list + 1] = { partial = raw:sub(pos) }
            break
        end
        local head = raw:sub(pos, he - 1)
        local res = headers_of(head)
        res.status_line = head:match("^[^\r]*")
        res.status = tonumber(res.status_line:match("^HTTP/1%.[01] (%d%d%d) ") or "")
        local len = tonumber(res.headers["content-length"] or "0") or 0
        if not res.status or res.status < 200 or res.status == 204 or res.status == 304 then len = 0 end
        res.body = raw:sub(he + 4, he + 3 + len)
        list[#list + 1] = res
        pos = he + 4 + len
    end
    return list
end

--- Parses one HTTP/1.1 response from raw (failing without a complete head); `no_body` for a
--- HEAD. Returns res ({ status, headers, header_list, head, body }) and the bytes after it.
function M.parse_one(raw, no_body)
    local he = raw:find("\r\n\r\n", 1, true)
    assert(he, "no complete response head in:\n" .. raw)
    local head = raw:sub(1, he - 1)
    local res = headers_of(head)
    res.head = head
    res.status = tonumber(head:match("^HTTP/1%.1 (%d%d%d) ") or "")
    local len = tonumber(res.headers["content-length"] or "0") or 0
    if no_body or res.status == 304 or res.status == 204 then len = 0 end
    res.body = raw:sub(he + 4, he + 3 + len)
    return res, raw:sub(he + 4 + len)
end

--- How many times header `name` (any case) appears in res.header_list.
function M.header_count(res, name)
    local n = 0
    for _, kv in ipairs(res.header_list) do
        if kv[1]:lower() == name:lower() then n = n + 1 end
    end
    return n
end

-- ---- assertions -------------------------------------------------------------------------------

--- The five default security headers, each with its exact value (`what` prefixes the message).
function M.assert_security_headers(res, what)
    for name, value in pairs(M.SECURITY_HEADERS) do
        assert.are.equal(value, res.headers[name], (what and what .. ": " or "") .. name)
    end
end

--- The body of the envelope the C side writes, status not checked: JSON, exactly
--- error.message (non-empty), error.type (= typ; any string when typ is nil) and
--- error.timestamp (a number), no stack anywhere. Returns the decoded document.
function M.assert_envelope_body(res, typ)
    assert.are.equal(M.C_JSON_CONTENT_TYPE, res.headers["content-type"])
    local ok, doc = pcall(cjson.decode, res.body)
    assert.is_true(ok, "error body is not JSON: " .. tostring(res.body))
    assert.is_table(doc.error)
    assert.is_string(doc.error.message)
    assert.is_true(#doc.error.message > 0)
    if typ then assert.are.equal(typ, doc.error.type) else assert.is_string(doc.error.type) end
    assert.is_number(doc.error.timestamp)
    assert.is_nil(doc.error.stack)
    assert.is_nil(doc.stack)
    for k in pairs(doc.error) do
        assert.is_truthy(k == "message" or k == "type" or k == "timestamp", "unexpected key " .. k)
    end
    return doc
end

--- A complete C-side error response: status, the envelope body, a current timestamp (ms) and
--- the five security headers. Returns the decoded document.
function M.assert_envelope(res, status, typ)
    assert.are.equal(status, res.status)
    local doc = M.assert_envelope_body(res, typ)
    assert.is_true(math.abs(doc.error.timestamp - socket.gettime() * 1000) < 60000,
        "timestamp is not the current time in ms: " .. tostring(doc.error.timestamp))
    M.assert_security_headers(res)
    return doc
end

--- An error envelope as an action's pipeline writes it (it may carry more keys, e.g. `key` on a
--- 406): status, JSON content type (ctype, default JSON_CONTENT_TYPE; C_JSON_CONTENT_TYPE for a
--- route or a failure decided in C), error.type = err_type, a string message and a numeric
--- timestamp. Returns the error object.
function M.envelope(res, status, err_type, ctype)
    assert.are.equal(status, res.status, res.body)
    assert.are.equal(ctype or M.JSON_CONTENT_TYPE, res.headers["content-type"])
    local body = cjson.decode(res.body)
    assert.is_table(body.error, res.body)
    assert.are.equal(err_type, body.error.type)
    assert.is_string(body.error.message)
    assert.is_number(body.error.timestamp)
    return body.error
end

return M
