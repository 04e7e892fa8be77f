/* ratelimit.c — the Redis side of rate limiting (see ratelimit.h). */
#include "ratelimit.h"
#include "json_number.h"
#include "lua_alloc.h"
#include "metrics.h"
#include "redis_script.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* A check waits in the pending batch until the loop is about to poll (an ev_prepare watcher),
 * then goes out with the other checks of the same iteration in one EVALSHA (see
 * lua/redis/ratelimit.lua). Each check keeps its own deadline and is answered "timeout" at it,
 * alone; a check that left its batch (timed out, cancelled) has its slot set to NULL. The
 * deadlines share one timer (see on_deadline): under load dozens of checks are in flight, and a
 * libev timer each cost a heap insertion and removal per request. */
typedef struct batch batch_t;

struct kx_ratelimit_op {
    kx_ratelimit_fn fn;
    void *ud;
    batch_t *batch; /* NULL once answered, timed out or cancelled */
    int slot;       /* index in batch->ops */
    int64_t limit, window_ms;
    double deadline;                /* ev_now time past which it is answered "timeout" */
    uint64_t seq;                   /* when it started, in checks */
    kx_ratelimit_op_t *prev, *next; /* the checks in flight, oldest first */
    size_t keylen;
    char key[KX_RATELIMIT_MAX_PREFIX + KX_RATELIMIT_MAX_IDENTIFIER + 8];
};

struct batch {
    kx_redis_eval_t *eval; /* NULL while pending */
    int n;
    kx_ratelimit_op_t *ops[KX_RATELIMIT_BATCH_MAX];
};

/* Answered ops and sent batches are kept for the next ones instead of going back to malloc:
 * under load every request makes an op, and an op (its key buffer) and a batch (1 KiB of
 * slots) are too big for a cheap allocation. */
static struct {
    struct ev_loop *loop;
    ev_prepare prepare;
    batch_t *pending;
    kx_spare_t ops, batches;
    kx_ratelimit_op_t *head, *tail; /* every check not yet answered or cancelled */
    ev_timer deadline;              /* armed while any is: at the earliest deadline, or before */
    uint64_t seq;                   /* checks started so far */
} R = { .ops = { .size = sizeof(kx_ratelimit_op_t), .cap = 256 },
        .batches = { .size = sizeof(batch_t), .cap = 1 } };

/* ---- pure helpers ------------------------------------------------------------------------ */

static bool valid_part(const char *s, size_t n, size_t max)
{
    if (!s || n == 0 || n > max) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\r' || c == '\n' || c == '\0' || c == '{' || c == '}') return false;
    }
    return true;
}

bool kx_ratelimit_valid_identifier(const char *s, size_t n)
{
    return valid_part(s, n, KX_RATELIMIT_MAX_IDENTIFIER);
}

bool kx_ratelimit_valid_prefix(const char *s, size_t n)
{
    return valid_part(s, n, KX_RATELIMIT_MAX_PREFIX);
}

int kx_ratelimit_base_key(const char *prefix, size_t prefixlen, const char *identifier, size_t idlen,
                          char *out, size_t cap, size_t *outlen)
{
    if (!kx_ratelimit_valid_prefix(prefix, prefixlen) || !kx_ratelimit_valid_identifier(identifier, idlen))
        return KX_EINVAL;
    size_t need = prefixlen + 2 + idlen + 1; /* ":{" … "}" */
    if (!out || cap < need + 1) return KX_ELIMIT;
    char *p = out;
    memcpy(p, prefix, prefixlen);
    p += prefixlen;
    *p++ = ':';
    *p++ = '{';
    memcpy(p, identifier, idlen);
    p += idlen;
    *p++ = '}';
    *p = '\0';
    if (outlen) *outlen = need;
    return KX_OK;
}

/* One decimal integer (an optional '-', 1 to 18 digits: no overflow) at *p, up to `end`;
 * advances *p past it. */
static bool take_int(const char **p, const char *end, int64_t *out)
{
    const char *s = *p;
    bool neg = s < end && *s == '-';
    if (neg) s++;
    int64_t v = 0;
    int digits = 0;
    for (; s < end && *s >= '0' && *s <= '9'; s++, digits++) {
        if (digits == 18) return false;
        v = v * 10 + (*s - '0');
    }
    if (digits == 0) return false;
    *out = neg ? -v : v;
    *p = s;
    return true;
}

int kx_ratelimit_split_reply(const redisReply *r, size_t n, int64_t *vals)
{
    if (!r || r->type != REDIS_REPLY_STRING || !r->str || n == 0 || n > KX_RATELIMIT_BATCH_MAX)
        return KX_EPROTO;
    const char *p = r->str, *end = r->str + r->len;
    for (size_t i = 0; i <= n; i++) {
        if (i > 0 && (p >= end || *p++ != ' ')) return KX_EPROTO;
        if (!take_int(&p, end, &vals[i])) return KX_EPROTO;
    }
    return p == end ? KX_OK : KX_EPROTO;
}

int kx_ratelimit_result(int64_t now_ms, int64_t code, int64_t limit, int64_t window_ms,
                        kx_ratelimit_result_t *out)
{
    if (limit < 0 || limit > KX_RATELIMIT_MAX_LIMIT || window_ms < 1 ||
        window_ms > KX_RATELIMIT_MAX_WINDOW_MS)
        return KX_EPROTO;
    /* A clock before 2001 or past year 2286 is no Redis TIME; the bound keeps the sums exact. */
    if (now_ms < 1000000000000LL || now_ms > 9999999999999LL) return KX_EPROTO;
    /* Allowed: what is left after this request, below the limit; refused: -1. */
    if (code < -1 || code >= limit) return KX_EPROTO;
    int64_t w = now_ms / window_ms, elapsed = now_ms - w * window_ms;
    out->allowed = code >= 0;
    out->limit = limit;
    out->remaining = code >= 0 ? code : 0;
    out->reset_at = ((w + 1) * window_ms + 999) / 1000;
    /* Refused: come back when this fixed window ends (at least 1 s); allowed: no delay. */
    int64_t retry = (window_ms - elapsed + 999) / 1000;
    out->retry_after = code >= 0 ? 0 : (retry < 1 ? 1 : retry);
    return KX_OK;
}

/* ---- checks ------------------------------------------------------------------------------ */

static void batch_free(batch_t *b)
{
    kx_spare_put(&R.batches, b);
}

/* For an op never put in flight (refused before it was queued). */
static void op_release(kx_ratelimit_op_t *op)
{
    kx_spare_put(&R.ops, op);
}

static void link_op(kx_ratelimit_op_t *op)
{
    op->next = NULL;
    op->prev = R.tail;
    if (R.tail) R.tail->next = op;
    else R.head = op;
    R.tail = op;
}

static void unlink_op(kx_ratelimit_op_t *op)
{
    if (op->prev) op->prev->next = op->next;
    else R.head = op->next;
    if (op->next) op->next->prev = op->prev;
    else R.tail = op->prev;
}

/* The timer fires at the deadline it was armed for even when that check was answered since:
 * it then finds nothing due and re-arms for the earliest one left (at most once per deadline
 * span, so cheap). It is never re-armed later than a check's deadline. */
static void arm_deadline(double at)
{
    if (ev_is_active(&R.deadline)) {
        if (ev_timer_remaining(R.loop, &R.deadline) + ev_now(R.loop) <= at) return;
        ev_timer_stop(R.loop, &R.deadline);
    }
    double after = at - ev_now(R.loop);
    ev_timer_set(&R.deadline, after > 0 ? after : 0., 0.);
    ev_timer_start(R.loop, &R.deadline);
}

static void op_free(kx_ratelimit_op_t *op)
{
    unlink_op(op);
    op_release(op);
}

/* Takes op out of its batch and answers it: the op is freed before fn runs (fn may start the
 * next check). */
static void answer(kx_ratelimit_op_t *op, const kx_ratelimit_result_t *res, const char *err)
{
    if (op->batch) op->batch->ops[op->slot] = NULL;
    op->batch = NULL;
    kx_ratelimit_fn fn = op->fn;
    void *ud = op->ud;
    op_free(op);
    fn(ud, res, err);
}

static void batch_fail(batch_t *b, const char *err)
{
    for (int i = 0; i < b->n; i++)
        if (b->ops[i]) answer(b->ops[i], NULL, err);
    batch_free(b);
}

static void on_reply(void *ud, redisReply *reply, const char *err)
{
    batch_t *b = ud;
    b->eval = NULL;
    if (!reply) {
        batch_fail(b, err ? err : "closed");
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        char msg[512];
        snprintf(msg, sizeof msg, "%.*s", (int)(reply->len < 500 ? reply->len : 500),
                 reply->str ? reply->str : "ERR");
        batch_fail(b, msg);
        return;
    }
    int64_t vals[KX_RATELIMIT_BATCH_MAX + 1];
    bool parsed = kx_ratelimit_split_reply(reply, (size_t)b->n, vals) == KX_OK;
    for (int i = 0; i < b->n; i++) {
        kx_ratelimit_op_t *op = b->ops[i];
        if (!op) continue;
        kx_ratelimit_result_t res;
        if (!parsed || kx_ratelimit_result(vals[0], vals[i + 1], op->limit, op->window_ms, &res) != KX_OK) {
            answer(op, NULL, "ERR malformed reply from the rate-limit script");
            continue;
        }
        if (!res.allowed) kx_metrics_count(KX_METRIC_RATE_LIMIT_REFUSED);
        answer(op, &res, NULL);
    }
    batch_free(b);
}

/* Sends the pending batch: EVALSHA <sha> n key_1 … key_n limit_1 window_1 … limit_n window_n,
 * or only limit window when every check has the same (the usual case: one policy). */
static void flush(void)
{
    batch_t *b = R.pending;
    R.pending = NULL;
    if (R.loop) ev_prepare_stop(R.loop, &R.prepare);
    if (!b) return;
    int n = 0; /* compact: checks cancelled while pending leave no hole */
    for (int i = 0; i < b->n; i++) {
        kx_ratelimit_op_t *op = b->ops[i];
        if (!op) continue;
        op->slot = n;
        b->ops[n++] = op;
    }
    b->n = n;
    if (n == 0) {
        batch_free(b);
        return;
    }
    const kx_redis_script_t *script = kx_redis_script_find("ratelimit");
    const char *argv[3 * KX_RATELIMIT_BATCH_MAX];
    size_t lens[3 * KX_RATELIMIT_BATCH_MAX];
    char nums[2 * KX_RATELIMIT_BATCH_MAX][24]; /* kx_json_int64 writes at most 21 */
    bool shared = true; /* one limit and window for all: sent once (lua/redis/ratelimit.lua) */
    for (int i = 0; i < n; i++) {
        kx_ratelimit_op_t *op = b->ops[i];
        argv[i] = op->key;
        lens[i] = op->keylen;
        shared = shared && op->limit == b->ops[0]->limit && op->window_ms == b->ops[0]->window_ms;
    }
    int pairs = shared ? 1 : n;
    for (int i = 0; i < pairs; i++) {
        for (int k = 0; k < 2; k++) {
            char *s = nums[2 * i + k];
            argv[n + 2 * i + k] = s;
            lens[n + 2 * i + k] = kx_json_int64(k == 0 ? b->ops[i]->limit : b->ops[i]->window_ms, s);
        }
    }
    /* Each check keeps its own deadline; the call itself gets the usual command timeout. */
    b->eval = script
                  ? kx_redis_eval(NULL, script, n, n + 2 * pairs, argv, lens, kx_redis_timeout(), on_reply, b)
                  : NULL;
    if (!b->eval) batch_fail(b, "closed");
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    flush();
}

/* A timer may fire a hair before the time it was set for; a check this close is due. */
#define DEADLINE_SLACK 1e-3

static kx_ratelimit_op_t *first_due(double now, uint64_t before)
{
    for (kx_ratelimit_op_t *op = R.head; op; op = op->next)
        if (op->seq < before && op->deadline <= now + DEADLINE_SLACK) return op;
    return NULL;
}

/* Answers every check past its deadline, one at a time from the head: an answer may start or
 * cancel other checks, so the list is walked afresh after each. Checks started by those
 * answers wait for the next firing, as they would for a timer of their own. */
static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    uint64_t before = R.seq;
    kx_ratelimit_op_t *op;
    while ((op = first_due(ev_now(loop), before))) answer(op, NULL, "timeout");
    double next = 0;
    for (op = R.head; op; op = op->next)
        if (next == 0 || op->deadline < next) next = op->deadline;
    if (next > 0) arm_deadline(next);
}

int kx_ratelimit_check(const char *identifier, size_t idlen, int64_t limit, int64_t window_ms,
                       const char *prefix, size_t prefixlen, kx_ratelimit_fn fn, void *ud,
                       kx_ratelimit_op_t **out)
{
    /* No budget of its own: each command still times out after REDIS_COMMAND_TIMEOUT_MS. */
    return kx_ratelimit_check_within(identifier, idlen, limit, window_ms, prefix, prefixlen, 1e9, fn, ud,
                                     out);
}

int kx_ratelimit_check_within(const char *identifier, size_t idlen, int64_t limit, int64_t window_ms,
                              const char *prefix, size_t prefixlen, double max_wait, kx_ratelimit_fn fn,
                              void *ud, kx_ratelimit_op_t **out)
{
    *out = NULL;
    if (!fn || limit < 0 || limit > KX_RATELIMIT_MAX_LIMIT || window_ms < 1 ||
        window_ms > KX_RATELIMIT_MAX_WINDOW_MS)
        return KX_EINVAL;
    kx_ratelimit_op_t *op = kx_spare_get(&R.ops);
    if (kx_ratelimit_base_key(prefix, prefixlen, identifier, idlen, op->key, sizeof op->key, &op->keylen) !=
        KX_OK) {
        op_release(op);
        return KX_EINVAL;
    }
    /* Nothing is queued while Redis is unreachable: the caller answers at once, and the refusal
     * counts as a Redis error, as redis.c counts a command refused while its connection is down. */
    struct ev_loop *loop = kx_redis_loop();
    /* A batch pending in this iteration means the script was there when it began (flush looks
     * again before sending): one lookup per batch, not per check. */
    if (!R.pending && !kx_redis_script_find("ratelimit")) {
        op_release(op);
        return KX_ECLOSED;
    }
    if (!kx_redis_ready() || !loop) {
        kx_metrics_count(KX_METRIC_REDIS_ERRORS);
        op_release(op);
        return KX_ECLOSED;
    }
    if (!R.loop) {
        R.loop = loop;
        ev_prepare_init(&R.prepare, on_prepare);
        ev_init(&R.deadline, on_deadline);
    }
    if (R.pending && R.pending->n == KX_RATELIMIT_BATCH_MAX) flush();
    if (!R.pending) {
        R.pending = kx_spare_get(&R.batches);
        ev_prepare_start(R.loop, &R.prepare);
    }
    op->fn = fn;
    op->ud = ud;
    op->limit = limit;
    op->window_ms = window_ms;
    op->batch = R.pending;
    op->slot = R.pending->n;
    R.pending->ops[R.pending->n++] = op;
    double wait = max_wait < kx_redis_timeout() ? max_wait : kx_redis_timeout();
    op->deadline = ev_now(R.loop) + (wait > 0 ? wait : 0.);
    op->seq = R.seq++;
    link_op(op);
    arm_deadline(op->deadline);
    *out = op;
    return KX_OK;
}

void kx_ratelimit_cancel(kx_ratelimit_op_t *op)
{
    if (!op) return;
    /* A batch already sent keeps waiting for its reply (the other checks need it); this
     * check's slot is simply skipped then. */
    if (op->batch) op->batch->ops[op->slot] = NULL;
    op_free(op);
}

void kx_ratelimit_free(void)
{
    kx_spare_clear(&R.ops);
    kx_spare_clear(&R.batches);
}
