/* server_run.h — one serving process: boot order, signals and drain (server.c).
 *
 * Owns: the process's kx_server_t, the boot order (loop → route table → listener → VM and
 * app → crypto threads → Redis → pub/sub → background tasks → loop), the wiring of the handlers
 * lower layers call, the SIGTERM/SIGINT drain and the SIGHUP reload of a lone process.
 * Callers: main.c, for `keryx start` with one worker, `keryx run` and `keryx actions`;
 * supervisor.c, in a freshly forked worker (which gets its listening socket and a readiness
 * pipe from the supervisor). Everything that owns threads, sockets to Redis or a lua_State
 * is started here, after any fork.
 * Never: parses the command line or reads the configuration (main.c did), forks (supervisor.c
 * does). */
#ifndef KX_SERVER_RUN_H
#define KX_SERVER_RUN_H
#include "config.h"

typedef enum { KX_RUN_SERVE, KX_RUN_CLI, KX_RUN_LIST } kx_run_t;

typedef struct {
    kx_run_t what;
    const char *app; /* the app directory */
    /* KX_RUN_CLI: the command (run, enqueue, tasks), its action (NULL for tasks) and the
     * arguments after it */
    const char *command;
    const char *action;
    int argc;
    char **argv;
    /* KX_RUN_SERVE as a worker (supervisor.c): the inherited listening socket, the pipe end
     * written once this worker accepts, and its number (1..N). worker == 0: one process, which
     * binds its own socket and reloads its VM in place on SIGHUP. */
    int listen_fd;
    int ready_fd;
    int worker;
    bool watch; /* --watch (one process only): an edit under app reloads it in place */
} kx_boot_t;

/* Boots, serves until drained (or runs the CLI action / lists the actions) and tears down.
 * Returns the process's exit code; start-up failures are printed on stderr (exit 1). */
int kx_server_main(kx_config_t *cfg, const kx_boot_t *b);

#endif
