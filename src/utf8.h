/* utf8.h — strict UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF), for WebSocket text messages (RFC 6455 §8.1: invalid → close 1007).
 * Owns: nothing (pure). Callers: ws.c, the fuzz harness. */
#ifndef KX_UTF8_H
#define KX_UTF8_H
#include "common.h"

bool kx_utf8_valid(const unsigned char *s, size_t n);

#endif
