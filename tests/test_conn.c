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
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ev_loop_destroy(srv.loop);
    kx_config_free(&cfg);
    return rc;
}
