/* router.c — route table (see router.h). Linear scans: apps have tens of routes, and a scan
 * of short strings beats hashing at that size. */
#include "router.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_SEGS 32

typedef struct {
    char *text; /* literal text, or the param name without ':' */
    size_t len;
    bool param;
    bool rest; /* "*name": the rest of the path (last segment only) */
} seg_t;

typedef struct {
    char method[16];
    char *route;
    size_t route_len;
    bool dynamic;
    seg_t segs[MAX_SEGS];
    int nsegs;
    int action_id;
} route_t;

struct kx_router {
    route_t *routes;
    int n, cap;
};

kx_router_t *kx_router_new(void)
{
    return kx_xcalloc(1, sizeof(kx_router_t));
}

void kx_router_free(kx_router_t *r)
{
    if (!r) return;
    for (int i = 0; i < r->n; i++) {
        free(r->routes[i].route);
        for (int s = 0; s < r->routes[i].nsegs; s++) free(r->routes[i].segs[s].text);
    }
    free(r->routes);
    free(r);
}

static bool valid_method(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n >= 16) return false;
    for (size_t i = 0; i < n; i++)
        if (!isupper((unsigned char)m[i])) return false;
    return true;
}

static int count_params(const route_t *rt)
{
    int n = 0;
    for (int i = 0; i < rt->nsegs; i++) n += rt->segs[i].param;
    return n;
}

static int split_route(route_t *rt, const char *route, char *err, size_t errcap)
{
    const char *p = route + 1;
    rt->nsegs = 0;
    if (*p == '\0') return KX_OK; /* "/" */
    while (1) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (p[0] == ':' && count_params(rt) == KX_ROUTE_MAX_PARAMS) {
            snprintf(err, errcap, "invalid route \"%s\": more than %d parameters", route,
                     KX_ROUTE_MAX_PARAMS);
            return KX_EINVAL;
        }
        if (len == 0 || rt->nsegs == MAX_SEGS) {
            snprintf(err, errcap, "invalid route \"%s\": empty segment or too many segments", route);
            return KX_EINVAL;
        }
        seg_t *s = &rt->segs[rt->nsegs++];
        s->rest = p[0] == '*';
        if (s->rest && slash) {
            snprintf(err, errcap, "invalid route \"%s\": a *rest segment must be the last", route);
            return KX_EINVAL;
        }
        s->param = p[0] == ':' || s->rest;
        const char *t = s->param ? p + 1 : p;
        size_t tl = s->param ? len - 1 : len;
        if (s->param) {
            bool ok = tl > 0;
            for (size_t i = 0; i < tl; i++)
                if (!isalnum((unsigned char)t[i]) && t[i] != '_') ok = false;
            if (!ok) {
                snprintf(err, errcap, "invalid route \"%s\": parameter names are [A-Za-z0-9_]+", route);
                return KX_EINVAL;
            }
            rt->dynamic = true;
        }
        s->text = kx_xstrndup(t, tl);
        s->len = tl;
        if (!slash) break;
        p = slash + 1;
    }
    return KX_OK;
}

int kx_router_add(kx_router_t *r, const char *method, const char *route, int action_id, char *err,
                  size_t errcap)
{
    return kx_router_add_under(r, "", method, route, action_id, err, errcap);
}

int kx_router_add_under(kx_router_t *r, const char *prefix, const char *method, const char *route,
                        int action_id, char *err, size_t errcap)
{
    if (!valid_method(method)) {
        snprintf(err, errcap, "invalid method \"%s\" (expected GET, POST, PUT, PATCH, DELETE, ...)", method);
        return KX_EINVAL;
    }
    if (route[0] != '/') {
        snprintf(err, errcap, "invalid route \"%s\": must start with /", route);
        return KX_EINVAL;
    }
    /* The prefix is a path of its own ("/api"); "/" and "" add nothing. */
    size_t pl = strlen(prefix);
    if (pl == 1 && prefix[0] == '/') pl = 0;
    char *full = kx_xmalloc(pl + strlen(route) + 1);
    memcpy(full, prefix, pl);
    strcpy(full + pl, route);
    for (int i = 0; i < r->n; i++) {
        if (strcmp(r->routes[i].method, method) == 0 && strcmp(r->routes[i].route, full) == 0) {
            snprintf(err, errcap, "duplicate route %s %s", method, route);
            free(full);
            return KX_EINVAL;
        }
    }
    /* The action's own route is checked first, so errors name what the app wrote. */
    route_t rt = { 0 };
    int rc = split_route(&rt, route, err, errcap);
    if (rc == KX_OK && pl) {
        for (int s = 0; s < rt.nsegs; s++) free(rt.segs[s].text);
        memset(&rt, 0, sizeof rt);
        rc = split_route(&rt, full, err, errcap);
    }
    if (rc != KX_OK) {
        for (int s = 0; s < rt.nsegs; s++) free(rt.segs[s].text);
        free(full);
        return KX_EINVAL;
    }
    snprintf(rt.method, sizeof rt.method, "%s", method);
    rt.route = full;
    rt.route_len = strlen(full);
    rt.action_id = action_id;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->routes = kx_xrealloc(r->routes, sizeof(route_t) * (size_t)r->cap);
    }
    r->routes[r->n++] = rt;
    return KX_OK;
}

static bool method_matches(const route_t *rt, const char *m, size_t mlen)
{
    if (kx_strcaseeq_n(m, mlen, rt->method) && memcmp(m, rt->method, mlen) == 0) return true;
    return mlen == 4 && memcmp(m, "HEAD", 4) == 0 && strcmp(rt->method, "GET") == 0;
}

static bool match_dynamic(const route_t *rt, const char *path, size_t plen, kx_route_param_t *params,
                          int *nparams)
{
    const char *p = path + 1, *end = path + plen;
    int np = 0;
    for (int i = 0; i < rt->nsegs; i++) {
        if (p > end) return false;
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *se = slash ? slash : end;
        size_t len = (size_t)(se - p);
        const seg_t *s = &rt->segs[i];
        if (len == 0) return false;
        if (s->rest) { /* the rest of the path, slashes included */
            if (np == KX_ROUTE_MAX_PARAMS || p >= end) return false;
            params[np++] = (kx_route_param_t){ s->text, s->len, p, (size_t)(end - p) };
            *nparams = np;
            return true;
        }
        if (s->param) {
            if (np == KX_ROUTE_MAX_PARAMS) return false;
            params[np++] = (kx_route_param_t){ s->text, s->len, p, len };
        } else if (len != s->len || memcmp(p, s->text, len) != 0) {
            return false;
        }
        if (!slash) {
            if (i != rt->nsegs - 1) return false;
            p = end + 1;
        } else {
            p = slash + 1;
        }
    }
    if (p <= end) return false; /* path has more segments (or a trailing slash) */
    *nparams = np;
    return true;
}

int kx_router_match(const kx_router_t *r, const char *method, size_t mlen, const char *path, size_t plen,
                    int *action_id, kx_route_param_t *params, int *nparams)
{
    *nparams = 0;
    if (plen == 0 || path[0] != '/') return KX_ENOTFOUND;
    for (int i = 0; i < r->n; i++) {
        const route_t *rt = &r->routes[i];
        if (rt->dynamic || rt->route_len != plen || !method_matches(rt, method, mlen)) continue;
        if (memcmp(rt->route, path, plen) == 0) {
            *action_id = rt->action_id;
            return KX_OK;
        }
    }
    for (int i = 0; i < r->n; i++) {
        const route_t *rt = &r->routes[i];
        if (!rt->dynamic || !method_matches(rt, method, mlen)) continue;
        if (match_dynamic(rt, path, plen, params, nparams)) {
            *action_id = rt->action_id;
            return KX_OK;
        }
    }
    return KX_ENOTFOUND;
}
