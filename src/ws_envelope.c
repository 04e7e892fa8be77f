/* ws_envelope.c — the simple WebSocket message envelope (see ws_envelope.h). Every rule here
 * is one lua-cjson 2.1.0's decoder (keryx.json's) also applies, narrowed: where the two could
 * differ, this file says no. */
#include "ws_envelope.h"

typedef struct {
    const char *s;
    size_t n, i;
} cur_t;

/* Byte classes: JSON whitespace (between tokens); what ends a plain string or spoils it (the
 * quote, the backslash, bytes below 0x20: tab, LF and CR are both). */
enum { C_WS = 1, C_STOP = 2 };
#define S4(b) [b] = C_STOP, [b + 1] = C_STOP, [b + 2] = C_STOP, [b + 3] = C_STOP
/* clang-format off */
static const uint8_t CLASS[256] = {
    S4(0), S4(4), [8] = C_STOP, ['\t'] = C_STOP | C_WS, ['\n'] = C_STOP | C_WS, [11] = C_STOP,
    [12] = C_STOP, ['\r'] = C_STOP | C_WS, [14] = C_STOP, [15] = C_STOP, S4(16), S4(20), S4(24), S4(28),
    [' '] = C_WS, ['"'] = C_STOP, ['\\'] = C_STOP,
};
/* clang-format on */
#undef S4
#define IS_WS(ch) (CLASS[(uint8_t)(ch)] & C_WS)

static inline void skip_ws(cur_t *c)
{
    while (c->i < c->n && IS_WS(c->s[c->i])) c->i++;
}

/* At '"': a string without escapes or control bytes; its bytes in *out, c->i past the quote. */
static bool plain_string(cur_t *c, kx_ws_span_t *out)
{
    size_t start = c->i + 1, j = start;
    while (j < c->n && !(CLASS[(uint8_t)c->s[j]] & C_STOP)) j++;
    if (j >= c->n || c->s[j] != '"') return false;
    out->p = c->s + start;
    out->len = j - start;
    c->i = j + 1;
    return true;
}

/* -?(0|[1-9][0-9]*), at most 15 digits, followed by whitespace, ',' or '}' (strtod would read
 * a '.', an exponent or more digits: those are not taken). */
static bool small_integer(cur_t *c, double *out)
{
    size_t j = c->i;
    bool neg = false;
    if (j < c->n && c->s[j] == '-') {
        neg = true;
        j++;
    }
    size_t first = j;
    uint64_t v = 0;
    while (j < c->n && c->s[j] >= '0' && c->s[j] <= '9') {
        v = v * 10 + (uint64_t)(c->s[j] - '0');
        j++;
        if (j - first > 15) return false;
    }
    size_t digits = j - first;
    if (digits == 0 || (digits > 1 && c->s[first] == '0') || j >= c->n) return false;
    char next = c->s[j];
    if (next != ',' && next != '}' && !IS_WS(next)) return false;
    double d = (double)v; /* < 10^15 < 2^53: exact */
    *out = neg ? -d : d;
    c->i = j;
    return true;
}

/* At '{': the extent of the object, brackets matched outside strings; no NUL byte anywhere. */
static bool object_text(cur_t *c, kx_ws_span_t *out)
{
    size_t start = c->i;
    int depth = 0;
    for (size_t j = start; j < c->n; j++) {
        char ch = c->s[j];
        switch (ch) {
        case '\0': return false;
        case '{':
        case '[':
            if (++depth > KX_WS_ENVELOPE_MAX_DEPTH) return false;
            break;
        case '}':
        case ']':
            if (--depth == 0) {
                if (ch != '}') return false;
                out->p = c->s + start;
                out->len = j + 1 - start;
                c->i = j + 1;
                return true;
            }
            break;
        case '"':
            for (j++;; j++) {
                if (j >= c->n || c->s[j] == '\0') return false;
                if (c->s[j] == '"') break;
                /* the escaped byte, whatever it is (the decoder judges the escape) */
                if (c->s[j] == '\\' && (++j >= c->n || c->s[j] == '\0')) return false;
            }
            break;
        default: break;
        }
    }
    return false;
}

enum { K_TYPE = 1, K_ACTION = 2, K_MID = 4, K_CHANNEL = 8, K_PARAMS = 16 };

/* At '"': which of the five keys (its name and closing quote follow: no escape can be among
 * them), c->i past its closing quote; 0 for any other key. */
static int key_at(cur_t *c)
{
    const char *p = c->s + c->i + 1;
    size_t avail = c->n - c->i - 1;
#define KEY(lit, k)                                                      \
    if (avail >= sizeof(lit) && memcmp(p, lit "\"", sizeof(lit)) == 0) { \
        c->i += 1 + sizeof(lit);                                         \
        return k;                                                        \
    }
    if (avail == 0) return 0;
    switch (p[0]) {
    case 'm':
        KEY("messageType", K_TYPE);
        KEY("messageId", K_MID);
        break;
    case 'a': KEY("action", K_ACTION); break;
    case 'c': KEY("channel", K_CHANNEL); break;
    case 'p': KEY("params", K_PARAMS); break;
    default: break;
    }
    return 0;
#undef KEY
}

static bool member(cur_t *c, kx_ws_envelope_t *env, int *seen)
{
    if (c->i >= c->n || c->s[c->i] != '"') return false;
    int key = key_at(c);
    if (key == 0 || (*seen & key)) return false;
    *seen |= key;
    skip_ws(c);
    if (c->i >= c->n || c->s[c->i] != ':') return false;
    c->i++;
    skip_ws(c);
    if (c->i >= c->n) return false;
    char ch = c->s[c->i];
    switch (key) {
    case K_TYPE: return ch == '"' && plain_string(c, &env->type);
    case K_ACTION: return ch == '"' && plain_string(c, &env->action);
    case K_CHANNEL: return ch == '"' && plain_string(c, &env->channel);
    case K_PARAMS: return ch == '{' && object_text(c, &env->params);
    default: /* K_MID */
        if (ch == '"') {
            env->mid = KX_WS_MID_STRING;
            return plain_string(c, &env->mid_string);
        }
        env->mid = KX_WS_MID_NUMBER;
        return small_integer(c, &env->mid_number);
    }
}

bool kx_ws_envelope_scan(const char *text, size_t len, kx_ws_envelope_t *env)
{
    if (!text || !env) return false;
    memset(env, 0, sizeof *env);
    cur_t c = { text, len, 0 };
    int seen = 0;
    skip_ws(&c);
    if (c.i >= c.n || text[c.i] != '{') return false;
    c.i++;
    skip_ws(&c);
    if (c.i < c.n && text[c.i] == '}') return false; /* {}: no messageType */
    for (;;) {
        if (!member(&c, env, &seen)) return false;
        skip_ws(&c);
        if (c.i >= c.n) return false;
        if (text[c.i] == '}') break;
        if (text[c.i] != ',') return false;
        c.i++;
        skip_ws(&c);
    }
    c.i++;
    skip_ws(&c);
    return c.i == c.n && (seen & K_TYPE);
}
