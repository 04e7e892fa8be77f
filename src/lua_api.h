/* lua_api.h — what the thin Lua bindings (lua_api_*.c) share with lua_bridge.c.
 *
 * Owns: nothing. Callers: lua_api_*.c. A binding that waits must: check it runs inside a
 * task (kx_lua_current_task() != NULL and its thread is the caller), start its operation,
 * and return lua_yield(L, 0); the completion pushes results on the task's thread and calls
 * kx_task_wake(task, nresults) — never lua_resume. */
#ifndef KX_LUA_API_H
#define KX_LUA_API_H
#include "http.h"
#include <lua.h>

typedef struct kx_task kx_task_t;

kx_task_t *kx_lua_current_task(void);
bool kx_task_aborted(const kx_task_t *t);
lua_State *kx_task_thread(kx_task_t *t);
void kx_task_wake(kx_task_t *t, int nargs);
/* While parked on an operation, `cancel(ud)` is how the action timeout abandons it; clear
 * with (NULL, NULL) when the operation completes, before waking the task. */
void kx_task_set_wait(kx_task_t *t, void (*cancel)(void *ud), void *ud);
/* The main Lua state (for values built outside a coroutine, e.g. pipeline results). */
lua_State *kx_lua_main(void);
/* Adds core.redis_call / core.redis_pipeline / core.redis_ready to the table on top. */
void kx_lua_open_redis(lua_State *L);

/* Adds the non-waiting utilities (log, clocks, process facts, config, fs listing) to the
 * table on top of the stack. */
void kx_lua_open_util(lua_State *L, kx_server_t *s);

#endif
