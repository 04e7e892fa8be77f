/* config.c — defaults, parsing and validation of settings (see config.h). */
#include "config.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define OFF(f) offsetof(kx_config_t, f)

/* The one place each setting is described: its config.lua key, environment variable, type,
 * field, minimum (ints) and default. A default is the string form kx_config_set parses (the
 * same path as an environment value), so a default can never mean something a user could not
 * write; NULL leaves the field unset (NULL string). DEF_BY_ENV adds the NODE_ENV rule: the
 * value for NODE_ENV=production and for NODE_ENV=test (exact lowercase names; NULL = def).
 * One row per line, however long: the table is read across, not down. */
/* clang-format off */
#define DEF(def) def, NULL, NULL
#define DEF_BY_ENV(def, def_production, def_test) def, def_production, def_test

#define CSP_DEFAULT                                                                             \
    "default-src 'self'; script-src 'self' https://cdn.jsdelivr.net; "                          \
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "                               \
    "font-src 'self' https://cdn.jsdelivr.net data:; img-src 'self' data: blob:; "              \
    "connect-src 'self'; worker-src blob:"

static const kx_config_desc_t descs[] = {
    { "process.name", "PROCESS_NAME", KX_CT_STRING, OFF(process_name), 0, DEF("server") },
    { "process.shutdownTimeout", "PROCESS_SHUTDOWN_TIMEOUT", KX_CT_INT, OFF(shutdown_timeout_ms), 0, DEF("30000") },
    { "logger.level", "LOG_LEVEL", KX_CT_LOGLEVEL, OFF(log_level), 0, DEF("info") },
    { "logger.includeTimestamps", "LOG_INCLUDE_TIMESTAMPS", KX_CT_BOOL, OFF(log_timestamps), 0, DEF("true") },
    { "logger.colorize", "LOG_COLORIZE", KX_CT_BOOL, OFF(log_colorize), 0, DEF("true") },
    { "logger.json", "LOG_JSON", KX_CT_BOOL, OFF(log_json), 0, DEF("false") },
    { "logger.format", "LOG_FORMAT", KX_CT_LOGFORMAT, OFF(log_json), 0, DEF("text") },
    { "logger.maxParamLength", "LOG_MAX_PARAM_LENGTH", KX_CT_INT, OFF(log_max_param_length), 0, DEF("100") },
    { "actions.timeout", "ACTION_TIMEOUT", KX_CT_INT, OFF(action_timeout_ms), 0, DEF("300000") },
    { "lua.memoryLimitMb", "LUA_MEMORY_LIMIT_MB", KX_CT_INT, OFF(lua_memory_limit_mb), 16, DEF("512") },
    { "redis.connectionString", "REDIS_URL", KX_CT_STRING, OFF(redis_url), 0, DEF("redis://127.0.0.1:6379/0") },
    { "redis.commandTimeoutMs", "REDIS_COMMAND_TIMEOUT_MS", KX_CT_INT, OFF(redis_command_timeout_ms), 1, DEF("2000") },
    { "session.ttl", "SESSION_TTL", KX_CT_INT, OFF(session_ttl), 1, DEF("86400") },
    { "session.cookieName", "SESSION_COOKIE_NAME", KX_CT_STRING, OFF(session_cookie_name), 0, DEF("__session") },
    { "session.cookieHttpOnly", "SESSION_COOKIE_HTTP_ONLY", KX_CT_BOOL, OFF(session_cookie_http_only), 0, DEF("true") },
    { "session.cookieSecure", "SESSION_COOKIE_SECURE", KX_CT_BOOL, OFF(session_cookie_secure), 0, DEF("false") },
    { "session.cookieSameSite", "SESSION_COOKIE_SAME_SITE", KX_CT_SAMESITE, OFF(session_cookie_same_site), 0, DEF("Strict") },
    { "rateLimit.enabled", "RATE_LIMIT_ENABLED", KX_CT_BOOL, OFF(rate_limit_enabled), 0, DEF_BY_ENV("true", NULL, "false") },
    { "rateLimit.windowMs", "RATE_LIMIT_WINDOW_MS", KX_CT_INT, OFF(rate_limit_window_ms), 1, DEF("60000") },
    { "rateLimit.unauthenticatedLimit", "RATE_LIMIT_UNAUTH_LIMIT", KX_CT_INT, OFF(rate_limit_unauth_limit), 1, DEF("20") },
    { "rateLimit.authenticatedLimit", "RATE_LIMIT_AUTH_LIMIT", KX_CT_INT, OFF(rate_limit_auth_limit), 1, DEF("200") },
    { "rateLimit.keyPrefix", "RATE_LIMIT_KEY_PREFIX", KX_CT_STRING, OFF(rate_limit_key_prefix), 0, DEF("ratelimit") },
    { "rateLimit.oauthRegisterLimit", "RATE_LIMIT_OAUTH_REGISTER_LIMIT", KX_CT_INT, OFF(rate_limit_oauth_register_limit), 1, DEF("5") },
    { "rateLimit.oauthRegisterWindowMs", "RATE_LIMIT_OAUTH_REGISTER_WINDOW_MS", KX_CT_INT, OFF(rate_limit_oauth_register_window_ms), 1, DEF("3600000") },
    { "rateLimit.failOpen", "RATE_LIMIT_FAIL_OPEN", KX_CT_BOOL, OFF(rate_limit_fail_open), 0, DEF_BY_ENV("true", "false", NULL) },
    { "server.web.enabled", "WEB_SERVER_ENABLED", KX_CT_BOOL, OFF(web_enabled), 0, DEF("true") },
    { "server.web.port", "WEB_SERVER_PORT", KX_CT_INT, OFF(web_port), 0, DEF("8080") },
    { "server.web.host", "WEB_SERVER_HOST", KX_CT_STRING, OFF(web_host), 0, DEF("localhost") },
    { "server.web.applicationUrl", "APPLICATION_URL", KX_CT_STRING, OFF(application_url), 0, DEF(NULL) },
    { "server.web.apiRoute", "WEB_SERVER_API_ROUTE", KX_CT_STRING, OFF(api_route), 0, DEF("/api") },
    { "server.web.allowedOrigins", "WEB_SERVER_ALLOWED_ORIGINS", KX_CT_STRING, OFF(allowed_origins), 0, DEF("*") },
    { "server.web.allowedMethods", "WEB_SERVER_ALLOWED_METHODS", KX_CT_STRING, OFF(allowed_methods), 0, DEF("HEAD, GET, POST, PUT, PATCH, DELETE, OPTIONS") },
    { "server.web.allowedHeaders", "WEB_SERVER_ALLOWED_HEADERS", KX_CT_STRING, OFF(allowed_headers), 0, DEF("Content-Type") },
    { "server.web.staticFiles.enabled", "WEB_SERVER_STATIC_ENABLED", KX_CT_BOOL, OFF(static_enabled), 0, DEF("true") },
    { "server.web.staticFiles.directory", "WEB_SERVER_STATIC_DIRECTORY", KX_CT_STRING, OFF(static_directory), 0, DEF("assets") },
    { "server.web.staticFiles.route", "WEB_SERVER_STATIC_ROUTE", KX_CT_STRING, OFF(static_route), 0, DEF("/") },
    { "server.web.staticFiles.cacheControl", "WEB_SERVER_STATIC_CACHE_CONTROL", KX_CT_STRING, OFF(static_cache_control), 0, DEF("public, max-age=3600") },
    { "server.web.staticFiles.etag", "WEB_SERVER_STATIC_ETAG", KX_CT_BOOL, OFF(static_etag), 0, DEF("true") },
    { "server.web.includeStackInErrors", "WEB_SERVER_INCLUDE_STACK_IN_ERRORS", KX_CT_BOOL, OFF(include_stack_in_errors), 0, DEF_BY_ENV("true", "false", NULL) },
    { "server.web.securityHeaders.csp", "WEB_SECURITY_CSP", KX_CT_STRING, OFF(sec_csp), 0, DEF(CSP_DEFAULT) },
    { "server.web.securityHeaders.contentTypeOptions", "WEB_SECURITY_CONTENT_TYPE_OPTIONS", KX_CT_STRING, OFF(sec_content_type_options), 0, DEF("nosniff") },
    { "server.web.securityHeaders.frameOptions", "WEB_SECURITY_FRAME_OPTIONS", KX_CT_STRING, OFF(sec_frame_options), 0, DEF("DENY") },
    { "server.web.securityHeaders.hsts", "WEB_SECURITY_HSTS", KX_CT_STRING, OFF(sec_hsts), 0, DEF("max-age=31536000; includeSubDomains") },
    { "server.web.securityHeaders.referrerPolicy", "WEB_SECURITY_REFERRER_POLICY", KX_CT_STRING, OFF(sec_referrer_policy), 0, DEF("strict-origin-when-cross-origin") },
    { "server.web.maxBodySize", "WEB_MAX_BODY_SIZE", KX_CT_INT, OFF(max_body_size), 0, DEF("10485760") },
    { "server.web.compression.enabled", "WEB_COMPRESSION_ENABLED", KX_CT_BOOL, OFF(compression_enabled), 0, DEF("true") },
    { "server.web.compression.threshold", "WEB_COMPRESSION_THRESHOLD", KX_CT_INT, OFF(compression_threshold), 0, DEF("1024") },
    { "server.web.correlationId.header", "WEB_CORRELATION_ID_HEADER", KX_CT_STRING, OFF(correlation_header), 0, DEF("X-Request-Id") },
    { "server.web.correlationId.trustProxy", "WEB_CORRELATION_ID_TRUST_PROXY", KX_CT_BOOL, OFF(correlation_trust_proxy), 0, DEF("false") },
    { "server.web.headerTimeoutMs", "WEB_SERVER_HEADER_TIMEOUT_MS", KX_CT_INT, OFF(header_timeout_ms), 1, DEF("10000") },
    { "server.web.keepaliveTimeoutMs", "WEB_SERVER_KEEPALIVE_TIMEOUT_MS", KX_CT_INT, OFF(keepalive_timeout_ms), 1, DEF("15000") },
    { "server.web.bodyTimeoutMs", "WEB_SERVER_BODY_TIMEOUT_MS", KX_CT_INT, OFF(body_timeout_ms), 1, DEF("30000") },
    { "server.web.maxConnections", "WEB_SERVER_MAX_CONNECTIONS", KX_CT_INT, OFF(max_connections), 1, DEF("10000") },
    { "server.web.maxConnectionsPerIp", "WEB_SERVER_MAX_CONNECTIONS_PER_IP", KX_CT_INT, OFF(max_connections_per_ip), 0, DEF("0") },
    { "server.web.tlsCert", "WEB_SERVER_TLS_CERT", KX_CT_STRING, OFF(tls_cert), 0, DEF(NULL) },
    { "server.web.tlsKey", "WEB_SERVER_TLS_KEY", KX_CT_STRING, OFF(tls_key), 0, DEF(NULL) },
    { "server.web.workers", "WEB_SERVER_WORKERS", KX_CT_WORKERS, OFF(workers), 0, DEF("1") },
    { "server.mcp.enabled", "MCP_SERVER_ENABLED", KX_CT_BOOL, OFF(mcp_enabled), 0, DEF("false") },
    { "server.mcp.route", "MCP_SERVER_ROUTE", KX_CT_STRING, OFF(mcp_route), 0, DEF("/mcp") },
    { "server.mcp.oauthTrustProxy", "MCP_OAUTH_TRUST_PROXY", KX_CT_BOOL, OFF(mcp_oauth_trust_proxy), 0, DEF("false") },
    { "server.mcp.oauthCodeTtl", "MCP_OAUTH_CODE_TTL", KX_CT_INT, OFF(mcp_oauth_code_ttl), 1, DEF("300") },
    { "server.mcp.oauthRefreshTtl", "MCP_OAUTH_REFRESH_TTL", KX_CT_INT, OFF(mcp_oauth_refresh_ttl), 1, DEF("2592000") },
    { "server.mcp.oauthClientTtl", "MCP_OAUTH_CLIENT_TTL", KX_CT_INT, OFF(mcp_oauth_client_ttl), 1, DEF("2592000") },
    { "server.mcp.allowedOrigins", "MCP_ALLOWED_ORIGINS", KX_CT_STRING, OFF(mcp_allowed_origins), 0, DEF("") },
    { "server.web.websocket.maxPayloadSize", "WS_MAX_PAYLOAD_SIZE", KX_CT_INT, OFF(ws_max_payload_size), 1, DEF("65536") },
    { "server.web.websocket.maxMessagesPerSecond", "WS_MAX_MESSAGES_PER_SECOND", KX_CT_INT, OFF(ws_max_messages_per_second), 1, DEF("20") },
    { "server.web.websocket.maxSubscriptions", "WS_MAX_SUBSCRIPTIONS", KX_CT_INT, OFF(ws_max_subscriptions), 1, DEF("100") },
    { "server.web.websocket.drainTimeout", "WS_DRAIN_TIMEOUT", KX_CT_INT, OFF(ws_drain_timeout_ms), 0, DEF("5000") },
    { "server.web.websocket.pingIntervalMs", "WS_PING_INTERVAL_MS", KX_CT_INT, OFF(ws_ping_interval_ms), 1, DEF("30000") },
    { "server.web.websocket.idleTimeoutMs", "WS_IDLE_TIMEOUT_MS", KX_CT_INT, OFF(ws_idle_timeout_ms), 1, DEF("120000") },
    { "channels.presenceTTL", "PRESENCE_TTL", KX_CT_INT, OFF(presence_ttl_s), 1, DEF("90") },
    { "channels.presenceHeartbeatInterval", "PRESENCE_HEARTBEAT_INTERVAL", KX_CT_INT, OFF(presence_heartbeat_s), 1, DEF("30") },
    { "tasks.enabled", "TASKS_ENABLED", KX_CT_BOOL, OFF(tasks_enabled), 0, DEF_BY_ENV("true", NULL, "false") },
    { "tasks.processors", "TASK_PROCESSORS", KX_CT_INT, OFF(task_processors), 0, DEF("1") },
    { "tasks.queues", "TASK_QUEUES", KX_CT_STRING, OFF(task_queues), 0, DEF("*") },
    { "cli.includeStackInErrors", "CLI_INCLUDE_STACK_IN_ERRORS", KX_CT_BOOL, OFF(cli_include_stack_in_errors), 0, DEF("true") },
    { "cli.quiet", "CLI_QUIET", KX_CT_BOOL, OFF(cli_quiet), 0, DEF("false") },
    { "process.strictProduction", "KERYX_STRICT_PRODUCTION", KX_CT_BOOL, OFF(strict_production), 0, DEF("false") },
    { "observability.enabled", "OTEL_METRICS_ENABLED", KX_CT_BOOL, OFF(metrics_enabled), 0, DEF("false") },
    { "observability.metricsRoute", "OTEL_METRICS_ROUTE", KX_CT_STRING, OFF(metrics_route), 0, DEF("/metrics") },
    { "observability.metricsAuthUsername", "OTEL_METRICS_AUTH_USERNAME", KX_CT_STRING, OFF(metrics_user), 0, DEF("") },
    { "observability.metricsAuthPassword", "OTEL_METRICS_AUTH_PASSWORD", KX_CT_STRING, OFF(metrics_password), 0, DEF("") },
    { NULL, NULL, KX_CT_STRING, 0, 0, NULL, NULL, NULL },
};
/* clang-format on */

const kx_config_desc_t *kx_config_descs(void)
{
    return descs;
}

#define FIELD(c, d, T) ((T *)((char *)(c) + (d)->offset))

static void set_str(char **slot, const char *v)
{
    free(*slot);
    *slot = v ? kx_xstrdup(v) : NULL;
}

const char *kx_config_default(const kx_config_desc_t *d, const char *node_env)
{
    if (node_env && strcmp(node_env, "production") == 0 && d->def_production) return d->def_production;
    if (node_env && strcmp(node_env, "test") == 0 && d->def_test) return d->def_test;
    return d->def;
}

void kx_config_defaults(kx_config_t *c, const char *node_env)
{
    memset(c, 0, sizeof *c);
    if (!node_env || !*node_env) node_env = "development";
    set_str(&c->node_env, node_env);
    for (const kx_config_desc_t *d = descs; d->key; d++) {
        const char *v = kx_config_default(d, node_env);
        char err[256];
        /* A default that does not parse is a bug in the table above (tests/test_config.c
         * parses every row's defaults): stop rather than run with a half-built config. */
        if (v && kx_config_set(c, d, v, d->key, err, sizeof err) != KX_OK) {
            fprintf(stderr, "keryx: built-in default: %s\n", err);
            abort();
        }
    }
}

int kx_config_parse_bool(const char *s, bool *out)
{
    static const char *yes[] = { "true", "1", "yes" }, *no[] = { "false", "0", "no" };
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return KX_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return KX_OK;
        }
    }
    return KX_EINVAL;
}

int kx_config_parse_int(const char *s, int64_t *out)
{
    if (!*s || isspace((unsigned char)*s)) return KX_EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return KX_EINVAL;
    *out = v;
    return KX_OK;
}

/* scheme://host[:port]: no path, no trailing slash, no userinfo, no whitespace. */
static bool valid_origin(const char *s, size_t n)
{
    const char *sep = memmem(s, n, "://", 3);
    if (!sep || sep == s) return false;
    for (const char *p = s; p < sep; p++)
        if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-' && *p != '.') return false;
    const char *host = sep + 3, *end = s + n;
    if (host == end) return false;
    const char *colon = NULL;
    for (const char *p = host; p < end; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '/' || ch == '@' || ch == '?' || ch == '#' || ch == '*' || ch <= ' ' || ch >= 0x7f)
            return false;
        if (ch == ':' && *host != '[') colon = p;
        if (ch == ']') colon = NULL;
    }
    if (colon == host) return false; /* empty host */
    if (colon) {
        if (colon + 1 == end || end - colon - 1 > 5) return false;
        long port = 0;
        for (const char *p = colon + 1; p < end; p++) {
            if (!isdigit((unsigned char)*p)) return false;
            port = port * 10 + (*p - '0');
        }
        if (port < 1 || port > 65535) return false;
    }
    return true;
}

/* One pass over the list; writes entries only when out != NULL. */
static int origins_pass(const char *s, char **out, int max, int *n, bool *any)
{
    int count = 0;
    bool star = false;
    for (const char *p = s;;) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        const char *a = p;
        while (a < e && isspace((unsigned char)*a)) a++;
        const char *b = e;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        size_t len = (size_t)(b - a);
        /* cppcheck-suppress knownConditionTrueFalse ; false positive: len is any entry's length */
        if (len == 1 && *a == '*') {
            star = true;
        } else {
            /* cppcheck-suppress knownConditionTrueFalse ; false positive, as above */
            if (len == 0 || !valid_origin(a, len) || count >= max) return KX_EINVAL;
            if (out) out[count] = kx_xstrndup(a, len);
        }
        count++;
        if (!comma) break;
        p = comma + 1;
    }
    if (star && count != 1) return KX_EINVAL;
    *any = star;
    *n = star ? 0 : count;
    return KX_OK;
}

int kx_config_parse_origins(const char *s, char **out, int max, int *n, bool *any)
{
    *n = 0;
    *any = false;
    /* Validate first, so a refused list never touches the caller's slots. */
    int vn;
    bool vany;
    if (origins_pass(s, NULL, max, &vn, &vany) != KX_OK) return KX_EINVAL;
    return origins_pass(s, out, max, n, any);
}

static int parse_samesite(const char *s, kx_samesite_t *out)
{
    if (strcasecmp(s, "strict") == 0) *out = KX_SAMESITE_STRICT;
    else if (strcasecmp(s, "lax") == 0) *out = KX_SAMESITE_LAX;
    else if (strcasecmp(s, "none") == 0) *out = KX_SAMESITE_NONE;
    else return KX_EINVAL;
    return KX_OK;
}

int kx_config_set(kx_config_t *c, const kx_config_desc_t *d, const char *value, const char *source, char *err,
                  size_t errcap)
{
    int rc = KX_OK;
    const char *expect = "";
    char minbuf[48]; /* outlives the switch: `expect` may point here */
    switch (d->type) {
    case KX_CT_STRING: set_str(FIELD(c, d, char *), value); return KX_OK;
    case KX_CT_INT: {
        int64_t v;
        expect = "a whole number";
        rc = kx_config_parse_int(value, &v);
        if (rc == KX_OK && v < d->min) rc = KX_EINVAL;
        if (rc == KX_OK) *FIELD(c, d, int64_t) = v;
        if (d->min > 0) {
            snprintf(minbuf, sizeof minbuf, "a whole number >= %lld", (long long)d->min);
            expect = minbuf;
        }
        break;
    }
    case KX_CT_BOOL:
        expect = "true/false/1/0/yes/no";
        rc = kx_config_parse_bool(value, FIELD(c, d, bool));
        break;
    case KX_CT_LOGLEVEL:
        expect = "trace, debug, info, warn, error or fatal";
        rc = kx_log_level_parse(value, FIELD(c, d, kx_log_level_t));
        break;
    case KX_CT_LOGFORMAT: /* the same field as LOG_JSON (kept as an alias) */
        expect = "text or json";
        if (strcasecmp(value, "json") == 0) *FIELD(c, d, bool) = true;
        else if (strcasecmp(value, "text") == 0) *FIELD(c, d, bool) = false;
        else rc = KX_EINVAL;
        break;
    case KX_CT_SAMESITE:
        expect = "Strict, Lax or None";
        rc = parse_samesite(value, FIELD(c, d, kx_samesite_t));
        break;
    case KX_CT_WORKERS:
        expect = "a whole number >= 1 or auto";
        if (strcasecmp(value, "auto") == 0) {
            *FIELD(c, d, int64_t) = 0;
        } else {
            int64_t v;
            rc = kx_config_parse_int(value, &v);
            if (rc == KX_OK && v < 1) rc = KX_EINVAL;
            if (rc == KX_OK) *FIELD(c, d, int64_t) = v;
        }
        break;
    }
    if (rc != KX_OK)
        snprintf(err, errcap, "invalid value for %s: \"%s\" (expected %s)", source, value, expect);
    return rc;
}

int kx_config_apply_env(kx_config_t *c, char *err, size_t errcap)
{
    char upper_env[64] = "";
    size_t i = 0;
    for (; i < sizeof upper_env - 1 && c->node_env[i]; i++)
        upper_env[i] = (char)toupper((unsigned char)c->node_env[i]);
    upper_env[i] = '\0';
    for (const kx_config_desc_t *d = descs; d->key; d++) {
        char name[160];
        snprintf(name, sizeof name, "%s_%s", d->env, upper_env);
        const char *v = getenv(name);
        const char *src = name;
        if (!v || !*v) {
            v = getenv(d->env);
            src = d->env;
        }
        if (!v) continue;
        if (kx_config_set(c, d, v, src, err, errcap) != KX_OK) return KX_EINVAL;
    }
    return KX_OK;
}

/* An unknown NODE_ENV would silently run as development (stacks in answers, rate limiting
 * failing open): a typo such as "prod" must stop start-up instead. */
static int check_node_env(const kx_config_t *c, char *err, size_t errcap)
{
    static const char *known[] = { "development", "production", "test" };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(c->node_env, known[i]) == 0) return KX_OK;
    snprintf(err, errcap, "invalid value for NODE_ENV: \"%.100s\" (expected development, production or test)",
             c->node_env);
    return KX_EINVAL;
}

static bool has_control_bytes(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; p && *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) return true;
    return false;
}

/* Settings written into every response's headers: a CR or LF would inject a header (or a
 * body) into each answer. */
static int check_header_values(const kx_config_t *c, char *err, size_t errcap)
{
    const struct {
        const char *env;
        const char *v;
    } vals[] = {
        { "WEB_SECURITY_CSP", c->sec_csp },
        { "WEB_SECURITY_CONTENT_TYPE_OPTIONS", c->sec_content_type_options },
        { "WEB_SECURITY_FRAME_OPTIONS", c->sec_frame_options },
        { "WEB_SECURITY_HSTS", c->sec_hsts },
        { "WEB_SECURITY_REFERRER_POLICY", c->sec_referrer_policy },
        { "PROCESS_NAME", c->process_name },
        { "WEB_SERVER_ALLOWED_METHODS", c->allowed_methods },
        { "WEB_SERVER_ALLOWED_HEADERS", c->allowed_headers },
        { "WEB_SERVER_STATIC_CACHE_CONTROL", c->static_cache_control },
    };
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        if (!has_control_bytes(vals[i].v)) continue;
        snprintf(err, errcap,
                 "invalid value for %s: control characters (CR, LF, …) are not allowed in a header value",
                 vals[i].env);
        return KX_EINVAL;
    }
    return KX_OK;
}

/* RFC 9110 token (a header name; RFC 6265 uses the same grammar for a cookie name). */
static bool is_token(const char *s)
{
    if (!s || !*s) return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+-.^_`|~", *p)) return false;
    return true;
}

static int check_tokens(const kx_config_t *c, char *err, size_t errcap)
{
    if (!is_token(c->session_cookie_name)) {
        snprintf(err, errcap,
                 "invalid value for SESSION_COOKIE_NAME: \"%.100s\" (expected a cookie name: letters, "
                 "digits and !#$%%&'*+-.^_`|~, not empty)",
                 c->session_cookie_name ? c->session_cookie_name : "");
        return KX_EINVAL;
    }
    /* Empty disables the correlation id; anything else names a header. */
    if (c->correlation_header && *c->correlation_header && !is_token(c->correlation_header)) {
        snprintf(err, errcap,
                 "invalid value for WEB_CORRELATION_ID_HEADER: \"%.100s\" (expected a header name)",
                 c->correlation_header);
        return KX_EINVAL;
    }
    return KX_OK;
}

bool kx_config_queue_name_valid(const char *s, size_t n)
{
    if (n == 0 || n > KX_MAX_QUEUE_NAME) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.' && s[i] != ':')
            return false; /* explicit: strchr would accept the NUL that ends its set */
    return true;
}

/* TASK_QUEUES: "*" or names separated by commas (spaces around them allowed). */
static int check_tasks(const kx_config_t *c, char *err, size_t errcap)
{
    if (c->task_processors > KX_MAX_TASK_PROCESSORS) {
        snprintf(err, errcap, "invalid value for TASK_PROCESSORS: %lld (expected 0-%d)",
                 (long long)c->task_processors, KX_MAX_TASK_PROCESSORS);
        return KX_EINVAL;
    }
    const char *p = c->task_queues;
    if (strcmp(p, "*") == 0) return KX_OK;
    for (;;) {
        while (*p == ' ') p++;
        size_t n = strcspn(p, ",");
        size_t len = n;
        while (len > 0 && p[len - 1] == ' ') len--;
        if (!kx_config_queue_name_valid(p, len)) {
            snprintf(err, errcap,
                     "invalid value for TASK_QUEUES: \"%.200s\" (expected * or a comma-separated list of "
                     "queue names: letters, digits and _ - . : only)",
                     c->task_queues);
            return KX_EINVAL;
        }
        if (!p[n]) return KX_OK;
        p += n + 1;
    }
}

int kx_config_finish(kx_config_t *c, char *err, size_t errcap)
{
    if (check_tasks(c, err, errcap) != KX_OK) return KX_EINVAL;
    for (int i = 0; i < c->n_origins; i++) {
        free(c->origins[i]);
        c->origins[i] = NULL;
    }
    if (kx_config_parse_origins(c->allowed_origins, c->origins, KX_MAX_ORIGINS, &c->n_origins,
                                &c->origins_any) != KX_OK) {
        snprintf(err, errcap,
                 "invalid value for WEB_SERVER_ALLOWED_ORIGINS: \"%s\" (expected \"*\" "
                 "or a comma-separated list of scheme://host[:port])",
                 c->allowed_origins);
        return KX_EINVAL;
    }
    if (c->web_port > 65535) {
        snprintf(err, errcap, "invalid value for WEB_SERVER_PORT: %lld (expected 0-65535)",
                 (long long)c->web_port);
        return KX_EINVAL;
    }
    /* Trailing slashes are dropped (on a copy, kept only if valid) so "/" and "//" are
     * refused alike and "/api/" means "/api". */
    char route[256];
    snprintf(route, sizeof route, "%s", c->api_route);
    for (size_t rl = strlen(route); rl > 1 && route[rl - 1] == '/'; rl--) route[rl - 1] = '\0';
    if (route[0] != '/' || strcmp(route, "/") == 0 || strstr(route, "//") ||
        strlen(c->api_route) >= sizeof route) {
        snprintf(err, errcap,
                 "invalid value for WEB_SERVER_API_ROUTE: \"%s\" (expected a path "
                 "like /api)",
                 c->api_route);
        return KX_EINVAL;
    }
    for (const char *p = route; *p; p++) {
        if (!isalnum((unsigned char)*p) && !strchr("/_.-", *p)) {
            snprintf(err, errcap,
                     "invalid value for WEB_SERVER_API_ROUTE: \"%s\" (letters, digits "
                     "and / _ . - only)",
                     c->api_route);
            return KX_EINVAL;
        }
    }
    set_str(&c->api_route, route);
    if (check_node_env(c, err, errcap) != KX_OK || check_header_values(c, err, errcap) != KX_OK ||
        check_tokens(c, err, errcap) != KX_OK)
        return KX_EINVAL;
    /* With TLS on, the session cookie is always Secure (it is only ever sent over https). */
    bool tls = c->tls_cert && *c->tls_cert;
    if (tls) c->session_cookie_secure = true;
    /* The cookie is Secure when configured so or when the app is served over https. */
    bool secure = c->session_cookie_secure ||
                  (c->application_url && strncmp(c->application_url, "https://", 8) == 0);
    if (c->session_cookie_same_site == KX_SAMESITE_NONE && !secure) {
        snprintf(err, errcap,
                 "SESSION_COOKIE_SAME_SITE=None requires SESSION_COOKIE_SECURE=true "
                 "(browsers refuse SameSite=None cookies without Secure)");
        return KX_EINVAL;
    }
    if ((c->tls_cert && *c->tls_cert) != (c->tls_key && *c->tls_key)) {
        snprintf(err, errcap, "WEB_SERVER_TLS_CERT and WEB_SERVER_TLS_KEY must be set together");
        return KX_EINVAL;
    }
    /* The MCP route names the protected resource (RFC 9728) and a path of the route table. */
    if (c->mcp_route[0] != '/' || strpbrk(c->mcp_route, "?#% \t") || strlen(c->mcp_route) > 200) {
        snprintf(err, errcap, "invalid value for MCP_SERVER_ROUTE: \"%s\" (expected a path like /mcp)",
                 c->mcp_route);
        return KX_EINVAL;
    }
    /* The metrics route is a path of the route table, outside the API prefix's actions. */
    if (c->metrics_route[0] != '/' || strpbrk(c->metrics_route, "?#% \t") || strlen(c->metrics_route) > 200) {
        snprintf(err, errcap,
                 "invalid value for OTEL_METRICS_ROUTE: \"%.200s\" (expected a path like /metrics)",
                 c->metrics_route);
        return KX_EINVAL;
    }
    if (!c->application_url || !*c->application_url) {
        char url[512];
        snprintf(url, sizeof url, "%s://%s:%lld", tls ? "https" : "http", c->web_host,
                 (long long)c->web_port);
        set_str(&c->application_url, url);
        c->application_url_derived = true;
    }
    return KX_OK;
}

void kx_config_bound_port(kx_config_t *c, int port)
{
    if (!c->application_url_derived || c->web_port != 0 || port <= 0) return;
    char url[512];
    snprintf(url, sizeof url, "%s://%s:%d", c->tls_cert && *c->tls_cert ? "https" : "http", c->web_host,
             port);
    set_str(&c->application_url, url);
}

void kx_config_get_string(const kx_config_t *c, const kx_config_desc_t *d, char *buf, size_t cap)
{
    static const char *ss[] = { "Strict", "Lax", "None" };
    static const char *lv[] = { "trace", "debug", "info", "warn", "error", "fatal", "off" };
    switch (d->type) {
    case KX_CT_STRING: {
        const char *s = *FIELD(c, d, char *);
        snprintf(buf, cap, "%s", s ? s : "");
        break;
    }
    case KX_CT_INT:
    case KX_CT_WORKERS: snprintf(buf, cap, "%lld", (long long)*FIELD(c, d, int64_t)); break;
    case KX_CT_BOOL: snprintf(buf, cap, "%s", *FIELD(c, d, bool) ? "true" : "false"); break;
    case KX_CT_LOGLEVEL: snprintf(buf, cap, "%s", lv[*FIELD(c, d, kx_log_level_t)]); break;
    case KX_CT_SAMESITE: snprintf(buf, cap, "%s", ss[*FIELD(c, d, kx_samesite_t)]); break;
    case KX_CT_LOGFORMAT: snprintf(buf, cap, "%s", *FIELD(c, d, bool) ? "json" : "text"); break;
    }
}

void kx_config_free(kx_config_t *c)
{
    free(c->node_env);
    for (const kx_config_desc_t *d = descs; d->key; d++)
        if (d->type == KX_CT_STRING) set_str(FIELD(c, d, char *), NULL);
    for (int i = 0; i < c->n_origins; i++) free(c->origins[i]);
    memset(c, 0, sizeof *c);
}
