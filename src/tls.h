/* tls.h — TLS (OpenSSL) as one more connection transport: HTTPS and WSS on the same port.
 *
 * Owns: the server's SSL_CTX (protocol versions, cipher suites, ALPN, session resumption,
 * certificate and key) and one SSL object per connection (c->tp_ctx).
 * Callers: main.c loads the certificate at boot (kx_tls_init), names kx_transport_tls in its
 * kx_listen_opts_t, and reloads on SIGHUP (kx_tls_reload); conn.c drives the transport.
 * Never: reads or writes protocol bytes above TLS (HTTP, WebSocket), logs, or touches a
 * connection's buffers: conn.c owns those and calls the transport's functions.
 *
 * Policy (docs/ARCHITECTURE.md, README "TLS"): TLS 1.2 and 1.3 only; TLS 1.2 limited to ECDHE
 * key exchange with AEAD ciphers (AES-GCM, ChaCha20-Poly1305); OpenSSL's TLS 1.3 suites; ALPN
 * http/1.1 (a client offering only other protocols gets no_application_protocol); session
 * resumption through the server-side cache and tickets. Renegotiation and compression off. */
#ifndef KX_TLS_H
#define KX_TLS_H
#include <stddef.h>
#include "conn.h"

/* The TLS 1.2 suites (TLS 1.3 suites are OpenSSL's defaults, all AEAD and forward secret). */
#define KX_TLS12_CIPHERS                                                                       \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

extern const kx_transport_t kx_transport_tls;

/* Loads the PEM certificate chain and key and builds the context new connections use.
 * A missing or unreadable file names its variable (WEB_SERVER_TLS_CERT / WEB_SERVER_TLS_KEY);
 * a key that does not match the certificate names WEB_SERVER_TLS_KEY. */
int kx_tls_init(const char *cert_path, const char *key_path, char *err, size_t errcap);

/* Reads the same files again into a new context for connections accepted from now on; open
 * connections keep the context they started with. On failure the old context stays and err
 * says why. KX_EINVAL when kx_tls_init never succeeded. */
int kx_tls_reload(char *err, size_t errcap);

/* A connection over the cap (kx_listen_opts_t.refuse): closed without a handshake. A TLS
 * client cannot read a plain 503, and a handshake is the expensive part a cap must spare. */
void kx_tls_refuse(int fd);

/* Whether kx_tls_init succeeded (the listener speaks TLS). */
bool kx_tls_enabled(void);

/* Releases the context (connections still open keep theirs until they close). */
void kx_tls_free(void);

#endif
