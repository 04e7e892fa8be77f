/* redis.h — Redis connections: hiredis 0.14 async on the libev loop.
 *
 * Owns: REDIS_URL parsing; the connection lifecycle every keryx Redis connection shares (connect,
 * AUTH + SELECT on connect, connect timeout, reconnect with backoff, one log line per outage);
 * the command connection shared by every request (commands of concurrent requests are pipelined
 * on it) with a timer per command (hiredis 0.14 has no async timeouts). Callers: lua_api_redis.c,
 * redis_script.c (EVALSHA/EVAL on any connection), pubsub.c (a kx_redis_conn_t for its
 * subscriber, kx_redis_send for PUBLISH), lua_api_redis.c's named connections (a task
 * processor's own connection, so its blocking dequeue never stalls the shared one), server.c
 * (start/stop), the status action (kx_redis_ready).
 * Never: blocks; runs Lua; resumes tasks (callers wake their own task from `fn`); calls back
 * into a connection's owner except through its attach hook.
 *
 * Every kx_redis_command that returns an op calls `fn` exactly once — with the reply (valid
 * only during the call), or with reply NULL and err "closed" / "timeout" — unless the caller
 * cancels first, after which fn is never called. A late reply after a timeout is dropped. */
#ifndef KX_REDIS_H
#define KX_REDIS_H
#include <ev.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include "common.h"

typedef struct {
    char host[256];
    int port;
    char unix_path[256]; /* non-empty for unix sockets */
    char user[128];
    char password[256];
    int db;
} kx_redis_url_t;

typedef struct kx_redis_op kx_redis_op_t;
typedef void (*kx_redis_fn)(void *ud, redisReply *reply, const char *err);

/* redis://[[user]:password@]host[:port][/db]  or  unix://[[user]:password@]/path[?db=N].
 * Returns 0, or KX_EINVAL with a message naming REDIS_URL. */
int kx_redis_parse_url(const char *url, kx_redis_url_t *out, char *err, size_t errcap);
/* Parses the URL and starts connecting (never waits). */
int kx_redis_start(struct ev_loop *loop, const char *url, int64_t timeout_ms, char *err, size_t errcap);
void kx_redis_stop(void);
/* Boot only: runs the loop until the first connection attempt resolved (or `seconds`
 * passed), so the first requests do not race the connect. Returns kx_redis_ready(). */
bool kx_redis_wait_first(double seconds);
/* True while the connection is up (the status action's checks.redis). */
bool kx_redis_ready(void);
/* Sends a command. Returns NULL when the connection is down (the caller answers "closed"
 * at once: nothing is queued while Redis is unreachable). */
kx_redis_op_t *kx_redis_command(int argc, const char **argv, const size_t *argvlen, kx_redis_fn fn, void *ud);
/* The same with a shorter wait: the command times out after min(REDIS_COMMAND_TIMEOUT_MS,
 * max_wait) seconds (a request's remaining Redis budget, see lua_api.h). */
kx_redis_op_t *kx_redis_command_within(int argc, const char **argv, const size_t *argvlen, double max_wait,
                                       kx_redis_fn fn, void *ud);
/* The loop's current time (ev_now), for callers that keep a deadline across commands. */
double kx_redis_now(void);
/* The command connection's loop (NULL before kx_redis_start): for callers that batch commands
 * until the loop is about to poll (ratelimit.c). */
struct ev_loop *kx_redis_loop(void);
/* The caller no longer wants the answer (its request was aborted). */
void kx_redis_cancel(kx_redis_op_t *op);
/* Fire-and-forget on the command connection: KX_OK once queued (the reply, even an error, is
 * dropped), KX_ECLOSED when the connection is down. */
int kx_redis_send(int argc, const char **argv, const size_t *argvlen);
/* Runs the loop until the command connection has written every queued command and received
 * every reply it awaits (kx_redis_send's too), or `seconds` passed, or the connection is down.
 * True when nothing is left in flight (else logs a warning). `keryx run` calls it before exiting, so a broadcast
 * the action made reaches Redis. */
bool kx_redis_flush(double seconds);

/* ---- further connections (the pub/sub subscriber) -----------------------------------------
 * Same lifecycle code as the command connection. `label` starts each log line ("Redis
 * subscriber unreachable at 127.0.0.1:6379: …"); the command connection's label is "Redis". */
typedef struct kx_redis_conn kx_redis_conn_t;
/* Called for every new connection attempt, right after AUTH/SELECT were queued: the owner
 * queues what must run first on each new connection (the subscriber's SUBSCRIBE). */
typedef void (*kx_redis_attach_fn)(redisAsyncContext *ac, void *ud);

/* Parses the URL and starts connecting (never waits). `label` must outlive the connection. */
int kx_redis_conn_open(struct ev_loop *loop, const char *url, int64_t timeout_ms, const char *label,
                       kx_redis_attach_fn on_attach, void *ud, kx_redis_conn_t **out, char *err,
                       size_t errcap);
/* Frees the connection: hiredis calls every pending callback (also subscription callbacks)
 * with a NULL reply before this returns. */
void kx_redis_conn_close(kx_redis_conn_t *c);
/* The context of the current attempt (connecting or up), NULL while down. */
redisAsyncContext *kx_redis_conn_context(const kx_redis_conn_t *c);
bool kx_redis_conn_up(const kx_redis_conn_t *c);
/* A command on connection `c` (NULL: the command connection), under the same exactly-once
 * contract as kx_redis_command. `wait` (seconds) is the command's timeout as given, not capped
 * by REDIS_COMMAND_TIMEOUT_MS: a blocking command (BLMOVE … 1) on a connection of its own
 * passes its block time plus the usual timeout. NULL while that connection is down. */
kx_redis_op_t *kx_redis_conn_command(kx_redis_conn_t *c, int argc, const char **argv, const size_t *argvlen,
                                     double wait, kx_redis_fn fn, void *ud);
/* REDIS_COMMAND_TIMEOUT_MS in seconds (as given to kx_redis_start). */
double kx_redis_timeout(void);

#endif
