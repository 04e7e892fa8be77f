-- message:create (PUT /api/message) and messages:list (GET /api/messages, newest first).
--   messages          list of JSON messages, newest first, capped at MAX_KEPT (LTRIM): the
--                     history cannot grow without bound
--   messages:next_id  counter
local keryx = require "keryx"
local z = keryx.schema

local redis, json = keryx.redis, keryx.json
local MAX_KEPT = 10000

-- One chat message, as stored and as answered (`outputs` of both actions).
local Message = z.object {
    id = z.integer():min(1),
    body = z.string(),
    user_id = z.integer():min(1):describe("Who posted it"),
    created_at = z.integer():describe("When, in ms since the Unix epoch"),
}

return {
    keryx.action {
        name = "message:create",
        description = "Post a message to the chat",
        inputs = z.object {
            body = z.string():min(1):max(1000),
        },
        outputs = z.object { message = Message },
        web = { route = "/message", method = "PUT" },
        mcp = { tool = true },
        middleware = { keryx.middleware.session_required },
        run = function(params, conn)
            local id = redis.ok(redis.call("INCR", "messages:next_id"))
            local message = {
                id = id, body = params.body, user_id = conn.session.data.user_id, created_at = keryx.now_ms(),
            }
            redis.ok_all(redis.pipeline {
                { "LPUSH", "messages", json.encode(message) },
                { "LTRIM", "messages", 0, MAX_KEPT - 1 },
            })
            if keryx.channels then keryx.channels.broadcast("messages", { message = message }) end
            return { message = message }
        end,
    },
    keryx.action {
        name = "messages:list",
        description = "List chat messages, newest first",
        inputs = z.object(z.pagination { default_limit = 25, max_limit = 100 }),
        outputs = z.object {
            data = z.array(Message),
            pagination = z.object {
                page = z.integer(), limit = z.integer(), total = z.integer(), pages = z.integer(),
            },
        },
        web = { route = "/messages", method = "GET" },
        mcp = { tool = true },
        run = function(params)
            local first = (params.page - 1) * params.limit
            local res = redis.ok_all(redis.pipeline {
                { "LLEN", "messages" },
                { "LRANGE", "messages", first, first + params.limit - 1 },
            })
            local total = tonumber(res[1]) or 0
            local data = json.array()
            for _, text in ipairs(type(res[2]) == "table" and res[2] or {}) do
                local m = json.decode(text)
                if type(m) == "table" then data[#data + 1] = m end
            end
            return {
                data = data,
                pagination = { page = params.page, limit = params.limit, total = total,
                    pages = math.ceil(total / params.limit) },
            }
        end,
    },
}
