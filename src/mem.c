/* mem.c — allocation wrappers that abort on out-of-memory (see common.h). */
#include "common.h"
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

static void oom(size_t n)
{
    fprintf(stderr, "keryx: out of memory allocating %zu bytes\n", n);
    abort();
}

void *kx_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *kx_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *kx_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *kx_xstrdup(const char *s)
{
    return kx_xstrndup(s, strlen(s));
}

char *kx_xstrndup(const char *s, size_t n)
{
    char *p = kx_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void kx_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "keryx: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

bool kx_strcaseeq_n(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}
