/* test_json_encode.c — core.json_encode (src/lua_api_json.c) against lua/keryx/json.lua's Lua
 * encoder, byte for byte, in a real LuaJIT state with the real lua-cjson: every fixed case and
 * 20000 generated values of spec/unit/json_cases.lua (strings of every byte, numbers of every
 * kind, marked and sparse arrays, keys lua-cjson wraps, the depth limit on both sides, cycles,
 * failures, a value past the buffer C keeps between calls). Runs from the repository root. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "lua_api.h"
#include <lauxlib.h>
#include <lualib.h>

/* package.preload["keryx.core"]: a table holding only what lua_api_json.c registers. */
static int open_core(lua_State *L)
{
    lua_newtable(L);
    kx_lua_open_json(L);
    return 1;
}

static const char driver[] = "package.path = 'lua/?.lua;spec/unit/?.lua;' .. package.path\n"
                             "local json = require 'keryx.json'\n"
                             "local core = require 'keryx.core'\n"
                             "local r = require('json_cases').compare(json, core.json_encode, 20000)\n"
                             "return r.checked, r.by_c, table.concat(r.mismatches, '\\n')\n";

static void test_same_bytes_as_lua(void **state)
{
    (void)state;
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, open_core);
    lua_setfield(L, -2, "keryx.core");
    lua_pop(L, 2);
    if (luaL_loadstring(L, driver) != 0 || lua_pcall(L, 0, 3, 0) != 0) fail_msg("%s", lua_tostring(L, -1));
    long checked = (long)lua_tointeger(L, -3), by_c = (long)lua_tointeger(L, -2);
    const char *mismatches = lua_tostring(L, -1);
    if (mismatches[0]) fail_msg("%s", mismatches);
    /* every case was compared, and C answered most of them (not the Lua fallback) */
    assert_true(checked > 20000);
    assert_true(by_c > checked / 2);
    print_message("%ld values compared, %ld encoded by C\n", checked, by_c);
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_same_bytes_as_lua) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
