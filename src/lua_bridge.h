/* lua_bridge.h — the LuaJIT VM, the coroutine scheduler and the entry points C uses to run
 * Lua.
 *
 * Owns: the lua_State (after an in-place reload, the older ones too until their last task and
 * WebSocket are gone; each task knows its VM), the memory cap (LUA_MEMORY_LIMIT_MB, over every
 * VM alive), registry refs of the framework's entry functions, tasks (one coroutine per
 * request) and their timers, the ready queue, and
 * the epilogue of each kind of task (web: lua/keryx/transport/web.lua's six result values → one
 * response, headers checked one by one, Set-Cookie written here from the session operation;
 * cli: {code, out, err}; background: the "spoiled coroutine" boolean; job: the result table
 * handed to the processor that waits for it), the repeating timers of core.every, and the lists
 * of running jobs and of tasks parked in core.task_wait.
 * Callers: server.c (init, CLI, and the handlers it installs: dispatch's action runner, the
 * WebSocket events, the tasks signal, the drain and SIGHUP). Only this file calls lua_resume.
 * Never: blocks the loop; resumes a coroutine from inside another library's callback:
 * completions (sleep timers, Redis replies, crypto jobs, rate-limit checks, the action
 * timeout) push results and queue the task on the ready queue, drained from an ev_check, and
 * WebSocket MESSAGE and CLOSE tasks always wait there too (a message arrives inside wslay's
 * receive callback). New web requests, WebSocket OPEN and timer runs start at once unless
 * another task is running; spawned background tasks and jobs wait on the ready queue. A yielding C function checks it
 * runs inside a task first (kx_lua_require_task). */
#ifndef KX_LUA_BRIDGE_H
#define KX_LUA_BRIDGE_H
#include "http.h"
#include "router.h"

typedef enum { KX_MODE_SERVER, KX_MODE_CLI } kx_mode_t;

/* Creates the VM, loads the framework (home/lua) and the app (app_dir), registers routes. */
int kx_lua_init(kx_server_t *s, kx_mode_t mode, const char *app_dir, char *err, size_t errcap);
void kx_lua_close(void);
/* SIGHUP in a lone process: boots the app's current code in a new VM with a new route table.
 * From then on HTTP requests and new WebSockets run there; a WebSocket open before keeps the
 * VM that opened it (its Lua-side state lives there); the previous VM is closed once its
 * last task finished and its last socket closed. A failure (a file that does not load: err
 * names the file and line) keeps everything as it was. */
int kx_lua_reload(char *err, size_t errcap);
/* Runs the action for the request on c in a new task; the task answers through kx_http_send
 * (a malformed answer from Lua — bad status, header, content type or session id — becomes
 * a logged 500 CONNECTION_SERVER_ERROR). While the task runs, core.req_header reads c's
 * request until c closes or moves on to its next request (kx_task_web_conn). */
void kx_lua_spawn_web(kx_conn_t *c, int action_id, const kx_route_param_t *params, int n);
typedef enum { KX_WS_OPEN, KX_WS_MESSAGE, KX_WS_CLOSE } kx_ws_event_t;
/* Hands a WebSocket event to the Lua side (keryx.ws) as a task: OPEN (c is the upgrading
 * connection: peer, session cookie, correlation id are read from its request), MESSAGE (one
 * complete text message), CLOSE (c is NULL: the socket is gone). Replies go back by id. */
void kx_lua_spawn_ws(kx_ws_event_t ev, uint64_t id, kx_conn_t *c, const char *text, size_t len);
/* Runs the app's start hook (keryx.boot's on_start: the presence heartbeat, task processors and
 * the task scheduler register their background work there) once the server is up. */
void kx_lua_start_background(void);
/* A job was enqueued (the tasks signal on pub/sub): wakes every core.task_wait. */
void kx_lua_tasks_signal(void);
/* The process starts draining: repeating timers stop, core.task_wait returns "drain" at once,
 * core.draining() turns true. */
void kx_lua_drain_begin(void);
/* The drain's deadline for jobs (WS_DRAIN_TIMEOUT): every running job is aborted as by its
 * action timeout, marked cut so its processor puts it back on its queue. */
void kx_lua_cut_jobs(void);
/* Runs one command line to completion — `run` (one action), `enqueue` (one job), `tasks` (the
 * queues' state) — through keryx.transport.cli; returns the exit code. */
int kx_lua_run_cli(const char *command, const char *action, int argc, char **argv);
/* Prints the action list (name, route, description) to stdout. */
int kx_lua_list_actions(void);
/* Number of tasks not finished yet (drain waits for them). */
int kx_lua_tasks_in_flight(void);

#endif
