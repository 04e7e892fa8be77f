/* main.c — the command line: parses it, reads the configuration (defaults → config.lua →
 * environment), sets up logging, then hands over to server.c (one process, the CLI, the
 * action list) or supervisor.c (WEB_SERVER_WORKERS other than 1).
 *
 *   keryx start                 serve ./app with ./config.lua
 *   keryx run ACTION [--k v]    run one action through the pipeline (connection type cli)
 *   keryx actions               list actions, routes and descriptions
 *   keryx enqueue ACTION [--k v] queue one background job (keryx.tasks)
 *   keryx tasks [retry-failed] [--json]   the task queues' state; put failed jobs back
 *   keryx check                 the production self-check (prodcheck.h), as NODE_ENV=production
 *   keryx new DIR               a runnable project (lua/keryx/scaffold.lua)
 *   keryx generate action|channel NAME   one file from a template
 *   keryx --help | --version    (global options: --root DIR, --app DIR, --config FILE)
 *
 * The project root is --root DIR, else the current directory; keryx works from it (chdir),
 * so every relative path — the app, config.lua, the static directory — resolves against the
 * project, wherever keryx was started from. */
#include "config_file.h"
#include "home.h"
#include "log.h"
#include "lua_tool.h"
#include "metrics.h"
#include "prodcheck.h"
#include "server_run.h"
#include "supervisor.h"
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "keryx " KX_VERSION " — Lua actions over HTTP, WebSocket and the command line\n"
    "\n"
    "usage:\n"
    "  keryx new DIR                                    create a project (config.lua, app/, assets/, spec/)\n"
    "  keryx generate action|channel NAME [--method M] [--route /path]\n"
    "                                                  add app/actions/NAME.lua or app/channels/NAME.lua\n"
    "  keryx [--app DIR] [--config FILE] start [--watch] serve the app (HTTP); --watch: reload on edits\n"
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
    "Every command also takes --root DIR (the project; default: the current directory). --root,\n"
    "--app and --config may also follow the command (for run: before ACTION; everything after\n"
    "ACTION is the action's input). defaults: --app app, --config config.lua (optional), both\n"
    "under the project root; settings: see README (env vars win).\n";

/* ---- boot ------------------------------------------------------------------------------- */

typedef struct {
    const char *root; /* --root, or NULL: the current directory */
    const char *app;
    const char *config;
    bool config_given;
    bool watch; /* --watch: reload the app in place when a file under it changes */
    bool help, version;
    const char *cmd;
    const char *action; /* run: the action's name */
    int rest;           /* index of the first argument after the command (run: after ACTION) */
} args_t;

static const struct option global_opts[] = {
    { "root", required_argument, NULL, 'r' },
    { "app", required_argument, NULL, 'a' },
    { "config", required_argument, NULL, 'c' },
    { "watch", no_argument, NULL, 'w' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'v' },
    { NULL, 0, NULL, 0 },
};

/* Global options with getopt_long from argv[optind], stopping at the first word ("+": no
 * permutation, so an action's own flags are never taken for ours). KX_EINVAL names an unknown
 * option or a missing value. */
static int take_globals(int argc, char **argv, args_t *a, char *err, size_t cap)
{
    opterr = 0; /* our messages, not getopt's */
    for (;;) {
        int prev = optind;
        int c = getopt_long(argc, argv, "+:hv", global_opts, NULL);
        if (c == -1) return KX_OK;
        const char *arg = argv[optind - 1 > prev ? prev : optind - 1];
        switch (c) {
        case 'r': a->root = optarg; break;
        case 'a': a->app = optarg; break;
        case 'c': a->config = optarg, a->config_given = true; break;
        case 'w': a->watch = true; break;
        case 'h': a->help = true; break;
        case 'v': a->version = true; break;
        case ':': snprintf(err, cap, "option %.100s needs a value", arg); return KX_EINVAL;
        default: snprintf(err, cap, "unknown option '%.100s'", arg); return KX_EINVAL;
        }
    }
}

/* The rest of the line belongs to these commands (`tasks retry-failed --json`, `new DIR`,
 * `generate KIND NAME --method M`): global options go before them. */
static bool takes_the_rest(const char *cmd)
{
    return !strcmp(cmd, "tasks") || !strcmp(cmd, "new") || !strcmp(cmd, "generate") || !strcmp(cmd, "g");
}

/* keryx [globals] COMMAND [globals] [ACTION [input…]]: global options go before the command or
 * after it (for run/enqueue: before ACTION; every argument after ACTION is the action's input).
 * Anything else that looks like an option, or a stray word, is an error naming it. */
static int parse_args(int argc, char **argv, args_t *a, char *err, size_t cap)
{
    memset(a, 0, sizeof *a);
    a->app = "app";
    a->config = "config.lua";
    optind = 1;
    if (take_globals(argc, argv, a, err, cap) != KX_OK) return KX_EINVAL;
    if (a->help || a->version || optind >= argc) {
        a->rest = optind;
        return KX_OK;
    }
    a->cmd = argv[optind++];
    if (!takes_the_rest(a->cmd) && take_globals(argc, argv, a, err, cap) != KX_OK) return KX_EINVAL;
    bool with_action = !strcmp(a->cmd, "run") || !strcmp(a->cmd, "enqueue");
    if (with_action && optind < argc) a->action = argv[optind++];
    else if (!with_action && !takes_the_rest(a->cmd) && optind < argc) {
        snprintf(err, cap, "unexpected argument '%.100s'", argv[optind]);
        return KX_EINVAL;
    }
    a->rest = optind;
    return KX_OK;
}

/* A mistyped --app would otherwise serve an empty app (only the built-in actions). */
static int check_app_dir(const char *app, bool given, char *err, size_t cap)
{
    struct stat st;
    if (stat(app, &st) != 0 || !S_ISDIR(st.st_mode)) {
        char cwd[PATH_MAX];
        if (given || !getcwd(cwd, sizeof cwd))
            snprintf(err, cap, "--app: directory \"%.400s\" does not exist", app);
        else
            snprintf(err, cap,
                     "no app in %.400s (expected an app/ directory): run keryx inside a project, pass "
                     "--root DIR, or create one with `keryx new DIR`",
                     cwd);
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

/* defaults → config.lua → environment (config.h). Also what the supervisor re-reads on SIGHUP. */
static int load_config(const args_t *a, const char *node_env, kx_config_t *cfg, char *err, size_t cap)
{
    kx_config_defaults(cfg, node_env);
    if (kx_config_file_apply(cfg, a->config, a->config_given, err, cap) != KX_OK ||
        kx_config_apply_env(cfg, err, cap) != KX_OK || kx_config_finish(cfg, err, cap) != KX_OK)
        return KX_EINVAL;
    return KX_OK;
}

static int reload_config(void *ud, kx_config_t *cfg, char *err, size_t cap)
{
    return load_config(ud, getenv("NODE_ENV"), cfg, err, cap);
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
    if (a.version || (a.cmd && strcmp(a.cmd, "version") == 0)) {
        printf("keryx %s\n", KX_VERSION);
        return 0;
    }
    if (a.help || !a.cmd || strcmp(a.cmd, "help") == 0) {
        bool asked = a.help || a.cmd;
        fputs(usage, asked ? stdout : stderr);
        return asked ? 0 : 1;
    }
    if (a.root && chdir(a.root) != 0) {
        fprintf(stderr, "keryx: --root: cannot enter \"%s\": %s\n", a.root, strerror(errno));
        return 1;
    }
    bool generate = strcmp(a.cmd, "generate") == 0 || strcmp(a.cmd, "g") == 0;
    if (generate || strcmp(a.cmd, "new") == 0) {
        char *home = kx_home_find();
        int code = kx_lua_run_tool(home, generate ? "generate" : "new", argc - a.rest, argv + a.rest);
        free(home);
        return code;
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
    char err[1024];
    if (!check && check_app_dir(a.app, strcmp(a.app, "app") != 0, err, sizeof err) != KX_OK)
        return fatal(err);
    if (load_config(&a, check ? "production" : getenv("NODE_ENV"), &cfg, err, sizeof err) != KX_OK)
        return fatal(err);
    if (check) return production_report(&cfg, true) ? 1 : 0;

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

    kx_boot_t b = { .what = cli    ? KX_RUN_CLI
                            : list ? KX_RUN_LIST
                                   : KX_RUN_SERVE,
                    .app = a.app,
                    .command = a.cmd,
                    .action = a.action,
                    .argc = argc - a.rest,
                    .argv = argv + a.rest,
                    .listen_fd = -1,
                    .ready_fd = -1,
                    .watch = a.watch };
    if (b.watch && (b.what != KX_RUN_SERVE || cfg.workers != 1))
        return fatal("--watch goes with `start` and one process (WEB_SERVER_WORKERS=1): with workers, "
                     "send SIGHUP to the supervisor after an edit");
    /* Shared counters: mapped before any fork and before routes get their labels. */
    if (b.what == KX_RUN_SERVE && cfg.metrics_enabled && kx_metrics_init(err, sizeof err) != KX_OK)
        return fatal(err);
    if (b.what == KX_RUN_SERVE && cfg.workers != 1) return kx_supervisor_run(&cfg, &b, reload_config, &a);
    return kx_server_main(&cfg, &b);
}
