/* ws-rt.c — the round-trip client of bench/websocket.sh: N WebSockets, each sending the `status`
 * action and waiting for its reply before the next (one in flight per socket, as wrk keeps one
 * request in flight per connection), for a fixed time.
 *
 * Why C and not bench/ws-load.js (`actions` mode, still there as BENCH_WS_RT_CLIENT=node): the
 * round-trip row compares keryx's CPU per WebSocket round trip with its CPU per HTTP request,
 * and the HTTP side is driven by wrk (C). A Node `ws` client on CPU 1 was itself ~95% busy and
 * could not keep keryx saturated; a server that is not saturated finds fewer ready sockets per
 * epoll_wait and spends more CPU per operation, so the row measured the client. Here a round
 * trip costs the client one read(2), a prefix compare and one write(2).
 *
 *   ws-rt --url ws://127.0.0.1:P/ --keryx-pid PID [--sockets 50] [--duration-ms 10000]
 *         [--warmup-ms 1000]
 *
 * (the options of `ws-load.js actions`; the URL must be ws://<IPv4>:<port>/...)
 *
 * 1. Opens --sockets sockets at once; each upgrades (GET with a random Sec-WebSocket-Key; the
 *    reply must be `HTTP/1.1 101` with a Sec-WebSocket-Accept header) and then sends
 *    {"messageType":"action","action":"status","messageId":<n>} as a masked text frame, <n>
 *    counting up over all sockets; each reply must carry "messageId":<n> and "response" (keryx
 *    writes {"messageId":<n>,"response":{ first: compared as a prefix, searched otherwise);
 *    then the socket sends the next one at once.
 * 2. The first --warmup-ms (from the start, handshakes included) are not counted; then replies
 *    are counted for --duration-ms, with their send-to-reply times, and keryx's CPU time
 *    (/proc/<pid>/task/<tid>/schedstat: ns on CPU, every thread) is read at both ends.
 *
 * Prints one JSON object on stdout (the fields of `ws-load.js actions`); progress and errors on
 * stderr; exit status 1 when anything is not as expected: a refused upgrade, a socket closed or
 * failing, a reply that is not the response awaited, a socket without a reply for 5 s, every
 * socket not upgraded within 10 s, no reply in the measured window.
 *
 * Server frames: unmasked, 7-, 16- or 64-bit lengths, up to 1 MiB, split across reads or several
 * in one; pings answered with pongs.
 *
 *   cc -O2 -Wall -Wextra -Werror -o build/ws-rt bench/ws-rt.c      (websocket.sh does it) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ws-client.h"

#define RBUF (1 << 20)              /* a socket's read buffer: the handshake reply or one frame */
#define UPGRADE_TIMEOUT_MS 10000
#define REPLY_TIMEOUT_MS 5000

enum state { S_CONNECTING, S_HANDSHAKE, S_OPEN };

typedef struct {
    int fd;
    enum state state;
    char *rbuf;
    size_t rlen;
    long id;                        /* the messageId awaited (0: none) */
    double sent;                    /* when it was sent (CLOCK_MONOTONIC ms) */
} sock_t;

static struct {
    const char *host;
    int port, pid, n;
    long duration_ms, warmup_ms;
} O = { NULL, 0, 0, 50, 10000, 1000 };

static sock_t *S;
static int ep = -1;
static int upgraded;
static long next_id = 1;
static bool measuring;
static long count;                  /* replies in the measured window */
static double *lat;                 /* their send-to-reply times, ms */
static size_t lat_cap;
static uint64_t rng;

/* xorshift64*: masking keys and handshake keys (not security, only not constant). */
static uint32_t rand32(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545F4914F6CDD1DULL) >> 32);
}

/* ---- WebSocket frames ------------------------------------------------------------------------ */

/* A masked client frame (payload < 126 bytes: actions and pongs). */
static void send_frame(int fd, int opcode, const char *payload, size_t len)
{
    ws_send_frame(fd, opcode, payload, len, rand32());
}

static void send_action(int i)
{
    sock_t *s = &S[i];
    char msg[128];
    s->id = next_id++;
    int n = snprintf(msg, sizeof msg, "{\"messageType\":\"action\",\"action\":\"status\",\"messageId\":%ld}", s->id);
    s->sent = now_ms(CLOCK_MONOTONIC);
    send_frame(s->fd, 1, msg, (size_t)n);
}

/* Does p[0..len) hold "messageId":<id> (not followed by another digit) and "response"? */
static bool is_response(const char *p, size_t len, long id)
{
    char want[64];
    int wl = snprintf(want, sizeof want, "{\"messageId\":%ld,\"response\":", id);
    if (len >= (size_t)wl && memcmp(p, want, (size_t)wl) == 0) return true; /* keryx's order */
    wl = snprintf(want, sizeof want, "\"messageId\":%ld", id);
    const char *end = p + len;
    for (const char *q = p; (q = memmem(q, (size_t)(end - q), want, (size_t)wl)); q += wl)
        if (q + wl == end || q[wl] < '0' || q[wl] > '9') return memmem(p, len, "\"response\"", 10) != NULL;
    return false;
}

static void on_text(int i, const char *p, size_t len, double t)
{
    sock_t *s = &S[i];
    if (!s->id) die("socket %d: a text frame with no action in flight: %.*s", i, (int)(len < 300 ? len : 300), p);
    if (!is_response(p, len, s->id))
        die("socket %d: reply to %ld is not its response: %.*s", i, s->id, (int)(len < 300 ? len : 300), p);
    if (measuring) {
        if ((size_t)count == lat_cap) {
            lat_cap = lat_cap ? lat_cap * 2 : 1 << 20;
            lat = realloc(lat, lat_cap * sizeof *lat);
            if (!lat) die("out of memory");
        }
        lat[count++] = t - s->sent;
    }
    send_action(i);
}

/* Consumes complete frames from s->rbuf[0..rlen); keeps a partial one. */
static void on_frames(int i, double t)
{
    sock_t *s = &S[i];
    size_t off = 0, n, plen;
    int opcode;
    const char *payload;
    while ((n = ws_next_frame(i, s->fd, s->rbuf + off, s->rlen - off, RBUF, &opcode, &payload, &plen, rand32()))) {
        if (opcode == 1) on_text(i, payload, plen, t);
        off += n;
    }
    s->rlen -= off;
    if (s->rlen > 0 && off > 0) memmove(s->rbuf, s->rbuf + off, s->rlen);
}

static void on_handshake(int i)
{
    sock_t *s = &S[i];
    size_t head = ws_upgrade_head(i, s->rbuf, s->rlen, RBUF, NULL);
    if (!head) return;
    s->rlen -= head;
    memmove(s->rbuf, s->rbuf + head, s->rlen);
    s->state = S_OPEN;
    upgraded++;
    send_action(i);
}

static void on_readable(int i)
{
    sock_t *s = &S[i];
    for (;;) {
        size_t want = RBUF - s->rlen;
        ssize_t r = read(s->fd, s->rbuf + s->rlen, want);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
        if (r < 0) die("socket %d: read: %s", i, strerror(errno));
        if (r == 0) die("socket %d: keryx closed the connection", i);
        double t = now_ms(CLOCK_MONOTONIC);
        s->rlen += (size_t)r;
        if (s->state == S_HANDSHAKE) on_handshake(i);
        if (s->state == S_OPEN) on_frames(i, t);
        if ((size_t)r < want) break; /* less than asked: drained (saves a read ending in EAGAIN) */
    }
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 16 random bytes in base64: 24 characters, the last two "==". */
static void ws_key(char out[25])
{
    unsigned char b[18] = { 0 };
    for (int k = 0; k < 16; k++) b[k] = (unsigned char)rand32();
    for (int k = 0; k < 6; k++) {
        uint32_t v = ((uint32_t)b[3 * k] << 16) | ((uint32_t)b[3 * k + 1] << 8) | b[3 * k + 2];
        out[4 * k] = B64[(v >> 18) & 63];
        out[4 * k + 1] = B64[(v >> 12) & 63];
        out[4 * k + 2] = B64[(v >> 6) & 63];
        out[4 * k + 3] = B64[v & 63];
    }
    out[22] = out[23] = '=';
    out[24] = '\0';
}

static void on_writable(int i)
{
    sock_t *s = &S[i];
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) die("socket %d: connect: %s", i, strerror(err));
    char req[512], key[25];
    ws_key(key);
    int n = snprintf(req, sizeof req,
                     "GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     O.host, O.port, key);
    write_all(s->fd, req, (size_t)n, "handshake");
    s->state = S_HANDSHAKE;
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev) != 0) die("epoll_ctl: %s", strerror(errno));
}

static void start_one(int i)
{
    int fd = tcp_connect(O.host, O.port, true);
    S[i].fd = fd;
    S[i].state = S_CONNECTING;
    S[i].rbuf = malloc(RBUF);
    if (!S[i].rbuf) die("out of memory");
    struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = (uint32_t)i };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl: %s", strerror(errno));
}

/* Runs the event loop until the deadline (CLOCK_MONOTONIC ms). */
static void loop_until(double deadline)
{
    struct epoll_event evs[1024];
    for (;;) {
        double left = deadline - now_ms(CLOCK_MONOTONIC);
        if (left <= 0) return;
        int n = epoll_wait(ep, evs, 1024, (int)left + 1);
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            if (S[i].state == S_CONNECTING) on_writable(i);
            else on_readable(i);
        }
    }
}

/* Runs until every socket is upgraded (or dies after UPGRADE_TIMEOUT_MS). */
static void loop_until_upgraded(double t0)
{
    while (upgraded < O.n) {
        if (now_ms(CLOCK_MONOTONIC) - t0 > UPGRADE_TIMEOUT_MS)
            die("only %d of %d sockets upgraded after %d ms", upgraded, O.n, UPGRADE_TIMEOUT_MS);
        loop_until(now_ms(CLOCK_MONOTONIC) + 10);
    }
}

/* As ws-load.js: the value at floor(p% of n), sorted. */
static double percentile(const double *sorted, long n, double p)
{
    if (n == 0) return 0;
    long k = (long)(p / 100 * (double)n);
    return sorted[k < n - 1 ? k : n - 1];
}

/* ---- main ------------------------------------------------------------------------------------- */

static long int_arg(const char *name, const char *v, long min)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || end == v || x < min || x > 100000000) die("--%s must be an integer >= %ld", name, min);
    return x;
}

/* ws://<IPv4>:<port>/...: host and port. */
static void parse_url(const char *url)
{
    static char host[64];
    const char *p = url + 5, *colon, *slash;
    if (strncmp(url, "ws://", 5) != 0 || !(colon = strchr(p, ':')) || (size_t)(colon - p) >= sizeof host)
        die("--url must be ws://<IPv4>:<port>/, not '%s'", url);
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    slash = strchr(colon, '/');
    char port[16];
    size_t pl = slash ? (size_t)(slash - colon - 1) : strlen(colon + 1);
    if (pl == 0 || pl >= sizeof port) die("--url must be ws://<IPv4>:<port>/, not '%s'", url);
    memcpy(port, colon + 1, pl);
    port[pl] = '\0';
    O.host = host;
    O.port = (int)int_arg("url's port", port, 1);
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc || strncmp(argv[i], "--", 2) != 0) die("bad argument '%s'", argv[i]);
        const char *k = argv[i] + 2, *v = argv[i + 1];
        if (!strcmp(k, "url")) parse_url(v);
        else if (!strcmp(k, "keryx-pid")) O.pid = (int)int_arg(k, v, 1);
        else if (!strcmp(k, "sockets")) O.n = (int)int_arg(k, v, 1);
        else if (!strcmp(k, "duration-ms")) O.duration_ms = int_arg(k, v, 1);
        else if (!strcmp(k, "warmup-ms")) O.warmup_ms = int_arg(k, v, 0);
        else die("unknown option --%s", k);
    }
    if (!O.host || !O.pid) die("--url and --keryx-pid are required");
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    rng = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL ^ (uint64_t)now_ms(CLOCK_REALTIME);
    if (!rng) rng = 1;
    S = calloc((size_t)O.n, sizeof *S);
    ep = epoll_create1(0);
    if (!S || ep < 0) die("setup failed");

    double t0 = now_ms(CLOCK_MONOTONIC);
    for (int i = 0; i < O.n; i++) start_one(i);
    loop_until_upgraded(t0);
    loop_until(t0 + (double)O.warmup_ms);

    double k0 = cpu_ns_of(O.pid), c0 = now_ms(CLOCK_PROCESS_CPUTIME_ID), m0 = now_ms(CLOCK_MONOTONIC);
    measuring = true;
    loop_until(m0 + (double)O.duration_ms);
    measuring = false;
    double m1 = now_ms(CLOCK_MONOTONIC), k1 = cpu_ns_of(O.pid), c1 = now_ms(CLOCK_PROCESS_CPUTIME_ID);
    double elapsed = m1 - m0;

    for (int i = 0; i < O.n; i++)
        if (m1 - S[i].sent > REPLY_TIMEOUT_MS)
            die("socket %d: no reply to %ld for %.0f ms", i, S[i].id, m1 - S[i].sent);
    if (count == 0) die("no action reply during the measured window");
    qsort(lat, (size_t)count, sizeof *lat, cmp_double);
    double kcpu = k1 - k0;
    note("%d sockets: %ld round trips in %.0f ms; keryx %.0f%% busy, client %.0f%% busy", O.n, count, elapsed,
         kcpu / 1e6 / elapsed * 100, (c1 - c0) / elapsed * 100);
    printf("{\"client\":\"c\",\"sockets\":%d,\"duration_ms\":%.3f,\"round_trips\":%ld,\"rps\":%.3f,\"p50_ms\":%.4f,"
           "\"p99_ms\":%.4f,\"keryx_cpu_us_per_op\":%.4f,\"keryx_busy_pct\":%.3f,\"client_busy_pct\":%.3f}\n",
           O.n, elapsed, count, (double)count / (elapsed / 1000), percentile(lat, count, 50),
           percentile(lat, count, 99), kcpu / 1000 / (double)count, kcpu / 1e6 / elapsed * 100,
           (c1 - c0) / elapsed * 100);
    fflush(stdout);
    /* Exit closes every socket (keryx sees N EOFs). */
    return 0;
}
