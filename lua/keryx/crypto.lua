-- keryx.crypto — password hashing in C (scrypt N=16384, r=8, p=1, per-user salt) on a worker
-- thread pool: the request's coroutine yields meanwhile, so a login never stalls other
-- requests. Verification compares in constant time.
local core = require "keryx.core"
local errors = require "keryx.errors"

local M = {}

local function check(v, err)
    if v == nil then
        errors.check_aborted(v, err)
        if err == "busy" then error(errors.unavailable("Password hashing is busy, try again shortly"), 3) end
        error(errors.internal("password hashing failed: " .. tostring(err)), 3)
    end
    return v
end

--- "scrypt$16384$8$1$<salt>$<hash>" for password (1..4096 bytes).
function M.hash_password(password)
    if type(password) ~= "string" then error("hash_password expects a string", 2) end
    return check(core.hash_password(password))
end

--- true when password matches stored (a hash_password result); false otherwise.
function M.verify_password(password, stored)
    if type(password) ~= "string" or type(stored) ~= "string" then error("verify_password expects two strings", 2) end
    return check(core.verify_password(password, stored))
end

--- A 256-bit random id, unpadded base64url (43 chars).
M.random_id = core.random_id

return M
