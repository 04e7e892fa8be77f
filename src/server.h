/* server.h — the process-wide server context.
 *
 * Owns: the kx_server_t singleton: loop, config, route table, listener, the list of open
 * connections, the precomputed response header block, the MCP route's CORS rule and the drain flag.
 * Callers: server.c creates it before anything else and every layer reads it through kx_srv.
 * Never: holds Lua state (lua_bridge.c does) or per-connection data (conn.h). */
#ifndef KX_SERVER_H
#define KX_SERVER_H
#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include "config.h"
#include "cors.h"

struct kx_conn;
struct kx_router;
struct kx_listener;

typedef struct {
    struct ev_loop *loop;
    kx_config_t *cfg;
    struct kx_router *router;
    struct kx_listener *listener; /* NULL until listen.c starts one, and after it stops */
    int n_conns;
    struct kx_conn *conns;
    int static_root_fd;   /* O_PATH of the static directory, or -1 */
    int www_root_fd;      /* O_PATH of keryx's own pages (lua/keryx/www), or -1 */
    char *home;           /* keryx home: the directory holding lua/ */
    char *static_headers; /* precomputed X-SERVER-NAME + security headers */
    size_t static_headers_len;
    kx_cors_mcp_t mcp_cors; /* the MCP route's CORS rule (response.c) */
    bool draining;
    ev_tstamp started;
} kx_server_t;

extern kx_server_t *kx_srv;

#endif
