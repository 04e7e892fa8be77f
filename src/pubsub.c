/* pubsub.c — the subscriber connection and PUBLISH (see pubsub.h). */
#include "pubsub.h"
#include "redis.h"
#include "log.h"
#include <stdio.h>

static struct {
    kx_redis_conn_t *conn;
    kx_pubsub_fn on_message;
    void (*on_tasks)(void);
    /* The context on which Redis confirmed our SUBSCRIBE; NULL until then and once it dies. */
    const redisAsyncContext *subscribed_on;
} S;

static bool is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static bool str_is(const redisReply *r, const char *s)
{
    return is_str(r) && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

/* hiredis routes every push for our channel here: the SUBSCRIBE confirmation, each message,
 * and a NULL reply when the context is freed (disconnect, connect timeout, stop). */
static void on_channel_reply(redisAsyncContext *ac, void *r, void *priv)
{
    (void)priv;
    redisReply *reply = r;
    if (!reply) {
        if (ac == S.subscribed_on) S.subscribed_on = NULL;
        return;
    }
    if (!S.conn || ac != kx_redis_conn_context(S.conn)) return; /* a context being torn down */
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    redisReply **e = reply->element;
    if (str_is(e[1], KX_PUBSUB_TASKS_CHANNEL)) {
        if (str_is(e[0], "message") && S.on_tasks) S.on_tasks();
        return;
    }
    if (!str_is(e[1], KX_PUBSUB_CHANNEL)) return;
    if (str_is(e[0], "subscribe")) {
        S.subscribed_on = ac;
        kx_log_debug("Redis subscriber listening on %s", KX_PUBSUB_CHANNEL);
    } else if (str_is(e[0], "unsubscribe")) {
        S.subscribed_on = NULL;
    } else if (str_is(e[0], "message") && is_str(e[2]) && S.on_message) {
        S.on_message(e[2]->str, e[2]->len);
    }
}

/* Every new subscriber connection: SUBSCRIBE queued right behind AUTH/SELECT. */
static void on_attach(redisAsyncContext *ac, void *ud)
{
    (void)ud;
    const char *argv[] = { "SUBSCRIBE", KX_PUBSUB_CHANNEL };
    const char *tasks[] = { "SUBSCRIBE", KX_PUBSUB_TASKS_CHANNEL };
    if (redisAsyncCommandArgv(ac, on_channel_reply, NULL, 2, argv, NULL) != REDIS_OK ||
        redisAsyncCommandArgv(ac, on_channel_reply, NULL, 2, tasks, NULL) != REDIS_OK)
        redisAsyncDisconnect(ac); /* unreachable for a fresh context; reconnecting is the cure */
}

void kx_pubsub_on_tasks_signal(void (*fn)(void))
{
    S.on_tasks = fn;
}

int kx_pubsub_start(struct ev_loop *loop, const char *url, int64_t timeout_ms, kx_pubsub_fn on_message,
                    char *err, size_t errcap)
{
    if (S.conn) {
        snprintf(err, errcap, "the Redis subscriber is already started");
        return KX_EINVAL;
    }
    S.on_message = on_message;
    S.subscribed_on = NULL;
    return kx_redis_conn_open(loop, url, timeout_ms, "Redis subscriber", on_attach, NULL, &S.conn, err,
                              errcap);
}

void kx_pubsub_stop(void)
{
    kx_redis_conn_t *c = S.conn;
    S.conn = NULL; /* the NULL replies hiredis sends while closing must not deliver anything */
    kx_redis_conn_close(c);
    S.subscribed_on = NULL;
    S.on_message = NULL;
}

bool kx_pubsub_ready(void)
{
    return S.conn && S.subscribed_on && S.subscribed_on == kx_redis_conn_context(S.conn) &&
           kx_redis_conn_up(S.conn);
}

int kx_pubsub_publish(const char *payload, size_t len)
{
    const char *argv[] = { "PUBLISH", KX_PUBSUB_CHANNEL, payload };
    const size_t lens[] = { 7, sizeof KX_PUBSUB_CHANNEL - 1, len };
    return kx_redis_send(3, argv, lens);
}

/* ---- pure checks -------------------------------------------------------------------------- */
