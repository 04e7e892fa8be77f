-- keryx.testing.ws — a WebSocket client over lua-socket (RFC 6455) for tests: keryx.testing's
-- app:ws() and the framework's own integration specs (spec/helpers/ws_client.lua adds its
-- assertions on top). It speaks the protocol correctly by default (masked frames, a checked
-- handshake) and can also build frames a conforming client never sends:
--
--   local W = require "keryx.testing.ws"
--   local ws, res = W.connect(port, "/", { Origin = "http://x" })  -- nil, res when refused
--   ws:send_text("hi")                        -- one masked text frame
--   ws:send_text("hello", { fragments = 3 })  -- the same text split over 3 frames
--   ws:send_frame { opcode = 0x9, payload = "p", fin = true, rsv = 0, mask = true,
--                   length = 2^40 }           -- any frame; `length` overrides the header only
--   ws:receive(timeout) → { opcode, payload, fin, rsv, masked } | nil, "timeout" | "closed"
--   ws:read_close(timeout) → code, reason     -- skips data frames; nil, err when none came
--   ws:send_json(t) / ws:json(timeout)        -- JSON messages (the latter skips control frames)
--   ws:request(t, timeout)                    -- send_json, then the reply echoing t.messageId
--                                                (broadcasts read meanwhile are held)
--   ws:action(name, params, timeout)          -- run an action, its reply
--   ws:subscribe(channel, timeout)            -- subscribe, the reply
--   ws:broadcast(channel, timeout, pred)      -- the next {"message":{…}} delivery
--   ws:next_message(channel, timeout)         -- the next broadcast's message (presence skipped)
--   ws:closed_by_peer(timeout)                -- true once the server closed the TCP stream
--
-- Needs lua-socket, LuaJIT's bit and lua-cjson; never retries or reconnects: every byte on the
-- wire is what the caller asked for.
local socket = require "socket"
local bit = require "bit"
local cjson = require "cjson"

local band, bor, bxor, lshift, rshift, rol, tobit =
    bit.band, bit.bor, bit.bxor, bit.lshift, bit.rshift, bit.rol, bit.tobit
local byte, char, concat, floor = string.byte, string.char, table.concat, math.floor

local M = {}

--- Adds one "Name: value" header line to res.headers (lower-case names; repeats joined with
--- ", ") and res.header_list ({name, value} in order). False for a line that is no header.
function M.add_header(res, line)
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if not name then return false end
    local k = name:lower()
    res.header_list[#res.header_list + 1] = { name, value }
    res.headers[k] = res.headers[k] and (res.headers[k] .. ", " .. value) or value
    return true
end

M.GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
M.OP = { CONT = 0x0, TEXT = 0x1, BINARY = 0x2, CLOSE = 0x8, PING = 0x9, PONG = 0xA }

-- ---- SHA-1 and base64 (for Sec-WebSocket-Accept; no C module needed) ---------------------

local function be32(n)
    return char(band(rshift(n, 24), 255), band(rshift(n, 16), 255), band(rshift(n, 8), 255), band(n, 255))
end

--- SHA-1 digest (20 raw bytes) of msg.
function M.sha1(msg)
    local h0, h1, h2, h3, h4 = tobit(0x67452301), tobit(0xEFCDAB89), tobit(0x98BADCFE), tobit(0x10325476),
        tobit(0xC3D2E1F0)
    local ml = #msg * 8
    msg = msg .. "\128" .. ("\0"):rep((55 - #msg) % 64) .. be32(floor(ml / 2 ^ 32)) .. be32(ml % 2 ^ 32)
    assert(#msg % 64 == 0)
    local w = {}
    for chunk = 1, #msg, 64 do
        for i = 0, 15 do
            local a, b, c, d = byte(msg, chunk + i * 4, chunk + i * 4 + 3)
            w[i] = bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
        end
        for i = 16, 79 do w[i] = rol(bxor(w[i - 3], w[i - 8], w[i - 14], w[i - 16]), 1) end
        local a, b, c, d, e = h0, h1, h2, h3, h4
        for i = 0, 79 do
            local f, k
            if i < 20 then
                f, k = bor(band(b, c), band(bit.bnot(b), d)), 0x5A827999
            elseif i < 40 then
                f, k = bxor(b, c, d), 0x6ED9EBA1
            elseif i < 60 then
                f, k = bor(band(b, c), band(b, d), band(c, d)), 0x8F1BBCDC
            else
                f, k = bxor(b, c, d), 0xCA62C1D6
            end
            local t = tobit(rol(a, 5) + f + e + k + w[i])
            e, d, c, b, a = d, c, rol(b, 30), a, t
        end
        h0, h1, h2, h3, h4 = tobit(h0 + a), tobit(h1 + b), tobit(h2 + c), tobit(h3 + d), tobit(h4 + e)
    end
    return be32(h0) .. be32(h1) .. be32(h2) .. be32(h3) .. be32(h4)
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

function M.base64(s)
    local out = {}
    for i = 1, #s, 3 do
        local a, b, c = byte(s, i, i + 2)
        local n = a * 65536 + (b or 0) * 256 + (c or 0)
        local q = {}
        for k = 3, 0, -1 do
            local v = floor(n / 64 ^ k) % 64
            q[#q + 1] = B64:sub(v + 1, v + 1)
        end
        if not b then q[3], q[4] = "=", "=" elseif not c then q[4] = "=" end
        out[#out + 1] = concat(q)
    end
    return concat(out)
end

--- The Sec-WebSocket-Accept value RFC 6455 §4.2.2 requires for key.
function M.accept_for(key)
    return M.base64(M.sha1(key .. M.GUID))
end

local function random_bytes(n)
    local t = {}
    for i = 1, n do t[i] = char(math.random(0, 255)) end
    return concat(t)
end

math.randomseed(os.time() + floor((socket.gettime() % 1) * 1e6))

--- A fresh Sec-WebSocket-Key (base64 of 16 random bytes).
function M.new_key()
    return M.base64(random_bytes(16))
end

-- ---- frames ---------------------------------------------------------------------------------

local function mask_payload(payload, key)
    local k = { byte(key, 1, 4) }
    local out = {}
    for i = 1, #payload, 4096 do
        local part = { byte(payload, i, math.min(i + 4095, #payload)) }
        for j = 1, #part do
            part[j] = bxor(part[j], k[(i + j - 2) % 4 + 1])
        end
        out[#out + 1] = char(unpack(part))
    end
    return concat(out)
end

local function length_bytes(len)
    if len < 126 then return len, "" end
    if len < 65536 then return 126, char(floor(len / 256), len % 256) end
    local t = {}
    for i = 7, 0, -1 do t[#t + 1] = char(floor(len / 256 ^ i) % 256) end
    return 127, concat(t)
end

--- The bytes of one frame. f: opcode (default TEXT), payload (""), fin (true), rsv (0..7),
--- mask (true), length (the header's length field, default #payload: a lie on purpose),
--- mask_key (4 bytes; random by default).
function M.frame(f)
    local payload = f.payload or ""
    local opcode = f.opcode or M.OP.TEXT
    local fin = f.fin ~= false
    local masked = f.mask ~= false
    local b1 = (fin and 0x80 or 0) + (f.rsv or 0) * 16 + opcode
    local n, ext = length_bytes(f.length or #payload)
    local b2 = (masked and 0x80 or 0) + n
    local head = char(b1, b2) .. ext
    if not masked then return head .. payload end
    local key = f.mask_key or random_bytes(4)
    return head .. key .. mask_payload(payload, key)
end

-- ---- the client -----------------------------------------------------------------------------

local Client = {}
Client.__index = Client

local function header_list(headers)
    local list = {}
    if not headers then return list end
    if headers[1] then return headers end
    local names = {}
    for k in pairs(headers) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do list[#list + 1] = { k, headers[k] } end
    return list
end

local function read_head(c)
    local line, err = c:receive("*l")
    if not line then return nil, "no status line: " .. tostring(err) end
    local status, reason = line:match("^HTTP/1%.1 (%d%d%d) ?(.*)$")
    if not status then return nil, "bad status line: " .. line end
    local res = { status = tonumber(status), reason = reason, headers = {}, header_list = {} }
    while true do
        local h, herr = c:receive("*l")
        if not h then return nil, "head cut short: " .. tostring(herr) end
        if h == "" then break end
        M.add_header(res, h)
    end
    return res
end

--- Opens a WebSocket. headers: extra request headers (a map or a list of {name, value}); a map
--- value of false removes a default header (Upgrade, Connection, Sec-WebSocket-Key,
--- Sec-WebSocket-Version, Host). opts: method ("GET"), timeout (s, 5), body (bytes after the
--- head), host ("127.0.0.1").
--- → client (with .response, .key) | nil, response (status, headers, body) or nil, error string
function M.connect(port, path, headers, opts)
    opts = opts or {}
    local key = M.new_key()
    local defaults = {
        { "Host", "127.0.0.1:" .. port },
        { "Upgrade", "websocket" },
        { "Connection", "Upgrade" },
        { "Sec-WebSocket-Key", key },
        { "Sec-WebSocket-Version", "13" },
    }
    local extra = header_list(headers)
    local lines = { ("%s %s HTTP/1.1"):format(opts.method or "GET", path or "/") }
    local override = {}
    for _, kv in ipairs(extra) do override[kv[1]:lower()] = kv end
    for _, kv in ipairs(defaults) do
        local o = override[kv[1]:lower()]
        if o == nil then
            lines[#lines + 1] = kv[1] .. ": " .. kv[2]
        elseif o[2] ~= false then
            lines[#lines + 1] = o[1] .. ": " .. o[2]
            if kv[1] == "Sec-WebSocket-Key" then key = o[2] end
        end
        override[kv[1]:lower()] = nil
        for i = #extra, 1, -1 do
            if extra[i][1]:lower() == kv[1]:lower() then table.remove(extra, i) end
        end
    end
    for _, kv in ipairs(extra) do
        if kv[2] ~= false then lines[#lines + 1] = kv[1] .. ": " .. kv[2] end
    end
    local c = assert(socket.tcp())
    c:settimeout(opts.timeout or 5)
    local ok, cerr = c:connect(opts.host or "127.0.0.1", port)
    if not ok then return nil, "connect: " .. tostring(cerr) end
    if opts.wrap then -- e.g. a TLS session over the socket (wss)
        local wc, werr = opts.wrap(c)
        if not wc then return nil, "wrap: " .. tostring(werr) end
        c = wc
    end
    local req = concat(lines, "\r\n") .. "\r\n\r\n" .. (opts.body or "")
    assert(c:send(req))
    local res, err = read_head(c)
    if not res then
        c:close()
        return nil, err
    end
    if res.status ~= 101 then
        local len = tonumber(res.headers["content-length"] or "")
        if len and len > 0 then
            res.body = c:receive(len) or ""
        elseif len == 0 then
            res.body = ""
        else
            c:settimeout(1)
            res.body = c:receive("*a") or ""
        end
        c:close()
        return nil, res
    end
    local self = setmetatable({ sock = c, response = res, key = key, buffer = "" }, Client)
    return self
end

--- Sends raw bytes as they are.
function Client:send_raw(bytes)
    local ok, err = self.sock:send(bytes)
    if not ok then return nil, err end
    return true
end

--- One frame, see M.frame (defaults: masked, final, text).
function Client:send_frame(f)
    return self:send_raw(M.frame(f))
end

--- A text message, masked; opts.fragments = n splits it over n frames (first TEXT, then
--- CONTINUATION; only the last has FIN). opts.between(i) is called between fragments.
function Client:send_text(s, opts)
    local n = opts and opts.fragments or 1
    if n <= 1 then return self:send_frame { opcode = M.OP.TEXT, payload = s } end
    local size = math.ceil(#s / n)
    for i = 1, n do
        local part = s:sub((i - 1) * size + 1, i * size)
        local ok, err = self:send_frame { opcode = i == 1 and M.OP.TEXT or M.OP.CONT, payload = part, fin = i == n }
        if not ok then return nil, err end
        if i < n and opts.between then opts.between(i) end
    end
    return true
end

function Client:send_json(t)
    return self:send_text(cjson.encode(t))
end

-- Reads exactly n bytes before the deadline.
function Client:read_n(n, deadline)
    while #self.buffer < n do
        local left = deadline - socket.gettime()
        if left <= 0 then return nil, "timeout" end
        self.sock:settimeout(left)
        local chunk, err, partial = self.sock:receive(n - #self.buffer)
        local got = chunk or partial
        if got and #got > 0 then self.buffer = self.buffer .. got end
        if not chunk then
            if err == "closed" then
                self.peer_closed = true
                if #self.buffer < n then return nil, "closed" end
            elseif err ~= "timeout" then
                return nil, err
            end
        end
    end
    local out = self.buffer:sub(1, n)
    self.buffer = self.buffer:sub(n + 1)
    return out
end

--- The next frame within timeout seconds (default 2): { opcode, payload, fin, rsv, masked }
--- or nil, "timeout" | "closed".
function Client:receive(timeout)
    local deadline = socket.gettime() + (timeout or 2)
    local h, err = self:read_n(2, deadline)
    if not h then return nil, err end
    local b1, b2 = byte(h, 1, 2)
    local len = band(b2, 0x7f)
    if len == 126 then
        local e = self:read_n(2, deadline)
        if not e then return nil, "closed" end
        len = byte(e, 1) * 256 + byte(e, 2)
    elseif len == 127 then
        local e = self:read_n(8, deadline)
        if not e then return nil, "closed" end
        len = 0
        for i = 1, 8 do len = len * 256 + byte(e, i) end
    end
    local key
    if band(b2, 0x80) ~= 0 then key = self:read_n(4, deadline) end
    local payload = ""
    if len > 0 then
        payload, err = self:read_n(len, deadline)
        if not payload then return nil, err end
    end
    if key then payload = mask_payload(payload, key) end
    return {
        opcode = band(b1, 0x0f), fin = band(b1, 0x80) ~= 0, rsv = rshift(band(b1, 0x70), 4),
        masked = key ~= nil, payload = payload,
    }
end

--- Reads frames until a close frame: → code (nil when the frame had no body), reason.
--- → nil, "timeout" | "closed" (TCP closed without a close frame). Answers nothing.
function Client:read_close(timeout)
    local deadline = socket.gettime() + (timeout or 2)
    while true do
        local f, err = self:receive(math.max(deadline - socket.gettime(), 0.001))
        if not f then return nil, err end
        if f.opcode == M.OP.CLOSE then
            self.close_frame = f
            if #f.payload < 2 then return nil, "" end
            return byte(f.payload, 1) * 256 + byte(f.payload, 2), f.payload:sub(3)
        end
    end
end

-- Reads the next JSON text message from the wire (pings counted in self.pings and skipped).
function Client:read_json(timeout)
    local deadline = socket.gettime() + (timeout or 2)
    while true do
        local f, err = self:receive(math.max(deadline - socket.gettime(), 0.001))
        if not f then return nil, err end
        if f.opcode == M.OP.TEXT then
            local ok, v = pcall(cjson.decode, f.payload)
            if not ok then return nil, "not JSON: " .. f.payload end
            return v, f.payload
        elseif f.opcode == M.OP.CLOSE then
            self.close_frame = f
            return nil, "close frame: " .. f.payload
        elseif f.opcode == M.OP.PING then
            self.pings = (self.pings or 0) + 1
        end
    end
end

--- The next data message decoded from JSON (held messages first; pings and pongs skipped).
--- → table, raw text | nil, err
function Client:json(timeout)
    local q = self.held
    if q and #q > 0 then
        local m = table.remove(q, 1)
        return m[1], m[2]
    end
    return self:read_json(timeout)
end

--- The next message satisfying pred(msg); messages read meanwhile are held for json()/wait().
function Client:wait(pred, timeout)
    self.held = self.held or {}
    for i, m in ipairs(self.held) do
        if pred(m[1]) then
            table.remove(self.held, i)
            return m[1], m[2]
        end
    end
    local deadline = socket.gettime() + (timeout or 2)
    while true do
        local v, raw = self:read_json(math.max(deadline - socket.gettime(), 0.001))
        if v == nil then return nil, raw end
        if pred(v) then return v, raw end
        self.held[#self.held + 1] = { v, raw }
    end
end

--- True for a broadcast delivery {"message":{channel, message, sender}} (no messageId).
function M.is_broadcast(v)
    return type(v) == "table" and v.messageId == nil and type(v.message) == "table" and v.message.channel ~= nil
end

--- The next broadcast (optionally on channel, and satisfying pred(msg.message)).
function Client:broadcast(channel, timeout, pred)
    return self:wait(function(v)
        return M.is_broadcast(v) and (channel == nil or v.message.channel == channel)
            and (pred == nil or pred(v.message))
    end, timeout)
end

--- The next message an action or the app broadcast on channel (presence join/leave frames are
--- skipped and held): the broadcast's `message` (what was broadcast), the whole delivery.
--- → message, delivery | nil, "timeout" | err
function Client:next_message(channel, timeout)
    local v, err = self:broadcast(channel, timeout, function(m) return m.sender ~= "presence" end)
    if not v then return nil, err end
    return v.message.message, v
end

--- Sends t as JSON and returns its reply: the message echoing t.messageId, or, without one,
--- the next message that is not a broadcast. Broadcasts read meanwhile are held.
function Client:request(t, timeout)
    assert(self:send_json(t))
    local mid = t.messageId
    return self:wait(function(v)
        if type(v) ~= "table" then return true end
        if mid ~= nil then return v.messageId ~= nil and cjson.encode(v.messageId) == cjson.encode(mid) end
        return not M.is_broadcast(v)
    end, timeout)
end

--- True when the server closes the TCP stream within timeout seconds (data in between is read
--- and dropped).
function Client:closed_by_peer(timeout)
    if self.peer_closed then return true end
    local deadline = socket.gettime() + (timeout or 2)
    while socket.gettime() < deadline do
        self.sock:settimeout(math.max(deadline - socket.gettime(), 0.001))
        local chunk, err = self.sock:receive(4096)
        if not chunk and err ~= "timeout" then
            self.peer_closed = true
            return true
        end
    end
    return false
end

--- Sends a close frame (code, reason) if still possible and closes the TCP stream.
function Client:close(code, reason)
    if code then
        local payload = char(floor(code / 256), code % 256) .. (reason or "")
        pcall(self.send_frame, self, { opcode = M.OP.CLOSE, payload = payload })
    end
    self.sock:close()
end

--- Sends {messageType = "subscribe", channel = channel} and returns the reply (a table; its
--- `error` field set when refused), or nil, err.
function Client:subscribe(channel, timeout)
    self.next_id = (self.next_id or 0) + 1
    return self:request({ messageType = "subscribe", channel = channel, messageId = "sub-" .. self.next_id }, timeout)
end

--- Runs an action over the socket ({messageType = "action", action, params}) and returns the
--- reply (a table; its `error` field set on failure), or nil, err.
function Client:action(name, params, timeout)
    self.next_id = (self.next_id or 0) + 1
    return self:request({ messageType = "action", action = name, params = params or {}, messageId = self.next_id },
        timeout)
end

--- Decodes a close frame payload into code, reason.
function M.close_code(payload)
    if #payload < 2 then return nil, "" end
    return byte(payload, 1) * 256 + byte(payload, 2), payload:sub(3)
end

return M
