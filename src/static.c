/* static.c — serving a static file once static_path.c has resolved it safely: ETag /
 * Last-Modified / 304, Content-Type, Cache-Control, small files from memory (gzip-able),
 * large ones streamed through the connection's transport. */
#include "static.h"
#include "static_path.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define IN_MEMORY_MAX (1024 * 1024)

/* If-None-Match uses the weak comparison (RFC 9110 §13.1.2): W/"x" and "x" match. */
static bool etag_matches(const char *v, size_t n, const char *etag)
{
    if (n >= 2 && v[0] == 'W' && v[1] == '/') v += 2, n -= 2;
    if (etag[0] == 'W' && etag[1] == '/') etag += 2;
    return n == strlen(etag) && memcmp(v, etag, n) == 0;
}

static bool not_modified(const kx_request_t *r, const char *etag, time_t mtime)
{
    const kx_header_t *inm = kx_http_header(r, "If-None-Match");
    if (inm) return etag_matches(inm->value, inm->value_len, etag);
    const kx_header_t *ims = kx_http_header(r, "If-Modified-Since");
    time_t t;
    if (ims && kx_http_date_parse(ims->value, ims->value_len, &t) == KX_OK) return mtime <= t;
    return false;
}

static bool read_all(int fd, char *buf, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t r = pread(fd, buf + off, n - off, (off_t)off);
        if (r <= 0) return false;
        off += (size_t)r;
    }
    return true;
}

void kx_static_serve(kx_conn_t *c, int root_fd, const char *path, size_t len, bool cache)
{
    const kx_config_t *cfg = kx_srv->cfg;
    int fd = -1;
    struct stat st;
    char rel[4096];
    switch (kx_static_open(root_fd, path, len, &fd, &st, rel, sizeof rel)) {
    case KX_STATIC_OK: break;
    case KX_STATIC_FORBIDDEN: kx_http_send_error(c, 403, "CONNECTION_FORBIDDEN", "Forbidden", 0); return;
    case KX_STATIC_BAD_REQUEST:
        kx_http_send_error(c, 400, "CONNECTION_BAD_REQUEST", "Bad request path", 0);
        return;
    case KX_STATIC_ERROR:
        kx_http_send_error(c, 500, "CONNECTION_SERVER_ERROR", "Cannot open file", 0);
        return;
    default: kx_http_send_error(c, 404, "CONNECTION_ACTION_NOT_FOUND", "Not found", 0); return;
    }
    kx_buf_t h = KX_BUF_INIT;
    const char *mime = kx_static_mime(rel);
    size_t size = (size_t)st.st_size;
    if (cfg->static_etag) {
        char etag[64] = "", date[64];
        /* The gzip variant is another representation: its validator is weak (as nginx does). */
        bool gz = size <= IN_MEMORY_MAX && kx_http_will_gzip(c, mime, size);
        if (gz) memcpy(etag, "W/", 3);
        kx_static_etag(&st, etag + (gz ? 2 : 0), sizeof etag - 2);
        kx_http_date_format(st.st_mtime, date, sizeof date);
        kx_buf_printf(&h, "ETag: %s\r\nLast-Modified: %s\r\n", etag, date);
        if (not_modified(c->req, etag, st.st_mtime)) {
            close(fd);
            kx_http_send(c, 304, NULL, h.data, h.len, "", 0, 0);
            kx_buf_free(&h);
            return;
        }
    }
    if (cache && cfg->static_cache_control[0])
        kx_buf_printf(&h, "Cache-Control: %s\r\n", cfg->static_cache_control);
    if (c->req->is_head && size > IN_MEMORY_MAX) {
        close(fd);
        kx_http_send(c, 200, mime, h.data, h.len, NULL, size, KX_R_BODY_FOLLOWS);
    } else if (size <= IN_MEMORY_MAX) {
        /* HEAD reads the file too, so its headers (gzip, length) are exactly GET's. */
        char *body = kx_xmalloc(size + 1);
        bool ok = read_all(fd, body, size);
        close(fd);
        if (ok) kx_http_send(c, 200, mime, h.data, h.len, body, size, 0);
        else kx_http_send_error(c, 500, "CONNECTION_SERVER_ERROR", "Cannot read file", KX_R_CLOSE);
        free(body);
    } else {
        kx_conn_sendfile(c, fd, st.st_size);
        kx_http_send(c, 200, mime, h.data, h.len, NULL, size, KX_R_BODY_FOLLOWS);
    }
    kx_buf_free(&h);
}
