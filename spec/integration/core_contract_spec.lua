-- The real binary's `keryx.core` against what the rest of the repository assumes about it:
--   1. its keys are exactly the functions and fields declared in lua/keryx/_meta/core.lua
--      (spec/unit/fake_core_contract_spec.lua holds the unit tests' fake to the same file);
--   2. the configuration defaults it shows Lua (core.config, with no config.lua and no
--      settings in the environment) equal the copy in spec/helpers/fake_core.lua, for
--      NODE_ENV test, production and development — so the fake cannot drift from
--      src/config.c descs[] unnoticed.
-- Both read the binary through the fixture actions in spec/fixtures/app/actions/core_contract.lua.
local H = require "server"
local cjson = require "cjson"
local fake = require "fake_core"

local meta = require "core_meta"

local function sh(cmd)
    local p = assert(io.popen(cmd))
    local out = p:read("*l")
    p:close()
    return out
end

--- Starts keryx on the fixture app from an empty directory (so no ./config.lua is read) with
--- only the settings the harness needs in the environment.
local function start_bare(node_env, dir)
    return H.start {
        app = H.ROOT .. "/spec/fixtures/app",
        cwd = dir,
        env = { NODE_ENV = node_env, LOG_COLORIZE = false, LOG_LEVEL = false },
    }
end

-- Settings the harness must set to run the binary at all (a free port on 127.0.0.1, the
-- private redis-server); applicationUrl derives from host and port. Their defaults are
-- checked in tests/test_config.c; here the fake's values are put in their place.
local HARNESS = {
    { "server", "web", "port" }, { "server", "web", "host" }, { "server", "web", "applicationUrl" },
    { "redis", "connectionString" },
}

local function get_path(t, path)
    for _, k in ipairs(path) do t = t[k] end
    return t
end

local function set_path(t, path, v)
    for i = 1, #path - 1 do t = t[path[i]] end
    t[path[#path]] = v
end

describe("the real keryx.core", function()
    local dir

    setup(function()
        dir = sh("mktemp -d")
    end)

    teardown(function()
        if dir then os.execute("rm -rf " .. H.sh_quote(dir)) end
    end)

    it("exposes exactly the names declared in lua/keryx/_meta/core.lua", function()
        H.with_server({ app = "spec/fixtures/app", config = "spec/fixtures/config.lua" }, function(srv)
            local res = H.get(srv, "/api/core/keys")
            assert.are.equal(200, res.status)
            local body = cjson.decode(res.body)
            local fns, fields = meta.declared()
            local names = {}
            for n in pairs(fns) do names[#names + 1] = n end
            for n in pairs(fields) do names[#names + 1] = n end
            table.sort(names)
            assert.are.same(names, body.names)
            for _, name in ipairs(names) do
                assert.are.equal(fns[name] == true, body.types[name] == "function", name .. " is a " .. body.types[name])
            end
        end)
    end)

    for _, node_env in ipairs({ "test", "production", "development" }) do
        it("shows Lua the same NODE_ENV=" .. node_env .. " defaults as spec/helpers/fake_core.lua", function()
            local srv = start_bare(node_env, dir)
            local ok, err = pcall(function()
                local res = H.get(srv, "/api/core/config")
                assert.are.equal(200, res.status)
                local real = cjson.decode(res.body).config
                fake.reset(node_env)
                local expected = fake.config
                for _, path in ipairs(HARNESS) do set_path(real, path, get_path(expected, path)) end
                assert.are.same({}, meta.diff(real, expected, "binary", "fake"))
            end)
            srv:stop()
            fake.reset()
            if not ok then error(err, 0) end
        end)
    end
end)
