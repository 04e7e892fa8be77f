/* redis.c — the Redis command connection (see redis.h). */
#include "redis.h"
#include "log.h"
#include <ctype.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>
#include <stdio.h>
#include <stdlib.h>

struct kx_redis_op {
    kx_redis_fn fn;        /* NULL once cancelled or timed out */
    void *ud;
    ev_timer timer;
};

typedef enum { R_DOWN, R_CONNECTING, R_UP } rstate_t;

static struct {
    struct ev_loop *loop;
    kx_redis_url_t url;
    char where[300];       /* host:port or socket path, for log lines (never the password) */
    double timeout;
    redisAsyncContext *ac;
    rstate_t state;
    bool stopping;
    bool ever_up;
    bool outage_logged;
    double backoff;
    ev_timer reconnect;
    ev_timer connect_timeout;
} R;

/* ---- URL -------------------------------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Copies a percent-encoded span into out (NUL-terminated). */
static bool decode_into(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n) return false;
            int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0) return false;
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (o + 1 >= cap) return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

static int url_fail(char *err, size_t cap, const char *url, const char *why)
{
    snprintf(err, cap, "invalid value for REDIS_URL: \"%s\" (%s; expected "
             "redis://[user:password@]host[:port][/db] or unix:///path/to/redis.sock[?db=N])", url, why);
    return KX_EINVAL;
}

static bool parse_db(const char *s, int *db)
{
    if (!*s) return true;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 0 || v > 100000 || !isdigit((unsigned char)*s)) return false;
    *db = (int)v;
    return true;
}

int kx_redis_parse_url(const char *url, kx_redis_url_t *out, char *err, size_t errcap)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    bool is_unix = strncmp(url, "unix://", 7) == 0;
    if (!is_unix && strncmp(url, "redis://", 8) != 0) {
        if (strncmp(url, "rediss://", 9) == 0) return url_fail(err, errcap, url, "TLS to Redis is not supported");
        return url_fail(err, errcap, url, "unknown scheme");
    }
    const char *p = url + (is_unix ? 7 : 8);
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *user_end = colon ? colon : at;
        if (!decode_into(p, (size_t)(user_end - p), out->user, sizeof out->user) ||
            (colon && !decode_into(colon + 1, (size_t)(at - colon - 1), out->password, sizeof out->password)))
            return url_fail(err, errcap, url, "bad user or password encoding");
        if (!colon) { /* redis://password@host is the common short form */
            snprintf(out->password, sizeof out->password, "%s", out->user);
            out->user[0] = '\0';
        }
        p = at + 1;
    }
    if (is_unix) {
        const char *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || p[0] != '/' || n >= sizeof out->unix_path) return url_fail(err, errcap, url, "bad socket path");
        memcpy(out->unix_path, p, n);
        out->unix_path[n] = '\0';
        if (q) {
            if (strncmp(q, "?db=", 4) != 0 || !parse_db(q + 4, &out->db)) return url_fail(err, errcap, url, "bad db");
        }
        return KX_OK;
    }
    const char *slash = strchr(p, '/');
    size_t hostport = slash ? (size_t)(slash - p) : strlen(p);
    const char *colon = NULL;
    if (p[0] == '[') { /* [ipv6]:port */
        const char *rb = memchr(p, ']', hostport);
        if (!rb) return url_fail(err, errcap, url, "bad IPv6 address");
        if ((size_t)(rb - p - 1) >= sizeof out->host) return url_fail(err, errcap, url, "host too long");
        memcpy(out->host, p + 1, (size_t)(rb - p - 1));
        if (rb + 1 < p + hostport) {
            if (rb[1] != ':') return url_fail(err, errcap, url, "bad port");
            colon = rb + 1;
        }
    } else {
        colon = memchr(p, ':', hostport);
        size_t hl = colon ? (size_t)(colon - p) : hostport;
        if (hl == 0 || hl >= sizeof out->host) return url_fail(err, errcap, url, "missing host");
        memcpy(out->host, p, hl);
    }
    if (colon) {
        char port[8];
        size_t pl = (size_t)(p + hostport - colon - 1);
        if (pl == 0 || pl > 5) return url_fail(err, errcap, url, "bad port");
        memcpy(port, colon + 1, pl);
        port[pl] = '\0';
        char *end;
        long v = strtol(port, &end, 10);
        if (*end || v < 1 || v > 65535) return url_fail(err, errcap, url, "bad port");
        out->port = (int)v;
    }
    if (slash && !parse_db(slash + 1, &out->db)) return url_fail(err, errcap, url, "bad db number");
    return KX_OK;
}

/* ---- connection ------------------------------------------------------------------------- */

static void connect_now(void);

static void schedule_reconnect(void)
{
    if (R.stopping) return;
    ev_timer_stop(R.loop, &R.reconnect);
    ev_timer_set(&R.reconnect, R.backoff, 0.);
    ev_timer_start(R.loop, &R.reconnect);
    R.backoff = R.backoff * 2 > 5.0 ? 5.0 : R.backoff * 2;
}

static void went_down(const char *why)
{
    bool was_up = R.state == R_UP;
    R.state = R_DOWN;
    R.ac = NULL;
    ev_timer_stop(R.loop, &R.connect_timeout);
    if (R.stopping) return;
    /* One line per outage, not one per retry or per request. */
    if (was_up || !R.outage_logged) {
        kx_log_warn("Redis unreachable at %s: %s (retrying with backoff)", R.where, why);
        R.outage_logged = true;
    }
    schedule_reconnect();
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    if (ac != R.ac) return;
    ev_timer_stop(R.loop, &R.connect_timeout);
    if (status != REDIS_OK) {
        went_down(ac->errstr[0] ? ac->errstr : "connect failed");
        return;
    }
    R.state = R_UP;
    R.backoff = 0.1;
    if (R.outage_logged || !R.ever_up)
        kx_log_info("Redis connected (%s)", R.where);
    R.ever_up = true;
    R.outage_logged = false;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    if (ac != R.ac) return;
    went_down(status == REDIS_OK ? "connection closed" : (ac->errstr[0] ? ac->errstr : "connection lost"));
}

static void on_setup_reply(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    const char *what = priv;
    if (reply && reply->type == REDIS_REPLY_ERROR && ac == R.ac) {
        kx_log_error("Redis %s failed: %s", what, reply->str);
        redisAsyncDisconnect(ac);
    }
}

static void on_connect_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    if (R.ac && R.state == R_CONNECTING) {
        redisAsyncContext *ac = R.ac;
        went_down("connect timed out");
        redisAsyncFree(ac); /* calls pending callbacks with NULL; on_disconnect ignores (ac != R.ac) */
    }
}

static void on_reconnect(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    connect_now();
}

static void connect_now(void)
{
    redisAsyncContext *ac = R.url.unix_path[0] ? redisAsyncConnectUnix(R.url.unix_path)
                                               : redisAsyncConnect(R.url.host, R.url.port);
    if (!ac) {
        went_down("out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac);
        went_down(why);
        return;
    }
    R.ac = ac;
    R.state = R_CONNECTING;
    redisLibevAttach(R.loop, ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Queued before any request's command, so they run first on the new connection. */
    if (R.url.password[0]) {
        if (R.url.user[0]) {
            const char *argv[] = { "AUTH", R.url.user, R.url.password };
            redisAsyncCommandArgv(ac, on_setup_reply, "AUTH", 3, argv, NULL);
        } else {
            const char *argv[] = { "AUTH", R.url.password };
            redisAsyncCommandArgv(ac, on_setup_reply, "AUTH", 2, argv, NULL);
        }
    }
    if (R.url.db) {
        char db[16];
        snprintf(db, sizeof db, "%d", R.url.db);
        const char *argv[] = { "SELECT", db };
        redisAsyncCommandArgv(ac, on_setup_reply, "SELECT", 2, argv, NULL);
    }
    ev_timer_set(&R.connect_timeout, R.timeout, 0.);
    ev_timer_start(R.loop, &R.connect_timeout);
}

int kx_redis_start(struct ev_loop *loop, const char *url, int64_t timeout_ms, char *err, size_t errcap)
{
    if (kx_redis_parse_url(url, &R.url, err, errcap) != KX_OK) return KX_EINVAL;
    R.loop = loop;
    if (R.url.unix_path[0]) snprintf(R.where, sizeof R.where, "%s", R.url.unix_path);
    else snprintf(R.where, sizeof R.where, "%s:%d", R.url.host, R.url.port);
    R.timeout = (double)timeout_ms / 1000.0;
    R.backoff = 0.1;
    R.stopping = false;
    ev_init(&R.reconnect, on_reconnect);
    ev_init(&R.connect_timeout, on_connect_timeout);
    connect_now();
    return KX_OK;
}

void kx_redis_stop(void)
{
    if (!R.loop) return;
    R.stopping = true;
    ev_timer_stop(R.loop, &R.reconnect);
    ev_timer_stop(R.loop, &R.connect_timeout);
    if (R.ac) {
        redisAsyncContext *ac = R.ac;
        R.ac = NULL;
        R.state = R_DOWN;
        redisAsyncFree(ac);
    }
}

static void on_wait_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ONE);
}

bool kx_redis_wait_first(double seconds)
{
    ev_timer deadline;
    ev_timer_init(&deadline, on_wait_tick, seconds, 0.);
    ev_timer_start(R.loop, &deadline);
    while (R.state == R_CONNECTING && ev_is_active(&deadline)) ev_run(R.loop, EVRUN_ONCE);
    ev_timer_stop(R.loop, &deadline);
    return kx_redis_ready();
}

bool kx_redis_ready(void)
{
    return R.state == R_UP;
}

/* ---- commands --------------------------------------------------------------------------- */

static void op_finish(kx_redis_op_t *op, redisReply *reply, const char *err)
{
    kx_redis_fn fn = op->fn;
    op->fn = NULL;
    ev_timer_stop(R.loop, &op->timer);
    if (fn) fn(op->ud, reply, err);
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    kx_redis_op_t *op = priv;
    op_finish(op, r, r ? NULL : "closed");
    free(op); /* hiredis calls back exactly once per command, also on disconnect */
}

static void on_op_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    op_finish(w->data, NULL, "timeout");
}

kx_redis_op_t *kx_redis_command(int argc, const char **argv, const size_t *argvlen,
                                kx_redis_fn fn, void *ud)
{
    if (R.state != R_UP || !R.ac) return NULL;
    kx_redis_op_t *op = kx_xcalloc(1, sizeof *op);
    op->fn = fn;
    op->ud = ud;
    if (redisAsyncCommandArgv(R.ac, on_reply, op, argc, argv, argvlen) != REDIS_OK) {
        free(op);
        return NULL;
    }
    ev_timer_init(&op->timer, on_op_timeout, R.timeout, 0.);
    op->timer.data = op;
    ev_timer_start(R.loop, &op->timer);
    return op;
}

void kx_redis_cancel(kx_redis_op_t *op)
{
    op->fn = NULL;
    ev_timer_stop(R.loop, &op->timer);
}
