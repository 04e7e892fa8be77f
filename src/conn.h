/* conn.h — connections: a socket, its transport, its buffers, its timer and the protocol
 * handler that consumes its bytes.
 *
 * Owns: kx_conn_t (from accept until closed AND unreferenced), the loop's shared read buffer
 * and each connection's own (only for bytes a handler left), the write queue (bytes, at most
 * one lent piece among them, then optionally a file streamed after them), the connection
 * timer and the transport interface (kx_transport_t; kx_transport_plain is the plain-socket
 * one).
 * Callers: listen.c opens connections; protocols (http.c, ws.c, later sse/tls) install their
 * handler with kx_conn_set_handler and read/write through the functions below; tasks hold
 * references (kx_conn_ref) so a closed connection's memory outlives them.
 * Never: parses or builds protocol bytes (HTTP, WebSocket) or calls a protocol by name: every
 * event goes to the installed handler. A handler is never entered twice for one connection
 * (kx_conn_kick defers to the running one).
 *
 * Lifetimes: `refs` counts the socket (1) plus each task; `closed` means the socket is gone
 * and memory waits for refs == 0 (then handler->on_free runs). `gen` is bumped by the
 * protocol per request so a late task can tell its request is gone. */
#ifndef KX_CONN_H
#define KX_CONN_H
#include <ev.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include "buf.h"
#include "common.h"
#include "server.h"

typedef struct kx_conn kx_conn_t;

/* A peer this far behind (unsent output) is dropped: WebSocket frames and streamed HTTP
 * responses alike, so memory stays bounded whatever a client does. */
#define KX_CONN_OUTPUT_CAP (4u * 1024 * 1024)

/* What a transport call that returned KX_EAGAIN waits for. A TLS read may need the socket
 * writable (and a write readable); the plain transport always waits in its own direction. */
typedef enum { KX_WANT_READ = 1, KX_WANT_WRITE = 2 } kx_want_t;

/* read/write return bytes (> 0), 0 on EOF (read only), KX_EAGAIN (with c->tp_want set), or
 * KX_EIO. writev is write over several pieces in order (one syscall for a head and the body
 * lent after it); NULL means the queue writes its pieces one write at a time. handshake
 * returns KX_OK once the transport is ready for read/write, KX_EAGAIN (with c->tp_want) or
 * KX_EIO; NULL means there is none. pending tells whether read() has
 * bytes without the socket becoming readable (records a TLS library already decrypted);
 * NULL means never. free releases tp_ctx; NULL when there is nothing to release. */
typedef struct {
    const char *name;
    int (*handshake)(kx_conn_t *c);
    ssize_t (*read)(kx_conn_t *c, void *buf, size_t n);
    ssize_t (*write)(kx_conn_t *c, const void *buf, size_t n);
    ssize_t (*writev)(kx_conn_t *c, const struct iovec *iov, int n);
    bool (*pending)(const kx_conn_t *c);
    void (*shutdown)(kx_conn_t *c);
    void (*free)(kx_conn_t *c);
} kx_transport_t;

extern const kx_transport_t kx_transport_plain;

/* Installed by the protocol that owns the connection (http.c at accept, ws.c at upgrade).
 * on_read: bytes were appended to c->rbuf (or the protocol was kicked, rbuf maybe empty).
 * While on_read runs, c->rbuf may be the loop's shared read buffer: the handler consumes or
 * resets it but never grows or frees it, nor keeps pointers into it past its return (conn.c
 * copies what is left into the connection's own buffer).
 * on_drained: every queued byte (and file) was written. on_timeout: the timer fired.
 * on_close: the socket was just closed (c still valid; tasks may hold it). on_free: release
 * protocol memory (refs reached 0). is_idle: no request in flight, closing loses nothing.
 * Any member but on_read may be NULL. */
typedef struct {
    const char *name;
    void (*on_read)(kx_conn_t *c);
    void (*on_drained)(kx_conn_t *c);
    void (*on_timeout)(kx_conn_t *c);
    void (*on_close)(kx_conn_t *c);
    void (*on_free)(kx_conn_t *c);
    bool (*is_idle)(const kx_conn_t *c);
} kx_conn_handler_t;

struct kx_request;
struct kx_ws;

/* Called once a lent piece is no longer needed: written, or its connection closed. */
typedef void (*kx_release_fn)(void *ud);

struct kx_conn {
    int fd;
    const kx_transport_t *tp;
    void *tp_ctx;
    kx_want_t tp_want; /* set by the transport with KX_EAGAIN */
    const kx_conn_handler_t *handler;
    ev_io rio, wio;
    ev_timer timer;      /* armed at or before `deadline` (see kx_conn_set_timer) */
    ev_tstamp deadline;  /* loop time the protocol's timeout is due (0: none) */
    ev_tstamp timer_min; /* the shortest timeout set so far (s; 0: none yet) */
    kx_buf_t rbuf;
    /* The write queue, in order: wfront[fpos..], lent.p[off..], wbuf[wpos..], then the
     * file. Bytes are always appended to wbuf; lending moves what wbuf held to wfront (a
     * swap, no copy), so a writer that appends to wbuf directly stays in order. */
    kx_buf_t wfront;
    size_t fpos;
    struct {
        const char *p; /* NULL: nothing lent */
        size_t len, off;
        kx_release_fn release;
        void *ud;
    } lent;
    kx_buf_t wbuf;
    size_t wpos;
    int send_fd; /* file being streamed after wbuf, or -1 */
    off_t send_left;
    struct kx_request *req; /* HTTP's per-connection state (http.h); NULL once upgraded */
    struct kx_ws *ws;       /* WebSocket state (ws.c) once upgraded */
    uint32_t gen;
    int refs;               /* 1 for the socket + 1 per task */
    bool closed;            /* socket closed; memory waits for refs == 0 */
    bool close_after_flush; /* the last bytes are queued: close once written */
    bool reading;           /* the protocol wants input (rio armed) */
    bool handshaking;       /* the transport's handshake is not finished */
    bool in_read;           /* inside handler->on_read (no nesting) */
    bool read_wants_write;  /* the transport's read waits for writability */
    bool write_wants_read;  /* the transport's write waits for readability */
    char peer_ip[64];
    kx_conn_t *prev, *next;
};

/* Adopts an accepted, non-blocking fd with its transport; the handler is installed next. */
kx_conn_t *kx_conn_open(kx_server_t *s, int fd, const kx_transport_t *tp, const char *peer_ip);
void kx_conn_set_handler(kx_conn_t *c, const kx_conn_handler_t *h);
void kx_conn_close(kx_conn_t *c);
void kx_conn_ref(kx_conn_t *c);
void kx_conn_unref(kx_conn_t *c);
/* Queues bytes (kx_conn_flush writes them). */
void kx_conn_write(kx_conn_t *c, const void *p, size_t n);
/* Queues n bytes at p without copying them: p must stay valid until release(ud) runs, which
 * is exactly once — when they were written, when the connection closes, or at once when it
 * is already closed (release may run before this call returns, e.g. from a flush). A
 * connection lends one piece at a time: a second one while the first is unwritten is copied
 * and released at once. release may be NULL (memory that outlives the connection). */
void kx_conn_write_lent(kx_conn_t *c, const void *p, size_t n, kx_release_fn release, void *ud);
/* Writes without queueing when nothing is queued: returns bytes written (maybe fewer than n,
 * the rest is then the caller's to queue), KX_EAGAIN, or KX_ECLOSED (the socket failed and
 * was closed). */
ssize_t kx_conn_write_now(kx_conn_t *c, const void *p, size_t n);
/* Streams `len` bytes of fd after the queued bytes; takes ownership of fd. */
void kx_conn_sendfile(kx_conn_t *c, int fd, off_t len);
void kx_conn_flush(kx_conn_t *c);
/* Bytes queued and not yet written, lent ones included (a streamed file is not counted). */
size_t kx_conn_unsent(const kx_conn_t *c);
/* Whether queued bytes or a file remain to be written. */
bool kx_conn_busy_writing(const kx_conn_t *c);
/* The protocol's timeout: on_timeout (or the close) ms from now, replacing any earlier one;
 * ms <= 0: none. Lazy: the libev timer is only moved when the new deadline is earlier than
 * the one it is armed for, so a request's three timeouts (head, none, keep-alive) cost no
 * timer-heap work. A timer that fires before the deadline re-arms itself for what is left, but
 * never for longer than the shortest timeout the connection has used, so that the next one set
 * is not earlier than it. */
void kx_conn_set_timer(kx_conn_t *c, int64_t ms);
/* The protocol wants input (true) or is full and lets bytes wait in the kernel (false). */
void kx_conn_want_read(kx_conn_t *c, bool want);
/* The protocol can take input again: runs handler->on_read now, or lets the running
 * on_read of this connection pick it up. */
void kx_conn_kick(kx_conn_t *c);
/* Frees the read buffer when empty and the write buffer when everything queued was written:
 * an idle connection keeps no buffers (a protocol calls it when it goes idle). */
void kx_conn_trim(kx_conn_t *c);
/* Its write half alone: both write buffers go once everything queued was written (safe while
 * the connection is reading). */
void kx_conn_trim_output(kx_conn_t *c);
/* How many times memory was handed back after the connection count fell (tests). */
unsigned kx_conn_trims(void);
/* Open connections from this peer address. */
int kx_conn_count_from(const char *ip);
/* At the connection cap, the connection to close so that `newcomer` (another peer) is served:
 * an idle one (its handler says so) of the peer holding the most, when that peer holds more
 * than the newcomer would. NULL when nobody should give one up. */
kx_conn_t *kx_conn_evictable(kx_server_t *s, const char *newcomer);
/* Closes every connection whose handler says it is idle (drain). */
void kx_conn_close_idle(kx_server_t *s);

#endif
