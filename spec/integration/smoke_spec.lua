local H = require "server"

describe("keryx binary", function()
    local srv
    setup(function() srv = H.start() end)
    teardown(function() srv:stop() end)

    it("answers GET /api/status with the status JSON", function()
        local res = srv:request("/api/status")
        assert.are.equal(200, res.status)
        local body = H.json(res.body)
        assert.are.equal("keryx-example", body.name)
        assert.is_true(body.healthy)
        assert.are.equal("application/json; charset=utf-8", res.headers["content-type"])
    end)

    it("runs an action from the command line", function()
        local code, out = H.cli({ "run", "hello", "--name", "Evan" })
        assert.are.equal(0, code)
        assert.are.same({ response = { message = "Hello, Evan!" } }, H.json(out))
    end)
end)
