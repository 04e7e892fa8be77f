/* test_pubsub.c — pubsub.c and the shared connection lifecycle of redis.c.
 *
 * Pure: the channel-name rule (lengths 0/1/200/201, every forbidden class of byte, bytes
 * past a NUL) and the payload prefix parser (good, other key order, whitespace, missing
 * comma, escaped quote, truncated at every length). Live, against a real redis-server this
 * file starts on a free port (fork/exec, never daemonized, so only our own child is ever
 * signalled): three publishes arrive in order, binary payloads intact; another channel is
 * not delivered; a publish from another client is; SHUTDOWN NOSAVE → both connections down,
 * publish refused, one outage line per connection naming it; restart on the same port →
 * re-subscribed within the backoff bound and a new publish arrives; AUTH + SELECT happen
 * before SUBSCRIBE, and a wrong password never reports ready. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "pubsub.h"
#include "redis.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- channel names ------------------------------------------------------------------------ */

static void test_channel_name_rule(void **state)
{
    (void)state;
    char big[260];
    memset(big, 'a', sizeof big);
    static const struct {
        const char *s;
        size_t len;
        bool ok;
    } cases[] = {
        { "room", 4, true },
        { "a", 1, true },
        { "Room:1.general_chat-2", 21, true },
        { "0123456789", 10, true },
        { ":._-", 4, true },
        { "", 0, false },
        { "a b", 3, false },
        { "a/b", 3, false },
        { "a{b", 3, false },
        { "a}b", 3, false },
        { "a\"b", 3, false },
        { "a\\b", 3, false },
        { "a*b", 3, false },
        { "a?b", 3, false },
        { "a,b", 3, false },
        { "a\nb", 3, false },
        { "a\rb", 3, false },
        { "a\tb", 3, false },
        { "a\0b", 3, false },        /* counted length: the NUL is inside */
        { "caf\xc3\xa9", 5, false }, /* é in UTF-8 */
        { "\xe2\x80\x8b"
          "a",
          4, false }, /* zero-width space */
        { "\xff", 1, false },
        { "\x7f", 1, false },
        { "a@b", 3, false },
        { "a+b", 3, false },
    };
    for (size_t i = 0; i < KX_ARRAY_LEN(cases); i++) {
        bool got = kx_channel_name_valid(cases[i].s, cases[i].len);
        if (got != cases[i].ok) fail_msg("case %zu (\"%s\"): got %d", i, cases[i].s, got);
    }
    assert_true(kx_channel_name_valid(big, 200));
    assert_false(kx_channel_name_valid(big, 201));
    assert_false(kx_channel_name_valid(big, 260));
    assert_false(kx_channel_name_valid(NULL, 0));
    assert_false(kx_channel_name_valid(NULL, 4));
    big[199] = '/';
    assert_false(kx_channel_name_valid(big, 200)); /* the last byte is checked too */
    big[199] = 'a';
    big[0] = ' ';
    assert_false(kx_channel_name_valid(big, 200));
}

/* ---- payload prefix ----------------------------------------------------------------------- */

static bool channel_of(const char *p, const char **name, size_t *nlen)
{
    return kx_pubsub_channel_of(p, strlen(p), name, nlen);
}

static void test_payload_prefix(void **state)
{
    (void)state;
    const char *name = NULL;
    size_t nlen = 0;
    const char *good = "{\"channel\":\"room:1\",\"message\":{\"a\":1},\"sender\":\"x\"}";
    assert_true(channel_of(good, &name, &nlen));
    assert_int_equal(nlen, 6);
    assert_memory_equal(name, "room:1", 6);
    assert_ptr_equal(name, good + 12); /* a span inside the payload, not a copy */

    /* The shortest accepted payload: the parser never needs more than `",` after the name. */
    assert_true(channel_of("{\"channel\":\"a\",", &name, &nlen));
    assert_int_equal(nlen, 1);

    static const char *bad[] = {
        "{\"message\":1,\"channel\":\"room\",\"sender\":\"x\"}", /* other key order */
        "{\"sender\":\"x\",\"channel\":\"room\",",
        "{\"channel\":\"room\"}", /* missing comma */
        "{\"channel\":\"room\" ,\"message\":1}",
        "{\"channel\":\"room\"\"message\":1}",
        "{\"channel\":\"ro\\\"om\",\"message\":1}",   /* escaped quote in name */
        "{\"channel\":\"ro\\u006fm\",\"message\":1}", /* any escape */
        "{\"channel\":\"\",\"message\":1}",           /* empty name */
        "{\"channel\":\"a b\",\"message\":1}",
        "{\"channel\":\"a/b\",\"message\":1}",
        "{\"channel\":\"caf\xc3\xa9\",\"message\":1}",
        "{ \"channel\":\"room\",\"message\":1}", /* whitespace */
        "{\"channel\": \"room\",\"message\":1}",
        " {\"channel\":\"room\",\"message\":1}",
        "{\"Channel\":\"room\",\"message\":1}",
        "{\"channel\":room,\"message\":1}", /* not a string */
        "{\"channel\":1,\"message\":1}",
        "[\"channel\",\"room\"]",
        "",
    };
    for (size_t i = 0; i < KX_ARRAY_LEN(bad); i++) {
        name = NULL;
        if (channel_of(bad[i], &name, &nlen)) fail_msg("accepted bad payload %zu: %s", i, bad[i]);
        assert_null(name); /* outputs untouched on refusal */
    }

    /* Truncated at every length: only the full `",` makes it valid. */
    const char *full = "{\"channel\":\"room\",";
    size_t flen = strlen(full);
    for (size_t n = 0; n < flen; n++)
        if (kx_pubsub_channel_of(full, n, &name, &nlen)) fail_msg("accepted truncation at %zu", n);
    assert_true(kx_pubsub_channel_of(full, flen, &name, &nlen));
    /* Counted length is honoured: bytes past `len` never count. */
    assert_false(kx_pubsub_channel_of(good, 17, &name, &nlen));
    assert_false(kx_pubsub_channel_of(NULL, 0, &name, &nlen));

    /* Name length 200 is accepted, 201 refused. */
    char buf[300];
    for (size_t want = 199; want <= 201; want++) {
        int n = snprintf(buf, sizeof buf, "{\"channel\":\"%.*s\",\"m\":1}", (int)want,
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                         "aaaaaaaaaaaaaaaaa"
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                         "aaaaaaaaaaaaaaaaa"
                         "aaaaaaaaaa");
        bool ok = kx_pubsub_channel_of(buf, (size_t)n, &name, &nlen);
        assert_int_equal(ok, want <= 200);
        if (ok) assert_int_equal(nlen, want);
    }
    /* A NUL inside the counted name is refused, not treated as an end. */
    static const char nul[] = "{\"channel\":\"ro\0m\",\"m\":1}";
    assert_false(kx_pubsub_channel_of(nul, sizeof nul - 1, &name, &nlen));
}

/* ---- a private redis-server ----------------------------------------------------------------- */

static struct {
    char dir[64];
    char logpath[96];
    int logfd;
    int port;
    pid_t pid;            /* our redis-server child, 0 when not running */
    const char *password; /* once the test set requirepass */
    int hole;             /* the black-hole listener, -1 when closed */
    char msgs[16][64];
    size_t lens[16];
    int count;
} T;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static redisContext *sync_connect(void)
{
    struct timeval tv = { 1, 0 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", T.port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c && T.password) {
        redisReply *r = redisCommand(c, "AUTH %s", T.password);
        if (r) freeReplyObject(r);
    }
    return c;
}

static bool redis_pings(void)
{
    redisContext *c = sync_connect();
    if (!c) return false;
    redisReply *r = redisCommand(c, "PING");
    bool ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    if (r) freeReplyObject(r);
    redisFree(c);
    return ok;
}

static bool redis_up(void)
{
    char port[16];
    snprintf(port, sizeof port, "%d", T.port);
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", T.dir, "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    T.pid = pid;
    for (int i = 0; i < 250; i++) { /* 5 s */
        if (redis_pings()) return true;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            T.pid = 0;
            return false;
        }
        usleep(20000);
    }
    return false;
}

/* SHUTDOWN NOSAVE from a separate client, then reap our child. */
static bool redis_down(void)
{
    redisContext *c = sync_connect();
    if (c) {
        redisReply *r = redisCommand(c, "SHUTDOWN NOSAVE");
        if (r) freeReplyObject(r);
        redisFree(c);
    }
    for (int i = 0; i < 250 && T.pid; i++) {
        if (waitpid(T.pid, NULL, WNOHANG) == T.pid) T.pid = 0;
        else usleep(20000);
    }
    return T.pid == 0;
}

static bool redis_cmd_ok(const char *fmt, const char *arg)
{
    redisContext *c = sync_connect();
    if (!c) return false;
    redisReply *r = redisCommand(c, fmt, arg);
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    if (r) freeReplyObject(r);
    redisFree(c);
    return ok;
}

/* CLIENT LIST as the server sees it: our subscriber (sub=1) sits in `db`. */
static bool subscriber_in_db(const char *db)
{
    redisContext *c = sync_connect();
    if (!c) return false;
    redisReply *r = redisCommand(c, "CLIENT LIST");
    bool found = false;
    if (r && r->type == REDIS_REPLY_STRING) {
        char want[32];
        /* Subscribed to both channels: broadcasts (keryx:pubsub) and the tasks signal. */
        snprintf(want, sizeof want, " db=%s sub=2 ", db);
        found = strstr(r->str, want) != NULL;
    }
    if (r) freeReplyObject(r);
    redisFree(c);
    return found;
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(T.dir, sizeof T.dir, "/tmp/kx-pubsub-XXXXXX");
    if (!mkdtemp(T.dir)) return -1;
    snprintf(T.logpath, sizeof T.logpath, "%s/keryx.log", T.dir);
    T.logfd = open(T.logpath, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0600);
    if (T.logfd < 0) return -1;
    kx_log_opts_t lo = { KX_LOG_INFO, false, false, false, T.logfd };
    kx_log_configure(&lo);
    T.hole = -1;
    T.port = free_port();
    if (T.port <= 0 || !redis_up()) return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (T.pid && !redis_down()) {
        kill(T.pid, SIGKILL); /* our own child only */
        waitpid(T.pid, NULL, 0);
        T.pid = 0;
    }
    kx_log_opts_t lo = { KX_LOG_INFO, false, false, false, 2 };
    kx_log_configure(&lo);
    if (T.logfd >= 0) close(T.logfd);
    unlink(T.logpath);
    char dump[96];
    snprintf(dump, sizeof dump, "%s/dump.rdb", T.dir);
    unlink(dump);
    rmdir(T.dir);
    return 0;
}

/* ---- loop helpers ---------------------------------------------------------------------------- */

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* Runs the loop until cond() holds or `seconds` passed; returns cond(). */
static bool run_until(struct ev_loop *loop, bool (*cond)(void), double seconds)
{
    ev_timer tick;
    ev_timer_init(&tick, on_tick, 0.01, 0.01);
    ev_timer_start(loop, &tick);
    double end = ev_time() + seconds;
    while (!cond() && ev_time() < end) ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &tick);
    return cond();
}

static bool never(void)
{
    return false;
}
static bool both_ready(void)
{
    return kx_redis_ready() && kx_pubsub_ready();
}
static bool both_down(void)
{
    return !kx_redis_ready() && !kx_pubsub_ready();
}
static int want_count;
static bool got_enough(void)
{
    return T.count >= want_count;
}

static void on_message(const char *payload, size_t len)
{
    if (T.count >= (int)KX_ARRAY_LEN(T.msgs)) return;
    size_t n = len < sizeof T.msgs[0] ? len : sizeof T.msgs[0];
    memcpy(T.msgs[T.count], payload, n);
    T.lens[T.count] = len;
    T.count++;
}

static void assert_msg(int i, const char *p, size_t len)
{
    assert_int_equal(T.lens[i], len);
    assert_memory_equal(T.msgs[i], p, len);
}

/* How many times `needle` occurs in the log file so far. */
static int log_count(const char *needle)
{
    FILE *f = fopen(T.logpath, "r");
    if (!f) return -1;
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    int count = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle)) count++;
    return count;
}

/* Listens on T.port without ever accepting: the kernel completes the handshakes. */
static int blackhole_listen(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((uint16_t)T.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (fd < 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool subscriber_reconnected(void)
{
    char line[128];
    snprintf(line, sizeof line, "Redis subscriber connected (127.0.0.1:%d)", T.port);
    return log_count(line) == 2;
}

static void publish(const char *p, size_t len)
{
    assert_int_equal(kx_pubsub_publish(p, len), KX_OK);
}

/* ---- live ------------------------------------------------------------------------------------- */

static void test_live_publish_outage_and_resubscribe(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char url[64], err[512];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", T.port);
    T.count = 0;

    assert_int_equal(kx_pubsub_publish("x", 1), KX_ECLOSED); /* nothing started yet */
    assert_false(kx_pubsub_ready());
    assert_int_equal(kx_redis_start(loop, url, 2000, err, sizeof err), KX_OK);
    assert_int_equal(kx_pubsub_start(loop, url, 2000, on_message, err, sizeof err), KX_OK);
    assert_int_equal(kx_pubsub_start(loop, url, 2000, on_message, err, sizeof err), KX_EINVAL);
    assert_true(run_until(loop, both_ready, 5.0));

    /* Three publishes through the command connection arrive in order, bytes intact. */
    static const char bin[] = "two\0bin\xff\r\n";
    const char *json = "{\"channel\":\"room:1\",\"message\":\"hi\",\"sender\":\"s\"}";
    publish("one", 3);
    publish(bin, sizeof bin - 1);
    publish(json, strlen(json));
    want_count = 3;
    assert_true(run_until(loop, got_enough, 3.0));
    assert_msg(0, "one", 3);
    assert_msg(1, bin, sizeof bin - 1);
    assert_msg(2, json, strlen(json));

    /* Another process's publish arrives; another channel's does not (it was sent first, so
     * had it been delivered it would be message 3). */
    assert_true(redis_cmd_ok("PUBLISH keryx:other %s", "not-for-us"));
    assert_true(redis_cmd_ok("PUBLISH keryx:pubsub %s", "from-elsewhere"));
    want_count = 4;
    assert_true(run_until(loop, got_enough, 3.0));
    assert_msg(3, "from-elsewhere", 14);

    /* Outage: both connections notice, publishing is refused, one line per connection. */
    assert_true(redis_down());
    assert_true(run_until(loop, both_down, 3.0));
    assert_int_equal(kx_pubsub_publish("lost", 4), KX_ECLOSED);
    run_until(loop, never, 0.8); /* several reconnect attempts fail meanwhile */
    assert_false(kx_pubsub_ready());
    char line[128];
    snprintf(line, sizeof line, "Redis subscriber unreachable at 127.0.0.1:%d: ", T.port);
    assert_int_equal(log_count(line), 1);
    snprintf(line, sizeof line, "Redis unreachable at 127.0.0.1:%d: ", T.port);
    assert_int_equal(log_count(line), 1);

    /* A peer that accepts TCP but never answers: both connections come up, yet the SUBSCRIBE
     * is never confirmed, so the subscriber must not claim to be ready. */
    T.hole = blackhole_listen();
    assert_true(T.hole >= 0);
    snprintf(line, sizeof line, "Redis subscriber connected (127.0.0.1:%d)", T.port);
    assert_true(run_until(loop, subscriber_reconnected, 6.5));
    assert_false(run_until(loop, kx_pubsub_ready, 0.5));
    close(T.hole); /* the pending connections are reset: both go down again */
    T.hole = -1;
    assert_true(run_until(loop, both_down, 3.0));

    /* Same port again: re-subscribed within the 5 s backoff cap, and delivering again. */
    assert_true(redis_up());
    double t0 = ev_time();
    assert_true(run_until(loop, both_ready, 6.5));
    assert_true(ev_time() - t0 < 6.5);
    publish("after-restart", 13);
    want_count = 5;
    assert_true(run_until(loop, got_enough, 3.0));
    assert_msg(4, "after-restart", 13);
    assert_int_equal(T.count, 5);         /* "lost" never shows up */
    assert_int_equal(log_count(line), 3); /* first connect, the black hole, the restart */

    kx_pubsub_stop();
    assert_false(kx_pubsub_ready());
    kx_pubsub_stop(); /* idempotent */
    /* The subscriber is gone but the command connection still publishes. */
    publish("nobody-listens", 14);
    run_until(loop, never, 0.2);
    assert_int_equal(T.count, 5);
    kx_redis_stop();
    assert_int_equal(kx_pubsub_publish("x", 1), KX_ECLOSED);
    ev_loop_destroy(loop);
}

static void test_live_auth_select_before_subscribe(void **state)
{
    (void)state;
    if (!T.pid) assert_true(redis_up()); /* the previous test failed half-way */
    assert_true(redis_cmd_ok("CONFIG SET requirepass %s", "s3cr3t"));
    T.password = "s3cr3t";
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char url[96], err[512];
    T.count = 0;

    /* A wrong password: the subscriber never reports ready (AUTH fails, SUBSCRIBE is refused). */
    snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d", T.port);
    assert_int_equal(kx_pubsub_start(loop, url, 2000, on_message, err, sizeof err), KX_OK);
    assert_false(run_until(loop, kx_pubsub_ready, 1.0));
    assert_true(log_count("Redis subscriber AUTH failed") >= 1);
    kx_pubsub_stop();

    /* Right password and a db: AUTH and SELECT go first, then SUBSCRIBE succeeds. */
    snprintf(url, sizeof url, "redis://:s3cr3t@127.0.0.1:%d/3", T.port);
    assert_int_equal(kx_redis_start(loop, url, 2000, err, sizeof err), KX_OK);
    assert_int_equal(kx_pubsub_start(loop, url, 2000, on_message, err, sizeof err), KX_OK);
    assert_true(run_until(loop, both_ready, 5.0));
    publish("authed", 6);
    want_count = 1;
    assert_true(run_until(loop, got_enough, 3.0));
    assert_msg(0, "authed", 6);
    assert_int_equal(log_count("Redis subscriber SELECT failed"), 0);
    assert_true(subscriber_in_db("3"));
    kx_pubsub_stop();
    kx_redis_stop();
    ev_loop_destroy(loop);

    /* A bad URL is refused before anything connects. */
    assert_int_equal(kx_pubsub_start(NULL, "http://x", 2000, on_message, err, sizeof err), KX_EINVAL);
    assert_non_null(strstr(err, "REDIS_URL"));
    assert_false(kx_pubsub_ready());
}

/* After each live test, also a failed one: nothing stays connected or bound. */
static int live_teardown(void **state)
{
    (void)state;
    kx_pubsub_stop();
    kx_redis_stop();
    if (T.hole >= 0) close(T.hole);
    T.hole = -1;
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_channel_name_rule),
        cmocka_unit_test(test_payload_prefix),
    };
    const struct CMUnitTest live[] = {
        cmocka_unit_test_teardown(test_live_publish_outage_and_resubscribe, live_teardown),
        cmocka_unit_test_teardown(test_live_auth_select_before_subscribe, live_teardown),
    };
    int failed = cmocka_run_group_tests_name("pubsub_pure", pure, NULL, NULL);
    failed += cmocka_run_group_tests_name("pubsub_live", live, group_setup, group_teardown);
    return failed;
}
