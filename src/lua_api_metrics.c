/* lua_api_metrics.c — what the Lua side counts (metrics.h): one action run through the
 * pipeline (any transport), and background tasks enqueued or executed. Neither waits; both do
 * nothing when metrics are off (OTEL_METRICS_ENABLED=false). */
#include "lua_api.h"
#include "metrics.h"
#include <lauxlib.h>

/* core.metrics_action(name, ok, ms) */
static int l_metrics_action(lua_State *L)
{
    kx_lua_check_string(L, 1, "metrics_action", "name");
    size_t n;
    const char *name = lua_tolstring(L, 1, &n);
    bool ok = lua_toboolean(L, 2);
    double ms = luaL_checknumber(L, 3);
    kx_metrics_action(name, n, ok, ms / 1000.0);
    return 0;
}

/* core.metrics_task(kind, action, ok): kind "enqueued" | "executed"; ok counts an execution
 * as success or failure. */
static int l_metrics_task(lua_State *L)
{
    kx_lua_check_string(L, 1, "metrics_task", "kind");
    kx_lua_check_string(L, 2, "metrics_task", "action");
    const char *kind = lua_tostring(L, 1);
    kx_metric_task_t k;
    if (strcmp(kind, "enqueued") == 0) k = KX_TASK_ENQUEUED;
    else if (strcmp(kind, "executed") == 0) k = KX_TASK_EXECUTED;
    else return luaL_error(L, "metrics_task: kind must be \"enqueued\" or \"executed\", got \"%s\"", kind);
    size_t n;
    const char *action = lua_tolstring(L, 2, &n);
    kx_metrics_task(k, action, n, lua_toboolean(L, 3));
    return 0;
}

static const luaL_Reg fns[] = {
    { "metrics_action", l_metrics_action },
    { "metrics_task", l_metrics_task },
    { NULL, NULL },
};

void kx_lua_open_metrics(lua_State *L)
{
    luaL_register(L, NULL, fns);
}
