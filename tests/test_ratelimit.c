/* test_ratelimit.c — the pure parts of ratelimit.c: identifier/prefix rules, the base key,
 * the script-reply check, and the refusals of
 * kx_ratelimit_check that happen before anything is sent; then each check's own deadline,
 * against a peer that accepts the connection and never answers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include "ratelimit.h"
#include "redis.h"
#include "redis_script.h"

/* ---- identifiers and keys ----------------------------------------------------------------- */

static void test_identifier_rules(void **state)
{
    (void)state;
    assert_true(kx_ratelimit_valid_identifier("ip:127.0.0.1", 12));
    assert_true(kx_ratelimit_valid_identifier("ip:::1", 6));
    assert_true(kx_ratelimit_valid_identifier("user:7", 6));
    assert_true(kx_ratelimit_valid_identifier("x", 1));
    char big[300];
    memset(big, 'a', sizeof big);
    assert_true(kx_ratelimit_valid_identifier(big, 256));
    assert_false(kx_ratelimit_valid_identifier(big, 257));
    assert_false(kx_ratelimit_valid_identifier("", 0));
    assert_false(kx_ratelimit_valid_identifier(NULL, 3));
    assert_false(kx_ratelimit_valid_identifier("a{b", 3));
    assert_false(kx_ratelimit_valid_identifier("a}b", 3));
    assert_false(kx_ratelimit_valid_identifier("{}", 2));
    assert_false(kx_ratelimit_valid_identifier("a\rb", 3));
    assert_false(kx_ratelimit_valid_identifier("a\nb", 3));
    assert_false(kx_ratelimit_valid_identifier("a\0b", 3)); /* counted length sees past the NUL */
    assert_true(kx_ratelimit_valid_prefix("ratelimit", 9));
    assert_true(kx_ratelimit_valid_prefix("ratelimit:oauth-register", 24));
    assert_false(kx_ratelimit_valid_prefix("rl{", 3));
    assert_false(kx_ratelimit_valid_prefix("", 0));
    assert_false(kx_ratelimit_valid_prefix(big, 257));
}

static void test_base_key(void **state)
{
    (void)state;
    char out[64];
    size_t n = 0;
    assert_int_equal(kx_ratelimit_base_key("ratelimit", 9, "ip:127.0.0.1", 12, out, sizeof out, &n), KX_OK);
    assert_string_equal(out, "ratelimit:{ip:127.0.0.1}");
    assert_int_equal(n, strlen("ratelimit:{ip:127.0.0.1}"));
    assert_int_equal(kx_ratelimit_base_key("p", 1, "user:7", 6, out, sizeof out, NULL), KX_OK);
    assert_string_equal(out, "p:{user:7}");
    /* "p:{ab}" is 6 bytes: needs 7 with the NUL */
    memset(out, 'Z', sizeof out);
    assert_int_equal(kx_ratelimit_base_key("p", 1, "ab", 2, out, 6, &n), KX_ELIMIT);
    assert_int_equal(out[0], 'Z'); /* nothing written on refusal */
    assert_int_equal(kx_ratelimit_base_key("p", 1, "ab", 2, out, 7, &n), KX_OK);
    assert_string_equal(out, "p:{ab}");
    assert_int_equal(kx_ratelimit_base_key("p", 1, "a}b", 3, out, sizeof out, &n), KX_EINVAL);
    assert_int_equal(kx_ratelimit_base_key("p{", 2, "ab", 2, out, sizeof out, &n), KX_EINVAL);
    assert_int_equal(kx_ratelimit_base_key("p", 1, "", 0, out, sizeof out, &n), KX_EINVAL);
    assert_int_equal(kx_ratelimit_base_key("p", 1, "a\r\nSET x y", 11, out, sizeof out, &n), KX_EINVAL);
    assert_int_equal(kx_ratelimit_base_key("p", 1, "ab", 2, NULL, 0, &n), KX_ELIMIT);
}

/* ---- replies -------------------------------------------------------------------------------- */

/* The script's reply to a batch: one bulk string "v0 v1 …". */
typedef struct {
    redisReply r;
    char text[256];
} fake_reply_t;

static void make_reply(fake_reply_t *f, size_t n, const long long *v)
{
    memset(f, 0, sizeof *f);
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(f->text + len, sizeof f->text - len, i ? " %lld" : "%lld", v[i]);
    f->r.type = REDIS_REPLY_STRING;
    f->r.str = f->text;
    f->r.len = len;
}

static int split_text(const char *text, size_t n, int64_t *vals)
{
    redisReply r = { 0 };
    r.type = REDIS_REPLY_STRING;
    r.str = (char *)text;
    r.len = strlen(text);
    return kx_ratelimit_split_reply(&r, n, vals);
}

/* Check i of a batch of n whose reply is "now_ms codes…". */
static int parse_of(size_t n, size_t i, const long long *v, int64_t limit, int64_t window,
                    kx_ratelimit_result_t *out)
{
    fake_reply_t f;
    int64_t vals[KX_RATELIMIT_BATCH_MAX + 1];
    make_reply(&f, n + 1, v);
    if (i >= n || kx_ratelimit_split_reply(&f.r, n, vals) != KX_OK) return KX_EPROTO;
    return kx_ratelimit_result(vals[0], vals[i + 1], limit, window, out);
}

/* now = 1700000000500 ms: 500 ms into its second, 20 s 500 ms into its minute. */
#define NOW 1700000000500LL

static void test_parse_good(void **state)
{
    (void)state;
    kx_ratelimit_result_t r;
    long long v[4] = { NOW, 19, -1, 0 };
    assert_int_equal(parse_of(3, 0, v, 20, 60000, &r), KX_OK);
    assert_true(r.allowed);
    assert_int_equal(r.limit, 20);
    assert_int_equal(r.remaining, 19);
    assert_int_equal(r.reset_at, 1700000040); /* the minute window [1699999980, 1700000040) */
    assert_int_equal(r.retry_after, 0);
    assert_int_equal(parse_of(3, 1, v, 20, 60000, &r), KX_OK);
    assert_false(r.allowed);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.reset_at, 1700000040);
    assert_int_equal(r.retry_after, 40);                     /* 39.5 s left, rounded up */
    assert_int_equal(parse_of(3, 2, v, 5, 1000, &r), KX_OK); /* the last allowed request */
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.reset_at, 1700000001);
    v[1] = -1;
    assert_int_equal(parse_of(3, 0, v, 0, 60000, &r), KX_OK); /* limit 0 refuses everything */
    assert_false(r.allowed);
    /* A refusal in a window shorter than a second still says "at least 1 s". */
    long long s[2] = { NOW, -1 };
    assert_int_equal(parse_of(1, 0, s, 3, 100, &r), KX_OK);
    assert_int_equal(r.retry_after, 1);
    assert_int_equal(r.reset_at, 1700000001); /* 1700000000600 ms, rounded up */
}

static void test_parse_bad(void **state)
{
    (void)state;
    kx_ratelimit_result_t r;
    long long v[3] = { NOW, 19, 0 };
    assert_int_equal(parse_of(2, 2, v, 20, 60000, &r), KX_EPROTO); /* no check 2 in a batch of 2 */
    v[1] = 20;
    assert_int_equal(parse_of(2, 0, v, 20, 60000, &r), KX_EPROTO); /* more left than the limit allows */
    v[1] = -2;
    assert_int_equal(parse_of(2, 0, v, 20, 60000, &r), KX_EPROTO); /* codes below -1 mean nothing */
    v[1] = 0;
    assert_int_equal(parse_of(2, 0, v, 0, 60000, &r), KX_EPROTO); /* limit 0 allows nothing */
    assert_int_equal(parse_of(2, 0, v, 20, 0, &r), KX_EPROTO);    /* not our window */
    assert_int_equal(parse_of(2, 0, v, -1, 60000, &r), KX_EPROTO);
    v[0] = 0;
    assert_int_equal(parse_of(2, 0, v, 20, 60000, &r), KX_EPROTO); /* now is not a time */
    v[0] = 1700000000;                                             /* seconds, not milliseconds */
    assert_int_equal(parse_of(2, 0, v, 20, 60000, &r), KX_EPROTO);
    v[0] = -NOW;
    assert_int_equal(parse_of(2, 0, v, 20, 60000, &r), KX_EPROTO);
    v[0] = NOW;
    assert_int_equal(parse_of(2, 1, v, 20, 60000, &r), KX_OK);

    /* The reply's shape: exactly n + 1 integers, single spaces, nothing else. */
    int64_t vals[KX_RATELIMIT_BATCH_MAX + 1];
    assert_int_equal(split_text("1700000000500 1 2 3", 3, vals), KX_OK);
    assert_int_equal(vals[0], NOW);
    assert_int_equal(vals[3], 3);
    assert_int_equal(split_text("1700000000500 -1", 1, vals), KX_OK);
    assert_int_equal(vals[1], -1);
    static const char *bad[] = {
        "1700000000500 1 2",     /* a batch of 3 needs 4 numbers */
        "1700000000500 1 2 3 4", /* one too many */
        "",
        "1700000000500  1 2 3", /* two spaces */
        "1700000000500 1 2 3 ", /* trailing space */
        " 1700000000500 1 2 3", /* leading space */
        "1700000000500 1 2 x",
        "1700000000500 1 2 3x",
        "1700000000500 1 - 3",
        "1700000000500 1 --2 3",
        "1700000000500 1 +2 3",
        "1700000000500 1 2 1234567890123456789", /* 19 digits: could overflow */
        "1700000000500\r\n1 2 3",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (split_text(bad[i], 3, vals) != KX_EPROTO) fail_msg("accepted the reply \"%s\"", bad[i]);
    assert_int_equal(split_text("1700000000500", 0, vals), KX_EPROTO);
    assert_int_equal(split_text("1700000000500 1", KX_RATELIMIT_BATCH_MAX + 1, vals), KX_EPROTO);

    redisReply e = { 0 };
    e.type = REDIS_REPLY_ERROR;
    e.str = "OOM command not allowed";
    e.len = strlen(e.str);
    assert_int_equal(kx_ratelimit_split_reply(&e, 1, vals), KX_EPROTO);
    e.type = REDIS_REPLY_STATUS;
    e.str = "1700000000500 1";
    e.len = strlen(e.str);
    assert_int_equal(kx_ratelimit_split_reply(&e, 1, vals), KX_EPROTO); /* a status is not the reply */
    e.type = REDIS_REPLY_NIL;
    assert_int_equal(kx_ratelimit_split_reply(&e, 1, vals), KX_EPROTO);
    e.type = REDIS_REPLY_INTEGER;
    e.integer = 1;
    assert_int_equal(kx_ratelimit_split_reply(&e, 1, vals), KX_EPROTO);
    e.type = REDIS_REPLY_ARRAY; /* the old reply shape */
    e.elements = 0;
    assert_int_equal(kx_ratelimit_split_reply(&e, 1, vals), KX_EPROTO);
    assert_int_equal(kx_ratelimit_split_reply(NULL, 1, vals), KX_EPROTO);
}

/* ---- check: refusals before anything is sent -------------------------------------------- */

static int calls;
static void count_fn(void *ud, const kx_ratelimit_result_t *res, const char *err)
{
    (void)ud;
    (void)res;
    (void)err;
    calls++;
}

static void test_check_refusals(void **state)
{
    (void)state;
    kx_ratelimit_op_t *op = (kx_ratelimit_op_t *)&calls;
    calls = 0;
    assert_int_equal(kx_ratelimit_check("ip:1", 4, 20, 60000, "rl{", 3, count_fn, NULL, &op), KX_EINVAL);
    assert_null(op);
    assert_int_equal(kx_ratelimit_check("a{b", 3, 20, 60000, "rl", 2, count_fn, NULL, &op), KX_EINVAL);
    assert_int_equal(kx_ratelimit_check("ip:1", 4, -1, 60000, "rl", 2, count_fn, NULL, &op), KX_EINVAL);
    assert_int_equal(kx_ratelimit_check("ip:1", 4, KX_RATELIMIT_MAX_LIMIT + 1, 60000, "rl", 2, count_fn, NULL,
                                        &op),
                     KX_EINVAL);
    assert_int_equal(kx_ratelimit_check("ip:1", 4, 20, 0, "rl", 2, count_fn, NULL, &op), KX_EINVAL);
    assert_int_equal(kx_ratelimit_check("ip:1", 4, 20, KX_RATELIMIT_MAX_WINDOW_MS + 1, "rl", 2, count_fn,
                                        NULL, &op),
                     KX_EINVAL);
    assert_int_equal(kx_ratelimit_check("ip:1", 4, 20, 60000, "rl", 2, NULL, NULL, &op), KX_EINVAL);
    /* No script loaded, and no Redis connection in this process: closed, nothing queued. */
    assert_int_equal(kx_ratelimit_check("ip:1", 4, 20, 60000, "rl", 2, count_fn, NULL, &op), KX_ECLOSED);
    char err[256];
    assert_int_equal(kx_redis_scripts_load("lua/redis", err, sizeof err), KX_OK);
    assert_int_equal(kx_ratelimit_check("ip:1", 4, 20, 60000, "rl", 2, count_fn, NULL, &op), KX_ECLOSED);
    assert_null(op);
    assert_int_equal(calls, 0);
    kx_ratelimit_cancel(NULL); /* harmless */
    kx_redis_scripts_free();
}

/* ---- deadlines ----------------------------------------------------------------------------- */

static struct {
    int order[8];
    double at[8];
    int n;
    struct ev_loop *loop;
} D;

static void deadline_fn(void *ud, const kx_ratelimit_result_t *res, const char *err)
{
    assert_null(res);
    assert_string_equal(err, "timeout");
    D.at[D.n] = ev_now(D.loop);
    D.order[D.n++] = (int)(intptr_t)ud;
}

static void on_stop(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Four checks with different waits, one cancelled: each of the others is answered "timeout" at
 * its own deadline (not the first's, not the command timeout), in deadline order, exactly once;
 * the cancelled one never. */
static void test_each_check_keeps_its_deadline(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    char url[64], err[256];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", ntohs(a.sin_port));
    D.loop = ev_loop_new(EVFLAG_AUTO);
    D.n = 0;
    assert_int_equal(kx_redis_scripts_load("lua/redis", err, sizeof err), KX_OK);
    assert_int_equal(kx_redis_start(D.loop, url, 5000, err, sizeof err), KX_OK); /* command timeout 5 s */
    for (int i = 0; i < 200 && !kx_redis_ready(); i++) ev_run(D.loop, EVRUN_NOWAIT), usleep(1000);
    assert_true(kx_redis_ready());

    static const double waits[] = { 0.30, 0.10, 0.20, 0.15 };
    kx_ratelimit_op_t *ops[4];
    double t0 = ev_now(D.loop);
    for (int i = 0; i < 4; i++)
        assert_int_equal(kx_ratelimit_check_within("ip:1", 4, 20, 60000, "rl", 2, waits[i], deadline_fn,
                                                   (void *)(intptr_t)i, &ops[i]),
                         KX_OK);
    kx_ratelimit_cancel(ops[3]);
    ev_timer stop;
    ev_timer_init(&stop, on_stop, 0.6, 0.);
    ev_timer_start(D.loop, &stop);
    ev_run(D.loop, 0);

    assert_int_equal(D.n, 3);
    static const int want[] = { 1, 2, 0 };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(D.order[i], want[i]);
        double late = D.at[i] - t0 - waits[want[i]];
        if (late < -0.002 || late > 0.08)
            fail_msg("check %d answered %.3f s off its deadline", want[i], late);
    }
    kx_redis_stop();
    ev_run(D.loop, EVRUN_NOWAIT);
    kx_ratelimit_free();
    kx_redis_scripts_free();
    close(lfd);
    ev_loop_destroy(D.loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identifier_rules), cmocka_unit_test(test_base_key),
        cmocka_unit_test(test_parse_good),       cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_check_refusals),   cmocka_unit_test(test_each_check_keeps_its_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
