/* conn.c — listening socket, connections, buffered writes, the plain-socket transport and
 * per-connection timers (see server.h). */
#include "server.h"
#include "log.h"
#include "ws.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

kx_server_t *kx_srv;

#define READ_CHUNK 16384
#define FILE_CHUNK 65536

/* ---- plain transport --------------------------------------------------------------------- */

static ssize_t plain_read(kx_conn_t *c, void *buf, size_t n)
{
    ssize_t r = read(c->fd, buf, n);
    if (r >= 0) return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return KX_EAGAIN;
    return KX_EIO;
}

static ssize_t plain_write(kx_conn_t *c, const void *buf, size_t n)
{
    ssize_t r = send(c->fd, buf, n, MSG_NOSIGNAL);
    if (r >= 0) return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return KX_EAGAIN;
    return KX_EIO;
}

static void plain_shutdown(kx_conn_t *c)
{
    shutdown(c->fd, SHUT_WR);
}

const kx_transport_t kx_transport_plain = { plain_read, plain_write, plain_shutdown };

/* ---- lifetime ---------------------------------------------------------------------------- */

static void conn_free(kx_conn_t *c)
{
    kx_buf_free(&c->rbuf);
    kx_buf_free(&c->wbuf);
    if (c->req) {
        kx_buf_free(&c->req->body);
        free(c->req->head);
        free(c->req);
    }
    free(c);
}

void kx_conn_ref(kx_conn_t *c)
{
    c->refs++;
}

void kx_conn_unref(kx_conn_t *c)
{
    if (--c->refs == 0) conn_free(c);
}

void kx_conn_close(kx_conn_t *c)
{
    if (c->closed) return;
    kx_server_t *s = kx_srv;
    c->closed = true;
    if (c->ws) kx_ws_on_close(c);
    ev_io_stop(s->loop, &c->rio);
    ev_io_stop(s->loop, &c->wio);
    ev_timer_stop(s->loop, &c->timer);
    if (c->send_fd >= 0) close(c->send_fd);
    c->send_fd = -1;
    close(c->fd);
    c->fd = -1;
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->n_conns--;
    /* Resume accepting if the cap had paused us. */
    if (!s->draining && s->listen_fd >= 0 && !ev_is_active(&s->listen_io))
        ev_io_start(s->loop, &s->listen_io);
    kx_conn_unref(c);
}

/* ---- timers ------------------------------------------------------------------------------ */

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    kx_conn_t *c = w->data;
    /* Sending may close (and so free) the connection: hold it until we are done with it. */
    kx_conn_ref(c);
    if (c->state == KX_CONN_HEAD && c->timer_is_head && c->rbuf.len > 0) {
        /* Slowloris: the head did not arrive in time. */
        kx_http_send_error(c, 408, "CONNECTION_REQUEST_TIMEOUT", "Request head not received in time",
                           KX_R_CLOSE);
    } else if (c->state == KX_CONN_BODY) {
        kx_http_send_error(c, 408, "CONNECTION_REQUEST_TIMEOUT", "Request body not received in time",
                           KX_R_CLOSE);
    } else if (c->state == KX_CONN_WS) {
        /* Idle past WS_IDLE_TIMEOUT_MS: say goodbye; if the close reply never comes within
         * the grace period (second expiry), drop the socket. */
        if (c->ws && !kx_ws_closing(c)) kx_ws_close(c, 1001, "Idle timeout");
        else kx_conn_close(c);
    } else if (c->state != KX_CONN_BUSY) { /* BUSY: the action timeout owns this phase */
        kx_conn_close(c);
    }
    kx_conn_unref(c);
}

void kx_conn_set_timer(kx_conn_t *c, int64_t ms)
{
    if (c->closed) return; /* a closed connection must not leave a timer behind */
    ev_timer_stop(kx_srv->loop, &c->timer);
    if (ms <= 0) return;
    ev_timer_set(&c->timer, (ev_tstamp)ms / 1000.0, 0.);
    ev_timer_start(kx_srv->loop, &c->timer);
}

/* ---- writing ----------------------------------------------------------------------------- */

static bool fill_from_file(kx_conn_t *c)
{
    if (c->send_fd < 0 || c->send_left <= 0) return false;
    size_t n = c->send_left < FILE_CHUNK ? (size_t)c->send_left : FILE_CHUNK;
    kx_buf_reserve(&c->wbuf, n);
    ssize_t r = read(c->send_fd, c->wbuf.data + c->wbuf.len, n);
    if (r <= 0) {
        /* The file shrank under us: the promised length cannot be met, so close. */
        close(c->send_fd);
        c->send_fd = -1;
        c->send_left = 0;
        c->keep_alive = false;
        c->state = KX_CONN_CLOSING;
        return false;
    }
    c->wbuf.len += (size_t)r;
    c->send_left -= r;
    if (c->send_left == 0) {
        close(c->send_fd);
        c->send_fd = -1;
    }
    return true;
}

static void flush(kx_conn_t *c)
{
    for (;;) {
        if (c->wpos == c->wbuf.len) {
            kx_buf_reset(&c->wbuf);
            c->wpos = 0;
            if (!fill_from_file(c)) break;
        }
        ssize_t w = c->tp->write(c, c->wbuf.data + c->wpos, c->wbuf.len - c->wpos);
        if (w == KX_EAGAIN) {
            ev_io_start(kx_srv->loop, &c->wio);
            return;
        }
        if (w < 0) {
            kx_conn_close(c);
            return;
        }
        c->wpos += (size_t)w;
    }
    ev_io_stop(kx_srv->loop, &c->wio);
    if (c->state == KX_CONN_CLOSING) {
        kx_conn_close(c);
        return;
    }
}

void kx_conn_write(kx_conn_t *c, const void *p, size_t n)
{
    if (c->closed) return;
    kx_buf_append(&c->wbuf, p, n);
}

void kx_conn_sendfile(kx_conn_t *c, int fd, off_t len)
{
    if (c->closed || len <= 0) {
        close(fd);
        return;
    }
    c->send_fd = fd;
    c->send_left = len;
}

void kx_conn_flush(kx_conn_t *c)
{
    if (!c->closed) flush(c);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    kx_conn_t *c = w->data;
    kx_conn_ref(c);
    flush(c);
    /* A fully flushed connection whose next request was waiting on backpressure resumes. */
    if (!c->closed && c->wpos == c->wbuf.len && c->send_fd < 0 && c->state == KX_CONN_HEAD)
        kx_http_on_readable(c);
    kx_conn_unref(c);
}

/* ---- reading ----------------------------------------------------------------------------- */

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    kx_conn_t *c = w->data;
    kx_buf_reserve(&c->rbuf, READ_CHUNK);
    ssize_t r = c->tp->read(c, c->rbuf.data + c->rbuf.len, READ_CHUNK);
    if (r == KX_EAGAIN) return;
    if (r <= 0) {
        kx_conn_close(c);
        return;
    }
    c->rbuf.len += (size_t)r;
    c->rbuf.data[c->rbuf.len] = '\0';
    kx_conn_ref(c);
    if (c->ws) kx_ws_on_readable(c);
    else kx_http_on_readable(c);
    kx_conn_unref(c);
}

/* ---- accepting --------------------------------------------------------------------------- */

static void peer_to_string(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
    if (ss->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, (socklen_t)cap);
    } else if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) inet_ntop(AF_INET, &a->s6_addr[12], buf, (socklen_t)cap);
        else inet_ntop(AF_INET6, a, buf, (socklen_t)cap);
    } else {
        snprintf(buf, cap, "unknown-IP");
    }
}

static void refuse_busy(int fd)
{
    /* Over the connection cap: answer and close (SPEC §9.3), never queue. One best-effort
     * send: a client that cannot take ~1 KiB right away just sees the close. */
    kx_buf_t out = KX_BUF_INIT;
    kx_http_error_bytes(503, "CONNECTION_SERVER_BUSY", "Server is at its connection limit",
                        "Retry-After: 1\r\n", &out);
    (void)send(fd, out.data, out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    kx_buf_free(&out);
    close(fd);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    kx_server_t *s = w->data;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: free the spare, accept-and-drop one, re-arm the spare so
                 * the listener does not spin on a connection it can never take. */
                kx_log_warn("out of file descriptors: refusing a connection");
                if (s->spare_fd >= 0) close(s->spare_fd);
                int tmp = accept(s->listen_fd, NULL, NULL);
                if (tmp >= 0) close(tmp);
                s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            }
            return;
        }
        if (s->draining) {
            close(fd);
            continue;
        }
        if (s->n_conns >= s->cfg->max_connections) {
            refuse_busy(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char peer[64];
        peer_to_string(&ss, peer, sizeof peer);
        kx_conn_open(s, fd, &kx_transport_plain, peer);
    }
}

kx_conn_t *kx_conn_open(kx_server_t *s, int fd, const kx_transport_t *tp, const char *peer_ip)
{
    kx_conn_t *c = kx_xcalloc(1, sizeof *c);
    c->req = kx_xcalloc(1, sizeof *c->req);
    c->fd = fd;
    c->tp = tp;
    c->send_fd = -1;
    c->refs = 1;
    c->state = KX_CONN_HEAD;
    snprintf(c->peer_ip, sizeof c->peer_ip, "%s", peer_ip);
    ev_io_init(&c->rio, on_readable, fd, EV_READ);
    ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
    ev_init(&c->timer, on_timer);
    c->rio.data = c->wio.data = c->timer.data = c;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    c->reading = true;
    ev_io_start(s->loop, &c->rio);
    c->timer_is_head = true;
    kx_conn_set_timer(c, s->cfg->header_timeout_ms);
    return c;
}

int kx_listen_start(kx_server_t *s, char *err, size_t errcap)
{
    struct addrinfo hints = { 0 }, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof port, "%lld", (long long)s->cfg->web_port);
    int rc = getaddrinfo(s->cfg->web_host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errcap, "cannot resolve WEB_SERVER_HOST \"%s\": %s", s->cfg->web_host,
                 gai_strerror(rc));
        return KX_EINVAL;
    }
    int fd = -1;
    int saved = 0;
    /* Prefer IPv4 for "localhost" so curl/wrk on 127.0.0.1 reach us. */
    for (int pass = 0; pass < 2 && fd < 0; pass++) {
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            if ((pass == 0) != (ai->ai_family == AF_INET)) continue;
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) continue;
            int one = 1;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0) break;
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errcap, "cannot listen on %s:%s: %s", s->cfg->web_host, port, strerror(saved));
        return KX_EIO;
    }
    s->listen_fd = fd;
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ev_io_init(&s->listen_io, on_accept, fd, EV_READ);
    s->listen_io.data = s;
    ev_io_start(s->loop, &s->listen_io);
    return KX_OK;
}

int kx_listen_port(const kx_server_t *s)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(s->listen_fd, (struct sockaddr *)&ss, &sl) != 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

void kx_listen_stop(kx_server_t *s)
{
    if (s->listen_fd < 0) return;
    ev_io_stop(s->loop, &s->listen_io);
    close(s->listen_fd);
    s->listen_fd = -1;
}
