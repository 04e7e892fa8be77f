/* uring.c — batched socket I/O through io_uring, driven from libev (see uring.h).
 *
 * One loop iteration: callbacks queue sends and receive arms (an SQE each, no syscall); the
 * ev_prepare that runs before libev polls submits them all with one io_uring_enter, where the
 * kernel tries each send at once and posts its completion; the ring's eventfd then wakes the
 * poll and on_completions reaps every CQE. A send that meets a full socket waits inside the
 * kernel (io_uring polls it) instead of arming our write watcher. A connection that wants
 * input keeps one multishot receive armed: the kernel fills a buffer of the shared buffer ring
 * as bytes arrive and posts a completion, which is copied into c->rbuf and given back. */
#include "uring.h"
#include "log.h"
#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* SQEs queued between two submits: one or two per connection active in the iteration; a
 * fuller queue is submitted early (get_sqe). */
#define RING_ENTRIES 4096
/* Receive buffers shared by every connection: a completion's buffer goes back at once, so
 * only bytes arrived and not yet reaped hold one. Out of them, a receive ends with ENOBUFS
 * and is armed again. 256 x 8 KiB (power of two entries, as the kernel requires). */
#define RX_BUFS 256
#define RX_BUF_SIZE 8192
#define RX_GROUP 0

/* A CQE's user_data: the connection's state, with the low bit set for the receive. */
#define TAG_RX ((uintptr_t)1)

struct kx_uring_conn {
    kx_conn_t *c;
    kx_buf_t buf; /* the bytes of the send in flight (moved out of c->wbuf); pos are written */
    size_t pos;
    bool tx_busy;      /* an SQE or CQE of the send is outstanding: c is referenced */
    bool rx_armed;     /* the multishot receive is outstanding: c is referenced */
    bool rx_want;      /* the protocol wants input */
    bool rx_cancelled; /* a cancellation of the receive is queued */
};

static struct {
    bool on;
    struct io_uring ring;
    int efd;
    struct ev_loop *loop;
    ev_io done;
    ev_prepare submit;
    struct io_uring_buf_ring *br;
    char *rx_mem;
} U = { .efd = -1 };

static struct io_uring_sqe *get_sqe(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&U.ring);
    if (sqe) return sqe;
    io_uring_submit(&U.ring);
    return io_uring_get_sqe(&U.ring);
}

/* ---- sends ------------------------------------------------------------------------------ */

/* MSG_WAITALL: the kernel retries a partial send itself until all is written or it fails,
 * so a completion is normally the whole buffer. */
static bool queue_send(kx_uring_conn_t *u)
{
    struct io_uring_sqe *sqe = get_sqe();
    if (!sqe) return false;
    io_uring_prep_send(sqe, u->c->fd, u->buf.data + u->pos, u->buf.len - u->pos, MSG_NOSIGNAL | MSG_WAITALL);
    io_uring_sqe_set_data(sqe, u);
    u->tx_busy = true;
    return true;
}

static void send_done(kx_uring_conn_t *u, int res)
{
    kx_conn_t *c = u->c;
    u->tx_busy = false;
    if (c->closed) { /* the bytes have nowhere to go: drop them with the reference */
        kx_buf_reset(&u->buf);
        u->pos = 0;
        kx_conn_unref(c);
        return;
    }
    bool ok = true;
    if (res > 0) u->pos += (size_t)res;
    else if (res != -EAGAIN && res != -EINTR) ok = false;
    if (ok && u->pos < u->buf.len) {
        if (queue_send(u)) return; /* the rest, keeping the reference */
        ok = false;
    }
    kx_buf_reset(&u->buf);
    u->pos = 0;
    /* The connection's buffer was moved here or freed meanwhile: it takes this allocation
     * back, so a keep-alive connection moves one buffer to and fro, no malloc per response. */
    if (!c->wbuf.data) {
        c->wbuf = u->buf;
        u->buf = (kx_buf_t)KX_BUF_INIT;
    }
    kx_conn_ring_done(c, ok);
    kx_conn_unref(c); /* may free c, and u with it */
}

bool kx_uring_send(kx_conn_t *c)
{
    kx_uring_conn_t *u = c->uring;
    kx_buf_t spare = u->buf; /* empty; its allocation becomes the connection's next buffer */
    u->buf = c->wbuf;
    u->pos = c->wpos;
    if (!queue_send(u)) {
        u->buf = spare;
        u->pos = 0;
        return false;
    }
    c->wbuf = spare;
    c->wpos = 0;
    kx_conn_ref(c);
    return true;
}

bool kx_uring_busy(const kx_conn_t *c)
{
    return c->uring && c->uring->tx_busy;
}

size_t kx_uring_unsent(const kx_conn_t *c)
{
    return kx_uring_busy(c) ? c->uring->buf.len - c->uring->pos : 0;
}

/* ---- receives --------------------------------------------------------------------------- */

static bool arm_recv(kx_uring_conn_t *u)
{
    struct io_uring_sqe *sqe = get_sqe();
    if (!sqe) return false;
    io_uring_prep_recv_multishot(sqe, u->c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = RX_GROUP;
    io_uring_sqe_set_data(sqe, (void *)((uintptr_t)u | TAG_RX));
    u->rx_armed = true;
    return true;
}

static void cancel(void *user_data)
{
    struct io_uring_sqe *sqe = get_sqe();
    if (!sqe) return; /* the operation then ends when the peer sends, reads or resets */
    io_uring_prep_cancel(sqe, user_data, 0);
    io_uring_sqe_set_data(sqe, NULL);
}

bool kx_uring_want_read(kx_conn_t *c, bool want)
{
    kx_uring_conn_t *u = c->uring;
    u->rx_want = want;
    if (want && !u->rx_armed) {
        if (!arm_recv(u)) return false;
        kx_conn_ref(c);
    } else if (!want && u->rx_armed && !u->rx_cancelled) {
        u->rx_cancelled = true;
        cancel((void *)((uintptr_t)u | TAG_RX));
    }
    return true;
}

static void give_back(unsigned short bid)
{
    io_uring_buf_ring_add(U.br, U.rx_mem + (size_t)bid * RX_BUF_SIZE, RX_BUF_SIZE, bid,
                          io_uring_buf_ring_mask(RX_BUFS), 0);
    io_uring_buf_ring_advance(U.br, 1);
}

static void recv_done(kx_uring_conn_t *u, int res, unsigned flags)
{
    kx_conn_t *c = u->c;
    kx_conn_ref(c); /* the handler may close c, which may end the receive's reference */
    if (flags & IORING_CQE_F_BUFFER) {
        unsigned short bid = (unsigned short)(flags >> IORING_CQE_BUFFER_SHIFT);
        /* Bytes after a cancellation still belong to the stream: they wait in c->rbuf. */
        if (res > 0 && !c->closed) kx_conn_ring_read(c, U.rx_mem + (size_t)bid * RX_BUF_SIZE, (size_t)res);
        give_back(bid);
    } else if (res == 0 && !c->closed) {
        kx_conn_ring_read(c, NULL, 0); /* end of stream */
    } else if (res < 0 && res != -ENOBUFS && res != -ECANCELED && !c->closed) {
        kx_conn_close(c);
    }
    if (!(flags & IORING_CQE_F_MORE)) {
        u->rx_armed = false;
        u->rx_cancelled = false;
        /* Out of buffers (ENOBUFS) or a cancellation the protocol has changed its mind on. */
        bool again = !c->closed && u->rx_want && res != 0;
        if (!again || !arm_recv(u)) kx_conn_unref(c);
    }
    kx_conn_unref(c);
}

/* ---- the loop's side -------------------------------------------------------------------- */

static void reap(void)
{
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&U.ring, &cqe) == 0) {
        uintptr_t data = (uintptr_t)io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        unsigned flags = cqe->flags;
        io_uring_cqe_seen(&U.ring, cqe);
        if (!data) continue; /* a cancellation's own completion */
        kx_uring_conn_t *u = (kx_uring_conn_t *)(data & ~TAG_RX);
        if (data & TAG_RX) recv_done(u, res, flags);
        else send_done(u, res);
    }
}

static void on_completions(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    uint64_t n;
    /* Level-triggered: the counter is cleared before reaping, so a CQE posted after the read
     * sets it again and is not missed. */
    if (read(U.efd, &n, sizeof n) < 0 && errno != EAGAIN)
        kx_log_warn("io_uring eventfd: %s", strerror(errno));
    reap();
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    if (io_uring_sq_ready(&U.ring) == 0) return;
    int rc = io_uring_submit(&U.ring);
    if (rc < 0) kx_log_warn("io_uring submit: %s", strerror(-rc));
}

static bool setup_buffers(void)
{
    size_t ring_bytes = RX_BUFS * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (br == MAP_FAILED) return false;
    U.br = br;
    U.rx_mem = kx_xmalloc((size_t)RX_BUFS * RX_BUF_SIZE);
    struct io_uring_buf_reg reg = { .ring_addr = (uintptr_t)br, .ring_entries = RX_BUFS, .bgid = RX_GROUP };
    if (io_uring_register_buf_ring(&U.ring, &reg, 0) < 0) return false;
    io_uring_buf_ring_init(U.br);
    for (unsigned i = 0; i < RX_BUFS; i++)
        io_uring_buf_ring_add(U.br, U.rx_mem + (size_t)i * RX_BUF_SIZE, RX_BUF_SIZE, (unsigned short)i,
                              io_uring_buf_ring_mask(RX_BUFS), (int)i);
    io_uring_buf_ring_advance(U.br, RX_BUFS);
    return true;
}

static void teardown(void)
{
    if (U.efd >= 0) close(U.efd);
    U.efd = -1;
    io_uring_queue_exit(&U.ring);
    if (U.br) munmap(U.br, RX_BUFS * sizeof(struct io_uring_buf));
    U.br = NULL;
    free(U.rx_mem);
    U.rx_mem = NULL;
}

bool kx_uring_start(struct ev_loop *loop)
{
    const char *v = getenv("KERYX_IO_URING");
    if (!v || strcmp(v, "1") != 0) return false;
    int rc = io_uring_queue_init(RING_ENTRIES, &U.ring, IORING_SETUP_SINGLE_ISSUER);
    if (rc == -EINVAL) rc = io_uring_queue_init(RING_ENTRIES, &U.ring, 0); /* kernel before 6.0 */
    if (rc < 0) {
        kx_log_warn("KERYX_IO_URING=1 but no io_uring (%s): plain reads and sends", strerror(-rc));
        return false;
    }
    U.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (U.efd < 0 || io_uring_register_eventfd(&U.ring, U.efd) < 0 || !setup_buffers()) {
        kx_log_warn("KERYX_IO_URING=1 but the ring's eventfd or buffers failed: plain reads and sends");
        teardown();
        return false;
    }
    U.loop = loop;
    ev_io_init(&U.done, on_completions, U.efd, EV_READ);
    ev_io_start(loop, &U.done);
    ev_prepare_init(&U.submit, on_prepare);
    ev_prepare_start(loop, &U.submit);
    /* Neither keeps the loop alive: the server's own watchers decide when it ends. */
    ev_unref(loop);
    ev_unref(loop);
    U.on = true;
    kx_log_info("io_uring: plain-socket reads and sends are batched (KERYX_IO_URING=1)");
    return true;
}

void kx_uring_stop(void)
{
    if (!U.on) return;
    U.on = false;
    ev_ref(U.loop);
    ev_ref(U.loop);
    ev_io_stop(U.loop, &U.done);
    ev_prepare_stop(U.loop, &U.submit);
    teardown();
}

kx_uring_conn_t *kx_uring_conn_new(kx_conn_t *c)
{
    if (!U.on) return NULL;
    kx_uring_conn_t *u = kx_xcalloc(1, sizeof *u);
    u->c = c;
    return u;
}

void kx_uring_conn_free(kx_conn_t *c)
{
    kx_buf_free(&c->uring->buf);
    free(c->uring);
    c->uring = NULL;
}

void kx_uring_closing(kx_conn_t *c)
{
    kx_uring_conn_t *u = c->uring;
    if (!u) return;
    u->rx_want = false;
    if (!u->tx_busy && !u->rx_armed) return;
    /* A queued SQE names c->fd by number: it must reach the kernel before close(). A send is
     * then made at once where the socket has room, as the plain path would have made it. */
    if (io_uring_sq_ready(&U.ring)) io_uring_submit(&U.ring);
    if (u->tx_busy) cancel(u);
    if (u->rx_armed && !u->rx_cancelled) {
        u->rx_cancelled = true;
        cancel((void *)((uintptr_t)u | TAG_RX));
    }
}
