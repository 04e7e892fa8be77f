/* watch.c — directory-tree change notification for --watch (see watch.h). */
#include "watch.h"
#include "common.h"
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE)
#define MAX_DEPTH 8 /* an app's tree is shallow; a symlink loop must not recurse forever */

static struct {
    struct ev_loop *loop;
    int fd;
    ev_io io;
    ev_timer quiet;
    void (*on_change)(void);
    char root[PATH_MAX];
} X = { .fd = -1 };

/* Watches dir and, below it, every directory not starting with a dot. Re-adding a watched
 * directory is harmless (inotify returns the same watch). */
static void add_tree(const char *dir, int depth)
{
    if (depth > MAX_DEPTH || inotify_add_watch(X.fd, dir, WATCH_MASK | IN_ONLYDIR) < 0) return;
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || e->d_type != DT_DIR) continue;
        char sub[PATH_MAX];
        if (snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name) >= (int)sizeof sub) continue;
        add_tree(sub, depth + 1);
    }
    closedir(d);
}

static void on_quiet(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    add_tree(X.root, 0); /* directories created meanwhile */
    X.on_change();
}

static void on_events(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)w;
    (void)revents;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool changed = false;
    ssize_t n;
    while ((n = read(X.fd, buf, sizeof buf)) > 0) changed = true;
    if (!changed) return;
    /* Each event restarts the quiet period: the handler runs once the burst is over. */
    ev_timer_stop(loop, &X.quiet);
    ev_timer_set(&X.quiet, KX_WATCH_QUIET_MS / 1000.0, 0.);
    ev_timer_start(loop, &X.quiet);
}

int kx_watch_start(struct ev_loop *loop, const char *dir, void (*on_change)(void), char *err, size_t errcap)
{
    X.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (X.fd < 0) {
        snprintf(err, errcap, "--watch: inotify: %s", strerror(errno));
        return KX_EIO;
    }
    if (inotify_add_watch(X.fd, dir, WATCH_MASK | IN_ONLYDIR) < 0) {
        snprintf(err, errcap, "--watch: cannot watch \"%.400s\": %s", dir, strerror(errno));
        kx_watch_stop();
        return KX_EIO;
    }
    snprintf(X.root, sizeof X.root, "%s", dir);
    X.loop = loop;
    X.on_change = on_change;
    add_tree(dir, 0);
    ev_io_init(&X.io, on_events, X.fd, EV_READ);
    ev_io_start(loop, &X.io);
    ev_timer_init(&X.quiet, on_quiet, 0., 0.);
    return KX_OK;
}

void kx_watch_stop(void)
{
    if (X.fd < 0) return;
    if (X.loop) {
        ev_io_stop(X.loop, &X.io);
        ev_timer_stop(X.loop, &X.quiet);
    }
    close(X.fd);
    X.fd = -1;
}
