/* watch.h — `keryx start --watch`: notices edits under a directory tree (inotify).
 *
 * Owns: one inotify descriptor, a watch on the directory and each of its subdirectories
 * (new ones are added as they appear), and a short debounce timer, so that an editor's
 * burst of writes, renames and deletes becomes one call of the change handler.
 * Callers: server.c, for a lone process started with --watch; its handler reloads the app
 * (lua_bridge.c kx_lua_reload: the same in-place swap as SIGHUP).
 * Never: reads the files, decides what a change means, or calls anything but the handler. */
#ifndef KX_WATCH_H
#define KX_WATCH_H
#include <ev.h>
#include <stddef.h>

/* Starts watching dir; on_change runs once per burst of changes (after KX_WATCH_QUIET_MS of
 * quiet). KX_OK, or an error naming dir in err. */
#define KX_WATCH_QUIET_MS 150
int kx_watch_start(struct ev_loop *loop, const char *dir, void (*on_change)(void), char *err, size_t errcap);
void kx_watch_stop(void);

#endif
