/* test_tls.c — the TLS transport (tls.c) under conn.c over a socketpair, against a real
 * OpenSSL client: the certificate checks at start-up (missing file, mismatched key), the
 * handshake (TLS 1.3, ALPN http/1.1), bytes both ways, a large reply that must wait for the
 * peer (WANT_WRITE), client-requested key updates, plain HTTP and TLS 1.1 refused, and a reload that keeps the open
 * connection while new ones get the new certificate. The certificates come from
 * scripts/tls-test-certs.sh (openssl) at test time. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "conn.h"
#include "tls.h"
#include "test_server.h"

static char dir[64];
static char cert[128], key[128];

/* ---- a protocol that records what it is told ---------------------------------------------- */

static struct {
    char got[256];
    size_t len;
    int closes;
} P;

static void p_read(kx_conn_t *c)
{
    size_t n = c->rbuf.len < sizeof P.got - P.len ? c->rbuf.len : sizeof P.got - P.len;
    memcpy(P.got + P.len, c->rbuf.data, n);
    P.len += n;
    kx_buf_reset(&c->rbuf);
}

static void p_close(kx_conn_t *c)
{
    (void)c;
    P.closes++;
}

static const kx_conn_handler_t proto = { .name = "recorder", .on_read = p_read, .on_close = p_close };

/* ---- helpers -------------------------------------------------------------------------------- */

static void spin(int n)
{
    for (int i = 0; i < n; i++) ev_run(srv.loop, EVRUN_NOWAIT);
}

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static void copy_pair(const char *name)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp %s/%s.pem %s && cp %s/%s.key %s", dir, name, cert, dir, name, key);
    assert_int_equal(system(cmd), 0);
}

static kx_conn_t *open_server(int *peer)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    kx_conn_t *c = kx_conn_open(&srv, sv[0], &kx_transport_tls, "127.0.0.1");
    kx_conn_set_handler(c, &proto);
    kx_conn_want_read(c, true);
    *peer = sv[1];
    spin(1);
    return c;
}

static SSL *client(int fd, int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char ca[128];
    path_of(ca, sizeof ca, "ca.pem");
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (max_version) {
        SSL_CTX_set_min_proto_version(ctx, max_version);
        SSL_CTX_set_max_proto_version(ctx, max_version);
        SSL_CTX_set_security_level(ctx, 0);
    }
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL object keeps its reference */
    static const unsigned char alpn[] = "\x02h2\x08http/1.1";
    SSL_set_alpn_protos(ssl, alpn, sizeof alpn - 1);
    SSL_set_tlsext_host_name(ssl, "localhost");
    SSL_set_fd(ssl, fd);
    SSL_set_connect_state(ssl);
    return ssl;
}

/* Runs the client's handshake against the server's loop: 1 once done, 0 when it failed. */
static int handshake(SSL *cl)
{
    for (int i = 0; i < 500; i++) {
        int rc = SSL_do_handshake(cl);
        if (rc == 1) return 1;
        int e = SSL_get_error(cl, rc);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            ERR_clear_error();
            return 0;
        }
        spin(1);
    }
    return 0;
}

/* Reads exactly n bytes on the client, letting the server's loop run in between. */
static size_t client_read(SSL *cl, char *buf, size_t n)
{
    size_t got = 0;
    for (int i = 0; i < 100000 && got < n; i++) {
        int r = SSL_read(cl, buf + got, (int)(n - got));
        if (r > 0) got += (size_t)r;
        else if (SSL_get_error(cl, r) != SSL_ERROR_WANT_READ) break;
        else spin(1);
    }
    return got;
}

static void peer_cn(SSL *cl, char *out, size_t cap)
{
    X509 *x = SSL_get1_peer_certificate(cl);
    assert_non_null(x);
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)cap);
    X509_free(x);
}

static void client_free(SSL *cl)
{
    SSL_free(cl);
    ERR_clear_error();
}

/* ---- cases ------------------------------------------------------------------------------------ */

static void test_init_refusals_name_the_variable(void **state)
{
    (void)state;
    char err[512], missing[128], other_key[128];
    path_of(missing, sizeof missing, "missing.pem");
    path_of(other_key, sizeof other_key, "other.key");
    assert_int_equal(kx_tls_init(missing, key, err, sizeof err), KX_EINVAL);
    assert_non_null(strstr(err, "WEB_SERVER_TLS_CERT"));
    assert_int_equal(kx_tls_init(cert, missing, err, sizeof err), KX_EINVAL);
    assert_non_null(strstr(err, "WEB_SERVER_TLS_KEY"));
    assert_int_equal(kx_tls_init(cert, other_key, err, sizeof err), KX_EINVAL);
    assert_non_null(strstr(err, "WEB_SERVER_TLS_KEY"));
    assert_non_null(strstr(err, "does not match"));
    assert_false(kx_tls_enabled());
    assert_int_equal(kx_tls_init(cert, key, err, sizeof err), KX_OK);
    assert_true(kx_tls_enabled());
}

static void test_handshake_alpn_and_bytes_both_ways(void **state)
{
    (void)state;
    memset(&P, 0, sizeof P);
    int peer;
    kx_conn_t *c = open_server(&peer);
    SSL *cl = client(peer, 0);
    assert_int_equal(handshake(cl), 1);
    spin(2);
    assert_false(c->handshaking);
    assert_string_equal(SSL_get_version(cl), "TLSv1.3");
    const unsigned char *proto_sel;
    unsigned int proto_len;
    SSL_get0_alpn_selected(cl, &proto_sel, &proto_len);
    assert_int_equal(proto_len, 8);
    assert_memory_equal(proto_sel, "http/1.1", 8);

    assert_int_equal(SSL_write(cl, "hello", 5), 5);
    spin(3);
    assert_int_equal(P.len, 5);
    assert_memory_equal(P.got, "hello", 5);

    kx_conn_write(c, "world", 5);
    kx_conn_flush(c);
    char buf[8];
    assert_int_equal(client_read(cl, buf, 5), 5);
    assert_memory_equal(buf, "world", 5);
    kx_conn_close(c);
    assert_int_equal(P.closes, 1);
    client_free(cl);
    close(peer);
}

static void test_large_reply_waits_for_the_peer(void **state)
{
    (void)state;
    memset(&P, 0, sizeof P);
    int peer;
    kx_conn_t *c = open_server(&peer);
    SSL *cl = client(peer, 0);
    assert_int_equal(handshake(cl), 1);
    spin(2);
    enum { BIG = 1 << 20 };
    char *out = malloc(BIG), *in = malloc(BIG);
    for (size_t i = 0; i < BIG; i++) out[i] = (char)(i * 7 + 3);
    kx_conn_write(c, out, BIG);
    kx_conn_flush(c);
    assert_true(kx_conn_busy_writing(c)); /* far more than a socketpair holds: WANT_WRITE */
    assert_true(ev_is_active(&c->wio));
    assert_int_equal(client_read(cl, in, BIG), BIG);
    assert_memory_equal(in, out, BIG);
    spin(2);
    assert_false(kx_conn_busy_writing(c));
    free(out);
    free(in);
    kx_conn_close(c);
    client_free(cl);
    close(peer);
}

/* A TLS 1.3 KeyUpdate the client asks to be answered: the server's read must send a record of
 * its own. Bytes keep flowing both ways afterwards, with no spin in between. */
static void test_key_update_both_ways(void **state)
{
    (void)state;
    memset(&P, 0, sizeof P);
    int peer;
    kx_conn_t *c = open_server(&peer);
    SSL *cl = client(peer, 0);
    assert_int_equal(handshake(cl), 1);
    spin(2);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(SSL_key_update(cl, SSL_KEY_UPDATE_REQUESTED), 1);
        assert_int_equal(SSL_write(cl, "ping", 4), 4);
        spin(3);
        assert_int_equal(P.len, 4);
        assert_memory_equal(P.got, "ping", 4);
        P.len = 0;
        kx_conn_write(c, "pong", 4);
        kx_conn_flush(c);
        char buf[8];
        assert_int_equal(client_read(cl, buf, 4), 4);
        assert_memory_equal(buf, "pong", 4);
    }
    assert_false(c->closed);
    assert_false(c->read_wants_write);
    assert_false(c->write_wants_read);
    kx_conn_close(c);
    client_free(cl);
    close(peer);
}

static void test_plain_http_gets_400_and_close(void **state)
{
    (void)state;
    memset(&P, 0, sizeof P);
    int peer;
    kx_conn_t *c = open_server(&peer);
    kx_conn_ref(c);
    assert_int_equal(write(peer, "GET / HTTP/1.1\r\n\r\n", 18), 18);
    spin(3);
    assert_true(c->closed);
    char buf[64] = { 0 };
    assert_true(read(peer, buf, sizeof buf - 1) > 12);
    assert_memory_equal(buf, "HTTP/1.1 400", 12);
    assert_int_equal(P.len, 0);
    kx_conn_unref(c);
    close(peer);
}

static void test_tls11_client_is_refused(void **state)
{
    (void)state;
    memset(&P, 0, sizeof P);
    int peer;
    kx_conn_t *c = open_server(&peer);
    kx_conn_ref(c);
    SSL *cl = client(peer, TLS1_1_VERSION);
    assert_int_equal(handshake(cl), 0);
    spin(3);
    assert_true(c->closed);
    kx_conn_unref(c);
    client_free(cl);
    close(peer);
}

static void test_reload_keeps_open_connections(void **state)
{
    (void)state;
    memset(&P, 0, sizeof P);
    char err[512], cn[64];
    int p1;
    kx_conn_t *c1 = open_server(&p1);
    SSL *cl1 = client(p1, 0);
    assert_int_equal(handshake(cl1), 1);
    peer_cn(cl1, cn, sizeof cn);
    assert_string_equal(cn, "localhost");

    copy_pair("other");
    assert_int_equal(kx_tls_reload(err, sizeof err), KX_OK);
    int p2;
    kx_conn_t *c2 = open_server(&p2);
    SSL *cl2 = client(p2, 0);
    assert_int_equal(handshake(cl2), 1);
    peer_cn(cl2, cn, sizeof cn);
    assert_string_equal(cn, "keryx-reloaded");

    /* The first connection (its context now replaced) still works. */
    assert_int_equal(SSL_write(cl1, "still", 5), 5);
    spin(3);
    assert_int_equal(P.len, 5);
    assert_memory_equal(P.got, "still", 5);

    /* A broken file: refused, the reloaded pair stays. */
    FILE *f = fopen(cert, "w");
    fputs("garbage\n", f);
    fclose(f);
    assert_int_equal(kx_tls_reload(err, sizeof err), KX_EINVAL);
    assert_non_null(strstr(err, "WEB_SERVER_TLS_CERT"));
    int p3;
    kx_conn_t *c3 = open_server(&p3);
    SSL *cl3 = client(p3, 0);
    assert_int_equal(handshake(cl3), 1);
    peer_cn(cl3, cn, sizeof cn);
    assert_string_equal(cn, "keryx-reloaded");

    kx_conn_close(c1);
    kx_conn_close(c2);
    kx_conn_close(c3);
    client_free(cl1);
    client_free(cl2);
    client_free(cl3);
    close(p1);
    close(p2);
    close(p3);
    copy_pair("server");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    char cmd[256];
    snprintf(dir, sizeof dir, "/tmp/keryx-test-tls-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    snprintf(cmd, sizeof cmd, "scripts/tls-test-certs.sh %s", dir);
    if (system(cmd) != 0) return 1;
    path_of(cert, sizeof cert, "live.pem");
    path_of(key, sizeof key, "live.key");
    copy_pair("server");
    test_server_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_refusals_name_the_variable),
        cmocka_unit_test(test_handshake_alpn_and_bytes_both_ways),
        cmocka_unit_test(test_large_reply_waits_for_the_peer),
        cmocka_unit_test(test_key_update_both_ways),
        cmocka_unit_test(test_plain_http_gets_400_and_close),
        cmocka_unit_test(test_tls11_client_is_refused),
        cmocka_unit_test(test_reload_keeps_open_connections),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    kx_tls_free();
    ev_loop_destroy(srv.loop);
    kx_config_free(&cfg);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) rc = 1;
    return rc;
}
