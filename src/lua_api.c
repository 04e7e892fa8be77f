/* lua_api.c — the helpers every Lua binding shares (see lua_api.h).
 *
 * Owns: kx_lua_wait_t records between park and completion/cancel. Callers: lua_api_*.c.
 * Never: resumes a task (completions wake it through the ready queue). */
#include "lua_api.h"
#include "lua_alloc.h"
#include <lauxlib.h>
#include <stdlib.h>

kx_task_t *kx_lua_require_task(lua_State *L, const char *fn)
{
    kx_task_t *t = kx_lua_current_task();
    /* Only the task's own coroutine may yield it: a coroutine the action made itself would
     * yield to the action, not to the scheduler. */
    if (!t || kx_task_thread(t) != L) luaL_error(L, "%s called outside a request", fn);
    return t;
}

int kx_lua_push_fail(lua_State *L, const char *why)
{
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
}

/* Every Redis wait of a request makes one; ended waits are kept for the next rather than going
 * back to malloc. */
static kx_spare_t spare_waits = { .size = sizeof(kx_lua_wait_t), .cap = 256 };

static void wait_free(kx_lua_wait_t *w)
{
    kx_spare_put(&spare_waits, w);
}

kx_lua_wait_t *kx_lua_wait_new(kx_task_t *t, void (*cancel_op)(void *op))
{
    kx_lua_wait_t *w = kx_spare_get(&spare_waits);
    w->task = t;
    w->cancel_op = cancel_op;
    return w;
}

static void wait_cancel(void *ud)
{
    kx_lua_wait_t *w = ud;
    w->cancel_op(w->op);
    wait_free(w);
}

void kx_lua_wait_park(kx_lua_wait_t *w)
{
    kx_task_set_wait(w->task, wait_cancel, w);
}

kx_task_t *kx_lua_wait_done(kx_lua_wait_t *w)
{
    kx_task_t *t = w->task;
    wait_free(w);
    kx_task_set_wait(t, NULL, NULL);
    return t;
}

void kx_lua_wait_abandon(kx_lua_wait_t *w)
{
    wait_free(w);
}

void kx_lua_waits_free(void)
{
    kx_spare_clear(&spare_waits);
}

void kx_lua_check_string(lua_State *L, int idx, const char *fn, const char *what)
{
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "%s: %s must be a string, got %s", fn, what, luaL_typename(L, idx));
}

int kx_lua_push_valid(lua_State *L, bool (*valid)(const char *s, size_t n))
{
    size_t n = 0;
    const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &n) : NULL;
    lua_pushboolean(L, s && valid(s, n));
    return 1;
}
