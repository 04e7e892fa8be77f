/* lua_api_http.c — what a web task may read of its HTTP request, lazily, from C:
 *   core.req_header(name) → the value of the first header called `name` (any case), or nil
 *
 * Owns: nothing. Callers: keryx.conn (conn:header). Never: yields, or reads a request the
 * task no longer answers: outside a web task (CLI, WebSocket events), once the client closed,
 * or once the connection moved on to its next request, every read is nil. */
#include "lua_api.h"
#include <lauxlib.h>

static int l_req_header(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    kx_conn_t *c = kx_task_web_conn(kx_lua_current_task());
    const kx_header_t *h = c ? kx_http_header(c->req, name) : NULL;
    if (!h) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, h->value, h->value_len);
    return 1;
}

static const luaL_Reg fns[] = {
    { "req_header", l_req_header },
    { NULL, NULL },
};

void kx_lua_open_http(lua_State *L)
{
    luaL_register(L, NULL, fns);
}
