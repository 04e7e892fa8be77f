/* lua_api_ratelimit.c — core.rate_limit(identifier, limit, window_ms, prefix): one atomic
 * sliding-window check in Redis (ratelimit.c); yields the request's coroutine meanwhile.
 *   allowed (bool), limit, remaining, reset_at (unix s), retry_after (s, 0 if allowed)
 *                                          five values, not a table: keryx.rate_limit builds
 *                                          the one table its caller gets
 *   nil, "closed" | "timeout" | "aborted"   Redis unreachable, too slow, or the action's own
 *                                          timeout fired meanwhile
 *   nil, "ERR …" / "OOM …"                 Redis answered with an error, or a malformed reply
 * Raises for programmer errors: outside a request, a non-integer limit/window, an identifier
 * or prefix that is empty, over 256 bytes, or holds CR, LF, NUL, '{' or '}'. */
#include "lua_api.h"
#include "ratelimit.h"
#include "redis_script.h"
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int push_result(lua_State *L, const kx_ratelimit_result_t *r)
{
    lua_pushboolean(L, r->allowed);
    lua_pushnumber(L, (lua_Number)r->limit);
    lua_pushnumber(L, (lua_Number)r->remaining);
    lua_pushnumber(L, (lua_Number)r->reset_at);
    lua_pushnumber(L, (lua_Number)r->retry_after);
    return 5;
}

static void cancel_op(void *op)
{
    kx_ratelimit_cancel(op);
}

static void wait_done(void *ud, const kx_ratelimit_result_t *res, const char *err)
{
    kx_task_t *t = kx_lua_wait_done(ud);
    kx_task_redis_end(t);
    lua_State *co = kx_task_thread(t);
    if (!res) {
        kx_task_wake(t, kx_lua_push_fail(co, err ? err : "closed"));
        return;
    }
    kx_task_wake(t, push_result(co, res));
}

static int64_t check_int(lua_State *L, int idx, const char *what, int64_t min, int64_t max)
{
    lua_Number v = luaL_checknumber(L, idx);
    if (v != floor(v) || v < (lua_Number)min || v > (lua_Number)max) {
        /* lua_pushfstring has no %lld */
        char msg[160];
        snprintf(msg, sizeof msg, "keryx.rate_limit: %s must be an integer in [%lld, %lld]", what,
                 (long long)min, (long long)max);
        luaL_error(L, "%s", msg);
    }
    return (int64_t)v;
}

/* ratelimit.c checks the identifier and the prefix (KX_EINVAL); the message says which. */
static int refuse_key(lua_State *L, const char *id, size_t idlen)
{
    if (!kx_ratelimit_valid_identifier(id, idlen))
        return luaL_error(L,
                          "keryx.rate_limit: identifier must be 1..%d bytes without CR, LF, NUL, '{' or '}'",
                          KX_RATELIMIT_MAX_IDENTIFIER);
    return luaL_error(L, "keryx.rate_limit: key prefix must be 1..%d bytes without CR, LF, NUL, '{' or '}'",
                      KX_RATELIMIT_MAX_PREFIX);
}

static int l_rate_limit(lua_State *L)
{
    size_t idlen, plen;
    const char *id = luaL_checklstring(L, 1, &idlen);
    int64_t limit = check_int(L, 2, "limit", 0, KX_RATELIMIT_MAX_LIMIT);
    int64_t window = check_int(L, 3, "window_ms", 1, KX_RATELIMIT_MAX_WINDOW_MS);
    const char *prefix = luaL_checklstring(L, 4, &plen);
    kx_task_t *t = kx_lua_require_task(L, "keryx.rate_limit");
    if (kx_task_aborted(t)) return kx_lua_push_fail(L, "aborted");
    double left = kx_task_redis_begin(t);
    if (left <= 0) return kx_lua_push_fail(L, "timeout");
    kx_lua_wait_t *w = kx_lua_wait_new(t, cancel_op);
    kx_ratelimit_op_t *op = NULL;
    int rc = kx_ratelimit_check_within(id, idlen, limit, window, prefix, plen, left, wait_done, w, &op);
    if (rc != KX_OK) {
        kx_task_redis_end(t);
        kx_lua_wait_abandon(w);
        if (rc == KX_EINVAL) return refuse_key(L, id, idlen); /* limit and window were checked above */
        return kx_lua_push_fail(L, "closed");
    }
    w->op = op;
    kx_lua_wait_park(w);
    return lua_yield(L, 0);
}

/* core.sha1_hex(text) → 40 lowercase hex digits: the SHA Redis caches a script under. */
static int l_sha1_hex(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char hex[41];
    kx_redis_sha1_hex(s, n, hex);
    lua_pushlstring(L, hex, 40);
    return 1;
}

static const luaL_Reg fns[] = {
    { "rate_limit", l_rate_limit },
    { "sha1_hex", l_sha1_hex },
    { NULL, NULL },
};

void kx_lua_open_ratelimit(lua_State *L)
{
    luaL_register(L, NULL, fns);
}
