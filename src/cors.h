/* cors.h — CORS policy (security: never credentials with a "*" origin).
 *
 * Owns: the decision which Access-Control-* headers a response carries. Pure: no I/O.
 * Callers: response.c (every JSON response and preflight). Never: enforces anything
 * server-side — browsers do; keryx only refuses to grant.
 * Rules: allowedOrigins "*" → "Access-Control-Allow-Origin: *" and never
 * Access-Control-Allow-Credentials; a list → a matching Origin is echoed with
 * Access-Control-Allow-Credentials: true and Vary: Origin, any other Origin gets no grant.
 * Access-Control-Allow-Methods/-Headers are always sent.
 * The MCP route (README "Use your actions from an AI agent", "Browser clients") has its own
 * rule, never the web one, and it is the one allow-list of /mcp: keryx.mcp asks it too
 * (core.mcp_origin_allowed) before refusing a foreign Origin with 403. Only APPLICATION_URL's,
 * MCP_ALLOWED_ORIGINS, the entries named in WEB_SERVER_ALLOWED_ORIGINS — its "*" does not count)
 * get the grant, echoed without credentials (bearer tokens, not cookies); any other gets none. */
#ifndef KX_CORS_H
#define KX_CORS_H
#include "buf.h"
#include "config.h"
#include "mcp_guard.h"

/* True when origin (not NUL-terminated) is in the configured list, or the list is "*". */
bool kx_cors_origin_allowed(const kx_config_t *c, const char *origin, size_t len);
/* Appends the CORS header lines ("Name: value\r\n") for a request carrying `origin`
 * (NULL when absent). Sets *vary_origin when the answer depends on Origin. */
void kx_cors_append(const kx_config_t *c, const char *origin, size_t len, kx_buf_t *out, bool *vary_origin);

/* The MCP route's CORS rule, computed once at boot from the configuration. */
typedef struct {
    const char *route; /* MCP_SERVER_ROUTE, or NULL when MCP is off (then nothing is the route) */
    size_t route_len;
    char **origins; /* normalised (kx_mcp_origin_norm) allowed origins; [0] is APPLICATION_URL's */
    int n;
    kx_mcp_host_t app; /* APPLICATION_URL's host, with its port (the scheme's default if none) */
} kx_cors_mcp_t;

/* Builds m from c (after kx_config_finish and kx_config_bound_port: APPLICATION_URL final).
 * Entries are split at commas and spaces, each
 * taken up to its path, entries that are no origin (such as "*") skipped. m borrows c->mcp_route. */
void kx_cors_mcp_init(kx_cors_mcp_t *m, const kx_config_t *c);
void kx_cors_mcp_free(kx_cors_mcp_t *m);
/* True when path (raw, not NUL-terminated) is the MCP route and MCP is on. */
bool kx_cors_mcp_route(const kx_cors_mcp_t *m, const char *path, size_t len);
/* True when origin (not NUL-terminated; NULL when absent) is allowed by the MCP rule. */
bool kx_cors_mcp_allowed(const kx_cors_mcp_t *m, const char *origin, size_t len);
/* True when a Host header names this server as APPLICATION_URL does (DNS rebinding: a page of
 * an attacker's name resolving to us carries that name). A loopback APPLICATION_URL accepts
 * every loopback name on any port (local development, MCP clients on 127.0.0.1). */
bool kx_cors_mcp_host_allowed(const kx_cors_mcp_t *m, const char *host, size_t len);
/* Appends the MCP route's CORS header lines: for an allowed origin, Access-Control-Allow-Origin
 * with it, then the preflight's Allow-Methods/-Headers/Max-Age or a response's Expose-Headers;
 * nothing for any other origin. *vary_origin is always set: the answer depends on Origin. */
void kx_cors_mcp_append(const kx_cors_mcp_t *m, const char *origin, size_t len, bool preflight, kx_buf_t *out,
                        bool *vary_origin);

#endif
