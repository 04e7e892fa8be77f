-- Users of the example chat app, stored in Redis:
--   user:<id>            hash {id, name, email, password_hash, created_at}
--   users:email:<email>  the id owning that (lower-cased) email — claimed with SET NX
--   users:next_id        counter
local keryx = require "keryx"

local M = {}
local redis = keryx.redis
local z = keryx.schema

--- What M.public returns: the user as the API shows it (the actions' `outputs`).
M.schema = z.object {
    id = z.integer():min(1),
    name = z.string(),
    email = z.string():email(),
}

local function hash_to_table(flat)
    if type(flat) ~= "table" or #flat == 0 then return nil end
    local t = {}
    for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
    return t
end

--- The public view of a user record.
function M.public(u)
    return { id = tonumber(u.id), name = u.name, email = u.email }
end

function M.normalize_email(email)
    return (email:lower():gsub("^%s+", ""):gsub("%s+$", ""))
end

function M.find(id)
    return hash_to_table(redis.ok(redis.call("HGETALL", "user:" .. tostring(id))))
end

function M.find_by_email(email)
    local id = redis.ok(redis.call("GET", "users:email:" .. M.normalize_email(email)))
    if id == redis.null then return nil end
    return M.find(id)
end

--- Creates a user; returns the record, or nil when the email is taken.
function M.create(name, email, password)
    email = M.normalize_email(email)
    local hash = keryx.crypto.hash_password(password)
    local id = redis.ok(redis.call("INCR", "users:next_id"))
    -- Claiming the email is atomic: two concurrent sign-ups cannot both get it.
    local claimed = redis.ok(redis.call("SET", "users:email:" .. email, id, "NX"))
    if claimed == redis.null then return nil end
    local now = keryx.now_ms()
    redis.ok(redis.call("HSET", "user:" .. id, "id", id, "name", name, "email", email,
        "password_hash", hash, "created_at", now))
    return { id = id, name = name, email = email }
end

return M
