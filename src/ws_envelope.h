/* ws_envelope.h — the fast reading of a WebSocket message's envelope: the common, simple
 * shape of {"messageType":…,"action":…,"messageId":…,"channel":…,"params":{…}} read without
 * lua-cjson building a table, with the answer lua-cjson's decode would give, or no answer.
 *
 * Owns: nothing (pure, no allocation). Callers: lua_api_ws.c (core.ws_envelope, which
 * lua/keryx/ws.lua tries before json.decode), tests/test_ws_envelope.c, the ws fuzz harness.
 * Never: decodes anything it is not sure of: every doubt is a "no", and the caller decodes the
 * text with keryx.json as before.
 *
 * Accepted ("simple"): exactly one JSON object, JSON whitespace (space, tab, LF, CR) allowed
 * around every token, nothing after it; keys among messageType, action, messageId, channel,
 * params, each at most once, messageType present; keys and string values without escapes or
 * bytes below 0x20; messageType, action and channel strings; messageId a string or an integer
 * -?(0|[1-9][0-9]*) of at most 15 digits (exact as a double, as strtod reads it: "-0" is
 * -0.0); params an object, whose text (from its '{' to its '}') is handed over undecoded: its
 * brackets are matched outside strings (depth at most KX_WS_ENVELOPE_MAX_DEPTH) and it holds
 * no NUL byte, but only a decoder can say it is valid JSON. */
#ifndef KX_WS_ENVELOPE_H
#define KX_WS_ENVELOPE_H
#include "common.h"

/* The deepest params object taken: its brackets nest at most this deep (the object itself is
 * depth 1). Far below the decoder's 1000, so the params text decodes alone exactly when it
 * decodes inside the message. */
#define KX_WS_ENVELOPE_MAX_DEPTH 64

typedef struct {
    const char *p; /* NULL: the key was absent */
    size_t len;
} kx_ws_span_t;

enum { KX_WS_MID_NONE = 0, KX_WS_MID_STRING, KX_WS_MID_NUMBER };

typedef struct {
    kx_ws_span_t type, action, channel; /* the strings' bytes, between the quotes */
    kx_ws_span_t params;                /* the object's JSON text, braces included */
    int mid;                            /* KX_WS_MID_*: which of the two below holds messageId */
    kx_ws_span_t mid_string;
    double mid_number;
} kx_ws_envelope_t;

/* true and *env filled when text[0..len) is a simple envelope (above); false otherwise (env
 * then undefined). Reads no byte outside text[0..len). */
bool kx_ws_envelope_scan(const char *text, size_t len, kx_ws_envelope_t *env);

#endif
