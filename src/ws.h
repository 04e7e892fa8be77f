/* ws.h — WebSocket connections (RFC 6455) on the web port, with wslay for framing.
 *
 * Owns: the upgrade handshake (Origin allow-list, version, key, Sec-WebSocket-Accept via
 * OpenSSL SHA-1), the per-connection wslay context and limits (WS_MAX_PAYLOAD_SIZE → 1009,
 * WS_MAX_MESSAGES_PER_SECOND → 1008 and disconnect, invalid UTF-8 → 1007, binary → 1003),
 * ping keepalive and idle timeout, the registry of open sockets by id, channel subscriptions
 * (WS_MAX_SUBSCRIPTIONS) and the C-only fan-out of a broadcast to local subscribers, and the
 * drain (close 1001 "Server shutting down").
 * Callers: dispatch.c (upgrade), conn.c (I/O in WS mode), lua_api_ws.c (send, subscribe, …),
 * pubsub delivery (kx_ws_deliver), main.c (drain).
 * Never: runs Lua itself (messages go to lua_bridge.c as tasks) or parses JSON. */
#ifndef KX_WS_H
#define KX_WS_H
#include "server.h"

typedef struct kx_ws kx_ws_t;

/* True when the request asks for a WebSocket upgrade. */
bool kx_ws_is_upgrade(const kx_request_t *r);
/* Answers the upgrade request on c: 101 and WS mode, or an error response. */
void kx_ws_upgrade(kx_conn_t *c);
/* conn.c hands WS-mode reads and writable events here. */
void kx_ws_on_readable(kx_conn_t *c);
void kx_ws_on_close(kx_conn_t *c);

/* By id (the Lua side only ever holds ids, never pointers). */
kx_conn_t *kx_ws_find(uint64_t id);
int kx_ws_send_text(kx_conn_t *c, const char *p, size_t n);
void kx_ws_close(kx_conn_t *c, uint16_t code, const char *reason);
/* True once a close frame was queued (the socket ends soon). */
bool kx_ws_closing(const kx_conn_t *c);
/* KX_OK, KX_ELIMIT (WS_MAX_SUBSCRIPTIONS reached), KX_EINVAL (bad name). Idempotent. */
int kx_ws_subscribe(kx_conn_t *c, const char *channel, size_t len);
int kx_ws_unsubscribe(kx_conn_t *c, const char *channel, size_t len);
bool kx_ws_is_subscribed(const kx_conn_t *c, const char *channel, size_t len);
int kx_ws_subscription_count(const kx_conn_t *c);
/* Sends payload as a text frame to every local socket subscribed to channel. */
int kx_ws_deliver(const char *channel, size_t clen, const char *payload, size_t len);
uint64_t kx_ws_id(const kx_conn_t *c);
int kx_ws_count(void);
/* Drain: every socket gets close 1001 "Server shutting down". */
void kx_ws_close_all(uint16_t code, const char *reason);

#endif
