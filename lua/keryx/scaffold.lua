-- keryx.scaffold — `keryx new DIR` (a runnable project) and `keryx generate action|channel NAME`
-- (one file from a template), from lua/keryx/templates/.
--
--   scaffold.new(home, dir)                       → true | nil, message
--   scaffold.generate(home, root, kind, name, opts) → path written | nil, message
--       opts: { method = "GET", route = "/<name with : and . as />" } (actions only)
--
-- Owns: the templates' file list and the {{name}}-style substitutions. Callers: the command
-- line (main.c runs it without booting an app). Never: overwrites a file (an existing project
-- or action is an error naming it), touches Redis.
local M = {}

-- The project skeleton (paths under templates/new, copied to the same paths in the project).
M.NEW_FILES = {
    "config.lua",
    "app/actions/hello.lua",
    "app/channels/room.lua",
    "app/lib/README.md",
    "assets/index.html",
    "spec/hello_spec.lua",
    ".busted",
}

local function sh_quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function read(path)
    local f, err = io.open(path, "rb")
    if not f then return nil, err end
    local s = f:read("*a")
    f:close()
    return s
end

local function exists(path)
    local f = io.open(path, "rb")
    if f then f:close() end
    return f ~= nil
end

local function mkdir_p(dir)
    local ok = os.execute("mkdir -p " .. sh_quote(dir))
    return ok == true or ok == 0
end

local function render(text, vars)
    return (text:gsub("{{(%w+)}}", function(k) return vars[k] or ("{{" .. k .. "}}") end))
end

local function write_new(path, text)
    if exists(path) then return nil, path .. " already exists" end
    local dir = path:match("^(.*)/[^/]+$")
    if dir and not mkdir_p(dir) then return nil, "cannot create " .. dir end
    local f, err = io.open(path, "wb")
    if not f then return nil, "cannot write " .. path .. ": " .. tostring(err) end
    f:write(text)
    f:close()
    return true
end

local function is_empty_dir(dir)
    local p = io.popen("ls -A " .. sh_quote(dir) .. " 2>/dev/null")
    local out = p:read("*a")
    p:close()
    return out == ""
end

function M.new(home, dir)
    if type(dir) ~= "string" or dir == "" then return nil, "usage: keryx new DIR" end
    if exists(dir) and not is_empty_dir(dir) then return nil, dir .. " already exists and is not empty" end
    local name = dir:gsub("/+$", ""):match("([^/]+)$") or "app"
    local vars = { name = name, home = home }
    for _, rel in ipairs(M.NEW_FILES) do
        local text, err = read(home .. "/lua/keryx/templates/new/" .. rel)
        if not text then return nil, "missing template " .. rel .. ": " .. tostring(err) end
        local ok, werr = write_new(dir .. "/" .. rel, render(text, vars))
        if not ok then return nil, werr end
    end
    return true
end

local KINDS = { action = "app/actions", channel = "app/channels" }

function M.generate(home, root, kind, name, opts)
    opts = opts or {}
    local where = KINDS[kind]
    if not where then return nil, "usage: keryx generate action|channel NAME" end
    if type(name) ~= "string" or not name:match("^[%w][%w:._-]*$") or #name > 100 then
        return nil, "invalid name " .. tostring(name) .. " (letters, digits and : . _ -)"
    end
    local method = (opts.method or "GET"):upper()
    if not ({ GET = 1, POST = 1, PUT = 1, PATCH = 1, DELETE = 1 })[method] then
        return nil, "invalid method " .. tostring(opts.method) .. " (GET, POST, PUT, PATCH, DELETE)"
    end
    local route = opts.route or ("/" .. name:gsub("[:.]", "/"))
    if not route:match("^/[%w/:._*-]*$") then return nil, "invalid route " .. route end
    local text, err = read(home .. "/lua/keryx/templates/generate/" .. kind .. ".lua")
    if not text then return nil, "missing template " .. kind .. ": " .. tostring(err) end
    local path = root .. "/" .. where .. "/" .. name:gsub("[:.]", "_") .. ".lua"
    local ok, werr = write_new(path, render(text, { name = name, method = method, route = route }))
    if not ok then return nil, werr end
    return path
end

-- ---- the command line (src/lua_tool.c) --------------------------------------------------

local function usage(msg)
    return { code = 1, err = "keryx: " .. msg }
end

--- keryx new DIR | keryx generate action|channel NAME [--method M] [--route /path]
--- → { code, out?, err? } (the generated path is relative to the project root: the current
--- directory, which main.c made --root's).
function M.main(home, command, args)
    if command == "new" then
        if #args ~= 1 then return usage("usage: keryx new DIR") end
        local ok, err = M.new(home, args[1])
        if not ok then return usage(err) end
        return { code = 0, out = ("created %s — next: cd %s && keryx start"):format(args[1], args[1]) }
    end
    local kind, name = args[1], args[2]
    if not kind or not name then
        return usage("usage: keryx generate action|channel NAME [--method M] [--route /path]")
    end
    local opts, i = {}, 3
    while i <= #args do
        local flag, value = args[i], args[i + 1]
        if (flag ~= "--method" and flag ~= "--route") or value == nil then
            return usage("unexpected argument '" .. tostring(flag) .. "' (options: --method M, --route /path)")
        end
        opts[flag:sub(3)] = value
        i = i + 2
    end
    if kind == "channel" and next(opts) then return usage("--method and --route are for actions") end
    local path, err = M.generate(home, ".", kind, name, opts)
    if not path then return usage(err) end
    return { code = 0, out = "created " .. path:gsub("^%./", "") }
end

return M
