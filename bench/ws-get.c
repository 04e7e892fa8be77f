/* ws-get.c — bench-get.c's WebSocket twin: the `status` action exactly N times over one
 * WebSocket, one at a time, and exit 1 unless every reply is {"messageId":i,"response":…}.
 * Used where a count must be exact (instructions per round trip under callgrind, against
 * bench-get on GET /api/status), which ws-load.js, timed by duration, cannot give.
 *
 *   cc -O2 -Wall -Wextra -Werror -o build/ws-get bench/ws-get.c
 *   ws-get PORT N            (127.0.0.1; server pings are skipped)
 *
 * Client frames are masked, as clients must mask theirs, with a fixed key; the upgrade uses a fixed
 * key. Replies up to 1 MiB. */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define OP_TEXT 0x1
#define OP_PING 0x9

static char buf[1 << 20];
static size_t have;

static int fail(const char *what)
{
    fprintf(stderr, "ws-get: %s\n", what);
    return 1;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w <= 0) return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fill(int fd)
{
    if (have == sizeof buf) return -1;
    ssize_t r = read(fd, buf + have, sizeof buf - have);
    if (r <= 0) return -1;
    have += (size_t)r;
    return 0;
}

static int send_text(int fd, const char *p, size_t n)
{
    static const uint8_t key[4] = { 1, 2, 3, 4 };
    uint8_t frame[14 + 256];
    size_t h = 0;
    if (n > 256) return -1;
    frame[h++] = 0x80 | OP_TEXT;
    if (n < 126) {
        frame[h++] = (uint8_t)(0x80 | n);
    } else {
        frame[h++] = 0x80 | 126;
        frame[h++] = (uint8_t)(n >> 8);
        frame[h++] = (uint8_t)n;
    }
    memcpy(frame + h, key, 4);
    h += 4;
    for (size_t i = 0; i < n; i++) frame[h + i] = (uint8_t)p[i] ^ key[i & 3];
    return write_all(fd, frame, h + n);
}

/* The next frame's opcode, its payload moved to out (NUL-terminated); -1 on a read error. */
static int read_frame(int fd, char *out, size_t cap, size_t *len)
{
    for (;;) {
        if (have >= 2) {
            size_t hl = 2;
            uint64_t n = (uint8_t)buf[1] & 0x7f;
            if (n == 126) hl = 4;
            else if (n == 127) hl = 10;
            if (have >= hl) {
                if (n == 126) n = ((uint64_t)(uint8_t)buf[2] << 8) | (uint8_t)buf[3];
                else if (n == 127) {
                    n = 0;
                    for (int i = 0; i < 8; i++) n = (n << 8) | (uint8_t)buf[2 + i];
                }
                if (n >= cap) return -1;
                if (have >= hl + n) {
                    int op = buf[0] & 0x0f;
                    memcpy(out, buf + hl, n);
                    out[n] = '\0';
                    *len = n;
                    memmove(buf, buf + hl + n, have - hl - n);
                    have -= hl + n;
                    return op;
                }
            }
        }
        if (fill(fd) != 0) return -1;
    }
}

static int upgrade(int fd, int port)
{
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     port);
    if (write_all(fd, req, (size_t)n) != 0) return -1;
    for (;;) {
        if (fill(fd) != 0) return -1;
        char *end = memmem(buf, have, "\r\n\r\n", 4);
        if (!end) continue;
        if (strncmp(buf, "HTTP/1.1 101", 12) != 0) return -1;
        size_t head = (size_t)(end + 4 - buf);
        memmove(buf, buf + head, have - head);
        have -= head;
        return 0;
    }
}

int main(int argc, char **argv)
{
    static char reply[1 << 20];
    if (argc != 3) return fail("usage: ws-get PORT N");
    int port = atoi(argv[1]);
    long count = strtol(argv[2], NULL, 10);
    if (port < 1 || count < 1) return fail("PORT and N must be >= 1");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) return fail("cannot connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (upgrade(fd, port) != 0) return fail("the upgrade was refused");
    for (long i = 1; i <= count; i++) {
        char msg[128], want[48];
        int n = snprintf(msg, sizeof msg,
                         "{\"messageType\":\"action\",\"action\":\"status\",\"messageId\":%ld}", i);
        int wl = snprintf(want, sizeof want, "{\"messageId\":%ld,\"response\":{", i);
        if (send_text(fd, msg, (size_t)n) != 0) return fail("write failed");
        size_t len;
        int op;
        while ((op = read_frame(fd, reply, sizeof reply, &len)) == OP_PING) continue;
        if (op != OP_TEXT || len < (size_t)wl || memcmp(reply, want, (size_t)wl) != 0)
            return fail("a reply was not the status response to its message");
    }
    close(fd);
    return 0;
}
