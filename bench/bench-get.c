/* bench-get.c — bench/matrix.sh's fixed-count client: GET <url> exactly N times over one
 * keep-alive connection, one request at a time, and exit 1 unless every reply is a 200 with a
 * Content-Length body. Used where a count must be exact (instructions per request under
 * callgrind), which wrk, timed by duration, cannot give.
 *
 *   bench-get http://127.0.0.1:PORT/path N */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static char buf[4 << 20];

static int fail(const char *what)
{
    fprintf(stderr, "bench-get: %s\n", what);
    return 1;
}

/* Reads one response; returns 0 for a complete 200, -1 otherwise. */
static int read_response(int fd)
{
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0) return -1;
        have += (size_t)n;
        buf[have] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end) continue;
        if (strncmp(buf, "HTTP/1.1 200", 12) != 0) return -1;
        char *cl = strcasestr(buf, "\r\ncontent-length:");
        if (!cl || cl > end) return -1;
        size_t len = strtoul(cl + 17, NULL, 10);
        size_t head = (size_t)(end + 4 - buf);
        while (have < head + len) {
            n = read(fd, buf + have, sizeof buf - 1 - have);
            if (n <= 0) return -1;
            have += (size_t)n;
            if (have >= sizeof buf - 1) {
                /* A body larger than the buffer: keep counting, drop the bytes. */
                len -= have - head;
                have = head;
            }
        }
        return have == head + len ? 0 : -1;
    }
}

int main(int argc, char **argv)
{
    char host[64], path[1024];
    int port;
    if (argc != 3 || sscanf(argv[1], "http://%63[^:]:%d%1023s", host, &port, path) != 3)
        return fail("usage: bench-get http://HOST:PORT/path N");
    long count = strtol(argv[2], NULL, 10);
    if (count < 1) return fail("N must be >= 1");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    if (fd < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) return fail("bad address");
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) return fail("cannot connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char req[1200];
    int rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", path, host, port);
    for (long i = 0; i < count; i++) {
        if (write(fd, req, (size_t)rl) != rl) return fail("write failed");
        if (read_response(fd) != 0) return fail("a reply was not a complete 200");
    }
    close(fd);
    return 0;
}
