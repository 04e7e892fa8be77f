/* router.h — the route table: method + "/path/:param/&rest" (see Rules) → an id.
 *
 * Owns: the routes registered at boot: the app's actions (under the API prefix) and keryx's
 * own absolute routes (dispatch.c's built-in table: /swagger; the framework's internal actions:
 * /oauth/…, /.well-known/…). The id means what the registrant says (dispatch.c: >= 0 an
 * action, < 0 a built-in handler).
 * Callers: dispatch.c registers built-ins and actions (for lua_bridge.c at boot) and matches.
 * Never: allocates while matching, decodes or touches Lua.
 * Cost: a static route is one hash lookup, a parameterised one a walk of a segment tree; neither
 * grows with the number of routes.
 * Rules: static routes beat dynamic ones; among dynamic routes the first registered wins;
 * a duplicate route is refused (for parameterised routes: the same method and shape, whatever
 * the parameter names); at most KX_ROUTE_MAX_PARAMS parameters, a *rest one included; HEAD matches GET routes; no trailing-slash folding; a `*name`
 * segment (last only) takes the rest of the path, slashes included, at least one byte. */
#ifndef KX_ROUTER_H
#define KX_ROUTER_H
#include "common.h"

#define KX_ROUTE_MAX_PARAMS 16

typedef struct kx_router kx_router_t;

typedef struct {
    const char *name; /* points into the router (lives as long as it) */
    size_t name_len;
    const char *value; /* points into the matched path (raw, not decoded) */
    size_t value_len;
} kx_route_param_t;

kx_router_t *kx_router_new(void);
void kx_router_free(kx_router_t *r);
/* Returns KX_OK, or KX_EINVAL (bad method/route, with a message in err) — a route must start
 * with '/', segments are literals or :name with name [A-Za-z0-9_]+. */
int kx_router_add(kx_router_t *r, const char *method, const char *route, int action_id, char *err,
                  size_t errcap);
/* The same, registered as prefix + route (prefix "" or "/" adds nothing); errors name route. */
int kx_router_add_under(kx_router_t *r, const char *prefix, const char *method, const char *route,
                        int action_id, char *err, size_t errcap);
/* Returns KX_OK with *action_id and params filled, or KX_ENOTFOUND. */
int kx_router_match(const kx_router_t *r, const char *method, size_t mlen, const char *path, size_t plen,
                    int *action_id, kx_route_param_t *params, int *nparams);

#endif
