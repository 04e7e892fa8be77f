/* ratelimit.h — the Redis side of rate limiting (a sliding window in one atomic script).
 *
 * Owns: the base-key layout `<prefix>:{<identifier>}`, the call of lua/redis/ratelimit.lua
 * (through redis_script.h: EVALSHA, EVAL once on NOSCRIPT), the batching of the checks that one
 * loop iteration asks for into one such call (sent from an ev_prepare watcher, just before the
 * loop polls, so no check waits longer than it would alone), each check's own deadline, and
 * the check of the script's reply. Callers: lua_api_ratelimit.c (checks on behalf of
 * requests), tests.
 * Never: decides what is limited or with which limit (keryx.rate_limit / keryx.middleware in
 * Lua do), runs Lua in this process, wakes tasks, logs per request, blocks.
 *
 * Every kx_ratelimit_check that returns KX_OK calls `fn` exactly once — with the result, or
 * with res NULL and err "closed" / "timeout" / the Redis error text ("ERR …", "OOM …", a
 * malformed-reply message) — unless kx_ratelimit_cancel comes first, after which fn is never
 * called. The result is valid only during the call. fn is never called from inside
 * kx_ratelimit_check itself for the check it starts. */
#ifndef KX_RATELIMIT_H
#define KX_RATELIMIT_H
#include <hiredis/hiredis.h>
#include "common.h"

#define KX_RATELIMIT_MAX_IDENTIFIER 256
#define KX_RATELIMIT_MAX_PREFIX 256
/* Bounds on what the script is asked: large enough for any real policy, small enough that
 * 2 * window and the counters stay exact in Redis' Lua doubles. */
#define KX_RATELIMIT_MAX_LIMIT 1000000000LL
#define KX_RATELIMIT_MAX_WINDOW_MS (366LL * 24 * 3600 * 1000)
/* Checks per script call; more in one iteration start another call. */
#define KX_RATELIMIT_BATCH_MAX 128

typedef struct {
    bool allowed;
    int64_t limit;
    int64_t remaining;   /* requests left in the window after this one */
    int64_t reset_at;    /* unix seconds when the current fixed window ends */
    int64_t retry_after; /* seconds; > 0 only when !allowed */
} kx_ratelimit_result_t;

typedef struct kx_ratelimit_op kx_ratelimit_op_t;
typedef void (*kx_ratelimit_fn)(void *ud, const kx_ratelimit_result_t *res, const char *err);

/* Starts one check of `<prefix>:{<identifier>}` with limit and window_ms, sent with the other
 * checks of this loop iteration: EVALSHA <sha> n key… (limit window)….
 * Returns KX_OK (fn will be called; *out is the handle to cancel with), KX_EINVAL for a bad
 * identifier, prefix, limit or window (nothing sent), KX_ECLOSED when Redis is down or the
 * script was never loaded (kx_redis_scripts_load) (nothing sent; fn is not called). */
int kx_ratelimit_check(const char *identifier, size_t idlen, int64_t limit, int64_t window_ms,
                       const char *prefix, size_t prefixlen, kx_ratelimit_fn fn, void *ud,
                       kx_ratelimit_op_t **out);
/* The same, waiting for Redis at most max_wait seconds in total (the NOSCRIPT → EVAL retry
 * included), each command also at most REDIS_COMMAND_TIMEOUT_MS; past it fn gets "timeout". */
int kx_ratelimit_check_within(const char *identifier, size_t idlen, int64_t limit, int64_t window_ms,
                              const char *prefix, size_t prefixlen, double max_wait, kx_ratelimit_fn fn,
                              void *ud, kx_ratelimit_op_t **out);
/* The caller no longer wants the answer; the op is freed and fn is never called. */
void kx_ratelimit_cancel(kx_ratelimit_op_t *op);
/* Frees the checks and batches kept for reuse: at shutdown, once Redis is stopped (which
 * answers every check still waiting). */
void kx_ratelimit_free(void);

/* ---- pure helpers (exposed for tests) ---------------------------------------------------- */

/* 1..256 bytes, none of CR, LF, NUL, '{', '}' (a brace would move or empty the hash tag and
 * split one client's windows across slots). */
bool kx_ratelimit_valid_identifier(const char *s, size_t n);
/* Same rules for the key prefix. */
bool kx_ratelimit_valid_prefix(const char *s, size_t n);
/* Writes `<prefix>:{<identifier>}` NUL-terminated into out. KX_EINVAL when either part is
 * invalid, KX_ELIMIT when out is too small. *outlen (may be NULL) gets the length. */
int kx_ratelimit_base_key(const char *prefix, size_t prefixlen, const char *identifier, size_t idlen,
                          char *out, size_t cap, size_t *outlen);
/* Splits the script's reply to a batch of n checks — one bulk string of n + 1 decimal integers
 * separated by single spaces, "now_ms code_1 … code_n" — into vals[0..n]. KX_EPROTO for
 * anything else (another reply type, an error reply included: the caller handles those first;
 * a count other than n + 1; a sign or digit out of place; more than 18 digits). */
int kx_ratelimit_split_reply(const redisReply *r, size_t n, int64_t *vals);
/* One check's result from the reply's now_ms and its code: -1 (refused) or 0 <= code < limit
 * (allowed, code requests left). reset_at (the end of the fixed window holding now_ms, in unix
 * s, rounded up) and retry_after (refused: the seconds to that end, at least 1; allowed: 0)
 * come from now_ms and window_ms, as the script computes its windows. KX_EPROTO when now_ms is
 * no plausible unix time in ms, the code is out of range, or limit/window are out of bounds. */
int kx_ratelimit_result(int64_t now_ms, int64_t code, int64_t limit, int64_t window_ms,
                        kx_ratelimit_result_t *out);

#endif
