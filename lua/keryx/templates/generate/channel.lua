-- Channel {{name}}: subscribe with {"messageType":"subscribe","channel":"{{name}}"}.
local keryx = require "keryx"

return keryx.channel {
    name = "{{name}}",
    description = "Channel {{name}}", -- say who may subscribe and what is published on it
    -- authorize = function(channel, conn)          -- raise a typed error to refuse
    --     if not (conn.session and conn.session.data.user_id) then
    --         keryx.error("CONNECTION_CHANNEL_AUTHORIZATION", "Must be logged in")
    --     end
    -- end,
}
