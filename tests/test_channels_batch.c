/* test_channels_batch.c — the fan-out batch of channels.c and ws.c: real WebSockets (upgraded
 * by ws.c from a request over a socketpair), each written through a transport that counts its
 * writes. Broadcasts delivered in one loop iteration reach each socket as one write, in the
 * order they were published, also over a transport without writev (as TLS) and around a reply
 * sent meanwhile; nothing is written before the iteration ends; a socket that does not read is
 * dropped at the output cap while the others get everything; a closing socket is skipped; and
 * once written, an idle socket holds no write buffer, whether its frames were copied or lent. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "channels.h"
#include "ws.h"
#include "test_server.h"

#define ROOM "room:t"
#define MAX_FD 1024

static int writes[MAX_FD]; /* transport writes, by the server end's fd */

static ssize_t counted_write(kx_conn_t *c, const void *buf, size_t n)
{
    writes[c->fd]++;
    return kx_transport_plain.write(c, buf, n);
}

static ssize_t counted_writev(kx_conn_t *c, const struct iovec *iov, int n)
{
    writes[c->fd]++;
    return kx_transport_plain.writev(c, iov, n);
}

/* Like TLS: no writev, so each piece of the queue is a write of its own. */
static kx_transport_t no_writev;

static const kx_transport_t counted = {
    .name = "counted",
    .read = NULL, /* set in main: the plain read */
    .write = counted_write,
    .writev = counted_writev,
};
static kx_transport_t transport;

static void on_close(kx_conn_t *c, uint64_t id)
{
    (void)id;
    kx_channels_drop(c);
}

static const kx_ws_events_t events = { .on_close = on_close };

typedef struct {
    kx_conn_t *c;
    uint64_t id;
    int peer; /* the client's end */
    char in[1 << 16];
    size_t len;
} sock_t;

/* Reads what the peer has (non-blocking). */
static void peer_read(sock_t *s)
{
    for (;;) {
        ssize_t r = read(s->peer, s->in + s->len, sizeof s->in - s->len);
        if (r <= 0) return;
        s->len += (size_t)r;
    }
}

/* A socketpair, the upgrade request from the peer, ws.c's 101, a subscription to ROOM. */
static void open_ws_on(sock_t *s, const kx_transport_t *tp);

static void open_ws(sock_t *s)
{
    open_ws_on(s, &transport);
}

static void open_ws_on(sock_t *s, const kx_transport_t *tp)
{
    static const char req[] =
        "GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    assert_true(sv[0] < MAX_FD);
    memset(s, 0, sizeof *s);
    s->peer = sv[1];
    s->c = kx_conn_open(&srv, sv[0], tp, "127.0.0.1");
    kx_http_attach(s->c);
    assert_int_equal(write(s->peer, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    for (int i = 0; i < 50 && !s->c->ws; i++) ev_run(srv.loop, EVRUN_NOWAIT);
    assert_non_null(s->c->ws);
    peer_read(s);
    assert_memory_equal(s->in, "HTTP/1.1 101", 12);
    s->len = 0;
    s->id = kx_ws_id(s->c);
    assert_int_equal(kx_channels_subscribe(s->c, ROOM, strlen(ROOM)), KX_OK);
    writes[s->c->fd] = 0;
}

static void close_ws(sock_t *s)
{
    kx_conn_t *c = kx_ws_find(s->id);
    if (c) kx_conn_close(c);
    close(s->peer);
}

/* The text payloads of the complete server frames the peer received, joined by '|'. */
static void texts(const sock_t *s, char *out, size_t cap)
{
    size_t off = 0, o = 0;
    out[0] = '\0';
    while (s->len - off >= 2) {
        const unsigned char *h = (const unsigned char *)s->in + off;
        size_t n = h[1] & 0x7f, hl = 2;
        if (n == 126) {
            n = (size_t)h[2] << 8 | h[3];
            hl = 4;
        }
        assert_int_equal(h[0], 0x81);
        if (s->len - off < hl + n) break;
        o += (size_t)snprintf(out + o, cap - o, "%s%.*s", o ? "|" : "", (int)n, s->in + off + hl);
        off += hl + n;
    }
}

static void publish(int n)
{
    char p[128];
    int len = snprintf(p, sizeof p, "{\"channel\":\"" ROOM "\",\"message\":%d,\"sender\":\"s\"}", n);
    kx_channels_on_publish(p, (size_t)len);
}

#define FRAME(n) "{\"message\":{\"channel\":\"" ROOM "\",\"message\":" #n ",\"sender\":\"s\"}}"

static void test_one_write_per_socket_in_order(void **state)
{
    (void)state;
    sock_t s[3];
    char got[2048];
    for (int i = 0; i < 3; i++) open_ws(&s[i]);
    for (int n = 1; n <= 5; n++) publish(n);
    for (int i = 0; i < 3; i++) assert_int_equal(writes[s[i].c->fd], 0); /* nothing before the flush */
    ev_run(srv.loop, EVRUN_NOWAIT);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(writes[s[i].c->fd], 1);
        peer_read(&s[i]);
        texts(&s[i], got, sizeof got);
        assert_string_equal(got, FRAME(1) "|" FRAME(2) "|" FRAME(3) "|" FRAME(4) "|" FRAME(5));
    }
    /* The next iteration is a batch of its own. */
    publish(6);
    ev_run(srv.loop, EVRUN_NOWAIT);
    assert_int_equal(writes[s[0].c->fd], 2);
    for (int i = 0; i < 3; i++) close_ws(&s[i]);
}

/* Over a transport without writev (TLS) too: one write for the whole batch. */
static void test_one_write_without_writev(void **state)
{
    (void)state;
    sock_t s;
    char got[2048];
    open_ws_on(&s, &no_writev);
    for (int n = 1; n <= 3; n++) publish(n);
    ev_run(srv.loop, EVRUN_NOWAIT);
    assert_int_equal(writes[s.c->fd], 1);
    peer_read(&s);
    texts(&s, got, sizeof got);
    assert_string_equal(got, FRAME(1) "|" FRAME(2) "|" FRAME(3));
    close_ws(&s);
}

/* A reply sent between two broadcasts goes out between them: the batch waits in the
 * connection's own queue, which the reply's write takes along. */
static void test_reply_keeps_its_place(void **state)
{
    (void)state;
    sock_t s;
    char got[2048];
    open_ws(&s);
    publish(1);
    assert_int_equal(kx_ws_send_text(s.c, "reply", 5), KX_OK);
    publish(2);
    ev_run(srv.loop, EVRUN_NOWAIT);
    peer_read(&s);
    texts(&s, got, sizeof got);
    assert_string_equal(got, FRAME(1) "|reply|" FRAME(2));
    assert_int_equal(writes[s.c->fd], 2); /* the reply's write, then the flush */
    close_ws(&s);
}

static void test_closing_socket_skipped(void **state)
{
    (void)state;
    sock_t s[2];
    for (int i = 0; i < 2; i++) open_ws(&s[i]);
    kx_ws_close(s[0].c, 1000, "bye");
    assert_int_equal(kx_channels_deliver(ROOM, strlen(ROOM), "x", 1), 1);
    ev_run(srv.loop, EVRUN_NOWAIT);
    for (int i = 0; i < 2; i++) close_ws(&s[i]);
}

/* Lent frames and the copies behind them alike: once written, nothing is held. */
static void test_idle_socket_keeps_no_buffer(void **state)
{
    (void)state;
    sock_t s;
    open_ws(&s);
    static char big[8000];
    memset(big, 'b', sizeof big);
    publish(1);
    kx_channels_deliver(ROOM, strlen(ROOM), big, sizeof big);
    publish(2);
    assert_true(kx_conn_unsent(s.c) > sizeof big);
    ev_run(srv.loop, EVRUN_NOWAIT);
    assert_int_equal(writes[s.c->fd], 1);
    assert_int_equal(kx_conn_unsent(s.c), 0);
    assert_null(s.c->wbuf.data);
    assert_null(s.c->wfront.data);
    assert_null(s.c->lent.p);
    peer_read(&s);
    assert_int_equal(s.len, 2 + strlen(FRAME(1)) + 4 + sizeof big + 2 + strlen(FRAME(2)));
    close_ws(&s);
}

/* A peer that does not read is dropped once more than KX_CONN_OUTPUT_CAP waits for it; a peer
 * that reads, in the same channel, gets every frame. */
static void test_output_cap_drops_a_non_reader(void **state)
{
    (void)state;
    sock_t slow, fast;
    open_ws(&slow);
    open_ws(&fast);
    size_t n = 200 * 1024;
    char *p = malloc(n);
    assert_non_null(p);
    memset(p, 'x', n);
    int frames = (int)(KX_CONN_OUTPUT_CAP / n) + 40, got = 0;
    size_t fast_bytes = 0;
    for (int i = 0; i < frames && kx_ws_find(slow.id); i++) {
        kx_channels_deliver(ROOM, strlen(ROOM), p, n);
        ev_run(srv.loop, EVRUN_NOWAIT);
        for (ssize_t r; (r = read(fast.peer, p, n)) > 0;) fast_bytes += (size_t)r; /* reads; slow does not */
        memset(p, 'x', n);
        got++;
    }
    assert_null(kx_ws_find(slow.id));
    assert_true(got < frames);
    for (int i = 0; i < 100 && kx_conn_unsent(fast.c); i++) {
        ev_run(srv.loop, EVRUN_NOWAIT);
        for (ssize_t r; (r = read(fast.peer, p, n)) > 0;) fast_bytes += (size_t)r;
    }
    assert_non_null(kx_ws_find(fast.id));
    assert_int_equal(fast_bytes, (size_t)got * (10 + n));
    free(p);
    close_ws(&slow);
    close_ws(&fast);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_server_start();
    transport = counted;
    transport.read = kx_transport_plain.read;
    no_writev = transport;
    no_writev.writev = NULL;
    kx_http_set_request_handler(kx_ws_upgrade);
    kx_ws_set_events(&events);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_write_per_socket_in_order),
        cmocka_unit_test(test_one_write_without_writev),
        cmocka_unit_test(test_reply_keeps_its_place),
        cmocka_unit_test(test_closing_socket_skipped),
        cmocka_unit_test(test_idle_socket_keeps_no_buffer),
        cmocka_unit_test(test_output_cap_drops_a_non_reader),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ev_loop_destroy(srv.loop);
    kx_config_free(&cfg);
    return rc;
}
