-- keryx.swagger: the OpenAPI 3.0.0 document for the built-in `swagger` action.
--
-- Pure function of the loaded action definitions and a few config values; the built-in
-- `swagger` action encodes the result with keryx.json. It never reads config or files
-- itself and never raises on odd actions: an action without `web`, or with a route that is
-- not a string, is left out.
--
-- Choices beyond Keryx's: path parameters are left out of the request-body schema (they are
-- parameters already), so a body schema is emitted only when fields remain; a repeated
-- path + method keeps the first action in load order (the one the router picks); parameters
-- come in route order, then query fields in sorted key order. Errors are the real envelope
-- (components.schemas.Error) under the statuses keryx really answers (see "responses" below),
-- not Keryx's `{error: string}` and 422; an action's `outputs` schema is its 200 schema
-- (components.schemas.<name>_Response), without one the 200 is any object; the session cookie
-- is required only where a middleware refuses anonymous requests, optional elsewhere.

local M = {}

local json = require "keryx.json"
local errors = require "keryx.errors"

local type, ipairs, pairs = type, ipairs, pairs
local str_gsub, str_gmatch, str_find, str_sub = string.gsub, string.gmatch, string.find, string.sub
local str_lower, str_upper = string.lower, string.upper
local tbl_sort, tbl_concat = table.sort, table.concat
local tostring = tostring

local DEFAULTS = {
    title = "keryx",
    version = "0.0.0",
    description = "API documentation",
    server_url = "/api",
    server_description = "The API server",
    cookie_name = "__session",
}

local function opt(opts, key)
    local v = opts[key]
    if type(v) == "string" then
        return v
    end
    return DEFAULTS[key]
end

-- ---- responses ----------------------------------------------------------------------------
-- Every operation lists the statuses keryx itself may answer it with, each with the error
-- envelope of keryx.errors.to_envelope (what the web transport and the C core send):
--   400  a malformed query string or JSON body (CONNECTION_ACTION_PARAM_FORMATTING) or HTTP
--        request (CONNECTION_BAD_REQUEST, from the C core)
--   408  the action's timeout (CONNECTION_ACTION_TIMEOUT) or a request that did not arrive in
--        time (CONNECTION_REQUEST_TIMEOUT)
--   413, 431  body / header block over the limits (C core)
--   500  the action failed (CONNECTION_ACTION_RUN) or answered something C cannot send (a
--        bad header: CONNECTION_SERVER_ERROR)
--   503  Redis cannot answer (CONNECTION_SERVER_ERROR) or the connection cap is reached
--        (CONNECTION_SERVER_BUSY), with Retry-After
-- plus, per action: 406 when it has inputs (CONNECTION_ACTION_PARAM_REQUIRED), and the status
-- of every type its middleware (`errors` field: session_required 401, rate_limit 429 with the
-- X-RateLimit-* headers) and the action itself (`errors`) declare.

local BASE_TYPES = {
    "CONNECTION_ACTION_PARAM_FORMATTING", "CONNECTION_BAD_REQUEST", "CONNECTION_ACTION_TIMEOUT",
    "CONNECTION_REQUEST_TIMEOUT", "CONNECTION_PAYLOAD_TOO_LARGE", "CONNECTION_HEADERS_TOO_LARGE",
    "CONNECTION_ACTION_RUN", "CONNECTION_SERVER_ERROR",
}

local REASONS = {
    [400] = "Bad request", [401] = "Not logged in", [403] = "Forbidden", [404] = "Not found",
    [406] = "Invalid or missing input", [408] = "Timed out", [413] = "Request body too large",
    [429] = "Rate limited", [431] = "Request headers too large", [500] = "Internal server error",
    [503] = "Service unavailable",
}

local RATE_HEADERS = {
    ["X-RateLimit-Limit"] = "Requests allowed per window",
    ["X-RateLimit-Remaining"] = "Requests left in the current window",
    ["X-RateLimit-Reset"] = "When the window resets (unix seconds)",
}

-- The envelope exactly as keryx.errors.to_envelope builds it.
local function error_schema()
    return {
        type = "object",
        required = json.array { "error" },
        additionalProperties = false,
        properties = {
            error = {
                type = "object",
                required = json.array { "message", "type", "timestamp" },
                additionalProperties = false,
                properties = {
                    message = { type = "string", description = "What went wrong" },
                    type = {
                        type = "string",
                        description = "The error type (keryx.errors.types), e.g. CONNECTION_ACTION_PARAM_REQUIRED",
                    },
                    timestamp = { type = "integer", description = "When, in ms since the Unix epoch" },
                    key = { type = "string", description = "The input the error is about, when there is one" },
                    value = { description = "The value of that input as received (never for secret inputs)" },
                    stack = {
                        type = "string",
                        description = "A traceback, only when WEB_SERVER_INCLUDE_STACK_IN_ERRORS is on",
                    },
                },
            },
        },
    }
end

local function components_headers()
    local h = {}
    for name, desc in pairs(RATE_HEADERS) do
        h[name] = { description = desc, schema = { type = "integer" } }
    end
    h["Retry-After"] = { description = "Seconds to wait before trying again", schema = { type = "integer" } }
    return h
end

local function ref_headers(names)
    local out = {}
    for _, n in ipairs(names) do out[n] = { ["$ref"] = "#/components/headers/" .. n } end
    return out
end

local RATE_NAMES = { "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset" }

local function error_response(status, types, rate_limited)
    local sorted = {}
    for t in pairs(types) do sorted[#sorted + 1] = t end
    tbl_sort(sorted)
    local r = {
        description = (REASONS[status] or "Error") .. " (" .. tbl_concat(sorted, ", ") .. ")",
        content = { ["application/json"] = { schema = { ["$ref"] = "#/components/schemas/Error" } } },
    }
    if status == 429 then
        local names = { "Retry-After" }
        if rate_limited then for _, n in ipairs(RATE_NAMES) do names[#names + 1] = n end end
        r.headers = ref_headers(names)
    elseif status == 503 then
        r.headers = ref_headers { "Retry-After" }
    end
    return r
end

-- A middleware refusing anonymous requests (session_required) makes the session cookie
-- required; on every other operation it is optional.
local function session_required(action)
    if type(action.middleware) ~= "table" then return false end
    for _, mw in ipairs(action.middleware) do
        if type(mw) == "table" and type(mw.errors) == "table" then
            for _, t in ipairs(mw.errors) do
                if t == "CONNECTION_SESSION_NOT_FOUND" then return true end
            end
        end
    end
    return false
end

-- The error types an action may answer with, beside the base ones; and whether the rate_limit
-- middleware runs (its headers are on every answer then, while rate limiting is enabled).
local function action_types(action)
    local types, rate_limited = {}, false
    local function add(list)
        if type(list) ~= "table" then return end
        for _, t in ipairs(list) do
            if type(t) == "string" then types[t] = true end
        end
    end
    add(BASE_TYPES)
    if type(action.inputs) == "table" then types.CONNECTION_ACTION_PARAM_REQUIRED = true end
    if type(action.middleware) == "table" then
        for _, mw in ipairs(action.middleware) do
            if type(mw) == "table" then
                add(mw.errors)
                if mw.name == "rate_limit" then rate_limited = true end
            end
        end
    end
    add(action.errors)
    return types, rate_limited
end

local function responses(action, web, ok_ref)
    local ok
    if web.streaming then
        ok = {
            description = "Successful response (server-sent events)",
            content = { ["text/event-stream"] = { schema = { type = "string" } } },
        }
    else
        local schema = { type = "object" }
        if ok_ref then schema = { ["$ref"] = "#/components/schemas/" .. ok_ref } end
        ok = {
            description = "Successful response",
            content = { ["application/json"] = { schema = schema } },
        }
    end
    local types, rate_limited = action_types(action)
    if rate_limited then ok.headers = ref_headers(RATE_NAMES) end
    local by_status = {}
    for t in pairs(types) do
        local st = errors.status(t)
        by_status[st] = by_status[st] or {}
        by_status[st][t] = true
    end
    -- Redis failing or the connection cap: errors.unavailable / the C core, on any request.
    by_status[503] = { CONNECTION_SERVER_ERROR = true, CONNECTION_SERVER_BUSY = true }
    local out = { ["200"] = ok }
    for st, set in pairs(by_status) do
        out[tostring(st)] = error_response(st, set, rate_limited)
    end
    return out
end

-- "/user/:id/posts/:post_id" -> "/user/{id}/posts/{post_id}", {"id", "post_id"}
local function convert_route(route)
    local names = {}
    for name in str_gmatch(route, ":([%w_]+)") do
        names[#names + 1] = name
    end
    local path = str_gsub(route, ":([%w_]+)", "{%1}")
    return path, names
end

local function field_of(inputs, key)
    if inputs == nil or inputs.fields == nil then
        return nil
    end
    return inputs.fields[key]
end

local function parameters(action, method, path_names)
    local params = json.array()
    local in_path = {}
    local inputs = action.inputs
    for _, p in ipairs(path_names) do
        if not in_path[p] then
            in_path[p] = true
            local field = field_of(inputs, p)
            local desc = field and field.description or ("The " .. p .. " parameter")
            params[#params + 1] = {
                name = p,
                ["in"] = "path",
                required = true,
                description = desc,
                schema = { type = "string" },
            }
        end
    end
    if (method == "GET" or method == "HEAD") and inputs ~= nil and inputs.field_keys then
        for _, key in ipairs(inputs.field_keys) do
            if not in_path[key] then
                local field = inputs.fields[key]
                params[#params + 1] = {
                    name = key,
                    ["in"] = "query",
                    required = field.required,
                    description = field.description,
                    schema = field:json_schema(),
                }
            end
        end
    end
    return params, in_path
end

-- The request-body schema: the inputs minus the path parameters; nil when nothing is left.
local function body_schema(inputs, in_path)
    if inputs == nil or inputs.field_keys == nil then
        return nil
    end
    local schema = inputs:json_schema()
    local required = json.array()
    local any = false
    for key in pairs(schema.properties) do
        if in_path[key] then
            schema.properties[key] = nil
        else
            any = true
        end
    end
    if not any then
        return nil
    end
    if schema.required then
        for _, key in ipairs(schema.required) do
            if not in_path[key] then
                required[#required + 1] = key
            end
        end
        schema.required = #required > 0 and required or nil
    end
    return schema
end

local function schema_name(action_name)
    return (str_gsub(action_name, ":", "_"))
end

local function tag_of(name)
    local colon = str_find(name, ":", 1, true)
    if colon then
        return str_sub(name, 1, colon - 1)
    end
    return name
end

--- OpenAPI 3.0.0 document (a table; encode with keryx.json).
-- actions: list in load order of {name, description?, inputs?, web = {route, method, streaming?}?}
-- opts: {title, version, description, license, server_url, server_description, cookie_name}
function M.document(actions, opts)
    opts = opts or {}
    local paths, schemas = {}, {}
    local info = {
        title = opt(opts, "title"),
        version = opt(opts, "version"),
        description = opt(opts, "description"),
    }
    if type(opts.license) == "string" then
        info.license = { name = opts.license }
    end
    local schemas_error = error_schema()
    for _, action in ipairs(actions or {}) do
        local web = type(action) == "table" and action.web
        local name = type(action) == "table" and action.name
        -- Framework endpoints (internal: OAuth) are not part of the app's API.
        if type(web) == "table" and type(web.route) == "string" and type(name) == "string"
            and not action.internal then
            local method = str_upper(type(web.method) == "string" and web.method or "GET")
            local path, path_names = convert_route(web.route)
            local item = paths[path]
            if item == nil then
                item = {}
                paths[path] = item
            end
            local op_key = str_lower(method)
            if item[op_key] == nil then
                local params, in_path = parameters(action, method, path_names)
                local op = {
                    operationId = name,
                    summary = name,
                    description = action.description or ("An Action: " .. name),
                    tags = json.array { tag_of(name) },
                    parameters = params,
                }
                local ok_ref
                if type(action.outputs) == "table" and type(action.outputs.json_schema) == "function" then
                    ok_ref = schema_name(name) .. "_Response"
                    schemas[ok_ref] = action.outputs:json_schema()
                end
                op.responses = responses(action, web, ok_ref)
                -- The document's default (`security`) is the cookie; `{}` makes it optional.
                if not session_required(action) then
                    op.security = json.array { {}, { sessionCookie = json.empty_array } }
                end
                if method ~= "GET" and method ~= "HEAD" then
                    local body = body_schema(action.inputs, in_path)
                    if body ~= nil then
                        local ref = schema_name(name) .. "_Request"
                        schemas[ref] = body
                        op.requestBody = {
                            required = true,
                            content = {
                                ["application/json"] = {
                                    schema = { ["$ref"] = "#/components/schemas/" .. ref },
                                },
                            },
                        }
                    end
                end
                item[op_key] = op
            end
        end
    end
    schemas.Error = schemas_error
    return {
        openapi = "3.0.0",
        info = info,
        servers = json.array {
            { url = opt(opts, "server_url"), description = opt(opts, "server_description") },
        },
        paths = paths,
        components = {
            schemas = schemas,
            headers = components_headers(),
            securitySchemes = {
                sessionCookie = {
                    type = "apiKey",
                    ["in"] = "cookie",
                    name = opt(opts, "cookie_name"),
                    description = "Session cookie set by the server",
                },
            },
        },
        security = json.array { { sessionCookie = json.empty_array } },
    }
end

--- Sorted list of "METHOD path" strings in a document (for tests and the CLI).
function M.operations(doc)
    local out = {}
    for path, item in pairs(doc.paths or {}) do
        for method in pairs(item) do
            out[#out + 1] = str_upper(method) .. " " .. path
        end
    end
    tbl_sort(out)
    return out
end

return M
