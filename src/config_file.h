/* config_file.h — reads config.lua into a kx_config_t (part of the Lua bridge layer).
 *
 * Owns: the short-lived lua_State that runs config.lua, and the mapping from the table it
 * returns to settings: each descriptor's dotted key (config.h kx_config_descs) is looked up in
 * that table, and a boolean, number or string found there is handed, as a string, to
 * kx_config_set — the same setter the environment goes through, so one value means the same
 * whatever its source.
 * Callers: main.c, once at boot, between kx_config_defaults and kx_config_apply_env
 * (precedence: defaults < config.lua < environment).
 * Never: touches the server's VM (lua_bridge.c) — config.lua runs in its own state, closed
 * before this returns; keeps anything from config.lua but the settings it names. Only the
 * bridge layer (lua_bridge.c, lua_api_*.c, this file) includes the Lua headers. */
#ifndef KX_CONFIG_FILE_H
#define KX_CONFIG_FILE_H
#include "config.h"

/* Applies the settings in the Lua file at path over *cfg. A missing or unreadable file is
 * fine unless `required` (the path came from --config); then, like a file that fails to run,
 * does not return a table, or holds a value of another type (table, function) for a known
 * key, returns KX_EINVAL with a message naming the file (and the key) in err. */
int kx_config_file_apply(kx_config_t *cfg, const char *path, bool required, char *err, size_t errcap);

#endif
