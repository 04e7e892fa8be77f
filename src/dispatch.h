/* dispatch.h — what a complete HTTP request becomes.
 *
 * Owns: the table of keryx's own routes (built-ins: the Swagger UI today; /mcp, /oauth/… and
 * /.well-known/… are rows to add) and the decision order: WebSocket upgrade → OPTIONS (CORS
 * preflight, 204) → the route table (actions under the API prefix, built-ins outside it) →
 * static files (GET/HEAD) → 404 envelope. Framework actions may sit on absolute paths outside
 * the prefix (kx_dispatch_add_absolute); the ids of the table say which: >= 0 an action,
 * < 0 a built-in.
 * Callers: server.c installs kx_dispatch as http.c's request handler and the action runner;
 * lua_bridge.c registers action routes at boot through kx_dispatch_add_action.
 * Never: runs Lua by name: an action route goes to the runner installed with
 * kx_dispatch_set_action_runner. */
#ifndef KX_DISPATCH_H
#define KX_DISPATCH_H
#include "http.h"
#include "router.h"

typedef void (*kx_action_runner_t)(kx_conn_t *c, int action_id, const kx_route_param_t *params, int n);

/* Registers the built-in routes (once, before actions are added). */
void kx_dispatch_init(kx_server_t *s);
void kx_dispatch_set_action_runner(kx_action_runner_t run);
/* An action's route, relative to the API prefix (WEB_SERVER_API_ROUTE). */
int kx_dispatch_add_action(const char *method, const char *route, int action_id, char *err, size_t errcap);
/* A framework action on an absolute path, outside the API prefix (the OAuth endpoints:
 * /oauth/…, /.well-known/…); run by the same action runner. */
int kx_dispatch_add_absolute(const char *method, const char *route, int action_id, char *err, size_t errcap);
/* http.c's request handler. */
void kx_dispatch(kx_conn_t *c);

#endif
