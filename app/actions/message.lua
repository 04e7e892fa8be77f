-- message:create (PUT /api/message) and messages:list (GET /api/messages, newest first).
--   message:<id>     hash {id, body, user_id, created_at}
--   messages         list of ids, newest first
local keryx = require "keryx"
local z = keryx.schema

local redis = keryx.redis

local function message_from(flat)
    if type(flat) ~= "table" or #flat == 0 then return nil end
    local m = {}
    for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
    return { id = tonumber(m.id), body = m.body, user_id = tonumber(m.user_id), created_at = tonumber(m.created_at) }
end

return {
    keryx.action {
        name = "message:create",
        description = "Post a message to the chat",
        inputs = z.object {
            body = z.string():min(1):max(1000),
        },
        web = { route = "/message", method = "PUT" },
        middleware = { keryx.middleware.session_required },
        run = function(params, conn)
            local id = redis.ok(redis.call("INCR", "messages:next_id"))
            local message = {
                id = id, body = params.body, user_id = conn.session.data.user_id, created_at = keryx.now_ms(),
            }
            local res = redis.ok(redis.pipeline {
                { "HSET", "message:" .. id, "id", id, "body", message.body, "user_id", message.user_id,
                    "created_at", message.created_at },
                { "LPUSH", "messages", id },
            })
            for _, r in ipairs(res) do
                if type(r) == "table" and r.err then keryx.error("CONNECTION_ACTION_RUN", "Redis error: " .. r.err) end
            end
            if keryx.channels then keryx.channels.broadcast("messages", { message = message }) end
            return { message = message }
        end,
    },
    keryx.action {
        name = "messages:list",
        description = "List chat messages, newest first",
        inputs = z.object(z.pagination { default_limit = 25, max_limit = 100 }),
        web = { route = "/messages", method = "GET" },
        run = function(params)
            local first = (params.page - 1) * params.limit
            local res = redis.ok(redis.pipeline {
                { "LLEN", "messages" },
                { "LRANGE", "messages", first, first + params.limit - 1 },
            })
            local total = tonumber(res[1]) or 0
            local cmds = {}
            for i, id in ipairs(type(res[2]) == "table" and res[2] or {}) do cmds[i] = { "HGETALL", "message:" .. id } end
            local rows = #cmds > 0 and redis.ok(redis.pipeline(cmds)) or {}
            local data = keryx.json.array()
            for _, flat in ipairs(rows) do
                local m = message_from(flat)
                if m then data[#data + 1] = m end
            end
            return {
                data = data,
                pagination = { page = params.page, limit = params.limit, total = total,
                    pages = math.ceil(total / params.limit) },
            }
        end,
    },
}
