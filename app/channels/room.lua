-- Channels `room:<name>`: open rooms anyone may join, e.g. `room:lobby`. Names are
-- letters, digits and '-' after the prefix. Presence is per connection (the default key).
local keryx = require "keryx"

return keryx.channel {
    pattern = "^room:[%w-]+$",
    description = "Open chat rooms: room:<letters, digits, ->",
}
