/* ws_envelope.c — the simple WebSocket message envelope (see ws_envelope.h). Every rule here
 * is one lua-cjson 2.1.0's decoder (keryx.json's) also applies, narrowed: where the two could
 * differ, this file says no. */
#include "ws_envelope.h"

typedef struct {
    const char *s;
    size_t n, i;
} cur_t;

static void skip_ws(cur_t *c)
{
    while (c->i < c->n) {
        char ch = c->s[c->i];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') break;
        c->i++;
    }
}

/* At '"': a string without escapes or control bytes; its bytes in *out, c->i past the quote. */
static bool plain_string(cur_t *c, kx_ws_span_t *out)
{
    size_t start = c->i + 1;
    for (size_t j = start; j < c->n; j++) {
        unsigned char ch = (unsigned char)c->s[j];
        if (ch == '"') {
            out->p = c->s + start;
            out->len = j - start;
            c->i = j + 1;
            return true;
        }
        if (ch == '\\' || ch < 0x20) return false;
    }
    return false;
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
    if (next != ',' && next != '}' && next != ' ' && next != '\t' && next != '\n' && next != '\r')
        return false;
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

static int key_of(const kx_ws_span_t *k)
{
#define KEY_IS(lit) (k->len == sizeof(lit) - 1 && memcmp(k->p, lit, sizeof(lit) - 1) == 0)
    if (KEY_IS("messageType")) return K_TYPE;
    if (KEY_IS("action")) return K_ACTION;
    if (KEY_IS("messageId")) return K_MID;
    if (KEY_IS("channel")) return K_CHANNEL;
    if (KEY_IS("params")) return K_PARAMS;
    return 0;
#undef KEY_IS
}

static bool member(cur_t *c, kx_ws_envelope_t *env, int *seen)
{
    kx_ws_span_t k;
    if (c->i >= c->n || c->s[c->i] != '"' || !plain_string(c, &k)) return false;
    int key = key_of(&k);
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
