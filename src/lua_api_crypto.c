/* lua_api_crypto.c — core.random_id / valid_id / hash_password / verify_password (scrypt
 * off the loop, so a login never stalls other requests), and the OAuth checks of oauth.c
 * (oauth_redirect_check / pkce_s256_ok / oauth_hash). See lua_api.h for the Lua-visible
 * results.
 *
 * hash_password and verify_password park the task on a crypto.c job: the job's callback
 * (loop thread) pushes the results and wakes the task; the action timeout instead calls
 * job_cancel, after which crypto.c guarantees the callback never runs, so nothing here can
 * touch a task that has moved on. Password length is checked before posting so a bad one
 * answers at once, without a trip through the pool. */
#include "crypto.h"
#include "lua_api.h"
#include "oauth.h"
#include <lauxlib.h>

static bool password_in_range(size_t len)
{
    return len >= 1 && len <= KX_CRYPTO_PW_MAX;
}

/* The action timeout abandons the job; its callback will not run. */
static void job_cancel(void *ud)
{
    kx_crypto_cancel(ud);
}

/* ---- ids ----------------------------------------------------------------------------------- */

static int l_random_id(lua_State *L)
{
    char id[KX_CRYPTO_ID_LEN + 1];
    if (kx_crypto_random_id(id, sizeof id) != KX_OK)
        return luaL_error(L, "random_id: the system random generator failed");
    lua_pushlstring(L, id, KX_CRYPTO_ID_LEN);
    return 1;
}

static int l_valid_id(lua_State *L)
{
    size_t len = 0;
    const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
    lua_pushboolean(L, s && kx_crypto_valid_id(s, len));
    return 1;
}

/* ---- passwords ----------------------------------------------------------------------------- */

static void hash_done(void *ud, int status, const char *result)
{
    kx_task_t *t = ud;
    lua_State *co = kx_task_thread(t);
    kx_task_set_wait(t, NULL, NULL);
    if (status == KX_OK) {
        lua_pushstring(co, result);
        kx_task_wake(t, 1);
        return;
    }
    lua_pushnil(co);
    lua_pushstring(co, status == KX_EINVAL ? "invalid password" : "failed");
    kx_task_wake(t, 2);
}

static void verify_done(void *ud, int status, const char *result)
{
    kx_task_t *t = ud;
    kx_task_set_wait(t, NULL, NULL);
    lua_pushboolean(kx_task_thread(t), status == KX_OK && result[0] == '1');
    kx_task_wake(t, 1);
}

static int l_hash_password(lua_State *L)
{
    kx_lua_check_string(L, 1, "hash_password", "password");
    kx_task_t *t = kx_lua_require_task(L, "hash_password");
    size_t len;
    const char *pw = lua_tolstring(L, 1, &len);
    if (kx_task_aborted(t)) return kx_lua_push_fail(L, "aborted");
    if (!password_in_range(len)) return kx_lua_push_fail(L, "invalid password");
    kx_crypto_job_t *job = kx_crypto_hash(pw, len, hash_done, t);
    if (!job) return kx_lua_push_fail(L, "busy");
    kx_task_set_wait(t, job_cancel, job);
    return lua_yield(L, 0);
}

static int l_verify_password(lua_State *L)
{
    kx_lua_check_string(L, 1, "verify_password", "password");
    kx_lua_check_string(L, 2, "verify_password", "stored hash");
    kx_task_t *t = kx_lua_require_task(L, "verify_password");
    size_t len, slen;
    const char *pw = lua_tolstring(L, 1, &len);
    const char *stored = lua_tolstring(L, 2, &slen);
    if (kx_task_aborted(t)) return kx_lua_push_fail(L, "aborted");
    if (!password_in_range(len)) {
        /* No password of that length was ever hashed, so it cannot match. */
        lua_pushboolean(L, 0);
        return 1;
    }
    kx_crypto_job_t *job = kx_crypto_verify(pw, len, stored, slen, verify_done, t);
    if (!job) return kx_lua_push_fail(L, "busy");
    kx_task_set_wait(t, job_cancel, job);
    return lua_yield(L, 0);
}

/* ---- OAuth (the checks themselves live in oauth.c) ----------------------------------------- */

/* core.oauth_redirect_check(uri) → true | false, "<the rule it breaks>" */
static int l_oauth_redirect_check(lua_State *L)
{
    kx_lua_check_string(L, 1, "oauth_redirect_check", "uri");
    size_t len;
    const char *uri = lua_tolstring(L, 1, &len);
    char why[KX_OAUTH_ERR_CAP];
    if (kx_oauth_redirect_check(uri, len, why, sizeof why) == KX_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_pushstring(L, why);
    return 2;
}

/* core.pkce_s256_ok(verifier, challenge) → boolean */
static int l_pkce_s256_ok(lua_State *L)
{
    kx_lua_check_string(L, 1, "pkce_s256_ok", "verifier");
    kx_lua_check_string(L, 2, "pkce_s256_ok", "challenge");
    size_t vlen, clen;
    const char *v = lua_tolstring(L, 1, &vlen);
    const char *c = lua_tolstring(L, 2, &clen);
    lua_pushboolean(L, kx_oauth_pkce_s256_ok(v, vlen, c, clen));
    return 1;
}

/* core.oauth_hash(secret) → base64url(SHA-256(secret)): the only form a code or token is
 * stored under. */
static int l_oauth_hash(lua_State *L)
{
    kx_lua_check_string(L, 1, "oauth_hash", "secret");
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    char out[KX_OAUTH_HASH_LEN + 1];
    if (kx_oauth_hash(s, len, out, sizeof out) != KX_OK) return luaL_error(L, "oauth_hash: SHA-256 failed");
    lua_pushlstring(L, out, KX_OAUTH_HASH_LEN);
    return 1;
}

static const luaL_Reg fns[] = {
    { "oauth_redirect_check", l_oauth_redirect_check },
    { "pkce_s256_ok", l_pkce_s256_ok },
    { "oauth_hash", l_oauth_hash },
    { "random_id", l_random_id },
    { "valid_id", l_valid_id },
    { "hash_password", l_hash_password },
    { "verify_password", l_verify_password },
    { NULL, NULL },
};

void kx_lua_open_crypto(lua_State *L)
{
    luaL_register(L, NULL, fns);
}
