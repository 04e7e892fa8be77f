/* test_conn.c — the connection layer (conn.c) with a transport that behaves like TLS, over a
 * socketpair: a handshake that takes several rounds and is counted against the connection
 * timer, a read that must wait for the socket to be writable (and a write that must wait for
 * it to be readable), bytes the transport holds that the socket does not show (pending), and
 * a protocol handler that sees every event — conn.c calls nothing else. Then the write
 * queue's lent pieces (kx_conn_write_lent): cut at every offset by a transport that takes a
 * few bytes per write (with and without writev), through a real socket with a tiny send
 * buffer, and released exactly once — written, closed before, or lent to a closed one. Last,
 * the loop's shared read buffer (leftover bytes kept contiguous) and idle memory (trim, and
 * the malloc_trim after a drop). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include "conn.h"
#include "test_server.h"


/* ---- a scripted transport ------------------------------------------------------------------ */

typedef struct {
    int handshake_rounds; /* handshake returns KX_EAGAIN this many times first */
    kx_want_t handshake_want;
    int read_wants_write; /* reads answer KX_EAGAIN/WANT_WRITE this many times first */
    int write_wants_read; /* writes answer KX_EAGAIN/WANT_READ this many times first */
    char held[64];        /* bytes "decrypted" but not yet handed out (pending) */
    size_t held_len;
    int handshakes, reads, writes;
} script_t;

static script_t S;

static int sc_handshake(kx_conn_t *c)
{
    char b;
    S.handshakes++;
    if (S.handshakes > 1) (void)!read(c->fd, &b, 1); /* each later round takes the peer's byte */
    if (S.handshake_rounds-- > 0) {
        c->tp_want = S.handshake_want;
        return KX_EAGAIN;
    }
    return KX_OK;
}

static ssize_t sc_read(kx_conn_t *c, void *buf, size_t n)
{
    S.reads++;
    if (S.read_wants_write > 0) {
        S.read_wants_write--;
        c->tp_want = KX_WANT_WRITE;
        return KX_EAGAIN;
    }
    if (S.held_len) { /* what the transport already holds goes first, one byte at a time */
        ((char *)buf)[0] = S.held[0];
        memmove(S.held, S.held + 1, --S.held_len);
        return 1;
    }
    return kx_transport_plain.read(c, buf, n);
}

static ssize_t sc_write(kx_conn_t *c, const void *buf, size_t n)
{
    S.writes++;
    if (S.write_wants_read > 0) {
        S.write_wants_read--;
        c->tp_want = KX_WANT_READ;
        return KX_EAGAIN;
    }
    return kx_transport_plain.write(c, buf, n);
}

static bool sc_pending(const kx_conn_t *c)
{
    (void)c;
    return S.held_len > 0;
}

static const kx_transport_t scripted = {
    .name = "scripted",
    .handshake = sc_handshake,
    .read = sc_read,
    .write = sc_write,
    .pending = sc_pending,
    .shutdown = NULL,
};

/* ---- a protocol that records what it is told ---------------------------------------------- */

static struct {
    char got[256];
    size_t len;
    int reads, drained, timeouts, closes, frees;
} P;

static void p_read(kx_conn_t *c)
{
    P.reads++;
    memcpy(P.got + P.len, c->rbuf.data, c->rbuf.len);
    P.len += c->rbuf.len;
    kx_buf_reset(&c->rbuf);
}
static void p_drained(kx_conn_t *c)
{
    (void)c;
    P.drained++;
}
static void p_timeout(kx_conn_t *c)
{
    P.timeouts++;
    kx_conn_close(c);
}
static void p_close(kx_conn_t *c)
{
    (void)c;
    P.closes++;
}
static void p_free(kx_conn_t *c)
{
    (void)c;
    P.frees++;
}

static const kx_conn_handler_t proto = {
    .name = "recorder",
    .on_read = p_read,
    .on_drained = p_drained,
    .on_timeout = p_timeout,
    .on_close = p_close,
    .on_free = p_free,
};

static kx_conn_t *open_pair(int *peer)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    kx_conn_t *c = kx_conn_open(&srv, sv[0], &scripted, "127.0.0.1");
    kx_conn_set_handler(c, &proto);
    kx_conn_want_read(c, true);
    *peer = sv[1];
    ev_run(srv.loop, EVRUN_NOWAIT); /* the first handshake step */
    return c;
}

static void spin(int n)
{
    for (int i = 0; i < n; i++) ev_run(srv.loop, EVRUN_NOWAIT);
}

static void reset(void)
{
    memset(&S, 0, sizeof S);
    memset(&P, 0, sizeof P);
}

/* ---- cases ------------------------------------------------------------------------------------ */

static void test_handshake_rounds_then_data(void **state)
{
    (void)state;
    reset();
    S.handshake_rounds = 2;
    S.handshake_want = KX_WANT_READ;
    int peer;
    kx_conn_t *c = open_pair(&peer);
    assert_true(c->handshaking);
    kx_conn_write(c, "early", 5); /* output waits for the handshake */
    kx_conn_flush(c);
    char buf[16];
    assert_int_equal(read(peer, buf, sizeof buf), -1);
    for (int i = 0; i < 2; i++) {
        assert_true(c->handshaking);
        assert_int_equal(write(peer, "x", 1), 1); /* each further round needs the socket readable */
        spin(1);
    }
    assert_false(c->handshaking);
    assert_int_equal(S.handshakes, 3);
    spin(2);
    assert_int_equal(read(peer, buf, sizeof buf), 5);
    assert_memory_equal(buf, "early", 5);
    assert_int_equal(write(peer, "hello", 5), 5);
    spin(3);
    assert_true(P.len >= 5);
    assert_non_null(memmem(P.got, P.len, "hello", 5));
    kx_conn_close(c);
    assert_int_equal(P.closes, 1);
    assert_int_equal(P.frees, 1);
    close(peer);
}

static void test_stalled_handshake_is_timed_out(void **state)
{
    (void)state;
    reset();
    S.handshake_rounds = 1000;
    S.handshake_want = KX_WANT_READ;
    int peer;
    kx_conn_t *c = open_pair(&peer);
    kx_conn_ref(c);
    kx_conn_set_timer(c, 20);
    ev_run(srv.loop, EVRUN_ONCE);
    spin(2);
    assert_true(c->closed);
    assert_int_equal(P.timeouts, 0); /* the transport's phase: conn.c closes, the protocol never saw it */
    assert_int_equal(P.closes, 1);
    kx_conn_unref(c);
    close(peer);
}

static void on_run_for(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ONE);
}

/* Runs the loop for about ms milliseconds, whatever else is active. */
static void run_for(int ms)
{
    ev_timer t;
    ev_timer_init(&t, on_run_for, ms / 1000.0, 0.);
    ev_timer_start(srv.loop, &t);
    ev_run(srv.loop, 0);
    ev_timer_stop(srv.loop, &t);
}

/* kx_conn_set_timer is lazy (the libev timer moves only to an earlier time): a timeout moved
 * later, lifted, or moved earlier must still fire exactly when the last call said. */
static void test_timer_moved_later_lifted_or_earlier(void **state)
{
    (void)state;
    reset();
    int peer;
    kx_conn_t *c = open_pair(&peer);
    kx_conn_ref(c);

    kx_conn_set_timer(c, 30);
    kx_conn_set_timer(c, 0); /* lifted: the armed timer must not close the connection */
    run_for(80);
    assert_false(c->closed);
    assert_int_equal(P.timeouts, 0);

    kx_conn_set_timer(c, 30);
    run_for(15);
    kx_conn_set_timer(c, 100); /* later: due ~115 ms from the start */
    run_for(45);               /* ~60 ms: past the first deadline, before the second */
    assert_false(c->closed);
    assert_int_equal(P.timeouts, 0);
    run_for(100); /* ~160 ms */
    assert_true(c->closed);
    assert_int_equal(P.timeouts, 1);
    kx_conn_unref(c);
    close(peer);

    reset();
    c = open_pair(&peer);
    kx_conn_ref(c);
    kx_conn_set_timer(c, 5000);
    kx_conn_set_timer(c, 20); /* earlier: the timer must move */
    run_for(120);
    assert_true(c->closed);
    assert_int_equal(P.timeouts, 1);
    kx_conn_unref(c);
    close(peer);
}

static void test_read_waiting_for_writable(void **state)
{
    (void)state;
    reset();
    int peer;
    kx_conn_t *c = open_pair(&peer);
    S.read_wants_write = 1;
    assert_int_equal(write(peer, "abc", 3), 3);
    spin(1); /* readable → read → EAGAIN wanting write */
    assert_true(c->read_wants_write);
    assert_true(ev_is_active(&c->wio));
    spin(2); /* writable → the read is retried */
    assert_false(c->read_wants_write);
    assert_int_equal(P.len, 3);
    assert_memory_equal(P.got, "abc", 3);
    kx_conn_close(c);
    close(peer);
}

static void test_write_waiting_for_readable(void **state)
{
    (void)state;
    reset();
    S.write_wants_read = 1;
    int peer;
    kx_conn_t *c = open_pair(&peer);
    kx_conn_write(c, "reply", 5);
    kx_conn_flush(c);
    assert_true(c->write_wants_read);
    char buf[16];
    assert_int_equal(read(peer, buf, sizeof buf), -1);
    assert_int_equal(write(peer, "!", 1), 1); /* the socket becomes readable: the write goes on */
    spin(3);
    assert_false(c->write_wants_read);
    assert_int_equal(read(peer, buf, sizeof buf), 5);
    assert_memory_equal(buf, "reply", 5);
    kx_conn_close(c);
    close(peer);
}

static void test_pending_bytes_are_read_without_the_socket(void **state)
{
    (void)state;
    reset();
    int peer;
    kx_conn_t *c = open_pair(&peer);
    memcpy(S.held, "held", 4);
    S.held_len = 4;
    assert_int_equal(write(peer, "s", 1), 1); /* one readable event only */
    spin(1);
    /* the transport's own bytes came out in the same event, one read each */
    assert_int_equal(S.held_len, 0);
    assert_non_null(memmem(P.got, P.len, "held", 4));
    kx_conn_close(c);
    close(peer);
}


/* ---- lent pieces ------------------------------------------------------------------------------ */

/* A transport that takes at most T.cap bytes per call: every cut of the queue gets tried. */
static struct {
    size_t cap;
    size_t written; /* bytes the socket took so far */
    int calls_left; /* > 0: the socket is "full" after this many writes */
} T;

static bool tr_full(kx_conn_t *c)
{
    if (T.calls_left == 0 || --T.calls_left > 0) return false;
    c->tp_want = KX_WANT_WRITE;
    return true;
}

static ssize_t tr_write(kx_conn_t *c, const void *buf, size_t n)
{
    if (tr_full(c)) return KX_EAGAIN;
    ssize_t w = kx_transport_plain.write(c, buf, n < T.cap ? n : T.cap);
    if (w > 0) T.written += (size_t)w;
    return w;
}

static ssize_t tr_writev(kx_conn_t *c, const struct iovec *iov, int n)
{
    if (tr_full(c)) return KX_EAGAIN;
    struct iovec cut[8];
    size_t left = T.cap;
    int m = 0;
    for (int i = 0; i < n && left > 0; i++) {
        cut[m] = iov[i];
        if (cut[m].iov_len > left) cut[m].iov_len = left;
        left -= cut[m].iov_len;
        m++;
    }
    ssize_t w = kx_transport_plain.writev(c, cut, m);
    if (w > 0) T.written += (size_t)w;
    return w;
}

static const kx_transport_t trickle_v = {
    .name = "trickle-v", .read = NULL, .write = tr_write, .writev = tr_writev
};
static const kx_transport_t trickle = { .name = "trickle", .read = NULL, .write = tr_write };

/* What a release saw: how often it ran and how many bytes had been written by then. */
static struct {
    int calls;
    size_t written_at_release;
} R;

static void on_release(void *ud)
{
    R.calls++;
    R.written_at_release = T.written;
    if (ud) *(int *)ud += 1;
}

static kx_conn_t *open_plain_pair(const kx_transport_t *tp, int *peer)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    kx_conn_t *c = kx_conn_open(&srv, sv[0], tp, "127.0.0.1");
    kx_conn_set_handler(c, &proto);
    *peer = sv[1];
    return c;
}

/* Reads what the peer has (non-blocking) onto out. */
static void drain_peer(int peer, char *out, size_t *len, size_t cap)
{
    for (;;) {
        ssize_t r = read(peer, out + *len, cap - *len);
        if (r <= 0) return;
        *len += (size_t)r;
    }
}

/* head, lent body, then bytes appended after the lending (they must follow the body): for
 * every write size from 1 byte up, with writev and without, the peer gets them in order and
 * the release runs once, after the body's last byte was written. */
static void test_lent_piece_cut_at_every_offset(void **state)
{
    (void)state;
    static const char head[] = "HEAD:0123456789:";
    char body[97];
    for (size_t i = 0; i < sizeof body; i++) body[i] = (char)('a' + i % 26);
    static const char tail[] = ":TAIL-after-the-lent-body";
    char want[256];
    size_t wlen = 0;
    memcpy(want, head, sizeof head - 1);
    wlen += sizeof head - 1;
    memcpy(want + wlen, body, sizeof body);
    wlen += sizeof body;
    memcpy(want + wlen, tail, sizeof tail - 1);
    wlen += sizeof tail - 1;
    const kx_transport_t *tps[] = { &trickle_v, &trickle };
    for (size_t k = 0; k < 2; k++) {
        for (size_t cap = 1; cap <= wlen + 1; cap++) {
            reset();
            memset(&T, 0, sizeof T);
            memset(&R, 0, sizeof R);
            T.cap = cap;
            int peer;
            kx_conn_t *c = open_plain_pair(tps[k], &peer);
            kx_conn_write(c, head, sizeof head - 1);
            kx_conn_write_lent(c, body, sizeof body, on_release, NULL);
            kx_buf_append(&c->wbuf, tail, sizeof tail - 1); /* a writer appending to wbuf directly */
            assert_int_equal(kx_conn_unsent(c), wlen);
            char got[256];
            size_t glen = 0;
            for (int round = 0; round < 1000 && glen < wlen; round++) {
                kx_conn_flush(c);
                drain_peer(peer, got, &glen, sizeof got);
            }
            assert_int_equal(glen, wlen);
            assert_memory_equal(got, want, wlen);
            assert_int_equal(R.calls, 1);
            assert_true(R.written_at_release >= sizeof head - 1 + sizeof body);
            assert_false(kx_conn_busy_writing(c));
            kx_conn_close(c);
            assert_int_equal(R.calls, 1);
            close(peer);
        }
    }
}

/* A real socket with a tiny send buffer and a reader that takes a little at a time: the lent
 * megabyte arrives intact, in order with what was queued around it, released once. */
static void test_lent_piece_through_a_small_socket_buffer(void **state)
{
    (void)state;
    reset();
    memset(&R, 0, sizeof R);
    int peer;
    kx_conn_t *c = open_plain_pair(&kx_transport_plain, &peer);
    int small = 4096;
    assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    size_t n = 1024 * 1024;
    char *body = malloc(n);
    for (size_t i = 0; i < n; i++) body[i] = (char)(i * 7 + i / 251);
    int released = 0;
    kx_conn_write(c, "<", 1);
    kx_conn_write_lent(c, body, n, on_release, &released);
    kx_conn_write(c, ">", 1);
    kx_conn_flush(c);
    assert_int_equal(released, 0); /* the socket cannot take a megabyte at once */
    assert_true(kx_conn_unsent(c) > 0);
    char *got = malloc(n + 2);
    size_t glen = 0;
    for (int round = 0; round < 1000000 && glen < n + 2; round++) {
        ssize_t r = read(peer, got + glen, (n + 2 - glen) < 1000 ? n + 2 - glen : 1000);
        if (r > 0) glen += (size_t)r;
        spin(1);
    }
    assert_int_equal(glen, n + 2);
    assert_int_equal(got[0], '<');
    assert_memory_equal(got + 1, body, n);
    assert_int_equal(got[n + 1], '>');
    assert_int_equal(released, 1);
    assert_true(P.drained >= 1);
    /* A drained megabyte of output leaves no large buffer behind. */
    assert_true(c->wbuf.cap <= 64 * 1024 && c->wfront.cap <= 64 * 1024);
    kx_conn_close(c);
    assert_int_equal(released, 1);
    free(got);
    free(body);
    close(peer);
}

/* Release on close (once, the later free adds none), at once on a closed connection, and a
 * second piece lent while the first is unwritten is copied (released at once) and still
 * comes after it. */
static void test_lent_piece_released_once_on_close(void **state)
{
    (void)state;
    reset();
    memset(&T, 0, sizeof T);
    T.cap = 3;
    T.calls_left = 2; /* one write of 3 bytes, then the socket is full */
    int peer;
    kx_conn_t *c = open_plain_pair(&trickle_v, &peer);
    kx_conn_ref(c); /* a task still holds it after the close */
    int first = 0, second = 0, late = 0;
    kx_conn_write(c, "h", 1);
    kx_conn_write_lent(c, "first-body", 10, on_release, &first);
    kx_conn_write_lent(c, "second", 6, on_release, &second);
    assert_int_equal(second, 1); /* copied behind the first */
    assert_int_equal(kx_conn_unsent(c), 17);
    kx_conn_flush(c); /* 3 bytes: "h" and part of the first piece */
    char got[32];
    size_t glen = 0;
    drain_peer(peer, got, &glen, sizeof got);
    assert_int_equal(glen, 3);
    assert_int_equal(first, 0);
    kx_conn_close(c);
    assert_int_equal(first, 1); /* the socket is gone: the memory goes back now */
    kx_conn_write_lent(c, "late", 4, on_release, &late);
    assert_int_equal(late, 1);
    kx_conn_unref(c); /* the free releases nothing more */
    assert_int_equal(first, 1);
    assert_int_equal(second, 1);
    close(peer);

    /* The order of a copied second piece: all of it after the first. */
    reset();
    T.cap = 1000;
    T.calls_left = 0;
    c = open_plain_pair(&trickle_v, &peer);
    first = second = 0;
    kx_conn_write_lent(c, "AAAA", 4, on_release, &first);
    kx_conn_write(c, "-", 1);
    kx_conn_write_lent(c, "BBBB", 4, on_release, &second);
    kx_conn_flush(c);
    glen = 0;
    drain_peer(peer, got, &glen, sizeof got);
    assert_int_equal(glen, 9);
    assert_memory_equal(got, "AAAA-BBBB", 9);
    assert_int_equal(first, 1);
    assert_int_equal(second, 1);
    kx_conn_close(c);
    assert_int_equal(first, 1);
    close(peer);
}

/* ---- the shared read buffer and idle memory ------------------------------------------------ */

/* A protocol that takes whole lines only and leaves a partial line for later (as HTTP leaves
 * a partial head). */
static struct {
    char lines[256];
    size_t len;
    size_t left_cap; /* rbuf.cap seen at the start of the last read */
} L;

static void line_read(kx_conn_t *c)
{
    L.left_cap = c->rbuf.cap;
    char *nl = memrchr(c->rbuf.data, '\n', c->rbuf.len);
    if (!nl) return;
    size_t n = (size_t)(nl - c->rbuf.data) + 1;
    memcpy(L.lines + L.len, c->rbuf.data, n);
    L.len += n;
    kx_buf_consume(&c->rbuf, n);
}

static const kx_conn_handler_t lines = { .name = "lines", .on_read = line_read };

static kx_conn_t *open_plain(int *peer, const kx_conn_handler_t *h)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    kx_conn_t *c = kx_conn_open(&srv, sv[0], &kx_transport_plain, "127.0.0.1");
    kx_conn_set_handler(c, h);
    kx_conn_want_read(c, true);
    *peer = sv[1];
    return c;
}

static void test_leftover_bytes_are_kept_contiguous(void **state)
{
    (void)state;
    memset(&L, 0, sizeof L);
    int peer;
    kx_conn_t *c = open_plain(&peer, &lines);
    assert_int_equal(write(peer, "one\ntw", 6), 6);
    spin(2);
    /* The partial line is the connection's own now, in a buffer of its size. */
    assert_int_equal(c->rbuf.len, 2);
    assert_memory_equal(c->rbuf.data, "tw", 2);
    assert_true(c->rbuf.cap > 0 && c->rbuf.cap <= 256);
    for (const char *p = "o\nthr"; *p; p++) { /* one byte per read */
        assert_int_equal(write(peer, p, 1), 1);
        spin(1);
    }
    assert_int_equal(L.len, 8);
    assert_memory_equal(L.lines, "one\ntwo\n", 8);
    assert_int_equal(c->rbuf.len, 3);
    assert_memory_equal(c->rbuf.data, "thr", 3);
    assert_int_equal(write(peer, "ee\n", 3), 3);
    spin(2);
    assert_memory_equal(L.lines, "one\ntwo\nthree\n", 14);
    /* Everything taken: the private buffer is gone, and the next read borrows again. */
    assert_int_equal(c->rbuf.len, 0);
    assert_null(c->rbuf.data);
    assert_int_equal(write(peer, "x\n", 2), 2);
    spin(2);
    assert_int_equal(L.left_cap, 16385); /* the loop's buffer: a read of up to 16 KiB */
    assert_null(c->rbuf.data);
    kx_conn_close(c);
    close(peer);
}

static void test_trim_frees_buffers_only_when_idle(void **state)
{
    (void)state;
    int peer;
    kx_conn_t *c = open_plain(&peer, &lines);
    kx_conn_write(c, "queued", 6);
    kx_conn_trim(c); /* not written yet: the bytes stay */
    assert_int_equal(kx_conn_unsent(c), 6);
    assert_non_null(c->wbuf.data);
    kx_conn_flush(c);
    assert_int_equal(kx_conn_unsent(c), 0);
    kx_conn_trim(c);
    assert_null(c->wbuf.data);
    assert_int_equal(c->wbuf.cap, 0);
    assert_null(c->rbuf.data);
    char buf[16];
    assert_int_equal(read(peer, buf, sizeof buf), 6);
    kx_conn_write(c, "again", 5); /* a trimmed connection writes as before */
    kx_conn_flush(c);
    assert_int_equal(read(peer, buf, sizeof buf), 5);
    kx_conn_close(c);
    close(peer);
}

/* Many connections, then most of them gone: the freed memory is handed back (malloc_trim)
 * once, after the closing settled; a few closings do not trigger it. */
static void test_memory_handed_back_after_a_drop(void **state)
{
    (void)state;
    enum { N = 300 };
    int peers[N];
    kx_conn_t *conns[N];
    for (int i = 0; i < N; i++) conns[i] = open_plain(&peers[i], &lines);
    unsigned before = kx_conn_trims();
    for (int i = 0; i < 10; i++) kx_conn_close(conns[i]);
    ev_run(srv.loop, EVRUN_NOWAIT);
    assert_int_equal(kx_conn_trims(), before);
    for (int i = 10; i < N; i++) kx_conn_close(conns[i]);
    assert_int_equal(kx_conn_trims(), before); /* not in the middle of the closing */
    for (int i = 0; i < 20 && kx_conn_trims() == before; i++) ev_run(srv.loop, EVRUN_ONCE);
    assert_int_equal(kx_conn_trims(), before + 1);
    for (int i = 0; i < N; i++) close(peers[i]);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_server_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_rounds_then_data),
        cmocka_unit_test(test_stalled_handshake_is_timed_out),
        cmocka_unit_test(test_timer_moved_later_lifted_or_earlier),
        cmocka_unit_test(test_read_waiting_for_writable),
        cmocka_unit_test(test_write_waiting_for_readable),
        cmocka_unit_test(test_pending_bytes_are_read_without_the_socket),
        cmocka_unit_test(test_lent_piece_cut_at_every_offset),
        cmocka_unit_test(test_lent_piece_through_a_small_socket_buffer),
        cmocka_unit_test(test_lent_piece_released_once_on_close),
        cmocka_unit_test(test_leftover_bytes_are_kept_contiguous),
        cmocka_unit_test(test_trim_frees_buffers_only_when_idle),
        cmocka_unit_test(test_memory_handed_back_after_a_drop),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ev_loop_destroy(srv.loop);
    kx_config_free(&cfg);
    return rc;
}
