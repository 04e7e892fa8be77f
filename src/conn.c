/* conn.c — connections: buffered reads and writes through the transport, the plain-socket
 * transport, per-connection timers and the installed protocol handler (see conn.h). */
#include "conn.h"
#include "metrics.h"
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

kx_server_t *kx_srv;

#define READ_CHUNK 16384
#define FILE_CHUNK 65536
/* A drained write buffer bigger than this is freed rather than kept: one large answer (or a
 * burst) must not pin its memory for the connection's life. Smaller ones are reused. */
#define WBUF_KEEP (64 * 1024)
#define PEER_BUCKETS 4096

/* One read buffer for the whole loop: an idle connection holds no read buffer, and a busy
 * one borrows this for the length of its handler. Only bytes the handler left (a partial
 * request, pipelined bytes, input a paused protocol has not taken yet) are copied into a
 * private buffer of their own size, so what a connection holds follows what it is owed
 * (docs/ARCHITECTURE.md, "Who owns what"). */
static char scratch[READ_CHUNK + 1];
static bool scratch_lent;

static bool rbuf_is_scratch(const kx_conn_t *c)
{
    return c->rbuf.data == scratch;
}

/* Memory that follows the work. After a burst, what the connections held is free but still
 * resident: malloc gives pages back only from the top of its heap, and the freed blocks lie
 * between blocks still in use. So when the connection count falls to half of its peak since
 * the last trim (by TRIM_MIN_DROP or more), malloc_trim runs once the closing settled
 * (TRIM_DELAY_S later) and returns every free page. Large buffers (request bodies, big
 * responses) are mapped on their own and unmapped when freed: glibc would otherwise raise
 * that threshold after the first such free and keep later ones on the heap. */
#define TRIM_MIN_DROP 256
#define TRIM_DELAY_S 0.5
#define MMAP_THRESHOLD (128 * 1024)

static struct {
    int peak;       /* most connections open since the last trim */
    ev_timer timer; /* pending trim */
    bool tuned;     /* mallopt done */
    unsigned trims; /* malloc_trim runs (tests) */
} mem;

static void on_trim(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    malloc_trim(0);
    mem.trims++;
    mem.peak = kx_srv->n_conns;
}

static void memory_opened(kx_server_t *s)
{
    if (!mem.tuned) {
        mem.tuned = true;
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        ev_init(&mem.timer, on_trim);
    }
    if (s->n_conns > mem.peak) mem.peak = s->n_conns;
}

static void memory_closed(kx_server_t *s)
{
    if (mem.peak - s->n_conns < TRIM_MIN_DROP || s->n_conns > mem.peak / 2 || ev_is_active(&mem.timer))
        return;
    ev_timer_set(&mem.timer, TRIM_DELAY_S, 0.);
    ev_timer_start(s->loop, &mem.timer);
}

unsigned kx_conn_trims(void)
{
    return mem.trims;
}

/* Open connections per peer address: the connection cap is shared fairly (kx_conn_evictable)
 * and WEB_SERVER_MAX_CONNECTIONS_PER_IP is enforced from these counts. */
typedef struct peer {
    char ip[64];
    int n;
    struct peer *next;
} peer_t;

static peer_t *peers[PEER_BUCKETS];

static uint32_t peer_hash(const char *ip)
{
    uint32_t h = 2166136261u;
    for (const char *p = ip; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
    return h % PEER_BUCKETS;
}

static peer_t **peer_slot(const char *ip)
{
    peer_t **pp = &peers[peer_hash(ip)];
    while (*pp && strcmp((*pp)->ip, ip) != 0) pp = &(*pp)->next;
    return pp;
}

static void peer_add(const char *ip, int d)
{
    peer_t **pp = peer_slot(ip);
    if (!*pp) {
        if (d < 0) return;
        *pp = kx_xcalloc(1, sizeof **pp);
        snprintf((*pp)->ip, sizeof(*pp)->ip, "%s", ip);
    }
    (*pp)->n += d;
    if ((*pp)->n > 0) return;
    peer_t *gone = *pp;
    *pp = gone->next;
    free(gone);
}

int kx_conn_count_from(const char *ip)
{
    peer_t *p = *peer_slot(ip);
    return p ? p->n : 0;
}

kx_conn_t *kx_conn_evictable(kx_server_t *s, const char *newcomer)
{
    const peer_t *top = NULL;
    for (int b = 0; b < PEER_BUCKETS; b++)
        for (const peer_t *p = peers[b]; p; p = p->next)
            if (!top || p->n > top->n) top = p;
    /* The newcomer is the biggest holder itself (a reverse proxy, or one greedy client):
     * nothing is taken from anyone else. */
    if (!top || strcmp(top->ip, newcomer) == 0 || top->n <= kx_conn_count_from(newcomer) + 1) return NULL;
    for (kx_conn_t *c = s->conns; c; c = c->next)
        if (strcmp(c->peer_ip, top->ip) == 0 && c->handler && c->handler->is_idle && c->handler->is_idle(c))
            return c;
    return NULL;
}

/* ---- plain transport --------------------------------------------------------------------- */

static ssize_t plain_read(kx_conn_t *c, void *buf, size_t n)
{
    ssize_t r = read(c->fd, buf, n);
    if (r >= 0) return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        c->tp_want = KX_WANT_READ;
        return KX_EAGAIN;
    }
    return KX_EIO;
}

static ssize_t plain_write(kx_conn_t *c, const void *buf, size_t n)
{
    ssize_t r = send(c->fd, buf, n, MSG_NOSIGNAL);
    if (r >= 0) return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        c->tp_want = KX_WANT_WRITE;
        return KX_EAGAIN;
    }
    return KX_EIO;
}

static ssize_t plain_writev(kx_conn_t *c, const struct iovec *iov, int n)
{
    struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n };
    ssize_t r = sendmsg(c->fd, &m, MSG_NOSIGNAL);
    if (r >= 0) return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        c->tp_want = KX_WANT_WRITE;
        return KX_EAGAIN;
    }
    return KX_EIO;
}

static void plain_shutdown(kx_conn_t *c)
{
    shutdown(c->fd, SHUT_WR);
}

const kx_transport_t kx_transport_plain = {
    .name = "plain",
    .read = plain_read,
    .write = plain_write,
    .writev = plain_writev,
    .shutdown = plain_shutdown,
};

/* ---- lifetime ---------------------------------------------------------------------------- */

/* The lender gets its memory back exactly once: the field is cleared before the call, so a
 * release that closes the connection (and so comes here again) finds nothing lent. */
static void release_lent(kx_conn_t *c)
{
    kx_release_fn release = c->lent.release;
    void *ud = c->lent.ud;
    bool had = c->lent.p != NULL;
    memset(&c->lent, 0, sizeof c->lent);
    if (had && release) release(ud);
}

static void conn_free(kx_conn_t *c)
{
    if (c->handler && c->handler->on_free) c->handler->on_free(c);
    if (c->tp->free) c->tp->free(c);
    release_lent(c);
    if (rbuf_is_scratch(c)) c->rbuf = (kx_buf_t)KX_BUF_INIT; /* never while a handler runs */
    kx_buf_free(&c->rbuf);
    kx_buf_free(&c->wfront);
    kx_buf_free(&c->wbuf);
    free(c);
}

void kx_conn_ref(kx_conn_t *c)
{
    c->refs++;
}

void kx_conn_unref(kx_conn_t *c)
{
    if (--c->refs == 0) conn_free(c);
}

void kx_conn_set_handler(kx_conn_t *c, const kx_conn_handler_t *h)
{
    c->handler = h;
}

void kx_conn_close(kx_conn_t *c)
{
    if (c->closed) return;
    kx_server_t *s = kx_srv;
    c->closed = true;
    if (c->handler && c->handler->on_close) c->handler->on_close(c);
    ev_io_stop(s->loop, &c->rio);
    ev_io_stop(s->loop, &c->wio);
    ev_timer_stop(s->loop, &c->timer);
    if (c->send_fd >= 0) close(c->send_fd);
    c->send_fd = -1;
    /* Unwritten output is lost with the socket: lent memory goes back now, not when the last
     * task lets go of the connection. */
    release_lent(c);
    kx_buf_free(&c->wfront);
    c->fpos = 0;
    /* TLS says goodbye (close_notify) so a client reading to the close knows it got it all. */
    if (c->tp->shutdown) c->tp->shutdown(c);
    close(c->fd);
    c->fd = -1;
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->n_conns--;
    kx_metrics_gauge_add(KX_GAUGE_CONNECTIONS, -1);
    peer_add(c->peer_ip, -1);
    memory_closed(s);
    kx_conn_unref(c);
}

void kx_conn_close_idle(kx_server_t *s)
{
    for (kx_conn_t *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->handler && c->handler->is_idle && c->handler->is_idle(c)) kx_conn_close(c);
    }
}

/* ---- timers ------------------------------------------------------------------------------ */

static void arm_timer(struct ev_loop *loop, kx_conn_t *c, ev_tstamp after)
{
    ev_timer_stop(loop, &c->timer);
    ev_timer_set(&c->timer, after, 0.);
    ev_timer_start(loop, &c->timer);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    kx_conn_t *c = w->data;
    if (c->deadline == 0) return; /* the timeout was lifted after the timer was armed */
    ev_tstamp left = c->deadline - ev_now(loop);
    if (left > 0) { /* moved later since: wait for the rest, or as long as the shortest */
        arm_timer(loop, c, left < c->timer_min ? left : c->timer_min);
        return;
    }
    c->deadline = 0;
    /* The handler may close (and so free) the connection: hold it until we are done. */
    kx_conn_ref(c);
    if (c->handshaking || !c->handler || !c->handler->on_timeout) kx_conn_close(c);
    else c->handler->on_timeout(c);
    kx_conn_unref(c);
}

void kx_conn_set_timer(kx_conn_t *c, int64_t ms)
{
    if (c->closed) return; /* a closed connection must not leave a timer behind */
    struct ev_loop *loop = kx_srv->loop;
    if (ms <= 0) {
        c->deadline = 0; /* an armed timer finds no deadline and stays stopped */
        return;
    }
    ev_tstamp after = (ev_tstamp)ms / 1000.0;
    if (c->timer_min == 0 || after < c->timer_min) c->timer_min = after;
    c->deadline = ev_now(loop) + after;
    /* An armed timer that fires no later than the new deadline is left where it is. */
    if (ev_is_active(&c->timer) && ev_timer_remaining(loop, &c->timer) <= after) return;
    arm_timer(loop, c, after);
}

/* ---- watchers ---------------------------------------------------------------------------- */

/* rio is armed while the protocol wants input, while a handshake runs, or while a write
 * waits for readability; wio while output waits or a read waits for writability. */
static void update_watchers(kx_conn_t *c, bool want_write)
{
    if (c->closed) return;
    bool r = c->reading || c->handshaking || c->write_wants_read;
    bool w = want_write || c->read_wants_write;
    if (r != ev_is_active(&c->rio)) {
        if (r) ev_io_start(kx_srv->loop, &c->rio);
        else ev_io_stop(kx_srv->loop, &c->rio);
    }
    if (w != ev_is_active(&c->wio)) {
        if (w) ev_io_start(kx_srv->loop, &c->wio);
        else ev_io_stop(kx_srv->loop, &c->wio);
    }
}

void kx_conn_want_read(kx_conn_t *c, bool want)
{
    c->reading = want;
    update_watchers(c, ev_is_active(&c->wio) && !c->read_wants_write);
}

/* ---- writing ----------------------------------------------------------------------------- */

static bool fill_from_file(kx_conn_t *c)
{
    if (c->send_fd < 0 || c->send_left <= 0) return false;
    size_t n = c->send_left < FILE_CHUNK ? (size_t)c->send_left : FILE_CHUNK;
    kx_buf_reserve(&c->wbuf, n);
    ssize_t r = read(c->send_fd, c->wbuf.data + c->wbuf.len, n);
    if (r <= 0) {
        /* The file shrank under us: the promised length cannot be met, so close. */
        close(c->send_fd);
        c->send_fd = -1;
        c->send_left = 0;
        c->close_after_flush = true;
        return false;
    }
    c->wbuf.len += (size_t)r;
    c->send_left -= r;
    if (c->send_left == 0) {
        close(c->send_fd);
        c->send_fd = -1;
    }
    return true;
}

/* A drained buffer: kept for reuse when small, given back when large. */
static void drained(kx_buf_t *b)
{
    if (b->cap > WBUF_KEEP) kx_buf_free(b);
    else kx_buf_reset(b);
}

/* The unwritten pieces of the queue, in order (the file is not one: it is read into wbuf). */
static int queued_pieces(const kx_conn_t *c, struct iovec iov[3])
{
    int n = 0;
    if (c->fpos < c->wfront.len)
        iov[n++] = (struct iovec){ .iov_base = c->wfront.data + c->fpos, .iov_len = c->wfront.len - c->fpos };
    if (c->lent.p && c->lent.off < c->lent.len)
        iov[n++] = (struct iovec){ .iov_base = (void *)(c->lent.p + c->lent.off),
                                   .iov_len = c->lent.len - c->lent.off };
    if (c->wpos < c->wbuf.len)
        iov[n++] = (struct iovec){ .iov_base = c->wbuf.data + c->wpos, .iov_len = c->wbuf.len - c->wpos };
    return n;
}

/* w bytes went out: they come off the pieces in queue order. A lent piece written to its end
 * is released here, and only here or at close. */
static void advance(kx_conn_t *c, size_t w)
{
    size_t take = c->wfront.len - c->fpos < w ? c->wfront.len - c->fpos : w;
    c->fpos += take;
    w -= take;
    if (c->fpos == c->wfront.len && c->fpos) {
        drained(&c->wfront);
        c->fpos = 0;
    }
    if (c->lent.p) {
        take = c->lent.len - c->lent.off < w ? c->lent.len - c->lent.off : w;
        c->lent.off += take;
        w -= take;
        if (c->lent.off == c->lent.len) release_lent(c);
    }
    c->wpos += w;
}

/* Returns true when everything queued was written. */
static bool flush(kx_conn_t *c)
{
    if (c->handshaking) return false; /* output waits for the transport to be ready */
    for (;;) {
        struct iovec iov[3];
        int n = queued_pieces(c, iov);
        if (n == 0) {
            c->wpos = 0;
            if (c->send_fd >= 0) kx_buf_reset(&c->wbuf); /* the next file chunk reuses it */
            else drained(&c->wbuf);
            if (c->closed || !fill_from_file(c)) break;
            continue;
        }
        ssize_t w = n > 1 && c->tp->writev ? c->tp->writev(c, iov, n)
                                           : c->tp->write(c, iov[0].iov_base, iov[0].iov_len);
        if (w == KX_EAGAIN) {
            c->write_wants_read = c->tp_want == KX_WANT_READ;
            update_watchers(c, !c->write_wants_read);
            return false;
        }
        if (w < 0) {
            kx_conn_close(c);
            return false;
        }
        advance(c, (size_t)w);
        if (c->closed) return false; /* a release callback closed it */
    }
    if (c->closed) return false;
    c->write_wants_read = false;
    update_watchers(c, false);
    if (c->close_after_flush) {
        kx_conn_close(c);
        return false;
    }
    return true;
}

void kx_conn_write(kx_conn_t *c, const void *p, size_t n)
{
    if (c->closed) return;
    kx_buf_append(&c->wbuf, p, n);
}

void kx_conn_write_lent(kx_conn_t *c, const void *p, size_t n, kx_release_fn release, void *ud)
{
    if (c->closed || n == 0 || c->lent.p) {
        /* Nothing to lend, nobody to lend to, or the one slot is taken: copy (a second lent
         * piece behind an unwritten one is rare: pipelined large answers). */
        kx_conn_write(c, p, n);
        if (release) release(ud);
        return;
    }
    /* What is queued so far goes before the lent piece: wbuf becomes wfront (wfront is empty
     * whenever nothing is lent: it drains before the lent piece, which drains before release). */
    kx_buf_t t = c->wfront;
    c->wfront = c->wbuf;
    c->fpos = c->wpos;
    c->wbuf = t;
    c->wpos = 0;
    kx_buf_reset(&c->wbuf);
    c->lent.p = p;
    c->lent.len = n;
    c->lent.off = 0;
    c->lent.release = release;
    c->lent.ud = ud;
}

ssize_t kx_conn_write_now(kx_conn_t *c, const void *p, size_t n)
{
    if (c->closed) return KX_ECLOSED;
    if (c->handshaking || kx_conn_busy_writing(c)) return KX_EAGAIN;
    ssize_t w = c->tp->write(c, p, n);
    if (w >= 0 || w == KX_EAGAIN) return w;
    kx_conn_close(c);
    return KX_ECLOSED;
}

void kx_conn_sendfile(kx_conn_t *c, int fd, off_t len)
{
    if (c->closed || len <= 0) {
        close(fd);
        return;
    }
    c->send_fd = fd;
    c->send_left = len;
}

void kx_conn_flush(kx_conn_t *c)
{
    if (!c->closed) flush(c);
}

size_t kx_conn_unsent(const kx_conn_t *c)
{
    return (c->wfront.len - c->fpos) + (c->lent.p ? c->lent.len - c->lent.off : 0) + (c->wbuf.len - c->wpos);
}

bool kx_conn_busy_writing(const kx_conn_t *c)
{
    return kx_conn_unsent(c) != 0 || c->send_fd >= 0;
}

/* ---- events ------------------------------------------------------------------------------ */

static void read_and_handle(kx_conn_t *c);

static void finish_handshake(kx_conn_t *c)
{
    int rc = c->tp->handshake(c);
    if (rc == KX_EAGAIN) {
        update_watchers(c, c->tp_want == KX_WANT_WRITE);
        return;
    }
    if (rc != KX_OK) {
        kx_conn_close(c);
        return;
    }
    c->handshaking = false;
    update_watchers(c, kx_conn_busy_writing(c));
    if (kx_conn_busy_writing(c) && !flush(c)) return;
    /* The last handshake record may have carried application data already. */
    if (!c->closed && c->reading) read_and_handle(c);
}

/* A handler may hand the connection to another protocol mid-read (an upgrade): bytes that
 * came in the same read belong to the new one. */
static void run_reader(kx_conn_t *c)
{
    const kx_conn_handler_t *h;
    do {
        h = c->handler;
        c->in_read = true;
        h->on_read(c);
        c->in_read = false;
    } while (!c->closed && c->handler != h && c->rbuf.len > 0);
}

/* The handler is done with the borrowed buffer: what it left becomes the connection's own. */
static void return_scratch(kx_conn_t *c)
{
    kx_buf_t keep = KX_BUF_INIT;
    if (rbuf_is_scratch(c) && c->rbuf.len > 0 && !c->closed) kx_buf_append(&keep, c->rbuf.data, c->rbuf.len);
    if (rbuf_is_scratch(c)) c->rbuf = keep;
    scratch_lent = false;
}

/* Reads what the socket (and the transport's own buffer) holds, handing each piece on. */
static void read_and_handle(kx_conn_t *c)
{
    do {
        /* A read never nests in another one's handler; if it ever did, it reads privately. */
        bool borrow = !scratch_lent;
        char *dst;
        if (borrow) {
            dst = scratch;
        } else {
            kx_buf_reserve(&c->rbuf, READ_CHUNK);
            dst = c->rbuf.data + c->rbuf.len;
        }
        ssize_t r = c->tp->read(c, dst, READ_CHUNK);
        if (r == KX_EAGAIN) {
            c->read_wants_write = c->tp_want == KX_WANT_WRITE;
            update_watchers(c, ev_is_active(&c->wio));
            return;
        }
        c->read_wants_write = false;
        if (r <= 0) {
            kx_conn_close(c);
            return;
        }
        if (!borrow) {
            c->rbuf.len += (size_t)r;
            c->rbuf.data[c->rbuf.len] = '\0';
        } else if (c->rbuf.len > 0) {
            /* The bytes continue what the connection kept: the handler wants them contiguous. */
            kx_buf_append(&c->rbuf, scratch, (size_t)r);
            borrow = false;
        } else {
            kx_buf_free(&c->rbuf);
            scratch[r] = '\0';
            c->rbuf = (kx_buf_t){ scratch, (size_t)r, sizeof scratch };
            scratch_lent = true;
        }
        run_reader(c);
        if (borrow) return_scratch(c);
        else if (c->rbuf.len == 0 && !c->closed) kx_buf_free(&c->rbuf);
    } while (!c->closed && c->reading && c->tp->pending && c->tp->pending(c));
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    kx_conn_t *c = w->data;
    kx_conn_ref(c);
    if (c->handshaking) {
        finish_handshake(c);
    } else {
        if (c->write_wants_read) flush(c);
        if (!c->closed && c->reading) read_and_handle(c);
    }
    kx_conn_unref(c);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    kx_conn_t *c = w->data;
    kx_conn_ref(c);
    if (c->handshaking) {
        finish_handshake(c);
        kx_conn_unref(c);
        return;
    }
    if (c->read_wants_write) {
        c->read_wants_write = false;
        read_and_handle(c);
    }
    if (!c->closed && flush(c) && !kx_conn_busy_writing(c) && c->handler->on_drained)
        c->handler->on_drained(c);
    kx_conn_unref(c);
}

void kx_conn_kick(kx_conn_t *c)
{
    if (c->closed || c->in_read || !c->handler) return;
    kx_conn_ref(c);
    run_reader(c);
    kx_conn_unref(c);
}

void kx_conn_trim_output(kx_conn_t *c)
{
    if (c->closed || kx_conn_busy_writing(c)) return;
    kx_buf_free(&c->wfront);
    kx_buf_free(&c->wbuf);
    c->fpos = 0;
    c->wpos = 0;
}

void kx_conn_trim(kx_conn_t *c)
{
    if (c->closed) return;
    if (c->rbuf.len == 0) {
        /* The loop's read buffer is not the connection's to free: it is handed back after
         * the handler returns (return_scratch). */
        if (rbuf_is_scratch(c)) c->rbuf = (kx_buf_t)KX_BUF_INIT;
        else kx_buf_free(&c->rbuf);
    }
    kx_conn_trim_output(c);
}

kx_conn_t *kx_conn_open(kx_server_t *s, int fd, const kx_transport_t *tp, const char *peer_ip)
{
    kx_conn_t *c = kx_xcalloc(1, sizeof *c);
    c->fd = fd;
    c->tp = tp;
    c->send_fd = -1;
    c->refs = 1;
    c->handshaking = tp->handshake != NULL;
    snprintf(c->peer_ip, sizeof c->peer_ip, "%s", peer_ip);
    ev_io_init(&c->rio, on_readable, fd, EV_READ);
    ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
    ev_init(&c->timer, on_timer);
    c->rio.data = c->wio.data = c->timer.data = c;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    kx_metrics_gauge_add(KX_GAUGE_CONNECTIONS, 1);
    peer_add(c->peer_ip, 1);
    memory_opened(s);
    /* The first handshake step runs on the first writable event (at once): a transport that
     * speaks first gets its turn, one that waits for the peer says so with tp_want. */
    if (c->handshaking) update_watchers(c, true);
    return c;
}
