/* lua_api_redis.c — core.redis_call(cmd, ...) and core.redis_pipeline({{...}, ...}): both yield
 * the request's coroutine until Redis answers, so nothing blocks the loop.
 *   value            success (nil reply → core.redis_null, i.e. cjson.null; status → string)
 *   false, "ERR …"   a Redis error reply
 *   nil, "closed" | "timeout" | "aborted"   the connection failed, the command timed out, or
 *                    the action's own timeout fired meanwhile
 * pipeline returns one entry per command: the value, or {err = "…"} for an error reply. */
#include "lua_api.h"
#include "redis.h"
#include <lauxlib.h>
#include <stdlib.h>

#define MAX_ARGS 1024
#define MAX_PIPELINE 1000

/* ---- reply conversion -------------------------------------------------------------------- */

static void push_value(lua_State *L, const redisReply *r, int depth)
{
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS: lua_pushlstring(L, r->str, r->len); break;
    case REDIS_REPLY_INTEGER: lua_pushnumber(L, (lua_Number)r->integer); break;
    case REDIS_REPLY_ARRAY:
        lua_createtable(L, (int)r->elements, 0);
        for (size_t i = 0; i < r->elements; i++) {
            if (depth > 32) lua_pushliteral(L, "(nested too deep)");
            else push_value(L, r->element[i], depth + 1);
            lua_rawseti(L, -2, (int)i + 1);
        }
        break;
    case REDIS_REPLY_ERROR:
        lua_createtable(L, 0, 1);
        lua_pushlstring(L, r->str, r->len);
        lua_setfield(L, -2, "err");
        break;
    default: /* REDIS_REPLY_NIL */ lua_pushlightuserdata(L, NULL); break;
    }
}

/* Pushes a command's result; returns how many values. */
static int push_result(lua_State *L, const redisReply *r, const char *err)
{
    if (!r) return kx_lua_push_fail(L, err ? err : "closed");
    if (r->type == REDIS_REPLY_ERROR) {
        lua_pushboolean(L, 0);
        lua_pushlstring(L, r->str, r->len);
        return 2;
    }
    push_value(L, r, 0);
    return 1;
}

/* ---- argument building ------------------------------------------------------------------- */

/* Reads the strings (or numbers) at stack indexes [from, to] of L into argv. */
static int collect_args(lua_State *L, int from, int to, const char **argv, size_t *lens)
{
    int n = 0;
    for (int i = from; i <= to; i++) {
        int t = lua_type(L, i);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            return luaL_error(L, "redis: argument %d must be a string or number, got %s", n + 1,
                              lua_typename(L, t));
        argv[n] = lua_tolstring(L, i, &lens[n]);
        n++;
    }
    return n;
}

/* ---- single command ---------------------------------------------------------------------- */

static void single_cancel(void *op)
{
    kx_redis_cancel(op);
}

static void single_done(void *ud, redisReply *reply, const char *err)
{
    kx_task_t *t = kx_lua_wait_done(ud);
    kx_task_redis_end(t);
    kx_task_wake(t, push_result(kx_task_thread(t), reply, err));
}

static int l_redis_call(lua_State *L)
{
    int argc = lua_gettop(L);
    if (argc < 1) return luaL_error(L, "keryx.redis.call: a command is required");
    if (argc > MAX_ARGS) return luaL_error(L, "keryx.redis.call: too many arguments (max %d)", MAX_ARGS);
    kx_task_t *t = kx_lua_require_task(L, "keryx.redis.call");
    const char *argv[MAX_ARGS];
    size_t lens[MAX_ARGS];
    collect_args(L, 1, argc, argv, lens);
    if (kx_task_aborted(t)) return kx_lua_push_fail(L, "aborted");
    double left = kx_task_redis_begin(t);
    if (left <= 0) return kx_lua_push_fail(L, "timeout");
    kx_lua_wait_t *w = kx_lua_wait_new(t, single_cancel);
    w->op = kx_redis_command_within(argc, argv, lens, left, single_done, w);
    if (!w->op) {
        kx_task_redis_end(t);
        kx_lua_wait_abandon(w);
        return kx_lua_push_fail(L, "closed");
    }
    kx_lua_wait_park(w);
    return lua_yield(L, 0);
}

/* ---- pipeline ---------------------------------------------------------------------------- */

typedef struct batch batch_t;
typedef struct {
    batch_t *batch;
    int index;
    kx_redis_op_t *op;
} item_t;

struct batch {
    kx_task_t *task;
    int n, remaining;
    int ref;             /* results table in the registry */
    const char *failure; /* "closed"/"timeout" once any command failed that way */
    item_t *items;
};

static void batch_free(batch_t *b)
{
    luaL_unref(kx_task_main(b->task), LUA_REGISTRYINDEX, b->ref);
    free(b->items);
    free(b);
}

static void batch_cancel(void *ud)
{
    batch_t *b = ud;
    for (int i = 0; i < b->n; i++)
        if (b->items[i].op) kx_redis_cancel(b->items[i].op);
    batch_free(b);
}

static void item_done(void *ud, redisReply *reply, const char *err)
{
    item_t *it = ud;
    batch_t *b = it->batch;
    lua_State *L = kx_task_main(b->task);
    it->op = NULL;
    if (!reply) {
        b->failure = err ? err : "closed";
    } else {
        lua_rawgeti(L, LUA_REGISTRYINDEX, b->ref);
        push_value(L, reply, 0);
        lua_rawseti(L, -2, it->index + 1);
        lua_pop(L, 1);
    }
    if (--b->remaining > 0) return;
    kx_task_t *t = b->task;
    lua_State *co = kx_task_thread(t);
    int n;
    if (b->failure) {
        n = kx_lua_push_fail(co, b->failure);
    } else {
        lua_rawgeti(co, LUA_REGISTRYINDEX, b->ref);
        n = 1;
    }
    kx_task_set_wait(t, NULL, NULL);
    kx_task_redis_end(t);
    batch_free(b);
    kx_task_wake(t, n);
}

static int l_redis_pipeline(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = (int)lua_objlen(L, 1);
    if (n > MAX_PIPELINE)
        return luaL_error(L, "keryx.redis.pipeline: too many commands (max %d)", MAX_PIPELINE);
    kx_task_t *t = kx_lua_require_task(L, "keryx.redis.pipeline");
    if (n == 0) {
        lua_newtable(L);
        return 1;
    }
    /* Every entry is checked before anything is sent: a bad one raises with nothing half done. */
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        int argc = lua_istable(L, -1) ? (int)lua_objlen(L, -1) : 0;
        if (argc < 1)
            return luaL_error(L,
                              "keryx.redis.pipeline: entry %d must be a non-empty list like {\"GET\", key}",
                              i);
        if (argc > MAX_ARGS) return luaL_error(L, "keryx.redis.pipeline: entry %d has too many arguments", i);
        for (int a = 1; a <= argc; a++) {
            lua_rawgeti(L, -1, a);
            int type = lua_type(L, -1);
            lua_pop(L, 1);
            if (type != LUA_TSTRING && type != LUA_TNUMBER)
                return luaL_error(L, "keryx.redis.pipeline: entry %d argument %d must be a string or number",
                                  i, a);
        }
        lua_pop(L, 1);
    }
    if (kx_task_aborted(t)) return kx_lua_push_fail(L, "aborted");
    if (!kx_redis_ready()) return kx_lua_push_fail(L, "closed");
    double left = kx_task_redis_begin(t);
    if (left <= 0) return kx_lua_push_fail(L, "timeout");
    batch_t *b = kx_xcalloc(1, sizeof *b);
    b->task = t;
    b->n = b->remaining = n;
    b->items = kx_xcalloc((size_t)n, sizeof *b->items);
    lua_State *M = kx_task_main(t);
    lua_createtable(M, n, 0);
    b->ref = luaL_ref(M, LUA_REGISTRYINDEX);
    const char *argv[MAX_ARGS];
    size_t lens[MAX_ARGS];
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 1, i + 1);
        int top = lua_gettop(L);
        int argc = (int)lua_objlen(L, top);
        if (argc > MAX_ARGS)
            return luaL_error(L, "keryx.redis.pipeline: entry %d has too many arguments", i + 1);
        for (int a = 1; a <= argc; a++) lua_rawgeti(L, top, a);
        collect_args(L, top + 1, top + argc, argv, lens);
        b->items[i].batch = b;
        b->items[i].index = i;
        b->items[i].op = kx_redis_command_within(argc, argv, lens, left, item_done, &b->items[i]);
        lua_settop(L, top - 1);
        if (!b->items[i].op) {
            /* The connection dropped mid-way: the sent ones still answer; count the rest. */
            b->failure = "closed";
            b->remaining -= n - i;
            if (b->remaining == 0) {
                kx_task_redis_end(t);
                batch_free(b);
                return kx_lua_push_fail(L, "closed");
            }
            break;
        }
    }
    kx_task_set_wait(t, batch_cancel, b);
    return lua_yield(L, 0);
}

static int l_redis_ready(lua_State *L)
{
    lua_pushboolean(L, kx_redis_ready());
    return 1;
}

static const luaL_Reg fns[] = {
    { "redis_call", l_redis_call },
    { "redis_pipeline", l_redis_pipeline },
    { "redis_ready", l_redis_ready },
    { NULL, NULL },
};

void kx_lua_open_redis(lua_State *L)
{
    luaL_register(L, NULL, fns);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "redis_null");
}
