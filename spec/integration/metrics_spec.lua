-- Black-box specs of the Prometheus metrics (README "Metrics") through the real binary: every
-- scrape is read by a strict parser of the text format (spec/helpers/prom_text.lua), and the
-- counters must move with real traffic — HTTP by method, route pattern and status, actions
-- (over HTTP and WebSocket), WebSocket messages and sockets, rate-limit refusals, Redis errors,
-- open connections. Each guard is attacked: the route label never carries the raw path, the
-- endpoint never grants CORS (even to an allowed origin, even on a preflight), Basic auth refuses
-- every wrong or malformed credential, metrics off is a plain 404, and a route collision or a
-- malformed route stops start-up.
local H = require "server"
local W = require "ws_client"
local prom = require "prom_text"

local APP, CONFIG = "spec/fixtures/app", "spec/fixtures/config.lua"
local CTYPE = "text/plain; version=0.0.4; charset=utf-8"

local function start(env, opts)
    local e = { OTEL_METRICS_ENABLED = "true" }
    for k, v in pairs(env or {}) do e[k] = v end
    opts = opts or {}
    return H.start { app = opts.app or APP, config = opts.config or CONFIG, env = e }
end

local function scrape(srv, headers, path)
    local res = H.get(srv, path or "/metrics", headers)
    assert.are.equal(200, res.status, res.raw)
    assert.are.equal(CTYPE, res.headers["content-type"])
    return prom.parse(res.body), res
end

local function requests(m, method, route, status)
    return prom.value(m, "keryx_http_requests_total", { method = method, route = route, status = tostring(status) }) or 0
end

local function no_cors(res)
    for name in pairs(res.headers) do
        assert.falsy(name:find("^access%-control%-"), "CORS header on the metrics route: " .. name)
    end
end

describe("metrics", function()
    local srv
    setup(function() srv = start { WEB_SERVER_ALLOWED_ORIGINS = "https://app.example.com" } end)
    teardown(function() H.stop(srv) end)

    it("every family is typed as Prometheus expects, counters with _total", function()
        local m = scrape(srv)
        local want = {
            keryx_http_requests_total = "counter", keryx_action_executions_total = "counter",
            keryx_ws_messages_total = "counter", keryx_rate_limit_refusals_total = "counter",
            keryx_redis_errors_total = "counter", keryx_task_enqueued_total = "counter",
            keryx_task_executed_total = "counter", keryx_ws_connections = "gauge",
            keryx_system_connections = "gauge", keryx_http_request_duration_seconds = "histogram",
            keryx_action_duration_seconds = "histogram",
        }
        for name, typ in pairs(want) do
            assert.is_table(m.families[name], "missing family " .. name)
            assert.are.equal(typ, m.families[name].type, name)
            assert.is_string(m.families[name].help, name)
        end
        for name, fam in pairs(m.families) do
            if fam.type == "counter" then assert.truthy(name:match("_total$"), name) end
        end
    end)

    it("HTTP and action counters move with traffic, labelled by route pattern", function()
        local before = scrape(srv)
        for _ = 1, 3 do assert.are.equal(200, H.get(srv, "/api/status").status) end
        for i = 1, 2 do assert.are.equal(200, H.get(srv, "/api/user/secret-path-" .. i).status) end
        assert.are.equal(500, H.get(srv, "/api/boom").status)
        local m, res = scrape(srv)
        assert.are.equal(3, requests(m, "GET", "/api/status", 200) - requests(before, "GET", "/api/status", 200))
        assert.are.equal(2, requests(m, "GET", "/api/user/:id", 200) - requests(before, "GET", "/api/user/:id", 200))
        assert.are.equal(1, requests(m, "GET", "/api/boom", 500) - requests(before, "GET", "/api/boom", 500))
        assert.falsy(res.body:find("secret-path", 1, true), "a raw path leaked into a label")
        local function runs(mm, action, status)
            return prom.value(mm, "keryx_action_executions_total", { action = action, status = status }) or 0
        end
        assert.are.equal(3, runs(m, "status", "success") - runs(before, "status", "success"))
        assert.are.equal(2, runs(m, "user:show", "success") - runs(before, "user:show", "success"))
        assert.are.equal(1, runs(m, "boom", "error") - runs(before, "boom", "error"))
        local function count(mm, name, labels) return prom.value(mm, name, labels) or 0 end
        assert.are.equal(3, count(m, "keryx_http_request_duration_seconds_count", { route = "/api/status" }) -
            count(before, "keryx_http_request_duration_seconds_count", { route = "/api/status" }))
        assert.are.equal(3, count(m, "keryx_action_duration_seconds_count", { action = "status" }) -
            count(before, "keryx_action_duration_seconds_count", { action = "status" }))
    end)

    it("a flood of distinct unknown paths adds no label set", function()
        local before = scrape(srv)
        local n_before = #before.families.keryx_http_requests_total.samples
        for i = 1, 40 do
            H.get(srv, "/api/nope-" .. i)
            H.get(srv, "/static-nope-" .. i)
            H.get(srv, "/x" .. i, nil, "DELETE")
        end
        local m, res = scrape(srv)
        assert.falsy(res.body:find("nope", 1, true), res.body)
        -- At most the three shapes above (unknown/static, 404) and the scrape itself are new.
        assert.truthy(#m.families.keryx_http_requests_total.samples <= n_before + 4)
        assert.truthy(requests(m, "GET", "unknown", 404) - requests(before, "GET", "unknown", 404) >= 40)
        assert.truthy(requests(m, "GET", "static", 404) - requests(before, "GET", "static", 404) >= 40)
        assert.truthy(requests(m, "DELETE", "unknown", 404) - requests(before, "DELETE", "unknown", 404) >= 40)
    end)

    it("WebSocket messages and sockets are counted, and the socket gauge falls back", function()
        local before = scrape(srv)
        local ws = W.open(srv)
        local reply = ws:request({ messageType = "action", action = "status" }, 5)
        assert.is_table(reply)
        ws:send_text("not json")
        local m = scrape(srv)
        assert.are.equal(1, prom.value(m, "keryx_ws_connections"))
        assert.truthy(prom.value(m, "keryx_ws_messages_total") - prom.value(before, "keryx_ws_messages_total") >= 2)
        assert.truthy((prom.value(m, "keryx_action_executions_total", { action = "status", status = "success" }) or 0)
            > (prom.value(before, "keryx_action_executions_total", { action = "status", status = "success" }) or 0))
        ws:close(1000)
        assert.truthy(H.eventually(3, function() return prom.value(scrape(srv), "keryx_ws_connections") == 0 end))
    end)

    it("open connections are a gauge that goes up and back down", function()
        local base = prom.value(scrape(srv), "keryx_system_connections")
        local held = {}
        for i = 1, 5 do held[i] = srv:connect() end
        -- The scrape's own connection is open while it is answered.
        assert.truthy(H.eventually(3, function()
            return prom.value(scrape(srv), "keryx_system_connections") >= base + 5
        end))
        for _, c in ipairs(held) do c:close() end
        assert.truthy(H.eventually(3, function()
            return prom.value(scrape(srv), "keryx_system_connections") <= base
        end))
    end)

    it("never grants CORS, even to an allowed origin or on a preflight", function()
        local _, res = scrape(srv, { Origin = "https://app.example.com" })
        no_cors(res)
        _, res = scrape(srv, { Origin = "https://evil.example" })
        no_cors(res)
        local pre = H.get(srv, "/metrics", {
            Origin = "https://app.example.com", ["Access-Control-Request-Method"] = "GET" }, "OPTIONS")
        no_cors(pre)
        -- The API next door still gets the web policy (the guard is the metrics route's only).
        local api = H.get(srv, "/api/status", { Origin = "https://app.example.com" })
        assert.are.equal("https://app.example.com", api.headers["access-control-allow-origin"])
    end)

    it("answers any method on its exact path only", function()
        local res = H.get(srv, "/metrics", nil, "POST")
        assert.are.equal(200, res.status)
        prom.parse(res.body)
        assert.are.equal(404, H.get(srv, "/metrics/").status)
        assert.are.equal(404, H.get(srv, "/metricsx").status)
        assert.are.equal(404, H.get(srv, "/api/metrics").status)
    end)
end)

describe("metrics counters from the Redis side", function()
    it("counts rate-limit refusals", function()
        local srv = start({ RATE_LIMIT_ENABLED = "true", RATE_LIMIT_UNAUTH_LIMIT = "2",
            RATE_LIMIT_KEY_PREFIX = "rl-metrics-" .. os.time() .. math.random(1e6) }, { app = "app", config = "config.lua" })
        local ok, err = pcall(function()
            local statuses = {}
            for i = 1, 4 do statuses[i] = H.get(srv, "/api/hello").status end
            assert.are.same({ 200, 200, 429, 429 }, statuses)
            local m = scrape(srv)
            assert.are.equal(2, prom.value(m, "keryx_rate_limit_refusals_total"))
            assert.are.equal(2, requests(m, "GET", "/api/hello", 429))
            assert.are.equal(2, prom.value(m, "keryx_action_executions_total", { action = "hello", status = "error" }))
        end)
        srv:stop()
        assert(ok, err)
    end)

    it("counts Redis errors while Redis is unreachable, and keeps serving", function()
        local srv = start({ REDIS_URL = "redis://127.0.0.1:" .. H.free_port() .. "/0",
            REDIS_COMMAND_TIMEOUT_MS = "200", RATE_LIMIT_ENABLED = "true", RATE_LIMIT_FAIL_OPEN = "false" }, { app = "app", config = "config.lua" })
        local ok, err = pcall(function()
            for _ = 1, 3 do assert.are.equal(503, H.get(srv, "/api/hello").status) end
            local m = scrape(srv)
            assert.truthy(prom.value(m, "keryx_redis_errors_total") >= 3)
        end)
        srv:stop()
        assert(ok, err)
    end)
end)

describe("metrics at the connection cap", function()
    it("counts the 503 a refused connection gets", function()
        local srv = start { WEB_SERVER_MAX_CONNECTIONS = "3" }
        local ok, err = pcall(function()
            local held = {}
            for i = 1, 3 do held[i] = srv:connect() end
            local res = srv:request "/api/status" -- a 4th connection, from the client holding all 3
            assert.are.equal(503, res.status)
            for _, c in ipairs(held) do c:close() end
            -- Until the server has seen the closes, a scrape may be refused too: count those.
            local m, refused = nil, 1
            assert.truthy(H.eventually(3, function()
                local r = H.get(srv, "/metrics")
                if r.status == 503 then refused = refused + 1 end
                if r.status ~= 200 then return false end
                m = prom.parse(r.body)
                return true
            end))
            assert.are.equal(refused, requests(m, "other", "unknown", 503))
        end)
        srv:stop()
        assert(ok, err)
    end)
end)

describe("metrics of background tasks", function()
    it("counts jobs enqueued and executed, by action and outcome", function()
        -- A queue of its own: the shared Redis may hold other specs' jobs on "default".
        local queue = "metrics-" .. os.time() .. "-" .. math.random(1e6)
        -- The fixture's fan-out (task:fan) queues on "default": served too.
        local srv = start { TASKS_ENABLED = "true", TASK_QUEUES = queue .. ",default" }
        local ok, err = pcall(function()
            local function enqueue(body)
                body.queue = queue
                local res = H.call(srv, "POST", "/api/task/enqueue", body)
                assert.are.equal(200, res.status, res.body)
            end
            enqueue { action = "task:record", tag = "m1" }
            enqueue { action = "task:record", tag = "m2" }
            enqueue { action = "task:fail" }
            local fan = H.call(srv, "POST", "/api/task/fan", { count = 3 })
            assert.are.equal(200, fan.status, fan.body)
            local function executed(m, action, status)
                return prom.value(m, "keryx_task_executed_total", { action = action, status = status }) or 0
            end
            local m
            assert.truthy(H.eventually(10, function()
                m = scrape(srv)
                return executed(m, "task:record", "success") == 5 and executed(m, "task:fail", "failure") == 1
            end), "jobs not counted as executed")
            assert.are.equal(5, prom.value(m, "keryx_task_enqueued_total", { action = "task:record" }))
            assert.are.equal(1, prom.value(m, "keryx_task_enqueued_total", { action = "task:fail" }))
            assert.are.equal(0, executed(m, "task:record", "failure"))
            assert.are.equal(5, prom.value(m, "keryx_action_executions_total", { action = "task:record", status = "success" }))
        end)
        srv:stop()
        assert(ok, err)
    end)
end)

describe("metrics Basic auth", function()
    local srv
    setup(function()
        srv = start { OTEL_METRICS_AUTH_USERNAME = "prom", OTEL_METRICS_AUTH_PASSWORD = "pa:ss:word" }
    end)
    teardown(function() H.stop(srv) end)

    local function basic(s) return "Basic " .. W.base64(s) end

    local function refused(headers)
        local res = H.get(srv, "/metrics", headers)
        assert.are.equal(401, res.status, res.raw)
        assert.are.equal('Basic realm="Metrics"', res.headers["www-authenticate"])
        assert.are.equal("Unauthorized", res.body)
        assert.falsy(res.body:find("keryx_", 1, true))
        no_cors(res)
    end

    it("refuses a missing, wrong or malformed credential", function()
        refused(nil)
        refused { Authorization = basic("prom:wrong") }
        refused { Authorization = basic("prom:pa:ss:wor") }
        refused { Authorization = basic("prom:pa:ss:wordx") }
        refused { Authorization = basic("Prom:pa:ss:word") }
        refused { Authorization = basic("prompa:ss:word") }
        refused { Authorization = basic(":pa:ss:word") }
        refused { Authorization = "Bearer " .. W.base64("prom:pa:ss:word") }
        refused { Authorization = "Basic !!!" }
        refused { Authorization = "Basic " }
        refused { Authorization = "Basic " .. ("QUFB"):rep(400) }
    end)

    it("accepts the right user and password (the password may hold colons)", function()
        local m = scrape(srv, { Authorization = basic("prom:pa:ss:word") })
        assert.is_table(m.families.keryx_http_requests_total)
        -- The refusals above were counted as 401s on the metrics route.
        assert.truthy(requests(m, "GET", "/metrics", 401) >= 1)
    end)
end)

describe("metrics configuration", function()
    it("off by default: the route is a plain 404", function()
        local srv = H.start { app = APP, config = CONFIG }
        local res = H.get(srv, "/metrics")
        srv:stop()
        assert.are.equal(404, res.status)
        assert.falsy(res.body:find("keryx_", 1, true))
    end)

    it("serves on OTEL_METRICS_ROUTE, and only one credential set means no auth", function()
        local srv = start { OTEL_METRICS_ROUTE = "/internal/prom", OTEL_METRICS_AUTH_USERNAME = "prom" }
        local ok, err = pcall(function()
            scrape(srv, nil, "/internal/prom")
            assert.are.equal(404, H.get(srv, "/metrics").status)
        end)
        srv:stop()
        assert(ok, err)
    end)

    it("refuses to start when the route collides with an action's or is no path", function()
        local code, out, err = H.cli({ "--app", APP, "--config", CONFIG, "start" },
            { OTEL_METRICS_ENABLED = "true", OTEL_METRICS_ROUTE = "/api/status", WEB_SERVER_PORT = "0" })
        assert.are.equal(1, code, out .. err)
        assert.truthy((out .. err):find("duplicate route GET /status", 1, true), out .. err)
        code, out, err = H.cli({ "start" }, { OTEL_METRICS_ENABLED = "true", OTEL_METRICS_ROUTE = "metrics" })
        assert.are.equal(1, code, out .. err)
        assert.truthy(err:find("OTEL_METRICS_ROUTE", 1, true), err)
    end)

    it("a bad OTEL_METRICS_ENABLED value names the variable", function()
        local code, _, err = H.cli({ "start" }, { OTEL_METRICS_ENABLED = "sometimes" })
        assert.are.equal(1, code)
        assert.truthy(err:find("OTEL_METRICS_ENABLED", 1, true), err)
    end)
end)
