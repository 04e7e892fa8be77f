/* uring.c — batched socket writes through io_uring, driven from libev (see uring.h).
 *
 * One loop iteration: callbacks queue sends (an SQE each, no syscall); the ev_prepare that runs
 * before libev polls submits them all with one io_uring_enter, where the kernel tries each send
 * at once and posts its completion; the ring's eventfd then wakes the poll and on_completions
 * reaps every CQE. A send that meets a full socket waits inside the kernel (io_uring polls it)
 * instead of arming our write watcher. */
#include "uring.h"
#include "log.h"
#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* SQEs queued between two submits: one per connection that wrote in the iteration; a fuller
 * queue is submitted early (get_sqe). */
#define RING_ENTRIES 4096

struct kx_uring_tx {
    kx_conn_t *c;
    kx_buf_t buf; /* the bytes of the send in flight (moved out of c->wbuf); pos are written */
    size_t pos;
    bool busy; /* an SQE or CQE of this send is outstanding: c is referenced, buf is the kernel's */
};

static struct {
    bool on;
    struct io_uring ring;
    int efd;
    struct ev_loop *loop;
    ev_io done;
    ev_prepare submit;
} U = { .efd = -1 };

static struct io_uring_sqe *get_sqe(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&U.ring);
    if (sqe) return sqe;
    io_uring_submit(&U.ring);
    return io_uring_get_sqe(&U.ring);
}

/* MSG_WAITALL: the kernel retries a partial send itself until all is written or it fails,
 * so a completion is normally the whole buffer. */
static bool queue_send(kx_uring_tx_t *tx)
{
    struct io_uring_sqe *sqe = get_sqe();
    if (!sqe) return false;
    io_uring_prep_send(sqe, tx->c->fd, tx->buf.data + tx->pos, tx->buf.len - tx->pos,
                       MSG_NOSIGNAL | MSG_WAITALL);
    io_uring_sqe_set_data(sqe, tx);
    tx->busy = true;
    return true;
}

static void complete(kx_uring_tx_t *tx, int res)
{
    kx_conn_t *c = tx->c;
    tx->busy = false;
    if (c->closed) { /* the bytes have nowhere to go: drop them with the reference */
        kx_buf_reset(&tx->buf);
        tx->pos = 0;
        kx_conn_unref(c);
        return;
    }
    bool ok = true;
    if (res > 0) tx->pos += (size_t)res;
    else if (res != -EAGAIN && res != -EINTR) ok = false;
    if (ok && tx->pos < tx->buf.len) {
        if (queue_send(tx)) return; /* the rest, keeping the reference */
        ok = false;
    }
    kx_buf_reset(&tx->buf);
    tx->pos = 0;
    /* The connection's buffer was freed meanwhile (an idle WebSocket drops it): it takes this
     * allocation back, so a keep-alive connection moves one buffer to and fro, no malloc. */
    if (!c->wbuf.data) {
        c->wbuf = tx->buf;
        tx->buf = (kx_buf_t)KX_BUF_INIT;
    }
    kx_conn_ring_done(c, ok);
    kx_conn_unref(c); /* may free c, and tx with it */
}

static void reap(void)
{
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&U.ring, &cqe) == 0) {
        kx_uring_tx_t *tx = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&U.ring, cqe);
        if (tx) complete(tx, res); /* NULL: a cancellation's own completion */
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

bool kx_uring_start(struct ev_loop *loop)
{
    const char *v = getenv("KERYX_IO_URING");
    if (!v || strcmp(v, "1") != 0) return false;
    int rc = io_uring_queue_init(RING_ENTRIES, &U.ring, IORING_SETUP_SINGLE_ISSUER);
    if (rc == -EINVAL) rc = io_uring_queue_init(RING_ENTRIES, &U.ring, 0); /* kernel before 6.0 */
    if (rc < 0) {
        kx_log_warn("KERYX_IO_URING=1 but no io_uring (%s): plain sends", strerror(-rc));
        return false;
    }
    U.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (U.efd < 0 || io_uring_register_eventfd(&U.ring, U.efd) < 0) {
        kx_log_warn("KERYX_IO_URING=1 but the ring's eventfd failed: plain sends");
        if (U.efd >= 0) close(U.efd);
        U.efd = -1;
        io_uring_queue_exit(&U.ring);
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
    kx_log_info("io_uring: plain-socket sends are batched (KERYX_IO_URING=1)");
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
    io_uring_queue_exit(&U.ring);
    close(U.efd);
    U.efd = -1;
}

kx_uring_tx_t *kx_uring_tx_new(kx_conn_t *c)
{
    if (!U.on) return NULL;
    kx_uring_tx_t *tx = kx_xcalloc(1, sizeof *tx);
    tx->c = c;
    return tx;
}

void kx_uring_tx_free(kx_conn_t *c)
{
    kx_buf_free(&c->tx->buf);
    free(c->tx);
    c->tx = NULL;
}

bool kx_uring_send(kx_conn_t *c)
{
    kx_uring_tx_t *tx = c->tx;
    kx_buf_t spare = tx->buf; /* empty; its allocation becomes the connection's next buffer */
    tx->buf = c->wbuf;
    tx->pos = c->wpos;
    if (!queue_send(tx)) {
        tx->buf = spare;
        tx->pos = 0;
        return false;
    }
    c->wbuf = spare;
    c->wpos = 0;
    kx_conn_ref(c);
    return true;
}

bool kx_uring_busy(const kx_conn_t *c)
{
    return c->tx && c->tx->busy;
}

size_t kx_uring_unsent(const kx_conn_t *c)
{
    return kx_uring_busy(c) ? c->tx->buf.len - c->tx->pos : 0;
}

void kx_uring_closing(kx_conn_t *c)
{
    if (!kx_uring_busy(c)) return;
    /* The queued SQE names c->fd by number: it must reach the kernel before close(). Sent at
     * once where the socket has room, as the plain path would have sent it. */
    if (io_uring_sq_ready(&U.ring)) io_uring_submit(&U.ring);
    struct io_uring_sqe *sqe = get_sqe();
    if (!sqe) return; /* the send then ends when the peer reads or resets */
    io_uring_prep_cancel(sqe, c->tx, 0);
    io_uring_sqe_set_data(sqe, NULL);
}
