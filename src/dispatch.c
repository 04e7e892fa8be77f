/* dispatch.c — what a parsed request becomes (SPEC §9.2): OPTIONS → CORS preflight (204);
 * paths under the API prefix → the router → a Lua action; other GET/HEAD → keryx's own pages,
 * then static files; everything else → 404 envelope. */
#include "server.h"
#include "lua_bridge.h"
#include "ws.h"

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

static void dispatch_action(kx_conn_t *c, size_t skip)
{
    kx_request_t *r = c->req;
    const char *sub = r->path + skip;
    size_t sublen = r->path_len - skip;
    int action_id;
    kx_route_param_t params[KX_ROUTE_MAX_PARAMS];
    int n = 0;
    if (kx_router_match(kx_srv->router, r->method, r->method_len, sub, sublen, &action_id,
                        params, &n) != KX_OK) {
        not_found(c, "Action not found");
        return;
    }
    kx_lua_spawn_web(c, action_id, params, n);
}

/* Generated (not a file) because it names the configured API route. */
static void serve_swagger_init(kx_conn_t *c)
{
    kx_buf_t js = KX_BUF_INIT;
    kx_buf_printf(&js, "window.addEventListener('load', function () {\n"
                       "  window.ui = SwaggerUIBundle({ url: '%s/swagger', dom_id: '#swagger-ui',\n"
                       "    deepLinking: true });\n});\n", kx_srv->cfg->api_route);
    kx_http_send(c, 200, "text/javascript; charset=utf-8", NULL, 0, js.data, js.len, 0);
    kx_buf_free(&js);
}

static bool is_get(const kx_request_t *r)
{
    return (r->method_len == 3 && memcmp(r->method, "GET", 3) == 0) || r->is_head;
}

void kx_dispatch(kx_conn_t *c)
{
    kx_request_t *r = c->req;
    const kx_config_t *cfg = kx_srv->cfg;
    if (kx_ws_is_upgrade(r)) { /* any path upgrades (as Keryx) */
        kx_ws_upgrade(c);
        return;
    }
    if (r->method_len == 7 && memcmp(r->method, "OPTIONS", 7) == 0) {
        kx_http_send(c, 204, NULL, NULL, 0, "", 0, KX_R_CORS);
        return;
    }
    size_t skip;
    if (under_prefix(r->path, r->path_len, cfg->api_route, &skip)) {
        dispatch_action(c, skip);
        return;
    }
    if (!is_get(r)) {
        not_found(c, "Action not found");
        return;
    }
    /* keryx's own pages: the Swagger UI and its script (no inline scripts: CSP holds). */
    if (kx_srv->www_root_fd >= 0) {
        if (r->path_len == 8 && memcmp(r->path, "/swagger", 8) == 0) {
            kx_static_serve(c, kx_srv->www_root_fd, "/swagger.html", 13, false);
            return;
        }
        if (r->path_len == 24 && memcmp(r->path, "/swagger/swagger-init.js", 24) == 0) {
            serve_swagger_init(c);
            return;
        }
        if (r->path_len > 9 && memcmp(r->path, "/swagger/", 9) == 0) {
            kx_static_serve(c, kx_srv->www_root_fd, r->path + 8, r->path_len - 8, false);
            return;
        }
    }
    if (cfg->static_enabled && kx_srv->static_root_fd >= 0 &&
        under_prefix(r->path, r->path_len, cfg->static_route, &skip)) {
        const char *rel = r->path + skip;
        size_t rlen = r->path_len - skip;
        if (rlen == 0) rel = "/", rlen = 1;
        kx_static_serve(c, kx_srv->static_root_fd, rel, rlen, true);
        return;
    }
    not_found(c, "Not found");
}
