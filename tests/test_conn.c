/* test_conn.c — the connection layer (conn.c) with a transport that behaves like TLS, over a
 * socketpair: a handshake that takes several rounds and is counted against the connection
 * timer, a read that must wait for the socket to be writable (and a write that must wait for
 * it to be readable), bytes the transport holds that the socket does not show (pending), and
 * a protocol handler that sees every event — conn.c calls nothing else. */
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
#include <unistd.h>
#include "conn.h"

static kx_config_t cfg;
static kx_server_t srv;

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
    char err[256];
    kx_config_defaults(&cfg, "test");
    assert_int_equal(kx_config_finish(&cfg, err, sizeof err), KX_OK);
    srv.loop = ev_loop_new(EVFLAG_AUTO);
    srv.cfg = &cfg;
    kx_srv = &srv;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_rounds_then_data),
        cmocka_unit_test(test_stalled_handshake_is_timed_out),
        cmocka_unit_test(test_read_waiting_for_writable),
        cmocka_unit_test(test_write_waiting_for_readable),
        cmocka_unit_test(test_pending_bytes_are_read_without_the_socket),
        cmocka_unit_test(test_leftover_bytes_are_kept_contiguous),
        cmocka_unit_test(test_trim_frees_buffers_only_when_idle),
        cmocka_unit_test(test_memory_handed_back_after_a_drop),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ev_loop_destroy(srv.loop);
    kx_config_free(&cfg);
    return rc;
}
