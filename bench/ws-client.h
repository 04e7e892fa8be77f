/* ws-client.h — the WebSocket client pieces bench/ws-fanout.c and bench/ws-rt.c share:
 * messages and exits, clocks, keryx's CPU time, the TCP connection, masked client frames, the
 * upgrade reply, reading server frames out of a socket's buffer, and sorting doubles. Header-only (static functions): each client
 * is one `cc` command (bench/websocket.sh) with this file beside it.
 *
 * Server frames as keryx sends them: unmasked, final (keryx sends no fragments), 7-, 16- or
 * 64-bit lengths; pings are answered with pongs, a close or an unexpected opcode ends the
 * run. Every failure ends the process with a message and exit status 1. */
#ifndef BENCH_WS_CLIENT_H
#define BENCH_WS_CLIENT_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("[bench:websocket:client] ERROR: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("[bench:websocket:client] ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static double now_ms(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* CPU time of every thread of pid, in ns: schedstat is in ns, not 10 ms clock ticks. */
static double cpu_ns_of(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d) die("cannot list %s (keryx gone?)", path);
    double ns = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char p[300];
        unsigned long long run = 0;
        snprintf(p, sizeof p, "/proc/%d/task/%s/schedstat", pid, e->d_name);
        FILE *f = fopen(p, "r");
        if (!f) continue; /* a thread that just ended */
        if (fscanf(f, "%llu", &run) == 1) ns += (double)run;
        fclose(f);
    }
    closedir(d);
    return ns;
}

/* A TCP connection to host:port (IPv4), TCP_NODELAY, connecting in the background when
 * nonblock is true. */
static int tcp_connect(const char *host, int port, bool nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) die("the host must be an IPv4 address, not '%s'", host);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)
        die("connect to %s:%d: %s", host, port, strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* For qsort: doubles in ascending order. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void write_all(int fd, const void *p, size_t n, const char *what)
{
    ssize_t w = write(fd, p, n);
    /* Small frames, one at a time: the kernel takes them whole or something is wrong. */
    if (w != (ssize_t)n) die("%s: short write (%zd of %zu: %s)", what, w, n, w < 0 ? strerror(errno) : "");
}

/* A masked client frame, payload < 126 bytes (actions, subscribes, pongs). */
static void ws_send_frame(int fd, int opcode, const char *payload, size_t len, uint32_t mask)
{
    unsigned char f[6 + 125];
    if (len > 125) die("client frame too long");
    f[0] = (unsigned char)(0x80 | opcode);
    f[1] = (unsigned char)(0x80 | len);
    memcpy(f + 2, &mask, 4);
    for (size_t i = 0; i < len; i++) f[6 + i] = (unsigned char)payload[i] ^ f[2 + i % 4];
    write_all(fd, f, 6 + len, "frame");
}

/* The value of the head's Sec-WebSocket-Accept line (name in any ASCII case), up to its CR;
 * NULL when there is none. head: buf[0..head), ending with the blank line. */
static const char *ws_accept_value(const char *buf, size_t head, size_t *vlen)
{
    static const char name[] = "Sec-WebSocket-Accept:";
    const size_t nl = sizeof name - 1;
    for (const char *p = buf; (p = memmem(p, head - (size_t)(p - buf), "\r\n", 2)); p += 2) {
        const char *line = p + 2;
        if ((size_t)(line - buf) + nl > head || strncasecmp(line, name, nl) != 0) continue;
        const char *v = line + nl;
        while (*v == ' ') v++;
        const char *cr = memchr(v, '\r', head - (size_t)(v - buf));
        *vlen = (size_t)(cr - v); /* the head ends with CRLF CRLF: there is a CR */
        return v;
    }
    return NULL;
}

/* The upgrade reply in buf[0..len) (a socket's buffer of cap bytes): 0 while its head is
 * incomplete, else the head's length once it is `HTTP/1.1 101` with a Sec-WebSocket-Accept
 * line (`accept`: that exact value; NULL: any). Socket i is named in the failures. */
static size_t ws_upgrade_head(int i, const char *buf, size_t len, size_t cap, const char *accept)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) {
        if (len == cap) die("socket %d: handshake reply too long", i);
        return 0;
    }
    size_t head = (size_t)(end - buf) + 4, vlen = 0;
    if (len < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0)
        die("socket %d: upgrade refused: %.*s", i, (int)(head < 300 ? head : 300), buf);
    const char *v = ws_accept_value(buf, head, &vlen);
    if (!v) die("socket %d: no Sec-WebSocket-Accept in %.*s", i, (int)head, buf);
    if (accept && (vlen != strlen(accept) || memcmp(v, accept, vlen) != 0))
        die("socket %d: wrong Sec-WebSocket-Accept in %.*s", i, (int)head, buf);
    return head;
}

/* The first complete frame in buf[0..len) of socket i, whose buffer holds at most cap bytes:
 * its length (header included) with *opcode, *payload and *plen set, or 0 when incomplete.
 * Control frames are handled here (ping → pong on fd; close, masked, fragmented, unknown or
 * too long → the run ends); the caller gets text frames (opcode 1) and pongs (10). */
static size_t ws_next_frame(int i, int fd, const char *buf, size_t len, size_t cap, int *opcode,
                            const char **payload, size_t *plen, uint32_t pong_mask)
{
    const unsigned char *h = (const unsigned char *)buf;
    if (len < 2) return 0;
    uint64_t n = h[1] & 0x7f;
    size_t hl = 2;
    if (h[1] & 0x80) die("socket %d: keryx sent a masked frame", i);
    if (n == 126) {
        if (len < 4) return 0;
        n = ((uint64_t)h[2] << 8) | h[3];
        hl = 4;
    } else if (n == 127) {
        if (len < 10) return 0;
        n = 0;
        for (int k = 0; k < 8; k++) n = (n << 8) | h[2 + k];
        hl = 10;
    }
    if (n > cap - hl) die("socket %d: frame of %llu bytes", i, (unsigned long long)n);
    if (len < hl + n) return 0;
    if (!(h[0] & 0x80)) die("socket %d: fragmented frame", i);
    *opcode = h[0] & 0x0f;
    *payload = buf + hl;
    *plen = (size_t)n;
    if (*opcode == 9) ws_send_frame(fd, 10, *payload, *plen, pong_mask);
    else if (*opcode == 8) die("socket %d: keryx closed it (%.*s)", i, (int)(n > 2 ? n - 2 : 0), *payload + 2);
    else if (*opcode != 1 && *opcode != 10) die("socket %d: unexpected opcode %d", i, *opcode);
    return hl + (size_t)n;
}

#endif
