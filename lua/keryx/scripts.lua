-- keryx.scripts — runs the Redis-side scripts of lua/redis/*.lua (SPEC §2: "loaded by SHA").
--
--   scripts.run(name, keys, args) → the script's reply | false, "ERR …" | nil, "closed"/"timeout"
--       EVALSHA <sha1 of the file> first; on a NOSCRIPT reply (Redis restarted, SCRIPT FLUSH,
--       another server of a cluster) the text is sent once with EVAL, which also caches it in
--       Redis for the next EVALSHA. Yields like keryx.redis.call; raises CONNECTION_ACTION_TIMEOUT
--       when the running action's timeout fired meanwhile.
--   scripts.sha1(text) → 40 lowercase hex digits (pure Lua; exposed for the specs and the fake).
--
-- Each file is read once, on first use, from <home>/lua/redis/<name>.lua (core.home is the
-- keryx installation; relative "lua/redis" when it is unset, as in the unit specs). Never logs;
-- never retries anything but the one NOSCRIPT fallback. Callers own the key layout: every key
-- of one call must share a hash tag (SPEC §8: one slot per script).
local core = require "keryx.core"
local redis = require "keryx.redis"
local bit = require "bit"

local M = {}

local band, bor, bxor, bnot, rol, tobit, tohex = bit.band, bit.bor, bit.bxor, bit.bnot, bit.rol, bit.tobit, bit.tohex
local byte, char, rep, concat, type, tostring = string.byte, string.char, string.rep, table.concat, type, tostring

-- ---- SHA-1 (FIPS 180-4), 32-bit arithmetic on LuaJIT's bit library ------------------------

local function be32(s, i)
    local a, b, c, d = byte(s, i, i + 3)
    return bor(rol(a, 24), rol(b, 16), rol(c, 8), d)
end

local function be32_str(n)
    return char(band(rol(n, 8), 255), band(rol(n, 16), 255), band(rol(n, 24), 255), band(n, 255))
end

function M.sha1(msg)
    if type(msg) ~= "string" then error("keryx.scripts.sha1 expects a string", 2) end
    local h0, h1, h2, h3, h4 = tobit(0x67452301), tobit(0xEFCDAB89), tobit(0x98BADCFE), tobit(0x10325476),
        tobit(0xC3D2E1F0)
    local len = #msg
    -- Padding: 0x80, zeros to 56 mod 64, then the bit length as a 64-bit big-endian number.
    local bits = len * 8
    local hi, lo = math.floor(bits / 4294967296), bits % 4294967296
    msg = msg .. "\128" .. rep("\0", (55 - len) % 64) .. be32_str(tobit(hi)) .. be32_str(tobit(lo))
    local w = {}
    for chunk = 1, #msg, 64 do
        for i = 0, 15 do w[i] = be32(msg, chunk + i * 4) end
        for i = 16, 79 do w[i] = rol(bxor(w[i - 3], w[i - 8], w[i - 14], w[i - 16]), 1) end
        local a, b, c, d, e = h0, h1, h2, h3, h4
        for i = 0, 79 do
            local f, k
            if i < 20 then
                f, k = bor(band(b, c), band(bnot(b), d)), 0x5A827999
            elseif i < 40 then
                f, k = bxor(b, c, d), 0x6ED9EBA1
            elseif i < 60 then
                f, k = bor(band(b, c), band(b, d), band(c, d)), 0x8F1BBCDC
            else
                f, k = bxor(b, c, d), 0xCA62C1D6
            end
            local t = tobit(rol(a, 5) + f + e + k + w[i])
            e, d, c, b, a = d, c, rol(b, 30), a, t
        end
        h0, h1, h2, h3, h4 = tobit(h0 + a), tobit(h1 + b), tobit(h2 + c), tobit(h3 + d), tobit(h4 + e)
    end
    return concat { tohex(h0), tohex(h1), tohex(h2), tohex(h3), tohex(h4) }
end

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
