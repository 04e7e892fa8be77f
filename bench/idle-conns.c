/* idle-conns.c — the client of bench/memory.sh: many keep-alive HTTP connections that each
 * made one request and then sit idle, until told to close them all.
 *
 *   idle-conns --host H --port P [--connections 10000] [--concurrency 200] [--path /api/status]
 *
 * 1. Opens --connections TCP connections, at most --concurrency requests in flight; each sends
 *    one "GET <path> HTTP/1.1" (keep-alive) and reads the whole reply (a 200 with a
 *    Content-Length body; anything else is a failure).
 * 2. Prints "ready <n>" on stdout once every connection has its reply, and then does nothing
 *    at all (the connections are idle on both ends) until its stdin reaches end of file.
 * 3. Closes every connection, prints "closed <n>" and exits 0. Any failure (refused or reset
 *    connection, wrong reply, a connection the server closed while idle) exits 1 with a
 *    message on stderr.
 *
 * Why C: the bench measures the server's memory per idle connection; the client must neither
 * share the server's CPU much while connecting nor need a runtime (bench/ws-fanout.c does the
 * same for WebSockets). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF 4096 /* one status reply (~1.5 KiB: headers and a small JSON body) */
#define CONNECT_TIMEOUT_MS 60000

enum state { S_CONNECTING, S_READING, S_IDLE };

typedef struct {
    int fd;
    enum state st;
    size_t got;
    char buf[RBUF];
} conn_t;

static const char *host = "127.0.0.1";
static int port;
static int n_conns = 10000;
static int concurrency = 200;
static const char *path = "/api/status";
static char request[512];
static size_t request_len;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("idle-conns: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void start_conn(int ep, conn_t *c)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) fail("--host must be an IPv4 address, not %s", host);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) fail("socket: %s", strerror(errno));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)
        fail("connect: %s", strerror(errno));
    c->st = S_CONNECTING;
    c->got = 0;
    struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) fail("epoll_ctl: %s", strerror(errno));
}

/* Whether buf holds one complete 200 reply with a Content-Length body. */
static bool reply_complete(conn_t *c)
{
    c->buf[c->got] = '\0';
    char *end = strstr(c->buf, "\r\n\r\n");
    if (!end) return false;
    if (strncmp(c->buf, "HTTP/1.1 200", 12) != 0) fail("unexpected reply: %.40s", c->buf);
    const char *cl = strcasestr(c->buf, "\r\ncontent-length:");
    if (!cl || cl > end) fail("reply without Content-Length");
    size_t len = strtoul(cl + 17, NULL, 10);
    size_t total = (size_t)(end + 4 - c->buf) + len;
    if (c->got > total) fail("more bytes than one reply");
    return c->got == total;
}

/* Returns true once the connection has its reply. */
static bool step(int ep, conn_t *c, uint32_t events)
{
    if (c->st == S_CONNECTING) {
        int err = 0;
        socklen_t sl = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl);
        if (err) fail("connect: %s", strerror(err));
        if (send(c->fd, request, request_len, MSG_NOSIGNAL) != (ssize_t)request_len)
            fail("send: %s", strerror(errno));
        c->st = S_READING;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) fail("epoll_ctl: %s", strerror(errno));
        return false;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return false;
    ssize_t r = read(c->fd, c->buf + c->got, RBUF - 1 - c->got);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return false;
    if (r <= 0) fail("connection closed before its reply (%s)", r ? strerror(errno) : "EOF");
    c->got += (size_t)r;
    if (!reply_complete(c)) {
        if (c->got >= RBUF - 1) fail("reply larger than %d bytes", RBUF);
        return false;
    }
    c->st = S_IDLE;
    /* Still watched: a server that closes an idle connection is reported, not missed. */
    struct epoll_event ev = { .events = EPOLLRDHUP, .data.ptr = c };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) fail("epoll_ctl: %s", strerror(errno));
    return true;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--host")) host = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--connections")) n_conns = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--concurrency")) concurrency = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--path")) path = argv[i + 1];
        else fail("unknown option %s", argv[i]);
    }
    if (port <= 0 || n_conns <= 0 || concurrency <= 0) fail("usage: idle-conns --host H --port P [--connections N]");
    int rl = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: idle-conns\r\n\r\n",
                      path, host, port);
    if (rl < 0 || (size_t)rl >= sizeof request) fail("--path too long");
    request_len = (size_t)rl;

    conn_t *conns = calloc((size_t)n_conns, sizeof *conns);
    if (!conns) fail("out of memory");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) fail("epoll_create1: %s", strerror(errno));
    int started = 0, done = 0;
    long deadline = now_ms() + CONNECT_TIMEOUT_MS;
    struct epoll_event evs[256];
    while (done < n_conns) {
        while (started < n_conns && started - done < concurrency) start_conn(ep, &conns[started++]);
        if (now_ms() > deadline) fail("only %d of %d connections got a reply in %d ms", done, n_conns, CONNECT_TIMEOUT_MS);
        int n = epoll_wait(ep, evs, 256, 1000);
        if (n < 0 && errno != EINTR) fail("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c->st == S_IDLE) fail("the server closed an idle connection");
            if (step(ep, c, evs[i].events)) done++;
        }
    }
    printf("ready %d\n", done);
    fflush(stdout);

    /* Idle until stdin ends; an idle connection the server closes is a failure. */
    struct pollfd pf[2] = { { .fd = 0, .events = POLLIN }, { .fd = ep, .events = POLLIN } };
    for (;;) {
        if (poll(pf, 2, -1) < 0 && errno != EINTR) fail("poll: %s", strerror(errno));
        if (pf[1].revents) fail("the server closed an idle connection");
        if (pf[0].revents) {
            char b[64];
            if (read(0, b, sizeof b) <= 0) break;
        }
    }
    for (int i = 0; i < n_conns; i++) close(conns[i].fd);
    printf("closed %d\n", n_conns);
    return 0;
}
