/* pubsub.h — broadcasts between keryx processes over one Redis pub/sub channel.
 *
 * Owns: the subscriber connection (a kx_redis_conn_t from redis.c: same connect, AUTH/SELECT,
 * backoff, outage logging as the command connection; its log lines say "Redis subscriber"),
 * the SUBSCRIBE to KX_PUBSUB_CHANNEL and KX_PUBSUB_TASKS_CHANNEL (sent again on every new
 * connection) and PUBLISH on the
 * command connection. The channel-name and payload-prefix checks are in channel_name.h.
 * Callers: server.c (start/stop), the WebSocket layer (publish, on_message fan-out, the checks).
 * Never: parses JSON beyond the payload prefix; retries or queues a publish; runs Lua; blocks.
 *
 * Delivery is Redis pub/sub: at most once. A message published while this process's
 * subscriber is disconnected (or not yet re-subscribed) is lost for this process, and a
 * publish while the command connection is down is refused (KX_ECLOSED), never queued. */
#ifndef KX_PUBSUB_H
#define KX_PUBSUB_H
#include <ev.h>
#include "common.h"
#include "channel_name.h"

#define KX_PUBSUB_CHANNEL "keryx:pubsub"
/* The tasks signal: every enqueue publishes here, so idle task processors of every keryx
 * process start the job at once instead of at their next poll. The payload is ignored. */
#define KX_PUBSUB_TASKS_CHANNEL "keryx:tasks"

/* Called on the loop thread for every message on KX_PUBSUB_CHANNEL (also the ones this
 * process published). `payload` is valid only during the call and not NUL-terminated. */
typedef void (*kx_pubsub_fn)(const char *payload, size_t len);

/* Parses `url` (REDIS_URL) and starts connecting the subscriber; never waits. on_message may
 * be NULL (messages are then read and dropped). KX_EINVAL for a bad URL or when already
 * started. */
int kx_pubsub_start(struct ev_loop *loop, const char *url, int64_t timeout_ms, kx_pubsub_fn on_message,
                    char *err, size_t errcap);
/* Installs the handler for messages on KX_PUBSUB_TASKS_CHANNEL (NULL: read and dropped). */
void kx_pubsub_on_tasks_signal(void (*fn)(void));
/* Closes the subscriber. Never call it from inside on_message. */
void kx_pubsub_stop(void);
/* True once Redis confirmed the SUBSCRIBE on the current subscriber connection. */
bool kx_pubsub_ready(void);
/* PUBLISH KX_PUBSUB_CHANNEL payload on the command connection, fire-and-forget: KX_OK once
 * sent (the reply is ignored), KX_ECLOSED while the command connection is down. */
int kx_pubsub_publish(const char *payload, size_t len);


#endif
