/* lua_api_crypto.h — the Lua binding of crypto.h (ids and password hashing).
 *
 * Owns: nothing. Callers: lua_bridge.c (open_core), once, after kx_lua_open_redis.
 * Never: blocks the loop (hashing runs on crypto.c's worker pool). */
#ifndef KX_LUA_API_CRYPTO_H
#define KX_LUA_API_CRYPTO_H
#include <lua.h>

/* Adds to the table on top of the stack:
 *   core.random_id()                  → 43-char base64url id (raises if the CSPRNG fails)
 *   core.valid_id(s)                  → boolean (false for non-strings)
 *   core.hash_password(pw)            → "scrypt$…" | nil, "busy"|"aborted"|"invalid password"|"failed"
 *   core.verify_password(pw, stored)  → true | false | nil, "busy"|"aborted"
 * The last two yield the request's coroutine and raise outside a request task or when given
 * non-string arguments. */
void kx_lua_open_crypto(lua_State *L);

#endif
