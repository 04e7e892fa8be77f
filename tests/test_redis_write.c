/* test_redis_write.c — redis.c writes the commands queued during a loop iteration before the
 * loop polls (its lowest-priority prepare watcher), not when the poll reports the socket
 * writable, which would cost each batch an extra wake-up and two epoll_ctl calls.
 *
 * The peer is a plain listening socket in this process (no Redis needed: nothing is answered).
 * The observation point is a check watcher of the highest priority: it runs right after the
 * poll, before any I/O callback of that iteration (hiredis' write callback included), so the
 * command's bytes are already readable there only when they were written before the poll. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "redis.h"

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static struct {
    int peer;     /* the accepted side of keryx's Redis connection */
    ssize_t seen; /* bytes readable at the first check after the command was queued */
    bool armed;
} T;

static void on_check(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    if (!T.armed) return;
    T.armed = false;
    char buf[256];
    T.seen = recv(T.peer, buf, sizeof buf, MSG_DONTWAIT);
    if (T.seen < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) T.seen = 0;
}

static void on_reply(void *ud, redisReply *r, const char *err)
{
    (void)ud;
    (void)r;
    (void)err;
}

static void test_written_before_the_poll(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    int port, lfd = listen_any(&port);
    char url[64], err[256];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    assert_int_equal(kx_redis_start(loop, url, 2000, err, sizeof err), KX_OK);
    for (int i = 0; i < 200 && !kx_redis_ready(); i++) ev_run(loop, EVRUN_NOWAIT), usleep(1000);
    assert_true(kx_redis_ready());
    T.peer = accept(lfd, NULL, NULL);
    assert_true(T.peer >= 0);

    ev_check check;
    ev_check_init(&check, on_check);
    ev_set_priority(&check, EV_MAXPRI);
    ev_check_start(loop, &check);

    const char *argv[] = { "PING" };
    kx_redis_op_t *op = kx_redis_command(1, argv, NULL, on_reply, NULL);
    assert_non_null(op);
    T.armed = true;
    T.seen = -1;
    ev_run(loop, EVRUN_NOWAIT);
    assert_false(T.armed);
    /* "*1\r\n$4\r\nPING\r\n" */
    assert_int_equal(T.seen, 14);

    kx_redis_cancel(op);
    ev_check_stop(loop, &check);
    kx_redis_stop();
    ev_run(loop, EVRUN_NOWAIT);
    close(T.peer);
    close(lfd);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_written_before_the_poll),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
