/* http.h — HTTP/1.1 on a connection: the request (http.c) and the response (response.c).
 *
 * Owns: kx_request_t (held by a connection only while a request is in flight or pipelined
 * bytes wait: an idle keep-alive connection has c->req == NULL; ended ones go to a bounded
 * free list), the HTTP connection handler, the response writer (whole responses and streamed
 * ones: Content-Length, chunked or Server-Sent Events framing, with backpressure) and the
 * C-side JSON error envelope.
 * Callers: listen.c's on_open (kx_http_attach); the request handler server.c installs
 * (dispatch.c) answers through kx_http_send / kx_http_begin…end; ws.c reads the upgrade
 * request; static.c and lua_bridge.c answer through the response functions.
 * Never: calls a higher layer by name: a complete request goes to the handler installed with
 * kx_http_set_request_handler. One request is in flight per connection; pipelined requests
 * are answered in order, and the next is read only once the current response ended. */
#ifndef KX_HTTP_H
#define KX_HTTP_H
#include "conn.h"
#include "http_guard.h"

#define KX_MAX_HEAD 16384
#define KX_MAX_HEADERS 100

typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} kx_header_t;

typedef enum {
    KX_HTTP_HEAD, /* waiting for (the rest of) a request head */
    KX_HTTP_BODY, /* reading a body */
    KX_HTTP_BUSY, /* request dispatched, waiting for (the end of) its response */
} kx_http_state_t;

typedef enum {
    KX_FRAMING_LENGTH,  /* Content-Length: the body is exactly `length` bytes */
    KX_FRAMING_CHUNKED, /* Transfer-Encoding: chunked (close-delimited for HTTP/1.0) */
    KX_FRAMING_SSE,     /* text/event-stream, chunked; written with kx_http_sse_event */
} kx_framing_t;

typedef struct kx_request {
    char *head; /* owned copy of the raw head; spans below point into it */
    size_t head_len;
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    const char *path; /* target without query, raw */
    size_t path_len;
    const char *query; /* after '?', raw; NULL when absent */
    size_t query_len;
    kx_header_t headers[KX_MAX_HEADERS];
    int n_headers;
    kx_head_info_t info;
    kx_buf_t body;
    uint64_t body_left; /* Content-Length bytes still to read */
    kx_chunk_decoder_t chunk;
    bool is_head;
    bool accept_gzip;
    const char *origin; /* Origin header or NULL (also when there are several) */
    size_t origin_len;
    bool origin_ambiguous;                          /* more than one Origin header */
    char correlation_id[KX_CORRELATION_ID_MAX + 1]; /* validated id, or "" */
    ev_tstamp started;
    int status;        /* of the response under way (response.c), 0 before one began */
    int metrics_route; /* the route label dispatch.c chose (metrics.h), 0 = unknown */
    /* The response under way (response.c). */
    struct {
        bool open;    /* begun and not ended */
        bool paused;  /* over the pause mark: the writer waits for on_resume */
        bool no_body; /* HEAD, 204, 304: framing bytes are not sent */
        kx_framing_t framing;
        uint64_t left; /* KX_FRAMING_LENGTH: bytes still owed */
        void (*on_resume)(kx_conn_t *c, void *ud);
        void *ud;
    } out;
    /* ---- fields below survive the reset between requests ---- */
    kx_http_state_t state;
    bool keep_alive;
    bool timer_is_head;           /* the timer currently measures the head deadline */
    kx_head_parser_t head_parser; /* the head being read from rbuf (http_guard.h) */
} kx_request_t;

/* ---- http.c ---------------------------------------------------------------------------- */

/* Makes c an HTTP connection: allocates its request and installs the HTTP handler. */
void kx_http_attach(kx_conn_t *c);
/* Who gets a complete request (state BUSY); it must answer it, now or later. */
void kx_http_set_request_handler(void (*handler)(kx_conn_t *c));
/* Called by response.c when a response ended: next request (keep-alive) or close. */
void kx_http_request_done(kx_conn_t *c);
/* Detaches the HTTP state from an upgraded connection (ws.c, after its handler took over). */
void kx_http_detach(kx_conn_t *c);
/* NULL when r is NULL (an idle connection: a late task's request has ended). */
const kx_header_t *kx_http_header(const kx_request_t *r, const char *name);
/* Ended request structs kept for reuse (at most a small fixed number; tests). */
int kx_http_pooled_requests(void);
/* An HTTP connection's handler answers a connection-cap refusal with this (listen.c). */
void kx_http_refuse_busy(int fd);

/* ---- response.c ------------------------------------------------------------------------ */

/* JSON always names its charset (OWASP: no content sniffing of the encoding). */
#define KX_JSON_CONTENT_TYPE "application/json; charset=utf-8"

#define KX_R_CORS 1u  /* add Access-Control-* headers */
#define KX_R_CLOSE 2u /* close the connection after this response */
#define KX_R_NOGZIP 4u
#define KX_R_BODY_FOLLOWS 8u /* body streamed by kx_conn_sendfile; len = its size */
#define KX_R_PREFLIGHT 16u   /* with KX_R_CORS: the answer to an OPTIONS preflight */

/* A streamed writer is paused past this many unsent bytes and dropped past
 * KX_CONN_OUTPUT_CAP. */
#define KX_HTTP_PAUSE_BYTES (256u * 1024)

/* Sends a complete response. extra: preformatted "Name: value\r\n" lines (or NULL), already
 * validated by the caller. For HEAD requests the body is omitted but Content-Length kept. */
void kx_http_send(kx_conn_t *c, int status, const char *ctype, const char *extra, size_t extra_len,
                  const char *body, size_t len, unsigned flags);
/* Bodies shorter than this are copied behind the head: cheaper than lending them. */
#define KX_HTTP_LEND_MIN (16u * 1024)
/* The same, lending the body instead of copying it (kx_conn_write_lent): body must stay
 * valid until release(ud) runs, exactly once, possibly before this returns (written at once,
 * copied because it is small, not sent: HEAD, 204, a closed connection; replaced by its gzip
 * form, or shorter than KX_HTTP_LEND_MIN). release NULL is kx_http_send. */
void kx_http_send_lent(kx_conn_t *c, int status, const char *ctype, const char *extra, size_t extra_len,
                       const char *body, size_t len, unsigned flags, kx_release_fn release, void *ud);
/* Streaming: begin writes the status line and headers (length is used by LENGTH framing
 * only), then write/sse_event queue body pieces, and end finishes the response (the chunked
 * terminator) and hands the connection back to http.c. write returns KX_OK, KX_EAGAIN (the
 * bytes are queued but the client is behind: wait for the resume callback), or KX_ECLOSED
 * (the connection is gone, or was dropped for being more than KX_CONN_OUTPUT_CAP behind). */
void kx_http_begin(kx_conn_t *c, int status, const char *ctype, const char *extra, size_t extra_len,
                   kx_framing_t framing, uint64_t length, unsigned flags);
int kx_http_write(kx_conn_t *c, const char *p, size_t n);
/* kx_http_write lending p instead of copying it (kx_conn_write_lent; the same contract as
 * kx_http_send_lent: release(ud) exactly once, maybe before it returns, also on failure). */
int kx_http_write_lent(kx_conn_t *c, const char *p, size_t n, kx_release_fn release, void *ud);
/* One SSE event: `event` (optional, no CR/LF) and data, split into data: lines. */
int kx_http_sse_event(kx_conn_t *c, const char *event, const char *data, size_t n);
void kx_http_end(kx_conn_t *c);
/* The paused writer's callback: runs once everything queued was written, or once the
 * connection closed (c->closed is then true; the callback is cleared before it runs). A
 * writer that stops waiting (its own timeout) clears it with kx_http_on_resume(c, NULL, NULL). */
void kx_http_on_resume(kx_conn_t *c, void (*cb)(kx_conn_t *c, void *ud), void *ud);
/* Called by http.c when the connection drained: resumes a paused writer. */
void kx_http_output_drained(kx_conn_t *c);
/* Called by http.c when the connection closed: wakes a writer waiting for on_resume. */
void kx_http_output_closed(kx_conn_t *c);

/* Sends the JSON error envelope {"error":{"message","type","timestamp"}} (never a stack). */
void kx_http_send_error(kx_conn_t *c, int status, const char *type, const char *message, unsigned flags);
/* The same, with extra header lines ("Name: value\r\n", e.g. Sec-WebSocket-Version). */
void kx_http_send_error_with(kx_conn_t *c, int status, const char *type, const char *message,
                             const char *extra, unsigned flags);
/* A complete "Connection: close" error response for a socket that has no kx_conn_t (the
 * connection cap): same envelope and headers as kx_http_send_error. */
void kx_http_error_bytes(int status, const char *type, const char *message, const char *extra, kx_buf_t *out);
/* Whether kx_http_send would gzip a body of this type and size for c's request. */
bool kx_http_will_gzip(const kx_conn_t *c, const char *ctype, size_t len);
/* Precomputes the header block every response carries and the MCP route's CORS rule (boot,
 * after the bind: APPLICATION_URL may name the port picked). */
void kx_response_init(kx_server_t *s);
const char *kx_http_reason(int status);
/* gzip-compresses; returns 0 and fills out, or KX_EIO. */
int kx_gzip(const char *in, size_t len, kx_buf_t *out);

#endif
