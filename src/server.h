/* server.h — the process-wide server context, connections and requests.
 *
 * Owns: the kx_server_t singleton (loop, config, router, listener, connection list), the
 * kx_conn_t and kx_request_t layouts, and the transport interface connections do I/O through.
 * Callers: main.c creates the server; listen.c/conn.c/http.c/response.c/dispatch.c/static.c
 * and lua_bridge.c use it. Never: holds Lua state (lua_bridge.c does).
 *
 * Lifetimes: a kx_conn_t lives from accept until it is closed AND no task references it
 * (refs == 0). A kx_request_t is embedded in its connection and reset between requests;
 * `gen` is bumped per request so a late Lua task can tell its request is gone. */
#ifndef KX_SERVER_H
#define KX_SERVER_H
#include <ev.h>
#include <sys/types.h>
#include "buf.h"
#include "config.h"
#include "http_guard.h"
#include "router.h"

#define KX_MAX_HEAD 16384
#define KX_MAX_HEADERS 100

typedef struct kx_conn kx_conn_t;

/* Connections read and write through this, so TLS slots in without touching HTTP code.
 * read/write return bytes (> 0), 0 on EOF (read only), KX_EAGAIN, or KX_EIO. */
typedef struct {
    ssize_t (*read)(kx_conn_t *c, void *buf, size_t n);
    ssize_t (*write)(kx_conn_t *c, const void *buf, size_t n);
    void (*shutdown)(kx_conn_t *c);
} kx_transport_t;

extern const kx_transport_t kx_transport_plain;

typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} kx_header_t;

typedef struct {
    char *head;                  /* owned copy of the raw head; spans below point into it */
    size_t head_len;
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    const char *path;            /* target without query, raw */
    size_t path_len;
    const char *query;           /* after '?', raw; NULL when absent */
    size_t query_len;
    kx_header_t headers[KX_MAX_HEADERS];
    int n_headers;
    kx_head_info_t info;
    kx_buf_t body;
    uint64_t body_left;          /* Content-Length bytes still to read */
    kx_chunk_decoder_t chunk;
    bool is_head;
    bool accept_gzip;
    const char *origin;          /* Origin header or NULL */
    size_t origin_len;
    char correlation_id[129];    /* validated id, or "" */
    ev_tstamp started;
} kx_request_t;

typedef enum {
    KX_CONN_HEAD,        /* waiting for (the rest of) a request head */
    KX_CONN_BODY,        /* reading a body */
    KX_CONN_BUSY,        /* request dispatched, waiting for its response */
    KX_CONN_CLOSING,     /* flushing the last response, then close */
    KX_CONN_WS,          /* upgraded: frames go to ws.c */
} kx_conn_state_t;

struct kx_conn {
    int fd;
    const kx_transport_t *tp;
    void *tp_ctx;
    ev_io rio, wio;
    ev_timer timer;
    kx_buf_t rbuf;
    kx_buf_t wbuf;
    size_t wpos;
    int send_fd;                 /* file being streamed after wbuf, or -1 */
    off_t send_left;
    kx_conn_state_t state;
    kx_request_t *req;           /* HTTP only: freed when the connection becomes a WebSocket */
    uint32_t gen;
    int refs;                    /* 1 for the socket + 1 per task */
    bool closed;                 /* socket closed; memory waits for refs == 0 */
    bool keep_alive;
    bool reading;
    bool timer_is_head;          /* timer currently measures the head deadline */
    size_t head_scanned;         /* bytes of rbuf already searched for the head's end */
    char peer_ip[64];
    struct kx_ws *ws;            /* non-NULL once upgraded to a WebSocket */
    kx_conn_t *prev, *next;
};

typedef struct {
    struct ev_loop *loop;
    kx_config_t *cfg;
    kx_router_t *router;
    int listen_fd;
    int spare_fd;                /* closed to accept-and-drop when out of fds */
    ev_io listen_io;
    int n_conns;
    kx_conn_t *conns;
    int static_root_fd;          /* O_PATH of the static directory, or -1 */
    int www_root_fd;             /* O_PATH of keryx's own pages (lua/keryx/www), or -1 */
    char *home;                  /* keryx home: the directory holding lua/ */
    char *static_headers;        /* precomputed X-SERVER-NAME + security headers */
    size_t static_headers_len;
    bool draining;
    ev_tstamp started;
} kx_server_t;

extern kx_server_t *kx_srv;

/* conn.c */
int kx_listen_start(kx_server_t *s, char *err, size_t errcap);
void kx_listen_stop(kx_server_t *s);
/* Adopts an accepted, non-blocking fd (listen.c, and tests over a socketpair). */
kx_conn_t *kx_conn_open(kx_server_t *s, int fd, const kx_transport_t *tp, const char *peer_ip);
void kx_conn_close(kx_conn_t *c);
void kx_conn_ref(kx_conn_t *c);
void kx_conn_unref(kx_conn_t *c);
/* Queues bytes and tries to write them now. */
void kx_conn_write(kx_conn_t *c, const void *p, size_t n);
/* Streams `len` bytes of fd after the queued bytes; takes ownership of fd. */
void kx_conn_sendfile(kx_conn_t *c, int fd, off_t len);
void kx_conn_set_timer(kx_conn_t *c, int64_t ms);
void kx_conn_flush(kx_conn_t *c);
int kx_listen_port(const kx_server_t *s);

/* http.c */
void kx_http_on_readable(kx_conn_t *c);
/* Called by response.c once a response is queued: next request, or close. */
void kx_http_response_done(kx_conn_t *c);
const kx_header_t *kx_http_header(const kx_request_t *r, const char *name);

/* response.c */
#define KX_R_CORS     1u   /* add Access-Control-* headers */
#define KX_R_CLOSE    2u   /* close the connection after this response */
#define KX_R_NOGZIP   4u
#define KX_R_BODY_FOLLOWS 8u  /* body streamed by kx_conn_sendfile; len = its size */
/* Sends a complete response. extra: preformatted "Name: value\r\n" lines (or NULL).
 * For HEAD requests the body is omitted but Content-Length kept. */
void kx_http_send(kx_conn_t *c, int status, const char *ctype, const char *extra, size_t extra_len,
                  const char *body, size_t len, unsigned flags);
/* Sends the JSON error envelope {"error":{"message","type","timestamp"}} (never a stack). */
void kx_http_send_error(kx_conn_t *c, int status, const char *type, const char *message,
                        unsigned flags);
/* The same, with extra header lines ("Name: value\r\n", e.g. Sec-WebSocket-Version). */
void kx_http_send_error_with(kx_conn_t *c, int status, const char *type, const char *message,
                             const char *extra, unsigned flags);
/* A complete "Connection: close" error response for a socket that has no kx_conn_t (the
 * connection cap): same envelope and headers as kx_http_send_error. */
void kx_http_error_bytes(int status, const char *type, const char *message, const char *extra,
                         kx_buf_t *out);
/* True when p[0..n) is a well-formed block of "Name: value\r\n" header lines. */
bool kx_http_header_block_valid(const char *p, size_t n);
/* Whether kx_http_send would gzip a body of this type and size for c's request. */
bool kx_http_will_gzip(const kx_conn_t *c, const char *ctype, size_t len);
/* Precomputes the header block every response carries (boot). */
void kx_response_init(kx_server_t *s);
const char *kx_http_reason(int status);
/* gzip-compresses; returns 0 and fills out, or KX_EIO. */
int kx_gzip(const char *in, size_t len, kx_buf_t *out);

/* dispatch.c */
void kx_dispatch(kx_conn_t *c);

/* static.c */
/* Serves GET/HEAD of a static file from root_fd (path raw from the request, relative to the
 * static route); answers 403/400/404 envelopes itself. */
void kx_static_serve(kx_conn_t *c, int root_fd, const char *path, size_t len, bool cache);

#endif
