/* common.h — types and conventions shared by every keryx C module.
 *
 * Owns: the KX_E* return codes, kx_xmalloc & co (abort on OOM), kx_assert, small string
 * helpers. Never: I/O, global state.
 *
 * Convention: functions return 0 (KX_OK) or a negative KX_E* code; results go through
 * out-params. Library code never calls exit() except through kx_xmalloc's OOM abort. */
#ifndef KX_COMMON_H
#define KX_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>

#define KX_VERSION "0.1.0"

enum {
    KX_OK = 0,
    KX_EAGAIN = -1,  /* would block; try again when the fd is ready */
    KX_ECLOSED = -2, /* the peer closed, or the object is gone */
    KX_ETIMEOUT = -3,
    KX_EPROTO = -4, /* the peer broke the protocol */
    KX_ELIMIT = -5, /* a configured limit was exceeded */
    KX_EINVAL = -6, /* bad argument or bad configuration value */
    KX_EIO = -7,
    KX_ENOTFOUND = -8,
};

void *kx_xmalloc(size_t n);
void *kx_xcalloc(size_t n, size_t size);
void *kx_xrealloc(void *p, size_t n);
char *kx_xstrdup(const char *s);
char *kx_xstrndup(const char *s, size_t n);

#define kx_assert(cond)                                         \
    do {                                                        \
        if (!(cond)) kx_assert_fail(#cond, __FILE__, __LINE__); \
    } while (0)
void kx_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

/* ASCII case-insensitive equality of a counted string and a C string. */
bool kx_strcaseeq_n(const char *a, size_t alen, const char *b);

#define KX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
