/* channel_name.h — the channel rules checked in C on untrusted input: channel names, and the
 * channel named by a broadcast payload.
 *
 * Owns: nothing (pure functions). Callers: ws.c (subscribe), lua_api_ws.c, pubsub delivery
 * (server.c), the fuzz harness. Never: allocates or logs. */
#ifndef KX_CHANNEL_NAME_H
#define KX_CHANNEL_NAME_H
#include "common.h"

#define KX_CHANNEL_NAME_MAX 200

/* ^[a-zA-Z0-9:._-]{1,200}$ (the channel-name rule). */
bool kx_channel_name_valid(const char *s, size_t len);
/* Accepts only payloads that start exactly with {"channel":"<name>", where <name> passes
 * kx_channel_name_valid; sets *name and *nlen to the span of the name inside payload. Anything
 * else (other key order, whitespace, escapes, truncation) → false. */
bool kx_pubsub_channel_of(const char *payload, size_t len, const char **name, size_t *nlen);

#endif
