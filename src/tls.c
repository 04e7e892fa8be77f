/* tls.c — the OpenSSL transport and its server context (see tls.h). */
#include "tls.h"
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TLS_RECORD_HANDSHAKE 0x16 /* the first byte of every ClientHello record */
#define SESSION_CACHE_SIZE 20480  /* ~ a few MB at most: bounded whatever clients do */
#define SESSION_TIMEOUT_S 3600

/* The context new connections get; each SSL object holds a reference to its own, so a reload
 * frees the old one only once its last connection has gone. */
static SSL_CTX *current;
static char *cert_file, *key_file;

typedef struct {
    SSL *ssl;
    bool failed; /* a fatal error: no close_notify may follow */
} tls_conn_t;

/* ---- context ------------------------------------------------------------------------------ */

/* ALPN: http/1.1 is all this server speaks (RFC 7301 §3.2: no overlap is a fatal alert). */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, ours, sizeof ours - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* The most recent OpenSSL error as text (or "unknown error"), clearing the queue. */
static const char *ssl_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    if (e) ERR_error_string_n(e, buf, cap);
    else snprintf(buf, cap, "unknown error");
    ERR_clear_error();
    return buf;
}

/* A missing or unreadable file is named by its variable before OpenSSL gets to guess. */
static int check_readable(const char *var, const char *path, char *err, size_t errcap)
{
    FILE *f = fopen(path, "r");
    if (f) {
        fclose(f);
        return KX_OK;
    }
    snprintf(err, errcap, "%s: cannot read \"%s\": %s", var, path, strerror(errno));
    return KX_EINVAL;
}

static int configure(SSL_CTX *ctx)
{
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_cipher_list(ctx, KX_TLS12_CIPHERS) ||
        !SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384"))
        return KX_EINVAL;
    SSL_CTX_set_options(ctx,
                        SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* conn.c retries a write with the same bytes at a possibly moved buffer, and takes partial
     * writes; idle connections give their buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    static const unsigned char sid_ctx[] = "keryx";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, SESSION_CACHE_SIZE);
    SSL_CTX_set_timeout(ctx, SESSION_TIMEOUT_S);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    return KX_OK;
}

static SSL_CTX *build_ctx(const char *cert, const char *key, char *err, size_t errcap)
{
    char why[256];
    if (check_readable("WEB_SERVER_TLS_CERT", cert, err, errcap) != KX_OK ||
        check_readable("WEB_SERVER_TLS_KEY", key, err, errcap) != KX_OK)
        return NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || configure(ctx) != KX_OK) {
        snprintf(err, errcap, "TLS: cannot set up OpenSSL: %s", ssl_reason(why, sizeof why));
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* The key first: loaded after the certificate, a mismatch would read as an unusable key. */
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errcap, "WEB_SERVER_TLS_KEY: no PEM private key in \"%s\": %s", key,
                 ssl_reason(why, sizeof why));
    } else if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, errcap, "WEB_SERVER_TLS_CERT: no PEM certificate in \"%s\": %s", cert,
                 ssl_reason(why, sizeof why));
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errcap,
                 "WEB_SERVER_TLS_KEY: the key in \"%s\" does not match the certificate in "
                 "WEB_SERVER_TLS_CERT",
                 key);
        ERR_clear_error();
    } else {
        return ctx;
    }
    SSL_CTX_free(ctx);
    return NULL;
}

int kx_tls_init(const char *cert_path, const char *key_path, char *err, size_t errcap)
{
    SSL_CTX *ctx = build_ctx(cert_path, key_path, err, errcap);
    if (!ctx) return KX_EINVAL;
    kx_tls_free();
    current = ctx;
    cert_file = kx_xstrdup(cert_path);
    key_file = kx_xstrdup(key_path);
    return KX_OK;
}

int kx_tls_reload(char *err, size_t errcap)
{
    if (!current) {
        snprintf(err, errcap, "TLS is not enabled");
        return KX_EINVAL;
    }
    SSL_CTX *ctx = build_ctx(cert_file, key_file, err, errcap);
    if (!ctx) return KX_EINVAL;
    SSL_CTX_free(current); /* open connections' SSL objects still hold it */
    current = ctx;
    return KX_OK;
}

void kx_tls_refuse(int fd)
{
    close(fd);
}

bool kx_tls_enabled(void)
{
    return current != NULL;
}

void kx_tls_free(void)
{
    SSL_CTX_free(current);
    current = NULL;
    free(cert_file);
    free(key_file);
    cert_file = key_file = NULL;
}

/* ---- transport ---------------------------------------------------------------------------- */

/* What an SSL call that did not succeed means for conn.c: KX_EAGAIN with the direction it
 * waits for, 0 for the peer's close_notify, KX_EIO for anything else (garbage, a broken
 * socket, an alert). */
static int map_error(kx_conn_t *c, tls_conn_t *t, int rc)
{
    switch (SSL_get_error(t->ssl, rc)) {
    case SSL_ERROR_WANT_READ: c->tp_want = KX_WANT_READ; return KX_EAGAIN;
    case SSL_ERROR_WANT_WRITE: c->tp_want = KX_WANT_WRITE; return KX_EAGAIN;
    case SSL_ERROR_ZERO_RETURN: return 0;
    default:
        t->failed = true;
        ERR_clear_error();
        return KX_EIO;
    }
}

/* Someone speaking plain HTTP to the TLS port gets a plain 400 saying so (one best-effort
 * send), then the close. */
static void answer_plain_http(int fd)
{
    static const char msg[] = "HTTP/1.1 400 Bad Request\r\n"
                              "Content-Type: text/plain; charset=utf-8\r\n"
                              "Content-Length: 38\r\n"
                              "Connection: close\r\n\r\n"
                              "This port speaks HTTPS: use https://\r\n";
    (void)send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Before OpenSSL sees any byte: the first must open a handshake record. Returns KX_OK to go
 * on, KX_EAGAIN while nothing has arrived, KX_EIO to close. */
static int sniff(kx_conn_t *c)
{
    unsigned char b;
    ssize_t r = recv(c->fd, &b, 1, MSG_PEEK);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        c->tp_want = KX_WANT_READ;
        return KX_EAGAIN;
    }
    if (r <= 0) return KX_EIO;
    if (b == TLS_RECORD_HANDSHAKE) return KX_OK;
    if (b >= 'A' && b <= 'Z') answer_plain_http(c->fd);
    return KX_EIO;
}

static int tls_handshake(kx_conn_t *c)
{
    tls_conn_t *t = c->tp_ctx;
    if (!t) {
        int rc = sniff(c);
        if (rc != KX_OK) return rc;
        SSL *ssl = current ? SSL_new(current) : NULL;
        if (!ssl || SSL_set_fd(ssl, c->fd) != 1) {
            SSL_free(ssl);
            ERR_clear_error();
            return KX_EIO;
        }
        SSL_set_accept_state(ssl);
        t = kx_xcalloc(1, sizeof *t);
        t->ssl = ssl;
        c->tp_ctx = t;
    }
    ERR_clear_error();
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1) return KX_OK;
    rc = map_error(c, t, rc);
    return rc == 0 ? KX_EIO : rc;
}

static ssize_t tls_read(kx_conn_t *c, void *buf, size_t n)
{
    tls_conn_t *t = c->tp_ctx;
    ERR_clear_error();
    int rc = SSL_read(t->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
    return rc > 0 ? rc : map_error(c, t, rc);
}

static ssize_t tls_write(kx_conn_t *c, const void *buf, size_t n)
{
    tls_conn_t *t = c->tp_ctx;
    ERR_clear_error();
    int rc = SSL_write(t->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
    if (rc > 0) return rc;
    rc = map_error(c, t, rc);
    return rc == 0 ? KX_EIO : rc;
}

static bool tls_pending(const kx_conn_t *c)
{
    const tls_conn_t *t = c->tp_ctx;
    return t && SSL_pending(t->ssl) > 0;
}

/* One close_notify, best effort and never waited for: the socket closes right after. */
static void tls_shutdown(kx_conn_t *c)
{
    tls_conn_t *t = c->tp_ctx;
    if (!t || t->failed || !SSL_is_init_finished(t->ssl)) return;
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl);
    ERR_clear_error();
}

static void tls_free(kx_conn_t *c)
{
    tls_conn_t *t = c->tp_ctx;
    if (!t) return;
    SSL_free(t->ssl);
    free(t);
    c->tp_ctx = NULL;
}

const kx_transport_t kx_transport_tls = {
    .name = "tls",
    .handshake = tls_handshake,
    .read = tls_read,
    .write = tls_write,
    .pending = tls_pending,
    .shutdown = tls_shutdown,
    .free = tls_free,
};
