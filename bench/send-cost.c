/* send-cost.c — what one small send(2) to a loopback TCP socket costs the sender, with no
 * server in the way: the floor under keryx's broadcast (bench/README.md, "WebSockets").
 *
 *   cc -O2 -o send-cost bench/send-cost.c && ./send-cost [sockets 10000] [rounds 3] [idle|epoll]
 *
 * A child process on CPU 1 connects `sockets` TCP connections to a listener of the parent
 * (on CPU 0), which accepts them (TCP_NODELAY, as keryx's listen.c sets). Then, `rounds`
 * times, 300 ms apart, the parent sends 100 bytes to every accepted socket, one send(2) each,
 * and prints the wall and CPU time (CLOCK_THREAD_CPUTIME_ID) of the loop per send.
 *   idle:  the child never reads (nobody sleeps on the sockets: no wake-ups).
 *   epoll: the child waits in epoll_wait on all of them and reads each, as a client does.
 * On loopback the receiving half of TCP runs in the sender's context, so both figures include
 * it. Each process holds `sockets` descriptors: the open-file limit must allow that. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG_BYTES 100

static double now_ms(clockid_t clk)
{
    struct timespec t;
    clock_gettime(clk, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void pin(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    sched_setaffinity(0, sizeof s, &s);
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* The child: connects, says so on `ready`, then idles until told to stop or reads everything. */
static void receiver(const struct sockaddr_in *a, int n, int rounds, int epoll_mode, int ready, int stop)
{
    pin(1);
    int ep = epoll_create1(0), *fds = malloc(sizeof *fds * (size_t)n);
    if (ep < 0 || !fds) die("setup");
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || connect(fds[i], (const struct sockaddr *)a, sizeof *a) != 0) die("connect");
        struct epoll_event e = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e) != 0) die("epoll_ctl");
    }
    char c = 1, buf[4096];
    if (write(ready, &c, 1) != 1) die("write");
    if (!epoll_mode) {
        if (read(stop, &c, 1) < 0) die("read");
        exit(0);
    }
    struct epoll_event ev[1024];
    for (long got = 0, want = (long)n * rounds * MSG_BYTES; got < want;) {
        int k = epoll_wait(ep, ev, 1024, -1);
        for (int j = 0; j < k; j++) {
            ssize_t r = read(fds[ev[j].data.u32], buf, sizeof buf);
            if (r > 0) got += r;
        }
    }
    exit(0);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 10000, rounds = argc > 2 ? atoi(argv[2]) : 3;
    int epoll_mode = argc > 3 && strcmp(argv[3], "epoll") == 0, one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t al = sizeof a;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int l = socket(AF_INET, SOCK_STREAM, 0), ready[2], stop[2];
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 4096) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &al) != 0 || pipe(ready) != 0 || pipe(stop) != 0)
        die("listen");
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) receiver(&a, n, rounds, epoll_mode, ready[1], stop[0]);
    pin(0);
    int *s = malloc(sizeof *s * (size_t)n);
    if (!s) die("malloc");
    for (int i = 0; i < n; i++) {
        if ((s[i] = accept(l, NULL, NULL)) < 0) die("accept");
        setsockopt(s[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    char c, msg[MSG_BYTES];
    if (read(ready[0], &c, 1) != 1) die("read");
    memset(msg, 'm', sizeof msg);
    for (int r = 0; r < rounds; r++) {
        usleep(300000);
        double w0 = now_ms(CLOCK_MONOTONIC), c0 = now_ms(CLOCK_THREAD_CPUTIME_ID);
        for (int i = 0; i < n; i++)
            if (send(s[i], msg, sizeof msg, MSG_NOSIGNAL) != (ssize_t)sizeof msg) die("send");
        double w = now_ms(CLOCK_MONOTONIC) - w0, cpu = now_ms(CLOCK_THREAD_CPUTIME_ID) - c0;
        printf("%s round %d: %d sends, %.1f ms wall, %.1f ms CPU, %.2f us CPU per send\n",
               epoll_mode ? "epoll" : "idle", r + 1, n, w, cpu, cpu * 1000 / n);
    }
    if (write(stop[1], &c, 1) != 1) die("write");
    waitpid(child, NULL, 0);
    return 0;
}
