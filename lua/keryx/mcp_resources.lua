-- keryx.mcp_resources — MCP resources and prompts from actions that declare them (README "Use
-- your actions from an AI agent"):
--   mcp = { resource = { uri = "chat://about", mimeType? } }        a resource
--   mcp = { resource = { uriTemplate = "chat://page/{page}", mimeType? } }   a resource template
--   mcp = { prompt = { title? } }                                    a prompt
-- Names are the action's with `:` → `-`, as tools. Reading a resource runs the action with the
-- template's variables as params; getting a prompt runs it with the prompt's arguments; both
-- through the same pipeline as a tools/call (keryx.mcp passes its runner). An action error is
-- a JSON-RPC error carrying the public message and type only.
--
-- Owns: the list/read/get shapes. Callers: keryx.mcp (its handler table and capabilities).
-- Never: lists an internal action.
local json = require "keryx.json"
local pipeline = require "keryx.pipeline"

local M = {}

local type, ipairs, tostring, tonumber, gsub, char = type, ipairs, tostring, tonumber, string.gsub, string.char

M.RESOURCE_NOT_FOUND = -32002 -- the MCP resources page's code for an unknown URI
local INVALID_PARAMS, INTERNAL = -32602, -32603

local function name_of(action)
    return (gsub(action.name, ":", "-"))
end

local function declared(action, kind)
    local mcp = action.mcp
    return not action.internal and type(mcp) == "table" and type(mcp[kind]) == "table" and mcp[kind] or nil
end

local function each(kind)
    local out = {}
    for _, a in ipairs(pipeline.registry.list) do
        local d = declared(a, kind)
        if d then out[#out + 1] = { action = a, decl = d } end
    end
    return out
end

--- The capabilities to add to initialize's: resources and prompts when any is declared.
function M.capabilities(caps)
    if #each("resource") > 0 then caps.resources = { listChanged = false } end
    if #each("prompt") > 0 then caps.prompts = { listChanged = false } end
    return caps
end

-- "chat://page/{page}" → a Lua pattern capturing each variable, and the variables' names.
local function template_pattern(t)
    local names = {}
    local pat = gsub(t, "[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
    pat = gsub(pat, "{([%w_]+)}", function(n)
        names[#names + 1] = n
        return "([^/?#]+)"
    end)
    return "^" .. pat .. "$", names
end

local function unescape(s)
    return (gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

-- The resource answering uri: action, params | nil.
local function find_resource(uri)
    for _, r in ipairs(each("resource")) do
        if r.decl.uri == uri then return r, {} end
    end
    for _, r in ipairs(each("resource")) do
        if type(r.decl.uriTemplate) == "string" then
            local pat, names = template_pattern(r.decl.uriTemplate)
            local caps = { uri:match(pat) }
            if caps[1] ~= nil then
                local params = {}
                for i, n in ipairs(names) do params[n] = unescape(caps[i]) end
                return r, params
            end
        end
    end
    return nil
end

local function resources_list()
    local out = json.array()
    for _, r in ipairs(each("resource")) do
        if type(r.decl.uri) == "string" then
            out[#out + 1] = { uri = r.decl.uri, name = name_of(r.action), description = r.action.description,
                mimeType = r.decl.mimeType or "application/json" }
        end
    end
    return { resources = out }
end

local function templates_list()
    local out = json.array()
    for _, r in ipairs(each("resource")) do
        if type(r.decl.uriTemplate) == "string" then
            out[#out + 1] = { uriTemplate = r.decl.uriTemplate, name = name_of(r.action),
                description = r.action.description, mimeType = r.decl.mimeType or "application/json" }
        end
    end
    return { resourceTemplates = out }
end

-- One content entry of a read: text (a string result's, or .text, else the JSON) or blob.
local function contents(uri, decl, result)
    local entry = { uri = uri }
    entry.mimeType = (type(result) == "table" and type(result.mimeType) == "string" and result.mimeType)
        or decl.mimeType or "application/json"
    if type(result) == "string" then
        entry.text = result
    elseif type(result) == "table" and type(result.blob) == "string" then
        entry.blob = result.blob
    elseif type(result) == "table" and type(result.text) == "string" then
        entry.text = result.text
    else
        entry.text = pipeline.encode_response(result) or "{}"
    end
    return { contents = { entry } }
end

local function prompt_arguments(action)
    local out = json.array()
    local inputs = action.inputs
    if not inputs or not inputs.field_keys then return out end
    for _, key in ipairs(inputs.field_keys) do
        local f = inputs.fields[key]
        out[#out + 1] = { name = key, description = f.description, required = f.required == true }
    end
    return out
end

local function prompts_list()
    local out = json.array()
    for _, p in ipairs(each("prompt")) do
        out[#out + 1] = { name = name_of(p.action), title = p.decl.title or p.action.name,
            description = p.action.description, arguments = prompt_arguments(p.action) }
    end
    return { prompts = out }
end

local function find_prompt(name)
    for _, p in ipairs(each("prompt")) do
        if name_of(p.action) == name then return p end
    end
    return nil
end

--- The JSON-RPC handlers, given run(ctx, action, params) → response | nil, typed error and
--- public(err) → the message a client may see.
function M.handlers(run, public)
    return {
        ["resources/list"] = resources_list,
        ["resources/templates/list"] = templates_list,
        ["resources/read"] = function(ctx, params)
            local uri = type(params) == "table" and params.uri or nil
            if type(uri) ~= "string" then return nil, INVALID_PARAMS, "uri must be a string" end
            local r, args = find_resource(uri)
            if not r then return nil, M.RESOURCE_NOT_FOUND, "Resource not found: " .. uri end
            local result, err = run(ctx, r.action, args)
            if err then return nil, INTERNAL, public(err) end
            return contents(uri, r.decl, result)
        end,
        ["prompts/list"] = prompts_list,
        ["prompts/get"] = function(ctx, params)
            local name = type(params) == "table" and params.name or nil
            local p = find_prompt(name)
            if not p then return nil, INVALID_PARAMS, "Unknown prompt: " .. tostring(name) end
            local args = params.arguments
            if type(args) ~= "table" then args = {} end
            local result, err = run(ctx, p.action, args)
            if err then return nil, INTERNAL, public(err) end
            if type(result) ~= "table" or type(result.messages) ~= "table" then
                return nil, INTERNAL, "The prompt's action did not return {messages = {...}}"
            end
            return result
        end,
    }
end

M._template_pattern = template_pattern
return M
