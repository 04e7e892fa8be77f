/* response.c — response serialisation: status line, the headers every response carries
 * (security headers, X-SERVER-NAME, CORS, correlation id), gzip, whole and streamed bodies
 * (Content-Length, chunked, Server-Sent Events) with backpressure, and the C-side error
 * envelope. A response that ends hands the connection back to http.c (keep-alive or close).
 *
 * Per response the head's constant start (status line, Date, Content-Type and the static
 * headers) is one copy from a small cache, and a large body is lent to the write queue
 * (kx_conn_write_lent) rather than copied behind the head: both go out in one writev. */
#include "http.h"
#include "cors.h"
#include "log.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <zlib.h>

const char *kx_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* Decimal without printf: this runs for every response. */
static void append_uint(kx_buf_t *b, unsigned long long v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    kx_buf_append(b, tmp + i, sizeof tmp - i);
}

static void status_line(kx_buf_t *b, int status)
{
    kx_buf_append(b, "HTTP/1.1 ", 9);
    append_uint(b, (unsigned)status);
    kx_buf_append(b, " ", 1);
    kx_buf_puts(b, kx_http_reason(status));
    kx_buf_append(b, "\r\n", 2);
}

static void add_header(kx_buf_t *b, const char *name, const char *value)
{
    if (!value || !*value) return; /* an empty setting omits the header */
    kx_buf_puts(b, name);
    kx_buf_puts(b, ": ");
    kx_buf_puts(b, value);
    kx_buf_puts(b, "\r\n");
}

/* ---- the head's constant start ------------------------------------------------------------ */

/* "HTTP/1.1 <status> <reason>\r\nDate: …\r\nContent-Type: …\r\n<static headers>", and the
 * web CORS lines when they do not depend on the request (no Origin, or every origin allowed),
 * depend on the status, the content type, that choice and the second only: joined once per
 * key and rebuilt when the second changes. A few entries cover an app (JSON 200, errors, one
 * or two other types); a content type longer than HEAD_CTYPE_MAX is not cached. */
#define HEAD_CACHE 8
#define HEAD_CTYPE_MAX 96

typedef struct {
    int status; /* 0: empty */
    time_t when;
    bool has_ctype;
    bool cors;        /* the web CORS lines are included */
    bool vary_origin; /* what kx_cors_append said about them */
    size_t ctype_len;
    char ctype[HEAD_CTYPE_MAX];
    kx_buf_t bytes;
} head_entry_t;

static head_entry_t head_cache[HEAD_CACHE];
static unsigned head_victim;

void kx_response_init(kx_server_t *s)
{
    /* The static headers may have changed (a reload): every cached head start is stale. */
    for (size_t i = 0; i < HEAD_CACHE; i++) head_cache[i].status = 0;
    const kx_config_t *c = s->cfg;
    kx_buf_t b = KX_BUF_INIT;
    add_header(&b, "X-SERVER-NAME", c->process_name);
    add_header(&b, "Content-Security-Policy", c->sec_csp);
    add_header(&b, "X-Content-Type-Options", c->sec_content_type_options);
    add_header(&b, "X-Frame-Options", c->sec_frame_options);
    add_header(&b, "Strict-Transport-Security", c->sec_hsts);
    add_header(&b, "Referrer-Policy", c->sec_referrer_policy);
    free(s->static_headers);
    s->static_headers = b.data ? b.data : kx_xstrdup("");
    s->static_headers_len = b.len;
    kx_cors_mcp_free(&s->mcp_cors);
    kx_cors_mcp_init(&s->mcp_cors, c);
}

/* The Date header, formatted once per second. */
static const char *date_header_at(time_t now)
{
    static char buf[64];
    static time_t last;
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof buf, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        last = now;
    }
    return buf;
}

static const char *date_header(void)
{
    return date_header_at(time(NULL));
}

static void head_start_build(kx_buf_t *b, int status, const char *ctype, bool cors, bool *vary_origin,
                             time_t now)
{
    status_line(b, status);
    kx_buf_puts(b, date_header_at(now));
    if (ctype) add_header(b, "Content-Type", ctype);
    kx_buf_append(b, kx_srv->static_headers, kx_srv->static_headers_len);
    *vary_origin = false;
    if (cors) kx_cors_append(kx_srv->cfg, NULL, 0, b, vary_origin);
}

static void head_start(kx_buf_t *b, int status, const char *ctype, bool cors, bool *vary_origin)
{
    time_t now = time(NULL);
    size_t clen = ctype ? strlen(ctype) : 0;
    if (clen >= HEAD_CTYPE_MAX) {
        head_start_build(b, status, ctype, cors, vary_origin, now);
        return;
    }
    head_entry_t *e = NULL, *same = NULL;
    for (size_t i = 0; i < HEAD_CACHE; i++) {
        head_entry_t *h = &head_cache[i];
        if (h->status != status || h->cors != cors || h->has_ctype != (ctype != NULL) ||
            h->ctype_len != clen || memcmp(h->ctype, ctype ? ctype : "", clen) != 0)
            continue;
        if (h->when == now) {
            e = h;
            break;
        }
        same = h;
    }
    if (!e) {
        /* Rebuild the stale entry of this (status, type), else take the next slot in turn. */
        e = same ? same : &head_cache[head_victim++ % HEAD_CACHE];
        e->status = status;
        e->when = now;
        e->has_ctype = ctype != NULL;
        e->cors = cors;
        e->ctype_len = clen;
        if (clen) memcpy(e->ctype, ctype, clen);
        kx_buf_reset(&e->bytes);
        head_start_build(&e->bytes, status, ctype, cors, &e->vary_origin, now);
    }
    *vary_origin = e->vary_origin;
    kx_buf_append(b, e->bytes.data, e->bytes.len);
}

#define APPEND_LIT(b, s) kx_buf_append((b), (s), sizeof(s) - 1)

int kx_gzip(const char *in, size_t len, kx_buf_t *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    /* 15 + 16: zlib window with a gzip wrapper; level 5 is the usual speed/size balance. */
    if (deflateInit2(&zs, 5, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return KX_EIO;
    size_t bound = deflateBound(&zs, len);
    kx_buf_reserve(out, bound);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)(out->data + out->len);
    zs.avail_out = (uInt)bound;
    int rc = deflate(&zs, Z_FINISH);
    if (rc != Z_STREAM_END) {
        deflateEnd(&zs);
        return KX_EIO;
    }
    out->len += zs.total_out;
    out->data[out->len] = '\0';
    deflateEnd(&zs);
    return KX_OK;
}

static bool compressible(const char *ctype)
{
    static const char *skip[] = { "image/png",
                                  "image/jpeg",
                                  "image/gif",
                                  "image/webp",
                                  "image/avif",
                                  "image/bmp",
                                  "image/x-icon",
                                  "video/",
                                  "audio/",
                                  "application/zip",
                                  "application/gzip",
                                  "application/x-bzip2",
                                  "application/x-7z-compressed",
                                  "application/x-rar-compressed",
                                  "application/wasm",
                                  "font/woff" };
    if (!ctype) return false;
    for (size_t i = 0; i < KX_ARRAY_LEN(skip); i++)
        if (strncmp(ctype, skip[i], strlen(skip[i])) == 0) return false;
    return true;
}

bool kx_http_will_gzip(const kx_conn_t *c, const char *ctype, size_t len)
{
    const kx_config_t *cfg = kx_srv->cfg;
    return cfg->compression_enabled && c->req->accept_gzip && len > 0 &&
           len >= (size_t)cfg->compression_threshold && compressible(ctype);
}

/* Status line and headers. `length` is the Content-Length to announce, or -1 for none
 * (chunked, close-delimited, or a status without a body). */
static void write_head(kx_conn_t *c, int status, const char *ctype, const char *extra, size_t extra_len,
                       unsigned flags, bool gzipped, long long length, bool chunked)
{
    const kx_config_t *cfg = kx_srv->cfg;
    kx_request_t *r = c->req;
    kx_buf_t *b = &c->wbuf;
    r->status = status;
    bool cors = (flags & KX_R_CORS) && !r->origin_ambiguous;
    /* The MCP route never gets the web policy: its "*" would open /mcp to any page. */
    bool mcp = cors && kx_cors_mcp_route(&kx_srv->mcp_cors, r->path, r->path_len);
    /* Without an Origin, or with every origin allowed, the web CORS lines are constant. */
    bool cors_const = cors && !mcp && (!r->origin || cfg->origins_any);
    bool vary_origin = false;
    head_start(b, status, ctype, cors_const, &vary_origin);
    if (mcp)
        kx_cors_mcp_append(&kx_srv->mcp_cors, r->origin, r->origin_len, (flags & KX_R_PREFLIGHT) != 0, b,
                           &vary_origin);
    else if (cors && !cors_const) kx_cors_append(cfg, r->origin, r->origin_len, b, &vary_origin);
    if (vary_origin && gzipped) APPEND_LIT(b, "Vary: Origin, Accept-Encoding\r\n");
    else if (vary_origin) APPEND_LIT(b, "Vary: Origin\r\n");
    else if (gzipped) APPEND_LIT(b, "Vary: Accept-Encoding\r\n");
    if (gzipped) APPEND_LIT(b, "Content-Encoding: gzip\r\n");
    if (r->correlation_id[0]) {
        kx_buf_puts(b, cfg->correlation_header);
        APPEND_LIT(b, ": ");
        kx_buf_puts(b, r->correlation_id);
        APPEND_LIT(b, "\r\n");
    }
    if (extra && extra_len) kx_buf_append(b, extra, extra_len);
    /* The tail (length, framing, connection, blank line) is assembled here and appended once. */
    char tail[128];
    size_t n = 0;
#define TAIL_LIT(s) (memcpy(tail + n, (s), sizeof(s) - 1), n += sizeof(s) - 1)
    if (length >= 0) {
        TAIL_LIT("Content-Length: ");
        char digits[24];
        size_t i = sizeof digits;
        unsigned long long v = (unsigned long long)length;
        do {
            digits[--i] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        memcpy(tail + n, digits + i, sizeof digits - i);
        n += sizeof digits - i;
        TAIL_LIT("\r\n");
    }
    if (chunked) TAIL_LIT("Transfer-Encoding: chunked\r\n");
    if (!r->keep_alive) TAIL_LIT("Connection: close\r\n");
    else if (r->info.http_minor == 0) TAIL_LIT("Connection: keep-alive\r\n");
    TAIL_LIT("\r\n");
#undef TAIL_LIT
    kx_buf_append(b, tail, n);
}

static bool status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}


void kx_http_send_lent(kx_conn_t *c, int status, const char *ctype, const char *extra, size_t extra_len,
                       const char *body, size_t len, unsigned flags, kx_release_fn release, void *ud)
{
    if (c->closed) {
        if (release) release(ud);
        return;
    }
    kx_request_t *r = c->req;
    if (flags & KX_R_CLOSE) r->keep_alive = false;

    kx_buf_t gz = KX_BUF_INIT;
    bool gzipped = false;
    bool try_gzip = !(flags & (KX_R_NOGZIP | KX_R_BODY_FOLLOWS)) && kx_http_will_gzip(c, ctype, len);
    if (try_gzip && kx_gzip(body, len, &gz) != KX_OK) {
        kx_buf_free(&gz); /* sent as it is */
    } else if (try_gzip) {
        /* The compressed copy is what goes out: the caller's body is no longer needed, and the
         * compressed one is ours to lend (free releases it). */
        if (release) release(ud);
        body = gz.data;
        len = gz.len;
        release = free;
        ud = gz.data;
        gzipped = true;
    }
    bool send_body = !r->is_head && status_has_body(status) && !(flags & KX_R_BODY_FOLLOWS) && len > 0;
    bool lend = send_body && release && len >= KX_HTTP_LEND_MIN;
    kx_buf_reserve(&c->wbuf, 1024 + extra_len + kx_srv->static_headers_len + (send_body && !lend ? len : 0));
    write_head(c, status, ctype, extra, extra_len, flags, gzipped,
               status == 204 || status == 304 ? -1 : (long long)len, false);
    if (lend) {
        kx_conn_write_lent(c, body, len, release, ud);
    } else {
        if (send_body) kx_buf_append(&c->wbuf, body, len);
        if (release) release(ud);
    }
    kx_http_request_done(c);
}

void kx_http_send(kx_conn_t *c, int status, const char *ctype, const char *extra, size_t extra_len,
                  const char *body, size_t len, unsigned flags)
{
    kx_http_send_lent(c, status, ctype, extra, extra_len, body, len, flags, NULL, NULL);
}

/* ---- streamed responses -------------------------------------------------------------------- */

void kx_http_begin(kx_conn_t *c, int status, const char *ctype, const char *extra, size_t extra_len,
                   kx_framing_t framing, uint64_t length, unsigned flags)
{
    if (c->closed) return;
    kx_request_t *r = c->req;
    bool http10 = r->info.http_minor == 0;
    if (flags & KX_R_CLOSE) r->keep_alive = false;
    /* HTTP/1.0 has no chunked coding: the end of the body is the end of the connection. */
    if (framing != KX_FRAMING_LENGTH && http10) r->keep_alive = false;
    memset(&r->out, 0, sizeof r->out);
    r->out.open = true;
    r->out.framing = framing;
    r->out.left = length;
    r->out.no_body = r->is_head || !status_has_body(status);
    bool chunked = framing != KX_FRAMING_LENGTH && !http10 && !r->out.no_body;
    kx_buf_t hdrs = KX_BUF_INIT;
    if (framing == KX_FRAMING_SSE) {
        /* Intermediaries must not hold events back. */
        ctype = "text/event-stream";
        if (extra) kx_buf_append(&hdrs, extra, extra_len);
        kx_buf_puts(&hdrs, "Cache-Control: no-cache\r\n");
        extra = hdrs.data;
        extra_len = hdrs.len;
    }
    long long announced = framing == KX_FRAMING_LENGTH && status_has_body(status) ? (long long)length : -1;
    write_head(c, status, ctype, extra, extra_len, flags, false, announced, chunked);
    kx_buf_free(&hdrs);
    kx_conn_flush(c);
}

/* Flushes and applies backpressure: pause past the mark, drop past the cap. */
static int after_write(kx_conn_t *c)
{
    kx_conn_flush(c);
    if (c->closed) return KX_ECLOSED;
    if (kx_conn_unsent(c) <= KX_HTTP_PAUSE_BYTES) return KX_OK;
    c->req->out.paused = true;
    return KX_EAGAIN;
}

static bool over_cap(kx_conn_t *c, size_t n)
{
    if (kx_conn_unsent(c) + n <= KX_CONN_OUTPUT_CAP) return false;
    kx_log_warn("client %s is not reading a streamed response: dropping it", c->peer_ip);
    kx_conn_close(c);
    return true;
}

static void append_chunk_size(kx_buf_t *b, size_t n)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = "0123456789abcdef"[n & 15];
        n >>= 4;
    } while (n);
    kx_buf_append(b, tmp + i, sizeof tmp - i);
    kx_buf_append(b, "\r\n", 2);
}

int kx_http_write_lent(kx_conn_t *c, const char *p, size_t n, kx_release_fn release, void *ud)
{
    int rc = KX_OK;
    kx_request_t *r = c->req;
    if (c->closed || !r || !r->out.open) rc = KX_ECLOSED;
    else if (r->out.framing == KX_FRAMING_LENGTH && n > r->out.left) rc = KX_EINVAL; /* the caller's bug */
    else if (r->out.framing == KX_FRAMING_LENGTH) r->out.left -= n;
    if (rc != KX_OK || n == 0 || r->out.no_body || over_cap(c, n)) {
        /* An empty chunk would end the body; HEAD, 204 and 304 send no body bytes. */
        if (release) release(ud);
        return rc != KX_OK ? rc : c->closed ? KX_ECLOSED : KX_OK;
    }
    bool chunked = r->out.framing != KX_FRAMING_LENGTH && r->info.http_minor != 0;
    if (chunked) append_chunk_size(&c->wbuf, n);
    if (release && n >= KX_HTTP_LEND_MIN) {
        kx_conn_write_lent(c, p, n, release, ud);
    } else {
        kx_buf_append(&c->wbuf, p, n);
        if (release) release(ud);
    }
    /* The chunk's CRLF is its own piece after the lent data, never concatenated to it. */
    if (chunked) kx_buf_append(&c->wbuf, "\r\n", 2);
    return after_write(c);
}

int kx_http_write(kx_conn_t *c, const char *p, size_t n)
{
    return kx_http_write_lent(c, p, n, NULL, NULL);
}

/* An SSE line ends at CRLF, LF or CR: each data line gets its own "data: " field. */
static void sse_data_lines(kx_buf_t *b, const char *p, size_t n)
{
    size_t i = 0;
    for (;;) {
        size_t e = i;
        while (e < n && p[e] != '\n' && p[e] != '\r') e++;
        kx_buf_append(b, "data: ", 6);
        kx_buf_append(b, p + i, e - i);
        kx_buf_append(b, "\n", 1);
        if (e >= n) return;
        if (p[e] == '\r' && e + 1 < n && p[e + 1] == '\n') e++;
        i = e + 1;
        if (i == n) return; /* a trailing line break ends the last line, it opens no new one */
    }
}

int kx_http_sse_event(kx_conn_t *c, const char *event, const char *data, size_t n)
{
    if (c->closed || !c->req || !c->req->out.open) return KX_ECLOSED;
    if (event && strpbrk(event, "\r\n")) return KX_EINVAL;
    kx_buf_t ev = KX_BUF_INIT;
    if (event && *event) {
        kx_buf_puts(&ev, "event: ");
        kx_buf_puts(&ev, event);
        kx_buf_puts(&ev, "\n");
    }
    sse_data_lines(&ev, data, n);
    kx_buf_append(&ev, "\n", 1);
    /* The event text is ours: a large one is handed to the queue (free releases it). */
    return kx_http_write_lent(c, ev.data, ev.len, free, ev.data);
}

void kx_http_end(kx_conn_t *c)
{
    if (c->closed || !c->req || !c->req->out.open) return;
    kx_request_t *r = c->req;
    bool chunked = r->out.framing != KX_FRAMING_LENGTH && r->info.http_minor != 0 && !r->out.no_body;
    if (chunked) kx_buf_append(&c->wbuf, "0\r\n\r\n", 5);
    if (r->out.framing == KX_FRAMING_LENGTH && r->out.left > 0 && !r->out.no_body) {
        /* Fewer bytes than announced: the client cannot frame the next response. */
        kx_log_warn("streamed response to %s ended %llu bytes short: closing", c->peer_ip,
                    (unsigned long long)r->out.left);
        r->keep_alive = false;
    }
    r->out.open = false;
    r->out.on_resume = NULL;
    kx_http_request_done(c);
}

void kx_http_on_resume(kx_conn_t *c, void (*cb)(kx_conn_t *c, void *ud), void *ud)
{
    if (!c->req) return;
    c->req->out.on_resume = cb;
    c->req->out.ud = ud;
}

/* The resume callback is the paused writer's only way out: a connection that closes (the
 * client left, or was dropped) must run it too, or the writer would wait for ever. */
void kx_http_output_closed(kx_conn_t *c)
{
    kx_request_t *r = c->req;
    if (!r || !r->out.open || !r->out.on_resume) return;
    void (*cb)(kx_conn_t *, void *) = r->out.on_resume;
    r->out.on_resume = NULL;
    r->out.paused = false;
    cb(c, r->out.ud);
}

void kx_http_output_drained(kx_conn_t *c)
{
    kx_request_t *r = c->req;
    if (!r->out.open || !r->out.paused) return;
    r->out.paused = false;
    if (r->out.on_resume) r->out.on_resume(c, r->out.ud);
}

static void envelope(kx_buf_t *body, const char *type, const char *message)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long long ms = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    kx_buf_puts(body, "{\"error\":{\"message\":\"");
    kx_buf_json_escape(body, message, strlen(message));
    kx_buf_printf(body, "\",\"type\":\"%s\",\"timestamp\":%lld}}", type, ms);
}

void kx_http_error_bytes(int status, const char *type, const char *message, const char *extra, kx_buf_t *out)
{
    kx_buf_t body = KX_BUF_INIT;
    envelope(&body, type, message);
    status_line(out, status);
    kx_buf_puts(out, date_header());
    kx_buf_puts(out, "Content-Type: " KX_JSON_CONTENT_TYPE "\r\n");
    kx_buf_append(out, kx_srv->static_headers, kx_srv->static_headers_len);
    if (extra) kx_buf_puts(out, extra);
    kx_buf_printf(out, "Content-Length: %zu\r\nConnection: close\r\n\r\n", body.len);
    kx_buf_append(out, body.data, body.len);
    kx_buf_free(&body);
}

void kx_http_send_error_with(kx_conn_t *c, int status, const char *type, const char *message,
                             const char *extra, unsigned flags)
{
    kx_buf_t body = KX_BUF_INIT;
    envelope(&body, type, message);
    /* A request that failed before its head was parsed has no method: never omit the body. */
    if (c->req->state != KX_HTTP_BUSY) c->req->is_head = false;
    kx_http_send(c, status, KX_JSON_CONTENT_TYPE, extra, extra ? strlen(extra) : 0, body.data, body.len,
                 flags | KX_R_CORS | KX_R_NOGZIP);
    kx_buf_free(&body);
}

void kx_http_send_error(kx_conn_t *c, int status, const char *type, const char *message, unsigned flags)
{
    kx_http_send_error_with(c, status, type, message, NULL, flags);
}
