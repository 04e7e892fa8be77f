/* server.c — one serving process: boot order, wiring, signals and drain (see server_run.h).
 * Kept apart from main.c (the command line) so that a forked worker boots the same way a
 * lone process does, with its VM, Redis connections and crypto threads started after the fork. */
#include "server_run.h"
#include "channels.h"
#include "dispatch.h"
#include "home.h"
#include "listen.h"
#include "log.h"
#include "lua_bridge.h"
#include "redis_script.h"
#include "ratelimit.h"
#include "redis.h"
#include "crypto.h"
#include "pubsub.h"
#include "tls.h"
#include "watch.h"
#include "ws.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- drain ------------------------------------------------------------------------------ */

static ev_signal sig_term, sig_int, sig_hup;
static ev_timer drain_timer;
static ev_tstamp drain_deadline, ws_drain_deadline, idle_close_at;
static bool ws_told; /* the WebSockets got their 1001 */
static bool jobs_cut;

/* A draining worker (supervisor.c replaces it on SIGHUP, or stops them all) keeps an idle
 * keep-alive connection open this long: a client under load sends its next request within it
 * and gets it answered with `Connection: close`, instead of racing a close with a request
 * already on the wire. Its WebSockets keep working meanwhile and get 1001 at its end. */
#define KX_WORKER_IDLE_GRACE 1.0

static bool is_worker; /* forked by supervisor.c */

/* ---- wiring: the handlers lower layers call (they never name a higher layer) ----------- */

static void ws_opened(kx_conn_t *c, uint64_t id)
{
    kx_lua_spawn_ws(KX_WS_OPEN, id, c, NULL, 0);
}

static void ws_message(uint64_t id, const char *text, size_t len)
{
    kx_lua_spawn_ws(KX_WS_MESSAGE, id, NULL, text, len);
}

static void ws_closed(kx_conn_t *c, uint64_t id)
{
    kx_channels_drop(c);
    kx_lua_spawn_ws(KX_WS_CLOSE, id, NULL, NULL, 0);
}

static const kx_ws_events_t ws_events = { ws_opened, ws_message, ws_closed };

/* The transport becomes kx_transport_tls when WEB_SERVER_TLS_CERT/KEY are set. */
static kx_listen_opts_t http_listener = {
    .transport = &kx_transport_plain,
    .on_open = kx_http_attach,
    .refuse = kx_http_refuse_busy,
};

static void wire_protocols(void)
{
    kx_http_set_request_handler(kx_dispatch);
    kx_dispatch_set_action_runner(kx_lua_spawn_web);
    kx_ws_set_events(&ws_events);
}

/* WebSockets get 1001 ("going away"): they reconnect, and find a process that accepts. */
static void close_websockets(void)
{
    ws_told = true;
    if (kx_ws_count() > 0) kx_log_info("Draining %d WebSocket connection(s)...", kx_ws_count());
    kx_ws_close_all(1001, "Server shutting down");
}

static void on_drain_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    kx_server_t *s = kx_srv;
    if (ev_now(loop) < idle_close_at && ev_now(loop) < drain_deadline) return;
    if (!ws_told) close_websockets();
    kx_conn_close_idle(s);
    /* WebSockets got close 1001; those that have not answered by WS_DRAIN_TIMEOUT go now. */
    if (kx_ws_count() > 0 && ev_now(loop) >= ws_drain_deadline) {
        kx_log_warn("Force-closed %d lingering WebSocket connection(s)", kx_ws_count());
        kx_ws_close_lingering();
    }
    /* The same deadline for background jobs: the unfinished ones go back to their queue. */
    if (!jobs_cut && ev_now(loop) >= ws_drain_deadline) {
        jobs_cut = true;
        kx_lua_cut_jobs();
    }
    if ((s->n_conns == 0 && kx_lua_tasks_in_flight() == 0) || ev_now(loop) >= drain_deadline) {
        if (s->n_conns) kx_log_warn("Force-closed %d lingering connection(s)", s->n_conns);
        ev_break(loop, EVBREAK_ALL);
    }
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    kx_server_t *s = kx_srv;
    if (s->draining) return;
    kx_log_info("received %s: draining %d connection(s)", w->signum == SIGTERM ? "SIGTERM" : "SIGINT",
                s->n_conns);
    s->draining = true;
    kx_listen_stop(s);
    kx_lua_drain_begin();
    /* A worker waits out the grace before telling its WebSockets to go, so that by the time
     * they reconnect every worker being replaced has stopped accepting too. */
    idle_close_at = ev_now(loop) + (is_worker ? KX_WORKER_IDLE_GRACE : 0.);
    if (!is_worker) close_websockets();
    drain_deadline = ev_now(loop) + (ev_tstamp)s->cfg->shutdown_timeout_ms / 1000.0;
    ws_drain_deadline = idle_close_at + (ev_tstamp)s->cfg->ws_drain_timeout_ms / 1000.0;
    ev_timer_init(&drain_timer, on_drain_tick, 0., 0.05);
    ev_timer_start(loop, &drain_timer);
}

/* SIGHUP in a lone process: the app's current code replaces the running VM's (lua_bridge.c
 * kx_lua_reload); every connection stays open. A file that fails to load keeps the running
 * code, and the error (file and line) is logged. */
static void reload_app(const char *why)
{
    if (kx_srv->draining) return;
    kx_log_info("%s: reloading the app's Lua code", why);
    char err[1024];
    /* New connections get the certificate and key as the files now are; open ones keep theirs. */
    if (kx_tls_enabled() && kx_tls_reload(err, sizeof err) == KX_OK)
        kx_log_info("reloaded the TLS certificate and key");
    else if (kx_tls_enabled())
        kx_log_error("TLS certificate not reloaded, the previous one stays in use: %s", err);
    if (kx_lua_reload(err, sizeof err) != KX_OK) {
        kx_log_error("reload failed, the running code keeps serving: %s", err);
        return;
    }
    kx_log_info("reload: new requests run the app's current code");
}

static void on_reload(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    reload_app("received SIGHUP");
}

/* --watch: an edit under the app directory reloads the same way SIGHUP does. */
static void on_app_changed(void)
{
    reload_app("the app changed on disk");
}

static int open_dir(const char *path)
{
    return open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

static int fatal(const char *msg)
{
    fprintf(stderr, "keryx: %s\n", msg);
    return 1;
}

/* ---- boot ------------------------------------------------------------------------------- */

/* A worker tells the supervisor it accepts (one byte on the pipe it inherited), so that on a
 * reload the old workers stop accepting only once the new ones do. */
static void tell_ready(const kx_boot_t *b)
{
    if (b->ready_fd < 0) return;
    ssize_t n;
    do n = write(b->ready_fd, "R", 1);
    while (n < 0 && errno == EINTR);
    close(b->ready_fd);
}

static int start_listener(kx_server_t *srv, const kx_boot_t *b, char *err, size_t errcap)
{
    const kx_config_t *cfg = srv->cfg;
    if (cfg->tls_cert && *cfg->tls_cert) {
        if (kx_tls_init(cfg->tls_cert, cfg->tls_key, err, errcap) != KX_OK) return KX_EINVAL;
        http_listener.transport = &kx_transport_tls;
        http_listener.refuse = kx_tls_refuse;
    }
    if (b->listen_fd >= 0) return kx_listen_adopt(srv, b->listen_fd, &http_listener, err, errcap);
    return kx_listen_start(srv, &http_listener, err, errcap);
}

static void warn_unsafe_settings(const kx_config_t *cfg, const kx_server_t *srv)
{
    if (cfg->static_enabled && srv->static_root_fd < 0)
        kx_log_warn("static files directory \"%s\" not found: static files disabled", cfg->static_directory);
    if (cfg->include_stack_in_errors && strcmp(cfg->web_host, "localhost") &&
        strcmp(cfg->web_host, "127.0.0.1") && strcmp(cfg->web_host, "::1") && strcmp(cfg->web_host, "[::1]"))
        kx_log_warn("stack traces are included in error responses and the server listens on %s: "
                    "set NODE_ENV=production or WEB_SERVER_INCLUDE_STACK_IN_ERRORS=false",
                    cfg->web_host);
}

static void start_signals(struct ev_loop *loop)
{
    ev_signal_init(&sig_term, on_signal, SIGTERM);
    ev_signal_init(&sig_int, on_signal, SIGINT);
    ev_signal_start(loop, &sig_term);
    ev_signal_start(loop, &sig_int);
    /* A worker is replaced as a whole on SIGHUP (the supervisor's); a lone process reloads in
     * place. A hangup of the terminal's process group must not kill a worker either way. */
    if (is_worker) {
        signal(SIGHUP, SIG_IGN);
        return;
    }
    ev_signal_init(&sig_hup, on_reload, SIGHUP);
    ev_signal_start(loop, &sig_hup);
}

int kx_server_main(kx_config_t *cfg, const kx_boot_t *b)
{
    static kx_server_t srv;
    char err[1024];
    bool cli = b->what == KX_RUN_CLI, list = b->what == KX_RUN_LIST;
    is_worker = b->worker > 0;
    srv.loop = ev_default_loop(EVFLAG_AUTO);
    srv.cfg = cfg;
    srv.router = kx_router_new();
    srv.home = kx_home_find();
    srv.started = ev_time();
    srv.static_root_fd = open_dir(cfg->static_directory);
    char www[PATH_MAX];
    snprintf(www, sizeof www, "%s/lua/keryx/www", srv.home);
    srv.www_root_fd = open_dir(www);
    kx_srv = &srv;
    wire_protocols();
    kx_dispatch_init(&srv);

    /* The server binds before the app boots, so the app sees the URL of the port it got. */
    if (!cli && !list) {
        if (start_listener(&srv, b, err, sizeof err) != KX_OK) return fatal(err);
        kx_config_bound_port(cfg, kx_listen_port(&srv));
    }
    /* After the bind: the MCP CORS rule names APPLICATION_URL's origin, which may name the port
     * just picked. No response is written before the loop runs. */
    kx_response_init(&srv);
    if (kx_lua_init(&srv, cli ? KX_MODE_CLI : KX_MODE_SERVER, b->app, err, sizeof err) != KX_OK)
        return fatal(err);
    if (list) return kx_lua_list_actions();
    if (kx_crypto_start(srv.loop) != KX_OK) return fatal("cannot start the password hashing threads");
    if (kx_redis_start(srv.loop, cfg->redis_url, cfg->redis_command_timeout_ms, err, sizeof err) != KX_OK)
        return fatal(err);
    char scripts[PATH_MAX];
    snprintf(scripts, sizeof scripts, "%s/lua/redis", srv.home);
    if (kx_redis_scripts_load(scripts, err, sizeof err) != KX_OK) return fatal(err);
    kx_redis_wait_first((double)cfg->redis_command_timeout_ms / 1000.0);
    if (cli) {
        int code = kx_lua_run_cli(b->command, b->action ? b->action : "", b->argc, b->argv);
        kx_redis_flush((double)cfg->redis_command_timeout_ms / 1000.0); /* what the action sent */
        kx_redis_stop();
        kx_ratelimit_free();
        kx_redis_scripts_free();
        kx_crypto_stop();
        kx_lua_close();
        return code;
    }

    if (!is_worker || b->worker == 1) warn_unsafe_settings(cfg, &srv);
    if (kx_pubsub_start(srv.loop, cfg->redis_url, cfg->redis_command_timeout_ms, kx_channels_on_publish, err,
                        sizeof err) != KX_OK)
        return fatal(err);
    kx_pubsub_on_tasks_signal(kx_lua_tasks_signal);
    kx_lua_start_background();
    if (is_worker) kx_log_info("worker %d ready (pid %d)", b->worker, (int)getpid());
    else
        kx_log_info("started server @ %s://%s:%d", kx_tls_enabled() ? "https" : "http", cfg->web_host,
                    kx_listen_port(&srv));

    start_signals(srv.loop);
    if (b->watch && kx_watch_start(srv.loop, b->app, on_app_changed, err, sizeof err) != KX_OK)
        return fatal(err);
    if (b->watch) kx_log_info("watching %s: an edit reloads the app's Lua code", b->app);
    tell_ready(b);
    ev_run(srv.loop, 0);
    if (is_worker) kx_log_info("worker %d stopped (pid %d)", b->worker, (int)getpid());
    else kx_log_info("stopped server");
    kx_watch_stop();
    kx_pubsub_stop();
    kx_redis_stop();
    kx_ratelimit_free();
    kx_redis_scripts_free();
    kx_crypto_stop();
    kx_lua_close();
    kx_tls_free();
    return 0;
}
