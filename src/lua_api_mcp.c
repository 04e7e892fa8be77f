/* lua_api_mcp.c — the /mcp request checks Lua asks C for (see lua_api.h): each header parsed
 * by mcp_guard.c (origin, host, bearer, protocol version), and the Origin decision against the
 * one MCP allow-list (cors.c, built at boot: the CORS grant of /mcp uses it too). */
#include "lua_api.h"
#include "cors.h"
#include "mcp_guard.h"
#include <lauxlib.h>

/* core.mcp_origin(value) → "scheme://host[:port]" normalised | nil */
static int l_mcp_origin(lua_State *L)
{
    kx_lua_check_string(L, 1, "mcp_origin", "value");
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    char out[KX_MCP_ORIGIN_MAX + 1];
    if (kx_mcp_origin_norm(s, len, out, sizeof out) != KX_OK) return 0;
    lua_pushstring(L, out);
    return 1;
}

/* core.mcp_origin_allowed(value) → whether an Origin header may reach /mcp. The one allow-list
 * (src/cors.c, built at boot) serves both this refusal and the CORS grant. */
static int l_mcp_origin_allowed(lua_State *L)
{
    kx_lua_check_string(L, 1, "mcp_origin_allowed", "value");
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    lua_pushboolean(L, kx_cors_mcp_allowed(&kx_srv->mcp_cors, s, len));
    return 1;
}

/* core.mcp_host_allowed(value) → whether a Host header names this server (APPLICATION_URL). */
static int l_mcp_host_allowed(lua_State *L)
{
    kx_lua_check_string(L, 1, "mcp_host_allowed", "value");
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    lua_pushboolean(L, kx_cors_mcp_host_allowed(&kx_srv->mcp_cors, s, len));
    return 1;
}

/* core.mcp_host(value) → host, port | false, loopback | nil */
static int l_mcp_host(lua_State *L)
{
    kx_lua_check_string(L, 1, "mcp_host", "value");
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    kx_mcp_host_t h;
    if (kx_mcp_host_parse(s, len, &h) != KX_OK) return 0;
    lua_pushstring(L, h.host);
    if (h.port) lua_pushinteger(L, (lua_Integer)h.port);
    else lua_pushboolean(L, 0);
    lua_pushboolean(L, h.loopback);
    return 3;
}

/* core.mcp_bearer(authorization) → token | nil */
static int l_mcp_bearer(lua_State *L)
{
    kx_lua_check_string(L, 1, "mcp_bearer", "value");
    size_t len, off, tl;
    const char *s = lua_tolstring(L, 1, &len);
    if (kx_mcp_bearer(s, len, &off, &tl) != KX_OK) return 0;
    lua_pushlstring(L, s + off, tl);
    return 1;
}

/* core.mcp_version_ok(value) → boolean */
static int l_mcp_version_ok(lua_State *L)
{
    kx_lua_check_string(L, 1, "mcp_version_ok", "value");
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    lua_pushboolean(L, kx_mcp_version_supported(s, len));
    return 1;
}

static const luaL_Reg fns[] = {
    { "mcp_origin", l_mcp_origin },
    { "mcp_origin_allowed", l_mcp_origin_allowed },
    { "mcp_host", l_mcp_host },
    { "mcp_host_allowed", l_mcp_host_allowed },
    { "mcp_bearer", l_mcp_bearer },
    { "mcp_version_ok", l_mcp_version_ok },
    { NULL, NULL },
};

void kx_lua_open_mcp(lua_State *L)
{
    luaL_register(L, NULL, fns);
}
