-- Channels `room:<name>`: open rooms anyone may join over a WebSocket
-- ({"messageType":"subscribe","channel":"room:lobby"}).
local keryx = require "keryx"

return keryx.channel {
    pattern = "^room:[%w-]+$",
    description = "Open rooms: room:<letters, digits, ->",
}
