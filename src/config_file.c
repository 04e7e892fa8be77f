/* config_file.c — config.lua → kx_config_t (see config_file.h). */
#include "config_file.h"
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Pushes the value at a dotted path of the table on top of the stack (or nil). */
static void lookup_path(lua_State *L, const char *key)
{
    lua_pushvalue(L, -1);
    const char *p = key;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            lua_pushnil(L);
            return;
        }
        lua_pushlstring(L, p, n);
        lua_gettable(L, -2);
        lua_remove(L, -2);
        if (!dot) return;
        p = dot + 1;
    }
}

/* ---- unknown keys ------------------------------------------------------------------------ */

#define MAX_UNKNOWN 8

typedef struct {
    char *keys[MAX_UNKNOWN];
    int n, more;
    const char *section_path; /* a section given a value that is not a table (the first) */
} unknown_t;

/* 2: `path` names a setting; 1: a section (some setting's key starts with "path."); 0: neither. */
static int key_kind(const char *path)
{
    size_t n = strlen(path);
    int kind = 0;
    for (const kx_config_desc_t *d = kx_config_descs(); d->key; d++) {
        if (strcmp(d->key, path) == 0) return 2;
        if (strncmp(d->key, path, n) == 0 && d->key[n] == '.') kind = 1;
    }
    return kind;
}

/* Edit distance, an adjacent transposition counting as one edit; case-insensitive. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 127 || lb > 127) return (size_t)-1;
    /* Three rolling rows (i-2, i-1, i): a transposition looks two rows back. */
    size_t rows[3][128];
    for (size_t j = 0; j <= lb; j++) rows[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t *cur = rows[i % 3], *prev = rows[(i - 1) % 3], *prev2 = rows[(i + 1) % 3];
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            size_t v = prev[j - 1] + (ca != cb);
            if (prev[j] + 1 < v) v = prev[j] + 1;
            if (cur[j - 1] + 1 < v) v = cur[j - 1] + 1;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && prev2[j - 2] + 1 < v)
                v = prev2[j - 2] + 1;
            cur[j] = v;
        }
    }
    return rows[la % 3][lb];
}

/* The known key closest to `key` when close enough to be a typo (else NULL). */
static const char *closest_key(const char *key)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (const kx_config_desc_t *d = kx_config_descs(); d->key; d++) {
        size_t dist = edit_distance(key, d->key);
        size_t limit = strlen(d->key) / 4;
        if (limit < 1) limit = 1;
        if (limit > 3) limit = 3;
        if (dist <= limit && dist < best_d) best = d->key, best_d = dist;
    }
    return best;
}

static void note_unknown(unknown_t *u, const char *path)
{
    if (u->n < MAX_UNKNOWN) u->keys[u->n++] = kx_xstrdup(path);
    else u->more++;
}

/* Walks the table on top of the stack; `prefix` is its dotted path ("" for the root). */
static void find_unknown(lua_State *L, const char *prefix, unknown_t *u)
{
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        char path[512];
        if (lua_type(L, -2) == LUA_TSTRING)
            snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", lua_tostring(L, -2));
        else if (lua_type(L, -2) == LUA_TNUMBER)
            snprintf(path, sizeof path, "%s[%g]", *prefix ? prefix : "", lua_tonumber(L, -2));
        else snprintf(path, sizeof path, "%s%s[%s]", prefix, *prefix ? "." : "", luaL_typename(L, -2));
        int kind = lua_type(L, -2) == LUA_TSTRING ? key_kind(path) : 0;
        if (kind == 0) {
            note_unknown(u, path);
        } else if (kind == 1) {
            if (lua_istable(L, -1)) find_unknown(L, path, u);
            else if (!u->section_path) u->section_path = kx_xstrdup(path);
        }
        lua_pop(L, 1);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* KX_EINVAL with every unknown key named (sorted, with a hint when a known key is close). */
static int check_keys(lua_State *L, const char *path, char *err, size_t cap)
{
    unknown_t u = { .n = 0 };
    find_unknown(L, "", &u);
    int rc = KX_OK;
    if (u.n > 0) {
        qsort(u.keys, (size_t)u.n, sizeof u.keys[0], cmp_str);
        size_t off = (size_t)snprintf(err, cap, "config file %s: unknown key%s", path,
                                      u.n + u.more > 1 ? "s" : "");
        for (int i = 0; i < u.n && off < cap; i++) {
            const char *hint = closest_key(u.keys[i]);
            off += (size_t)snprintf(err + off, cap - off, "%s %s%s%s%s", i ? "," : "", u.keys[i],
                                    hint ? " (did you mean " : "", hint ? hint : "", hint ? "?)" : "");
        }
        if (u.more && off < cap) snprintf(err + off, cap - off, " and %d more", u.more);
        if (off < cap)
            snprintf(err + strlen(err), cap - strlen(err), " (the known keys: README, Configuration)");
        rc = KX_EINVAL;
    } else if (u.section_path) {
        snprintf(err, cap, "invalid value for %s in %s: expected a table (it is a section of settings)",
                 u.section_path, path);
        rc = KX_EINVAL;
    }
    for (int i = 0; i < u.n; i++) free(u.keys[i]);
    free((char *)u.section_path);
    return rc;
}

int kx_config_file_apply(kx_config_t *cfg, const char *path, bool required, char *err, size_t cap)
{
    if (access(path, R_OK) != 0) {
        if (!required) return KX_OK;
        snprintf(err, cap, "cannot read config file %s", path);
        return KX_EINVAL;
    }
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_loadfile(L, path) != 0 || lua_pcall(L, 0, 1, 0) != 0) {
        snprintf(err, cap, "config file %s: %s", path, lua_tostring(L, -1));
        lua_close(L);
        return KX_EINVAL;
    }
    if (!lua_istable(L, -1)) {
        snprintf(err, cap, "config file %s must return a table", path);
        lua_close(L);
        return KX_EINVAL;
    }
    int rc = check_keys(L, path, err, cap);
    for (const kx_config_desc_t *d = kx_config_descs(); d->key && rc == KX_OK; d++) {
        lookup_path(L, d->key);
        char buf[64], src[256];
        const char *v = NULL;
        snprintf(src, sizeof src, "%s in %s", d->key, path);
        if (lua_type(L, -1) == LUA_TBOOLEAN) {
            v = lua_toboolean(L, -1) ? "true" : "false";
        } else if (lua_type(L, -1) == LUA_TNUMBER) {
            double n = lua_tonumber(L, -1);
            if (n == (double)(long long)n) snprintf(buf, sizeof buf, "%lld", (long long)n);
            else snprintf(buf, sizeof buf, "%.17g", n);
            v = buf;
        } else if (lua_type(L, -1) == LUA_TSTRING) {
            v = lua_tostring(L, -1);
        } else if (!lua_isnil(L, -1)) {
            snprintf(err, cap, "invalid value for %s: expected a string, number or boolean", src);
            rc = KX_EINVAL;
        }
        if (v) rc = kx_config_set(cfg, d, v, src, err, cap);
        lua_pop(L, 1);
    }
    lua_close(L);
    return rc;
}
