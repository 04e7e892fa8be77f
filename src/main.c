/* main.c — command line, boot order (config → logging → VM and app → listener → loop) and
 * graceful drain on SIGTERM/SIGINT.
 *
 *   keryx start                 serve ./app with ./config.lua
 *   keryx run ACTION [--k v]    run one action through the pipeline (connection type cli)
 *   keryx actions               list actions, routes and descriptions
 *   keryx enqueue ACTION [--k v] queue one background job (keryx.tasks)
 *   keryx tasks [retry-failed] [--json]   the task queues' state; put failed jobs back
 *   keryx check                 the production self-check (prodcheck.h), as NODE_ENV=production
 *   keryx --help | --version    (global options: --app DIR, --config FILE) */
#include "channels.h"
#include "config_file.h"
#include "dispatch.h"
#include "listen.h"
#include "log.h"
#include "lua_bridge.h"
#include "metrics.h"
#include "redis_script.h"
#include "redis.h"
#include "crypto.h"
#include "prodcheck.h"
#include "pubsub.h"
#include "ws.h"
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>



static const char usage[] =
    "keryx " KX_VERSION " — Lua actions over HTTP, WebSocket and the command line\n"
    "\n"
    "usage:\n"
    "  keryx [--app DIR] [--config FILE] start          serve the app (HTTP)\n"
    "  keryx [--app DIR] [--config FILE] run ACTION [--input value ...] [-q]\n"
    "                                                  run one action; JSON result on stdout\n"
    "  keryx [--app DIR] [--config FILE] actions        list actions with routes\n"
    "  keryx [--app DIR] [--config FILE] enqueue ACTION [--input value ...]\n"
    "                                                  queue one background job\n"
    "  keryx [--app DIR] [--config FILE] tasks [retry-failed] [--json]\n"
    "                                                  queue lengths, delayed, failed, workers\n"
    "  keryx [--config FILE] check                      production self-check (exit 1: unsafe)\n"
    "  keryx --help | --version\n"
    "\n"
    "--app and --config may also follow the command (for run: before ACTION; everything after\n"
    "ACTION is the action's input). defaults: --app ./app, --config ./config.lua; settings: see\n"
    "README (env vars win).\n";

/* ---- drain ------------------------------------------------------------------------------ */

static ev_signal sig_term, sig_int;
static ev_timer drain_timer;
static ev_tstamp drain_deadline, ws_drain_deadline;
static bool jobs_cut;

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

static const kx_listen_opts_t http_listener = {
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

static void on_drain_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    kx_server_t *s = kx_srv;
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
    if (kx_ws_count() > 0) kx_log_info("Draining %d WebSocket connection(s)...", kx_ws_count());
    kx_ws_close_all(1001, "Server shutting down");
    drain_deadline = ev_now(loop) + (ev_tstamp)s->cfg->shutdown_timeout_ms / 1000.0;
    ws_drain_deadline = ev_now(loop) + (ev_tstamp)s->cfg->ws_drain_timeout_ms / 1000.0;
    ev_timer_init(&drain_timer, on_drain_tick, 0., 0.05);
    ev_timer_start(loop, &drain_timer);
}

/* ---- boot ------------------------------------------------------------------------------- */

static char *find_home(void)
{
    const char *env = getenv("KERYX_HOME");
    if (env && *env) return kx_xstrdup(env);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return kx_xstrdup(".");
    exe[n] = '\0';
    return kx_xstrdup(dirname(exe));
}

static int open_dir(const char *path)
{
    return open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

typedef struct {
    const char *app;
    const char *config;
    bool config_given;
    const char *cmd;
    const char *action; /* run: the action's name */
    int rest;           /* index of the first argument after the command (run: after ACTION) */
} args_t;

/* --app DIR, --config FILE (or --app=DIR, --config=FILE). Returns 1 when argv[*i] was one
 * (and moves past it), 0 when argv[*i] is no option of ours, -1 on a missing value. */
static int take_global(int argc, char **argv, int *i, args_t *a, char *err, size_t cap)
{
    const char *arg = argv[*i];
    const char *names[] = { "--app", "--config" };
    for (size_t k = 0; k < KX_ARRAY_LEN(names); k++) {
        size_t n = strlen(names[k]);
        if (strncmp(arg, names[k], n) != 0 || (arg[n] != '\0' && arg[n] != '=')) continue;
        const char *v = arg[n] == '=' ? arg + n + 1 : NULL;
        if (!v) {
            if (*i + 1 >= argc) {
                snprintf(err, cap, "option %s needs a value", names[k]);
                return -1;
            }
            v = argv[++*i];
        }
        if (k == 0) a->app = v;
        else a->config = v, a->config_given = true;
        ++*i;
        return 1;
    }
    return 0;
}

static bool is_help_or_version(const char *s)
{
    return !strcmp(s, "--help") || !strcmp(s, "-h") || !strcmp(s, "--version") || !strcmp(s, "-v");
}

/* Global options go before the command, or after it (for `run`: before ACTION; every
 * argument after ACTION is the action's input). Anything else that looks like an option, or a
 * stray word, is an error naming it. */
static int parse_args(int argc, char **argv, args_t *a, char *err, size_t cap)
{
    a->app = "app";
    a->config = "config.lua";
    a->config_given = false;
    a->cmd = NULL;
    a->action = NULL;
    int i = 1;
    while (i < argc) {
        int rc = take_global(argc, argv, &i, a, err, cap);
        if (rc < 0) return KX_EINVAL;
        if (rc > 0) continue;
        if (!a->cmd && argv[i][0] == '-' && !is_help_or_version(argv[i])) {
            snprintf(err, cap, "unknown option '%s'", argv[i]);
            return KX_EINVAL;
        }
        if (!a->cmd) {
            a->cmd = argv[i++];
            continue;
        }
        if ((strcmp(a->cmd, "run") == 0 || strcmp(a->cmd, "enqueue") == 0) && argv[i][0] != '-') {
            a->action = argv[i++];
            break; /* the rest is the action's input */
        }
        if (strcmp(a->cmd, "tasks") == 0) break; /* the rest is for `tasks` (retry-failed, --json) */
        if (argv[i][0] == '-') snprintf(err, cap, "unknown option '%s'", argv[i]);
        else snprintf(err, cap, "unexpected argument '%s'", argv[i]);
        return KX_EINVAL;
    }
    a->rest = i;
    return KX_OK;
}

/* A mistyped --app would otherwise serve an empty app (only the built-in actions). */
static int check_app_dir(const char *app, char *err, size_t cap)
{
    struct stat st;
    if (stat(app, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, cap, "--app: directory \"%.400s\" does not exist", app);
        return KX_EINVAL;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/actions", app);
    DIR *d = opendir(path);
    bool found = false;
    for (struct dirent *e; d && !found && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        found = n > 4 && e->d_name[0] != '.' && strcmp(e->d_name + n - 4, ".lua") == 0;
    }
    if (d) closedir(d);
    if (!found) {
        snprintf(err, cap, "--app: no actions in \"%.400s\" (expected .lua files in its actions/ directory)",
                 app);
        return KX_EINVAL;
    }
    return KX_OK;
}

/* The production self-check's report (README "Production self-check"): one line per unsafe
 * setting, as warnings at start-up or on stdout for `keryx check`. Returns how many. */
static int production_report(const kx_config_t *cfg, bool to_stdout)
{
    kx_prodcheck_item_t items[KX_PRODCHECK_MAX];
    int n = kx_prodcheck(cfg, items);
    for (int i = 0; i < n; i++) {
        if (to_stdout) printf("unsafe in production: %s\n", items[i].line);
        else kx_log_warn("unsafe in production: %s", items[i].line);
    }
    if (to_stdout) printf("production check: %d unsafe setting(s)\n", n);
    return n;
}

static int fatal(const char *msg)
{
    fprintf(stderr, "keryx: %s\n", msg);
    return 1;
}

int main(int argc, char **argv)
{
    args_t a;
    char perr[256];
    if (parse_args(argc, argv, &a, perr, sizeof perr) != KX_OK) {
        fprintf(stderr, "keryx: %s (see keryx --help)\n", perr);
        return 1;
    }
    if (!a.cmd || strcmp(a.cmd, "--help") == 0 || strcmp(a.cmd, "-h") == 0 || strcmp(a.cmd, "help") == 0) {
        fputs(usage, a.cmd ? stdout : stderr);
        return a.cmd ? 0 : 1;
    }
    if (strcmp(a.cmd, "--version") == 0 || strcmp(a.cmd, "-v") == 0 || strcmp(a.cmd, "version") == 0) {
        printf("keryx %s\n", KX_VERSION);
        return 0;
    }
    bool tasks_cmd = strcmp(a.cmd, "enqueue") == 0 || strcmp(a.cmd, "tasks") == 0;
    bool cli = strcmp(a.cmd, "run") == 0 || tasks_cmd;
    bool list = strcmp(a.cmd, "actions") == 0;
    bool check = strcmp(a.cmd, "check") == 0;
    if (!cli && !list && !check && strcmp(a.cmd, "start") != 0) {
        fprintf(stderr, "error: unknown command '%s'\n\n%s", a.cmd, usage);
        return 1;
    }
    if (cli && !a.action && strcmp(a.cmd, "tasks") != 0)
        return fatal(strcmp(a.cmd, "enqueue") == 0 ? "usage: keryx enqueue ACTION [--input value ...]"
                                                   : "usage: keryx run ACTION [--input value ...] [-q]");

    static kx_config_t cfg;
    static kx_server_t srv;
    char err[1024];
    if (!check && check_app_dir(a.app, err, sizeof err) != KX_OK) return fatal(err);
    kx_config_defaults(&cfg, check ? "production" : getenv("NODE_ENV"));
    if (kx_config_file_apply(&cfg, a.config, a.config_given, err, sizeof err) != KX_OK ||
        kx_config_apply_env(&cfg, err, sizeof err) != KX_OK ||
        kx_config_finish(&cfg, err, sizeof err) != KX_OK)
        return fatal(err);
    if (check) return production_report(&cfg, true) ? 1 : 0;

    if (cfg.tls_cert && *cfg.tls_cert)
        return fatal("WEB_SERVER_TLS_CERT/WEB_SERVER_TLS_KEY are set, but this build does not speak TLS "
                     "yet: terminate TLS in front of keryx, or unset them (refusing to serve plain HTTP "
                     "where HTTPS was asked for)");
    if (cfg.workers != 1) return fatal("WEB_SERVER_WORKERS: only 1 worker is supported in this release");
    bool quiet = cfg.cli_quiet;
    for (int i = a.rest; cli && i < argc; i++)
        if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0) quiet = true;
    kx_log_opts_t lo = { cfg.log_level, cfg.log_timestamps, cfg.log_colorize && isatty(cli || list ? 2 : 1),
                         cfg.log_json, (cli || list) ? 2 : 1 };
    if ((cli && quiet) || list) lo.level = list ? KX_LOG_WARN : KX_LOG_OFF;
    if (tasks_cmd) lo.level = KX_LOG_WARN; /* their output is the answer: no boot chatter */
    kx_log_configure(&lo);
    if (!cli && !list && strcmp(cfg.node_env, "production") == 0 && production_report(&cfg, false) &&
        cfg.strict_production)
        return fatal(
            "KERYX_STRICT_PRODUCTION=true: refusing to start with unsafe production settings (above)");
    signal(SIGPIPE, SIG_IGN);

    srv.loop = ev_default_loop(EVFLAG_AUTO);
    srv.cfg = &cfg;
    srv.router = kx_router_new();
    srv.home = find_home();
    srv.started = ev_time();
    srv.static_root_fd = open_dir(cfg.static_directory);
    char www[PATH_MAX];
    snprintf(www, sizeof www, "%s/lua/keryx/www", srv.home);
    srv.www_root_fd = open_dir(www);
    kx_srv = &srv;
    /* Shared counters: mapped before anything could fork and before routes get their labels. */
    if (!cli && !list && cfg.metrics_enabled && kx_metrics_init(err, sizeof err) != KX_OK) return fatal(err);
    wire_protocols();
    kx_dispatch_init(&srv);

    /* The server binds before the app boots, so the app sees the URL of the port it got. */
    if (!cli && !list) {
        if (kx_listen_start(&srv, &http_listener, err, sizeof err) != KX_OK) return fatal(err);
        kx_config_bound_port(&cfg, kx_listen_port(&srv));
    }
    /* After the bind: the MCP CORS rule names APPLICATION_URL's origin, which may name the port
     * just picked. No response is written before the loop runs. */
    kx_response_init(&srv);
    if (kx_lua_init(&srv, cli ? KX_MODE_CLI : KX_MODE_SERVER, a.app, err, sizeof err) != KX_OK)
        return fatal(err);
    if (list) return kx_lua_list_actions();
    if (kx_crypto_start(srv.loop) != KX_OK) return fatal("cannot start the password hashing threads");
    if (kx_redis_start(srv.loop, cfg.redis_url, cfg.redis_command_timeout_ms, err, sizeof err) != KX_OK)
        return fatal(err);
    char scripts[PATH_MAX];
    snprintf(scripts, sizeof scripts, "%s/lua/redis", srv.home);
    if (kx_redis_scripts_load(scripts, err, sizeof err) != KX_OK) return fatal(err);
    kx_redis_wait_first((double)cfg.redis_command_timeout_ms / 1000.0);
    if (cli) {
        int code = kx_lua_run_cli(a.cmd, a.action ? a.action : "", argc - a.rest, argv + a.rest);
        kx_redis_flush((double)cfg.redis_command_timeout_ms / 1000.0); /* what the action sent */
        kx_redis_stop();
        kx_redis_scripts_free();
        kx_crypto_stop();
        kx_lua_close();
        return code;
    }

    if (cfg.static_enabled && srv.static_root_fd < 0)
        kx_log_warn("static files directory \"%s\" not found: static files disabled", cfg.static_directory);
    if (cfg.include_stack_in_errors && strcmp(cfg.web_host, "localhost") &&
        strcmp(cfg.web_host, "127.0.0.1") && strcmp(cfg.web_host, "::1") && strcmp(cfg.web_host, "[::1]"))
        kx_log_warn("stack traces are included in error responses and the server listens on %s: "
                    "set NODE_ENV=production or WEB_SERVER_INCLUDE_STACK_IN_ERRORS=false",
                    cfg.web_host);
    if (kx_pubsub_start(srv.loop, cfg.redis_url, cfg.redis_command_timeout_ms, kx_channels_on_publish, err,
                        sizeof err) != KX_OK)
        return fatal(err);
    kx_pubsub_on_tasks_signal(kx_lua_tasks_signal);
    kx_lua_start_background();
    kx_log_info("started server @ http://%s:%d", cfg.web_host, kx_listen_port(&srv));

    ev_signal_init(&sig_term, on_signal, SIGTERM);
    ev_signal_init(&sig_int, on_signal, SIGINT);
    ev_signal_start(srv.loop, &sig_term);
    ev_signal_start(srv.loop, &sig_int);
    ev_run(srv.loop, 0);
    kx_log_info("stopped server");
    kx_pubsub_stop();
    kx_redis_stop();
    kx_redis_scripts_free();
    kx_crypto_stop();
    kx_lua_close();
    return 0;
}
