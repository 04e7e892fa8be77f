/* dispatch.c — what a parsed request becomes (see dispatch.h): upgrade → OPTIONS → one route
 * table (actions under the API prefix; keryx's own routes and framework actions on absolute
 * paths outside it) → static files → 404. */
#include "dispatch.h"
#include "log.h"
#include "metrics.h"
#include "static.h"
#include "ws.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

typedef void (*builtin_fn)(kx_conn_t *c, const kx_route_param_t *params, int n);

typedef struct {
    const char *method;
    const char *route;
    builtin_fn serve;
} builtin_t;

static kx_action_runner_t run_action;

static bool under_prefix(const char *path, size_t len, const char *prefix, size_t *rest)
{
    size_t pl = strlen(prefix);
    if (pl == 1 && prefix[0] == '/') {
        *rest = 0;
        return true;
    }
    if (len < pl || memcmp(path, prefix, pl) != 0) return false;
    if (len > pl && path[pl] != '/') return false;
    *rest = pl;
    return true;
}

static void not_found(kx_conn_t *c, const char *msg)
{
    kx_http_send_error(c, 404, "CONNECTION_ACTION_NOT_FOUND", msg, 0);
}

/* ---- built-ins: keryx's own pages (no inline scripts: the CSP holds) --------------------- */

/* swagger-ui from this server when `make` installed it (npm swagger-ui-dist copied into
 * www/swagger-ui/, git-ignored; served below through static.c like any page asset), else the
 * page that loads it from the CDN. Looked up per request: a later `make` needs no restart. */
static void serve_swagger_page(kx_conn_t *c, const kx_route_param_t *params, int n)
{
    (void)params;
    (void)n;
    struct stat st;
    bool local = fstatat(kx_srv->www_root_fd, "swagger-ui/swagger-ui-bundle.js", &st, 0) == 0 &&
                 S_ISREG(st.st_mode);
    const char *page = local ? "/swagger.html" : "/swagger-cdn.html";
    kx_static_serve(c, kx_srv->www_root_fd, page, strlen(page), false);
}

/* Generated (not a file) because it names the configured API route. */
static void serve_swagger_init(kx_conn_t *c, const kx_route_param_t *params, int n)
{
    (void)params;
    (void)n;
    kx_buf_t js = KX_BUF_INIT;
    kx_buf_printf(&js,
                  "window.addEventListener('load', function () {\n"
                  "  window.ui = SwaggerUIBundle({ url: '%s/swagger', dom_id: '#swagger-ui',\n"
                  "    deepLinking: true });\n});\n",
                  kx_srv->cfg->api_route);
    kx_http_send(c, 200, "text/javascript; charset=utf-8", NULL, 0, js.data, js.len, 0);
    kx_buf_free(&js);
}

static void serve_swagger_asset(kx_conn_t *c, const kx_route_param_t *params, int n)
{
    (void)n;
    /* The rest starts after "/swagger/": hand static.c the path from its slash. */
    kx_static_serve(c, kx_srv->www_root_fd, params[0].value - 1, params[0].value_len + 1, false);
}

/* Prometheus metrics (README "Metrics"): any method, outside the action namespace, never a
 * CORS grant (a page of another origin must not read them). Basic auth when both the user
 * and the password are configured. */
static void serve_metrics(kx_conn_t *c, const kx_route_param_t *params, int n)
{
    (void)params;
    (void)n;
    const kx_config_t *cfg = kx_srv->cfg;
    if (cfg->metrics_user && *cfg->metrics_user && cfg->metrics_password && *cfg->metrics_password) {
        const kx_header_t *h = kx_http_header(c->req, "Authorization");
        if (!kx_metrics_auth_ok(h ? h->value : NULL, h ? h->value_len : 0, cfg->metrics_user,
                                cfg->metrics_password)) {
            static const char www[] = "WWW-Authenticate: Basic realm=\"Metrics\"\r\n";
            kx_http_send(c, 401, "text/plain", www, sizeof www - 1, "Unauthorized", 12, 0);
            return;
        }
    }
    kx_buf_t out = KX_BUF_INIT;
    kx_metrics_render(&out);
    kx_http_send(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, 0, out.data ? out.data : "",
                 out.len, 0);
    kx_buf_free(&out);
}

/* route NULL: the metrics route (OTEL_METRICS_ROUTE), registered only when metrics are on. */
static const builtin_t builtins[] = {
    { "GET", "/swagger", serve_swagger_page },
    { "GET", "/swagger/swagger-init.js", serve_swagger_init },
    { "GET", "/swagger/*file", serve_swagger_asset },
    { "GET", NULL, serve_metrics },
};

#define METRICS_ID (-(int)KX_ARRAY_LEN(builtins))

/* Route labels of the metrics (metrics.h), by route-table id (+ the built-ins' count). */
static int *labels;
static int n_labels;

static void label_route(int id, const char *prefix, const char *route)
{
    int at = id + (int)KX_ARRAY_LEN(builtins);
    if (!kx_metrics_enabled() || at < 0) return;
    if (at >= n_labels) {
        labels = kx_xrealloc(labels, (size_t)(at + 1) * sizeof *labels);
        memset(labels + n_labels, 0, (size_t)(at + 1 - n_labels) * sizeof *labels);
        n_labels = at + 1;
    }
    char pattern[KX_METRICS_NAME_MAX];
    snprintf(pattern, sizeof pattern, "%s%s", prefix, route);
    labels[at] = kx_metrics_route(pattern);
}

static int route_label(int id)
{
    int at = id + (int)KX_ARRAY_LEN(builtins);
    return at >= 0 && at < n_labels ? labels[at] : KX_METRICS_ROUTE_UNKNOWN;
}

static int add_builtin(kx_router_t *router, const char *method, const char *route, int id)
{
    char err[256];
    if (kx_router_add(router, method, route, id, err, sizeof err) != KX_OK) {
        kx_log_error("built-in route %s: %s", route, err);
        return KX_EINVAL;
    }
    label_route(id, "", route);
    return KX_OK;
}

void kx_dispatch_init(kx_server_t *s)
{
    /* The metrics route is matched before the route table (any method, OPTIONS included); its
     * rows are there so that an action on the same path is refused at boot. */
    static const char *const any[] = { "GET", "POST", "PUT", "PATCH", "DELETE" };
    for (size_t i = 0; s->cfg->metrics_enabled && i < KX_ARRAY_LEN(any); i++)
        add_builtin(s->router, any[i], s->cfg->metrics_route, METRICS_ID);
    /* Keryx's pages live outside the API prefix (config refuses an API at "/"). Without its
     * page files the Swagger UI is off. */
    if (s->www_root_fd < 0) return;
    for (size_t i = 0; i < KX_ARRAY_LEN(builtins); i++)
        if (builtins[i].route) add_builtin(s->router, builtins[i].method, builtins[i].route, -(int)i - 1);
}

void kx_dispatch_set_action_runner(kx_action_runner_t run)
{
    run_action = run;
}

int kx_dispatch_add_action(const char *method, const char *route, int action_id, char *err, size_t errcap)
{
    int rc = kx_router_add_under(kx_srv->router, kx_srv->cfg->api_route, method, route, action_id, err,
                                 errcap);
    if (rc == KX_OK) label_route(action_id, kx_srv->cfg->api_route, route);
    return rc;
}

int kx_dispatch_add_absolute(const char *method, const char *route, int action_id, char *err, size_t errcap)
{
    int rc = kx_router_add(kx_srv->router, method, route, action_id, err, errcap);
    if (rc == KX_OK) label_route(action_id, "", route);
    return rc;
}

/* ---- the decision ---------------------------------------------------------------------- */

static bool is_get(const kx_request_t *r)
{
    return (r->method_len == 3 && memcmp(r->method, "GET", 3) == 0) || r->is_head;
}

static void serve_static(kx_conn_t *c)
{
    kx_request_t *r = c->req;
    const kx_config_t *cfg = kx_srv->cfg;
    size_t skip;
    if (!is_get(r) || !cfg->static_enabled || kx_srv->static_root_fd < 0 ||
        !under_prefix(r->path, r->path_len, cfg->static_route, &skip)) {
        not_found(c, is_get(r) ? "Not found" : "Action not found");
        return;
    }
    r->metrics_route = KX_METRICS_ROUTE_STATIC;
    const char *rel = r->path + skip;
    size_t rlen = r->path_len - skip;
    if (rlen == 0) rel = "/", rlen = 1;
    kx_static_serve(c, kx_srv->static_root_fd, rel, rlen, true);
}

void kx_dispatch(kx_conn_t *c)
{
    kx_request_t *r = c->req;
    if (kx_ws_is_upgrade(r)) { /* any path upgrades (as Keryx) */
        kx_ws_upgrade(c);
        return;
    }
    const kx_config_t *cfg = kx_srv->cfg;
    if (cfg->metrics_enabled && r->path_len == strlen(cfg->metrics_route) &&
        memcmp(r->path, cfg->metrics_route, r->path_len) == 0) {
        r->metrics_route = route_label(METRICS_ID);
        serve_metrics(c, NULL, 0);
        return;
    }
    if (r->method_len == 7 && memcmp(r->method, "OPTIONS", 7) == 0) {
        kx_http_send(c, 204, NULL, NULL, 0, "", 0, KX_R_CORS | KX_R_PREFLIGHT);
        return;
    }
    size_t skip;
    bool api = under_prefix(r->path, r->path_len, kx_srv->cfg->api_route, &skip);
    int id;
    kx_route_param_t params[KX_ROUTE_MAX_PARAMS];
    int n = 0;
    bool found = kx_router_match(kx_srv->router, r->method, r->method_len, r->path, r->path_len, &id, params,
                                 &n) == KX_OK;
    if (found) r->metrics_route = route_label(id);
    /* Under the API prefix only actions answer, and a miss is the action 404. */
    if (api) {
        if (found && id >= 0) run_action(c, id, params, n);
        else not_found(c, "Action not found");
        return;
    }
    if (found && id < 0) {
        builtins[-id - 1].serve(c, params, n);
        return;
    }
    if (found) { /* a framework action on an absolute path (kx_dispatch_add_absolute) */
        run_action(c, id, params, n);
        return;
    }
    serve_static(c);
}
