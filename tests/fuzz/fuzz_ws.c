/* fuzz_ws.c — libFuzzer harness for the WebSocket/pub-sub checks done in C on untrusted bytes:
 * the client frame stream as keryx reads it (ws_frame.c's tracker, fed whole and in pieces,
 * must agree; then wslay's own parser and message state machine over the bytes the tracker
 * let through, with keryx's payload limit), UTF-8 validation (checked against a byte-by-byte
 * reference decoder), channel names and the broadcast payload prefix; and a frame ws.c takes
 * without wslay (kx_ws_direct_frame) must be one wslay reads as the same text message; and the
 * message envelope reader (ws_envelope.c): what it hands back lies inside the text and has the
 * shape it promises. Run: make fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <wslay/wslay.h>
#include "channel_name.h"
#include "utf8.h"
#include "ws_frame.h"
#include "ws_envelope.h"

#define MAX_PAYLOAD 4096

typedef struct {
    const uint8_t *p;
    size_t n, pos;
} feed_t;

static ssize_t fz_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud)
{
    (void)flags;
    feed_t *f = ud;
    if (f->pos == f->n) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t k = f->n - f->pos < len ? f->n - f->pos : len;
    memcpy(buf, f->p + f->pos, k);
    f->pos += k;
    return (ssize_t)k;
}

static ssize_t fz_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *ud)
{
    (void)ctx;
    (void)data;
    (void)flags;
    (void)ud;
    return (ssize_t)len; /* replies (pongs, closes) are discarded */
}

/* While check_direct runs wslay: the message it expects, and what wslay delivered. */
static struct {
    bool on;
    const uint8_t *p;
    size_t n;
    int same, other;
} D;

static void fz_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *ud)
{
    (void)ctx;
    (void)ud;
    if (arg->opcode <= WSLAY_BINARY_FRAME && arg->msg_length > MAX_PAYLOAD) abort();
    if (!D.on) return;
    if (arg->opcode == WSLAY_TEXT_FRAME && arg->msg_length == D.n &&
        (D.n == 0 || memcmp(arg->msg, D.p, D.n) == 0))
        D.same++;
    else D.other++;
}

/* The tracker: the accepted prefix and the verdict do not depend on how bytes are split. */
static size_t track_both_ways(const uint8_t *data, size_t size, uint16_t *violation)
{
    kx_ws_frames_t whole = { 0 }, bytes = { 0 };
    size_t a = kx_ws_frames_feed(&whole, data, size, MAX_PAYLOAD);
    if (a > size || (a < size && !whole.violation)) abort();
    size_t b = 0;
    for (size_t i = 0; i < size; i++) {
        size_t k = kx_ws_frames_feed(&bytes, data + i, 1, MAX_PAYLOAD);
        if (k > 1) abort();
        if (bytes.violation) break;
        b += k;
    }
    if (whole.violation != bytes.violation) abort();
    if (whole.violation && kx_ws_frames_feed(&whole, data, size, MAX_PAYLOAD) != 0) abort(); /* sticky */
    /* Byte by byte, header bytes are handed on before the header completes: the whole-piece
     * answer stops at the bad header's first byte, never after. */
    if (whole.violation ? a > b : (a != size || b != size)) abort();
    *violation = whole.violation;
    return a;
}

static void run_wslay(const uint8_t *data, size_t n)
{
    static const struct wslay_event_callbacks cb = { fz_recv, fz_send, NULL, NULL, NULL, NULL, fz_msg };
    feed_t f = { data, n, 0 };
    wslay_event_context_ptr ctx;
    if (wslay_event_context_server_init(&ctx, &cb, &f) != 0) return;
    wslay_event_config_set_max_recv_msg_length(ctx, MAX_PAYLOAD);
    for (int i = 0; i < 4 && f.pos < f.n; i++) {
        if (wslay_event_recv(ctx) != 0) break;
        if (wslay_event_send(ctx) != 0) break;
    }
    wslay_event_context_free(ctx);
}

/* ws.c's direct path: a frame it takes without wslay is one wslay takes too, as exactly one
 * text message with the payload kx_ws_unmask gives (none when that is not UTF-8: both refuse
 * it); the tracker passes it and ends idle. */
static void check_direct(const uint8_t *data, size_t size)
{
    size_t hlen, plen;
    if (size == 0 || kx_ws_direct_frame(data, size, MAX_PAYLOAD, &hlen, &plen) != KX_WS_DIRECT_YES) return;
    if (hlen + plen > size || plen > MAX_PAYLOAD) abort();
    kx_ws_frames_t fr = { 0 };
    if (kx_ws_frames_feed(&fr, data, hlen + plen, MAX_PAYLOAD) != hlen + plen || !kx_ws_frames_idle(&fr))
        abort();
    uint8_t *payload = malloc(plen ? plen : 1);
    if (!payload) return;
    memcpy(payload, data + hlen, plen);
    kx_ws_unmask(payload, plen, data + hlen - 4);
    D.on = true;
    D.p = payload;
    D.n = plen;
    D.same = D.other = 0;
    run_wslay(data, hlen + plen);
    D.on = false;
    /* wslay refuses a text message that is not UTF-8 (close 1007), as ws.c's on_text does. */
    bool utf8 = kx_utf8_valid(payload, plen);
    free(payload);
    if (D.other != 0 || D.same != (utf8 ? 1 : 0)) abort();
}

/* Reference: decode one code point at a time by the RFC 3629 table. */
static bool ref_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c <= 0x7F) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c == 0xE0) {
            len = 3;
            lo = 0xA0;
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) len = 3;
        else if (c == 0xED) {
            len = 3;
            hi = 0x9F;
        } else if (c == 0xF0) {
            len = 4;
            lo = 0x90;
        } else if (c >= 0xF1 && c <= 0xF3) len = 4;
        else if (c == 0xF4) {
            len = 4;
            hi = 0x8F;
        } else return false;
        if (i + len > n) return false;
        if (s[i + 1] < lo || s[i + 1] > hi) return false;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return false;
        i += len;
    }
    return true;
}

/* A span the envelope reader hands back lies inside the text; a string span holds no quote,
 * backslash or control byte; the params text is an object's braces with no NUL between. */
static void check_span(const char *s, size_t size, kx_ws_span_t sp, bool string)
{
    if (!sp.p) return;
    if (sp.p < s || sp.len > size || (size_t)(sp.p - s) > size - sp.len) abort();
    for (size_t i = 0; i < sp.len; i++) {
        unsigned char c = (unsigned char)sp.p[i];
        if (string && (c == '"' || c == '\\' || c < 0x20)) abort();
        if (!string && c == 0) abort();
    }
    if (!string && (sp.len < 2 || sp.p[0] != '{' || sp.p[sp.len - 1] != '}')) abort();
}

static void check_envelope(const char *s, size_t size)
{
    kx_ws_envelope_t e;
    if (!kx_ws_envelope_scan(s, size, &e)) return;
    if (!e.type.p || (s[0] != '{' && s[0] != ' ' && s[0] != '\t' && s[0] != '\n' && s[0] != '\r')) abort();
    check_span(s, size, e.type, true);
    check_span(s, size, e.action, true);
    check_span(s, size, e.channel, true);
    check_span(s, size, e.params, false);
    if (e.mid == KX_WS_MID_STRING) check_span(s, size, e.mid_string, true);
    if (e.mid == KX_WS_MID_NUMBER &&
        !(e.mid_number < 1e15 && e.mid_number > -1e15 && e.mid_number == (double)(int64_t)e.mid_number))
        abort();
    /* it ends with the object's '}' or whitespace after it: without its last byte, the text is
     * still an envelope exactly when that byte was whitespace */
    kx_ws_envelope_t again;
    char last = s[size - 1];
    bool ws = last == ' ' || last == '\t' || last == '\n' || last == '\r';
    if (!ws && last != '}') abort();
    if (kx_ws_envelope_scan(s, size - 1, &again) != ws) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint16_t violation = 0;
    size_t ok = track_both_ways(data, size, &violation);
    if (violation && violation != 1002 && violation != 1009) abort();
    run_wslay(data, ok);
    check_direct(data, size);
    if (kx_utf8_valid(data, size) != ref_utf8(data, size)) abort();
    const char *s = (const char *)data;
    bool valid = kx_channel_name_valid(s, size);
    if (valid && (size == 0 || size > 200)) abort();
    const char *name = NULL;
    size_t nlen = 0;
    if (kx_pubsub_channel_of(s, size, &name, &nlen)) {
        if (name < s || name + nlen > s + size || !kx_channel_name_valid(name, nlen)) abort();
        if (size < 12 || memcmp(s, "{\"channel\":\"", 12) != 0) abort();
    }
    check_envelope(s, size);
    return 0;
}
