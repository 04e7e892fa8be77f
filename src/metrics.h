/* metrics.h — Prometheus metrics (README "Metrics"): counters, gauges and histograms kept in
 * shared memory, rendered in the text exposition format 0.0.4.
 *
 * Owns: one region mapped MAP_SHARED|MAP_ANONYMOUS by kx_metrics_init at boot, before any
 * fork, so every worker process adds to the same counters (atomic adds) and whichever worker
 * answers a scrape reports the sums; the label tables (route patterns, action names) inside it,
 * fixed in size — a label set beyond them counts under "other", so memory never grows with
 * what clients send (the route label is the pattern a request matched, never its path); the
 * rendering; and the Basic-auth check of the metrics route (constant-time).
 * Gauges (open connections, WebSockets) are kept per process (a slot claimed by pid on first
 * use): a worker that dies takes its open connections with it, and a scrape sums only the
 * slots of live processes.
 * Callers: main.c (kx_metrics_init when OTEL_METRICS_ENABLED, before the listener); the layer
 * that sees each event counts it: conn.c (connections), http.c (a request answered), ws.c
 * (sockets, messages), ratelimit.c (refusals), redis.c (errors), dispatch.c (route labels, the
 * metrics route), the Lua bindings (core.metrics_action, core.metrics_task).
 * Never: allocates, locks or makes a system call on a counting path — except the first use of
 * a label (added under a spin lock: route patterns at boot, an action name at its first run) and
 * a process's first gauge update (getpid and kill(pid, 0) to claim its slot); counts anything
 * before kx_metrics_init (every function is then a no-op, so a build or test without metrics
 * pays one branch). A worker that dies holding the label lock (a few stores long) would stall
 * label registration; a dead worker's pid reused by another process keeps its gauges counted. */
#ifndef KX_METRICS_H
#define KX_METRICS_H
#include "buf.h"
#include "common.h"

#define KX_METRICS_MAX_ROUTES 128  /* route label slots, the fixed ones below included */
#define KX_METRICS_MAX_ACTIONS 128 /* action label slots, "other" included */
#define KX_METRICS_NAME_MAX 96     /* a longer route pattern or action name is cut */
#define KX_METRICS_PROCS 256       /* processes whose gauges are kept */

/* Fixed route labels: a request answered before or without a route, a static file, and the
 * route table beyond KX_METRICS_MAX_ROUTES. kx_metrics_route returns the others. */
enum { KX_METRICS_ROUTE_UNKNOWN = 0, KX_METRICS_ROUTE_STATIC = 1, KX_METRICS_ROUTE_OTHER = 2 };

typedef enum {
    KX_METRIC_WS_MESSAGES,        /* keryx_ws_messages_total */
    KX_METRIC_RATE_LIMIT_REFUSED, /* keryx_rate_limit_refusals_total */
    KX_METRIC_REDIS_ERRORS,       /* keryx_redis_errors_total */
    KX_METRIC_N_COUNTERS
} kx_metric_counter_t;

typedef enum {
    KX_GAUGE_CONNECTIONS,    /* keryx_system_connections: open client connections */
    KX_GAUGE_WS_CONNECTIONS, /* keryx_ws_connections */
    KX_GAUGE_N
} kx_metric_gauge_t;

typedef enum { KX_TASK_ENQUEUED, KX_TASK_EXECUTED } kx_metric_task_t;

/* Maps the shared region (once; later calls do nothing). KX_EIO with err filled on failure. */
int kx_metrics_init(char *err, size_t errcap);
bool kx_metrics_enabled(void);

/* The label of a route pattern (e.g. "/api/user/:id"): found or added (spin lock: boot only).
 * KX_METRICS_ROUTE_OTHER once the table is full; KX_METRICS_ROUTE_UNKNOWN before init. */
int kx_metrics_route(const char *pattern);

/* One HTTP response ended: method (counted string; other than the seven usual ones counts as
 * "other"), route label, status, seconds since the request head arrived (< 0: not timed). */
void kx_metrics_http(const char *method, size_t mlen, int route, int status, double seconds);
/* One action run through the pipeline (any transport). */
void kx_metrics_action(const char *name, size_t len, bool ok, double seconds);
/* A task enqueued, or executed (ok: success or failure) — the tasks code calls this. */
void kx_metrics_task(kx_metric_task_t kind, const char *action, size_t len, bool ok);
void kx_metrics_count(kx_metric_counter_t which);
void kx_metrics_gauge_add(kx_metric_gauge_t which, int delta);

/* Appends every metric in the text exposition format 0.0.4. */
void kx_metrics_render(kx_buf_t *out);

/* The value of an Authorization header (NULL when absent) against user and password: "Basic "
 * then base64 of "user:password" (the password is everything after the first colon). Both are
 * compared in constant time (of their SHA-256). */
bool kx_metrics_auth_ok(const char *header, size_t len, const char *user, const char *password);

#endif
