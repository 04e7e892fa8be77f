/* supervisor.h — WEB_SERVER_WORKERS: one supervisor process and N forked workers.
 *
 * Owns: the workers' listening sockets (one SO_REUSEPORT socket per worker slot, bound once
 * here, before any fork, and handed to every worker that ever serves that slot), the worker
 * table (pid, slot, generation, ready, retiring), crash replacement with back-off, the
 * SIGHUP reload (configuration re-read; a new generation boots and accepts, then the old one
 * stops accepting and drains) and the SIGTERM/SIGINT shutdown (every worker drains; exit 0).
 * Callers: main.c, for `keryx start` when WEB_SERVER_WORKERS is not 1.
 * Never: creates an event loop, a lua_State, a thread or a Redis connection (each worker boots
 * its own in server.c after the fork), or accepts a connection itself. It waits with poll()
 * on a signalfd and the workers' readiness pipes.
 *
 * Why a socket per slot rather than one per worker: the worker that replaces another (crash
 * or reload) inherits the same socket, so connections already queued there are accepted by
 * the newcomer instead of being reset when the old worker closes its descriptor. A slot whose
 * replacement dies before accepting has its socket closed (so the kernel stops queueing
 * connections nobody accepts) and rebound for the retries without listening: the worker's
 * kx_listen_adopt makes it listen once it is ready. */
#ifndef KX_SUPERVISOR_H
#define KX_SUPERVISOR_H
#include "config.h"
#include "server_run.h"

/* Fills cfg again from the configuration's sources (main.c's defaults → config.lua →
 * environment); KX_OK, or an error in err. */
typedef int (*kx_config_loader_t)(void *ud, kx_config_t *cfg, char *err, size_t errcap);

/* The most workers WEB_SERVER_WORKERS may ask for. */
#define KX_MAX_WORKERS 64

/* Binds, forks cfg->workers workers (0: one per online CPU) that each run kx_server_main with
 * boot (its listen_fd, ready_fd and worker filled in per worker), supervises them until
 * SIGTERM/SIGINT and returns the exit code: 0 after a drain, 1 when binding failed or the
 * first generation did not come up (the worker printed why). */
int kx_supervisor_run(kx_config_t *cfg, const kx_boot_t *boot, kx_config_loader_t reload, void *ud);

#endif
