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
-- come in route order, then query fields in sorted key order.

local M = {}

local json = require "keryx.json"

local type, ipairs, pairs = type, ipairs, pairs
local str_gsub, str_gmatch, str_find, str_sub = string.gsub, string.gmatch, string.find, string.sub
local str_lower, str_upper = string.lower, string.upper
local tbl_sort = table.sort

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

local function error_response(description)
    return {
        description = description,
        content = {
            ["application/json"] = {
                schema = { type = "object", properties = { error = { type = "string" } } },
            },
        },
    }
end

local function responses(web)
    local ok
    if web.streaming then
        ok = {
            description = "Successful response (server-sent events)",
            content = { ["text/event-stream"] = { schema = { type = "string" } } },
        }
    else
        ok = {
            description = "Successful response",
            content = { ["application/json"] = { schema = { type = "object" } } },
        }
    end
    return {
        ["200"] = ok,
        ["400"] = error_response("Bad request"),
        ["404"] = error_response("Not found"),
        ["422"] = error_response("Validation error"),
        ["500"] = error_response("Internal server error"),
    }
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
                    responses = responses(web),
                }
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
    return {
        openapi = "3.0.0",
        info = info,
        servers = json.array {
            { url = opt(opts, "server_url"), description = opt(opts, "server_description") },
        },
        paths = paths,
        components = {
            schemas = schemas,
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
