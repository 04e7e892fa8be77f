/* ws-fanout.c — the broadcast client of bench/websocket.sh: many idle WebSockets, one broadcast,
 * when did the last one get it.
 *
 * Why C and not bench/ws-load.js: a broadcast to 10,000 sockets costs keryx ~10 µs per socket;
 * a Node `ws` client spends about as much per received message, serially, so the time to the
 * last socket measured with Node is mostly Node's own (README.md, "Two clients"). Here a
 * message costs one read(2) and a memcmp, and its arrival time is taken right after read(2).
 *
 *   ws-fanout --host H --port P --keryx-pid PID --redis-port N [--connections 10000]
 *             [--broadcasts 5] [--channel room:bench] [--concurrency 200] [--probe PATH]
 *             [--burst 10] [--subscribers 1] [--count-syscalls 0]
 *
 * 1. Reads keryx's VmRSS (and, with --probe, GET PATH: {"kib":…,"live_kib":…} = the Lua heap).
 * 2. Opens --connections sockets, at most --concurrency handshakes + subscriptions in flight;
 *    each sends {"messageType":"subscribe","channel":C,"messageId":i} and must get exactly
 *    {"messageId":i,"subscribed":{"channel":C}} back (a presence event may come first).
 * 3. One second later reads VmRSS (and the probe) again.
 * 4. --broadcasts times, 300 ms apart: PUBLISH keryx:pubsub
 *    '{"channel":C,"message":{"t":<CLOCK_REALTIME ms>,"k":k,"i":0},"sender":"bench"}' on the
 *    client's own connection to Redis; every socket must receive exactly {"message":<that
 *    payload>}. Arrival times are CLOCK_REALTIME right after the read(2) that brought the frame.
 * 5. As many bursts (unless --burst 0): --burst PUBLISHes ("i" = 0, 1, …) in one write(2) to
 *    Redis; every socket must receive the --burst frames in order; timed to the last one.
 * 6. With --count-syscalls 1: one more broadcast and one more burst, untimed, with
 *    `perf stat` counting keryx's write syscalls (sendto, sendmsg, write, writev).
 * Every PUBLISH must reach exactly --subscribers Redis subscribers (keryx's processes).
 *
 * Prints one JSON object on stdout (the fields of `ws-load.js fanout`, then the bursts and the
 * write counts); progress and errors on stderr; exit status 1 when anything is not as expected
 * (a refused upgrade, a closed socket, a wrong reply, a socket that misses a broadcast within
 * 10 s or gets a burst out of order).
 *
 * The WebSocket side is the minimum keryx needs: the RFC 6455 example key (so the expected
 * Sec-WebSocket-Accept is a constant), masked client frames, unmasked server frames up to
 * 64 KiB, pings answered with pongs. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "ws-client.h"

#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="           /* RFC 6455 §1.3 */
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="     /* its Sec-WebSocket-Accept */
#define RBUF 65536                                  /* handshake reply or one server frame */
#define CONNECT_TIMEOUT_MS 60000
#define BROADCAST_TIMEOUT_MS 10000
#define QUIET_BEFORE_BROADCAST_MS 300
#define SETTLE_AFTER_CONNECT_MS 1000
#define MAX_BROADCASTS 100

enum state { S_CONNECTING, S_HANDSHAKE, S_SUBSCRIBING, S_SUBSCRIBED };

typedef struct {
    int fd;
    enum state state;
    char *rbuf;                  /* allocated while a handshake or frame is incomplete */
    size_t rlen;
    int seen;                    /* the last broadcast (k) this socket received whole */
    int next;                    /* of broadcast k, the message it waits for (0-based) */
} sock_t;

static struct {
    const char *host, *channel, *probe;
    int port, n, concurrency, broadcasts, redis_port;
    int pid, burst, subscribers, count_syscalls;
} O = { "127.0.0.1", "room:bench", NULL, 0, 10000, 200, 5, 0, 0, 10, 1, 0 };

static sock_t *S;
static int ep = -1;
static int started, subscribed_count;

/* The broadcast being timed (one message, or a burst of m): the frames every socket must get,
 * in order; how many sockets got them all, and when (first/last socket to complete). */
#define MAX_BURST 100
static struct {
    char *expect[MAX_BURST];
    size_t expect_len[MAX_BURST];
    int m, k, got, wrong;
    double first, last, *arrivals;
} B;

/* ---- /proc readings ------------------------------------------------------------------------ */

static long rss_kib(void)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", O.pid);
    FILE *f = fopen(path, "r");
    if (!f) die("cannot read %s (keryx gone?)", path);
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    fclose(f);
    if (kib < 0) die("no VmRSS in %s", path);
    return kib;
}

/* keryx's CPU time, every thread, in ms: schedstat is in ns, not 10 ms clock ticks. */
static double keryx_cpu_ms(void)
{
    return cpu_ns_of(O.pid) / 1e6;
}

/* ---- the Lua heap probe: one blocking HTTP/1.1 GET ------------------------------------------ */

static void probe(double *kib, double *live_kib)
{
    char req[512], resp[4096];
    int fd = tcp_connect(O.host, O.port, false);
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n",
                     O.probe, O.host, O.port);
    if (write(fd, req, (size_t)n) != n) die("probe: write failed");
    size_t len = 0;
    for (ssize_t r; len < sizeof resp - 1 && (r = read(fd, resp + len, sizeof resp - 1 - len)) > 0;)
        len += (size_t)r;
    close(fd);
    resp[len] = '\0';
    const char *k = strstr(resp, "\"kib\":"), *l = strstr(resp, "\"live_kib\":");
    if (strncmp(resp, "HTTP/1.1 200", 12) != 0 || !k || !l) die("probe %s answered: %.200s", O.probe, resp);
    *kib = strtod(k + 6, NULL);
    *live_kib = strtod(l + 11, NULL);
}

/* ---- WebSocket frames ------------------------------------------------------------------------ */

/* A masked client frame (payload < 126 bytes: subscribe messages and pongs). */
static void send_frame(int fd, int opcode, const char *payload, size_t len)
{
    ws_send_frame(fd, opcode, payload, len, (uint32_t)rand());
}

static void start_one(void);

static void on_text(int i, const char *p, size_t len, double t)
{
    sock_t *s = &S[i];
    if (s->state == S_SUBSCRIBED) {
        int j = s->next;
        if (B.m && s->seen != B.k && len == B.expect_len[j] && memcmp(p, B.expect[j], len) == 0) {
            if (++s->next < B.m) return;
            s->next = 0;
            s->seen = B.k;
            if (B.got == 0) B.first = t;
            B.last = t;
            B.arrivals[B.got++] = t;
        } else {
            B.wrong++;
        }
        return;
    }
    char want[256];
    int n = snprintf(want, sizeof want, "{\"messageId\":%d,\"subscribed\":{\"channel\":\"%s\"}}", i + 1, O.channel);
    if ((size_t)n == len && memcmp(p, want, len) == 0) {
        s->state = S_SUBSCRIBED;
        subscribed_count++;
        if (started < O.n) start_one();
        return;
    }
    /* The first presence key's join event may precede the reply; nothing else may. */
    if (len > 11 && memcmp(p, "{\"message\":", 11) == 0 && memmem(p, len, "\"sender\":\"presence\"", 19)) return;
    die("socket %d: unexpected reply to subscribe: %.*s", i, (int)len, p);
}

/* Consumes complete frames from s->rbuf[0..rlen); keeps a partial one. */
static void on_frames(int i, double t)
{
    sock_t *s = &S[i];
    size_t off = 0, n, plen;
    int opcode;
    const char *payload;
    while ((n = ws_next_frame(i, s->fd, s->rbuf + off, s->rlen - off, RBUF, &opcode, &payload, &plen,
                              (uint32_t)rand()))) {
        if (opcode == 1) on_text(i, payload, plen, t);
        off += n;
    }
    s->rlen -= off;
    if (s->rlen > 0) memmove(s->rbuf, s->rbuf + off, s->rlen);
}

static void on_handshake(int i)
{
    sock_t *s = &S[i];
    size_t head = ws_upgrade_head(i, s->rbuf, s->rlen, RBUF, WS_ACCEPT);
    if (!head) return;
    s->rlen -= head;
    memmove(s->rbuf, s->rbuf + head, s->rlen);
    s->state = S_SUBSCRIBING;
    char msg[160];
    int n = snprintf(msg, sizeof msg, "{\"messageType\":\"subscribe\",\"channel\":\"%s\",\"messageId\":%d}", O.channel, i + 1);
    send_frame(s->fd, 1, msg, (size_t)n);
}

/* Reads go to one shared buffer; a socket gets a buffer of its own only while it holds part of
 * a frame or of the handshake. A malloc + free of 64 KiB per read (10,000 per broadcast) made
 * the client trim and grow its heap with brk(2) at every broadcast: time measured as keryx's. */
static char shared_rbuf[RBUF];

static void on_readable(int i)
{
    sock_t *s = &S[i];
    bool own = s->rbuf != NULL;
    if (!own) s->rbuf = shared_rbuf; /* s->rlen is 0: nothing pending */
    for (;;) {
        size_t want = RBUF - s->rlen;
        ssize_t r = read(s->fd, s->rbuf + s->rlen, want);
        double t = now_ms(CLOCK_REALTIME);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
        if (r < 0) die("socket %d: read: %s", i, strerror(errno));
        if (r == 0) die("socket %d: keryx closed the connection", i);
        s->rlen += (size_t)r;
        if (s->state == S_HANDSHAKE) on_handshake(i);
        if (s->state >= S_SUBSCRIBING) on_frames(i, t);
        if ((size_t)r < want) break; /* less than asked: drained (saves a read ending in EAGAIN) */
    }
    /* Idle sockets hold no buffer: 10,000 × 64 KiB would be 640 MB for nothing. */
    if (s->rlen == 0) {
        if (own) free(s->rbuf);
        s->rbuf = NULL;
    } else if (!own) {
        char *p = malloc(RBUF);
        if (!p) die("out of memory");
        memcpy(p, s->rbuf, s->rlen);
        s->rbuf = p;
    }
}

static void on_writable(int i)
{
    sock_t *s = &S[i];
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) die("socket %d: connect: %s", i, strerror(err));
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     O.host, O.port);
    write_all(s->fd, req, (size_t)n, "handshake");
    s->state = S_HANDSHAKE;
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev) != 0) die("epoll_ctl: %s", strerror(errno));
}

static void start_one(void)
{
    int i = started++;
    S[i].fd = tcp_connect(O.host, O.port, true);
    S[i].state = S_CONNECTING;
    struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = (uint32_t)i };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, S[i].fd, &ev) != 0) die("epoll_ctl: %s", strerror(errno));
}

/* Runs the event loop until done() or the deadline (CLOCK_MONOTONIC ms); false on timeout. */
static bool loop_until(bool (*done)(void), double deadline)
{
    struct epoll_event evs[1024];
    while (!done()) {
        double left = deadline - now_ms(CLOCK_MONOTONIC);
        if (left <= 0) return false;
        int n = epoll_wait(ep, evs, 1024, left < 1000 ? (int)left + 1 : 1000);
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            if (S[i].state == S_CONNECTING) on_writable(i);
            else on_readable(i);
        }
    }
    return true;
}

static bool all_subscribed(void) { return subscribed_count == O.n; }
static bool all_received(void) { return B.got == O.n; }
static bool never(void) { return false; }

/* ---- Redis ------------------------------------------------------------------------------------- */

/* One connection to Redis for every broadcast, opened before the first: its set-up is not part
 * of any broadcast's time. A burst is m PUBLISH commands in one write(2), so Redis reads them
 * together and keryx's subscriber connection gets the m messages back to back. */
static int redis_fd = -1;

static void redis_connect(void)
{
    redis_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)O.redis_port) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (redis_fd < 0 || connect(redis_fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("connect to Redis on port %d: %s", O.redis_port, strerror(errno));
    int one = 1;
    setsockopt(redis_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void redis_publish_all(char **payloads, const size_t *lens, int m)
{
    static char cmd[MAX_BURST * 400];
    size_t n = 0;
    for (int i = 0; i < m; i++)
        n += (size_t)snprintf(cmd + n, sizeof cmd - n, "*3\r\n$7\r\nPUBLISH\r\n$12\r\nkeryx:pubsub\r\n$%zu\r\n%s\r\n",
                              lens[i], payloads[i]);
    if (n >= sizeof cmd) die("burst too large");
    write_all(redis_fd, cmd, n, "PUBLISH");
}

/* Each PUBLISH must have reached exactly --subscribers Redis subscribers (keryx's processes). */
static void redis_check_replies(int m)
{
    char want[32], got[MAX_BURST * 16];
    int wn = snprintf(want, sizeof want, ":%d\r\n", O.subscribers);
    size_t need = (size_t)(wn * m), have = 0;
    while (have < need) {
        ssize_t r = read(redis_fd, got + have, need - have);
        if (r <= 0) die("Redis: no reply to PUBLISH");
        have += (size_t)r;
    }
    for (int i = 0; i < m; i++)
        if (memcmp(got + i * wn, want, (size_t)wn) != 0)
            die("PUBLISH answered %.*s, expected %d Redis subscribers (keryx)", wn, got + i * wn, O.subscribers);
}

static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

typedef struct { double last, first, p50, keryx_cpu, client_cpu; } bresult_t;

/* Broadcast k: m messages published together (m = 1: a single broadcast). Every socket must
 * get the m frames in order; "last" is when the last socket had its m-th. */
static bresult_t broadcast(int k, int m, const char *what)
{
    bresult_t r;
    static char payload[MAX_BURST][256], frame[MAX_BURST][300];
    char *payloads[MAX_BURST];
    size_t plens[MAX_BURST];
    B.k = k;
    B.got = B.wrong = 0;
    double k0 = keryx_cpu_ms(), c0 = now_ms(CLOCK_PROCESS_CPUTIME_ID);
    double sent = now_ms(CLOCK_REALTIME);
    for (int i = 0; i < m; i++) {
        int pn = snprintf(payload[i], sizeof payload[i],
                          "{\"channel\":\"%s\",\"message\":{\"t\":%.3f,\"k\":%d,\"i\":%d},\"sender\":\"bench\"}",
                          O.channel, sent, k, i);
        payloads[i] = payload[i];
        plens[i] = (size_t)pn;
        B.expect_len[i] = (size_t)snprintf(frame[i], sizeof frame[i], "{\"message\":%.*s}", pn, payload[i]);
        B.expect[i] = frame[i];
    }
    B.m = m;
    redis_publish_all(payloads, plens, m);
    bool ok = loop_until(all_received, now_ms(CLOCK_MONOTONIC) + BROADCAST_TIMEOUT_MS);
    r.keryx_cpu = keryx_cpu_ms() - k0;
    r.client_cpu = now_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
    if (!ok) die("%s %d: %d of %d sockets received it within %d ms", what, k, B.got, O.n, BROADCAST_TIMEOUT_MS);
    if (B.wrong) die("%s %d: %d frames were not the broadcast, or out of order", what, k, B.wrong);
    redis_check_replies(m);
    B.m = 0;
    r.last = B.last - sent;
    r.first = B.first - sent;
    r.p50 = median_of(B.arrivals, O.n) - sent;
    note("%s %d (%d message%s): first socket %.2f ms, half %.2f ms, last (%dth) %.2f ms; keryx CPU %.2f ms "
         "(%.2f us per socket per message), client CPU %.2f ms",
         what, k, m, m > 1 ? "s" : "", r.first, r.p50, O.n, r.last, r.keryx_cpu, r.keryx_cpu * 1000 / O.n / m,
         r.client_cpu);
    return r;
}

/* keryx's write syscalls (every kind a socket write can take) during one untimed broadcast of m
 * messages, counted by `perf stat` on its tracepoints; -1 when perf is missing or refused. */
static double write_syscalls(int k, int m)
{
    char pid[16], out[] = "/tmp/ws-fanout-perf.XXXXXX";
    int fd = mkstemp(out);
    if (fd < 0) return -1;
    close(fd);
    snprintf(pid, sizeof pid, "%d", O.pid);
    pid_t p = fork();
    if (p < 0) return -1;
    if (p == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, 2);
        execlp("perf", "perf", "stat", "-x,", "-o", out, "-e",
               "syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_write,"
               "syscalls:sys_enter_writev",
               "-p", pid, (char *)NULL);
        _exit(127);
    }
    loop_until(never, now_ms(CLOCK_MONOTONIC) + 500); /* perf attaches */
    broadcast(k, m, "counted");
    kill(p, SIGINT);
    int st = 0;
    waitpid(p, &st, 0);
    FILE *f = fopen(out, "r");
    double total = 0;
    int found = 0;
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        double v;
        if (strstr(line, "syscalls:sys_enter_") && sscanf(line, "%lf,", &v) == 1) {
            total += v;
            found++;
        }
    }
    if (f) fclose(f);
    unlink(out);
    return found == 4 ? total : -1;
}

/* ---- main ------------------------------------------------------------------------------------- */

static int int_arg(const char *name, const char *v, int min)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < min || x > 10000000) die("--%s must be an integer >= %d", name, min);
    return (int)x;
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc || strncmp(argv[i], "--", 2) != 0) die("bad argument '%s'", argv[i]);
        const char *k = argv[i] + 2, *v = argv[i + 1];
        if (!strcmp(k, "host")) O.host = v;
        else if (!strcmp(k, "port")) O.port = int_arg(k, v, 1);
        else if (!strcmp(k, "keryx-pid")) O.pid = int_arg(k, v, 1);
        else if (!strcmp(k, "redis-port")) O.redis_port = int_arg(k, v, 1);
        else if (!strcmp(k, "connections")) O.n = int_arg(k, v, 1);
        else if (!strcmp(k, "broadcasts")) O.broadcasts = int_arg(k, v, 1);
        else if (!strcmp(k, "concurrency")) O.concurrency = int_arg(k, v, 1);
        else if (!strcmp(k, "channel")) O.channel = v;
        else if (!strcmp(k, "probe")) O.probe = v;
        else if (!strcmp(k, "burst")) O.burst = int_arg(k, v, 0);
        else if (!strcmp(k, "subscribers")) O.subscribers = int_arg(k, v, 1);
        else if (!strcmp(k, "count-syscalls")) O.count_syscalls = int_arg(k, v, 0);
        else die("unknown option --%s", k);
    }
    if (!O.port || !O.pid || !O.redis_port) die("--port, --keryx-pid and --redis-port are required");
    if (O.broadcasts > MAX_BROADCASTS) die("--broadcasts is at most %d", MAX_BROADCASTS);
    if (O.burst > MAX_BURST) die("--burst is at most %d", MAX_BURST);
    for (const char *c = O.channel; *c; c++)
        if (*c == '"' || *c == '\'' || *c == '\\' || (unsigned char)*c < 0x20) die("--channel: no quotes or control characters");
}

/* "<name>":[…per run…] and the medians, as "<prefix>last_ms_median" etc. */
static void print_runs(const char *name, const char *prefix, const bresult_t *r, int n)
{
    printf(",\"%s\":[", name);
    double v[5][MAX_BROADCASTS];
    for (int k = 0; k < n; k++) {
        printf("%s{\"k\":%d,\"last_ms\":%.3f,\"first_ms\":%.3f,\"p50_ms\":%.3f,\"keryx_cpu_ms\":%.3f,\"client_cpu_ms\":%.3f}",
               k ? "," : "", k + 1, r[k].last, r[k].first, r[k].p50, r[k].keryx_cpu, r[k].client_cpu);
        v[0][k] = r[k].last, v[1][k] = r[k].first, v[2][k] = r[k].p50, v[3][k] = r[k].keryx_cpu, v[4][k] = r[k].client_cpu;
    }
    printf("],\"%slast_ms_median\":%.3f,\"%sfirst_ms_median\":%.3f,\"%sp50_ms_median\":%.3f,"
           "\"%skeryx_cpu_ms_median\":%.3f,\"%sclient_cpu_ms_median\":%.3f",
           prefix, median_of(v[0], n), prefix, median_of(v[1], n), prefix, median_of(v[2], n), prefix,
           median_of(v[3], n), prefix, median_of(v[4], n));
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)getpid());
    S = calloc((size_t)O.n, sizeof *S);
    B.arrivals = calloc((size_t)O.n, sizeof *B.arrivals);
    ep = epoll_create1(0);
    if (!S || !B.arrivals || ep < 0) die("setup failed");

    double heap_before = 0, heap_after = 0, heap_after_live = 0, dummy;
    if (O.probe) probe(&dummy, &heap_before);
    long rss_before = rss_kib();

    note("opening %d sockets to %s:%d, each subscribing to %s (%d in flight)", O.n, O.host, O.port, O.channel,
         O.concurrency);
    double cpu0 = keryx_cpu_ms(), t0 = now_ms(CLOCK_MONOTONIC);
    for (int k = 0; k < O.concurrency && started < O.n; k++) start_one();
    if (!loop_until(all_subscribed, t0 + CONNECT_TIMEOUT_MS))
        die("only %d of %d sockets subscribed after %d ms", subscribed_count, O.n, CONNECT_TIMEOUT_MS);
    double connect_ms = now_ms(CLOCK_MONOTONIC) - t0, connect_cpu = keryx_cpu_ms() - cpu0;
    note("%d sockets subscribed in %.1f s", O.n, connect_ms / 1000);

    loop_until(never, now_ms(CLOCK_MONOTONIC) + SETTLE_AFTER_CONNECT_MS);
    long rss_after = rss_kib(), rss_after_gc = 0;
    if (O.probe) {
        probe(&heap_after, &heap_after_live);
        rss_after_gc = rss_kib();
    }

    redis_connect();
    bresult_t r[MAX_BROADCASTS], rb[MAX_BROADCASTS];
    for (int k = 0; k < O.broadcasts; k++) {
        loop_until(never, now_ms(CLOCK_MONOTONIC) + QUIET_BEFORE_BROADCAST_MS);
        r[k] = broadcast(k + 1, 1, "broadcast");
    }
    for (int k = 0; O.burst > 0 && k < O.broadcasts; k++) {
        loop_until(never, now_ms(CLOCK_MONOTONIC) + QUIET_BEFORE_BROADCAST_MS);
        rb[k] = broadcast(O.broadcasts + k + 1, O.burst, "burst");
    }
    double sys1 = -1, sysb = -1;
    if (O.count_syscalls) {
        sys1 = write_syscalls(2 * O.broadcasts + 1, 1);
        if (O.burst > 0) sysb = write_syscalls(2 * O.broadcasts + 2, O.burst);
    }

    printf("{\"client\":\"c\",\"connections\":%d,\"channel\":\"%s\",\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,"
           "\"connect_ms\":%.1f,\"connect_keryx_cpu_ms\":%.1f",
           O.n, O.channel, rss_before, rss_after, connect_ms, connect_cpu);
    if (O.probe)
        printf(",\"lua_heap_before_kib\":%.1f,\"lua_heap_after_kib\":%.1f,\"lua_heap_after_live_kib\":%.1f,"
               "\"rss_after_gc_kib\":%ld", heap_before, heap_after, heap_after_live, rss_after_gc);
    print_runs("broadcasts", "", r, O.broadcasts);
    if (O.burst > 0) {
        printf(",\"burst\":%d", O.burst);
        print_runs("bursts", "burst_", rb, O.broadcasts);
    }
    /* Write syscalls per socket per message (-1: not counted). */
    printf(",\"writes_per_socket_single\":%.3f,\"writes_per_socket_message_burst\":%.3f}\n",
           sys1 < 0 ? -1 : sys1 / O.n, sysb < 0 ? -1 : sysb / O.n / O.burst);
    fflush(stdout);
    /* Exit closes every socket at once (keryx sees 10,000 EOFs). */
    return 0;
}
