/* lua_tool.h — developer commands written in Lua that need no app, no Redis and no server:
 * `keryx new DIR` and `keryx generate action|channel NAME` (lua/keryx/scaffold.lua).
 *
 * Owns: a plain lua_State of its own, for one call. Callers: main.c. Never: boots the app or
 * the framework's pipeline, opens a socket. */
#ifndef KX_LUA_TOOL_H
#define KX_LUA_TOOL_H

/* Calls require("keryx.scaffold").main(home, command, {args…}) with home/lua on the module
 * path; prints what it returns ({code, out, err}) and returns the exit code. */
int kx_lua_run_tool(const char *home, const char *command, int argc, char **argv);

#endif
