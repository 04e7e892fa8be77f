/* buf.h — growable byte buffer.
 *
 * Owns: its heap block, and a small per-thread free list of blocks of 1–16 KiB (at most
 * 256 KiB) that kx_buf_free fills and kx_buf_reserve drains. Callers: everyone. Never: I/O.
 * A kx_buf_t is zero-initialisable (KX_BUF_INIT) and freed with kx_buf_free, which is only
 * ever handed a block kx_buf_reserve allocated (or NULL). Data is always NUL-terminated for convenience
 * (the NUL is not counted in len). */
#ifndef KX_BUF_H
#define KX_BUF_H
#include "common.h"

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} kx_buf_t;

#define KX_BUF_INIT \
    {               \
        NULL, 0, 0  \
    }

void kx_buf_reserve(kx_buf_t *b, size_t extra);
void kx_buf_append(kx_buf_t *b, const void *p, size_t n);
void kx_buf_puts(kx_buf_t *b, const char *s);
void kx_buf_printf(kx_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) escaped for the inside of a JSON string (quote, backslash, control bytes). */
void kx_buf_json_escape(kx_buf_t *b, const char *s, size_t n);
/* Drops the first n bytes (memmove). */
void kx_buf_consume(kx_buf_t *b, size_t n);
void kx_buf_reset(kx_buf_t *b);
void kx_buf_free(kx_buf_t *b);
/* Bytes waiting in this thread's free list (tests). */
size_t kx_buf_pooled_bytes(void);

#endif
