-- Channel `messages`: the chat's message feed. message:create broadcasts every new
-- message here as {"message":{id, body, user_id, created_at}}. Logged-in users only: a socket
-- logs in over HTTP (the session cookie goes with the upgrade) or by running session:create
-- over the socket itself. Presence is per user: two tabs of one user are one presence key.
local keryx = require "keryx"

local function user_id(conn)
    local s = conn.session -- loads the session from Redis (a Redis outage answers 503)
    local uid = s and type(s.data) == "table" and s.data.user_id or nil
    if type(uid) == "number" or (type(uid) == "string" and uid ~= "") then return uid end
    return nil
end

return keryx.channel {
    name = "messages",
    description = "New chat messages (logged-in users only)",
    authorize = function(_, conn)
        if user_id(conn) == nil then
            keryx.error("CONNECTION_CHANNEL_AUTHORIZATION", "Must be logged in to subscribe")
        end
    end,
    presence_key = function(conn)
        return user_id(conn)
    end,
}
