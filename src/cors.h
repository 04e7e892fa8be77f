/* cors.h — CORS policy (security: never credentials with a "*" origin).
 *
 * Owns: the decision which Access-Control-* headers a response carries. Pure: no I/O.
 * Callers: response.c (every JSON response and preflight). Never: enforces anything
 * server-side — browsers do; keryx only refuses to grant.
 * Rules: allowedOrigins "*" → "Access-Control-Allow-Origin: *" and never
 * Access-Control-Allow-Credentials; a list → a matching Origin is echoed with
 * Access-Control-Allow-Credentials: true and Vary: Origin, any other Origin gets no grant.
 * Access-Control-Allow-Methods/-Headers are always sent. */
#ifndef KX_CORS_H
#define KX_CORS_H
#include "buf.h"
#include "config.h"

/* True when origin (not NUL-terminated) is in the configured list, or the list is "*". */
bool kx_cors_origin_allowed(const kx_config_t *c, const char *origin, size_t len);
/* Appends the CORS header lines ("Name: value\r\n") for a request carrying `origin`
 * (NULL when absent). Sets *vary_origin when the answer depends on Origin. */
void kx_cors_append(const kx_config_t *c, const char *origin, size_t len, kx_buf_t *out, bool *vary_origin);

#endif
