-- Black-box specs for actions and the pipeline over HTTP (routing, params, validation, error
-- envelopes, the action log line, built-in actions), against the fixture app.
local H = require "server"
-- The scheme of the URL in web log lines: https under make test-integration-tls.
local SCHEME = H.scheme()
local A = require "http_assert"
local socket = require "socket"

local APP, CONFIG = "spec/fixtures/app", "spec/fixtures/config.lua"

local stop, get, envelope = H.stop, H.get, A.envelope

local function start(env)
    return H.start { app = APP, config = CONFIG, env = env }
end

--- A POST of the string body with Content-Type ctype (default application/json).
local function post(srv, path, body, ctype)
    return H.call(srv, "POST", path, body, nil, ctype)
end

local function gunzip(data)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(data)
    f:close()
    local p = assert(io.popen("gzip -dc < '" .. path .. "' 2>/dev/null"))
    local out = p:read("*a")
    p:close()
    os.remove(path)
    return out
end

local function assert_alive(srv)
    local res = get(srv, "/api/status")
    assert.are.equal(200, res.status)
    assert.are.equal("fixture-server", H.json(res.body).name)
end

describe("actions over HTTP", function()
    local srv
    setup(function() srv = start() end)
    teardown(function() stop(srv) end)

    describe("params", function()
        it("percent-decodes route params", function()
            local res = get(srv, "/api/user/a%20b%C3%A9%2Fc")
            assert.are.equal(200, res.status)
            assert.are.same({ id = "a b\195\169/c" }, H.json(res.body))
        end)

        it("reads the query string, decoding %XX and +", function()
            local res = get(srv, "/api/user/7?x=hello%20big+world")
            assert.are.equal(200, res.status)
            assert.are.same({ id = "7", x = "hello big world" }, H.json(res.body))
        end)

        it("turns a repeated query key into an array and a single one into a one-item array", function()
            local res = get(srv, "/api/echo-get?name=abc&tag=a&tag=b")
            assert.are.equal(200, res.status)
            assert.are.same({ name = "abc", tag = { "a", "b" } }, H.json(res.body))
            res = get(srv, "/api/echo-get?name=abc&tag=solo")
            assert.are.same({ name = "abc", tag = { "solo" } }, H.json(res.body))
        end)

        it("reads a JSON body with application/json", function()
            local res = post(srv, "/api/echo", '{"name":"abcd","tag":["x","y"]}')
            assert.are.equal(200, res.status)
            assert.are.same({ name = "abcd", tag = { "x", "y" } }, H.json(res.body))
        end)

        it("reads a JSON body with application/json; charset=utf-8", function()
            local res = post(srv, "/api/echo", '{"name":"caf\195\169"}', "application/json; charset=utf-8")
            assert.are.equal(200, res.status)
            assert.are.same({ name = "caf\195\169" }, H.json(res.body))
        end)

        it("reads a form body; repeated keys become an array", function()
            local res = post(srv, "/api/echo", "name=ab%20cd&tag=a&tag=b+c", "application/x-www-form-urlencoded")
            assert.are.equal(200, res.status)
            assert.are.same({ name = "ab cd", tag = { "a", "b c" } }, H.json(res.body))
        end)

        it("ignores a body of another content type", function()
            local res = post(srv, "/api/echo", "name=abcd", "text/plain")
            local e = envelope(res, 406, "CONNECTION_ACTION_PARAM_REQUIRED")
            assert.are.equal("Missing required param: name", e.message)
        end)

        it("route params beat the body, and the body beats the query (no merging)", function()
            local res = srv:request {
                method = "GET", path = "/api/user/route-id?id=query-id&x=query-x",
                headers = { { "Content-Type", "application/json" } },
                body = '{"id":"body-id","x":"body-x"}',
            }
            assert.are.equal(200, res.status)
            assert.are.same({ id = "route-id", x = "body-x" }, H.json(res.body))
        end)

        it("a key in both body and query takes the body's value whole, arrays included", function()
            local res = post(srv, "/api/echo?name=query-name&tag=q1&tag=q2", '{"name":"body-name","tag":["b1"]}')
            assert.are.equal(200, res.status)
            assert.are.same({ name = "body-name", tag = { "b1" } }, H.json(res.body))
        end)

        it("a form field beats the query too", function()
            local res = post(srv, "/api/echo?name=query-name&tag=q", "name=form-name",
                "application/x-www-form-urlencoded")
            assert.are.equal(200, res.status)
            assert.are.same({ name = "form-name", tag = { "q" } }, H.json(res.body))
        end)

        it("answers a malformed JSON body with a 400 CONNECTION_ACTION_PARAM_FORMATTING envelope", function()
            local res = post(srv, "/api/echo", '{"name":')
            local e = envelope(res, 400, "CONNECTION_ACTION_PARAM_FORMATTING")
            assert.truthy(e.message:find("^cannot parse request body"))
            -- decided in Lua: with stacks on (NODE_ENV=test) it carries one like every Lua error
            assert.truthy(e.stack:find("stack traceback", 1, true))
            assert_alive(srv)
        end)

        it("answers a JSON body that is not an object with 400", function()
            local e = envelope(post(srv, "/api/echo", '["abcd"]'), 400, "CONNECTION_ACTION_PARAM_FORMATTING")
            assert.are.equal("request body must be a JSON object", e.message)
            e = envelope(post(srv, "/api/echo", '"abcd"'), 400, "CONNECTION_ACTION_PARAM_FORMATTING")
            assert.are.equal("request body must be a JSON object", e.message)
        end)

        it("coerces numbers and booleans from query strings", function()
            local res = get(srv, "/api/numbers?n=10&f=-1.5&b=TRUE")
            assert.are.equal(200, res.status)
            assert.are.same({ n = 10, f = -1.5, b = true }, H.json(res.body))
            res = get(srv, "/api/numbers?n=1&f=1e3&b=0")
            assert.are.same({ n = 1, f = 1000, b = false }, H.json(res.body))
        end)
    end)

    describe("validation", function()
        it("names a missing param (406, key, no value)", function()
            local e = envelope(get(srv, "/api/echo-get"), 406, "CONNECTION_ACTION_PARAM_REQUIRED")
            assert.are.equal("Missing required param: name", e.message)
            assert.are.equal("name", e.key)
            assert.is_nil(e.value)
        end)

        it("reports a too-short string with key and value", function()
            local e = envelope(get(srv, "/api/echo-get?name=ab"), 406, "CONNECTION_ACTION_PARAM_REQUIRED")
            assert.are.equal("name must be at least 3 characters", e.message)
            assert.are.equal("name", e.key)
            assert.are.equal("ab", e.value)
        end)

        it("reports integer bounds and kinds", function()
            local cases = {
                { "/api/numbers?n=11", "n must be <= 10", "n", "11" },
                { "/api/numbers?n=0", "n must be >= 1", "n", "0" },
                { "/api/numbers?n=1.5", "n must be an integer", "n", "1.5" },
                { "/api/numbers?n=abc", "n must be an integer", "n", "abc" },
                { "/api/numbers?n=0x5", "n must be an integer", "n", "0x5" },
                { "/api/numbers?n=2&f=x", "f must be a number", "f", "x" },
                { "/api/numbers?n=2&b=maybe", "b must be a boolean", "b", "maybe" },
                { "/api/numbers", "Missing required param: n", "n", nil },
            }
            for _, c in ipairs(cases) do
                local e = envelope(get(srv, c[1]), 406, "CONNECTION_ACTION_PARAM_REQUIRED")
                assert.are.equal(c[2], e.message, c[1])
                assert.are.equal(c[3], e.key, c[1])
                assert.are.equal(c[4], e.value, c[1])
            end
        end)

        it("reports wrong JSON types, array items by 1-based index with the top-level key", function()
            local e = envelope(post(srv, "/api/echo", '{"name":12345}'), 406, "CONNECTION_ACTION_PARAM_REQUIRED")
            assert.are.equal("name must be a string", e.message)
            assert.are.equal(12345, e.value)
            e = envelope(post(srv, "/api/echo", '{"name":"abcd","tag":{"a":1}}'), 406, "CONNECTION_ACTION_PARAM_REQUIRED")
            assert.are.equal("tag must be an array", e.message)
            assert.are.equal("tag", e.key)
            e = envelope(post(srv, "/api/echo", '{"name":"abcd","tag":["ok",5]}'), 406, "CONNECTION_ACTION_PARAM_REQUIRED")
            assert.are.equal("tag[2] must be a string", e.message)
            assert.are.equal("tag", e.key)
        end)

        it("treats a JSON null as absent", function()
            local e = envelope(post(srv, "/api/echo", '{"name":null}'), 406, "CONNECTION_ACTION_PARAM_REQUIRED")
            assert.are.equal("Missing required param: name", e.message)
        end)

        it("never echoes a secret input", function()
            local pw = "zq7!Xw"
            local res = post(srv, "/api/secret", '{"password":"' .. pw .. '"}')
            local e = envelope(res, 406, "CONNECTION_ACTION_PARAM_REQUIRED")
            assert.are.equal("password must be at least 8 characters", e.message)
            assert.are.equal("password", e.key)
            assert.is_nil(e.value)
            assert.is_nil(res.raw:find(pw, 1, true))
            local log = srv:wait_log("[ACTION:WEB:ERROR] secret")
            assert.is_nil(log:find(pw, 1, true))
        end)

        it("redacts secrets in the action log line", function()
            local pw = "hunter2hunter2-unique-pw"
            local res = post(srv, "/api/secret", '{"password":"' .. pw .. '"}')
            assert.are.equal(200, res.status)
            assert.are.same({ ok = true }, H.json(res.body))
            local log = srv:wait_log("[ACTION:WEB:OK] secret")
            assert.truthy(log:find('%[ACTION:WEB:OK%] secret %(%d+ms%) %[POST%] 127%.0%.0%.1%(' .. SCHEME .. '://localhost/api/secret%) {"password":"%[%[secret%]%]"}\n'))
            assert.is_nil(log:find(pw, 1, true))
        end)
    end)

    describe("routing", function()
        it("answers an unknown route with 404 CONNECTION_ACTION_NOT_FOUND", function()
            local e = envelope(get(srv, "/api/nope"), 404, "CONNECTION_ACTION_NOT_FOUND", A.C_JSON_CONTENT_TYPE)
            assert.are.equal("Action not found", e.message)
        end)

        it("treats /api as a real prefix", function()
            for _, path in ipairs { "/status", "/x/api/status", "/apifoo/status", "/apistatus" } do
                local res = get(srv, path)
                assert.are.equal(404, res.status, path)
                local body = H.json(res.body)
                assert.is_nil(body.healthy, path)
                assert.are.equal("CONNECTION_ACTION_NOT_FOUND", body.error.type, path)
            end
        end)

        it("does not normalise a trailing slash", function()
            envelope(get(srv, "/api/status/"), 404, "CONNECTION_ACTION_NOT_FOUND", A.C_JSON_CONTENT_TYPE)
            envelope(get(srv, "/api/user/"), 404, "CONNECTION_ACTION_NOT_FOUND", A.C_JSON_CONTENT_TYPE)
        end)

        it("matches the method exactly (POST on a GET route, GET on a POST route)", function()
            local e = envelope(srv:request { method = "POST", path = "/api/status" }, 404, "CONNECTION_ACTION_NOT_FOUND",
                A.C_JSON_CONTENT_TYPE)
            assert.are.equal("Action not found", e.message)
            envelope(get(srv, "/api/echo?name=abcd"), 404, "CONNECTION_ACTION_NOT_FOUND", A.C_JSON_CONTENT_TYPE)
        end)

        it("answers HEAD on a GET route with the headers and no body", function()
            local raw = srv:raw("HEAD /api/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            local head, rest = raw:match("^(.-\r\n)\r\n(.*)$")
            assert.truthy(head, raw)
            assert.truthy(head:find("^HTTP/1%.1 200 OK\r\n"))
            local len = tonumber(head:match("\r\nContent%-Length: (%d+)\r\n"))
            assert.is_number(len)
            assert.is_true(len > 0)
            assert.truthy(head:find("\r\nContent%-Type: application/json; charset=utf%-8\r\n"))
            assert.are.equal("", rest)
        end)
    end)

    describe("results", function()
        it("answers {} for an action returning nothing", function()
            local res = get(srv, "/api/nothing")
            assert.are.equal(200, res.status)
            assert.are.equal("{}", res.body)
        end)

        it("lets middleware replace the params (before) and the response (after)", function()
            local res = get(srv, "/api/mw?name=original")
            assert.are.equal(200, res.status)
            assert.are.same({
                wrapped = { ran_with = "from-before" },
                after_params = "from-before",
                before_saw = "original",
                had_error = false,
            }, H.json(res.body))
        end)

        it("answers a typed error with its status", function()
            local e = envelope(get(srv, "/api/typed"), 401, "CONNECTION_SESSION_NOT_FOUND")
            assert.are.equal("Session not found", e.message)
        end)
    end)

    describe("failures stay inside one request", function()
        it("a Lua error → 500 CONNECTION_ACTION_RUN, and the server keeps serving", function()
            local e = envelope(get(srv, "/api/boom"), 500, "CONNECTION_ACTION_RUN")
            assert.truthy(e.message:find("kaboom$"), e.message)
            assert_alive(srv)
        end)

        it("an infinite recursion → 500 CONNECTION_ACTION_RUN, and the server keeps serving", function()
            for _ = 1, 3 do
                envelope(get(srv, "/api/recurse"), 500, "CONNECTION_ACTION_RUN")
                assert_alive(srv)
            end
        end)

        it("every infinite recursion reports its stack overflow and gets its action log line", function()
            -- (Once a bug: a pooled coroutine kept LuaJIT's extended stack, so every second
            -- overflow raised 'error in error handling' past the xpcall handler.)
            local RE = "%[ACTION:WEB:ERROR%] recurse %(%d+ms%) %[GET%] [^\n]* Error: [^\n]*stack overflow"
            local _, before = srv:log():gsub(RE, "")
            for _ = 1, 6 do
                local e = envelope(get(srv, "/api/recurse"), 500, "CONNECTION_ACTION_RUN")
                assert.truthy(e.message:find("stack overflow", 1, true), e.message)
            end
            local log = srv:wait_log("[ACTION:WEB:ERROR] recurse")
            local _, after = log:gsub(RE, "")
            assert.are.equal(6, after - before)
            assert.is_nil(log:find("task failed", 1, true))
        end)

        it("an overflow of any frame shape, interpreted or JIT-compiled, is a 500 naming it", function()
            -- Where the overflow lands, and so the room left for the error handler, depends
            -- on the frame size; compiled frames leave the least.
            for _ = 1, 3 do
                for k = 0, 15 do
                    local e = envelope(get(srv, "/api/recurse/" .. k), 500, "CONNECTION_ACTION_RUN")
                    assert.truthy(e.message:find("stack overflow", 1, true), e.message)
                end
            end
            assert_alive(srv)
            assert.is_nil(srv:log():find("task failed", 1, true))
        end)

        it("times out an action after its own timeout with 408", function()
            local t0 = socket.gettime()
            local e = envelope(get(srv, "/api/slow"), 408, "CONNECTION_ACTION_TIMEOUT")
            local dt = socket.gettime() - t0
            assert.are.equal("Action 'slow' timed out after 100ms", e.message)
            assert.is_true(dt >= 0.09, "answered after " .. dt)
            assert.is_true(dt < 0.5, "answered after " .. dt)
            assert_alive(srv)
        end)
    end)

    describe("concurrency", function()
        it("sleeping actions yield: 5 parallel 500 ms sleeps and a status in the middle", function()
            local t0 = socket.gettime()
            local conns = {}
            for i = 1, 5 do
                local c = srv:connect(3)
                assert(c:send(H.build { path = "/api/sleep?ms=500" }))
                conns[i] = c
            end
            H.sleep(0.1)
            local ts = socket.gettime()
            local status = get(srv, "/api/status")
            local status_dt = socket.gettime() - ts
            assert.are.equal(200, status.status)
            assert.is_true(status_dt < 0.2, "status took " .. status_dt)
            for i = 1, 5 do
                local res = assert(H.read_response(conns[i]))
                conns[i]:close()
                assert.are.equal(200, res.status)
                assert.are.same({ slept = 500 }, H.json(res.body))
            end
            local total = socket.gettime() - t0
            assert.is_true(total >= 0.45, "all done after " .. total)
            assert.is_true(total < 1.5, "all done after " .. total)
        end)
    end)

    describe("log line", function()
        it("writes [ACTION:WEB:OK] status (Nms) [GET] 127.0.0.1(http://localhost/api/status) {}", function()
            get(srv, "/api/status")
            local log = srv:wait_log("[ACTION:WEB:OK] status")
            assert.truthy(log:find("%[info%] %[ACTION:WEB:OK%] status %(%d+ms%) %[GET%] 127%.0%.0%.1%(" .. SCHEME .. "://localhost/api/status%) {}\n"), log)
        end)

        it("writes the error and the params for a failed action (the URL without its query)", function()
            get(srv, "/api/numbers?n=42")
            local log = srv:wait_log("Error: n must be <= 10")
            assert.truthy(log:find('%[ACTION:WEB:ERROR%] numbers %(%d+ms%) %[GET%] 127%.0%.0%.1%(' .. SCHEME .. '://localhost/api/numbers%) Error: n must be <= 10 {"n":"42"}\n'), log)
        end)

        it("never writes a secret input given in the query string", function()
            local res = srv:request { method = "POST", path = "/api/secret?password=hunter2secret" }
            assert.are.equal(200, res.status)
            local log = srv:wait_log("[ACTION:WEB:OK] secret")
            assert.is_nil(log:find("hunter2secret", 1, true), log)
            assert.truthy(log:find('"password":"[[secret]]"', 1, true), log)
        end)
    end)

    describe("swagger", function()
        it("GET /api/swagger is an OpenAPI 3.0.0 document with the fixture routes", function()
            local res = get(srv, "/api/swagger")
            assert.are.equal(200, res.status)
            assert.is_nil(res.headers["content-encoding"])
            local doc = H.json(res.body)
            assert.are.equal("3.0.0", doc.openapi)
            assert.is_table(doc.paths["/user/{id}"])
            assert.is_table(doc.paths["/user/{id}"].get)
            assert.is_nil(doc.paths["/user/:id"])
            assert.is_table(doc.paths["/echo"].post)
            assert.is_table(doc.paths["/echo-get"].get)
            assert.is_table(doc.paths["/status"].get)
            local found
            for _, p in ipairs(doc.paths["/user/{id}"].get.parameters) do
                if p.name == "id" then found = p end
            end
            assert.are.equal("path", found["in"])
            assert.is_true(found.required)
        end)

        it("is gzipped with Accept-Encoding: gzip, and decodes to the same document", function()
            local plain = H.json(get(srv, "/api/swagger").body)
            local res = get(srv, "/api/swagger", { { "Accept-Encoding", "gzip" } })
            assert.are.equal(200, res.status)
            assert.are.equal("gzip", res.headers["content-encoding"])
            assert.truthy(res.headers["vary"]:find("Accept-Encoding", 1, true))
            assert.are.equal(#res.body, tonumber(res.headers["content-length"]))
            assert.are.equal("\31\139", res.body:sub(1, 2))
            local doc = H.json(gunzip(res.body))
            assert.are.same(plain, doc)
        end)

        it("is not gzipped for gzip;q=0", function()
            local res = get(srv, "/api/swagger", { { "Accept-Encoding", "gzip;q=0" } })
            assert.are.equal(200, res.status)
            assert.is_nil(res.headers["content-encoding"])
            assert.are.equal("3.0.0", H.json(res.body).openapi)
        end)

        -- Which swagger-ui it loads (keryx's copy or the CDN): swagger_ui_spec.lua.
        it("GET /swagger is an HTML page with no inline script", function()
            local res = get(srv, "/swagger")
            assert.are.equal(200, res.status)
            assert.truthy(res.headers["content-type"]:find("^text/html"))
            assert.truthy(res.body:find("swagger-ui-bundle.js", 1, true))
            local scripts = 0
            for attrs, inner in res.body:gmatch("<[sS][cC][rR][iI][pP][tT]([^>]*)>(.-)</[sS][cC][rR][iI][pP][tT]>") do
                scripts = scripts + 1
                assert.truthy(attrs:find("src%s*=%s*[\"'][^\"']+[\"']"), "script without src: " .. attrs)
                assert.are.equal("", inner:gsub("%s", ""))
            end
            assert.is_true(scripts >= 1)
            local _, opened = res.body:lower():gsub("<script", "")
            assert.are.equal(scripts, opened)
        end)
    end)
end)

describe("an action exhausting LUA_MEMORY_LIMIT_MB=64", function()
    -- Dedicated servers: the bug below takes the whole process down.
    local BUG_PANIC = "BUG: an action hitting LUA_MEMORY_LIMIT_MB can kill the server. Deterministic " ..
        "with GET /api/squeeze (fixture filling the VM to the last bytes; LUA_MEMORY_LIMIT_MB=64); GET " ..
        "/api/hog did it about 1 run in 10 at 4ddf749: '[error] Lua panic: not enough memory', abort(), exit 134. " ..
        "gdb (19d2432): l_panic <- luaL_traceback <- resume() (src/lua_bridge.c:266, the rc != 0 branch) " ..
        "<- kx_lua_spawn_web: the pipeline itself fails for lack of memory, and resume() then calls " ..
        "luaL_traceback(B.L, ...) outside any protected call while the VM is still full"

    --- The response to GET path, or nil, why when the server died answering it (then pending).
    local function get_or_panic(srv, path)
        local ok, res = pcall(get, srv, path)
        if ok then return res end
        local deadline = socket.gettime() + 2
        while srv:alive() and socket.gettime() < deadline do H.sleep(0.01) end
        if srv:alive() then error(res, 0) end
        local log = srv:log()
        local why = log:find("Lua panic: not enough memory", 1, true) and "Lua panic: not enough memory"
            or "the process died without a log line (a signal such as SIGSEGV)"
        return nil, why
    end

    describe("hog (allocates 4 KiB strings forever)", function()
        local srv
        setup(function() srv = start { LUA_MEMORY_LIMIT_MB = "64" } end)
        teardown(function() stop(srv) end)

        it("fails that request with 500 CONNECTION_ACTION_RUN, logs it, then /api/status answers 200", function()
            local res, why = get_or_panic(srv, "/api/hog")
            local status
            if res then status, why = get_or_panic(srv, "/api/status") end
            if not status then error(BUG_PANIC .. " (here at the first hog: " .. why .. ")") end
            local e = envelope(res, 500, "CONNECTION_ACTION_RUN")
            assert.is_nil(e.message:find("traceback", 1, true))
            assert.are.equal(200, status.status)
            local log = srv:wait_log("[ACTION:WEB:ERROR] hog")
            assert.truthy(log:find("%[ACTION:WEB:ERROR%] hog %(%d+ms%) %[GET%] 127%.0%.0%.1%(" .. SCHEME .. "://localhost/api/hog%) Error: [^\n]*memory"), log)
            assert.is_nil(log:find("task failed", 1, true))
        end)

        it("keeps failing only the request on further OOMs (memory is reclaimed)", function()
            if not srv:alive() then error(BUG_PANIC .. " (server already gone)") end
            for i = 1, 3 do
                local res, why = get_or_panic(srv, "/api/hog")
                local status
                if res then status, why = get_or_panic(srv, "/api/status") end
                if not status then error(BUG_PANIC .. " (here at hog #" .. (i + 1) .. ": " .. why .. ")") end
                envelope(res, 500, "CONNECTION_ACTION_RUN")
                assert.are.equal(200, status.status)
            end
            local res = get(srv, "/api/echo-get?name=still-fine")
            assert.are.equal(200, res.status)
            assert.are.same({ name = "still-fine" }, H.json(res.body))
        end)
    end)

    describe("squeeze (fills the VM to the last bytes, then fails)", function()
        local srv
        setup(function() srv = start { LUA_MEMORY_LIMIT_MB = "64" } end)
        teardown(function() stop(srv) end)

        it("fails that request with 500 and the server keeps serving", function()
            local res, why = get_or_panic(srv, "/api/squeeze")
            local status
            if res then status, why = get_or_panic(srv, "/api/status") end
            if not status then error(BUG_PANIC .. " (this run: " .. why .. ")") end
            -- With the VM full to the last bytes even the envelope may not be built in Lua:
            -- lua_bridge.c then answers this 500 itself, with response.c's content type.
            local ct = res.headers["content-type"]
            assert.is_true(ct == A.JSON_CONTENT_TYPE or ct == A.C_JSON_CONTENT_TYPE, tostring(ct))
            envelope(res, 500, "CONNECTION_ACTION_RUN", ct)
            assert.are.equal(200, status.status)
            res = get(srv, "/api/echo-get?name=still-fine")
            assert.are.same({ name = "still-fine" }, H.json(res.body))
        end)
    end)
end)

describe("error envelopes and stacks", function()
    it("include the stack in development", function()
        local srv = start { NODE_ENV = "development" }
        local ok, err = pcall(function()
            local e = envelope(get(srv, "/api/boom"), 500, "CONNECTION_ACTION_RUN")
            assert.is_string(e.stack)
            assert.truthy(e.stack:find("kaboom", 1, true))
            assert.truthy(e.stack:find("stack traceback", 1, true))
        end)
        stop(srv)
        assert(ok, err)
    end)

    it("omit the stack with NODE_ENV=production", function()
        local srv = start { NODE_ENV = "production" }
        local ok, err = pcall(function()
            local res = get(srv, "/api/boom")
            local e = envelope(res, 500, "CONNECTION_ACTION_RUN")
            assert.is_nil(e.stack)
            assert.is_nil(res.body:find("traceback", 1, true))
            assert.are.equal("Internal server error", e.message)
            assert.is_nil(res.body:find("kaboom", 1, true))
        end)
        stop(srv)
        assert(ok, err)
    end)

    it("omit the stack with WEB_SERVER_INCLUDE_STACK_IN_ERRORS=false (even in development)", function()
        local srv = start { NODE_ENV = "development", WEB_SERVER_INCLUDE_STACK_IN_ERRORS = "false" }
        local ok, err = pcall(function()
            local res = get(srv, "/api/boom")
            local e = envelope(res, 500, "CONNECTION_ACTION_RUN")
            assert.is_nil(e.stack)
            assert.is_nil(res.body:find("traceback", 1, true))
            -- the log still has it
            local log = srv:wait_log("stack traceback")
            assert.truthy(log:find("stack traceback", 1, true))
        end)
        stop(srv)
        assert(ok, err)
    end)
end)

describe("ACTION_TIMEOUT", function()
    it("applies to actions without their own timeout", function()
        local srv = start { ACTION_TIMEOUT = "100" }
        local ok, err = pcall(function()
            local t0 = socket.gettime()
            local e = envelope(get(srv, "/api/sleep?ms=1000"), 408, "CONNECTION_ACTION_TIMEOUT")
            local dt = socket.gettime() - t0
            assert.are.equal("Action 'sleep' timed out after 100ms", e.message)
            assert.is_true(dt < 0.5, "answered after " .. dt)
            local res = get(srv, "/api/sleep?ms=10")
            assert.are.equal(200, res.status)
            assert.are.same({ slept = 10 }, H.json(res.body))
        end)
        stop(srv)
        assert(ok, err)
    end)
end)

describe("response headers from Lua", function()
    local srv
    setup(function() srv = H.start { app = "spec/fixtures/app", config = "spec/fixtures/config.lua" } end)
    teardown(function() if srv then srv:stop() end end)

    it("refuses raw header text that would split the response (500, nothing injected)", function()
        local res = srv:request("/api/inject")
        assert.are.equal(500, res.status)
        assert.is_nil(res.headers["set-cookie"])
        assert.is_nil(res.headers["x-ok"])
        assert.is_nil(res.body:find("<html>", 1, true))
        assert.are.equal("CONNECTION_SERVER_ERROR", H.json(res.body).error.type)
        assert.are.equal(200, srv:request("/api/status").status) -- and the server goes on
    end)

    it("refuses a bad header name, content type or session id from Lua the same way", function()
        for _, path in ipairs { "/api/inject-name", "/api/inject-ctype", "/api/inject-session" } do
            local res = srv:request(path)
            assert.are.equal(500, res.status, path)
            assert.is_nil(res.headers["set-cookie"], path)
            assert.are.equal("application/json; charset=utf-8", res.headers["content-type"], path)
            assert.are.equal("CONNECTION_SERVER_ERROR", H.json(res.body).error.type, path)
        end
    end)
end)

describe("keryx.redis input limits", function()
    local srv
    setup(function() srv = H.start { app = "spec/fixtures/app", config = "spec/fixtures/config.lua" } end)
    teardown(function() if srv then srv:stop() end end)

    it("refuses oversized or malformed commands before sending anything", function()
        local res = srv:request("/api/redis-limits")
        assert.are.equal(200, res.status, res.body)
        local r = H.json(res.body)
        assert.truthy(r.too_many_commands:find("too many commands (max 1000)", 1, true), r.too_many_commands)
        assert.truthy(r.too_many_arguments:find("too many arguments (max 1024)", 1, true), r.too_many_arguments)
        assert.truthy(r.bad_entry:find("entry 2 argument 3 must be a string or number", 1, true), r.bad_entry)
        assert.are.equal(0, r.first_written)
        assert.truthy(r.bad_argument:find("must be a string or number", 1, true), r.bad_argument)
        assert.are.equal(200, srv:request("/api/status").status)
    end)
end)
