/* redis_script.h — the one runner for every Redis-side script in lua/redis/<name>.lua.
 *
 * Owns: the scripts' text and SHA1 (every <name>.lua of one directory, read once at boot), the
 * EVALSHA call with its single EVAL fallback on NOSCRIPT (Redis restarted, SCRIPT FLUSH, a
 * failover), on the command connection or on a named one (a task processor's).
 * Callers: main.c (load at boot, free at exit), ratelimit.c (the sliding window),
 * lua_api_redis.c (core.redis_script for keryx.scripts: presence, OAuth, tasks), tests.
 * Never: interprets a script's reply; retries anything but the one NOSCRIPT fallback; logs per
 * call; blocks.
 *
 * Every kx_redis_eval that returns an op calls `fn` exactly once — with the script's reply
 * (valid only during the call; an error reply such as "ERR …" is passed through), or with reply
 * NULL and err "closed" / "timeout" — unless kx_redis_eval_cancel comes first, after which fn
 * is never called. The op copies its arguments (the fallback sends them again). */
#ifndef KX_REDIS_SCRIPT_H
#define KX_REDIS_SCRIPT_H
#include <hiredis/hiredis.h>
#include "redis.h"

#define KX_REDIS_SCRIPT_MAX_BYTES (64 * 1024)

typedef struct kx_redis_script kx_redis_script_t;
typedef struct kx_redis_eval kx_redis_eval_t;

/* Reads every <name>.lua in dir (name: letters, digits, '_'); each must be non-empty and at
 * most KX_REDIS_SCRIPT_MAX_BYTES. Replaces what was loaded before. 0, or KX_EIO with a message
 * naming the file or directory. */
int kx_redis_scripts_load(const char *dir, char *err, size_t errcap);
void kx_redis_scripts_free(void);
/* The script called `name`, NULL when no such file was loaded. */
const kx_redis_script_t *kx_redis_script_find(const char *name);
/* Its SHA1 in lower-case hex. */
const char *kx_redis_script_sha(const kx_redis_script_t *s);

/* EVALSHA <sha> nkeys argv[0..argc-1] on conn (NULL: the command connection), each command
 * timing out after `wait` seconds (the fallback gets what is left of it). NULL when the
 * connection is down (nothing sent; fn is not called). */
kx_redis_eval_t *kx_redis_eval(kx_redis_conn_t *conn, const kx_redis_script_t *s, int nkeys, int argc,
                               const char **argv, const size_t *lens, double wait, kx_redis_fn fn, void *ud);
void kx_redis_eval_cancel(kx_redis_eval_t *e);

/* Pure helpers (tests): SHA1 as Redis names scripts; whether a reply is NOSCRIPT. */
void kx_redis_sha1_hex(const char *data, size_t n, char hex[41]);
bool kx_redis_is_noscript(const redisReply *r);

#endif
