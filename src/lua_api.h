/* lua_api.h — the one header of the Lua bindings (lua_api*.c): what they share with
 * lua_bridge.c, the helpers they share with each other, and every kx_lua_open_<area>.
 *
 * Owns: nothing. Callers: lua_api*.c and lua_bridge.c (open_core calls each open function
 * once, with the core table on top of the stack). A binding that waits must: check its
 * arguments, check it runs inside a task (kx_lua_require_task), park (kx_task_set_wait or a
 * kx_lua_wait_t), start its operation, and `return lua_yield(L, 0)`; the completion pushes
 * results on the task's thread and calls kx_task_wake(task, nresults) — never lua_resume.
 * Never: a binding keeps a kx_task_t past its completion or cancel. */
#ifndef KX_LUA_API_H
#define KX_LUA_API_H
#include "http.h"
#include <lua.h>

typedef struct kx_task kx_task_t;

/* ---- tasks (lua_bridge.c) ------------------------------------------------------------------ */

kx_task_t *kx_lua_current_task(void);
bool kx_task_aborted(const kx_task_t *t);
lua_State *kx_task_thread(kx_task_t *t);
void kx_task_wake(kx_task_t *t, int nargs);
/* While parked on an operation, `cancel(ud)` is how the action timeout abandons it; clear
 * with (NULL, NULL) when the operation completes, before waking the task. */
void kx_task_set_wait(kx_task_t *t, void (*cancel)(void *ud), void *ud);
/* The connection of a web task while it still waits for this task's answer (open, same
 * request); NULL otherwise and for every other kind of task. */
kx_conn_t *kx_task_web_conn(const kx_task_t *t);
/* Whether t answers an HTTP request (false for CLI, WebSocket events, timers, and NULL). */
bool kx_task_is_web(const kx_task_t *t);
/* A web task's streamed response (lua_api_http.c): once it is not NONE the web epilogue
 * sends no answer of its own and ends the stream if it is still OPEN. */
typedef enum { KX_STREAM_NONE, KX_STREAM_OPEN, KX_STREAM_ENDED } kx_stream_t;
kx_stream_t kx_task_stream(const kx_task_t *t);
void kx_task_set_stream(kx_task_t *t, kx_stream_t s);
/* The main Lua state (for values built outside a coroutine, e.g. pipeline results). */
lua_State *kx_lua_main(void);
/* Lending a task's Lua string to the write queue instead of copying it (kx_http_send_lent,
 * kx_http_write_lent): pass kx_lua_lend_release with the record kx_lua_lend_new made, then
 * call kx_lua_lend_keep with the string's stack slot once the C call returned: it anchors the
 * string in the task's VM while the queue still holds it (the VM outlives it), or frees the
 * record when the queue is already done with it. */
typedef struct kx_lua_lend kx_lua_lend_t;
kx_lua_lend_t *kx_lua_lend_new(kx_task_t *t);
void kx_lua_lend_release(void *ud);
void kx_lua_lend_keep(kx_lua_lend_t *l, lua_State *L, int idx);
/* The main state of the VM task t runs in (kx_lua_main is the newest VM's; after a reload a
 * task of the previous one keeps its own: registry refs it takes must be made there). */
lua_State *kx_task_main(const kx_task_t *t);
/* A request (web, CLI, one WebSocket message) waits for Redis REDIS_COMMAND_TIMEOUT_MS in
 * total, however many calls it makes: a stalled Redis costs it one timeout, not one per call
 * (README "What the C core enforces"). Time between calls (sleep, hashing) is not counted, so
 * a long action is not cut short. Before sending, a binding asks kx_task_redis_begin how long
 * this call may wait (seconds; <= 0: the budget is spent, answer "timeout" without sending) —
 * that starts the clock; the completion (or a send that failed) calls kx_task_redis_end
 * before waking.
 * Tasks that are not requests (heartbeat, socket close) have no budget: only the per-command
 * timeout applies to them. */
double kx_task_redis_begin(kx_task_t *t);
void kx_task_redis_end(kx_task_t *t);

/* ---- shared helpers (lua_api.c) ------------------------------------------------------------ */

/* The running task when L is its own coroutine; raises "<fn> called outside a request" else. */
kx_task_t *kx_lua_require_task(lua_State *L, const char *fn);
/* Pushes nil, why (the soft-failure shape of every waiting binding); returns 2. */
int kx_lua_push_fail(lua_State *L, const char *why);
/* Raises "<fn>: <what> must be a string, got <type>" unless the argument at idx is a string
 * (numbers are not coerced). */
void kx_lua_check_string(lua_State *L, int idx, const char *fn, const char *what);
/* Pushes whether the first argument is a string that `valid` (one of the C rules: channel
 * names, correlation ids, queue names) accepts; anything but a string is invalid. Returns 1. */
int kx_lua_push_valid(lua_State *L, bool (*valid)(const char *s, size_t n));

/* One task parked on one cancellable operation: the record the completion and the action
 * timeout share. The binding fills `op` once the operation has started, then calls
 * kx_lua_wait_park; exactly one of these ends the record: the completion calls
 * kx_lua_wait_done, the timeout runs cancel_op(op) (through the task's wait hook), or — when
 * the operation never started — kx_lua_wait_abandon. */
typedef struct {
    kx_task_t *task;
    void *op;
    void (*cancel_op)(void *op);
} kx_lua_wait_t;

kx_lua_wait_t *kx_lua_wait_new(kx_task_t *t, void (*cancel_op)(void *op));
void kx_lua_wait_park(kx_lua_wait_t *w);
/* Frees w and clears the task's wait hook; returns the task to push results on and wake. */
kx_task_t *kx_lua_wait_done(kx_lua_wait_t *w);
void kx_lua_wait_abandon(kx_lua_wait_t *w);
/* Frees the wait records kept for reuse (kx_lua_close, once no task waits any more). */
void kx_lua_waits_free(void);

/* ---- the areas: each adds its functions to the table on top of the stack ------------------- */

/* lua_api_util.c — non-waiting utilities: log, log_enabled, now_ms, clock_ms, pid, uptime_ms,
 * rss, list_dir; and the values config (nested table), version, home. */
void kx_lua_open_util(lua_State *L, kx_server_t *s);

/* lua_api_redis.c — redis_call, redis_pipeline (both yield), redis_ready, redis_null. */
void kx_lua_open_redis(lua_State *L);

/* lua_api_crypto.c — ids and password hashing (hashing runs on crypto.c's worker pool):
 *   core.random_id()                  → 43-char base64url id (raises if the CSPRNG fails)
 *   core.valid_id(s)                  → boolean (false for non-strings)
 *   core.hash_password(pw)            → "scrypt$…" | nil, "busy"|"aborted"|"invalid password"|"failed"
 *   core.verify_password(pw, stored)  → true | false | nil, "busy"|"aborted"
 * The last two yield the request's coroutine and raise outside a request task or when given
 * non-string arguments. */
void kx_lua_open_crypto(lua_State *L);

/* lua_api_ws.c — sockets by id and pub/sub: ws_send, ws_close, ws_subscribe, ws_unsubscribe,
 * ws_is_subscribed, ws_subscription_count, ws_count, channel_name_valid, publish. */
void kx_lua_open_ws(lua_State *L);

/* lua_api_ratelimit.c — rate_limit(identifier, limit, window_ms, prefix) (yields), sha1_hex.
 * Never decides limits or identities (keryx.rate_limit does). */
void kx_lua_open_ratelimit(lua_State *L);

/* lua_api_mcp.c — the /mcp header checks: mcp_origin, mcp_origin_allowed, mcp_host,
 * mcp_bearer, mcp_version_ok (none waits). */
void kx_lua_open_mcp(lua_State *L);

/* lua_api_http.c — what a web task may read of its request: req_header(name); and its
 * streamed response: stream_begin, stream_write, stream_event (both may yield on
 * backpressure), stream_end. */
void kx_lua_open_http(lua_State *L);

/* lua_api_metrics.c — metrics_action(name, ok, ms) and metrics_task(kind, action, ok): the
 * counts the Lua side sees (metrics.h); no-ops while metrics are off. */
void kx_lua_open_metrics(lua_State *L);

/* lua_api_json.c — json_encode(value, array_mt, empty_array): lua/keryx/json.lua's encoder in
 * C (same bytes; nil where json.lua's Lua encoder must answer, errors included). */
void kx_lua_open_json(lua_State *L);
/* Appends the JSON of the value at absolute index idx to b, as json_encode would return it
 * (array_mt and empty: absolute indexes of json.lua's marks); false where json_encode answers
 * nil (b then holds a partial text). */
bool kx_lua_json_encode_into(lua_State *L, int idx, int array_mt, int empty, kx_buf_t *b);

#endif
