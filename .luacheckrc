-- luacheck settings (Debian 12: lua-check). `make lint` runs `luacheck lua app spec bench`.
-- Everything runs on LuaJIT; the specs run under busted; the scripts in lua/redis/ run inside
-- Redis, whose Lua 5.1 sandbox provides `redis`, `KEYS`, `ARGV` and its own libraries.
std = "luajit"
-- The code is wrapped at 120 columns (.editorconfig).
max_line_length = 120

stds.redis_script = {
    read_globals = {
        "redis", "KEYS", "ARGV",
        -- Libraries Redis loads into its scripting sandbox.
        "cjson", "cmsgpack", "bit", "struct",
    },
}

files["lua/redis/*.lua"] = { std = "lua51+redis_script" }
-- A spec line often holds the exact bytes expected on the wire (a JSON body, a header block)
-- or an it() sentence; it is clearer whole than wrapped, so specs have no line limit. Code
-- under lua/, app/ and spec/helpers/ keeps the 120-column limit.
files["spec/**/*_spec.lua"] = { std = "+busted", max_line_length = false }
files["spec/helpers/*.lua"] = { std = "+busted" }

-- LuaCATS declarations: empty function bodies whose parameters only document a signature.
files["lua/keryx/_meta/*.lua"] = { unused_args = false }

-- Third-party packages the benchmarks and the MCP client specs install (npm) are not ours to lint.
exclude_files = { "bench/node_modules/**", "spec/mcp/node_modules/**" }
