/* lua_bridge.c — the LuaJIT VM, tasks (one coroutine per request) and the scheduler.
 * See lua_bridge.h for the contract.
 *
 * A task runs a framework entry function (keryx.transport.web / .cli, keryx.ws, a background
 * function, a job) in a pooled coroutine; when it returns, resume() hands its results to the
 * epilogue of its kind (task_ops: web, cli, background, job), which reads them by name. A job
 * task (core.run_job) belongs to the processor task that started it and hands its result table
 * to it; background tasks come from core.spawn, core.every's timers and the start hook.
 * When Lua calls a waiting C function (core.sleep, later Redis) it yields; the wakeup pushes
 * the results onto the coroutine's stack and puts the task on the ready queue, which an
 * ev_check watcher drains (with an ev_idle keeping the loop from sleeping meanwhile). The
 * action timeout is an ev_timer per task: it marks the task aborted and wakes it with
 * nil, "aborted", so the pipeline answers 408 even while the action is parked.
 * Each task belongs to a VM (kx_vm_t: a lua_State with the app booted, its entry refs and
 * coroutine pool); SIGHUP in a lone process adds a newer one (kx_lua_reload) and an older one
 * is closed once it has no task and no WebSocket left. */
#include "lua_bridge.h"
#include "lua_api.h"
#include "lua_alloc.h"
#include "http_guard.h"
#include "log.h"
#include "session.h"
#include "dispatch.h"
#include "ws.h"
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* BG: WebSocket events, timers, long-running background loops (task processors);
 * JOB: one background job run by a processor, which waits for it (core.run_job). */
typedef enum { TASK_WEB, TASK_CLI, TASK_BG, TASK_JOB } task_kind_t;

typedef struct every every_t;

/* One lua_State with the app booted in it. A lone process swaps in a new one on SIGHUP
 * (kx_lua_reload): HTTP requests and new WebSockets go to the newest; a WebSocket stays with
 * the VM that opened it (its Lua-side state — conn, session, presence keys — lives there); an
 * older VM is closed once its last task finished and its last socket closed. */
typedef struct kx_vm {
    lua_State *L;
    kx_lua_alloc_t *alloc; /* its own slabs: the ud of lua_newstate, freed after lua_close */
    int ref_web, ref_cli, ref_list;
    int ref_ws[3], ref_on_start;
    struct {
        lua_State *co;
        int ref;
    } pool[256];
    int npool;
    int tasks;           /* tasks created in it and not freed */
    int sockets;         /* WebSockets it opened that have not closed */
    int spawned;         /* its core.spawn loops (task processors) and their jobs still running */
    int lent;            /* web answer bodies (its strings) a connection has yet to write */
    uint64_t ws_first;   /* id of its first WebSocket (ids only grow); UINT64_MAX: none yet */
    struct kx_vm *older; /* the VM it replaced, until that one is closed */
} kx_vm_t;

struct kx_task {
    kx_vm_t *vm; /* the VM its coroutine belongs to */
    lua_State *co;
    int ref;
    task_kind_t kind;
    kx_conn_t *conn;
    uint32_t gen;
    ev_timer timeout;
    ev_timer sleep;
    bool aborted;
    bool sleeping;
    kx_stream_t stream;            /* web: the action began its response itself (lua_api_http.c) */
    void (*wait_cancel)(void *ud); /* set while parked on an external operation */
    void *wait_ud;
    bool queued;
    bool done;
    int nargs;           /* values pushed on co for the next resume */
    int exit_code;       /* CLI */
    bool reusable;       /* CLI: the coroutine finished cleanly */
    double redis_budget; /* seconds a request may wait for Redis in all; 0: no budget */
    double redis_spent;
    double redis_since;               /* ev_now when the current Redis wait began; 0: not waiting */
    kx_task_t *next;                  /* ready queue */
    kx_task_t *parent;                /* JOB: the processor waiting for it */
    bool cut;                         /* JOB: aborted because the process is shutting down */
    bool signal_wait;                 /* parked in core.task_wait (on the waiters list) */
    bool spawned;                     /* BG from core.spawn, or a JOB: counted in vm->spawned */
    every_t *every;                   /* BG: the repeating timer that started it */
    kx_task_t *link_prev, *link_next; /* the jobs list or the waiters list */
};

/* core.every(ms, fn): a repeating timer that runs fn as a background task, never two at once. */
struct every {
    ev_timer timer;
    kx_vm_t *vm; /* the VM whose registry holds fn_ref */
    int fn_ref;
    bool running;
    every_t *next;
};

static struct {
    kx_vm_t *vm; /* the newest VM: every new task but a WebSocket's goes there */
    kx_server_t *srv;
    kx_mode_t mode;
    char *app_dir;
    kx_lua_budget_t mem; /* LUA_MEMORY_LIMIT_MB over every VM alive: the cap is the process's */
    kx_task_t *current;
    kx_task_t *ready_head, *ready_tail;
    ev_check check;
    ev_idle idle;
    int in_flight;
    kx_buf_t hdrs;      /* a web answer's header lines, reused: no malloc per request */
    kx_task_t *jobs;    /* running JOB tasks (cut at the drain deadline) */
    kx_task_t *waiters; /* tasks parked in core.task_wait */
    every_t *everys;    /* of every VM alive */
    kx_spare_t spare;   /* freed task structs kept for the next tasks */
    bool draining;
    bool bg_pending; /* the newest VM's background waits for the older VMs' processors to end */
} B;

/* ---- memory cap ---------------------------------------------------------------------------- */

/* Past the cap an allocation fails (the action gets "not enough memory"); from then on a
 * reserve stays open so that unwinding, the error envelope and the log line can still be
 * built, until a full collection after the task brings usage back under the cap. Every VM's
 * allocator (lua_alloc.c, which does the arithmetic) charges B.mem. */
#define MEM_RESERVE (16u * 1024 * 1024)

static int l_panic(lua_State *L)
{
    kx_log_error("Lua panic: %s", lua_tostring(L, -1));
    abort();
}

/* ---- tasks --------------------------------------------------------------------------------- */

kx_task_t *kx_lua_current_task(void)
{
    return B.current;
}

bool kx_task_aborted(const kx_task_t *t)
{
    return t->aborted;
}

lua_State *kx_task_thread(kx_task_t *t)
{
    return t->co;
}

void kx_task_wake(kx_task_t *t, int nargs)
{
    t->nargs = nargs;
    if (t->queued) return;
    t->queued = true;
    t->next = NULL;
    if (B.ready_tail) B.ready_tail->next = t;
    else B.ready_head = t;
    B.ready_tail = t;
    if (!ev_is_active(&B.idle)) ev_idle_start(B.srv->loop, &B.idle);
}

static void on_sleep_done(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    kx_task_t *t = w->data;
    t->sleeping = false;
    lua_pushboolean(t->co, 1);
    kx_task_wake(t, 1);
}

void kx_task_set_wait(kx_task_t *t, void (*cancel)(void *ud), void *ud)
{
    t->wait_cancel = cancel;
    t->wait_ud = ud;
}

lua_State *kx_lua_main(void)
{
    return B.vm->L;
}

lua_State *kx_task_main(const kx_task_t *t)
{
    return t->vm->L;
}

void kx_task_redis_end(kx_task_t *t)
{
    if (t->redis_since == 0) return;
    t->redis_spent += ev_now(B.srv->loop) - t->redis_since;
    t->redis_since = 0;
}

double kx_task_redis_begin(kx_task_t *t)
{
    kx_task_redis_end(t); /* a wait the action timeout abandoned counts up to now */
    if (t->redis_budget <= 0) return HUGE_VAL;
    double left = t->redis_budget - t->redis_spent;
    if (left > 0) t->redis_since = ev_now(B.srv->loop);
    return left;
}

/* Requests get the budget; housekeeping tasks (presence heartbeat, socket close) do not. */
static void give_redis_budget(kx_task_t *t)
{
    t->redis_budget = (double)B.srv->cfg->redis_command_timeout_ms / 1000.0;
}

bool kx_task_is_web(const kx_task_t *t)
{
    return t && t->kind == TASK_WEB;
}

kx_stream_t kx_task_stream(const kx_task_t *t)
{
    return t->stream;
}

void kx_task_set_stream(kx_task_t *t, kx_stream_t s)
{
    t->stream = s;
}

/* A connection is reused for the next request (gen moves on) or closed while its task is
 * parked: from then on the task has nobody to answer and nothing of the request to read. */
kx_conn_t *kx_task_web_conn(const kx_task_t *t)
{
    if (!t || t->kind != TASK_WEB) return NULL;
    kx_conn_t *c = t->conn;
    if (c->closed || c->gen != t->gen) return NULL;
    return c;
}

/* ---- task lists (running jobs, signal waiters) -------------------------------------------- */

static void list_add(kx_task_t **head, kx_task_t *t)
{
    t->link_prev = NULL;
    t->link_next = *head;
    if (*head) (*head)->link_prev = t;
    *head = t;
}

static void list_remove(kx_task_t **head, kx_task_t *t)
{
    if (t->link_prev) t->link_prev->link_next = t->link_next;
    else if (*head == t) *head = t->link_next;
    if (t->link_next) t->link_next->link_prev = t->link_prev;
    t->link_prev = t->link_next = NULL;
}

/* Ends a core.task_wait with `why` ("signal", "timeout", "drain"). */
static void end_signal_wait(kx_task_t *t, const char *why)
{
    if (!t->signal_wait) return;
    t->signal_wait = false;
    t->sleeping = false;
    ev_timer_stop(B.srv->loop, &t->sleep);
    list_remove(&B.waiters, t);
    lua_pushstring(t->co, why);
    kx_task_wake(t, 1);
}

static void abort_task(struct ev_loop *loop, kx_task_t *t)
{
    t->aborted = true;
    if (t->signal_wait) {
        end_signal_wait(t, "aborted");
        return;
    }
    bool parked = t->sleeping || t->wait_cancel;
    if (t->sleeping) {
        ev_timer_stop(loop, &t->sleep);
        t->sleeping = false;
    }
    if (t->wait_cancel) {
        /* The operation cannot be recalled (hiredis has sent it): it is told to drop the
         * late answer, and the task moves on now. */
        t->wait_cancel(t->wait_ud);
        t->wait_cancel = NULL;
        t->wait_ud = NULL;
    }
    if (parked) {
        lua_pushnil(t->co);
        lua_pushliteral(t->co, "aborted");
        kx_task_wake(t, 2);
    }
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    abort_task(loop, w->data);
}

/* core.sleep(ms) → true, or nil, "aborted" when the action timed out meanwhile. */
static int l_sleep(lua_State *L)
{
    lua_Number ms = luaL_checknumber(L, 1);
    kx_task_t *t = kx_lua_require_task(L, "keryx.sleep");
    if (ms < 0) ms = 0;
    if (t->aborted) return kx_lua_push_fail(L, "aborted");
    ev_timer_init(&t->sleep, on_sleep_done, ms / 1000.0, 0.);
    t->sleep.data = t;
    ev_timer_start(B.srv->loop, &t->sleep);
    t->sleeping = true;
    return lua_yield(L, 0);
}

/* core.arm_timeout(ms): the pipeline calls it once it knows the action's timeout. It never
 * yields, so any coroutine of the running task may call it (no kx_lua_require_task). */
static int l_arm_timeout(lua_State *L)
{
    lua_Number ms = luaL_checknumber(L, 1);
    kx_task_t *t = B.current;
    if (!t) return luaL_error(L, "arm_timeout called outside a request");
    ev_timer_stop(B.srv->loop, &t->timeout);
    if (ms > 0) {
        ev_timer_set(&t->timeout, ms / 1000.0, 0.);
        ev_timer_start(B.srv->loop, &t->timeout);
    }
    return 0;
}

static int l_aborted(lua_State *L)
{
    lua_pushboolean(L, B.current && B.current->aborted);
    return 1;
}

static void on_signal_wait_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    end_signal_wait(w->data, "timeout");
}

/* core.task_wait(ms) → "signal" (kx_lua_tasks_signal: a job was enqueued somewhere), "timeout",
 * "drain" (the process is shutting down; also at once when it already is) or "aborted". */
static int l_task_wait(lua_State *L)
{
    lua_Number ms = luaL_checknumber(L, 1);
    kx_task_t *t = kx_lua_require_task(L, "core.task_wait");
    if (B.draining || t->vm != B.vm) {
        lua_pushliteral(L, "drain");
        return 1;
    }
    if (t->aborted) return kx_lua_push_fail(L, "aborted");
    ev_timer_init(&t->sleep, on_signal_wait_timeout, (ms > 0 ? ms : 0) / 1000.0, 0.);
    t->sleep.data = t;
    ev_timer_start(B.srv->loop, &t->sleep);
    t->sleeping = true;
    t->signal_wait = true;
    list_add(&B.waiters, t);
    return lua_yield(L, 0);
}

static void wake_waiters(const char *why)
{
    while (B.waiters) end_signal_wait(B.waiters, why);
}

void kx_lua_tasks_signal(void)
{
    wake_waiters("signal");
}

static int l_tasks_signal(lua_State *L)
{
    (void)L;
    kx_lua_tasks_signal();
    return 0;
}

/* A task of a VM replaced by a reload sees the process as draining: its task processors end,
 * and the newest VM's take over once they have (start_background_when_free). */
static int l_draining(lua_State *L)
{
    kx_vm_t *vm = B.current ? B.current->vm : B.vm;
    lua_pushboolean(L, B.draining || vm != B.vm);
    return 1;
}

static kx_task_t *task_new_in(kx_vm_t *vm, task_kind_t kind);
static void start_task(kx_task_t *t);

/* The VM whose state L is (each VM's registry holds a pointer to it, set at its creation):
 * a task started from Lua belongs there, since values move between coroutines of one VM only. */
static kx_vm_t *vm_of(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "keryx.vm");
    kx_vm_t *vm = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return vm ? vm : B.vm;
}

/* core.spawn(fn, ...): runs fn(...) as a background task of its own (a task processor's loop);
 * it starts once the caller yields or returns. Errors inside fn are logged, not raised here. */
static int l_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int n = lua_gettop(L);
    kx_task_t *t = task_new_in(vm_of(L), TASK_BG);
    t->spawned = true;
    t->vm->spawned++;
    lua_xmove(L, t->co, n);
    kx_task_wake(t, n - 1);
    return 0;
}

static void on_every(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    every_t *e = w->data;
    if (e->running || B.draining) return; /* the previous run is still going: skip this tick */
    kx_task_t *t = task_new_in(e->vm, TASK_BG);
    t->every = e;
    e->running = true;
    lua_rawgeti(t->co, LUA_REGISTRYINDEX, e->fn_ref);
    t->nargs = 0;
    start_task(t);
}

/* core.every(ms, fn): runs fn as a background task every ms milliseconds (first run after ms),
 * skipping a tick while the previous run has not finished; stops when the process drains. */
static int l_every(lua_State *L)
{
    lua_Number ms = luaL_checknumber(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (!(ms >= 1)) return luaL_error(L, "core.every: the interval must be at least 1 ms");
    every_t *e = kx_xcalloc(1, sizeof *e);
    e->vm = vm_of(L);
    lua_pushvalue(L, 2);
    e->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    ev_timer_init(&e->timer, on_every, ms / 1000.0, ms / 1000.0);
    e->timer.data = e;
    ev_timer_start(B.srv->loop, &e->timer);
    e->next = B.everys;
    B.everys = e;
    return 0;
}

static void stop_everys(void)
{
    for (every_t *e = B.everys; e; e = e->next) ev_timer_stop(B.srv->loop, &e->timer);
}

/* The timers of vm (NULL: of every VM), when it is closed. */
static void free_everys(const kx_vm_t *vm)
{
    for (every_t **p = &B.everys; *p;) {
        every_t *e = *p;
        if (vm && e->vm != vm) {
            p = &e->next;
            continue;
        }
        *p = e->next;
        ev_timer_stop(B.srv->loop, &e->timer);
        free(e);
    }
}

/* core.run_job(fn, ...) → result, cut | nil, false, why. Runs fn(...) as a job task of its own
 * (its own action timeout, Redis budget and abort flag) and parks the caller — a task
 * processor — until it ends: `result` is fn's first return value, `cut` is true when the job
 * was aborted because the process is shutting down (kx_lua_cut_jobs), so the processor puts
 * the job back instead of failing it; nil, false, why when the framework itself failed. */
static int l_run_job(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    kx_task_t *parent = kx_lua_require_task(L, "core.run_job");
    int n = lua_gettop(L);
    kx_task_t *t = task_new_in(parent->vm, TASK_JOB);
    give_redis_budget(t);
    t->spawned = true;
    t->vm->spawned++;
    t->parent = parent;
    list_add(&B.jobs, t);
    lua_xmove(L, t->co, n);
    kx_task_wake(t, n - 1);
    return lua_yield(L, 0);
}

void kx_lua_cut_jobs(void)
{
    for (kx_task_t *t = B.jobs; t; t = t->link_next) {
        if (t->aborted) continue;
        t->cut = true;
        abort_task(B.srv->loop, t);
    }
}

void kx_lua_drain_begin(void)
{
    B.draining = true;
    stop_everys();
    wake_waiters("drain");
}

/* Task structs are kept for reuse (B.spare, at most TASK_SPARE: past the concurrency of a
 * burst they go back to free): a request then costs no calloc/free of its own. A kept one is
 * poisoned under ASan, so a use after task_free is still reported. */
#define TASK_SPARE 64

static kx_task_t *task_new_in(kx_vm_t *vm, task_kind_t kind)
{
    kx_task_t *t = kx_spare_get(&B.spare);
    t->kind = kind;
    t->vm = vm;
    vm->tasks++;
    if (vm->npool > 0) {
        vm->npool--;
        t->co = vm->pool[vm->npool].co;
        t->ref = vm->pool[vm->npool].ref;
    } else {
        t->co = lua_newthread(vm->L);
        t->ref = luaL_ref(vm->L, LUA_REGISTRYINDEX);
    }
    ev_init(&t->timeout, on_timeout);
    t->timeout.data = t;
    B.in_flight++;
    return t;
}

static kx_task_t *task_new(task_kind_t kind)
{
    return task_new_in(B.vm, kind);
}

static void vm_close(kx_vm_t *vm)
{
    free_everys(vm);
    lua_close(vm->L);
    kx_lua_alloc_destroy(vm->alloc);
    free(vm);
}

static void start_background(void);

/* The older VMs' task processors have all ended: the newest VM's start (one processor name per
 * slot at a time: a processor's in-flight list in Redis is named after it). */
static void start_background_when_free(void)
{
    if (!B.bg_pending) return;
    for (kx_vm_t *vm = B.vm->older; vm; vm = vm->older)
        if (vm->spawned > 0) return;
    start_background();
}

/* An older VM goes once nothing runs in it and no socket of its is open. */
static void vm_release_idle(void)
{
    for (kx_vm_t **p = &B.vm->older; *p;) {
        kx_vm_t *vm = *p;
        if (vm->tasks > 0 || vm->sockets > 0 || vm->lent > 0) {
            p = &vm->older;
            continue;
        }
        *p = vm->older;
        vm_close(vm);
        kx_log_info("closed the Lua VM replaced by the reload");
    }
}

static void task_free(kx_task_t *t, bool reusable)
{
    kx_vm_t *vm = t->vm;
    ev_timer_stop(B.srv->loop, &t->timeout);
    ev_timer_stop(B.srv->loop, &t->sleep);
    if (t->signal_wait) list_remove(&B.waiters, t);
    if (t->kind == TASK_JOB) list_remove(&B.jobs, t);
    if (t->every) t->every->running = false;
    if (t->spawned) vm->spawned--;
    if (reusable && vm->npool < (int)KX_ARRAY_LEN(vm->pool)) {
        lua_settop(t->co, 0);
        vm->pool[vm->npool].co = t->co;
        vm->pool[vm->npool].ref = t->ref;
        vm->npool++;
    } else {
        /* A coroutine that died with an error cannot be resumed again in LuaJIT. */
        luaL_unref(vm->L, LUA_REGISTRYINDEX, t->ref);
    }
    if (t->conn) kx_conn_unref(t->conn);
    B.in_flight--;
    vm->tasks--;
    bool was_spawned = t->spawned;
    kx_spare_put(&B.spare, t);
    if (was_spawned && vm != B.vm) start_background_when_free();
    if (vm != B.vm && vm->tasks == 0) vm_release_idle();
}

/* After a task that hit the cap: collect, and close the reserve once back under the cap. */
static void after_memory_pressure(void)
{
    if (!B.mem.grace) return;
    for (kx_vm_t *vm = B.vm; vm; vm = vm->older) lua_gc(vm->L, LUA_GCCOLLECT, 0);
    kx_lua_budget_relax(&B.mem);
}

/* ---- epilogues: what each kind of task does once its entry function returned or raised ---- */

/* Field `k` of the table at idx, pushed; its Lua type is returned. */
static int push_field(lua_State *L, int idx, const char *k)
{
    lua_getfield(L, idx, k);
    return lua_type(L, -1);
}

/* headers = { name1, value1, … } (see lua/keryx/transport/web.lua): each name and value is
 * checked on its own and appended as a "Name: value\r\n" line. NULL, or why it was refused. */
static const char *append_headers(lua_State *co, int idx, kx_buf_t *out)
{
    int n = (int)lua_objlen(co, idx);
    if (n % 2) return "headers: odd number of entries";
    for (int i = 1; i <= n; i += 2) {
        lua_rawgeti(co, idx, i);
        lua_rawgeti(co, idx, i + 1);
        size_t nl, vl;
        const char *name = lua_type(co, -2) == LUA_TSTRING ? lua_tolstring(co, -2, &nl) : NULL;
        const char *value = lua_type(co, -1) == LUA_TSTRING ? lua_tolstring(co, -1, &vl) : NULL;
        bool ok = name && value && kx_http_token_valid(name, nl) && kx_http_field_value_valid(value, vl);
        if (ok) { /* one reservation per line, then plain copies */
            kx_buf_reserve(out, nl + vl + 4);
            char *p = out->data + out->len;
            memcpy(p, name, nl);
            memcpy(p + nl, ": ", 2);
            memcpy(p + nl + 2, value, vl);
            memcpy(p + nl + 2 + vl, "\r\n", 2);
            out->len += nl + vl + 4;
            out->data[out->len] = '\0';
        }
        lua_pop(co, 2);
        if (!ok) return "headers: invalid header name or value";
    }
    return NULL;
}

/* session = nil | {set = id} | {expire = true}: the Set-Cookie line comes from session.c, so
 * its flags are the configuration's whatever Lua holds. */
static const char *append_session(lua_State *co, int idx, kx_buf_t *out)
{
    int top = lua_gettop(co);
    const char *why = NULL;
    if (push_field(co, idx, "set") == LUA_TSTRING) {
        size_t len;
        const char *id = lua_tolstring(co, -1, &len);
        if (kx_session_id_valid(id, len)) kx_session_set_cookie(kx_srv->cfg, id, out);
        else why = "session.set: malformed session id";
    } else if (push_field(co, idx, "expire"), lua_toboolean(co, -1)) {
        kx_session_set_cookie(kx_srv->cfg, NULL, out);
    } else {
        why = "session: neither set nor expire";
    }
    lua_settop(co, top);
    return why;
}

/* Reads the web result (lua/keryx/transport/web.lua): six values on the stack, not a table —
 * the fields of a table cost a string lookup each from C, on every request.
 *   1 status, 2 body, 3 content_type, 4 headers, 5 session, 6 discard
 * They stay on the stack while the answer is sent; header lines go to out. */
enum { WEB_STATUS = 1, WEB_BODY, WEB_CTYPE, WEB_HEADERS, WEB_SESSION, WEB_DISCARD };

static const char *read_web_result(lua_State *co, kx_buf_t *out, int *status, const char **ctype,
                                   const char **body, size_t *blen)
{
    *status = lua_type(co, WEB_STATUS) == LUA_TNUMBER ? (int)lua_tointeger(co, WEB_STATUS) : 0;
    if (*status < 100 || *status > 599) return "status out of range";
    if (lua_type(co, WEB_BODY) != LUA_TSTRING) return "body is not a string";
    *body = lua_tolstring(co, WEB_BODY, blen);
    int ct = lua_type(co, WEB_CTYPE);
    if (ct != LUA_TSTRING && ct != LUA_TNIL && ct != LUA_TNONE) return "content_type is not a string";
    size_t ctlen = 0;
    *ctype = ct == LUA_TSTRING ? lua_tolstring(co, WEB_CTYPE, &ctlen) : NULL;
    if (*ctype && (ctlen == 0 || !kx_http_field_value_valid(*ctype, ctlen)))
        return "content_type: invalid value";
    int ht = lua_type(co, WEB_HEADERS);
    if (ht != LUA_TTABLE && ht != LUA_TNIL && ht != LUA_TNONE) return "headers is not a table";
    const char *why = ht == LUA_TTABLE ? append_headers(co, WEB_HEADERS, out) : NULL;
    if (why) return why;
    int st = lua_type(co, WEB_SESSION);
    if (st != LUA_TTABLE && st != LUA_TNIL && st != LUA_TNONE) return "session is not a table";
    return st == LUA_TTABLE ? append_session(co, WEB_SESSION, out) : NULL;
}

/* A streamed answer already sent its status line: whatever the action did afterwards (forgot
 * to end, raised midway, timed out), the response is ended here and never answered twice —
 * the client sees a truncated stream, not a second status line. */
static void end_stream(kx_task_t *t, kx_conn_t *c)
{
    if (t->stream == KX_STREAM_OPEN && c) kx_http_end(c);
    t->stream = KX_STREAM_ENDED;
}

/* A task's Lua string lent to the write queue (lua_api.h kx_lua_lend_*): anchored in its VM's
 * registry only when the queue still holds it after the C call (a slow client); while that
 * call runs the string is on the task's stack. */
struct kx_lua_lend {
    kx_vm_t *vm;
    int ref;   /* LUA_NOREF until anchored */
    bool done; /* released before it was anchored: kx_lua_lend_keep frees it */
};

kx_lua_lend_t *kx_lua_lend_new(kx_task_t *t)
{
    kx_lua_lend_t *l = kx_xcalloc(1, sizeof *l);
    l->vm = t->vm;
    l->ref = LUA_NOREF;
    return l;
}

void kx_lua_lend_release(void *ud)
{
    kx_lua_lend_t *l = ud;
    if (l->ref == LUA_NOREF) {
        l->done = true;
        return;
    }
    kx_vm_t *vm = l->vm;
    luaL_unref(vm->L, LUA_REGISTRYINDEX, l->ref);
    free(l);
    if (--vm->lent == 0 && vm != B.vm) vm_release_idle();
}

void kx_lua_lend_keep(kx_lua_lend_t *l, lua_State *L, int idx)
{
    if (l->done) {
        free(l);
        return;
    }
    lua_pushvalue(L, idx);
    l->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    l->vm->lent++;
}

static void web_send(kx_task_t *t, kx_conn_t *c, int status, const char *ctype, const kx_buf_t *h,
                     const char *body, size_t blen)
{
    if (!ctype) ctype = KX_JSON_CONTENT_TYPE;
    if (blen < KX_HTTP_LEND_MIN) {
        kx_http_send(c, status, ctype, h->data, h->len, body, blen, KX_R_CORS);
        return;
    }
    kx_lua_lend_t *l = kx_lua_lend_new(t);
    kx_http_send_lent(c, status, ctype, h->data, h->len, body, blen, KX_R_CORS, kx_lua_lend_release, l);
    kx_lua_lend_keep(l, t->co, WEB_BODY); /* the body, still on the stack */
}

static void web_answer(kx_task_t *t)
{
    kx_conn_t *c = kx_task_web_conn(t);
    if (t->stream != KX_STREAM_NONE) {
        end_stream(t, c);
        return;
    }
    if (!c) return; /* the client went away: drop the answer */
    kx_buf_t *h = &B.hdrs;
    kx_buf_reset(h);
    int status = 0;
    const char *ctype = NULL, *body = NULL;
    size_t blen = 0;
    const char *why = read_web_result(t->co, h, &status, &ctype, &body, &blen);
    if (why) {
        kx_log_error("refusing an invalid response from the pipeline (status %d): %s", status, why);
        kx_http_send_error(c, 500, "CONNECTION_SERVER_ERROR", "Invalid response from pipeline", 0);
    } else {
        web_send(t, c, status, ctype, h, body, blen);
    }
    /* One oversized answer must not pin its buffer for the process's life. */
    if (h->cap > 64 * 1024) kx_buf_free(h);
}

/* The transport flags a coroutine that hit a stack overflow or the memory cap (discard):
 * LuaJIT keeps its stack at the extended size, so the next overflow could not be handled. */
static void web_finish(kx_task_t *t)
{
    web_answer(t);
    task_free(t, !lua_toboolean(t->co, WEB_DISCARD));
}

static void web_fail(kx_task_t *t)
{
    kx_conn_t *c = kx_task_web_conn(t);
    if (t->stream != KX_STREAM_NONE) end_stream(t, c);
    else if (c) kx_http_send_error(c, 500, "CONNECTION_ACTION_RUN", "Internal server error", 0);
    task_free(t, false);
}

/* WebSocket events and timers return true when their coroutine is spoiled. */
static void bg_finish(kx_task_t *t)
{
    task_free(t, !lua_toboolean(t->co, 1));
}

static void bg_fail(kx_task_t *t)
{
    task_free(t, false);
}

/* A job hands its result table (lua/keryx/transport/task.lua) to the processor waiting for it. */
static void job_finish(kx_task_t *t)
{
    kx_task_t *parent = t->parent;
    lua_State *co = t->co;
    bool discard = lua_type(co, 1) == LUA_TTABLE && (push_field(co, 1, "discard"), lua_toboolean(co, -1));
    lua_settop(co, 1);
    lua_xmove(co, parent->co, 1);
    lua_pushboolean(parent->co, t->cut);
    kx_task_wake(parent, 2);
    task_free(t, !discard);
}

static void job_fail(kx_task_t *t)
{
    kx_task_t *parent = t->parent;
    lua_pushnil(parent->co);
    lua_pushboolean(parent->co, t->cut);
    lua_pushliteral(parent->co, "the job's task failed (see the log)");
    kx_task_wake(parent, 3);
    task_free(t, false);
}

/* {code = n, out = text?, err = text?} (lua/keryx/transport/cli.lua); run_cli frees the task
 * after reading exit_code. */
static void cli_finish(kx_task_t *t)
{
    lua_State *co = t->co;
    bool ok = lua_type(co, 1) == LUA_TTABLE;
    t->exit_code = ok && push_field(co, 1, "code") == LUA_TNUMBER ? (int)lua_tointeger(co, -1) : 1;
    t->reusable = true;
    if (ok && push_field(co, 1, "out") == LUA_TSTRING) printf("%s\n", lua_tostring(co, -1));
    if (ok && push_field(co, 1, "err") == LUA_TSTRING) fprintf(stderr, "%s\n", lua_tostring(co, -1));
    fflush(stdout);
    ev_break(B.srv->loop, EVBREAK_ALL);
}

static void cli_fail(kx_task_t *t)
{
    t->exit_code = 1;
    t->reusable = false;
    fprintf(
        stderr,
        "{\"response\":{},\"error\":{\"message\":\"Internal error\",\"type\":\"CONNECTION_ACTION_RUN\"}}\n");
    ev_break(B.srv->loop, EVBREAK_ALL);
}

static const struct {
    void (*finish)(kx_task_t *t); /* the entry function returned: its results are on t->co */
    void (*fail)(kx_task_t *t);   /* it raised: the framework itself failed */
} task_ops[] = {
    [TASK_WEB] = { web_finish, web_fail },
    [TASK_CLI] = { cli_finish, cli_fail },
    [TASK_BG] = { bg_finish, bg_fail },
    [TASK_JOB] = { job_finish, job_fail },
};

static void resume(kx_task_t *t)
{
    int nargs = t->nargs;
    t->nargs = 0;
    B.current = t;
    int rc = lua_resume(t->co, nargs);
    B.current = NULL;
    if (rc == LUA_YIELD) {
        after_memory_pressure();
        return;
    }
    t->done = true;
    if (rc == 0) {
        task_ops[t->kind].finish(t);
    } else {
        /* The transports catch action errors themselves; reaching here means the framework
         * failed (e.g. out of memory while building an answer). No traceback: building one
         * allocates, and this path is reached when memory is what ran out. */
        const char *msg = lua_type(t->co, -1) == LUA_TSTRING ? lua_tostring(t->co, -1) : "(error object)";
        kx_log_error("task failed: %s", msg);
        task_ops[t->kind].fail(t);
    }
    after_memory_pressure();
}

static void on_check(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)w;
    (void)revents;
    while (B.ready_head) {
        kx_task_t *t = B.ready_head;
        B.ready_head = t->next;
        if (!B.ready_head) B.ready_tail = NULL;
        t->queued = false;
        resume(t);
    }
    ev_idle_stop(loop, &B.idle);
}

static void on_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents; /* only keeps the loop from blocking while tasks are ready */
}

int kx_lua_tasks_in_flight(void)
{
    return B.in_flight;
}

/* ---- entry points -------------------------------------------------------------------------- */

/* stack: t → t with identifier, session_id (a well-formed session cookie) and correlation_id
 * of the request on c: who is asking, the same for HTTP and for a WebSocket upgrade. */
static void push_identity(lua_State *co, kx_conn_t *c)
{
    const kx_request_t *r = c->req;
    lua_pushstring(co, c->peer_ip);
    lua_setfield(co, -2, "identifier");
    char sid[KX_SESSION_ID_LEN + 1];
    if (kx_session_from_request(r, kx_srv->cfg->session_cookie_name, sid)) {
        lua_pushstring(co, sid);
        lua_setfield(co, -2, "session_id");
    }
    if (r->correlation_id[0]) {
        lua_pushstring(co, r->correlation_id);
        lua_setfield(co, -2, "correlation_id");
    }
}

/* The request goes to Lua as positional arguments (keryx.transport.web.from_c builds its table):
 * a table filled from C costs a string lookup per field. */
static void push_or_nil(lua_State *L, const char *v, size_t n)
{
    if (v) lua_pushlstring(L, v, n);
    else lua_pushnil(L);
}

void kx_lua_spawn_web(kx_conn_t *c, int action_id, const kx_route_param_t *params, int n)
{
    kx_request_t *r = c->req;
    kx_task_t *t = task_new(TASK_WEB);
    give_redis_budget(t);
    t->conn = c;
    t->gen = c->gen;
    kx_conn_ref(c);
    lua_State *co = t->co;
    lua_rawgeti(co, LUA_REGISTRYINDEX, t->vm->ref_web);
    /* action_id, method, path, target, host, identifier, session_id, correlation_id, query,
     * body, content_type, params */
    lua_pushinteger(co, action_id);
    lua_pushlstring(co, r->method, r->method_len);
    lua_pushlstring(co, r->path, r->path_len);
    lua_pushlstring(co, r->target, r->target_len);
    const kx_header_t *host = kx_http_header(r, "Host");
    push_or_nil(co, host ? host->value : NULL, host ? host->value_len : 0);
    lua_pushstring(co, c->peer_ip);
    char sid[KX_SESSION_ID_LEN + 1];
    bool has_sid = kx_session_from_request(r, kx_srv->cfg->session_cookie_name, sid);
    push_or_nil(co, has_sid ? sid : NULL, has_sid ? strlen(sid) : 0);
    push_or_nil(co, r->correlation_id[0] ? r->correlation_id : NULL, strlen(r->correlation_id));
    push_or_nil(co, r->query, r->query_len);
    push_or_nil(co, r->body.len ? r->body.data : NULL, r->body.len);
    const kx_header_t *ct = kx_http_header(r, "Content-Type");
    push_or_nil(co, ct ? ct->value : NULL, ct ? ct->value_len : 0);
    if (n > 0) {
        lua_createtable(co, 0, n);
        for (int i = 0; i < n; i++) {
            lua_pushlstring(co, params[i].name, params[i].name_len);
            lua_pushlstring(co, params[i].value, params[i].value_len);
            lua_rawset(co, -3);
        }
    } else {
        lua_pushnil(co);
    }
    t->nargs = 12;
    start_task(t);
}

/* Lua is entered from one place: a task started while another runs (e.g. a socket closed
 * by a send from inside an action) waits on the ready queue instead of nesting. */
static void start_task(kx_task_t *t)
{
    if (B.current) kx_task_wake(t, t->nargs);
    else resume(t);
}

/* The VM that opened WebSocket id: the newest whose first socket is not younger (ids grow, and
 * every OPEN goes to the newest VM). */
static kx_vm_t *vm_of_socket(uint64_t id)
{
    for (kx_vm_t *vm = B.vm; vm; vm = vm->older)
        if (vm->ws_first <= id) return vm;
    return B.vm;
}

void kx_lua_spawn_ws(kx_ws_event_t ev, uint64_t id, kx_conn_t *c, const char *text, size_t len)
{
    kx_vm_t *vm = ev == KX_WS_OPEN ? B.vm : vm_of_socket(id);
    if (ev == KX_WS_OPEN && vm->ws_first == UINT64_MAX) vm->ws_first = id;
    if (ev == KX_WS_OPEN) vm->sockets++;
    if (ev == KX_WS_CLOSE) vm->sockets--;
    if (vm->ref_ws[ev] == LUA_NOREF) {
        if (vm != B.vm) vm_release_idle();
        return;
    }
    kx_task_t *t = task_new_in(vm, TASK_BG);
    if (ev == KX_WS_MESSAGE) give_redis_budget(t);
    lua_State *co = t->co;
    lua_rawgeti(co, LUA_REGISTRYINDEX, vm->ref_ws[ev]);
    lua_pushnumber(co, (lua_Number)id);
    if (ev == KX_WS_MESSAGE) {
        lua_pushlstring(co, text, len);
    } else if (ev == KX_WS_OPEN) {
        lua_createtable(co, 0, 4);
        push_identity(co, c);
    } else {
        lua_pushnil(co);
    }
    t->nargs = 2;
    /* A message from inside wslay's receive callback, and a close deep inside another
     * operation (a flush, a list walk), wait on the ready queue, so Lua never runs inside
     * another library's callback and no caller finds Lua has run under its feet. A message
     * from ws.c's direct path runs now, as an HTTP request does: queued, it would cost the
     * loop one more poll before it ran. */
    if (ev == KX_WS_OPEN || (ev == KX_WS_MESSAGE && kx_ws_message_may_run())) start_task(t);
    else kx_task_wake(t, t->nargs);
}

/* Runs the newest VM's on_start (the presence heartbeat, the task processors and the
 * scheduler tick: lua/keryx/boot.lua). */
static void start_background(void)
{
    kx_vm_t *vm = B.vm;
    B.bg_pending = false;
    if (vm->ref_on_start == LUA_NOREF || B.draining) return;
    kx_task_t *t = task_new_in(vm, TASK_BG);
    lua_rawgeti(t->co, LUA_REGISTRYINDEX, vm->ref_on_start);
    t->nargs = 0;
    start_task(t);
}

void kx_lua_start_background(void)
{
    start_background();
}

int kx_lua_run_cli(const char *command, const char *action, int argc, char **argv)
{
    kx_task_t *t = task_new(TASK_CLI);
    give_redis_budget(t);
    lua_State *co = t->co;
    lua_rawgeti(co, LUA_REGISTRYINDEX, t->vm->ref_cli);
    lua_pushstring(co, action);
    lua_createtable(co, argc, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(co, argv[i]);
        lua_rawseti(co, -2, i + 1);
    }
    lua_pushstring(co, command);
    t->nargs = 3;
    resume(t);
    if (!t->done) ev_run(B.srv->loop, 0);
    int code = t->done ? t->exit_code : 1;
    task_free(t, t->done && t->reusable);
    return code;
}

int kx_lua_list_actions(void)
{
    lua_State *L = B.vm->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, B.vm->ref_list);
    if (lua_pcall(L, 0, 1, 0) != 0) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        return 1;
    }
    printf("%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return 0;
}

/* ---- boot ---------------------------------------------------------------------------------- */

static int l_add_route(lua_State *L)
{
    const char *method = luaL_checkstring(L, 1);
    const char *route = luaL_checkstring(L, 2);
    int id = (int)luaL_checkinteger(L, 3);
    bool absolute = lua_toboolean(L, 4);
    char err[256];
    int rc = absolute ? kx_dispatch_add_absolute(method, route, id, err, sizeof err)
                      : kx_dispatch_add_action(method, route, id, err, sizeof err);
    if (rc != KX_OK) return luaL_error(L, "%s", err);
    return 0;
}

static const luaL_Reg task_fns[] = {
    { "sleep", l_sleep },
    { "arm_timeout", l_arm_timeout },
    { "aborted", l_aborted },
    { "add_route", l_add_route },
    { "task_wait", l_task_wait },
    { "tasks_signal", l_tasks_signal },
    { "draining", l_draining },
    { "spawn", l_spawn },
    { "every", l_every },
    { "run_job", l_run_job },
    { NULL, NULL },
};

static int open_core(lua_State *L)
{
    lua_newtable(L);
    luaL_register(L, NULL, task_fns);
    kx_lua_open_util(L, B.srv);
    kx_lua_open_redis(L);
    kx_lua_open_crypto(L);
    kx_lua_open_ws(L);
    kx_lua_open_ratelimit(L);
    kx_lua_open_http(L);
    kx_lua_open_mcp(L);
    kx_lua_open_metrics(L);
    kx_lua_open_json(L);
    lua_pushstring(L, B.mode == KX_MODE_CLI ? "cli" : "server");
    lua_setfield(L, -2, "mode");
    return 1;
}

static int get_ref(lua_State *L, const char *field)
{
    lua_getfield(L, -1, field);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return LUA_NOREF;
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Loads the framework and the app into vm->L: package.path, keryx.core, boot.start (which
 * registers the routes through core.add_route), the entry points, keryx.strict. */
static int vm_load(kx_vm_t *vm, char *err, size_t errcap)
{
    lua_State *L = vm->L;
    kx_server_t *s = B.srv;
    lua_atpanic(L, l_panic);
    luaL_openlibs(L);

    /* package.path: the framework first, then the app's directory. */
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s/?.lua;", s->home, s->home, B.app_dir);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, open_core);
    lua_setfield(L, -2, "keryx.core");
    lua_pop(L, 2);

    /* boot.start(app_dir) loads actions, registers their routes, returns the entry points. */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "keryx.boot");
    if (lua_pcall(L, 1, 1, 0) != 0) {
        snprintf(err, errcap, "%s", lua_tostring(L, -1));
        return KX_EINVAL;
    }
    lua_getfield(L, -1, "start");
    lua_pushstring(L, B.app_dir);
    if (lua_pcall(L, 1, 1, 0) != 0) {
        snprintf(err, errcap, "%s", lua_tostring(L, -1));
        return KX_EINVAL;
    }
    vm->ref_web = get_ref(L, "web");
    vm->ref_cli = get_ref(L, "cli");
    vm->ref_list = get_ref(L, "list_actions");
    vm->ref_ws[KX_WS_OPEN] = get_ref(L, "ws_open");
    vm->ref_ws[KX_WS_MESSAGE] = get_ref(L, "ws_message");
    vm->ref_ws[KX_WS_CLOSE] = get_ref(L, "ws_close");
    vm->ref_on_start = get_ref(L, "on_start");
    lua_pop(L, 2);
    if (vm->ref_web == LUA_NOREF || vm->ref_cli == LUA_NOREF || vm->ref_list == LUA_NOREF) {
        snprintf(err, errcap, "keryx.boot.start did not return the entry points");
        return KX_EINVAL;
    }
    /* Guard _G: actions must not create globals by accident (a shared VM serves everyone). */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "keryx.strict");
    if (lua_pcall(L, 1, 0, 0) != 0) lua_pop(L, 1);
    return KX_OK;
}

/* A new VM with the app booted, or NULL with err filled (nothing of it is left). */
static kx_vm_t *vm_new(char *err, size_t errcap)
{
    kx_vm_t *vm = kx_xcalloc(1, sizeof *vm);
    vm->ws_first = UINT64_MAX;
    vm->alloc = kx_lua_alloc_new(&B.mem);
    vm->L = vm->alloc ? lua_newstate(kx_lua_alloc_f, vm->alloc) : NULL;
    if (!vm->L) {
        snprintf(err, errcap, "cannot create the Lua VM");
        kx_lua_alloc_destroy(vm->alloc);
        free(vm);
        return NULL;
    }
    lua_pushlightuserdata(vm->L, vm);
    lua_setfield(vm->L, LUA_REGISTRYINDEX, "keryx.vm");
    if (vm_load(vm, err, errcap) != KX_OK) {
        vm_close(vm);
        return NULL;
    }
    return vm;
}

int kx_lua_init(kx_server_t *s, kx_mode_t mode, const char *app_dir, char *err, size_t errcap)
{
    B.srv = s;
    B.mode = mode;
    B.app_dir = kx_xstrdup(app_dir);
    B.mem.limit = (size_t)s->cfg->lua_memory_limit_mb * 1024 * 1024;
    B.mem.reserve = MEM_RESERVE;
    B.spare = (kx_spare_t){ .size = sizeof(kx_task_t), .cap = TASK_SPARE };
    ev_check_init(&B.check, on_check);
    ev_check_start(s->loop, &B.check);
    ev_idle_init(&B.idle, on_idle);
    B.vm = vm_new(err, errcap);
    return B.vm ? KX_OK : KX_EINVAL;
}

/* The new VM registers its routes into a fresh table (its action ids are its own); the old
 * table goes only once the new VM booted. Nothing runs Lua meanwhile: this is called from a
 * signal watcher, never from inside a task. */
int kx_lua_reload(char *err, size_t errcap)
{
    kx_server_t *s = B.srv;
    if (B.current) {
        snprintf(err, errcap, "a task is running");
        return KX_EINVAL;
    }
    kx_router_t *old_routes = s->router;
    s->router = kx_router_new();
    kx_dispatch_init(s);
    kx_vm_t *vm = vm_new(err, errcap);
    if (!vm) {
        kx_router_free(s->router);
        s->router = old_routes;
        return KX_EINVAL;
    }
    kx_router_free(old_routes);
    vm->older = B.vm;
    B.vm = vm;
    /* The older VMs' processors parked in core.task_wait learn they are to end. */
    for (kx_task_t *t = B.waiters, *next; t; t = next) {
        next = t->link_next;
        if (t->vm != B.vm) end_signal_wait(t, "drain");
    }
    B.bg_pending = true;
    start_background_when_free();
    vm_release_idle();
    return KX_OK;
}

void kx_lua_close(void)
{
    while (B.vm) {
        kx_vm_t *older = B.vm->older;
        vm_close(B.vm);
        B.vm = older;
    }
    free_everys(NULL);
    kx_spare_clear(&B.spare);
    kx_lua_waits_free();
    free(B.app_dir);
    B.app_dir = NULL;
}
