/* listen.c — the listening socket and the accept loop (see listen.h). */
#include "listen.h"
#include "log.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 1024
#define ACCEPTS_PER_WAKEUP 64 /* bounds one wakeup's work so accepting cannot starve I/O */

struct kx_listener {
    int fd;
    int spare_fd; /* closed to accept-and-drop when out of fds */
    ev_io io;
    kx_listen_opts_t opts;
    kx_server_t *srv;
};

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

/* Out of descriptors: free the spare, accept-and-drop one, re-arm the spare so the listener
 * does not spin on a connection it can never take. */
static void shed_one(struct kx_listener *l)
{
    kx_log_warn("out of file descriptors: refusing a connection");
    if (l->spare_fd >= 0) close(l->spare_fd);
    int tmp = accept(l->fd, NULL, NULL);
    if (tmp >= 0) close(tmp);
    l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void adopt(struct kx_listener *l, int fd, const struct sockaddr_storage *ss)
{
    kx_server_t *s = l->srv;
    if (s->draining) {
        close(fd);
        return;
    }
    char peer[64];
    peer_to_string(ss, peer, sizeof peer);
    int64_t per_ip = s->cfg->max_connections_per_ip;
    if (per_ip > 0 && kx_conn_count_from(peer) >= per_ip) {
        l->opts.refuse(fd);
        return;
    }
    if (s->n_conns >= s->cfg->max_connections) {
        /* One client must not hold every connection: another client's arrival closes an
         * idle connection of the biggest holder, and is refused only when there is none. */
        kx_conn_t *victim = kx_conn_evictable(s, peer);
        if (!victim) {
            l->opts.refuse(fd);
            return;
        }
        kx_log_info("connection cap reached: closing an idle connection of %s for %s", victim->peer_ip, peer);
        kx_conn_close(victim);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    kx_conn_t *c = kx_conn_open(s, fd, l->opts.transport, peer);
    l->opts.on_open(c);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct kx_listener *l = w->data;
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) shed_one(l);
            return;
        }
        adopt(l, fd, &ss);
    }
}

/* Prefers IPv4 for "localhost" so curl/wrk on 127.0.0.1 reach us. */
static int bind_first(struct addrinfo *res, int flags, int *saved)
{
    for (int pass = 0; pass < 2; pass++) {
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            if ((pass == 0) != (ai->ai_family == AF_INET)) continue;
            int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) continue;
            int one = 1;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (flags & KX_LISTEN_REUSEPORT) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
                ((flags & KX_LISTEN_DEFER) || listen(fd, LISTEN_BACKLOG) == 0))
                return fd;
            *saved = errno;
            close(fd);
        }
    }
    return -1;
}

int kx_listen_bind(const char *host, int port, int flags, char *err, size_t errcap)
{
    struct addrinfo hints = { 0 }, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0) {
        snprintf(err, errcap, "cannot resolve WEB_SERVER_HOST \"%s\": %s", host, gai_strerror(rc));
        return KX_EINVAL;
    }
    int saved = 0;
    int fd = bind_first(res, flags, &saved);
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errcap, "cannot listen on %s:%s: %s", host, ps, strerror(saved));
        return KX_EIO;
    }
    return fd;
}

int kx_listen_adopt(kx_server_t *s, int fd, const kx_listen_opts_t *opts, char *err, size_t errcap)
{
    /* A deferred socket starts listening here; for one already listening this changes nothing. */
    if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(err, errcap, "listening socket %d: %s", fd, strerror(errno));
        return KX_EIO;
    }
    struct kx_listener *l = kx_xcalloc(1, sizeof *l);
    l->fd = fd;
    l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    l->opts = *opts;
    l->srv = s;
    ev_io_init(&l->io, on_accept, fd, EV_READ);
    l->io.data = l;
    ev_io_start(s->loop, &l->io);
    s->listener = l;
    return KX_OK;
}

int kx_listen_start(kx_server_t *s, const kx_listen_opts_t *opts, char *err, size_t errcap)
{
    int fd = kx_listen_bind(s->cfg->web_host, (int)s->cfg->web_port, 0, err, errcap);
    if (fd < 0) return fd;
    return kx_listen_adopt(s, fd, opts, err, errcap);
}

int kx_listen_fd_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int kx_listen_port(const kx_server_t *s)
{
    return s->listener ? kx_listen_fd_port(s->listener->fd) : -1;
}

void kx_listen_stop(kx_server_t *s)
{
    struct kx_listener *l = s->listener;
    if (!l) return;
    ev_io_stop(s->loop, &l->io);
    close(l->fd);
    if (l->spare_fd >= 0) close(l->spare_fd);
    free(l);
    s->listener = NULL;
}
