/* lua_tool.c — developer commands in Lua without an app (see lua_tool.h). */
#include "lua_tool.h"
#include "common.h"
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>

static int print_result(lua_State *L)
{
    if (!lua_istable(L, -1)) {
        fprintf(stderr, "keryx: the command returned no result\n");
        return 1;
    }
    lua_getfield(L, -1, "out");
    if (lua_isstring(L, -1)) printf("%s\n", lua_tostring(L, -1));
    lua_getfield(L, -2, "err");
    if (lua_isstring(L, -1)) fprintf(stderr, "%s\n", lua_tostring(L, -1));
    lua_getfield(L, -3, "code");
    return lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : 1;
}

int kx_lua_run_tool(const char *home, const char *command, int argc, char **argv)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "keryx: cannot create the Lua VM\n");
        return 1;
    }
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua", home, home);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    int code = 1;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "keryx.scaffold");
    if (lua_pcall(L, 1, 1, 0) != 0) {
        fprintf(stderr, "keryx: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    lua_getfield(L, -1, "main");
    lua_pushstring(L, home);
    lua_pushstring(L, command);
    lua_createtable(L, argc, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    if (lua_pcall(L, 3, 1, 0) != 0) fprintf(stderr, "keryx: %s\n", lua_tostring(L, -1));
    else code = print_result(L);
    lua_close(L);
    return code;
}
