/* buf.c — growable byte buffer (see buf.h). */
#include "buf.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Freed blocks of 1 to 16 KiB wait here for the next buffer of their size, so a busy server
 * does not pay malloc for each response it builds (a block of 1 KiB or more is a "large"
 * request to glibc, which first consolidates its fast bins: measurable per request). The
 * list is bounded in bytes (POOL_MAX_BYTES) so memory still follows the work, and per
 * thread so no lock is needed. A block is handed out only to an empty buffer whose first
 * growth reaches exactly its size: capacities are what they would be without the pool. */
#define POOL_MIN_SHIFT 10 /* 1 KiB */
#define POOL_MAX_SHIFT 14 /* 16 KiB */
#define POOL_MAX_BYTES (256u * 1024)

static __thread struct {
    void *head[POOL_MAX_SHIFT - POOL_MIN_SHIFT + 1]; /* free blocks, linked through their start */
    size_t bytes;
} pool;

static int pool_class(size_t cap)
{
    for (int i = POOL_MIN_SHIFT; i <= POOL_MAX_SHIFT; i++)
        if (cap == (size_t)1 << i) return i - POOL_MIN_SHIFT;
    return -1;
}

static void *pool_take(size_t cap)
{
    int k = pool_class(cap);
    if (k < 0 || !pool.head[k]) return NULL;
    void *p = pool.head[k];
    memcpy(&pool.head[k], p, sizeof(void *));
    pool.bytes -= cap;
    return p;
}

static bool pool_put(void *p, size_t cap)
{
    int k = pool_class(cap);
    if (k < 0 || pool.bytes + cap > POOL_MAX_BYTES) return false;
    memcpy(p, &pool.head[k], sizeof(void *));
    pool.head[k] = p;
    pool.bytes += cap;
    return true;
}

size_t kx_buf_pooled_bytes(void)
{
    return pool.bytes;
}

void kx_buf_reserve(kx_buf_t *b, size_t extra)
{
    kx_assert(extra < SIZE_MAX / 2 - b->len); /* callers pass bounded sizes; never wrap */
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    void *p = b->data ? NULL : pool_take(cap);
    b->data = p ? p : kx_xrealloc(b->data, cap);
    b->cap = cap;
}

void kx_buf_append(kx_buf_t *b, const void *p, size_t n)
{
    kx_buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void kx_buf_puts(kx_buf_t *b, const char *s)
{
    kx_buf_append(b, s, strlen(s));
}

void kx_buf_printf(kx_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        kx_buf_append(b, tmp, (size_t)n);
        return;
    }
    kx_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void kx_buf_json_escape(kx_buf_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = { '\\', (char)c };
            kx_buf_append(b, e, 2);
        } else if (c < 0x20) {
            kx_buf_printf(b, "\\u%04x", c);
        } else {
            kx_buf_append(b, &s[i], 1);
        }
    }
}

void kx_buf_consume(kx_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        if (b->data) b->data[0] = '\0';
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

void kx_buf_reset(kx_buf_t *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void kx_buf_free(kx_buf_t *b)
{
    if (!b->data || !pool_put(b->data, b->cap)) free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
