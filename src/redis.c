/* redis.c — Redis connections and the command connection (see redis.h). */
#include "redis.h"
#include "log.h"
#include "metrics.h"
#include <ctype.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/sds.h>
#include <stdio.h>
#include <stdlib.h>

struct kx_redis_op {
    kx_redis_fn fn; /* NULL once cancelled or timed out */
    void *ud;
    struct ev_loop *loop;
    ev_timer timer;
};

typedef enum { R_DOWN, R_CONNECTING, R_UP } rstate_t;

/* One connection's lifecycle; the command connection is `cmd`, others are heap-allocated. */
struct kx_redis_conn {
    const char *label; /* starts every log line: "Redis", "Redis subscriber" */
    struct ev_loop *loop;
    kx_redis_url_t url;
    char where[300]; /* host:port or socket path, for log lines (never the password) */
    double timeout;
    redisAsyncContext *ac; /* ac->data points back here while ac is current */
    rstate_t state;
    bool stopping;
    bool ever_up;
    bool outage_logged;
    double backoff;
    ev_timer reconnect;
    ev_timer connect_timeout;
    ev_prepare writer; /* active while up: see write_before_poll */
    kx_redis_attach_fn on_attach;
    void *ud;
};

static struct kx_redis_conn cmd;

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
    snprintf(err, cap,
             "invalid value for REDIS_URL: \"%s\" (%s; expected "
             "redis://[user:password@]host[:port][/db] or unix:///path/to/redis.sock[?db=N])",
             url, why);
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
        if (strncmp(url, "rediss://", 9) == 0)
            return url_fail(err, errcap, url, "TLS to Redis is not supported");
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
        if (n == 0 || p[0] != '/' || n >= sizeof out->unix_path)
            return url_fail(err, errcap, url, "bad socket path");
        memcpy(out->unix_path, p, n);
        out->unix_path[n] = '\0';
        if (q) {
            if (strncmp(q, "?db=", 4) != 0 || !parse_db(q + 4, &out->db))
                return url_fail(err, errcap, url, "bad db");
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

/* ---- connection lifecycle (every connection) -------------------------------------------- */

static void connect_now(kx_redis_conn_t *c);

static void schedule_reconnect(kx_redis_conn_t *c)
{
    if (c->stopping) return;
    ev_timer_stop(c->loop, &c->reconnect);
    ev_timer_set(&c->reconnect, c->backoff, 0.);
    ev_timer_start(c->loop, &c->reconnect);
    c->backoff = c->backoff * 2 > 5.0 ? 5.0 : c->backoff * 2;
}

static void went_down(kx_redis_conn_t *c, const char *why)
{
    bool was_up = c->state == R_UP;
    c->state = R_DOWN;
    ev_prepare_stop(c->loop, &c->writer);
    if (c->ac) c->ac->data = NULL; /* hiredis frees it; its late callbacks must not find us */
    c->ac = NULL;
    ev_timer_stop(c->loop, &c->connect_timeout);
    if (c->stopping) return;
    /* One line per outage, not one per retry or per request. */
    if (was_up || !c->outage_logged) {
        kx_log_warn("%s unreachable at %s: %s (retrying with backoff)", c->label, c->where, why);
        c->outage_logged = true;
    }
    schedule_reconnect(c);
}

/* The connection whose current context is `ac`, or NULL for a stale or freed context. */
static kx_redis_conn_t *conn_of(const redisAsyncContext *ac)
{
    kx_redis_conn_t *c = ac->data;
    return c && c->ac == ac ? c : NULL;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    kx_redis_conn_t *c = conn_of(ac);
    if (!c) return;
    ev_timer_stop(c->loop, &c->connect_timeout);
    if (status != REDIS_OK) {
        went_down(c, ac->errstr[0] ? ac->errstr : "connect failed");
        return;
    }
    c->state = R_UP;
    ev_prepare_start(c->loop, &c->writer);
    c->backoff = 0.1;
    if (c->outage_logged || !c->ever_up) kx_log_info("%s connected (%s)", c->label, c->where);
    c->ever_up = true;
    c->outage_logged = false;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    kx_redis_conn_t *c = conn_of(ac);
    if (!c) return;
    went_down(c, status == REDIS_OK ? "connection closed" : (ac->errstr[0] ? ac->errstr : "connection lost"));
}

static void on_setup_reply(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    const char *what = priv;
    kx_redis_conn_t *c = conn_of(ac);
    if (reply && reply->type == REDIS_REPLY_ERROR && c) {
        kx_log_error("%s %s failed: %s", c->label, what, reply->str);
        redisAsyncDisconnect(ac);
    }
}

/* Commands queued during an iteration are written just before the loop polls, rather than
 * when the poll reports the socket writable: hiredis' own path costs, for every batch, a wake-up
 * of its own and two epoll_ctl calls (write interest on, then off). The watcher has the lowest
 * priority, so it runs after the other prepare watchers (ratelimit.c sends its batch from one);
 * a socket that cannot take everything keeps hiredis' write watcher for the rest. */
static void write_before_poll(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    kx_redis_conn_t *c = w->data;
    if (c->state == R_UP && c->ac && sdslen(c->ac->c.obuf) > 0) redisAsyncHandleWrite(c->ac);
}

static void on_connect_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    kx_redis_conn_t *c = w->data;
    if (c->ac && c->state == R_CONNECTING) {
        redisAsyncContext *ac = c->ac;
        went_down(c, "connect timed out");
        redisAsyncFree(ac); /* calls pending callbacks with NULL; they no longer find `c` */
    }
}

static void on_reconnect(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    connect_now(w->data);
}

/* AUTH and SELECT, queued before anything else so they run first on the new connection. */
static void queue_setup(kx_redis_conn_t *c, redisAsyncContext *ac)
{
    if (c->url.password[0]) {
        if (c->url.user[0]) {
            const char *argv[] = { "AUTH", c->url.user, c->url.password };
            redisAsyncCommandArgv(ac, on_setup_reply, "AUTH", 3, argv, NULL);
        } else {
            const char *argv[] = { "AUTH", c->url.password };
            redisAsyncCommandArgv(ac, on_setup_reply, "AUTH", 2, argv, NULL);
        }
    }
    if (c->url.db) {
        char db[16];
        snprintf(db, sizeof db, "%d", c->url.db);
        const char *argv[] = { "SELECT", db };
        redisAsyncCommandArgv(ac, on_setup_reply, "SELECT", 2, argv, NULL);
    }
}

static void connect_now(kx_redis_conn_t *c)
{
    redisAsyncContext *ac = c->url.unix_path[0] ? redisAsyncConnectUnix(c->url.unix_path)
                                                : redisAsyncConnect(c->url.host, c->url.port);
    if (!ac) {
        went_down(c, "out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac);
        went_down(c, why);
        return;
    }
    c->ac = ac;
    ac->data = c;
    c->state = R_CONNECTING;
    redisLibevAttach(c->loop, ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    queue_setup(c, ac);
    if (c->on_attach) c->on_attach(ac, c->ud);
    ev_timer_set(&c->connect_timeout, c->timeout, 0.);
    ev_timer_start(c->loop, &c->connect_timeout);
}

static int conn_start(kx_redis_conn_t *c, struct ev_loop *loop, const char *url, int64_t timeout_ms,
                      const char *label, kx_redis_attach_fn on_attach, void *ud, char *err, size_t errcap)
{
    kx_redis_url_t parsed;
    if (kx_redis_parse_url(url, &parsed, err, errcap) != KX_OK) return KX_EINVAL;
    memset(c, 0, sizeof *c);
    c->url = parsed;
    c->label = label;
    c->loop = loop;
    if (c->url.unix_path[0]) snprintf(c->where, sizeof c->where, "%s", c->url.unix_path);
    else snprintf(c->where, sizeof c->where, "%s:%d", c->url.host, c->url.port);
    c->timeout = (double)timeout_ms / 1000.0;
    c->backoff = 0.1;
    c->on_attach = on_attach;
    c->ud = ud;
    ev_init(&c->reconnect, on_reconnect);
    c->reconnect.data = c;
    ev_init(&c->connect_timeout, on_connect_timeout);
    c->connect_timeout.data = c;
    ev_prepare_init(&c->writer, write_before_poll);
    ev_set_priority(&c->writer, EV_MINPRI);
    c->writer.data = c;
    connect_now(c);
    return KX_OK;
}

static void conn_stop(kx_redis_conn_t *c)
{
    if (!c->loop) return;
    c->stopping = true;
    ev_timer_stop(c->loop, &c->reconnect);
    ev_timer_stop(c->loop, &c->connect_timeout);
    ev_prepare_stop(c->loop, &c->writer);
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        /* Detached first: hiredis may defer the free (when called from one of its callbacks),
         * and its late disconnect callback must not reach a closed connection. */
        ac->data = NULL;
        c->ac = NULL;
        c->state = R_DOWN;
        redisAsyncFree(ac);
    }
}

int kx_redis_conn_open(struct ev_loop *loop, const char *url, int64_t timeout_ms, const char *label,
                       kx_redis_attach_fn on_attach, void *ud, kx_redis_conn_t **out, char *err,
                       size_t errcap)
{
    kx_redis_conn_t *c = kx_xmalloc(sizeof *c);
    int rc = conn_start(c, loop, url, timeout_ms, label, on_attach, ud, err, errcap);
    if (rc != KX_OK) {
        free(c);
        return rc;
    }
    *out = c;
    return KX_OK;
}

void kx_redis_conn_close(kx_redis_conn_t *c)
{
    if (!c) return;
    conn_stop(c);
    free(c);
}

redisAsyncContext *kx_redis_conn_context(const kx_redis_conn_t *c)
{
    return c ? c->ac : NULL;
}

bool kx_redis_conn_up(const kx_redis_conn_t *c)
{
    return c && c->state == R_UP;
}

/* ---- the command connection ------------------------------------------------------------- */

int kx_redis_start(struct ev_loop *loop, const char *url, int64_t timeout_ms, char *err, size_t errcap)
{
    return conn_start(&cmd, loop, url, timeout_ms, "Redis", NULL, NULL, err, errcap);
}

void kx_redis_stop(void)
{
    conn_stop(&cmd);
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
    ev_timer_start(cmd.loop, &deadline);
    while (cmd.state == R_CONNECTING && ev_is_active(&deadline)) ev_run(cmd.loop, EVRUN_ONCE);
    ev_timer_stop(cmd.loop, &deadline);
    return kx_redis_ready();
}

bool kx_redis_ready(void)
{
    return cmd.state == R_UP;
}

/* ---- commands ----------------------------------------------------------------------------- */

static void op_finish(kx_redis_op_t *op, redisReply *reply, const char *err)
{
    kx_redis_fn fn = op->fn;
    op->fn = NULL;
    ev_timer_stop(op->loop, &op->timer);
    /* NOSCRIPT is the normal first answer to EVALSHA after a Redis restart, not a failure. */
    if (fn &&
        (!reply || (reply->type == REDIS_REPLY_ERROR && (!reply->str || strncmp(reply->str, "NOSCRIPT", 8)))))
        kx_metrics_count(KX_METRIC_REDIS_ERRORS);
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

/* Decimal digits of v into p (no NUL); returns how many. */
static size_t put_uint(char *p, size_t v)
{
    char tmp[24];
    size_t n = 0;
    do tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    for (size_t i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
    return n;
}

/* Queues one command in RESP (`*argc`, then `$len` and the bytes of each argument) through
 * redisAsyncFormattedCommand: hiredis' own formatter (redisFormatSdsCommandArgv) grows an sds
 * string with a printf-style call per argument: about 4,000 of the 6,000 instructions it took to
 * queue one EVALSHA (callgrind). Small commands are built on the stack. */
static int send_argv(redisAsyncContext *ac, redisCallbackFn *fn, void *priv, int argc, const char **argv,
                     const size_t *argvlen)
{
    size_t need = 16;
    for (int i = 0; i < argc; i++) need += 24 + (argvlen ? argvlen[i] : strlen(argv[i]));
    char stack[2048];
    char *buf = need <= sizeof stack ? stack : kx_xmalloc(need);
    char *p = buf;
    *p++ = '*';
    p += put_uint(p, (size_t)argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < argc; i++) {
        size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
        *p++ = '$';
        p += put_uint(p, len);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, argv[i], len);
        p += len;
        *p++ = '\r';
        *p++ = '\n';
    }
    int rc = redisAsyncFormattedCommand(ac, fn, priv, buf, (size_t)(p - buf));
    if (buf != stack) free(buf);
    return rc;
}

/* `wait` is used as given: a blocking command (BLMOVE 1) needs longer than the usual timeout. */
static kx_redis_op_t *conn_command(kx_redis_conn_t *c, int argc, const char **argv, const size_t *argvlen,
                                   double wait, kx_redis_fn fn, void *ud)
{
    if (c->state != R_UP || !c->ac) {
        kx_metrics_count(KX_METRIC_REDIS_ERRORS);
        return NULL;
    }
    kx_redis_op_t *op = kx_xcalloc(1, sizeof *op);
    op->fn = fn;
    op->ud = ud;
    op->loop = c->loop;
    if (send_argv(c->ac, on_reply, op, argc, argv, argvlen) != REDIS_OK) {
        free(op);
        return NULL;
    }
    ev_timer_init(&op->timer, on_op_timeout, wait > 0 ? wait : 0., 0.);
    op->timer.data = op;
    ev_timer_start(c->loop, &op->timer);
    return op;
}

kx_redis_op_t *kx_redis_command(int argc, const char **argv, const size_t *argvlen, kx_redis_fn fn, void *ud)
{
    return kx_redis_command_within(argc, argv, argvlen, cmd.timeout, fn, ud);
}

kx_redis_op_t *kx_redis_command_within(int argc, const char **argv, const size_t *argvlen, double max_wait,
                                       kx_redis_fn fn, void *ud)
{
    double wait = max_wait < cmd.timeout ? max_wait : cmd.timeout;
    return conn_command(&cmd, argc, argv, argvlen, wait, fn, ud);
}

kx_redis_op_t *kx_redis_conn_command(kx_redis_conn_t *c, int argc, const char **argv, const size_t *argvlen,
                                     double wait, kx_redis_fn fn, void *ud)
{
    return conn_command(c ? c : &cmd, argc, argv, argvlen, wait, fn, ud);
}

double kx_redis_timeout(void)
{
    return cmd.timeout;
}

double kx_redis_now(void)
{
    return cmd.loop ? ev_now(cmd.loop) : 0.;
}

struct ev_loop *kx_redis_loop(void)
{
    return cmd.loop;
}

void kx_redis_cancel(kx_redis_op_t *op)
{
    op->fn = NULL;
    ev_timer_stop(op->loop, &op->timer);
}

int kx_redis_send(int argc, const char **argv, const size_t *argvlen)
{
    if (cmd.state != R_UP || !cmd.ac) return KX_ECLOSED;
    /* A NULL callback: hiredis reads and discards the reply, nothing is allocated here. */
    if (send_argv(cmd.ac, NULL, NULL, argc, argv, argvlen) != REDIS_OK) return KX_ECLOSED;
    return KX_OK;
}

/* Written and answered: nothing left in hiredis's output buffer, no reply still awaited (the
 * fire-and-forget commands of kx_redis_send count too: hiredis keeps a callback slot for each). */
static bool cmd_settled(void)
{
    redisAsyncContext *ac = cmd.ac;
    if (!ac || cmd.state != R_UP) return true;
    return sdslen(ac->c.obuf) == 0 && ac->replies.head == NULL;
}

bool kx_redis_flush(double seconds)
{
    if (!cmd.loop || cmd_settled()) return cmd_settled();
    ev_timer deadline;
    ev_timer_init(&deadline, on_wait_tick, seconds, 0.);
    ev_timer_start(cmd.loop, &deadline);
    while (!cmd_settled() && ev_is_active(&deadline)) ev_run(cmd.loop, EVRUN_ONCE);
    ev_timer_stop(cmd.loop, &deadline);
    if (cmd_settled()) return true;
    kx_log_warn("Redis: commands still unsent or unanswered after %.1fs (they may be lost)", seconds);
    return false;
}
