/* http.c — HTTP/1.1 request reading: head framing, strict validation and field spans in one
 * pass (http_guard.c's head parser), llhttp for the heads of uncommon methods, body reading
 * (Content-Length or the strict chunked decoder), keep-alive and pipelining (one request in
 * flight per connection, answered in order).
 *
 * llhttp 8.1 only ever sees a complete head that http_guard.c already accepted, and never a
 * body: that is how the three request-splitting shapes it lets through are closed. */
#include "http.h"
#include "log.h"
#include "metrics.h"
#include <stddef.h>
#include <ctype.h>
#include <strings.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* on_header_field indexes headers[] before counting: the guard's cap must equal ours. */
_Static_assert(KX_HTTP_MAX_HEADERS == KX_MAX_HEADERS, "header caps of http_guard.h and http.h differ");
_Static_assert(offsetof(kx_request_t, headers) < offsetof(kx_request_t, n_headers) &&
                   offsetof(kx_request_t, n_headers) < offsetof(kx_request_t, state),
               "request_reset clears around headers[]: the field order it relies on changed");

#define PIPELINE_WBUF_MAX (256 * 1024)
#define PIPELINE_RBUF_MAX (64 * 1024)

/* ---- llhttp tokenising -------------------------------------------------------------------- */

/* Extends the span when llhttp hands a token over in pieces (contiguous in our copy). */
static void span_add(const char **p, size_t *len, const char *at, size_t n)
{
    if (*p && *p + *len == at) *len += n;
    else {
        *p = at;
        *len = n;
    }
}

static int on_method(llhttp_t *h, const char *at, size_t n)
{
    kx_request_t *r = h->data;
    span_add(&r->method, &r->method_len, at, n);
    return 0;
}

static int on_url(llhttp_t *h, const char *at, size_t n)
{
    kx_request_t *r = h->data;
    span_add(&r->target, &r->target_len, at, n);
    return 0;
}

static int on_header_field(llhttp_t *h, const char *at, size_t n)
{
    kx_request_t *r = h->data;
    kx_header_t *hd = &r->headers[r->n_headers];
    if (hd->name && hd->value) return -1; /* guard guarantees this never happens */
    if (r->n_headers >= KX_MAX_HEADERS) return -1;
    span_add(&hd->name, &hd->name_len, at, n);
    return 0;
}

static int on_header_value(llhttp_t *h, const char *at, size_t n)
{
    kx_request_t *r = h->data;
    kx_header_t *hd = &r->headers[r->n_headers];
    span_add(&hd->value, &hd->value_len, at, n);
    return 0;
}

static int on_header_value_complete(llhttp_t *h)
{
    kx_request_t *r = h->data;
    kx_header_t *hd = &r->headers[r->n_headers];
    if (!hd->value) hd->value = hd->name + hd->name_len, hd->value_len = 0;
    r->n_headers++;
    return 0;
}

static int on_headers_complete(llhttp_t *h)
{
    (void)h;
    return 1; /* never let llhttp read a body: we frame bodies ourselves */
}

static llhttp_settings_t settings;

static int tokenise(kx_request_t *r)
{
    static bool init;
    if (!init) {
        llhttp_settings_init(&settings);
        settings.on_method = on_method;
        settings.on_url = on_url;
        settings.on_header_field = on_header_field;
        settings.on_header_value = on_header_value;
        settings.on_header_value_complete = on_header_value_complete;
        settings.on_headers_complete = on_headers_complete;
        init = true;
    }
    /* The callbacks append to zeroed spans; request_reset leaves headers[] as it was. */
    memset(r->headers, 0, sizeof r->headers);
    llhttp_t parser;
    llhttp_init(&parser, HTTP_REQUEST, &settings);
    parser.data = r;
    llhttp_errno_t e = llhttp_execute(&parser, r->head, r->head_len);
    if (e != HPE_OK && e != HPE_PAUSED_UPGRADE) return KX_EPROTO;
    if (!r->method || !r->target) return KX_EPROTO;
    return KX_OK;
}

/* The methods an API is called with. For them the head parser's spans are taken as they are:
 * on a head the guard accepted, llhttp 8.1 gives the same method, target and header spans and
 * never fails (tests/test_http_guard.c and tests/fuzz/fuzz_http.c compare the two), so a
 * second parse would only cost time. Any other method (CONNECT, WebDAV's, an unknown one) is
 * still tokenised by llhttp, which refuses the ones it does not know (400). */
static bool common_method(const char *m, size_t n)
{
    switch (n) {
    case 3: return memcmp(m, "GET", 3) == 0 || memcmp(m, "PUT", 3) == 0;
    case 4: return memcmp(m, "HEAD", 4) == 0 || memcmp(m, "POST", 4) == 0;
    case 5: return memcmp(m, "PATCH", 5) == 0;
    case 6: return memcmp(m, "DELETE", 6) == 0;
    case 7: return memcmp(m, "OPTIONS", 7) == 0;
    default: return false;
    }
}

/* Points the request's fields into its head copy; false when llhttp must tokenise instead. */
static bool take_spans(kx_request_t *r)
{
    const kx_head_parser_t *hp = &r->head_parser;
    const char *h = r->head;
    if (!common_method(h + hp->method, hp->method_len)) return false;
    r->method = h + hp->method;
    r->method_len = hp->method_len;
    r->target = h + hp->target;
    r->target_len = hp->target_len;
    r->n_headers = (int)hp->checks.headers;
    for (int i = 0; i < r->n_headers; i++) {
        const kx_head_field_t *f = &hp->fields[i];
        r->headers[i] = (kx_header_t){ h + f->name, f->name_len, h + f->value, f->value_len };
    }
    return true;
}

/* ---- request fields ----------------------------------------------------------------------- */

const kx_header_t *kx_http_header(const kx_request_t *r, const char *name)
{
    if (!r) return NULL;     /* an idle connection (a late task's request has ended) */
    size_t n = strlen(name); /* once, not once per header; most names differ in length */
    for (int i = 0; i < r->n_headers; i++)
        if (r->headers[i].name_len == n && strncasecmp(r->headers[i].name, name, n) == 0)
            return &r->headers[i];
    return NULL;
}

static void split_target(kx_request_t *r)
{
    const char *t = r->target, *end = t + r->target_len;
    /* absolute-form: skip scheme://authority, keep the path (an origin-form target, the
     * usual one, starts with '/' and is not searched for "://") */
    const char *sep = t[0] != '/' && r->target_len > 7 ? memmem(t, r->target_len, "://", 3) : NULL;
    if (sep) {
        const char *slash = memchr(sep + 3, '/', (size_t)(end - sep - 3));
        const char *q0 = memchr(sep + 3, '?', (size_t)(end - sep - 3));
        if (q0 && (!slash || q0 < slash)) slash = NULL;
        t = slash ? slash : "/";
        if (!slash) end = t + 1;
    }
    const char *q = memchr(t, '?', (size_t)(end - t));
    r->path = t;
    r->path_len = (size_t)((q ? q : end) - t);
    r->query = q ? q + 1 : NULL;
    r->query_len = q ? (size_t)(end - q - 1) : 0;
}

static bool authority_matches_host(const kx_request_t *r)
{
    const char *sep = memmem(r->target, r->target_len, "://", 3);
    const kx_header_t *host = kx_http_header(r, "Host");
    if (!sep || !host) return false;
    const char *a = sep + 3, *end = r->target + r->target_len;
    const char *e = a;
    while (e < end && *e != '/' && *e != '?') e++;
    size_t n = (size_t)(e - a);
    return n > 0 && n == host->value_len && strncasecmp(a, host->value, n) == 0;
}

static bool q_is_zero(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t')) p++;
    if (e - p < 2 || (p[0] != 'q' && p[0] != 'Q') || p[1] != '=') return false;
    p += 2;
    if (p == e || *p != '0') return false;
    for (p++; p < e; p++)
        if (*p != '0' && *p != '.' && *p != ' ') return false;
    return true;
}

static bool accepts_gzip(const kx_header_t *h)
{
    if (!h) return false;
    size_t i = 0, n = h->value_len;
    const char *v = h->value;
    while (i < n) {
        size_t e = i;
        while (e < n && v[e] != ',') e++;
        size_t a = i, semi = i;
        while (a < e && (v[a] == ' ' || v[a] == '\t')) a++;
        while (semi < e && v[semi] != ';') semi++;
        size_t ne = semi;
        while (ne > a && (v[ne - 1] == ' ' || v[ne - 1] == '\t')) ne--;
        if (kx_strcaseeq_n(v + a, ne - a, "gzip")) return !(semi < e && q_is_zero(v + semi + 1, v + e));
        i = e + 1;
    }
    return false;
}

/* Two Origin headers leave it unclear which origin is asking: such a request gets no CORS
 * grant and no WebSocket (an allowed origin first must not vouch for an evil second). */
static void take_origin(kx_request_t *r)
{
    for (int i = 0; i < r->n_headers; i++) {
        const kx_header_t *h = &r->headers[i];
        if (h->name_len != 6 || strncasecmp(h->name, "Origin", 6) != 0) continue;
        if (r->origin || r->origin_ambiguous) {
            r->origin = NULL;
            r->origin_len = 0;
            r->origin_ambiguous = true;
            continue;
        }
        r->origin = h->value;
        r->origin_len = h->value_len;
    }
}

static void take_correlation_id(kx_request_t *r, const kx_config_t *cfg)
{
    r->correlation_id[0] = '\0';
    if (!cfg->correlation_trust_proxy || !cfg->correlation_header[0]) return;
    const kx_header_t *h = kx_http_header(r, cfg->correlation_header);
    if (!h || !kx_correlation_id_valid(h->value, h->value_len)) return;
    memcpy(r->correlation_id, h->value, h->value_len);
    r->correlation_id[h->value_len] = '\0';
}

static void (*request_handler)(kx_conn_t *c);

void kx_http_set_request_handler(void (*handler)(kx_conn_t *c))
{
    request_handler = handler;
}

/* Clears one request's fields; the connection-long ones at the end of the struct stay. */
static void request_reset(kx_request_t *r)
{
    free(r->head);
    kx_buf_free(&r->body);
    /* headers[] is most of the struct and is read only below n_headers: it is not cleared. */
    memset(r, 0, offsetof(kx_request_t, headers));
    memset(&r->n_headers, 0, offsetof(kx_request_t, state) - offsetof(kx_request_t, n_headers));
}

/* ---- request lifetime --------------------------------------------------------------------- */

/* A connection holds a kx_request_t only while a request is in flight (from its first byte to
 * the end of its response, or while pipelined bytes wait): an idle keep-alive connection
 * costs its kx_conn_t and nothing here. Ended requests go back to a free list so a busy
 * server does not pay malloc per request; the list is bounded (REQ_POOL_MAX structs, ~230
 * KiB), so after a burst the memory beyond it goes back to malloc. */
#define REQ_POOL_MAX 64

static struct {
    kx_request_t *free[REQ_POOL_MAX];
    int n;
} pool;

static kx_request_t *request_new(kx_conn_t *c)
{
    kx_request_t *r = pool.n > 0 ? pool.free[--pool.n] : kx_xcalloc(1, sizeof *r);
    r->state = KX_HTTP_HEAD;
    r->keep_alive = false;
    kx_head_parser_init(&r->head_parser);
    /* Before the first request the header deadline armed at accept is still running (it
     * counts from the connection's start); later ones arm their own at their first byte. */
    r->timer_is_head = c->gen == 0;
    c->req = r;
    return r;
}

static void request_release(kx_conn_t *c)
{
    kx_request_t *r = c->req;
    if (!r) return;
    c->req = NULL;
    request_reset(r);
    if (pool.n < REQ_POOL_MAX) pool.free[pool.n++] = r;
    else free(r);
}

int kx_http_pooled_requests(void)
{
    return pool.n;
}

/* ---- state machine ------------------------------------------------------------------------ */

static void fail(kx_conn_t *c, int status, const char *type, const char *msg)
{
    kx_log_debug("closing connection from %s: %d %s", c->peer_ip, status, msg);
    kx_http_send_error(c, status, type, msg, KX_R_CLOSE);
}

static const char *type_for(int status)
{
    switch (status) {
    case 413: return "CONNECTION_PAYLOAD_TOO_LARGE";
    case 431: return "CONNECTION_HEADERS_TOO_LARGE";
    default: return "CONNECTION_BAD_REQUEST";
    }
}

static void start_dispatch(kx_conn_t *c)
{
    c->req->state = KX_HTTP_BUSY;
    c->req->timer_is_head = false;
    kx_conn_set_timer(c, 0);
    request_handler(c);
}

static bool begin_body(kx_conn_t *c)
{
    kx_request_t *r = c->req;
    const kx_config_t *cfg = kx_srv->cfg;
    uint64_t max = cfg->max_body_size > 0 ? (uint64_t)cfg->max_body_size : 0;
    if (r->info.transfer_encoding == KX_TE_CHUNKED) {
        kx_chunk_decoder_init(&r->chunk, max);
    } else if (r->info.has_content_length && r->info.content_length > 0) {
        if (max && r->info.content_length > max) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "Payload Too Large \xe2\x80\x94 body of %llu bytes exceeds the %llu byte limit",
                     (unsigned long long)r->info.content_length, (unsigned long long)max);
            fail(c, 413, "CONNECTION_PAYLOAD_TOO_LARGE", msg);
            return false;
        }
        r->body_left = r->info.content_length;
    } else {
        start_dispatch(c);
        return true;
    }
    r->state = KX_HTTP_BODY;
    if (r->info.expect_continue && c->rbuf.len == 0) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        kx_conn_write(c, cont, sizeof cont - 1);
        kx_conn_flush(c);
        if (c->closed) return false; /* the peer went away: nothing more to do with c */
    }
    r->timer_is_head = false;
    kx_conn_set_timer(c, cfg->body_timeout_ms);
    return true;
}

static bool process_head(kx_conn_t *c)
{
    const kx_config_t *cfg = kx_srv->cfg;
    kx_request_t *r = c->req;
    if (c->rbuf.len == 0) return false;
    if (!r->timer_is_head) {
        r->timer_is_head = true;
        kx_conn_set_timer(c, cfg->header_timeout_ms);
    }
    long end = kx_head_parser_feed(&r->head_parser, c->rbuf.data, c->rbuf.len);
    if (end == 0) {
        if (c->rbuf.len > KX_MAX_HEAD)
            fail(c, 431, "CONNECTION_HEADERS_TOO_LARGE", "Request header block exceeds 16 KiB");
        return false;
    }
    if (end < 0) {
        fail(c, 400, "CONNECTION_BAD_REQUEST", "Malformed request head");
        return false;
    }
    if (end > KX_MAX_HEAD) {
        fail(c, 431, "CONNECTION_HEADERS_TOO_LARGE", "Request header block exceeds 16 KiB");
        return false;
    }
    request_reset(r);
    int status = 400;
    const char *reason = "Bad request";
    if (kx_head_parser_result(&r->head_parser, &r->info, &status, &reason) != KX_OK) {
        fail(c, status, type_for(status), reason);
        return false;
    }
    r->head = kx_xstrndup(c->rbuf.data, (size_t)end);
    r->head_len = (size_t)end;
    kx_buf_consume(&c->rbuf, (size_t)end);
    bool tokenised = take_spans(r);
    kx_head_parser_init(&r->head_parser);
    if (!tokenised && tokenise(r) != KX_OK) {
        fail(c, 400, "CONNECTION_BAD_REQUEST", "Malformed request");
        return false;
    }
    split_target(r);
    /* CONNECT tunnels are not served here (405 and close, as nginx does). */
    if (r->method_len == 7 && memcmp(r->method, "CONNECT", 7) == 0) {
        fail(c, 405, "CONNECTION_BAD_REQUEST", "CONNECT is not supported");
        return false;
    }
    /* An absolute-form target must name the host the Host header names (RFC 9112 §3.2.2):
     * otherwise a proxy routing by one and keryx reading the other disagree. */
    if (r->info.absolute_form && !authority_matches_host(r)) {
        fail(c, 400, "CONNECTION_BAD_REQUEST", "The request target names another host than Host");
        return false;
    }
    r->started = ev_now(kx_srv->loop);
    r->is_head = r->method_len == 4 && memcmp(r->method, "HEAD", 4) == 0;
    r->accept_gzip = accepts_gzip(kx_http_header(r, "Accept-Encoding"));
    take_origin(r);
    take_correlation_id(r, cfg);
    r->keep_alive = r->info.keep_alive && !kx_srv->draining;
    c->gen++;
    return begin_body(c);
}

static void on_body_data(void *ud, const char *p, size_t n)
{
    kx_buf_append(ud, p, n);
}

static bool process_body(kx_conn_t *c)
{
    kx_request_t *r = c->req;
    if (c->rbuf.len == 0) return false;
    if (r->info.transfer_encoding == KX_TE_CHUNKED) {
        size_t used = 0;
        int rc = kx_chunk_decoder_feed(&r->chunk, c->rbuf.data, c->rbuf.len, &used, on_body_data, &r->body);
        kx_buf_consume(&c->rbuf, used);
        if (rc == KX_ELIMIT) {
            fail(c, 413, "CONNECTION_PAYLOAD_TOO_LARGE",
                 "Payload Too Large \xe2\x80\x94 body exceeds the byte limit");
            return false;
        }
        if (rc != KX_OK) {
            fail(c, 400, "CONNECTION_BAD_REQUEST", "Malformed chunked body");
            return false;
        }
        if (!kx_chunk_decoder_done(&r->chunk)) {
            kx_conn_set_timer(c, kx_srv->cfg->body_timeout_ms);
            return false;
        }
    } else {
        size_t take = c->rbuf.len < r->body_left ? c->rbuf.len : (size_t)r->body_left;
        kx_buf_append(&r->body, c->rbuf.data, take);
        kx_buf_consume(&c->rbuf, take);
        r->body_left -= take;
        if (r->body_left > 0) {
            kx_conn_set_timer(c, kx_srv->cfg->body_timeout_ms);
            return false;
        }
    }
    start_dispatch(c);
    return true;
}

/* ---- the connection handler ---------------------------------------------------------- */

static const kx_conn_handler_t http_handler;

/* Whether this connection is still HTTP's (an upgrade hands it to another protocol). */
static bool still_http(const kx_conn_t *c)
{
    return !c->closed && c->handler == &http_handler;
}

static void http_on_read(kx_conn_t *c)
{
    /* Re-read c->req each turn: a request answered at once (dispatch) is released. */
    while (still_http(c)) {
        bool progressed = false;
        if (!c->req) {
            if (c->rbuf.len == 0) break;
            request_new(c);
        }
        if (c->req->state == KX_HTTP_HEAD) {
            if (kx_conn_unsent(c) > PIPELINE_WBUF_MAX) break; /* backpressure */
            progressed = process_head(c);
        } else if (c->req->state == KX_HTTP_BODY) {
            progressed = process_body(c);
        }
        if (!progressed) break;
    }
    if (!still_http(c)) return;
    /* While a request is in flight, keep reading (an early EOF is noticed, and toggling the
     * watcher costs an epoll_ctl per request) until pipelined bytes pile up past the cap;
     * then they wait in the kernel. A client that pipelines without reading its answers is
     * throttled the same way, and on_drained resumes once the answers drained. */
    bool throttled = kx_conn_unsent(c) > PIPELINE_WBUF_MAX || c->rbuf.len >= PIPELINE_RBUF_MAX;
    bool want = (c->req && c->req->state == KX_HTTP_BODY) || !throttled;
    if (want != c->reading) kx_conn_want_read(c, want);
}

static void http_on_drained(kx_conn_t *c)
{
    if (c->req && c->req->out.open) {
        kx_http_output_drained(c);
        return;
    }
    /* A next request that was waiting on backpressure goes on. */
    if (!c->req || c->req->state == KX_HTTP_HEAD) kx_conn_kick(c);
    if (!c->closed && !c->req) kx_conn_trim(c); /* idle: its written answers need no buffer */
}

static void http_on_timeout(kx_conn_t *c)
{
    kx_request_t *r = c->req;
    if (!r) { /* idle keep-alive (or never sent a byte): nothing is lost by closing */
        kx_conn_close(c);
    } else if (r->state == KX_HTTP_HEAD && r->timer_is_head && c->rbuf.len > 0) {
        /* Slowloris: the head did not arrive in time. */
        kx_http_send_error(c, 408, "CONNECTION_REQUEST_TIMEOUT", "Request head not received in time",
                           KX_R_CLOSE);
    } else if (r->state == KX_HTTP_BODY) {
        kx_http_send_error(c, 408, "CONNECTION_REQUEST_TIMEOUT", "Request body not received in time",
                           KX_R_CLOSE);
    } else if (r->state != KX_HTTP_BUSY) { /* BUSY: the action timeout owns this phase */
        kx_conn_close(c);
    }
}

static void http_on_close(kx_conn_t *c)
{
    kx_http_output_closed(c);
}

static void http_on_free(kx_conn_t *c)
{
    kx_http_detach(c);
}

static bool http_is_idle(const kx_conn_t *c)
{
    return (!c->req || c->req->state == KX_HTTP_HEAD) && c->rbuf.len == 0;
}

static const kx_conn_handler_t http_handler = {
    .name = "http",
    .on_read = http_on_read,
    .on_drained = http_on_drained,
    .on_timeout = http_on_timeout,
    .on_close = http_on_close,
    .on_free = http_on_free,
    .is_idle = http_is_idle,
};

void kx_http_attach(kx_conn_t *c)
{
    /* No request yet: one is taken at the first byte (http_on_read). */
    c->req = NULL;
    kx_conn_set_handler(c, &http_handler);
    kx_conn_want_read(c, true);
    kx_conn_set_timer(c, kx_srv->cfg->header_timeout_ms);
}

void kx_http_detach(kx_conn_t *c)
{
    request_release(c);
}

void kx_http_request_done(kx_conn_t *c)
{
    if (c->closed) return;
    kx_request_t *r = c->req;
    if (r->status)
        kx_metrics_http(r->method, r->method_len, r->metrics_route, r->status,
                        r->started > 0 ? ev_time() - r->started : -1);
    if (!r->keep_alive || kx_srv->draining) c->close_after_flush = true;
    kx_conn_flush(c);
    if (c->closed || c->close_after_flush) return;
    if (c->rbuf.len == 0) {
        /* Idle until the next request: the connection keeps no request and, once its answer
         * is written, no buffer (kx_conn_trim; on_drained trims what is written later). */
        request_release(c);
        kx_conn_trim(c);
    } else { /* pipelined bytes wait: the next request reuses this one */
        r->state = KX_HTTP_HEAD;
        request_reset(r);
        r->timer_is_head = false;
    }
    kx_conn_set_timer(c, kx_srv->cfg->keepalive_timeout_ms);
    kx_conn_kick(c); /* pipelined bytes may be waiting; the running reader takes them itself */
}

void kx_http_refuse_busy(int fd)
{
    /* Over the connection cap: answer and close, never queue. One best-effort send: a client
     * that cannot take ~1 KiB right away just sees the close. */
    kx_buf_t out = KX_BUF_INIT;
    kx_http_error_bytes(503, "CONNECTION_SERVER_BUSY", "Server is at its connection limit",
                        "Retry-After: 1\r\n", &out);
    (void)send(fd, out.data, out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    kx_buf_free(&out);
    close(fd);
    kx_metrics_http(NULL, 0, KX_METRICS_ROUTE_UNKNOWN, 503, -1); /* unread: method "other" */
}
