-- busted helper for the pure-Lua unit specs: make `require "keryx.x"` find lua/keryx/x.lua
-- when busted runs from the repository root (luajit /usr/bin/busted --helper=... spec/unit),
-- and make `require "keryx.core"` load the pure-Lua fake of the C core (spec/helpers/fake_core.lua).
package.path = "lua/?.lua;lua/?/init.lua;spec/helpers/?.lua;" .. package.path
package.preload["keryx.core"] = function() return require("fake_core") end
