/* lua_api_ws.h — the Lua binding of ws.h and pubsub.h (see lua_api_ws.c for the functions).
 * Callers: lua_bridge.c (open_core). */
#ifndef KX_LUA_API_WS_H
#define KX_LUA_API_WS_H
#include <lua.h>

void kx_lua_open_ws(lua_State *L);

#endif
