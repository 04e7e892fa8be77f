/* prodcheck.c — the production self-check (see prodcheck.h). */
#include "prodcheck.h"
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

typedef struct {
    kx_prodcheck_item_t *items;
    int n;
} report_t;

static void add(report_t *r, const char *var, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void add(report_t *r, const char *var, const char *fmt, ...)
{
    if (r->n >= KX_PRODCHECK_MAX) return;
    kx_prodcheck_item_t *it = &r->items[r->n++];
    it->var = var;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->line, sizeof it->line, fmt, ap);
    va_end(ap);
}

static bool empty(const char *s)
{
    return !s || !*s;
}

static bool is_https(const char *url)
{
    return url && strncasecmp(url, "https://", 8) == 0;
}

/* TLS in process, or a TLS proxy in front that APPLICATION_URL names. A derived
 * APPLICATION_URL (unset: built from host and port) is always http. */
static bool served_over_https(const kx_config_t *c)
{
    return !empty(c->tls_cert) || (!c->application_url_derived && is_https(c->application_url));
}

static void check_guide(const kx_config_t *c, report_t *r)
{
    /* session.c makes the cookie Secure when configured so or when APPLICATION_URL is https;
     * with TLS in process it is Secure too. */
    if (!c->session_cookie_secure && !served_over_https(c))
        add(r, "SESSION_COOKIE_SECURE",
            "SESSION_COOKIE_SECURE is false: the session cookie may travel over plain HTTP "
            "(set SESSION_COOKIE_SECURE=true)");
    if (c->origins_any)
        add(r, "WEB_SERVER_ALLOWED_ORIGINS",
            "WEB_SERVER_ALLOWED_ORIGINS is \"*\": any site may call the API and open WebSockets "
            "(list your origins, e.g. WEB_SERVER_ALLOWED_ORIGINS=https://yourapp.com)");
    if (!c->rate_limit_enabled)
        add(r, "RATE_LIMIT_ENABLED",
            "RATE_LIMIT_ENABLED is false: no request is rate limited "
            "(set RATE_LIMIT_ENABLED=true)");
    if (c->include_stack_in_errors)
        add(r, "WEB_SERVER_INCLUDE_STACK_IN_ERRORS",
            "WEB_SERVER_INCLUDE_STACK_IN_ERRORS is true: error responses carry stack traces "
            "(set WEB_SERVER_INCLUDE_STACK_IN_ERRORS=false)");
    const struct {
        const char *var, *header, *value;
    } hdrs[] = {
        { "WEB_SECURITY_CSP", "Content-Security-Policy", c->sec_csp },
        { "WEB_SECURITY_CONTENT_TYPE_OPTIONS", "X-Content-Type-Options", c->sec_content_type_options },
        { "WEB_SECURITY_FRAME_OPTIONS", "X-Frame-Options", c->sec_frame_options },
        { "WEB_SECURITY_HSTS", "Strict-Transport-Security", c->sec_hsts },
        { "WEB_SECURITY_REFERRER_POLICY", "Referrer-Policy", c->sec_referrer_policy },
    };
    for (size_t i = 0; i < KX_ARRAY_LEN(hdrs); i++) {
        if (!empty(hdrs[i].value)) continue;
        add(r, hdrs[i].var, "%s is empty: responses carry no %s header (unset it for the default)",
            hdrs[i].var, hdrs[i].header);
    }
}

/* One entry of MCP_ALLOWED_ORIGINS (split as cors.c splits it: commas and spaces). */
static bool mcp_entry_safe(const char *s, size_t n)
{
    if (n < 9 || strncasecmp(s, "https://", 8) != 0) return false;
    for (size_t i = 8; i < n; i++)
        if (s[i] == '*') return false;
    return true;
}

static void check_mcp(const kx_config_t *c, report_t *r)
{
    if (!c->mcp_enabled || empty(c->mcp_allowed_origins)) return;
    for (const char *p = c->mcp_allowed_origins; *p;) {
        while (*p == ',' || isspace((unsigned char)*p)) p++;
        const char *e = p;
        while (*e && *e != ',' && !isspace((unsigned char)*e)) e++;
        if (e > p && !mcp_entry_safe(p, (size_t)(e - p))) {
            add(r, "MCP_ALLOWED_ORIGINS",
                "MCP_ALLOWED_ORIGINS lists \"%.*s\": with MCP on, list only https:// origins that may "
                "call %s from a browser",
                (int)(e - p > 100 ? 100 : e - p), p, c->mcp_route ? c->mcp_route : "/mcp");
            return;
        }
        p = e;
    }
}

int kx_prodcheck(const kx_config_t *c, kx_prodcheck_item_t items[KX_PRODCHECK_MAX])
{
    report_t r = { items, 0 };
    check_guide(c, &r);
    if (!served_over_https(c))
        add(&r, "APPLICATION_URL",
            "neither APPLICATION_URL nor WEB_SERVER_TLS_CERT says the server is reached over HTTPS: "
            "set WEB_SERVER_TLS_CERT and WEB_SERVER_TLS_KEY, or APPLICATION_URL=https://… for a TLS proxy "
            "in front");
    check_mcp(c, &r);
    return r.n;
}
