-- The integration specs' WebSocket client: keryx.testing.ws (lua/keryx/testing/ws.lua: the
-- RFC 6455 client, its frames and JSON helpers, shared with keryx.testing), plus assertions:
--
--   W.open(srv, headers) → ws                 -- connect to a server.lua handle, upgrade required
--   W.error_of(reply, raw) → reply.error      -- an error reply's error object, shape checked
--
-- W.connect is keryx.testing.ws's, over TLS (wss) when the harness started keryx with TLS.
-- Every other W.* and ws:* is keryx.testing.ws's (see its header).
local luassert = require "luassert"
local base = require "keryx.testing.ws"
local T = require "tls_client"

local M = setmetatable({}, { __index = base })

--- base.connect, speaking wss to a keryx the harness started with TLS (KERYX_TEST_TLS=1).
function M.connect(port, path, headers, opts)
    if T.is_tls(port) then
        local o = {}
        for k, v in pairs(opts or {}) do o[k] = v end
        o.wrap = function(c) return T.wrap(c, { timeout = o.timeout }) end
        opts = o
    end
    return base.connect(port, path, headers, opts)
end

-- ---- spec helpers (assertions) -----------------------------------------------------------

--- Opens a WebSocket to srv (a server.lua handle) at "/", failing the test when the upgrade is
--- refused (the message names the status and body).
function M.open(srv, headers)
    local ws, res = M.connect(srv.port, "/", headers)
    local why = type(res) == "table" and (res.status .. " " .. tostring(res.body)) or tostring(res)
    luassert.is_table(ws, "upgrade refused: " .. why)
    return ws
end

--- The error object of an error reply (decoded reply, raw text): a table with a string message,
--- a string type and a numeric timestamp.
function M.error_of(reply, raw)
    luassert.is_table(reply, tostring(raw))
    luassert.is_table(reply.error, raw)
    luassert.is_string(reply.error.message, raw)
    luassert.is_string(reply.error.type, raw)
    luassert.is_number(reply.error.timestamp, raw)
    return reply.error
end

return M
