/* ratelimit.c — the Redis side of rate limiting (see ratelimit.h). */
#include "ratelimit.h"
#include "metrics.h"
#include "redis_script.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

struct kx_ratelimit_op {
    kx_ratelimit_fn fn;
    void *ud;
    kx_redis_eval_t *eval;
    int64_t limit;
    size_t keylen;
    char limit_s[24], window_s[24];
    char key[KX_RATELIMIT_MAX_PREFIX + KX_RATELIMIT_MAX_IDENTIFIER + 8];
};

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

static bool is_int(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_INTEGER;
}

int kx_ratelimit_parse_reply(const redisReply *r, int64_t want_limit, kx_ratelimit_result_t *out)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 5 || !r->element) return KX_EPROTO;
    for (size_t i = 0; i < 5; i++)
        if (!is_int(r->element[i])) return KX_EPROTO;
    int64_t allowed = r->element[0]->integer, limit = r->element[1]->integer;
    int64_t remaining = r->element[2]->integer, reset_at = r->element[3]->integer;
    int64_t retry_after = r->element[4]->integer;
    if (allowed != 0 && allowed != 1) return KX_EPROTO;
    if (limit != want_limit || remaining < 0 || remaining > limit || reset_at <= 0) return KX_EPROTO;
    /* A refusal must say when to come back; an allowance must not. */
    if (allowed ? retry_after != 0 : (retry_after <= 0 || remaining != 0)) return KX_EPROTO;
    out->allowed = allowed == 1;
    out->limit = limit;
    out->remaining = remaining;
    out->reset_at = reset_at;
    out->retry_after = retry_after;
    return KX_OK;
}

/* ---- checks ------------------------------------------------------------------------------ */

static void finish(kx_ratelimit_op_t *op, const kx_ratelimit_result_t *res, const char *err)
{
    kx_ratelimit_fn fn = op->fn;
    void *ud = op->ud;
    free(op);
    fn(ud, res, err);
}

static void on_reply(void *ud, redisReply *reply, const char *err)
{
    kx_ratelimit_op_t *op = ud;
    op->eval = NULL;
    if (!reply) {
        finish(op, NULL, err ? err : "closed");
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        char msg[512];
        snprintf(msg, sizeof msg, "%.*s", (int)(reply->len < 500 ? reply->len : 500),
                 reply->str ? reply->str : "ERR");
        finish(op, NULL, msg);
        return;
    }
    kx_ratelimit_result_t res;
    if (kx_ratelimit_parse_reply(reply, op->limit, &res) != KX_OK) {
        finish(op, NULL, "ERR malformed reply from the rate-limit script");
        return;
    }
    if (!res.allowed) kx_metrics_count(KX_METRIC_RATE_LIMIT_REFUSED);
    finish(op, &res, NULL);
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
    kx_ratelimit_op_t *op = kx_xcalloc(1, sizeof *op);
    if (kx_ratelimit_base_key(prefix, prefixlen, identifier, idlen, op->key, sizeof op->key, &op->keylen) !=
        KX_OK) {
        free(op);
        return KX_EINVAL;
    }
    const kx_redis_script_t *script = kx_redis_script_find("ratelimit");
    if (!script) {
        free(op);
        return KX_ECLOSED;
    }
    op->fn = fn;
    op->ud = ud;
    op->limit = limit;
    snprintf(op->limit_s, sizeof op->limit_s, "%" PRId64, limit);
    snprintf(op->window_s, sizeof op->window_s, "%" PRId64, window_ms);
    const char *argv[3] = { op->key, op->limit_s, op->window_s };
    size_t lens[3] = { op->keylen, strlen(op->limit_s), strlen(op->window_s) };
    double wait = max_wait < kx_redis_timeout() ? max_wait : kx_redis_timeout();
    op->eval = kx_redis_eval(NULL, script, 1, 3, argv, lens, wait, on_reply, op);
    if (!op->eval) {
        free(op);
        return KX_ECLOSED;
    }
    *out = op;
    return KX_OK;
}

void kx_ratelimit_cancel(kx_ratelimit_op_t *op)
{
    if (!op) return;
    if (op->eval) kx_redis_eval_cancel(op->eval);
    free(op);
}
