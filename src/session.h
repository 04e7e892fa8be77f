/* session.h — the session cookie, in C because its flags are security-critical (security:
 * session fixation, cookie flags).
 *
 * Owns: reading the session id from a request's Cookie header(s) (only well-formed ids: 43
 * chars of unpadded base64url, i.e. 256 bits — anything else is ignored as if absent) and
 * writing the Set-Cookie line with the configured flags. Callers: lua_bridge.c (the id of a
 * request → Lua; the session operation of a web answer → Set-Cookie, so the cookie itself
 * never crosses into Lua). Never: touches Redis (lua/keryx/session.lua loads and stores
 * records) or decides login state. */
#ifndef KX_SESSION_H
#define KX_SESSION_H
#include "buf.h"
#include "config.h"
#include "http.h"

#define KX_SESSION_ID_LEN 43

/* True when s is a well-formed session id. */
bool kx_session_id_valid(const char *s, size_t len);
/* Copies the value of cookie `name` into out (KX_SESSION_ID_LEN + 1 bytes) when it appears
 * exactly once across the Cookie headers and is well-formed; otherwise false. */
bool kx_session_from_request(const kx_request_t *r, const char *name, char *out);
/* Appends "Set-Cookie: <name>=<id>; Max-Age=<ttl>; Path=/; HttpOnly; SameSite=…[; Secure]\r\n";
 * id NULL expires the cookie (empty value, Max-Age=0). */
void kx_session_set_cookie(const kx_config_t *cfg, const char *id, kx_buf_t *out);

#endif
