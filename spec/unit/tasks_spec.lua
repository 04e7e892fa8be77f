-- keryx.tasks against the fake keryx.core: payload text (key order, sorted inputs, the same text
-- for equal inputs), the refusals that happen before anything is sent (unknown action, bad
-- queue, inputs the schema refuses, what JSON cannot carry), Redis down as nil, "closed", and
-- the action definition's `task` field. The Redis side (scripts, processors) runs against a
-- real redis-server in spec/integration/tasks_spec.lua.
local fake = require "keryx.core"
local pipeline = require "keryx.pipeline"
local action = require "keryx.action"
local tasks = require "keryx.tasks"
local worker = require "keryx.task_worker"
local z = require "keryx.schema"
local errors = require "keryx.errors"

local function register(def)
    if def.run == nil then def.run = function(params) return params end end
    local a = action.define(def)
    local reg = pipeline.registry
    reg.list[#reg.list + 1], reg.by_name[a.name] = a, a
    return a
end

local function clear()
    pipeline.registry.list, pipeline.registry.by_name = {}, {}
end

before_each(function()
    fake.reset()
    clear()
    register { name = "send", inputs = z.object { to = z.string():email(), count = z.integer():optional() } }
    register { name = "nightly", task = { queue = "low", frequency = 60000 } }
end)
after_each(clear)

local function raised(fn, ...)
    local ok, err = pcall(fn, ...)
    assert.is_false(ok)
    assert.is_true(errors.is(err), tostring(err))
    return err
end

describe("keryx.tasks payloads", function()
    it("write class, queue, args in that order with the inputs' keys sorted", function()
        assert.are.equal('{"class":"send","queue":"default","args":[{"a":1,"b":{"x":[1,2],"y":"z"}}]}',
            tasks.payload("send", "default", { b = { y = "z", x = { 1, 2 } }, a = 1 }))
        assert.are.equal('{"class":"send","queue":"q","args":[{}]}', tasks.payload("send", "q", {}))
    end)

    it("give equal inputs the same text however the table was built", function()
        local a, b = {}, {}
        for i = 1, 50 do a["k" .. i] = i end
        for i = 50, 1, -1 do b["k" .. i] = i end
        assert.are.equal(tasks.payload("send", "default", a), tasks.payload("send", "default", b))
    end)

    it("decode Resque jobs from other writers (extra fields, no args)", function()
        local job = tasks.decode('{"queue":"q","args":[{"x":1}],"class":"send","jid":"1"}')
        assert.are.equal("send", job.class)
        assert.are.same({ x = 1 }, job.inputs)
        job = tasks.decode('{"class":"send"}')
        assert.are.same({}, job.inputs)
        assert.are.equal("default", job.queue)
        assert.is_nil(tasks.decode("not json"))
        assert.is_nil(tasks.decode('{"queue":"q"}'))
    end)
end)

describe("keryx.tasks.enqueue", function()
    it("pushes the payload on the action's queue through task_enqueue", function()
        assert.is_true(fake.run(tasks.enqueue, "send", { to = "a@b.co" }))
        local cmd = fake.redis_log[1]
        assert.are.equal("EVALSHA", cmd[1])
        assert.are.equal(0, cmd[3])
        assert.are.equal("default", cmd[4])
        assert.are.equal('{"class":"send","queue":"default","args":[{"to":"a@b.co"}]}', cmd[5])
        fake.redis_log = {}
        fake.run(tasks.enqueue, "nightly")
        assert.are.equal("low", fake.redis_log[1][4])
        fake.redis_log = {}
        fake.run(tasks.enqueue, "nightly", {}, "other")
        assert.are.equal("other", fake.redis_log[1][4])
    end)

    it("raises CONNECTION_TASK_DEFINITION for an unknown action, a bad queue or unstorable inputs", function()
        local e = raised(tasks.enqueue, "missing", {})
        assert.are.equal("CONNECTION_TASK_DEFINITION", e.type)
        assert.are.equal("action missing not found", e.message)
        assert.are.equal("CONNECTION_TASK_DEFINITION", raised(tasks.enqueue, "nightly", {}, "a b").type)
        assert.are.equal("CONNECTION_TASK_DEFINITION", raised(tasks.enqueue, "nightly", "x").type)
        assert.are.equal("CONNECTION_TASK_DEFINITION",
            raised(tasks.enqueue, "nightly", { f = function() end }).type)
        assert.are.same({}, fake.redis_log)
    end)

    it("validates inputs like HTTP does (406 type, key, value), nothing sent", function()
        local e = raised(tasks.enqueue, "send", { to = "nope" })
        assert.are.equal("CONNECTION_ACTION_PARAM_REQUIRED", e.type)
        assert.are.equal("to", e.key)
        assert.are.equal("nope", e.value)
        assert.are.equal(406, errors.status(e.type))
        assert.are.same({}, fake.redis_log)
    end)

    it("keeps _correlationId and _fanOutId out of validation but in the payload", function()
        fake.run(tasks.enqueue, "send", { to = "a@b.co", _correlationId = "c1", _fanOutId = "f" })
        assert.are.equal('{"class":"send","queue":"default","args":[{"_correlationId":"c1","_fanOutId":"f","to":"a@b.co"}]}',
            fake.redis_log[1][5])
    end)

    it("returns nil, \"closed\" while Redis is down", function()
        fake.redis_up = false
        local ok, err = fake.run(tasks.enqueue, "send", { to = "a@b.co" })
        assert.is_nil(ok)
        assert.are.equal("closed", err)
    end)

    it("files delayed jobs under the second at or after the due time", function()
        fake.run(tasks.enqueue_at, 1000001, "send", { to = "a@b.co" })
        assert.are.equal(1001, fake.redis_log[1][4])
        fake.redis_log = {}
        fake.run(tasks.enqueue_at, 1000000, "send", { to = "a@b.co" })
        assert.are.equal(1000, fake.redis_log[1][4])
        assert.are.equal("CONNECTION_TASK_DEFINITION", raised(tasks.enqueue_in, -1, "send", {}).type)
        assert.are.equal("CONNECTION_TASK_DEFINITION", raised(tasks.enqueue_at, 0 / 0, "send", {}).type)
    end)
end)

describe("keryx.tasks.fan_out", function()
    it("checks every action before writing anything", function()
        local e = raised(tasks.fan_out, { { action = "send", inputs = { to = "a@b.co" } }, { action = "x" } })
        assert.are.equal("CONNECTION_TASK_DEFINITION", e.type)
        assert.are.same({}, fake.redis_log)
    end)

    it("makes UUID v4 ids", function()
        for _ = 1, 20 do
            assert.truthy(tasks._uuid():match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x+$"))
        end
    end)
end)

describe("keryx.tasks correlation ids", function()
    it("accept what the HTTP layer accepts, drop the rest", function()
        assert.are.equal("abc-1.2:3_x", tasks.correlation_id("abc-1.2:3_x"))
        assert.is_nil(tasks.correlation_id("a b"))
        assert.is_nil(tasks.correlation_id("a\nb"))
        assert.is_nil(tasks.correlation_id(("x"):rep(129)))
        assert.is_nil(tasks.correlation_id(7))
    end)
end)

describe("action task definitions", function()
    it("fill in the default queue and refuse bad ones", function()
        local a = action.define { name = "t1", task = {}, run = function() end }
        assert.are.same({ queue = "default" }, a.task)
        assert.has_error(function() action.define { name = "t2", task = { queue = "a b" }, run = function() end } end)
        assert.has_error(function() action.define { name = "t3", task = { frequency = -1 }, run = function() end } end)
        assert.has_error(function() action.define { name = "t4", task = "x", run = function() end } end)
    end)
end)

describe("keryx.task_worker", function()
    it("reads TASK_QUEUES left to right, * as every queue", function()
        assert.are.same({ "*" }, worker.queues("*"))
        assert.are.same({ "high", "default", "low" }, worker.queues("high, default ,low"))
        assert.are.same({ "*" }, worker.queues(""))
    end)
end)
