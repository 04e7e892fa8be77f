-- wrk-status.lua — wrk script for bench/ratelimit.sh: counts replies by HTTP status, so a run
-- with any reply other than 200 can be refused (a 429 or 503 there would mean the bench
-- measured refusals or a Redis outage, not the rate-limit check). After wrk's own report it
-- prints three lines:
--
--   kx_status_200 <n>         replies with status 200
--   kx_status_other <n>       every other reply
--   kx_status_codes <list>    "429:12,503:3" (each other status and its count), or "-"
--
-- wrk reads these names from each thread's Lua state (thread:get), hence the globals.
-- luacheck: globals setup init response done ok_count other_count codes seen

local threads = {}

function setup(thread)
    threads[#threads + 1] = thread
end

function init()
    ok_count, other_count, codes, seen = 0, 0, "", {}
end

-- Rebuilt only when a non-200 arrives, which a correct run never sees: the 200 path stays a
-- single comparison and increment per reply.
local function codes_string()
    local parts = {}
    for status, n in pairs(seen) do parts[#parts + 1] = status .. ":" .. n end
    table.sort(parts)
    return table.concat(parts, ",")
end

function response(status)
    if status == 200 then
        ok_count = ok_count + 1
        return
    end
    other_count = other_count + 1
    seen[status] = (seen[status] or 0) + 1
    codes = codes_string()
end

function done()
    local ok, other, list = 0, 0, {}
    for _, t in ipairs(threads) do
        ok = ok + t:get("ok_count")
        other = other + t:get("other_count")
        local c = t:get("codes")
        if c ~= "" then list[#list + 1] = c end
    end
    io.write(("kx_status_200 %d\nkx_status_other %d\nkx_status_codes %s\n"):format(
        ok, other, #list > 0 and table.concat(list, ",") or "-"))
end
