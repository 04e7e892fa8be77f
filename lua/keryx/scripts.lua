-- keryx.scripts — runs the Redis-side scripts of lua/redis/*.lua, loaded by SHA (EVALSHA).
--
--   scripts.run(name, keys, args) → the script's reply | false, "ERR …" | nil, "closed"/"timeout"
--       EVALSHA <sha1 of the file> first; on a NOSCRIPT reply (Redis restarted, SCRIPT FLUSH,
--       another server of a cluster) the text is sent once with EVAL, which also caches it in
--       Redis for the next EVALSHA. Yields like keryx.redis.call; raises CONNECTION_ACTION_TIMEOUT
--       when the running action's timeout fired meanwhile.
--   scripts.sha1(text) → 40 lowercase hex digits (core.sha1_hex: OpenSSL, in C).
--
-- Each file is read once, on first use, from <home>/lua/redis/<name>.lua (core.home is the
-- keryx installation; relative "lua/redis" when it is unset, as in the unit specs). Never logs;
-- never retries anything but the one NOSCRIPT fallback. Callers own the key layout: every key
-- of one call must share a hash tag (one slot per script, for Redis Cluster).
local core = require "keryx.core"
local redis = require "keryx.redis"

local M = {}

local type, tostring, unpack = type, tostring, unpack

--- SHA-1 of text as Redis names scripts (OpenSSL, in C).
M.sha1 = core.sha1_hex

-- ---- scripts ---------------------------------------------------------------------------

local loaded = {} -- name -> { text = , sha = }

local function dir()
    local home = core.home
    if type(home) == "string" and home ~= "" then return home .. "/lua/redis/" end
    return "lua/redis/"
end

--- The script `name` ({text, sha}); raises when the file is missing (a packaging bug).
function M.load(name)
    local s = loaded[name]
    if s then return s end
    if type(name) ~= "string" or not name:match("^[%w_]+$") then
        error("keryx.scripts: bad script name " .. tostring(name), 2)
    end
    local path = dir() .. name .. ".lua"
    local f, err = io.open(path, "rb")
    if not f then error("keryx.scripts: cannot read " .. path .. ": " .. tostring(err), 2) end
    local text = f:read("*a")
    f:close()
    s = { text = text, sha = M.sha1(text) }
    loaded[name] = s
    return s
end

local function is_noscript(v, err)
    return v == false and type(err) == "string" and err:sub(1, 8) == "NOSCRIPT"
end

function M.run(name, keys, args)
    local s = M.load(name)
    keys, args = keys or {}, args or {}
    local cmd = { "EVALSHA", s.sha, #keys }
    for i = 1, #keys do cmd[#cmd + 1] = keys[i] end
    for i = 1, #args do cmd[#cmd + 1] = args[i] end
    local v, err = redis.call(unpack(cmd))
    if not is_noscript(v, err) then return v, err end
    cmd[1], cmd[2] = "EVAL", s.text
    return redis.call(unpack(cmd))
end

--- Forgets the files read so far (specs; a reload re-reads them anyway).
function M._reset()
    loaded = {}
end

return M
