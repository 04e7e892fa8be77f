/* home.c — where keryx's own files are (see home.h). */
#include "home.h"
#include "common.h"
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static bool holds_framework(const char *dir)
{
    char path[PATH_MAX + 32];
    int n = snprintf(path, sizeof path, "%s/lua/keryx/boot.lua", dir);
    return n > 0 && (size_t)n < sizeof path && access(path, R_OK) == 0;
}

static char *absolute(const char *path)
{
    char buf[PATH_MAX];
    return kx_xstrdup(realpath(path, buf) ? buf : path);
}

char *kx_home_find(void)
{
    const char *env = getenv("KERYX_HOME");
    if (env && *env) return absolute(env);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return absolute(".");
    exe[n] = '\0';
    char *bindir = dirname(exe);
    if (holds_framework(bindir)) return kx_xstrdup(bindir);
    char share[PATH_MAX + 32];
    snprintf(share, sizeof share, "%s/../share/keryx", bindir);
    if (holds_framework(share)) return absolute(share);
    return kx_xstrdup(bindir);
}
