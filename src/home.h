/* home.h — where keryx's own files are: the framework's Lua (lua/keryx, lua/redis), its
 * templates and web files, all under <home>/lua.
 *
 * Owns: the lookup order. KERYX_HOME when set (made absolute); else the binary's directory
 * when it holds lua/keryx/boot.lua (a source checkout: ./keryx next to ./lua); else
 * <bin>/../share/keryx when that holds it (`make install`: PREFIX/bin/keryx and
 * PREFIX/share/keryx/lua); else the binary's directory (boot then fails naming the missing
 * file). Callers: main.c (keryx new / generate), server.c (boot). Never: reads the app. */
#ifndef KX_HOME_H
#define KX_HOME_H

/* A malloc'd absolute path (the caller frees it). */
char *kx_home_find(void);

#endif
