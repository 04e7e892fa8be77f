-- Black-box specs for the headers every response carries: the five security headers,
-- X-SERVER-NAME, CORS (never credentials with "*"; any OPTIONS is a 204 preflight) and
-- correlation ids (echoed only when trusted and well-formed), on action, error, static and
-- preflight responses.
local H = require "server"
-- The scheme of the URL in web log lines: https under make test-integration-tls.
local SCHEME = H.scheme()
local A = require "http_assert"

local APP, CONFIG = "spec/fixtures/app", "spec/fixtures/config.lua"

local DEFAULTS = A.SECURITY_HEADERS

local ENV_OF = {
    ["content-security-policy"] = "WEB_SECURITY_CSP",
    ["x-content-type-options"] = "WEB_SECURITY_CONTENT_TYPE_OPTIONS",
    ["x-frame-options"] = "WEB_SECURITY_FRAME_OPTIONS",
    ["strict-transport-security"] = "WEB_SECURITY_HSTS",
    ["referrer-policy"] = "WEB_SECURITY_REFERRER_POLICY",
}

local DEFAULT_METHODS = "HEAD, GET, POST, PUT, PATCH, DELETE, OPTIONS"

local get, stop, count = H.get, H.stop, A.header_count

local function start(env)
    return H.start { app = APP, config = CONFIG, env = env }
end

--- Runs fn(srv) against a fixture-app server started with env, always stopping it.
local function with_server(env, fn)
    return H.with_server({ app = APP, config = CONFIG, env = env }, fn)
end

--- One of each kind of response: 200 action, 404, 406, 500, 401, static file, OPTIONS.
local function sample_responses(srv)
    return {
        ["200 action"] = { get(srv, "/api/status"), 200 },
        ["404"] = { get(srv, "/api/no-such-action"), 404 },
        ["404 outside /api"] = { get(srv, "/no-such-file.txt"), 404 },
        ["406"] = { get(srv, "/api/echo-get"), 406 },
        ["500"] = { get(srv, "/api/boom"), 500 },
        ["401"] = { get(srv, "/api/typed"), 401 },
        ["static"] = { get(srv, "/index.html"), 200 },
        ["204 preflight"] = { get(srv, "/api/status", nil, "OPTIONS"), 204 },
    }
end

describe("security headers", function()
    it("carry the exact defaults on every kind of response", function()
        with_server({}, function(srv)
            for what, pair in pairs(sample_responses(srv)) do
                local res, status = pair[1], pair[2]
                assert.are.equal(status, res.status, what)
                for name, value in pairs(DEFAULTS) do
                    assert.are.equal(value, res.headers[name], what .. ": " .. name)
                    assert.are.equal(1, count(res, name), what .. ": " .. name)
                end
                assert.are.equal("fixture-server", res.headers["x-server-name"], what)
            end
        end)
    end)

    it("static responses are real files (not an error page) and still carry them", function()
        with_server({}, function(srv)
            local res = get(srv, "/index.html")
            assert.are.equal(200, res.status)
            assert.truthy(res.headers["content-type"]:find("^text/html"))
            assert.are.equal(H.read_file("assets/index.html"), res.body)
            assert.are.equal("nosniff", res.headers["x-content-type-options"])
        end)
    end)

    it("each WEB_SECURITY_* variable overrides its header; PROCESS_NAME sets X-SERVER-NAME", function()
        local custom = {
            ["content-security-policy"] = "default-src 'none'",
            ["x-content-type-options"] = "custom-nosniff",
            ["x-frame-options"] = "SAMEORIGIN",
            ["strict-transport-security"] = "max-age=60",
            ["referrer-policy"] = "no-referrer",
        }
        local env = { PROCESS_NAME = "headers-test-proc" }
        for name, value in pairs(custom) do env[ENV_OF[name]] = value end
        with_server(env, function(srv)
            for what, pair in pairs(sample_responses(srv)) do
                local res = pair[1]
                assert.are.equal(pair[2], res.status, what)
                for name, value in pairs(custom) do
                    assert.are.equal(value, res.headers[name], what .. ": " .. name)
                end
                assert.are.equal("headers-test-proc", res.headers["x-server-name"], what)
            end
            assert.are.equal("headers-test-proc", H.json(get(srv, "/api/status").body).name)
        end)
    end)

    it("one variable changes only its own header", function()
        with_server({ WEB_SECURITY_FRAME_OPTIONS = "SAMEORIGIN" }, function(srv)
            local res = get(srv, "/api/status")
            assert.are.equal("SAMEORIGIN", res.headers["x-frame-options"])
            for name, value in pairs(DEFAULTS) do
                if name ~= "x-frame-options" then assert.are.equal(value, res.headers[name], name) end
            end
        end)
    end)

    it("an empty value omits the header", function()
        local env = {}
        for _, var in pairs(ENV_OF) do env[var] = "" end
        with_server(env, function(srv)
            for what, pair in pairs(sample_responses(srv)) do
                local res = pair[1]
                assert.are.equal(pair[2], res.status, what)
                for name in pairs(DEFAULTS) do
                    assert.is_nil(res.headers[name], what .. ": " .. name)
                end
                assert.are.equal("fixture-server", res.headers["x-server-name"], what)
            end
        end)
    end)
end)

describe("CORS", function()
    describe("with the default allowedOrigins *", function()
        local srv
        setup(function() srv = start() end)
        teardown(function() stop(srv) end)

        it("answers Access-Control-Allow-Origin: * and never Allow-Credentials", function()
            for _, headers in ipairs { {}, { { "Origin", "https://evil.example" } }, { { "Origin", "null" } } } do
                for _, path in ipairs { "/api/status", "/api/nope", "/api/echo-get", "/api/boom" } do
                    local res = get(srv, path, headers)
                    assert.are.equal("*", res.headers["access-control-allow-origin"], path)
                    assert.are.equal(1, count(res, "access-control-allow-origin"), path)
                    assert.is_nil(res.headers["access-control-allow-credentials"], path)
                    assert.are.equal(DEFAULT_METHODS, res.headers["access-control-allow-methods"], path)
                    assert.are.equal("Content-Type", res.headers["access-control-allow-headers"], path)
                end
            end
        end)

        it("answers OPTIONS on any path with 204, Allow-Methods and Allow-Headers, no body", function()
            for _, path in ipairs { "/api/status", "/api/no-such-action", "/anything/at/all", "/", "/api" } do
                local raw = srv:raw("OPTIONS " .. path .. " HTTP/1.1\r\nHost: localhost\r\n" ..
                    "Origin: https://x.example\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n")
                local head, rest = raw:match("^(.-\r\n)\r\n(.*)$")
                assert.truthy(head, path)
                assert.truthy(head:find("^HTTP/1%.1 204 No Content\r\n"), path)
                assert.truthy(head:find("\r\nAccess%-Control%-Allow%-Methods: HEAD, GET, POST, PUT, PATCH, DELETE, OPTIONS\r\n"), path)
                assert.truthy(head:find("\r\nAccess%-Control%-Allow%-Headers: Content%-Type\r\n"), path)
                assert.truthy(head:find("\r\nAccess%-Control%-Allow%-Origin: %*\r\n"), path)
                assert.is_nil(head:lower():find("access-control-allow-credentials", 1, true), path)
                assert.are.equal("", rest, path)
            end
        end)

        it("does not run the action for a preflight", function()
            local before = select(2, srv:log():gsub("%[ACTION:WEB:[A-Z]+%] boom ", ""))
            local res = get(srv, "/api/boom", nil, "OPTIONS")
            assert.are.equal(204, res.status)
            H.sleep(0.05)
            local after = select(2, srv:log():gsub("%[ACTION:WEB:[A-Z]+%] boom ", ""))
            assert.are.equal(before, after)
        end)
    end)

    describe("with a list of origins and custom methods/headers", function()
        local srv
        setup(function()
            srv = start {
                WEB_SERVER_ALLOWED_ORIGINS = "https://a.example, https://b.example",
                WEB_SERVER_ALLOWED_METHODS = "GET, POST",
                WEB_SERVER_ALLOWED_HEADERS = "Content-Type, X-Custom",
            }
        end)
        teardown(function() stop(srv) end)

        it("echoes a listed Origin with Allow-Credentials: true and Vary: Origin", function()
            for _, origin in ipairs { "https://a.example", "https://b.example" } do
                for _, path in ipairs { "/api/status", "/api/nope", "/api/echo-get" } do
                    local res = get(srv, path, { { "Origin", origin } })
                    assert.are.equal(origin, res.headers["access-control-allow-origin"], path)
                    assert.are.equal(1, count(res, "access-control-allow-origin"), path)
                    assert.are.equal("true", res.headers["access-control-allow-credentials"], path)
                    assert.truthy((res.headers["vary"] or ""):find("Origin", 1, true), path)
                end
            end
        end)

        it("grants nothing to an unlisted or look-alike Origin, or without one", function()
            local cases = {
                { { "Origin", "https://c.example" } },
                { { "Origin", "https://a.example.evil.com" } },
                { { "Origin", "http://a.example" } },
                { { "Origin", "https://a.example:443" } },
                { { "Origin", "https://A.example" } },
                { { "Origin", "null" } },
                { { "Origin", "*" } },
                {},
            }
            for _, headers in ipairs(cases) do
                local label = headers[1] and headers[1][2] or "(no Origin)"
                local res = get(srv, "/api/status", headers)
                assert.are.equal(200, res.status, label)
                assert.is_nil(res.headers["access-control-allow-origin"], label)
                assert.is_nil(res.headers["access-control-allow-credentials"], label)
                assert.are.equal("GET, POST", res.headers["access-control-allow-methods"], label)
            end
        end)

        it("uses the custom Allow-Methods/Allow-Headers on responses and preflights", function()
            local res = get(srv, "/api/status")
            assert.are.equal("GET, POST", res.headers["access-control-allow-methods"])
            assert.are.equal("Content-Type, X-Custom", res.headers["access-control-allow-headers"])
            res = get(srv, "/whatever", { { "Origin", "https://b.example" } }, "OPTIONS")
            assert.are.equal(204, res.status)
            assert.are.equal("GET, POST", res.headers["access-control-allow-methods"])
            assert.are.equal("Content-Type, X-Custom", res.headers["access-control-allow-headers"])
            assert.are.equal("https://b.example", res.headers["access-control-allow-origin"])
            assert.are.equal("true", res.headers["access-control-allow-credentials"])
        end)

        it("sends one Vary with Origin and Accept-Encoding on a gzipped answer", function()
            local res = get(srv, "/api/swagger", { { "Origin", "https://a.example" }, { "Accept-Encoding", "gzip" } })
            assert.are.equal(200, res.status)
            assert.are.equal("gzip", res.headers["content-encoding"])
            assert.are.equal(1, count(res, "vary"))
            assert.truthy(res.headers["vary"]:find("Origin", 1, true))
            assert.truthy(res.headers["vary"]:find("Accept-Encoding", 1, true))
        end)
    end)
end)

describe("correlation ids", function()
    local ID = "abc-123"

    it("are not echoed by default (trustProxy false), nor logged", function()
        with_server({}, function(srv)
            local res = get(srv, "/api/status", { { "X-Request-Id", ID } })
            assert.are.equal(200, res.status)
            assert.is_nil(res.headers["x-request-id"])
            local log = srv:wait_log("[ACTION:WEB:OK] status")
            assert.is_nil(log:find("[cor:", 1, true))
        end)
    end)

    describe("with WEB_CORRELATION_ID_TRUST_PROXY=true", function()
        local srv
        setup(function() srv = start { WEB_CORRELATION_ID_TRUST_PROXY = "true" } end)
        teardown(function() stop(srv) end)

        it("echo X-Request-Id on 200, 404, 406, 500 and OPTIONS", function()
            for _, c in ipairs {
                { "/api/status", 200 }, { "/api/nope", 404 }, { "/nope.txt", 404 },
                { "/api/echo-get", 406 }, { "/api/boom", 500 }, { "/api/status", 204, "OPTIONS" },
            } do
                local res = get(srv, c[1], { { "X-Request-Id", ID } }, c[3])
                assert.are.equal(c[2], res.status, c[1])
                assert.are.equal(ID, res.headers["x-request-id"], c[1])
                assert.are.equal(1, count(res, "x-request-id"), c[1])
            end
        end)

        it("put [cor:<id>] in the action log line", function()
            get(srv, "/api/status", { { "X-Request-Id", "cor-log-42" } })
            local log = srv:wait_log("[cor:cor-log-42]")
            assert.truthy(log:find("%[ACTION:WEB:OK%] status %(%d+ms%) %[GET%] 127%.0%.0%.1%(" .. SCHEME .. "://localhost/api/status%) %[cor:cor%-log%-42%] {}\n"), log)
        end)

        it("accept 1..128 characters of [A-Za-z0-9._:-]", function()
            for _, id in ipairs { "a", ("x"):rep(128), "A.b_c:d-9" } do
                local res = get(srv, "/api/status", { { "X-Request-Id", id } })
                assert.are.equal(id, res.headers["x-request-id"], id)
            end
        end)

        it("ignore invalid ids (not echoed, not logged)", function()
            for _, id in ipairs { "a b", ("x"):rep(129), "a;b", "a/b", "\195\169t\195\169", "a\tb" } do
                local res = get(srv, "/api/status?probe=invalid", { { "X-Request-Id", id } })
                assert.are.equal(200, res.status, id)
                assert.is_nil(res.headers["x-request-id"], id)
            end
            local log = srv:wait_log("probe=invalid")
            for line in log:gmatch("[^\n]*probe=invalid[^\n]*") do
                assert.is_nil(line:find("[cor:", 1, true), line)
            end
        end)

        it("does not invent an id when the header is absent", function()
            local res = get(srv, "/api/status")
            assert.is_nil(res.headers["x-request-id"])
        end)
    end)

    it("use a custom WEB_CORRELATION_ID_HEADER", function()
        with_server({ WEB_CORRELATION_ID_TRUST_PROXY = "true", WEB_CORRELATION_ID_HEADER = "X-Correlation-Id" }, function(srv)
            local res = get(srv, "/api/status", { { "X-Correlation-Id", ID } })
            assert.are.equal(ID, res.headers["x-correlation-id"])
            assert.is_nil(res.headers["x-request-id"])
            res = get(srv, "/api/nope", { { "x-correlation-id", ID } })
            assert.are.equal(404, res.status)
            assert.are.equal(ID, res.headers["x-correlation-id"])
            res = get(srv, "/api/status", { { "X-Request-Id", ID } })
            assert.is_nil(res.headers["x-request-id"])
            assert.is_nil(res.headers["x-correlation-id"])
        end)
    end)

    it("are disabled by an empty WEB_CORRELATION_ID_HEADER", function()
        with_server({ WEB_CORRELATION_ID_TRUST_PROXY = "true", WEB_CORRELATION_ID_HEADER = "" }, function(srv)
            local res = get(srv, "/api/status", { { "X-Request-Id", ID } })
            assert.are.equal(200, res.status)
            assert.is_nil(res.headers["x-request-id"])
            for _, kv in ipairs(res.header_list) do
                assert.is_nil(kv[2]:find(ID, 1, true), kv[1])
            end
            local log = srv:wait_log("[ACTION:WEB:OK] status")
            assert.is_nil(log:find("[cor:", 1, true))
        end)
    end)
end)
