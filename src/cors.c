/* cors.c — CORS header decision (see cors.h). */
#include "cors.h"
#include <stdlib.h>

bool kx_cors_origin_allowed(const kx_config_t *c, const char *origin, size_t len)
{
    if (c->origins_any) return true;
    for (int i = 0; i < c->n_origins; i++)
        if (strlen(c->origins[i]) == len && memcmp(c->origins[i], origin, len) == 0) return true;
    return false;
}

void kx_cors_append(const kx_config_t *c, const char *origin, size_t len, kx_buf_t *out, bool *vary_origin)
{
    *vary_origin = false;
    if (c->origins_any) {
        kx_buf_puts(out, "Access-Control-Allow-Origin: *\r\n");
    } else if (origin && kx_cors_origin_allowed(c, origin, len)) {
        kx_buf_puts(out, "Access-Control-Allow-Origin: ");
        kx_buf_append(out, origin, len);
        kx_buf_puts(out, "\r\nAccess-Control-Allow-Credentials: true\r\n");
        *vary_origin = true;
    } else if (c->n_origins > 0) {
        /* The answer still depends on Origin: caches must not reuse it across origins. */
        *vary_origin = true;
    }
    kx_buf_puts(out, "Access-Control-Allow-Methods: ");
    kx_buf_puts(out, c->allowed_methods);
    kx_buf_puts(out, "\r\nAccess-Control-Allow-Headers: ");
    kx_buf_puts(out, c->allowed_headers);
    kx_buf_puts(out, "\r\n");
}

/* ---- the MCP route --------------------------------------------------------------------- */

/* What the MCP client sends (the MCP transport page: Mcp-Session-Id, MCP-Protocol-Version,
 * Last-Event-ID on a resumed stream; the bearer in Authorization) and what it must read. */
#define MCP_METHODS "GET, POST, DELETE, OPTIONS"
#define MCP_HEADERS "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID"
#define MCP_EXPOSE "Mcp-Session-Id, WWW-Authenticate"
#define MCP_MAX_AGE "600"

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\f' || ch == '\v';
}

static bool has_origin(const kx_cors_mcp_t *m, const char *o)
{
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->origins[i], o) == 0) return true;
    return false;
}

/* Adds the origin of a URL (scheme "://" up to its path, query, fragment), as the config
 * origin_of takes it; a URL without a valid origin adds nothing. */
static bool add_url(kx_cors_mcp_t *m, const char *s, size_t len)
{
    const char *sep = memmem(s, len, "://", 3);
    if (!sep) return false;
    size_t end = (size_t)(sep - s) + 3;
    while (end < len && s[end] != '/' && s[end] != '?' && s[end] != '#' && !is_space(s[end])) end++;
    char o[KX_MCP_ORIGIN_MAX + 1];
    if (kx_mcp_origin_norm(s, end, o, sizeof o) != KX_OK) return false;
    if (has_origin(m, o)) return true;
    m->origins = kx_xrealloc(m->origins, (size_t)(m->n + 1) * sizeof *m->origins);
    m->origins[m->n++] = kx_xstrdup(o);
    return true;
}

/* A list "a, b c": entries separated by commas and spaces (as keryx.mcp lists them). */
static void add_list(kx_cors_mcp_t *m, const char *s)
{
    if (!s) return;
    for (const char *p = s; *p;) {
        while (*p && (*p == ',' || is_space(*p))) p++;
        const char *e = p;
        while (*e && *e != ',' && !is_space(*e)) e++;
        if (e > p) add_url(m, p, (size_t)(e - p));
        p = e;
    }
}

/* origins[0] ("scheme://host[:port]", normalised) → m->app, the port defaulted by scheme. */
static void set_app_host(kx_cors_mcp_t *m)
{
    const char *o = m->origins[0];
    const char *h = strstr(o, "://") + 3;
    if (kx_mcp_host_parse(h, strlen(h), &m->app) != KX_OK) return;
    if (!m->app.port) m->app.port = strncmp(o, "https:", 6) == 0 ? 443 : 80;
}

void kx_cors_mcp_init(kx_cors_mcp_t *m, const kx_config_t *c)
{
    memset(m, 0, sizeof *m);
    if (!c->mcp_enabled) return;
    m->route = c->mcp_route;
    m->route_len = strlen(c->mcp_route);
    const char *app = c->application_url ? c->application_url : "";
    while (is_space(*app)) app++;
    /* APPLICATION_URL naming no origin: the loopback default (keryx.mcp's host check agrees). */
    if (!add_url(m, app, strlen(app))) add_url(m, "http://localhost", 16);
    set_app_host(m);
    add_list(m, c->mcp_allowed_origins);
    add_list(m, c->allowed_origins);
}

void kx_cors_mcp_free(kx_cors_mcp_t *m)
{
    for (int i = 0; i < m->n; i++) free(m->origins[i]);
    free(m->origins);
    memset(m, 0, sizeof *m);
}

bool kx_cors_mcp_route(const kx_cors_mcp_t *m, const char *path, size_t len)
{
    return m->route && path && len == m->route_len && memcmp(path, m->route, len) == 0;
}

bool kx_cors_mcp_allowed(const kx_cors_mcp_t *m, const char *origin, size_t len)
{
    char o[KX_MCP_ORIGIN_MAX + 1];
    if (!origin || kx_mcp_origin_norm(origin, len, o, sizeof o) != KX_OK) return false;
    return has_origin(m, o);
}

bool kx_cors_mcp_host_allowed(const kx_cors_mcp_t *m, const char *host, size_t len)
{
    kx_mcp_host_t h;
    if (!m->n || !host || !m->app.host[0] || kx_mcp_host_parse(host, len, &h) != KX_OK) return false;
    if (m->app.loopback) return h.loopback;
    return strcmp(h.host, m->app.host) == 0 && (!h.port || h.port == m->app.port);
}

void kx_cors_mcp_append(const kx_cors_mcp_t *m, const char *origin, size_t len, bool preflight, kx_buf_t *out,
                        bool *vary_origin)
{
    *vary_origin = true;
    if (!kx_cors_mcp_allowed(m, origin, len)) return;
    /* Echoed as sent (it normalised to an allowed origin): the browser compares it byte for byte. */
    kx_buf_puts(out, "Access-Control-Allow-Origin: ");
    kx_buf_append(out, origin, len);
    kx_buf_puts(out, "\r\n");
    if (preflight)
        kx_buf_puts(out, "Access-Control-Allow-Methods: " MCP_METHODS
                         "\r\nAccess-Control-Allow-Headers: " MCP_HEADERS
                         "\r\nAccess-Control-Max-Age: " MCP_MAX_AGE "\r\n");
    else kx_buf_puts(out, "Access-Control-Expose-Headers: " MCP_EXPOSE "\r\n");
}
