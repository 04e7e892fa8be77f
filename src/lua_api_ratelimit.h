/* lua_api_ratelimit.h — core.rate_limit, the Lua face of ratelimit.c (SPEC §9.12).
 *
 * Owns: nothing beyond the binding. Callers: lua_bridge.c open_core (once, with the core table
 * on top of the stack). Never: decides limits or identities (keryx.rate_limit does). */
#ifndef KX_LUA_API_RATELIMIT_H
#define KX_LUA_API_RATELIMIT_H
#include <lua.h>

/* Adds core.rate_limit(identifier, limit, window_ms, prefix) to the table on top. */
void kx_lua_open_ratelimit(lua_State *L);

#endif
