/* uring.h — batched socket I/O through io_uring (KERYX_IO_URING=1; off by default).
 *
 * Owns: the process's ring, its provided receive buffers (one buffer ring the kernel picks
 * from, so idle connections hold none), the libev watchers that drive it (an ev_prepare that
 * submits everything queued during a loop iteration with one io_uring_enter, and an ev_io on
 * the ring's completion eventfd that reaps what completed), and each connection's ring state
 * (kx_uring_conn_t: its send in flight, with the bytes moved out of c->wbuf, and its multishot
 * receive). Each of the two holds a kx_conn_ref until its last completion arrives, so a
 * closed connection's memory outlives the kernel's use of it.
 * Callers: server.c starts and stops the ring around the loop (after a worker's fork: a ring is
 * per process); conn.c gives a plain-socket connection its state at open, hands its queued
 * bytes to kx_uring_send from flush, arms or disarms its receive where it would start or stop
 * the read watcher, and is told through kx_conn_ring_done / kx_conn_ring_read what completed.
 * Never: TLS (its records go through OpenSSL's reads and writes), protocol bytes; libev stays
 * the loop: nothing here waits in io_uring_enter. */
#ifndef KX_URING_H
#define KX_URING_H
#include <ev.h>
#include "conn.h"

typedef struct kx_uring_conn kx_uring_conn_t;

/* Sets the ring up when KERYX_IO_URING=1 (logs why not and carries on without it when the
 * kernel refuses one). Returns whether plain sockets go through the ring. */
bool kx_uring_start(struct ev_loop *loop);
void kx_uring_stop(void);
/* Ring state for a new plain-socket connection, or NULL when the ring is off. */
kx_uring_conn_t *kx_uring_conn_new(kx_conn_t *c);
/* Releases c's state (conn.c at free: nothing is in flight then, it held a reference). */
void kx_uring_conn_free(kx_conn_t *c);
/* Moves c's unsent bytes (c->wbuf from c->wpos) into a send queued on the ring; c->wbuf is
 * left empty for the next bytes. Only when !kx_uring_busy(c). False (nothing moved) when the
 * ring has no free entry even after a submit: the caller writes the bytes itself. */
bool kx_uring_send(kx_conn_t *c);
/* Whether a send of c is queued or in flight. */
bool kx_uring_busy(const kx_conn_t *c);
/* Bytes of c's send in flight not yet written. */
size_t kx_uring_unsent(const kx_conn_t *c);
/* The protocol wants input (a multishot receive is armed: each arrival is one completion, no
 * read watcher, no read syscall) or not (it is cancelled: bytes wait in the kernel). False
 * when the ring has no free entry to arm it even after a submit: the caller's read watcher
 * reads instead, until a later call arms it. */
bool kx_uring_want_read(kx_conn_t *c, bool want);
/* c is closing: a queued send goes to the kernel now (before its fd is closed and its number
 * reused), and what is in flight is cancelled (it holds the socket open otherwise). */
void kx_uring_closing(kx_conn_t *c);

#endif
