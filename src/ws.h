/* ws.h — WebSocket connections (RFC 6455) on the web port, with wslay for framing.
 *
 * Owns: the upgrade handshake (Origin allow-list, version, key, Sec-WebSocket-Accept via
 * OpenSSL SHA-1), the WebSocket connection handler, the per-connection wslay context and
 * limits (WS_MAX_PAYLOAD_SIZE → 1009, WS_MAX_MESSAGES_PER_SECOND → 1008 and disconnect,
 * invalid UTF-8 → 1007, binary → 1003), ping keepalive and idle timeout, the registry of open
 * sockets by id, and the drain (close 1001 "Server shutting down").
 * Callers: dispatch.c (upgrade), channels.c (fan-out frames, per-socket slot), lua_api_ws.c
 * (send, close), server.c (installs the event handlers, drain).
 * Never: runs the app or calls a higher layer by name: open, message and close go to the
 * handlers installed with kx_ws_set_events, and on_message is called from inside wslay's
 * receive callback, where it must only queue work — unless kx_ws_message_may_run() says the
 * message came through the direct path (a whole text frame taken without wslay, in a read
 * handler like HTTP's). Never parses JSON. */
#ifndef KX_WS_H
#define KX_WS_H
#include "http.h"
#include <sys/uio.h>

typedef struct kx_ws kx_ws_t;

/* Installed once by the top layer (server.c). on_open: c is the upgrading connection, its
 * request still readable. on_message: one complete, valid UTF-8 text message (must queue,
 * not run). on_close: the socket just closed (c is going away; its id is no longer found). */
typedef struct {
    void (*on_open)(kx_conn_t *c, uint64_t id);
    void (*on_message)(uint64_t id, const char *text, size_t len);
    void (*on_close)(kx_conn_t *c, uint64_t id);
} kx_ws_events_t;

void kx_ws_set_events(const kx_ws_events_t *events);
/* True when the request asks for a WebSocket upgrade. */
bool kx_ws_is_upgrade(const kx_request_t *r);
/* Answers the upgrade request on c: 101 and the WebSocket handler, or an error response. */
void kx_ws_upgrade(kx_conn_t *c);

/* True while on_message is called from the direct path, outside wslay: the handler may run
 * the app at once, as HTTP's read handler does (the socket may be sent to or closed meanwhile;
 * the direct path checks for both). False inside wslay's callbacks. */
bool kx_ws_message_may_run(void);
/* By id (the Lua side only ever holds ids, never pointers). NULL once closed. */
kx_conn_t *kx_ws_find(uint64_t id);
int kx_ws_send_text(kx_conn_t *c, const char *p, size_t n);
/* One text frame whose payload is the n pieces one after the other (a reply's head and body
 * need no joining first). */
int kx_ws_send_pieces(kx_conn_t *c, const struct iovec *v, int n);
/* A text frame header for a payload of len bytes (2, 4 or 10 bytes written to h). */
size_t kx_ws_text_header(uint8_t h[10], size_t len);
/* A broadcast's text frame, built once for all its recipients (refcounted: a socket the frame
 * is lent to holds a reference until it is written; the creator drops its own with unref). */
typedef struct kx_ws_frame kx_ws_frame_t;
kx_ws_frame_t *kx_ws_frame_text(const char *p, size_t n);
void kx_ws_frame_unref(kx_ws_frame_t *f);
/* Queues the frame on c without writing it (a fan-out batch: kx_ws_flush writes it, or any
 * frame sent to c meanwhile takes it along, in order). A socket whose queue reaches 64 KiB is
 * written at once. KX_OK or KX_ECLOSED (gone, closing, or dropped for being more than
 * KX_CONN_OUTPUT_CAP behind: c may then be freed when the caller holds no reference). */
int kx_ws_queue_frame(kx_conn_t *c, kx_ws_frame_t *f);
/* Writes what c has queued (one write when the kernel takes it all); an idle socket then
 * keeps no write buffer. May close c. */
void kx_ws_flush(kx_conn_t *c);
void kx_ws_close(kx_conn_t *c, uint16_t code, const char *reason);
/* True once a close frame was queued (the socket ends soon). */
bool kx_ws_closing(const kx_conn_t *c);
uint64_t kx_ws_id(const kx_conn_t *c);
int kx_ws_count(void);
/* A slot where a higher layer keeps per-socket data (channels.c: subscriptions); NULL for a
 * connection that is not a WebSocket. The owner clears it from its on_close handler. */
void **kx_ws_user(kx_conn_t *c);
/* Drain: every socket gets close 1001 "Server shutting down"; lingering ones are dropped. */
void kx_ws_close_all(uint16_t code, const char *reason);
void kx_ws_close_lingering(void);

#endif
