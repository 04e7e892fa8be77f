-- keryx.strict — after boot, assigning an undeclared global raises: one VM serves every
-- request, so an accidental global would leak state between users.
local error, tostring = error, tostring
local mt = getmetatable(_G) or {}
mt.__newindex = function(_, k)
    error("assignment to undeclared global '" .. tostring(k) .. "' (use local)", 2)
end
setmetatable(_G, mt)
return true
