-- keryx.session — session records in Redis: key `session:<id>`
-- holding {"id","createdAt","data"}, TTL SESSION_TTL refreshed on every load. Ids are 256-bit
-- random (core.random_id); the cookie itself is read and written in C (src/session.c).
-- Redis unreachable, too slow or answering errors → the generic 503 (errors.redis_failure).
local core = require "keryx.core"
local json = require "keryx.json"
local redis = require "keryx.redis"
local errors = require "keryx.errors"

local M = {}
local cfg = core.config.session
local type, tostring, pairs = type, tostring, pairs

local function key(id)
    return "session:" .. id
end

local function check(v, err)
    if v == nil or v == false then error(errors.redis_failure(err), 0) end
    if type(v) == "table" and v.err then error(errors.redis_failure(v.err), 0) end
    return v
end

-- Decoded records by their stored text: a logged-in client's requests read the same text over
-- and over, and a copy of a flat record costs a fraction of decoding it again. Only records
-- whose fields and data values are all scalars (no nested table) are kept, so a copy is two
-- fresh tables that no other request shares; texts over MEMO_MAX_BYTES are not kept, and the
-- memo is emptied when it holds MEMO_MAX_ENTRIES (at most ~1 MiB of texts).
local MEMO_MAX_ENTRIES, MEMO_MAX_BYTES = 1024, 1024
local memo, n_memo = {}, 0

-- rec's fields and data as two fresh tables, or nil when anything in them is a table.
local function flat_copy(rec)
    local copy, data = {}, {}
    for k, v in pairs(rec) do
        if k ~= "data" then
            if type(v) == "table" then return nil end
            copy[k] = v
        end
    end
    for k, v in pairs(rec.data) do
        if type(v) == "table" then return nil end
        data[k] = v
    end
    copy.data = data
    return copy
end

local function decode(raw)
    local kept = memo[raw]
    if kept then return flat_copy(kept) end
    local rec = json.decode(raw)
    if type(rec) ~= "table" or type(rec.data) ~= "table" then return rec end
    -- A copy is kept: rec itself goes to the caller.
    local copy = #raw <= MEMO_MAX_BYTES and flat_copy(rec)
    if copy then
        if n_memo >= MEMO_MAX_ENTRIES then memo, n_memo = {}, 0 end
        memo[raw], n_memo = copy, n_memo + 1
    end
    return rec
end

--- The record for id, or nil when none exists (a cookie naming no session is never adopted).
function M.load(id)
    -- GETEX reads and refreshes the TTL in one command (Redis >= 6.2).
    local raw = check(redis.call("GETEX", key(id), "EX", cfg.ttl))
    if type(raw) ~= "string" then return nil end
    local rec = decode(raw)
    if type(rec) ~= "table" or rec.id ~= id or type(rec.data) ~= "table" then return nil end
    return rec
end

function M.new_record(data)
    return { id = core.random_id(), createdAt = core.now_ms(), data = data or {} }
end

local function encode(rec)
    local s, err = json.encode(rec)
    if not s then error(errors.internal("session data is not JSON-encodable: " .. tostring(err)), 0) end
    return s
end

function M.save(rec)
    check(redis.call("SET", key(rec.id), encode(rec), "EX", cfg.ttl))
end

--- Stores rec under its (new) id and removes old_id, in one round trip.
function M.replace(old_id, rec)
    local res = check(redis.pipeline { { "SET", key(rec.id), encode(rec), "EX", cfg.ttl }, { "DEL", key(old_id) } })
    if type(res[1]) == "table" and res[1].err then check(false, res[1].err) end
end

function M.delete(id)
    check(redis.call("DEL", key(id)))
end

return M
