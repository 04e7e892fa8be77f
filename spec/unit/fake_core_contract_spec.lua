-- The unit tests' fake of the C module (spec/helpers/fake_core.lua) against the module's
-- declared shape (lua/keryx/_meta/core.lua): every declared function exists in the fake, and
-- every function of the fake is either declared or one of the fake's own test controls listed
-- below. A binding added to or removed from the C side shows up here once the meta file says
-- so; spec/integration/core_contract_spec.lua holds the real binary to the same file.
-- Also: the fake's config defaults equal the rows of src/config.c (read by config_defaults.lua).
local fake = require "fake_core"
local config_defaults = require "config_defaults"

local meta = require "core_meta"
local META = meta.PATH

-- What only the fake has: the scheduler and clock controls and the captures specs read
-- (see the header of spec/helpers/fake_core.lua). Keep this list short and explicit: a name
-- that is neither here nor in the meta file is drift.
local FAKE_ONLY = {
    reset = true, drain = true, run = true, abort_current = true, advance = true,
    ws_connect = true, ws_disconnect = true, ws_take = true, deliver = true,
}

-- Fields the fake gives another value on purpose: redis_null is a NULL light userdata in C,
-- which cjson.null equals; the fake leaves it nil and its callers compare with cjson.null.
local FIELD_EXEMPT = { redis_null = true }

local function sorted(set)
    local out = {}
    for k in pairs(set) do out[#out + 1] = k end
    table.sort(out)
    return out
end

describe("fake_core against lua/keryx/_meta/core.lua", function()
    local fns, fields = meta.declared()

    it("the meta file declares the module's functions and fields", function()
        assert.is_true(#sorted(fns) >= 30, "too few functions parsed from " .. META)
        assert.is_true(fields.config and fields.version and fields.mode and true or false)
    end)

    it("defines every declared function", function()
        local missing = {}
        for name in pairs(fns) do
            if type(fake[name]) ~= "function" then missing[#missing + 1] = name end
        end
        table.sort(missing)
        assert.are.same({}, missing, "declared in " .. META .. " but not a function in the fake")
    end)

    it("defines no function that is neither declared nor a listed test control", function()
        local extra = {}
        for name, v in pairs(fake) do
            if type(v) == "function" and not fns[name] and not FAKE_ONLY[name] then
                extra[#extra + 1] = name
            end
        end
        table.sort(extra)
        assert.are.same({}, extra, "functions of the fake that " .. META .. " does not declare")
    end)

    it("lists no test control that the meta file now declares", function()
        local both = {}
        for name in pairs(FAKE_ONLY) do
            if fns[name] or fields[name] then both[#both + 1] = name end
        end
        table.sort(both)
        assert.are.same({}, both)
    end)

    it("has every declared field, of a non-function type", function()
        local missing = {}
        for name in pairs(fields) do
            local v = fake[name]
            if not FIELD_EXEMPT[name] and (v == nil or type(v) == "function") then
                missing[#missing + 1] = name
            end
        end
        table.sort(missing)
        assert.are.same({}, missing)
    end)
end)

describe("fake_core config defaults against src/config.c", function()
    after_each(function() fake.reset() end)

    for _, node_env in ipairs({ "test", "production", "development" }) do
        it("are the descriptor rows' defaults for NODE_ENV=" .. node_env, function()
            fake.reset(node_env)
            assert.are.same({}, meta.diff(config_defaults(node_env), fake.config, "src/config.c", "fake"))
        end)
    end
end)
