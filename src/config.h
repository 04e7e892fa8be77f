/* config.h — the process configuration (kx_config_t).
 *
 * Owns: defaults, parsing and validation of every setting, and the table that names each
 * setting's config.lua key (dotted path, security-guide names), environment variable and
 * default (one row per setting, config.c descs[]).
 * Callers: main.c builds it (defaults → config.lua values → environment); config_file.c
 * feeds it the config.lua values as strings through kx_config_set; lua_api_util.c shows it to
 * Lua as core.config; every other module gets a const kx_config_t *.
 * Never: sees Lua, does I/O beyond getenv. Const after boot.
 *
 * Precedence: built-in defaults < config.lua < environment (VAR_<NODE_ENV> before VAR).
 * A bad value stops start-up with a message naming the variable or key (README, Configuration). */
#ifndef KX_CONFIG_H
#define KX_CONFIG_H
#include "common.h"
#include "log.h"

#define KX_MAX_ORIGINS 32

typedef enum { KX_SAMESITE_STRICT, KX_SAMESITE_LAX, KX_SAMESITE_NONE } kx_samesite_t;

typedef struct {
    char *node_env; /* development | test | production | any */

    char *process_name;
    int64_t shutdown_timeout_ms;

    kx_log_level_t log_level;
    bool log_timestamps, log_colorize, log_json;
    int64_t log_max_param_length;

    int64_t action_timeout_ms;
    int64_t lua_memory_limit_mb;

    char *redis_url;
    int64_t redis_command_timeout_ms;

    int64_t session_ttl;
    char *session_cookie_name;
    bool session_cookie_http_only, session_cookie_secure;
    kx_samesite_t session_cookie_same_site;

    bool rate_limit_enabled;
    int64_t rate_limit_window_ms, rate_limit_unauth_limit, rate_limit_auth_limit;
    char *rate_limit_key_prefix;
    int64_t rate_limit_oauth_register_limit, rate_limit_oauth_register_window_ms;
    bool rate_limit_fail_open;

    bool web_enabled;
    int64_t web_port;
    char *web_host;
    char *application_url;
    char *api_route;
    char *allowed_origins;         /* raw, as configured */
    bool origins_any;              /* allowed_origins == "*" */
    char *origins[KX_MAX_ORIGINS]; /* parsed list when !origins_any */
    int n_origins;
    char *allowed_methods, *allowed_headers;
    bool static_enabled;
    char *static_directory, *static_route, *static_cache_control;
    bool static_etag;
    bool include_stack_in_errors;
    char *sec_csp, *sec_content_type_options, *sec_frame_options, *sec_hsts, *sec_referrer_policy;
    int64_t max_body_size;
    bool compression_enabled;
    int64_t compression_threshold;
    char *correlation_header;
    bool correlation_trust_proxy;
    int64_t header_timeout_ms, keepalive_timeout_ms, body_timeout_ms, max_connections;
    int64_t max_connections_per_ip; /* 0: no per-address cap */
    bool application_url_derived;   /* APPLICATION_URL unset: built from host and port */
    char *tls_cert, *tls_key;
    int64_t workers; /* 0 = auto */

    /* MCP server and its OAuth 2.1 authorization server (README "OAuth 2.1 authorization
     * server"): off by default; TTLs in seconds. */
    bool mcp_enabled, mcp_oauth_trust_proxy;
    char *mcp_route, *mcp_allowed_origins;
    int64_t mcp_oauth_code_ttl, mcp_oauth_refresh_ttl, mcp_oauth_client_ttl;

    int64_t ws_max_payload_size, ws_max_messages_per_second, ws_max_subscriptions;
    int64_t ws_drain_timeout_ms, ws_ping_interval_ms, ws_idle_timeout_ms;
    int64_t presence_ttl_s, presence_heartbeat_s;
    bool tasks_enabled;
    int64_t task_processors; /* per keryx process; 0: this process runs no jobs */
    char *task_queues;       /* "*" or a comma-separated list, served left to right */

    bool cli_include_stack_in_errors, cli_quiet;

    /* Production self-check (prodcheck.h) and Prometheus metrics (metrics.h). */
    bool strict_production;
    bool metrics_enabled;
    char *metrics_route, *metrics_user, *metrics_password;
} kx_config_t;

typedef enum {
    KX_CT_STRING,
    KX_CT_INT,
    KX_CT_BOOL,
    KX_CT_LOGLEVEL,
    KX_CT_SAMESITE,
    KX_CT_WORKERS,
    KX_CT_LOGFORMAT /* "text" | "json": sets the bool field (LOG_FORMAT over LOG_JSON's field) */
} kx_config_type_t;

typedef struct {
    const char *key; /* config.lua dotted path, e.g. "server.web.allowedOrigins" */
    const char *env; /* environment variable, e.g. "WEB_SERVER_ALLOWED_ORIGINS" */
    kx_config_type_t type;
    size_t offset;   /* into kx_config_t */
    int64_t min;     /* for ints: smallest accepted value */
    const char *def; /* default, in the string form kx_config_set parses; NULL = unset */
    const char *def_production, *def_test; /* NODE_ENV=production / test default; NULL = def */
} kx_config_desc_t;

/* The descriptor table (NULL-key terminated) — also used to expose settings to Lua. */
const kx_config_desc_t *kx_config_descs(void);

/* The default string of one setting for node_env (NULL = "development"), or NULL (unset). */
const char *kx_config_default(const kx_config_desc_t *d, const char *node_env);
/* Fills *c with built-in defaults for node_env (NULL = "development"): each descriptor's
 * default, set through kx_config_set. */
void kx_config_defaults(kx_config_t *c, const char *node_env);
/* Sets one setting from its string form. On failure returns KX_EINVAL and writes a message
 * naming `source` (the key or variable) into err. */
int kx_config_set(kx_config_t *c, const kx_config_desc_t *d, const char *value, const char *source, char *err,
                  size_t errcap);
/* Applies the environment (VAR_<NODE_ENV> before VAR) over *c. */
int kx_config_apply_env(kx_config_t *c, char *err, size_t errcap);
#define KX_MAX_QUEUE_NAME 100
#define KX_MAX_TASK_PROCESSORS 64
/* A task queue's name: 1-100 letters, digits and _ - . : (it becomes part of a Redis key). */
bool kx_config_queue_name_valid(const char *s, size_t n);
/* Cross-field checks and derived values, after everything is set. */
int kx_config_finish(kx_config_t *c, char *err, size_t errcap);
void kx_config_free(kx_config_t *c);

/* Value parsers (exposed for tests). Each returns 0 or KX_EINVAL. */
int kx_config_parse_bool(const char *s, bool *out);
int kx_config_parse_int(const char *s, int64_t *out);
/* Comma list of scheme://host[:port] or "*" alone; NULL out = validate only. */
int kx_config_parse_origins(const char *s, char **out, int max, int *n, bool *any);
/* Stringifies a setting (for the Lua view of the config). */
void kx_config_get_string(const kx_config_t *c, const kx_config_desc_t *d, char *buf, size_t cap);

/* WEB_SERVER_PORT=0 binds a port the kernel picks: a derived APPLICATION_URL (the OAuth
 * issuer and MCP resource) must name that port, not 0. Call once the listener is bound. */
void kx_config_bound_port(kx_config_t *c, int port);

#endif
