/* mcp_guard.h — the header checks of the MCP endpoint (README "Use your actions from an AI
 * agent"), as pure functions: Origin and Host parsing for DNS-rebinding protection, the bearer
 * token of an Authorization value (RFC 6750 §2.1) and the supported MCP-Protocol-Version.
 *
 * Owns: what a well-formed origin, Host and bearer look like, loopback names, the version list.
 * Callers: lua_api_mcp.c (core.mcp_origin / mcp_host / mcp_bearer / mcp_version_ok), cors.c
 * (kx_mcp_origin_norm, for the MCP route's CORS), tests, tests/fuzz/fuzz_mcp.c.
 * Never: allocates, does I/O, sees Lua, decides which origins are allowed (cors.c compares
 * normalised origins with the configured ones). */
#ifndef KX_MCP_GUARD_H
#define KX_MCP_GUARD_H
#include "common.h"

#define KX_MCP_ORIGIN_MAX 300 /* "https://" + a 255-byte host + ":65535" */
#define KX_MCP_HOST_MAX 255
#define KX_MCP_TOKEN_MAX 512 /* longer bearer values are refused before any lookup */

/* Writes the normalised form of an origin ("scheme://host[:port]") into out: scheme http or
 * https and host lower-cased, the scheme's default port dropped. The host is a name of
 * [A-Za-z0-9.-] or a bracketed IPv6 literal; the port 1..65535; nothing may follow (no path,
 * no userinfo, no trailing slash). KX_OK, or KX_EINVAL (malformed, "null", too long for cap). */
int kx_mcp_origin_norm(const char *in, size_t len, char *out, size_t cap);

typedef struct {
    char host[KX_MCP_HOST_MAX + 1]; /* lower-cased, NUL-terminated */
    unsigned port;                  /* 0 when the value names none */
    bool loopback;                  /* localhost, *.localhost, 127.x.y.z or [::1] */
} kx_mcp_host_t;

/* Parses a Host header value (host [":" port], RFC 9110 §7.2). KX_OK or KX_EINVAL. */
int kx_mcp_host_parse(const char *in, size_t len, kx_mcp_host_t *out);

/* True for localhost, a name under .localhost, a dotted 127.0.0.0/8 address or [::1]. */
bool kx_mcp_is_loopback(const char *host, size_t len);

/* The token of an Authorization value "Bearer <b64token>" (scheme in any case, then spaces,
 * then 1..KX_MCP_TOKEN_MAX of A-Z a-z 0-9 - . _ ~ + / followed by any '=', then optional
 * spaces): KX_OK with its offset and length, else KX_EINVAL. */
int kx_mcp_bearer(const char *v, size_t len, size_t *off, size_t *toklen);

/* True for the MCP protocol versions this server speaks: 2025-03-26, 2025-06-18, 2025-11-25. */
bool kx_mcp_version_supported(const char *s, size_t len);

#endif
