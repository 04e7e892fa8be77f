-- core_meta.lua — what the contract specs share: the names lua/keryx/_meta/core.lua declares
-- for the C module keryx.core, and a diff of two nested config tables.
--
--   local meta = require "core_meta"
--   meta.declared() → fns, fields            sets of `function core.x(` and `core.x =` names
--   meta.diff(a, b, label_a, label_b) → { "path: <label_a>=… <label_b>=…", … } sorted
-- Used by spec/unit/fake_core_contract_spec.lua (the fake) and
-- spec/integration/core_contract_spec.lua (the real binary).
local M = {}

M.PATH = "lua/keryx/_meta/core.lua"

function M.declared()
    local f = assert(io.open(M.PATH, "rb"))
    local text = f:read("*a")
    f:close()
    local fns, fields = {}, {}
    for line in text:gmatch("[^\n]+") do
        local fn = line:match("^function core%.([%w_]+)%s*%(")
        local field = line:match("^core%.([%w_]+)%s*=")
        if fn then fns[fn] = true end
        if field then fields[field] = true end
    end
    return fns, fields
end

--- Every dotted path where a and b differ, sorted.
function M.diff(a, b, label_a, label_b, prefix, out)
    out = out or {}
    local keys = {}
    for k in pairs(a) do keys[k] = true end
    for k in pairs(b) do keys[k] = true end
    for k in pairs(keys) do
        local p = prefix and (prefix .. "." .. k) or k
        local x, y = a[k], b[k]
        if type(x) == "table" and type(y) == "table" then
            M.diff(x, y, label_a, label_b, p, out)
        elseif x ~= y then
            out[#out + 1] = ("%s: %s=%s %s=%s"):format(p, label_a, tostring(x), label_b, tostring(y))
        end
    end
    table.sort(out)
    return out
end

return M
