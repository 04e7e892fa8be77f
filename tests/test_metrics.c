/* test_metrics.c — the shared counters and their text format: nothing is counted before
 * kx_metrics_init; labels are interned once and the tables stay fixed ("other" once full,
 * long names cut); unusual methods and statuses fold into "other" / "4xx"; histogram buckets
 * are cumulative up to +Inf and agree with _count; label values are escaped; counts made by a
 * forked child (after init) are seen by the parent, while the gauges of a process that is gone
 * are not; the Basic-auth check accepts exactly user:password. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "metrics.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static char *render(void)
{
    kx_buf_t b = KX_BUF_INIT;
    kx_metrics_render(&b);
    char *s = kx_xstrdup(b.data ? b.data : "");
    kx_buf_free(&b);
    return s;
}

static void expect_line(const char *text, const char *line)
{
    char want[512];
    snprintf(want, sizeof want, "\n%s\n", line);
    if (!strstr(text, want)) fail_msg("missing line: %s\n--- in:\n%s", line, text);
}

static void test_off_before_init(void **state)
{
    (void)state;
    assert_false(kx_metrics_enabled());
    assert_int_equal(kx_metrics_route("/x"), KX_METRICS_ROUTE_UNKNOWN);
    kx_metrics_http("GET", 3, 0, 200, 0.1); /* no crash, nothing kept */
    kx_metrics_count(KX_METRIC_WS_MESSAGES);
    kx_metrics_gauge_add(KX_GAUGE_CONNECTIONS, 1);
    char *s = render();
    assert_string_equal(s, "");
    free(s);
    char err[256];
    assert_int_equal(kx_metrics_init(err, sizeof err), KX_OK);
    assert_true(kx_metrics_enabled());
    assert_int_equal(kx_metrics_init(err, sizeof err), KX_OK); /* once */
    s = render();
    expect_line(s, "keryx_ws_messages_total 0"); /* the count before init was not kept */
    expect_line(s, "keryx_system_connections 0");
    free(s);
}

static void test_route_labels(void **state)
{
    (void)state;
    int a = kx_metrics_route("/api/a");
    assert_true(a > KX_METRICS_ROUTE_OTHER);
    assert_int_equal(kx_metrics_route("/api/a"), a);
    assert_int_not_equal(kx_metrics_route("/api/b"), a);
    /* A long pattern is cut, and found again cut. */
    char longp[300];
    memset(longp, 'x', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    int l = kx_metrics_route(longp);
    assert_int_equal(kx_metrics_route(longp), l);
    /* Filling the table: every further pattern is "other", memory stays as it is. */
    int last = 0;
    for (int i = 0; i < 2 * KX_METRICS_MAX_ROUTES; i++) {
        char p[32];
        snprintf(p, sizeof p, "/fill/%d", i);
        last = kx_metrics_route(p);
    }
    assert_int_equal(last, KX_METRICS_ROUTE_OTHER);
    assert_int_equal(kx_metrics_route("/api/a"), a); /* earlier ones keep their label */
}

static void test_http_counts_and_folding(void **state)
{
    (void)state;
    int a = kx_metrics_route("/api/a");
    kx_metrics_http("GET", 3, a, 200, 0.002);
    kx_metrics_http("GET", 3, a, 200, 0.002);
    kx_metrics_http("BREW", 4, a, 418, 0.002);                   /* an unusual method and status */
    kx_metrics_http(NULL, 0, KX_METRICS_ROUTE_UNKNOWN, 400, -1); /* before the head was read */
    kx_metrics_http("GET", 3, 9999, 200, 0.002);                 /* an out-of-range label */
    char *s = render();
    expect_line(s, "keryx_http_requests_total{method=\"GET\",route=\"/api/a\",status=\"200\"} 2");
    expect_line(s, "keryx_http_requests_total{method=\"other\",route=\"/api/a\",status=\"4xx\"} 1");
    expect_line(s, "keryx_http_requests_total{method=\"other\",route=\"unknown\",status=\"400\"} 1");
    expect_line(s, "keryx_http_requests_total{method=\"GET\",route=\"other\",status=\"200\"} 1");
    expect_line(s, "# TYPE keryx_http_requests_total counter");
    /* Not timed: no duration sample for "unknown". */
    assert_null(strstr(s, "keryx_http_request_duration_seconds_count{route=\"unknown\"}"));
    free(s);
}

static void test_histogram_cumulative(void **state)
{
    (void)state;
    kx_metrics_action("hist", 4, true, 0.003);
    kx_metrics_action("hist", 4, false, 20.0);
    kx_metrics_action("hist", 4, true, -5.0); /* a clock step counts as 0 */
    char *s = render();
    expect_line(s, "keryx_action_executions_total{action=\"hist\",status=\"success\"} 2");
    expect_line(s, "keryx_action_executions_total{action=\"hist\",status=\"error\"} 1");
    expect_line(s, "keryx_action_duration_seconds_bucket{action=\"hist\",le=\"0.001\"} 1");
    expect_line(s, "keryx_action_duration_seconds_bucket{action=\"hist\",le=\"0.005\"} 2");
    expect_line(s, "keryx_action_duration_seconds_bucket{action=\"hist\",le=\"10\"} 2");
    expect_line(s, "keryx_action_duration_seconds_bucket{action=\"hist\",le=\"+Inf\"} 3");
    expect_line(s, "keryx_action_duration_seconds_count{action=\"hist\"} 3");
    expect_line(s, "keryx_action_duration_seconds_sum{action=\"hist\"} 20.003000");
    expect_line(s, "# TYPE keryx_action_duration_seconds histogram");
    free(s);
}

static void test_label_escaping_and_tasks(void **state)
{
    (void)state;
    const char name[] = "a\"b\\c\nd";
    kx_metrics_task(KX_TASK_ENQUEUED, name, sizeof name - 1, true);
    kx_metrics_task(KX_TASK_EXECUTED, "job", 3, false);
    kx_metrics_task(KX_TASK_EXECUTED, "job", 3, true);
    char *s = render();
    expect_line(s, "keryx_task_enqueued_total{action=\"a\\\"b\\\\c\\nd\"} 1");
    expect_line(s, "keryx_task_executed_total{action=\"job\",status=\"failure\"} 1");
    expect_line(s, "keryx_task_executed_total{action=\"job\",status=\"success\"} 1");
    free(s);
}

/* Counts made in a child after init are the parent's too; a dead child's gauges are not. */
static void test_shared_across_fork(void **state)
{
    (void)state;
    kx_metrics_gauge_add(KX_GAUGE_WS_CONNECTIONS, 1); /* the parent's own slot */
    pid_t done = fork();
    assert_true(done >= 0);
    if (done == 0) {
        for (int i = 0; i < 1000; i++) kx_metrics_count(KX_METRIC_REDIS_ERRORS);
        kx_metrics_gauge_add(KX_GAUGE_WS_CONNECTIONS, 5);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(done, &st, 0), done);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t live = fork();
    assert_true(live >= 0);
    if (live == 0) {
        kx_metrics_gauge_add(KX_GAUGE_WS_CONNECTIONS, 10);
        char ch = 'x';
        if (write(pipefd[1], &ch, 1) != 1) _exit(1);
        pause();
        _exit(0);
    }
    char ch;
    assert_int_equal(read(pipefd[0], &ch, 1), 1);
    char *s = render();
    expect_line(s, "keryx_redis_errors_total 1000");
    expect_line(s, "keryx_ws_connections 11"); /* parent 1 + live child 10; the exited child's 5 gone */
    free(s);
    kill(live, SIGKILL);
    assert_int_equal(waitpid(live, &st, 0), live);
    s = render();
    expect_line(s, "keryx_ws_connections 1");
    free(s);
    close(pipefd[0]);
    close(pipefd[1]);
}

static bool auth(const char *header)
{
    return kx_metrics_auth_ok(header, header ? strlen(header) : 0, "prom", "s3:cr:et");
}

static void test_basic_auth(void **state)
{
    (void)state;
    assert_true(auth("Basic cHJvbTpzMzpjcjpldA=="));   /* prom:s3:cr:et */
    assert_true(auth("basic cHJvbTpzMzpjcjpldA=="));   /* the scheme in any case */
    assert_true(auth("Basic  cHJvbTpzMzpjcjpldA== ")); /* spaces around the token */
    assert_true(auth("Basic cHJvbTpzMzpjcjpldA"));     /* unpadded */
    assert_false(auth(NULL));
    assert_false(auth(""));
    assert_false(auth("Basic "));
    assert_false(auth("Bearer cHJvbTpzMzpjcjpldA=="));
    assert_false(auth("Basic cHJvbTpzMzpjcjpleA=="));  /* prom:s3:cr:ex */
    assert_false(auth("Basic cHJvbXg6czM6Y3I6ZXQ="));  /* promx:s3:cr:et */
    assert_false(auth("Basic cHJvbQ=="));              /* prom (no colon) */
    assert_false(auth("Basic cHJvbTpzMzpjcjpldA==!")); /* not base64 */
    assert_false(auth("Basic cHJvbTpzMzpjcjpldA=x"));
    assert_false(auth("Basic OnMzOmNyOmV0")); /* :s3:cr:et (empty user) */
    /* A token far over the decode buffer is refused, not overrun. */
    char big[4096] = "Basic ";
    memset(big + 6, 'A', sizeof big - 7);
    big[sizeof big - 1] = '\0';
    assert_false(auth(big));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_before_init),
        cmocka_unit_test(test_route_labels),
        cmocka_unit_test(test_http_counts_and_folding),
        cmocka_unit_test(test_histogram_cumulative),
        cmocka_unit_test(test_label_escaping_and_tasks),
        cmocka_unit_test(test_shared_across_fork),
        cmocka_unit_test(test_basic_auth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
