/* supervisor.c — forks and supervises the workers (see supervisor.h). */
#include "supervisor.h"
#include "listen.h"
#include "log.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BOOT_TIMEOUT 30.0 /* a worker not accepting by then is killed (counts as a failed boot) */
#define QUICK_DEATH 2.0   /* dying sooner than this after its fork counts as a failed start */
#define BACKOFF_FIRST 0.1 /* seconds before a slot's first retry after a failed start… */
#define BACKOFF_MAX 5.0   /* …doubling up to this: never a tight respawn loop */
#define STOP_GRACE 5.0    /* after SHUTDOWN_TIMEOUT: then the stragglers are killed */
#define MAX_WAIT_MS 1000  /* poll wakes at least this often */
/* The serving generation, the one booting, and generations still draining from earlier
 * reloads: a reload waits for room (reload_pending) rather than fail. */
#define TABLE_SIZE (4 * KX_MAX_WORKERS)

typedef struct {
    pid_t pid; /* 0: a free entry */
    int slot;
    unsigned gen;
    int ready_fd; /* read end of its readiness pipe until it wrote (or died); else -1 */
    bool ready, retiring;
    double born;
} worker_t;

static struct {
    const kx_boot_t *boot;
    kx_config_loader_t reload;
    void *reload_ud;
    kx_config_t *cfg;      /* what workers of the serving generation are forked with */
    kx_config_t *next_cfg; /* during a reload: what the booting generation got */
    bool cfg_owned;        /* cfg was allocated here (the first one is main.c's) */
    int n;
    int port;                          /* the port every slot's socket is bound to */
    int lfd[KX_MAX_WORKERS];           /* per slot; -1 while closed after a failed start */
    double respawn_at[KX_MAX_WORKERS]; /* 0: none due */
    int fails[KX_MAX_WORKERS];         /* failed starts in a row, for the back-off */
    worker_t w[TABLE_SIZE];
    unsigned gen;  /* the serving generation */
    unsigned next; /* the generation booting during a reload; 0: no reload */
    bool reload_pending, started, stopping, failed;
    double stop_deadline;
    int sigfd;
    sigset_t oldmask;
} S;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int count_gen(unsigned gen, bool ready_only)
{
    int n = 0;
    for (int i = 0; i < TABLE_SIZE; i++)
        if (S.w[i].pid && S.w[i].gen == gen && !S.w[i].retiring && (!ready_only || S.w[i].ready)) n++;
    return n;
}

static int count_live(void)
{
    int n = 0;
    for (int i = 0; i < TABLE_SIZE; i++) n += S.w[i].pid != 0;
    return n;
}

/* ---- forking a worker --------------------------------------------------------------------- */

/* In the child: only its own slot's socket and its pipe's write end stay open; signals are
 * back to normal (the supervisor blocks them for its signalfd); it dies with the supervisor. */
static void become_worker(int slot, int ready_wr, pid_t parent, const kx_config_t *cfg)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1); /* the supervisor died before prctl took effect */
    close(S.sigfd);
    for (int i = 0; i < S.n; i++)
        if (i != slot && S.lfd[i] >= 0) close(S.lfd[i]);
    for (int i = 0; i < TABLE_SIZE; i++)
        if (S.w[i].pid && S.w[i].ready_fd >= 0) close(S.w[i].ready_fd);
    signal(SIGHUP, SIG_DFL);
    sigprocmask(SIG_SETMASK, &S.oldmask, NULL);
    kx_boot_t b = *S.boot;
    b.listen_fd = S.lfd[slot];
    b.ready_fd = ready_wr;
    b.worker = slot + 1;
    exit(kx_server_main((kx_config_t *)cfg, &b));
}

static worker_t *free_entry(void)
{
    for (int i = 0; i < TABLE_SIZE; i++)
        if (!S.w[i].pid) return &S.w[i];
    return NULL;
}

static double backoff(int slot)
{
    double d = BACKOFF_FIRST;
    for (int i = 1; i < S.fails[slot] && d < BACKOFF_MAX; i++) d *= 2;
    return d < BACKOFF_MAX ? d : BACKOFF_MAX;
}

/* A slot whose worker failed to start has its socket closed, so the kernel stops queueing
 * connections where nobody accepts; a new one is bound for the next attempt without
 * listening (KX_LISTEN_DEFER): it joins the port's group only when that worker accepts. */
static void close_slot(int slot)
{
    if (S.lfd[slot] < 0) return;
    kx_log_warn("worker %d: no worker accepts on its socket: closed until one starts (new connections go "
                "to the other workers)",
                slot + 1);
    close(S.lfd[slot]);
    S.lfd[slot] = -1;
}

static int open_slot(int slot)
{
    if (S.lfd[slot] >= 0) return KX_OK;
    char err[512];
    int fd = kx_listen_bind(S.cfg->web_host, S.port, KX_LISTEN_REUSEPORT | KX_LISTEN_DEFER, err, sizeof err);
    if (fd < 0) {
        kx_log_error("worker %d: %s", slot + 1, err);
        return KX_EIO;
    }
    S.lfd[slot] = fd;
    return KX_OK;
}

/* KX_OK, or KX_EIO when the socket, pipe or fork failed (logged; the caller retries later). */
static int spawn(int slot, unsigned gen, const kx_config_t *cfg)
{
    worker_t *w = free_entry();
    int p[2];
    if (!w || open_slot(slot) != KX_OK) return KX_EIO; /* !w: the table is full of draining workers */
    if (pipe2(p, O_CLOEXEC) != 0) {
        kx_log_error("worker %d: cannot create its pipe: %s", slot + 1, strerror(errno));
        return KX_EIO;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        become_worker(slot, p[1], parent, cfg);
    }
    close(p[1]);
    if (pid < 0) {
        kx_log_error("worker %d: fork failed: %s", slot + 1, strerror(errno));
        close(p[0]);
        return KX_EIO;
    }
    *w = (worker_t){ .pid = pid, .slot = slot, .gen = gen, .ready_fd = p[0], .born = now() };
    return KX_OK;
}

/* A slot of the serving generation to fill: now, or after its back-off when it failed. */
static void schedule_respawn(int slot, double delay)
{
    S.respawn_at[slot] = now() + delay;
}

static void respawn_due(void)
{
    double t = now();
    for (int s = 0; s < S.n; s++) {
        if (S.respawn_at[s] == 0 || S.respawn_at[s] > t || S.stopping) continue;
        S.respawn_at[s] = 0;
        if (spawn(s, S.gen, S.cfg) != KX_OK) {
            S.fails[s]++;
            schedule_respawn(s, backoff(s));
        }
    }
}

/* ---- reload ------------------------------------------------------------------------------- */

static void signal_gen(unsigned gen, int sig, bool retire)
{
    for (int i = 0; i < TABLE_SIZE; i++) {
        worker_t *w = &S.w[i];
        if (!w->pid || w->gen != gen) continue;
        if (retire) w->retiring = true;
        kill(w->pid, sig);
    }
}

static void free_cfg(kx_config_t *c)
{
    kx_config_free(c);
    free(c);
}

static int free_entries(void)
{
    int n = 0;
    for (int i = 0; i < TABLE_SIZE; i++) n += S.w[i].pid == 0;
    return n;
}

/* Re-reads the configuration and boots a new generation beside the serving one. The address
 * and the number of workers stay those of the start: the sockets are bound once. */
static void begin_reload(void)
{
    if (S.next || free_entries() < S.n) {
        if (!S.reload_pending) kx_log_info("received SIGHUP: reloading once the running reload is done");
        S.reload_pending = true;
        return;
    }
    kx_config_t *c = kx_xcalloc(1, sizeof *c);
    char err[1024];
    if (S.reload(S.reload_ud, c, err, sizeof err) != KX_OK) {
        kx_log_error("reload refused, the running workers keep serving: %s", err);
        free_cfg(c);
        return;
    }
    if (c->workers != S.cfg->workers || c->web_port != S.cfg->web_port ||
        strcmp(c->web_host, S.cfg->web_host))
        kx_log_warn(
            "reload: WEB_SERVER_WORKERS, WEB_SERVER_HOST and WEB_SERVER_PORT take effect on restart only");
    kx_config_bound_port(c, S.port);
    S.next = S.gen + 1;
    S.next_cfg = c;
    kx_log_info("received SIGHUP: starting %d new worker(s) with the app's current code", S.n);
    for (int s = 0; s < S.n; s++) {
        if (spawn(s, S.next, c) == KX_OK) continue;
        kx_log_error("reload abandoned: a new worker could not be started");
        signal_gen(S.next, SIGTERM, true);
        free_cfg(c);
        S.next_cfg = NULL;
        S.next = 0;
        return;
    }
}

/* Every new worker accepts: the old ones stop accepting and drain (their WebSockets get 1001). */
static void finish_reload(void)
{
    kx_log_info("reload: %d new worker(s) accepting; the previous ones drain", S.n);
    signal_gen(S.gen, SIGTERM, true);
    for (int s = 0; s < S.n; s++) S.respawn_at[s] = 0, S.fails[s] = 0;
    if (S.cfg_owned) free_cfg(S.cfg);
    S.cfg = S.next_cfg;
    S.cfg_owned = true;
    S.next_cfg = NULL;
    S.gen = S.next;
    S.next = 0;
}

static void fail_reload(void)
{
    kx_log_error("reload failed: a new worker exited before accepting (its error is above); "
                 "the running workers keep serving the previous code");
    signal_gen(S.next, SIGTERM, true);
    free_cfg(S.next_cfg);
    S.next_cfg = NULL;
    S.next = 0;
}

static void after_reload_step(void)
{
    if (S.next && count_gen(S.next, true) == S.n) finish_reload();
    if (!S.next && S.reload_pending && !S.stopping) {
        S.reload_pending = false;
        begin_reload();
    }
}

/* ---- events ------------------------------------------------------------------------------- */

static void on_ready(worker_t *w)
{
    char c;
    ssize_t n = read(w->ready_fd, &c, 1);
    if (n < 0 && errno == EINTR) return;
    close(w->ready_fd);
    w->ready_fd = -1;
    if (n != 1) return; /* it died before accepting: SIGCHLD tells */
    w->ready = true;
    if (w->gen == S.gen) S.fails[w->slot] = 0;
    if (!S.started && count_gen(S.gen, true) == S.n) {
        S.started = true;
        kx_log_info("started server @ %s://%s:%d with %d workers (supervisor pid %d)",
                    S.cfg->tls_cert && *S.cfg->tls_cert ? "https" : "http", S.cfg->web_host, S.port, S.n,
                    (int)getpid());
    }
    after_reload_step();
}

static void describe_exit(int status, char *buf, size_t cap)
{
    if (WIFSIGNALED(status)) snprintf(buf, cap, "killed by signal %d", WTERMSIG(status));
    else snprintf(buf, cap, "exited with code %d", WEXITSTATUS(status));
}

static void on_exit_of(worker_t *w, int status)
{
    worker_t gone = *w;
    if (w->ready_fd >= 0) close(w->ready_fd);
    *w = (worker_t){ .ready_fd = -1 };
    if (gone.retiring || S.stopping) return;
    char how[64];
    describe_exit(status, how, sizeof how);
    if (gone.gen == S.next) {
        fail_reload();
        return;
    }
    if (!S.started) {
        kx_log_error("worker %d (pid %d) %s during start-up: stopping", gone.slot + 1, (int)gone.pid, how);
        S.failed = true;
        S.stopping = true;
        signal_gen(S.gen, SIGTERM, true);
        return;
    }
    if (!gone.ready) close_slot(gone.slot);
    bool quick = !gone.ready || now() - gone.born < QUICK_DEATH;
    S.fails[gone.slot] = quick ? S.fails[gone.slot] + 1 : 0;
    double delay = S.fails[gone.slot] ? backoff(gone.slot) : 0;
    kx_log_warn("worker %d (pid %d) %s: starting a replacement%s", gone.slot + 1, (int)gone.pid, how,
                delay > 0 ? " after a back-off" : "");
    schedule_respawn(gone.slot, delay);
}

static void reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < TABLE_SIZE; i++)
            if (S.w[i].pid == pid) on_exit_of(&S.w[i], status);
    }
    after_reload_step();
}

static void begin_stop(int sig)
{
    if (S.stopping) return;
    kx_log_info("received %s: draining %d worker(s)", sig == SIGTERM ? "SIGTERM" : "SIGINT", count_live());
    S.stopping = true;
    S.stop_deadline = now() + (double)S.cfg->shutdown_timeout_ms / 1000.0 + STOP_GRACE;
    for (int i = 0; i < TABLE_SIZE; i++)
        if (S.w[i].pid) kill(S.w[i].pid, SIGTERM);
}

static void on_signals(void)
{
    struct signalfd_siginfo si;
    while (read(S.sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD) reap();
        else if (si.ssi_signo == SIGHUP && S.started && !S.stopping) begin_reload();
        else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) begin_stop((int)si.ssi_signo);
    }
}

/* Workers that never became ready, and stragglers past the shutdown deadline, are killed. */
static void enforce_deadlines(void)
{
    double t = now();
    for (int i = 0; i < TABLE_SIZE; i++) {
        worker_t *w = &S.w[i];
        if (!w->pid) continue;
        if (!w->ready && !w->retiring && t - w->born > BOOT_TIMEOUT) {
            kx_log_error("worker %d (pid %d) did not start accepting in %.0f s: killing it", w->slot + 1,
                         (int)w->pid, BOOT_TIMEOUT);
            kill(w->pid, SIGKILL);
        }
        if (S.stopping && t > S.stop_deadline) kill(w->pid, SIGKILL);
    }
}

static int wait_ms(void)
{
    double t = now(), next = t + MAX_WAIT_MS / 1000.0;
    for (int s = 0; s < S.n; s++)
        if (S.respawn_at[s] > 0 && S.respawn_at[s] < next) next = S.respawn_at[s];
    int ms = (int)((next - t) * 1000.0) + 1;
    return ms < 0 ? 0 : ms;
}

static void wait_events(void)
{
    struct pollfd pf[1 + TABLE_SIZE];
    worker_t *who[1 + TABLE_SIZE];
    int n = 0;
    pf[n++] = (struct pollfd){ .fd = S.sigfd, .events = POLLIN };
    for (int i = 0; i < TABLE_SIZE; i++) {
        if (!S.w[i].pid || S.w[i].ready_fd < 0) continue;
        who[n] = &S.w[i];
        pf[n++] = (struct pollfd){ .fd = S.w[i].ready_fd, .events = POLLIN };
    }
    if (poll(pf, (nfds_t)n, wait_ms()) <= 0) return;
    for (int i = 1; i < n; i++)
        if (pf[i].revents && who[i]->pid && who[i]->ready_fd == pf[i].fd) on_ready(who[i]);
    if (pf[0].revents) on_signals();
}

/* ---- start -------------------------------------------------------------------------------- */

static int worker_count(const kx_config_t *cfg)
{
    long n = cfg->workers > 0 ? (long)cfg->workers : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

static int bind_slots(const kx_config_t *cfg)
{
    char err[512];
    S.port = (int)cfg->web_port;
    for (int s = 0; s < S.n; s++) {
        S.lfd[s] = kx_listen_bind(cfg->web_host, S.port, KX_LISTEN_REUSEPORT, err, sizeof err);
        if (S.lfd[s] < 0) {
            fprintf(stderr, "keryx: %s\n", err);
            return KX_EIO;
        }
        S.port = kx_listen_fd_port(S.lfd[0]); /* WEB_SERVER_PORT=0: every slot on the port picked */
    }
    return KX_OK;
}

static int block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, &S.oldmask) != 0) return KX_EIO;
    S.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return S.sigfd < 0 ? KX_EIO : KX_OK;
}

int kx_supervisor_run(kx_config_t *cfg, const kx_boot_t *boot, kx_config_loader_t reload, void *ud)
{
    if (cfg->workers > KX_MAX_WORKERS) {
        fprintf(stderr, "keryx: WEB_SERVER_WORKERS: at most %d workers\n", KX_MAX_WORKERS);
        return 1;
    }
    S.boot = boot;
    S.reload = reload;
    S.reload_ud = ud;
    S.cfg = cfg;
    S.n = worker_count(cfg);
    if (S.n > KX_MAX_WORKERS) S.n = KX_MAX_WORKERS;
    for (int i = 0; i < TABLE_SIZE; i++) S.w[i].ready_fd = -1;
    if (bind_slots(cfg) != KX_OK) return 1;
    kx_config_bound_port(cfg, S.port);
    if (block_signals() != KX_OK) {
        fprintf(stderr, "keryx: cannot set up the supervisor's signals: %s\n", strerror(errno));
        return 1;
    }
    S.gen = 1;
    for (int s = 0; s < S.n; s++)
        if (spawn(s, S.gen, cfg) != KX_OK) schedule_respawn(s, BACKOFF_FIRST);
    while (!S.stopping || count_live() > 0) {
        wait_events();
        respawn_due();
        enforce_deadlines();
    }
    for (int s = 0; s < S.n; s++)
        if (S.lfd[s] >= 0) close(S.lfd[s]);
    if (S.failed) return 1;
    kx_log_info("stopped server");
    return 0;
}
