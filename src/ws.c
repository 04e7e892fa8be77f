/* ws.c — WebSocket connections (see ws.h). */
#include "ws.h"
#include "utf8.h"
#include "cors.h"
#include "log.h"
#include "metrics.h"
#include "ws_frame.h"
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <wslay/wslay.h>
#include <sys/uio.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_CLOSE_GRACE_MS 1000 /* wait this long for the peer's close reply */
/* Input wslay has not taken yet (it pauses while its replies wait): past this, reading stops
 * until the output drains, so a peer that sends without reading cannot grow our memory. */
#define WS_RBUF_MAX (256u * 1024)
#define ID_BUCKETS 16384

struct kx_ws {
    wslay_event_context_ptr ctx; /* NULL while idle: created on demand (see release_if_idle) */
    kx_ws_frames_t fr;
    uint64_t id;
    kx_conn_t *conn;
    ev_timer ping;
    double window_start;
    int64_t window_count;
    void *user; /* a higher layer's per-socket data (kx_ws_user) */
    bool closing;
    kx_ws_t *next_by_id;
};

static struct {
    bool direct; /* on_message is called from the direct path: see kx_ws_message_may_run */
    kx_ws_t *by_id[ID_BUCKETS];
    uint64_t next_id;
    int count;
    const kx_ws_events_t *events;
} W;

/* ---- small helpers ------------------------------------------------------------------------ */

/* Sec-WebSocket-Key must be base64 of exactly 16 bytes: 22 chars + "==". */
static bool valid_key(const char *k, size_t n)
{
    if (n != 24 || k[22] != '=' || k[23] != '=') return false;
    for (size_t i = 0; i < 22; i++) {
        unsigned char c = (unsigned char)k[i];
        if (!(isalnum(c) || c == '+' || c == '/')) return false;
    }
    return true;
}

static void accept_value(const char *key, size_t n, char out[29])
{
    char buf[24 + sizeof WS_GUID];
    unsigned char sha[SHA_DIGEST_LENGTH];
    memcpy(buf, key, n); /* n == 24: checked by valid_key */
    memcpy(buf + n, WS_GUID, sizeof WS_GUID - 1);
    SHA1((const unsigned char *)buf, n + sizeof WS_GUID - 1, sha);
    EVP_EncodeBlock((unsigned char *)out, sha, SHA_DIGEST_LENGTH); /* 28 chars + NUL */
}

/* ---- registry ----------------------------------------------------------------------------- */

static void register_ws(kx_ws_t *ws)
{
    size_t b = ws->id % ID_BUCKETS;
    ws->next_by_id = W.by_id[b];
    W.by_id[b] = ws;
    W.count++;
    kx_metrics_gauge_add(KX_GAUGE_WS_CONNECTIONS, 1);
}

static void unregister_ws(kx_ws_t *ws)
{
    kx_ws_t **p = &W.by_id[ws->id % ID_BUCKETS];
    while (*p && *p != ws) p = &(*p)->next_by_id;
    if (*p) *p = ws->next_by_id;
    W.count--;
    kx_metrics_gauge_add(KX_GAUGE_WS_CONNECTIONS, -1);
}

kx_conn_t *kx_ws_find(uint64_t id)
{
    for (kx_ws_t *ws = W.by_id[id % ID_BUCKETS]; ws; ws = ws->next_by_id)
        if (ws->id == id && !ws->conn->closed) return ws->conn;
    return NULL;
}

bool kx_ws_message_may_run(void)
{
    return W.direct;
}

bool kx_ws_closing(const kx_conn_t *c)
{
    return !c->ws || c->ws->closing;
}

uint64_t kx_ws_id(const kx_conn_t *c)
{
    return c->ws ? c->ws->id : 0;
}

int kx_ws_count(void)
{
    return W.count;
}

void **kx_ws_user(kx_conn_t *c)
{
    return c->ws ? &c->ws->user : NULL;
}

void kx_ws_set_events(const kx_ws_events_t *events)
{
    W.events = events;
}

/* ---- frames ------------------------------------------------------------------------------- */

static const struct wslay_event_callbacks callbacks;

static bool ensure_ctx(kx_conn_t *c)
{
    kx_ws_t *ws = c->ws;
    if (ws->ctx) return true;
    if (wslay_event_context_server_init(&ws->ctx, &callbacks, c) != 0) {
        ws->ctx = NULL;
        return false;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, (uint64_t)kx_srv->cfg->ws_max_payload_size);
    return true;
}

/* A wslay context carries two 4 KiB buffers. Between frames, with no fragmented message open,
 * nothing queued and no close under way, it holds nothing we need: idle sockets give it back
 * (10,000 idle sockets would otherwise keep 85 MiB). */
static void release_if_idle(kx_ws_t *ws)
{
    if (!ws->ctx || ws->closing) return;
    if (!kx_ws_frames_idle(&ws->fr)) return;
    if (wslay_event_want_write(ws->ctx)) return;
    wslay_event_context_free(ws->ctx);
    ws->ctx = NULL;
}

static void pump(kx_conn_t *c)
{
    kx_ws_t *ws = c->ws;
    /* Never called from inside wslay_event_recv (on_msg only queues; Lua runs later, from
     * the ready queue): a send there could close the socket and free the context wslay is
     * still using. ws_on_read pumps once recv returns. */
    if (!ws || c->closed) return;
    kx_conn_ref(c); /* flushing may close c: keep it alive until we are done with it */
    if (ws->ctx) {
        if (wslay_event_send(ws->ctx) != 0) {
            kx_conn_close(c);
            kx_conn_unref(c);
            return;
        }
        if (!wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx))
            c->close_after_flush = true; /* close handshake done: close once flushed */
    }
    kx_conn_flush(c);
    if (!c->closed && c->ws) {
        release_if_idle(c->ws);
        kx_conn_trim_output(c); /* idle sockets keep no write buffer either */
    }
    kx_conn_unref(c);
}

static int queue_text(kx_conn_t *c, const char *p, size_t n)
{
    struct wslay_event_msg msg = { WSLAY_TEXT_FRAME, (const uint8_t *)p, n };
    if (!ensure_ctx(c)) return KX_ECLOSED;
    return wslay_event_queue_msg(c->ws->ctx, &msg) == 0 ? KX_OK : KX_ECLOSED;
}

/* Past this, a reply is copied into the connection's buffer instead of built on the stack. */
#define WS_DIRECT_SEND_MAX (16u * 1024)

/* The rest of a frame the socket did not take goes to the connection's buffer; it keeps none
 * once everything is out (idle sockets hold no write buffer). */
/* One line per socket dropped for not reading (its output would pass KX_CONN_OUTPUT_CAP). */
static void log_not_reading(const kx_conn_t *c)
{
    kx_log_warn("websocket %llu from %s is not reading: dropping it", (unsigned long long)c->ws->id,
                c->peer_ip);
}

/* Whether `more` bytes would take c's unsent output past KX_CONN_OUTPUT_CAP (logged when so). */
static bool past_output_cap(const kx_conn_t *c, size_t more)
{
    if (kx_conn_unsent(c) + more <= KX_CONN_OUTPUT_CAP) return false;
    log_not_reading(c);
    return true;
}

static int finish_direct(kx_conn_t *c)
{
    kx_conn_flush(c);
    if (c->closed) return KX_ECLOSED;
    kx_conn_trim_output(c);
    return KX_OK;
}

static size_t pieces_len(const struct iovec *v, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++) len += v[i].iov_len;
    return len;
}

/* A text frame written without wslay: its queue, its copies and the context it needs cost a
 * status round trip about as much as the action itself (callgrind). Only called with nothing
 * queued in wslay, so frames keep their order; the output cap is the one on_send enforces. */
static int send_direct(kx_conn_t *c, const struct iovec *v, int n)
{
    uint8_t frame[WS_DIRECT_SEND_MAX + 10];
    size_t len = pieces_len(v, n), hl = kx_ws_text_header(frame, len), total = hl + len;
    if (past_output_cap(c, total)) {
        kx_conn_close(c);
        return KX_ECLOSED;
    }
    if (kx_conn_busy_writing(c) || len > WS_DIRECT_SEND_MAX) {
        kx_conn_write(c, frame, hl);
        for (int i = 0; i < n; i++) kx_conn_write(c, v[i].iov_base, v[i].iov_len);
        return finish_direct(c);
    }
    for (size_t i = 0, at = hl; i < (size_t)n; at += v[i].iov_len, i++)
        memcpy(frame + at, v[i].iov_base, v[i].iov_len);
    ssize_t w = kx_conn_write_now(c, frame, total);
    if (w == (ssize_t)total) return KX_OK;
    if (w == KX_ECLOSED) return KX_ECLOSED;
    size_t done = w > 0 ? (size_t)w : 0;
    kx_conn_write(c, frame + done, total - done);
    return finish_direct(c);
}

/* wslay wants the message in one piece (it copies it into its queue). */
static int queue_pieces(kx_conn_t *c, const struct iovec *v, int n)
{
    if (n == 1) return queue_text(c, v[0].iov_base, v[0].iov_len);
    kx_buf_t b = KX_BUF_INIT;
    for (int i = 0; i < n; i++) kx_buf_append(&b, v[i].iov_base, v[i].iov_len);
    int rc = queue_text(c, b.data ? b.data : "", b.len);
    kx_buf_free(&b);
    return rc;
}

int kx_ws_send_pieces(kx_conn_t *c, const struct iovec *v, int n)
{
    kx_ws_t *ws = c->ws;
    if (!ws || c->closed || ws->closing) return KX_ECLOSED;
    if (!ws->ctx || !wslay_event_want_write(ws->ctx)) return send_direct(c, v, n);
    int rc = queue_pieces(c, v, n);
    if (rc == KX_OK) pump(c);
    return rc;
}

int kx_ws_send_text(kx_conn_t *c, const char *p, size_t n)
{
    struct iovec v = { (void *)p, n };
    return kx_ws_send_pieces(c, &v, 1);
}

/* Queues the close frame without sending: safe inside wslay_event_recv (on_msg). The context
 * exists there, since a frame is being received. */
static void queue_close(kx_conn_t *c, uint16_t code, const char *reason)
{
    kx_ws_t *ws = c->ws;
    ws->closing = true;
    wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
    /* Reading goes on so the peer's close reply ends the socket at once (on_msg ignores any
     * message now); WS_CLOSE_GRACE_MS bounds the wait for a peer that never answers. */
    kx_conn_set_timer(c, WS_CLOSE_GRACE_MS);
}

void kx_ws_close(kx_conn_t *c, uint16_t code, const char *reason)
{
    kx_ws_t *ws = c->ws;
    if (!ws || c->closed || ws->closing) return;
    if (!ensure_ctx(c)) {
        kx_conn_close(c);
        return;
    }
    queue_close(c, code, reason);
    pump(c);
}

/* The header of a text frame. Server frames are unmasked, so a broadcast's bytes are the same
 * for every recipient: built once (kx_ws_frame_text), queued to each socket. */
size_t kx_ws_text_header(uint8_t h[10], size_t len)
{
    h[0] = 0x80 | WSLAY_TEXT_FRAME;
    if (len < 126) {
        h[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

/* A socket whose queued output reaches this is written at once rather than at the end of the
 * loop iteration: a burst of large frames to a reading peer must not look like a peer that
 * does not read (KX_CONN_OUTPUT_CAP counts what is queued). */
#define WS_BATCH_FLUSH_AT (64u * 1024)
/* Below this, a frame for a transport without writev is copied rather than lent (see
 * kx_ws_queue_frame). */
#define WS_FRAME_COPY_MAX 4096

struct kx_ws_frame {
    int refs;
    size_t hlen, len; /* len: header + payload */
    uint8_t bytes[];
};

kx_ws_frame_t *kx_ws_frame_text(const char *p, size_t n)
{
    uint8_t hdr[10];
    size_t hlen = kx_ws_text_header(hdr, n);
    kx_ws_frame_t *f = kx_xmalloc(sizeof *f + hlen + n);
    f->refs = 1;
    f->hlen = hlen;
    f->len = hlen + n;
    memcpy(f->bytes, hdr, hlen);
    memcpy(f->bytes + hlen, p, n);
    return f;
}

void kx_ws_frame_unref(kx_ws_frame_t *f)
{
    if (f && --f->refs == 0) free(f);
}

static void frame_release(void *ud)
{
    kx_ws_frame_unref(ud);
}

/* Appends to the connection's queue, behind whatever it holds: the bytes leave with the
 * socket's next write, whoever triggers it (kx_ws_flush, or a reply sent meanwhile), so the
 * order of frames on the socket is the order they were queued in. */
int kx_ws_queue_frame(kx_conn_t *c, kx_ws_frame_t *f)
{
    kx_ws_t *ws = c->ws;
    if (!ws || c->closed || ws->closing) return KX_ECLOSED;
    /* wslay holds frames not yet in the connection's queue: this one goes behind them. */
    if (ws->ctx && wslay_event_want_write(ws->ctx))
        return queue_text(c, (const char *)f->bytes + f->hlen, f->len - f->hlen);
    if (past_output_cap(c, f->len)) {
        kx_conn_close(c);
        return KX_ECLOSED;
    }
    /* A transport without writev (TLS) writes each piece of the queue on its own: a small
     * frame lent there would make a burst two writes (the lent frame, then the copies behind
     * it), so it is copied; a large one is still lent. */
    if (!c->tp->writev && f->len < WS_FRAME_COPY_MAX) {
        kx_conn_write(c, f->bytes, f->len);
    } else {
        /* Lent, not copied: the frame waits in every recipient's queue until the batch is
         * flushed, and one shared copy is no malloc per socket (and no 10,000 copies of a
         * large one). A connection lends one piece at a time: the frames after it are copied. */
        f->refs++;
        kx_conn_write_lent(c, f->bytes, f->len, frame_release, f);
    }
    if (kx_conn_unsent(c) >= WS_BATCH_FLUSH_AT) kx_ws_flush(c);
    return KX_OK;
}

void kx_ws_flush(kx_conn_t *c)
{
    if (!c->ws || c->closed) return;
    kx_conn_ref(c); /* writing may close c */
    /* Without a wslay context (an idle socket: the usual recipient) nothing of the socket's
     * waits outside the connection's queue, and pump would add nothing but its checks. */
    if (c->ws->ctx) pump(c);
    else kx_conn_flush(c);
    /* An idle socket keeps no write buffer (the idle-memory figures of bench/README.md),
     * including the second one a lent frame leaves behind, which pump does not free. */
    if (!c->closed && !kx_conn_busy_writing(c)) kx_conn_trim(c);
    kx_conn_unref(c);
}

/* ---- wslay callbacks ---------------------------------------------------------------------- */

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud)
{
    (void)flags;
    kx_conn_t *c = ud;
    if (c->rbuf.len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = c->rbuf.len < len ? c->rbuf.len : len;
    /* Bytes up to a header that breaks a rule go on; then recv fails and ws_on_read closes
     * with the tracker's code. */
    n = kx_ws_frames_feed(&c->ws->fr, (const uint8_t *)c->rbuf.data, n,
                          (uint64_t)kx_srv->cfg->ws_max_payload_size);
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    memcpy(buf, c->rbuf.data, n);
    kx_buf_consume(&c->rbuf, n);
    return (ssize_t)n;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *ud)
{
    (void)flags;
    kx_conn_t *c = ud;
    if (past_output_cap(c, len)) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    kx_conn_write(c, data, len);
    return (ssize_t)len;
}

static bool over_rate(kx_ws_t *ws)
{
    int64_t max = kx_srv->cfg->ws_max_messages_per_second;
    if (max <= 0) return false;
    double now = ev_now(kx_srv->loop);
    if (now - ws->window_start >= 1.0) {
        ws->window_start = now;
        ws->window_count = 0;
    }
    return ++ws->window_count > max;
}

/* queue_close, creating the context first when the direct path has none. */
static void close_soon(kx_conn_t *c, uint16_t code, const char *reason)
{
    if (!ensure_ctx(c)) {
        kx_conn_close(c);
        return;
    }
    queue_close(c, code, reason);
}

/* False (and the socket closing with 1008) once the peer sends faster than allowed. */
static bool within_rate(kx_conn_t *c)
{
    kx_ws_t *ws = c->ws;
    if (!over_rate(ws)) return true;
    kx_log_warn("websocket %llu from %s sent more than %lld messages per second: disconnected",
                (unsigned long long)ws->id, c->peer_ip, (long long)kx_srv->cfg->ws_max_messages_per_second);
    close_soon(c, 1008, "WebSocket rate limit exceeded");
    return false;
}

/* kx_utf8_valid from the first byte with its top bit set: messages are JSON, mostly ASCII, and
 * an ASCII byte is a whole character, so the rest starts on a character boundary. */
static bool text_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    for (uint64_t v; i + 8 <= n; i += 8) {
        memcpy(&v, p + i, 8);
        if (v & 0x8080808080808080ull) break;
    }
    while (i < n && p[i] < 0x80) i++;
    return kx_utf8_valid(p + i, n - i);
}

/* One complete text message, from wslay or from the direct path: the same checks for both.
 * W.direct is set for this call alone (the handler reads it before running anything that could
 * reach wslay's on_msg for another socket, which sets its own). */
static void on_text(kx_conn_t *c, const char *text, size_t n, bool direct)
{
    if (!within_rate(c)) return;
    if (!text_valid((const uint8_t *)text, n)) {
        close_soon(c, 1007, "invalid UTF-8");
        return;
    }
    kx_metrics_count(KX_METRIC_WS_MESSAGES);
    /* Inside wslay_event_recv the handler must not run the app: it queues (ws.h). */
    if (!W.events || !W.events->on_message) return;
    W.direct = direct;
    W.events->on_message(c->ws->id, text, n);
    W.direct = false;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *ud)
{
    (void)ctx;
    kx_conn_t *c = ud;
    if (c->ws->closing) return;
    if (arg->opcode == WSLAY_BINARY_FRAME) {
        queue_close(c, 1003, "binary messages are not supported");
        return;
    }
    /* A ping costs us a pong: pings count toward the rate like messages (pong and close
     * frames cost nothing and are not counted). wslay answers ping, pong and close. */
    if (arg->opcode == WSLAY_PING) within_rate(c);
    if (arg->opcode == WSLAY_TEXT_FRAME) on_text(c, (const char *)arg->msg, arg->msg_length, false);
}

static const struct wslay_event_callbacks callbacks = {
    on_recv, on_send, NULL, NULL, NULL, NULL, on_msg,
};

/* ---- lifecycle ---------------------------------------------------------------------------- */

static void on_ping(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    kx_conn_t *c = w->data;
    struct wslay_event_msg msg = { WSLAY_PING, (const uint8_t *)"", 0 };
    if (c->ws->closing || !ensure_ctx(c)) return;
    if (wslay_event_queue_msg(c->ws->ctx, &msg) == 0) pump(c);
}

/* A protocol error leaves wslay unable to send: the close frame (1002, or the tracker's code
 * such as 1009) is written by hand — server frames are unmasked: FIN+close opcode, length 2,
 * the code. */
static void fail_protocol(kx_conn_t *c)
{
    uint16_t code = c->ws->fr.violation ? c->ws->fr.violation : 1002;
    const char frame[] = { (char)0x88, 0x02, (char)(code >> 8), (char)(code & 0xff) };
    kx_conn_want_read(c, false);
    kx_conn_write(c, frame, sizeof frame);
    c->close_after_flush = true;
    kx_conn_flush(c);
}

static void free_ws(kx_ws_t *ws)
{
    if (ws->ctx) wslay_event_context_free(ws->ctx);
    free(ws);
}

/* Bytes we owe the peer: in the connection's buffer and still queued inside wslay (pongs,
 * queued messages). */
static size_t output_waiting(const kx_conn_t *c)
{
    kx_ws_t *ws = c->ws;
    return kx_conn_unsent(c) + (ws->ctx ? wslay_event_get_queued_msg_length(ws->ctx) : 0);
}

/* A peer more than the cap behind: no more reading, a best-effort close 1008 written by hand
 * (wslay's queue is what is full), and the socket goes once that is written or after the
 * grace period. */
static void drop_behind(kx_conn_t *c)
{
    static const char frame[] = { (char)0x88, 0x02, (char)(1008 >> 8), (char)(1008 & 0xff) };
    kx_ws_t *ws = c->ws;
    log_not_reading(c);
    ws->closing = true;
    kx_conn_want_read(c, false);
    kx_buf_reset(&c->rbuf);
    kx_conn_write(c, frame, sizeof frame);
    c->close_after_flush = true;
    kx_conn_set_timer(c, WS_CLOSE_GRACE_MS);
    kx_conn_flush(c);
}

/* ---- the direct receive path ---------------------------------------------------------------
 *
 * Nearly every client frame is one whole masked text message in one read. wslay would copy it
 * twice and needs its context (8 KiB, allocated and zeroed per message since idle sockets give
 * it back): such a frame is taken here instead, with the same checks (frame tracker, payload
 * limit, rate, UTF-8). Anything else — control frames, fragments, binary, RSV bits, an unmasked
 * frame, a 64-bit or non-minimal length, a limit breach — goes to wslay, and so does every byte
 * after it until wslay holds nothing again (its context is gone). Which frames qualify is
 * kx_ws_direct_frame (ws_frame.c), which tests/fuzz/fuzz_ws.c holds to what wslay reads. */

/* Takes the direct frames at the front of rbuf (unmasked in place). True when nothing is left
 * for wslay: rbuf is empty or holds the start of a direct frame. */
static bool recv_direct(kx_conn_t *c)
{
    kx_ws_t *ws = c->ws;
    uint8_t *p = (uint8_t *)c->rbuf.data;
    size_t off = 0, hlen, plen;
    uint64_t max = (uint64_t)kx_srv->cfg->ws_max_payload_size;
    int r = KX_WS_DIRECT_NO;
    kx_conn_ref(c);
    while (!ws->ctx && !ws->closing && !c->closed && off < c->rbuf.len) {
        r = kx_ws_direct_frame(p + off, c->rbuf.len - off, max, &hlen, &plen);
        if (r != KX_WS_DIRECT_YES) break;
        kx_ws_frames_feed(&ws->fr, p + off, hlen + plen, max); /* in step; passes (checked above) */
        kx_ws_unmask(p + off + hlen, plen, p + off + hlen - 4);
        on_text(c, (const char *)p + off + hlen, plen, true);
        off += hlen + plen;
    }
    bool done = c->closed;
    if (!done) {
        kx_buf_consume(&c->rbuf, off);
        done = c->rbuf.len == 0 || (r == KX_WS_DIRECT_WAIT && !ws->ctx && !ws->closing);
    }
    kx_conn_unref(c);
    return done;
}

static void ws_on_read(kx_conn_t *c)
{
    kx_ws_t *ws = c->ws;
    if (!ws->closing) kx_conn_set_timer(c, kx_srv->cfg->ws_idle_timeout_ms);
    if (c->rbuf.len == 0) return; /* a kick with nothing new */
    if (!recv_direct(c)) {
        if (!ensure_ctx(c)) {
            kx_conn_close(c);
            return;
        }
        if (wslay_event_recv(ws->ctx) != 0) {
            fail_protocol(c);
            return;
        }
    }
    if (c->closed) return;
    if (ws->closing) kx_buf_reset(&c->rbuf);
    pump(c);
    if (c->closed) return;
    if (output_waiting(c) > KX_CONN_OUTPUT_CAP) {
        drop_behind(c);
        return;
    }
    /* Reading pauses while wslay holds input back (its replies wait for a peer that does not
     * read); on_drained resumes it. */
    kx_conn_want_read(c, c->rbuf.len <= WS_RBUF_MAX);
    /* Idle sockets should not keep a read buffer around (10,000 of them add up). */
    kx_conn_trim(c);
}

static void ws_on_drained(kx_conn_t *c)
{
    if (c->reading || c->ws->closing) return;
    kx_conn_want_read(c, true);
    kx_conn_kick(c);
}

/* Idle past WS_IDLE_TIMEOUT_MS: say goodbye; if the close reply never comes within the
 * grace period (second expiry), drop the socket. */
static void ws_on_timeout(kx_conn_t *c)
{
    if (c->ws && !c->ws->closing) kx_ws_close(c, 1001, "Idle timeout");
    else kx_conn_close(c);
}

static void ws_on_close(kx_conn_t *c)
{
    kx_ws_t *ws = c->ws;
    ev_timer_stop(kx_srv->loop, &ws->ping);
    unregister_ws(ws);
    if (W.events && W.events->on_close) W.events->on_close(c, ws->id);
}

static void ws_on_free(kx_conn_t *c)
{
    free_ws(c->ws);
    c->ws = NULL;
}

static bool ws_is_idle(const kx_conn_t *c)
{
    (void)c;
    return false; /* drain closes sockets with 1001 (kx_ws_close_all), never silently */
}

static const kx_conn_handler_t ws_handler = {
    .name = "websocket",
    .on_read = ws_on_read,
    .on_drained = ws_on_drained,
    .on_timeout = ws_on_timeout,
    .on_close = ws_on_close,
    .on_free = ws_on_free,
    .is_idle = ws_is_idle,
};

void kx_ws_close_all(uint16_t code, const char *reason)
{
    for (kx_conn_t *c = kx_srv->conns, *next; c; c = next) {
        next = c->next;
        if (c->handler == &ws_handler) kx_ws_close(c, code, reason);
    }
}

void kx_ws_close_lingering(void)
{
    for (kx_conn_t *c = kx_srv->conns, *next; c; c = next) {
        next = c->next;
        if (c->handler == &ws_handler) kx_conn_close(c);
    }
}

bool kx_ws_is_upgrade(const kx_request_t *r)
{
    return r->info.upgrade_websocket;
}

/* Every refused upgrade ends the connection: the client asked for a protocol switch. */
static void refuse(kx_conn_t *c, int status, const char *type, const char *msg, const char *extra)
{
    kx_http_send_error_with(c, status, type, msg, extra, KX_R_CLOSE);
}

void kx_ws_upgrade(kx_conn_t *c)
{
    kx_request_t *r = c->req;
    const kx_config_t *cfg = kx_srv->cfg;
    if (kx_srv->draining) {
        refuse(c, 503, "CONNECTION_SERVER_BUSY", "Server is shutting down", NULL);
        return;
    }
    if (!(r->method_len == 3 && memcmp(r->method, "GET", 3) == 0)) {
        refuse(c, 400, "CONNECTION_BAD_REQUEST", "WebSocket upgrade requires GET", NULL);
        return;
    }
    /* Cross-Site WebSocket Hijacking: the browser's Origin must be on the allow-list. */
    if (r->origin_ambiguous || (r->origin && !kx_cors_origin_allowed(cfg, r->origin, r->origin_len))) {
        refuse(c, 403, "CONNECTION_FORBIDDEN", "WebSocket origin not allowed", NULL);
        return;
    }
    const kx_header_t *ver = kx_http_header(r, "Sec-WebSocket-Version");
    if (!ver || !(ver->value_len == 2 && memcmp(ver->value, "13", 2) == 0)) {
        refuse(c, 426, "CONNECTION_BAD_REQUEST", "Unsupported WebSocket version",
               "Sec-WebSocket-Version: 13\r\n");
        return;
    }
    const kx_header_t *key = kx_http_header(r, "Sec-WebSocket-Key");
    if (!key || !valid_key(key->value, key->value_len)) {
        refuse(c, 400, "CONNECTION_BAD_REQUEST", "Invalid Sec-WebSocket-Key", NULL);
        return;
    }
    if (r->body.len > 0 || r->info.transfer_encoding == KX_TE_CHUNKED) {
        refuse(c, 400, "CONNECTION_BAD_REQUEST", "A WebSocket upgrade carries no body", NULL);
        return;
    }
    char accept[32];
    accept_value(key->value, key->value_len, accept);
    kx_ws_t *ws = kx_xcalloc(1, sizeof *ws); /* its wslay context comes with the first frame */
    ws->id = ++W.next_id;
    ws->conn = c;
    ws->window_start = ev_now(kx_srv->loop);
    c->ws = ws;
    register_ws(ws);

    kx_buf_printf(&c->wbuf,
                  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                  accept);
    ev_timer_init(&ws->ping, on_ping, (double)cfg->ws_ping_interval_ms / 1000.0,
                  (double)cfg->ws_ping_interval_ms / 1000.0);
    ws->ping.data = c;
    ev_timer_start(kx_srv->loop, &ws->ping);
    kx_conn_set_timer(c, cfg->ws_idle_timeout_ms);
    /* The open handler gets the peer, the session cookie and the correlation id of the
     * upgrade (read from the request, freed right after). It may send, or close the socket. */
    kx_conn_ref(c);
    kx_conn_set_handler(c, &ws_handler);
    kx_conn_want_read(c, true);
    if (W.events && W.events->on_open) W.events->on_open(c, ws->id);
    kx_http_detach(c); /* a WebSocket never reads another HTTP request: 3.6 KiB back per socket */
    if (!c->closed) kx_conn_flush(c);
    if (!c->closed && c->rbuf.len > 0) kx_conn_kick(c);
    kx_conn_unref(c);
}
