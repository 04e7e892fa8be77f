/* config_file.c — config.lua → kx_config_t (see config_file.h). */
#include "config_file.h"
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
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
    int rc = KX_OK;
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
