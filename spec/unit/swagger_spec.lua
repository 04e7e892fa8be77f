local swagger = require "keryx.swagger"
local json = require "keryx.json"
local z = require "keryx.schema"

local function actions()
    return {
        { name = "status", description = "Server status", web = { route = "/status", method = "GET" } },
        { name = "swagger", web = { route = "/swagger", method = "GET" } },
        {
            name = "user:create",
            description = "Create a new user",
            inputs = z.object({
                name = z.string():min(3),
                email = z.string():email(),
                password = z.string():min(8):secret(),
            }),
            web = { route = "/user", method = "PUT" },
        },
        {
            name = "user:view",
            inputs = z.object({
                id = z.integer():describe("The user id"),
                fields = z.array(z.string()):optional(),
                verbose = z.boolean():default(false),
            }),
            web = { route = "/user/:id", method = "GET" },
        },
        {
            name = "user:edit",
            inputs = z.object({ id = z.integer(), name = z.string():optional() }),
            web = { route = "/user/:id", method = "post" },
        },
        {
            name = "post:comment",
            inputs = z.object({ post_id = z.string(), comment_id = z.string() }),
            web = { route = "/posts/:post_id/comments/:comment_id", method = "DELETE" },
        },
        { name = "events", web = { route = "/events", method = "GET", streaming = true } },
        { name = "task:only", inputs = z.object({ a = z.string() }) },
        { name = "regex:route", web = { route = { "^/x" }, method = "GET" } },
        { name = "dup:second", web = { route = "/status", method = "GET" } },
    }
end

local OPTS = {
    title = "my-app",
    version = "1.2.3",
    description = "My API",
    license = "MIT",
    server_url = "http://localhost:8080/api",
    cookie_name = "my_session",
}

-- encode then decode, the way a client sees it
local function roundtrip(doc)
    local text = assert(json.encode(doc))
    return assert(json.decode(text)), text
end

describe("keryx.swagger", function()
    it("builds the OpenAPI 3.0.0 header", function()
        local doc = roundtrip(swagger.document(actions(), OPTS))
        assert.are.equal("3.0.0", doc.openapi)
        assert.are.same({ title = "my-app", version = "1.2.3", description = "My API", license = { name = "MIT" } },
            doc.info)
        assert.are.equal(1, #doc.servers)
        assert.are.equal("http://localhost:8080/api", doc.servers[1].url)
        assert.is_string(doc.servers[1].description)
    end)

    it("declares the session cookie security scheme with an empty scope list", function()
        local doc, text = roundtrip(swagger.document(actions(), OPTS))
        local scheme = doc.components.securitySchemes.sessionCookie
        assert.are.equal("apiKey", scheme.type)
        assert.are.equal("cookie", scheme["in"])
        assert.are.equal("my_session", scheme.name)
        assert.is_string(scheme.description)
        assert.truthy(text:find('"security":[{"sessionCookie":[]}]', 1, true))
    end)

    it("documents the status action", function()
        local doc = roundtrip(swagger.document(actions(), OPTS))
        local op = doc.paths["/status"].get
        assert.are.equal("status", op.operationId)
        assert.are.equal("status", op.summary)
        assert.are.equal("Server status", op.description)
        assert.are.same({ "status" }, op.tags)
        assert.are.same({}, op.parameters)
        assert.is_nil(op.requestBody)
    end)

    it("encodes empty parameter lists as arrays", function()
        local _, text = roundtrip(swagger.document(actions(), OPTS))
        assert.truthy(text:find('"parameters":[]', 1, true))
        assert.is_nil(text:find('"parameters":{}', 1, true))
    end)

    it("keeps the first action for a repeated path and method", function()
        local doc = roundtrip(swagger.document(actions(), OPTS))
        assert.are.equal("status", doc.paths["/status"].get.operationId)
    end)

    it("fills in a default description", function()
        local doc = roundtrip(swagger.document(actions(), OPTS))
        assert.are.equal("An Action: swagger", doc.paths["/swagger"].get.description)
    end)

    it("skips actions without web or with a non-string route", function()
        local doc = swagger.document(actions(), OPTS)
        assert.are.same({
            "DELETE /posts/{post_id}/comments/{comment_id}",
            "GET /events",
            "GET /status",
            "GET /swagger",
            "GET /user/{id}",
            "POST /user/{id}",
            "PUT /user",
        }, swagger.operations(doc))
    end)

    it("converts :params and lists path params in route order", function()
        local doc = roundtrip(swagger.document(actions(), OPTS))
        local op = doc.paths["/posts/{post_id}/comments/{comment_id}"].delete
        assert.are.equal(2, #op.parameters)
        assert.are.same({ name = "post_id", ["in"] = "path", required = true,
            description = "The post_id parameter", schema = { type = "string" } }, op.parameters[1])
        assert.are.equal("comment_id", op.parameters[2].name)
        assert.are.same({ "post" }, op.tags)
        -- every input is a path param: no body
        assert.is_nil(op.requestBody)
    end)

    it("turns GET inputs into query params after path params, sorted", function()
        local doc = roundtrip(swagger.document(actions(), OPTS))
        local op = doc.paths["/user/{id}"].get
        local names = {}
        for i, p in ipairs(op.parameters) do
            names[i] = p["in"] .. ":" .. p.name
        end
        assert.are.same({ "path:id", "query:fields", "query:verbose" }, names)
        assert.are.equal("The user id", op.parameters[1].description)
        assert.is_true(op.parameters[1].required)
        assert.are.same({ type = "string" }, op.parameters[1].schema)
        assert.is_false(op.parameters[2].required)
        assert.are.same({ type = "array", items = { type = "string" } }, op.parameters[2].schema)
        assert.are.same({ type = "boolean", default = false }, op.parameters[3].schema)
        assert.are.same({ "user" }, op.tags)
    end)

    it("puts non-GET inputs in a referenced request body schema", function()
        local doc, text = roundtrip(swagger.document(actions(), OPTS))
        local op = doc.paths["/user"].put
        assert.is_true(op.requestBody.required)
        assert.are.equal("#/components/schemas/user_create_Request",
            op.requestBody.content["application/json"].schema["$ref"])
        assert.truthy(text:find('"$ref":"#/components/schemas/user_create_Request"', 1, true))
        local schema = doc.components.schemas.user_create_Request
        assert.are.equal("object", schema.type)
        assert.are.same({ "email", "name", "password" }, schema.required)
        assert.are.equal("email", schema.properties.email.format)
        assert.are.equal(3, schema.properties.name.minLength)
        assert.is_true(schema.properties.password.writeOnly)
        assert.are.same({}, op.parameters)
    end)

    it("leaves path params out of the request body", function()
        local doc = roundtrip(swagger.document(actions(), OPTS))
        local op = doc.paths["/user/{id}"].post
        assert.are.equal("path", op.parameters[1]["in"])
        assert.are.equal(1, #op.parameters)
        local schema = doc.components.schemas.user_edit_Request
        assert.is_nil(schema.properties.id)
        assert.are.same({ type = "string" }, schema.properties.name)
        assert.is_nil(schema.required)
    end)

    it("declares the 200 and the statuses every request may get, with the real error envelope", function()
        local doc = roundtrip(swagger.document(actions(), OPTS))
        local r = doc.paths["/status"].get.responses
        assert.are.same({ type = "object" }, r["200"].content["application/json"].schema)
        assert.is_nil(r["200"].headers)
        local codes = {}
        for code in pairs(r) do codes[#codes + 1] = code end
        table.sort(codes)
        -- no inputs, no middleware: neither 406 nor 401/429; never Keryx's 422 or a bare 404
        assert.are.same({ "200", "400", "408", "413", "431", "500", "503" }, codes)
        for _, code in ipairs(codes) do
            if code ~= "200" then
                assert.is_string(r[code].description)
                assert.are.same({ ["$ref"] = "#/components/schemas/Error" }, r[code].content["application/json"].schema)
            end
        end
        assert.truthy(r["408"].description:find("CONNECTION_ACTION_TIMEOUT", 1, true))
        assert.truthy(r["400"].description:find("CONNECTION_ACTION_PARAM_FORMATTING", 1, true))
        assert.truthy(r["500"].description:find("CONNECTION_ACTION_RUN, CONNECTION_SERVER_ERROR", 1, true))
        assert.are.same({ ["Retry-After"] = { ["$ref"] = "#/components/headers/Retry-After" } }, r["503"].headers)
        local env = doc.components.schemas.Error
        assert.are.same({ "error" }, env.required)
        local e = env.properties.error
        assert.are.same({ "message", "type", "timestamp" }, e.required)
        assert.are.equal("string", e.properties.message.type)
        assert.are.equal("string", e.properties.type.type)
        assert.are.equal("integer", e.properties.timestamp.type)
        assert.are.equal("string", e.properties.key.type)
        assert.is_table(e.properties.value)
        assert.is_nil(e.properties.value.type) -- any JSON value
        assert.are.equal("string", e.properties.stack.type)
        assert.is_false(e.additionalProperties)
    end)

    it("describes the envelope keryx.errors.to_envelope really builds", function()
        local errors = require "keryx.errors"
        local doc = roundtrip(swagger.document({}, OPTS))
        local props = doc.components.schemas.Error.properties.error.properties
        local e = errors.new("CONNECTION_ACTION_PARAM_REQUIRED", "name is required", "name", "x")
        e.stack = "traceback"
        local env = roundtrip(errors.to_envelope(e, { include_stack = true, now_ms = 1 }))
        for k in pairs(env.error) do assert.is_table(props[k], "undocumented field " .. k) end
        assert.are.same({ "error" }, (function()
            local ks = {}
            for k in pairs(env) do ks[#ks + 1] = k end
            return ks
        end)())
    end)

    it("adds 406 for inputs and the statuses of the middleware's and the action's error types", function()
        local mw = require "keryx.middleware"
        local doc = roundtrip(swagger.document({
            { name = "a", inputs = z.object { x = z.string() }, web = { route = "/a" } },
            { name = "b", middleware = { mw.session_required }, web = { route = "/b" } },
            { name = "c", middleware = { mw.rate_limit }, web = { route = "/c" } },
            { name = "d", errors = { "CONNECTION_CHANNEL_AUTHORIZATION", "CONNECTION_RATE_LIMITED" },
                web = { route = "/d" } },
        }, OPTS))
        local function responses(path) return doc.paths[path].get.responses end
        assert.truthy(responses("/a")["406"].description:find("CONNECTION_ACTION_PARAM_REQUIRED", 1, true))
        assert.is_nil(responses("/a")["401"])
        assert.is_nil(responses("/a")["429"])
        assert.truthy(responses("/b")["401"].description:find("CONNECTION_SESSION_NOT_FOUND", 1, true))
        assert.is_nil(responses("/b")["406"])
        assert.is_nil(responses("/b")["429"])
        local c = responses("/c")
        assert.truthy(c["429"].description:find("CONNECTION_RATE_LIMITED", 1, true))
        assert.is_nil(c["401"])
        for _, h in ipairs({ "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset" }) do
            assert.are.same({ ["$ref"] = "#/components/headers/" .. h }, c["200"].headers[h])
            assert.are.same({ ["$ref"] = "#/components/headers/" .. h }, c["429"].headers[h])
            assert.are.equal("integer", doc.components.headers[h].schema.type)
        end
        assert.is_table(c["429"].headers["Retry-After"])
        -- an action raising 429 itself: Retry-After only, no X-RateLimit-* it would not send
        local d = responses("/d")
        assert.is_table(d["403"])
        assert.are.same({ "Retry-After" }, (function()
            local ks = {}
            for k in pairs(d["429"].headers) do ks[#ks + 1] = k end
            return ks
        end)())
        assert.is_nil(d["200"].headers)
    end)

    it("requires the session cookie only where session_required runs; elsewhere it is optional", function()
        local mw = require "keryx.middleware"
        local doc, text = roundtrip(swagger.document({
            { name = "open", web = { route = "/open" } },
            { name = "closed", middleware = { mw.rate_limit, mw.session_required }, web = { route = "/closed" } },
        }, OPTS))
        assert.is_nil(doc.paths["/closed"].get.security) -- the document's default: the cookie
        assert.truthy(text:find('"security":[{},{"sessionCookie":[]}]', 1, true))
        assert.are.equal(2, #doc.paths["/open"].get.security)
    end)

    it("makes an outputs schema the 200 schema, <name>_Response", function()
        local doc = roundtrip(swagger.document({
            { name = "user:me", outputs = z.object { user = z.object { id = z.integer(), email = z.string():email() } },
                web = { route = "/me" } },
        }, OPTS))
        local ok = doc.paths["/me"].get.responses["200"]
        assert.are.same({ ["$ref"] = "#/components/schemas/user_me_Response" }, ok.content["application/json"].schema)
        local s = doc.components.schemas.user_me_Response
        assert.are.equal("object", s.type)
        assert.are.same({ "user" }, s.required)
        assert.are.same({ "email", "id" }, s.properties.user.required)
        assert.are.equal("email", s.properties.user.properties.email.format)
    end)

    it("documents streaming actions as text/event-stream", function()
        local doc = roundtrip(swagger.document(actions(), OPTS))
        local ok = doc.paths["/events"].get.responses["200"]
        assert.are.same({ type = "string" }, ok.content["text/event-stream"].schema)
        assert.is_nil(ok.content["application/json"])
    end)

    it("encodes paths as an object when there are no actions; Error is always there", function()
        local doc, text = roundtrip(swagger.document({}, {}))
        assert.truthy(text:find('"paths":{}', 1, true))
        assert.is_table(doc.components.schemas.Error)
        assert.are.equal("__session", doc.components.securitySchemes.sessionCookie.name)
        assert.are.equal("/api", doc.servers[1].url)
        assert.is_nil(doc.info.license)
    end)

    it("copes with nil arguments and junk entries", function()
        local doc = swagger.document(nil, nil)
        assert.are.same({}, swagger.operations(doc))
        doc = swagger.document({ "junk", { web = { route = "/x" } }, { name = "ok", web = { route = "/ok" } } })
        assert.are.same({ "GET /ok" }, swagger.operations(doc))
    end)

    it("produces a document larger than 1 KB (the gzip canary)", function()
        local _, text = roundtrip(swagger.document(actions(), OPTS))
        assert.is_true(#text > 1024)
        assert.is_nil(text:find("\\/", 1, true))
    end)
end)
