/* channels.h — which local WebSocket is subscribed to which channel, and the fan-out of a
 * broadcast to them.
 *
 * Owns: the channel registry (name → subscribed sockets, a hash table that grows), each
 * socket's subscription list (WS_MAX_SUBSCRIPTIONS), kept in the socket's kx_ws_user slot, and
 * the fan-out batch (the sockets a broadcast was queued on in this loop iteration).
 * Callers: lua_api_ws.c (subscribe, unsubscribe, queries, deliver), server.c (installs
 * kx_channels_on_publish as the pub/sub handler and kx_channels_drop in the close handler).
 * Never: runs Lua or decides authorization (the Lua side asked the channel's `authorize`
 * before subscribing); a broadcast is delivered without Lua per recipient. */
#ifndef KX_CHANNELS_H
#define KX_CHANNELS_H
#include "conn.h"

/* KX_OK, KX_ELIMIT (WS_MAX_SUBSCRIPTIONS reached), KX_EINVAL (bad name or not an open
 * WebSocket). Idempotent. */
int kx_channels_subscribe(kx_conn_t *c, const char *channel, size_t len);
int kx_channels_unsubscribe(kx_conn_t *c, const char *channel, size_t len);
bool kx_channels_is_subscribed(kx_conn_t *c, const char *channel, size_t len);
int kx_channels_count(kx_conn_t *c);
/* The socket closed: every subscription goes. */
void kx_channels_drop(kx_conn_t *c);
/* Queues payload as a text frame (one copy, shared) on every local socket subscribed to channel;
 * returns how many. The sockets are written once per loop iteration, just before the loop
 * polls (an ev_prepare watcher): every broadcast of the iteration in one write per socket. */
int kx_channels_deliver(const char *channel, size_t clen, const char *payload, size_t len);
/* A published broadcast ({"channel","message","sender"}) from any keryx process: delivered to
 * local subscribers as {"message": <it>}, and kept in the feed while it has readers. */
void kx_channels_on_publish(const char *payload, size_t len);

/* The feed: the last KX_CHANNELS_FEED_SIZE broadcasts (each at most KX_CHANNELS_FEED_MAX
 * bytes; a larger one is skipped) that any keryx process published, for the MCP GET streams,
 * which check each one against the channel's authorize in Lua. Kept only while a reader is
 * registered (kx_channels_feed_readers(+1) / (-1)), so a process without MCP streams copies
 * nothing. Entries are numbered from 1; kx_channels_feed_seq is the newest number. */
#define KX_CHANNELS_FEED_SIZE 256
#define KX_CHANNELS_FEED_MAX 65536
void kx_channels_feed_readers(int delta);
uint64_t kx_channels_feed_seq(void);
/* Entry seq when still in the ring (and not skipped): its payload, valid until the next
 * broadcast arrives. */
bool kx_channels_feed_get(uint64_t seq, const char **payload, size_t *len);

#endif
