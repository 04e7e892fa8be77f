-- The hello action through the real keryx binary and a private redis-server (keryx.testing).
-- Run from the project directory: luajit /usr/bin/busted
local testing = require "keryx.testing"

describe("hello", function()
    local app
    setup(function() app = testing.start() end)
    teardown(function() app:stop() end)
    before_each(function() app:flush() end)

    it("greets by name", function()
        local res = app:get("/api/hello?name=Ada")
        assert.are.equal(200, res.status)
        assert.are.same({ message = "Hello, Ada!" }, res.json)
    end)

    it("refuses an empty name with a 406", function()
        local res = app:get("/api/hello?name=")
        assert.are.equal(406, res.status)
        assert.are.equal("CONNECTION_ACTION_PARAM_REQUIRED", res.json.error.type)
    end)
end)
