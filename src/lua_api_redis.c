/* lua_api_redis.c — core.redis_call(cmd, ...) and core.redis_pipeline({{...}, ...}): both yield
 * the request's coroutine until Redis answers, so nothing blocks the loop.
 *   value            success (nil reply → core.redis_null, i.e. cjson.null; status → string)
 *   false, "ERR …"   a Redis error reply
 *   nil, "closed" | "timeout" | "aborted"   the connection failed, the command timed out, or
 *                    the action's own timeout fired meanwhile
 * pipeline returns one entry per command: the value, or {err = "…"} for an error reply.
 * redis_script(name, keys, args) runs lua/redis/<name>.lua through redis_script.h (EVALSHA,
 * EVAL once on NOSCRIPT) with the same results. redis_open(label) opens a connection of its
 * own; redis_conn_call(conn, block_s, …) / redis_conn_script(conn, name, keys, args) use it
 * (a task processor's blocking dequeue), redis_conn_up / redis_conn_close. */
#include "lua_api.h"
#include "redis.h"
#include "redis_script.h"
#include <lauxlib.h>
#include <stdio.h>
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

static void eval_cancel(void *op)
{
    kx_redis_eval_cancel(op);
}

static void single_done(void *ud, redisReply *reply, const char *err)
{
    kx_task_t *t = kx_lua_wait_done(ud);
    kx_task_redis_end(t);
    kx_task_wake(t, push_result(kx_task_thread(t), reply, err));
}

/* ---- named connections ----------------------------------------------------------------------
 * core.redis_open(label) → a connection of its own (a full userdata; closed by
 * core.redis_conn_close or when collected), for a task processor whose blocking dequeue must
 * never stall the shared command connection. */

#define CONN_MT "keryx.redis_conn"

typedef struct {
    kx_redis_conn_t *conn;
    char label[64]; /* kx_redis_conn_open keeps the pointer: it lives as long as the userdata */
} lconn_t;

static lconn_t *check_conn(lua_State *L, int idx)
{
    lconn_t *c = luaL_checkudata(L, idx, CONN_MT);
    if (!c->conn) luaL_error(L, "keryx.redis: the connection is closed");
    return c;
}

static int l_conn_gc(lua_State *L)
{
    lconn_t *c = luaL_checkudata(L, 1, CONN_MT);
    kx_redis_conn_close(c->conn); /* pending commands are answered "closed" first */
    c->conn = NULL;
    return 0;
}

static int l_redis_open(lua_State *L)
{
    size_t n;
    const char *label = luaL_checklstring(L, 1, &n);
    const kx_server_t *srv = kx_srv;
    lconn_t *c = lua_newuserdata(L, sizeof *c);
    memset(c, 0, sizeof *c);
    snprintf(c->label, sizeof c->label, "%s", label);
    luaL_getmetatable(L, CONN_MT);
    lua_setmetatable(L, -2);
    char err[512];
    if (kx_redis_conn_open(srv->loop, srv->cfg->redis_url, srv->cfg->redis_command_timeout_ms, c->label, NULL,
                           NULL, &c->conn, err, sizeof err) != KX_OK)
        return luaL_error(L, "keryx.redis: %s", err);
    return 1;
}

static int l_conn_up(lua_State *L)
{
    lconn_t *c = luaL_checkudata(L, 1, CONN_MT);
    lua_pushboolean(L, c->conn && kx_redis_conn_up(c->conn));
    return 1;
}

/* Sends argv on conn (NULL: the command connection) and parks t; the common tail of every
 * single-command binding. `wait` < 0: the task's Redis budget decides. */
static int send_single(lua_State *L, kx_task_t *t, kx_redis_conn_t *conn, double wait, int argc,
                       const char **argv, const size_t *lens)
{
    if (kx_task_aborted(t)) return kx_lua_push_fail(L, "aborted");
    double left = kx_task_redis_begin(t);
    if (left <= 0) return kx_lua_push_fail(L, "timeout");
    kx_lua_wait_t *w = kx_lua_wait_new(t, single_cancel);
    if (wait < 0) w->op = kx_redis_command_within(argc, argv, lens, left, single_done, w);
    else w->op = kx_redis_conn_command(conn, argc, argv, lens, wait, single_done, w);
    if (!w->op) {
        kx_task_redis_end(t);
        kx_lua_wait_abandon(w);
        return kx_lua_push_fail(L, "closed");
    }
    kx_lua_wait_park(w);
    return lua_yield(L, 0);
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
    return send_single(L, t, NULL, -1, argc, argv, lens);
}

/* core.redis_conn_call(conn, block_s, cmd, ...): a command on a named connection. block_s
 * (number ≥ 0, or nil) is how long the command itself may block in Redis (BLMOVE's timeout):
 * the reply is awaited that long plus REDIS_COMMAND_TIMEOUT_MS. */
static int l_conn_call(lua_State *L)
{
    lconn_t *c = check_conn(L, 1);
    double block = luaL_optnumber(L, 2, 0);
    int argc = lua_gettop(L) - 2;
    if (argc < 1) return luaL_error(L, "keryx.redis: a command is required");
    if (argc > MAX_ARGS) return luaL_error(L, "keryx.redis: too many arguments (max %d)", MAX_ARGS);
    if (!(block >= 0 && block <= 3600)) return luaL_error(L, "keryx.redis: block time out of range");
    kx_task_t *t = kx_lua_require_task(L, "keryx.redis");
    const char *argv[MAX_ARGS];
    size_t lens[MAX_ARGS];
    collect_args(L, 3, argc + 2, argv, lens);
    return send_single(L, t, c->conn, block + kx_redis_timeout(), argc, argv, lens);
}

/* ---- scripts: core.redis_script(name, keys, args) and core.redis_conn_script(conn, …) ------ */

/* Reads keys (table at ki) and args (table at ai, may be nil) into argv; returns the count. */
static int collect_script_args(lua_State *L, int ki, int ai, const char **argv, size_t *lens, int *nkeys)
{
    luaL_checktype(L, ki, LUA_TTABLE);
    if (!lua_isnoneornil(L, ai)) luaL_checktype(L, ai, LUA_TTABLE);
    int nk = (int)lua_objlen(L, ki), na = lua_isnoneornil(L, ai) ? 0 : (int)lua_objlen(L, ai);
    if (nk + na > MAX_ARGS)
        return luaL_error(L, "keryx.scripts: too many keys and arguments (max %d)", MAX_ARGS);
    int top = lua_gettop(L);
    for (int i = 1; i <= nk; i++) lua_rawgeti(L, ki, i);
    for (int i = 1; i <= na; i++) lua_rawgeti(L, ai, i);
    collect_args(L, top + 1, top + nk + na, argv, lens); /* the values stay on the stack meanwhile */
    *nkeys = nk;
    return nk + na;
}

static int send_script(lua_State *L, kx_redis_conn_t *conn, bool named, int ni, int ki)
{
    const char *name = luaL_checkstring(L, ni);
    const kx_redis_script_t *script = kx_redis_script_find(name);
    if (!script) return luaL_error(L, "keryx.scripts: no script lua/redis/%s.lua", name);
    kx_task_t *t = kx_lua_require_task(L, "keryx.scripts.run");
    const char *argv[MAX_ARGS];
    size_t lens[MAX_ARGS];
    int nkeys = 0;
    int argc = collect_script_args(L, ki, ki + 1, argv, lens, &nkeys);
    if (kx_task_aborted(t)) return kx_lua_push_fail(L, "aborted");
    double left = kx_task_redis_begin(t);
    if (left <= 0) return kx_lua_push_fail(L, "timeout");
    double wait = named ? kx_redis_timeout() : (left < kx_redis_timeout() ? left : kx_redis_timeout());
    kx_lua_wait_t *w = kx_lua_wait_new(t, eval_cancel);
    w->op = kx_redis_eval(conn, script, nkeys, argc, argv, lens, wait, single_done, w);
    if (!w->op) {
        kx_task_redis_end(t);
        kx_lua_wait_abandon(w);
        return kx_lua_push_fail(L, "closed");
    }
    kx_lua_wait_park(w);
    return lua_yield(L, 0);
}

static int l_redis_script(lua_State *L)
{
    return send_script(L, NULL, false, 1, 2);
}

static int l_conn_script(lua_State *L)
{
    lconn_t *c = check_conn(L, 1);
    return send_script(L, c->conn, true, 2, 3);
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
    { "redis_call", l_redis_call },         { "redis_pipeline", l_redis_pipeline },
    { "redis_ready", l_redis_ready },       { "redis_script", l_redis_script },
    { "redis_open", l_redis_open },         { "redis_conn_call", l_conn_call },
    { "redis_conn_script", l_conn_script }, { "redis_conn_up", l_conn_up },
    { "redis_conn_close", l_conn_gc },      { NULL, NULL },
};

void kx_lua_open_redis(lua_State *L)
{
    luaL_newmetatable(L, CONN_MT);
    lua_pushcfunction(L, l_conn_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_register(L, NULL, fns);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "redis_null");
}
