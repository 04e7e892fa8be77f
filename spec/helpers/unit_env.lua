-- busted helper for the pure-Lua unit specs: make `require "keryx.x"` find lua/keryx/x.lua
-- when busted runs from the repository root (luajit /usr/bin/busted --helper=... spec/unit).
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
