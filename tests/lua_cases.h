/* lua_cases.h — runs a Lua comparison driver for a cmocka test of a C function Lua calls: a
 * fresh LuaJIT state with the standard libraries, package.preload["keryx.core"] returning a
 * table that `open` fills (the kx_lua_open_* of the file under test), then `driver`, which must
 * return a count, a second count and the mismatches as one string ("" when none). A driver
 * that raises, or any mismatch, fails the test with its message. Runs from the repository root
 * (drivers load lua/ and spec/unit/). Include after cmocka.h and lua_api.h. */
#ifndef KX_TEST_LUA_CASES_H
#define KX_TEST_LUA_CASES_H
#include <lauxlib.h>
#include <lualib.h>

static void (*lua_cases_open)(lua_State *L); /* the one the preload below calls */

static int lua_cases_core(lua_State *L)
{
    lua_newtable(L);
    lua_cases_open(L);
    return 1;
}

static void run_lua_cases(void (*open)(lua_State *L), const char *driver, long *first, long *second)
{
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    luaL_openlibs(L);
    lua_cases_open = open;
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, lua_cases_core);
    lua_setfield(L, -2, "keryx.core");
    lua_pop(L, 2);
    if (luaL_loadstring(L, driver) != 0 || lua_pcall(L, 0, 3, 0) != 0) fail_msg("%s", lua_tostring(L, -1));
    *first = (long)lua_tointeger(L, -3);
    *second = (long)lua_tointeger(L, -2);
    const char *mismatches = lua_tostring(L, -1);
    if (mismatches[0]) fail_msg("%s", mismatches);
    lua_close(L);
}

#endif
