/* dispatch.c — what a parsed request becomes (see dispatch.h): upgrade → OPTIONS → one route
 * table (actions under the API prefix; keryx's own routes and framework actions on absolute
 * paths outside it) → static files → 404. */
#include "dispatch.h"
#include "log.h"
#include "static.h"
#include "ws.h"
#include <fcntl.h>
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

static const builtin_t builtins[] = {
    { "GET", "/swagger", serve_swagger_page },
    { "GET", "/swagger/swagger-init.js", serve_swagger_init },
    { "GET", "/swagger/*file", serve_swagger_asset },
};

void kx_dispatch_init(kx_server_t *s)
{
    /* Keryx's pages live outside the API prefix (config refuses an API at "/"). Without its
     * page files the Swagger UI is off. */
    if (s->www_root_fd < 0) return;
    char err[256];
    for (size_t i = 0; i < KX_ARRAY_LEN(builtins); i++)
        if (kx_router_add(s->router, builtins[i].method, builtins[i].route, -(int)i - 1, err, sizeof err) !=
            KX_OK)
            kx_log_error("built-in route %s: %s", builtins[i].route, err);
}

void kx_dispatch_set_action_runner(kx_action_runner_t run)
{
    run_action = run;
}

int kx_dispatch_add_action(const char *method, const char *route, int action_id, char *err, size_t errcap)
{
    return kx_router_add_under(kx_srv->router, kx_srv->cfg->api_route, method, route, action_id, err, errcap);
}

int kx_dispatch_add_absolute(const char *method, const char *route, int action_id, char *err, size_t errcap)
{
    return kx_router_add(kx_srv->router, method, route, action_id, err, errcap);
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
