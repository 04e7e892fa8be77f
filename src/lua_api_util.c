/* lua_api_util.c — non-waiting helpers for the framework's Lua side: logging, clocks, process
 * facts (pid, RSS, uptime), the configuration as a nested table, directory listing. */
#include "lua_api.h"
#include "http_guard.h"
#include "log.h"
#include <dirent.h>
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static kx_server_t *srv;

static int l_log(lua_State *L)
{
    const char *level = luaL_checkstring(L, 1);
    size_t n;
    const char *msg = luaL_checklstring(L, 2, &n);
    kx_log_level_t lv;
    if (kx_log_level_parse(level, &lv) != KX_OK) return luaL_error(L, "unknown log level '%s'", level);
    kx_log_raw(lv, msg, n);
    return 0;
}

#define MAX_LOG_FIELDS 16

static bool field_name_ok(const char *k)
{
    if (!*k || !strcmp(k, "timestamp") || !strcmp(k, "level") || !strcmp(k, "message") || !strcmp(k, "pid"))
        return false;
    for (const char *p = k; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_') return false;
    return true;
}

/* core.log_fields(level, message, fields): one line; in the JSON format each string, number or
 * boolean of `fields` (names [A-Za-z0-9_], at most 16) sits beside "message"; others are
 * skipped. The text format writes the message alone. */
static int l_log_fields(lua_State *L)
{
    const char *level = luaL_checkstring(L, 1);
    size_t n;
    const char *msg = luaL_checklstring(L, 2, &n);
    kx_log_level_t lv;
    if (kx_log_level_parse(level, &lv) != KX_OK) return luaL_error(L, "unknown log level '%s'", level);
    if (!kx_log_enabled(lv)) return 0;
    kx_log_field_t f[MAX_LOG_FIELDS];
    size_t nf = 0;
    if (kx_log_json() && lua_istable(L, 3)) {
        lua_pushnil(L);
        while (nf < MAX_LOG_FIELDS && lua_next(L, 3) != 0) {
            int vt = lua_type(L, -1);
            if (lua_type(L, -2) == LUA_TSTRING && field_name_ok(lua_tostring(L, -2)) &&
                (vt == LUA_TSTRING || vt == LUA_TNUMBER || vt == LUA_TBOOLEAN)) {
                kx_log_field_t *x = &f[nf++];
                x->key = lua_tostring(L, -2); /* the key stays on the table: valid until we return */
                x->str = NULL;
                x->len = 0;
                x->num = 0;
                if (vt == LUA_TSTRING) {
                    x->type = KX_LOG_FIELD_STR;
                    x->str = lua_tolstring(L, -1, &x->len); /* the value stays in the table */
                } else if (vt == LUA_TNUMBER) {
                    x->type = KX_LOG_FIELD_NUM;
                    x->num = lua_tonumber(L, -1);
                } else {
                    x->type = KX_LOG_FIELD_BOOL;
                    x->num = lua_toboolean(L, -1);
                }
            }
            lua_pop(L, 1);
        }
    }
    kx_log_fields(lv, msg, n, f, nf);
    return 0;
}

static int l_log_enabled(lua_State *L)
{
    kx_log_level_t lv;
    if (kx_log_level_parse(luaL_checkstring(L, 1), &lv) != KX_OK) lv = KX_LOG_INFO;
    lua_pushboolean(L, kx_log_enabled(lv));
    return 1;
}

static int l_now_ms(lua_State *L)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    lua_pushnumber(L, (lua_Number)tv.tv_sec * 1000 + (lua_Number)(tv.tv_usec / 1000));
    return 1;
}

/* Monotonic milliseconds with sub-ms precision, for durations. */
static int l_clock_ms(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec * 1000.0 + (lua_Number)ts.tv_nsec / 1e6);
    return 1;
}

static int l_pid(lua_State *L)
{
    lua_pushinteger(L, getpid());
    return 1;
}

static int l_uptime_ms(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)((ev_time() - srv->started) * 1000.0));
    return 1;
}

/* Resident set size in bytes, sampled at most every 250 ms (the status action calls this on
 * every request; /proc reads are not free). */
static int l_rss(lua_State *L)
{
    static double last;
    static long long rss;
    double now = ev_time();
    if (now - last > 0.25) {
        last = now;
        int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            char buf[128];
            ssize_t n = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (n > 0) {
                buf[n] = '\0';
                long long size = 0, res = 0;
                if (sscanf(buf, "%lld %lld", &size, &res) == 2) rss = res * sysconf(_SC_PAGESIZE);
            }
        }
    }
    lua_pushnumber(L, (lua_Number)rss);
    return 1;
}

/* list_dir(path) → sorted array of entry names ending in ".lua", or nil, err. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int l_list_dir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    DIR *d = opendir(path);
    if (!d) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot open %s: %s", path, strerror(errno));
        return 2;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".lua") != 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = kx_xrealloc(names, cap * sizeof *names);
        }
        names[n++] = kx_xstrdup(e->d_name);
    }
    closedir(d);
    /* cppcheck-suppress nullPointer ; names is NULL only when n == 0, and qsort then reads nothing */
    qsort(names, n, sizeof *names, cmp_str);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, (int)i + 1);
        free(names[i]);
    }
    free(names);
    return 1;
}

/* stack: t → t with t[path...] = value (creating nested tables along the dotted key) */
static void set_path(lua_State *L, const char *key)
{
    /* stack: root, value */
    lua_pushvalue(L, -2);
    const char *p = key;
    for (;;) {
        const char *dot = strchr(p, '.');
        if (!dot) break;
        lua_pushlstring(L, p, (size_t)(dot - p));
        lua_rawget(L, -2);
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushlstring(L, p, (size_t)(dot - p));
            lua_pushvalue(L, -2);
            lua_rawset(L, -4);
        }
        lua_remove(L, -2);
        p = dot + 1;
    }
    /* stack: root, value, leaf */
    lua_pushstring(L, p);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 2);
}

static void push_config(lua_State *L, const kx_config_t *c)
{
    lua_newtable(L);
    for (const kx_config_desc_t *d = kx_config_descs(); d->key; d++) {
        char buf[1024];
        kx_config_get_string(c, d, buf, sizeof buf);
        if (d->type == KX_CT_BOOL) lua_pushboolean(L, strcmp(buf, "true") == 0);
        else if (d->type == KX_CT_INT || d->type == KX_CT_WORKERS) lua_pushnumber(L, strtod(buf, NULL));
        else lua_pushstring(L, buf);
        set_path(L, d->key);
    }
    lua_pushstring(L, c->node_env);
    lua_setfield(L, -2, "nodeEnv");
}

/* core.correlation_id_valid(v) → whether v is a correlation id keryx may log (http_guard.h). */
static int l_correlation_id_valid(lua_State *L)
{
    return kx_lua_push_valid(L, kx_correlation_id_valid);
}

/* core.queue_name_valid(v) → whether v names a task queue (config.h: the rule TASK_QUEUES is
 * held to), for keryx.tasks and action definitions. */
static int l_queue_name_valid(lua_State *L)
{
    return kx_lua_push_valid(L, kx_config_queue_name_valid);
}

static const luaL_Reg fns[] = {
    { "correlation_id_valid", l_correlation_id_valid },
    { "queue_name_valid", l_queue_name_valid },
    { "log", l_log },
    { "log_fields", l_log_fields },
    { "log_enabled", l_log_enabled },
    { "now_ms", l_now_ms },
    { "clock_ms", l_clock_ms },
    { "pid", l_pid },
    { "uptime_ms", l_uptime_ms },
    { "rss", l_rss },
    { "list_dir", l_list_dir },
    { NULL, NULL },
};

void kx_lua_open_util(lua_State *L, kx_server_t *s)
{
    srv = s;
    luaL_register(L, NULL, fns);
    push_config(L, s->cfg);
    lua_setfield(L, -2, "config");
    lua_pushstring(L, KX_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, s->home);
    lua_setfield(L, -2, "home");
}
