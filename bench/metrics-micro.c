/* metrics-micro.c — what counting costs one request, in CPU time: the calls one answered
 * GET /api/status makes into src/metrics.c (kx_metrics_http, kx_metrics_action, a connection
 * gauge up and down), repeated N times on one thread, timed with CLOCK_THREAD_CPUTIME_ID so
 * other processes on the machine do not inflate it. Compiled and run by bench/metrics.sh
 * against build/libkeryx.a (the real module). Prints "<ns per request, on> <ns, off>": off is
 * the same calls before kx_metrics_init (the one branch a server with metrics off pays). */
#include "metrics.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double per_request(int route, long n)
{
    double t0 = cpu_now();
    for (long i = 0; i < n; i++) {
        kx_metrics_gauge_add(KX_GAUGE_CONNECTIONS, 1);
        kx_metrics_action("status", 6, true, 0.00002);
        kx_metrics_http("GET", 3, route, 200, 0.00004);
        kx_metrics_gauge_add(KX_GAUGE_CONNECTIONS, -1);
    }
    return (cpu_now() - t0) / (double)n;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000000;
    double off = per_request(0, n);
    char err[256];
    if (kx_metrics_init(err, sizeof err) != KX_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* The example app's actions and routes, so the name look-ups scan a realistic table. */
    const char *names[] = { "hello",          "user:create",   "session:create", "session:destroy", "user:me",
                            "message:create", "messages:list", "swagger",        "status" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        kx_metrics_action(names[i], strlen(names[i]), true, 0);
    int route = kx_metrics_route("/api/status");
    double on = per_request(route, n);
    printf("%.1f %.1f\n", on, off);
    return 0;
}
