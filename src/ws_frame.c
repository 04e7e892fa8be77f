/* ws_frame.c — the client frame tracker (see ws_frame.h). */
#include "ws_frame.h"
#include <string.h>

#define OP_CONT 0x0
#define OP_TEXT 0x1
#define OP_BINARY 0x2
#define OP_CLOSE 0x8

static void frame_done(kx_ws_frames_t *fr, uint8_t b0)
{
    bool fin = b0 & 0x80;
    uint8_t op = b0 & 0x0f;
    if (op == OP_TEXT || op == OP_BINARY) fr->in_message = !fin;
    else if (op == OP_CONT && fin) fr->in_message = false;
}

static uint64_t header_length(const kx_ws_frames_t *fr)
{
    uint8_t l7 = fr->hdr[1] & 0x7f;
    if (l7 == 126) return ((uint64_t)fr->hdr[2] << 8) | fr->hdr[3];
    if (l7 < 126) return l7;
    uint64_t len = 0;
    for (int i = 0; i < 8; i++) len = (len << 8) | fr->hdr[2 + i];
    return len;
}

/* The rules checked on a complete header; 0 when it passes. */
static uint16_t check_header(const kx_ws_frames_t *fr, uint64_t len, uint64_t max_payload)
{
    uint8_t op = fr->hdr[0] & 0x0f;
    if ((fr->hdr[1] & 0x7f) == 127 && (len >> 63)) return 1002; /* a 64-bit length has its top bit clear */
    if (op == OP_CLOSE && len == 1) return 1002;                /* a code is two bytes */
    if (op < OP_CLOSE && max_payload && len > max_payload) return 1009;
    return 0;
}

size_t kx_ws_frames_feed(kx_ws_frames_t *fr, const uint8_t *p, size_t n, uint64_t max_payload)
{
    if (fr->violation) return 0;
    size_t i = 0;
    while (i < n) {
        if (fr->left > 0) {
            uint64_t take = fr->left < n - i ? fr->left : n - i;
            fr->left -= take;
            i += (size_t)take;
            if (fr->left == 0) frame_done(fr, fr->hdr[0]);
            continue;
        }
        fr->hdr[fr->hdr_len++] = p[i++];
        if (fr->hdr_len == 2) {
            uint8_t l7 = fr->hdr[1] & 0x7f;
            fr->need = (uint8_t)(2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((fr->hdr[1] & 0x80) ? 4 : 0));
        }
        if (fr->hdr_len < 2 || fr->hdr_len < fr->need) continue;
        uint64_t len = header_length(fr);
        fr->violation = check_header(fr, len, max_payload);
        if (fr->violation) {
            size_t start = i >= fr->hdr_len ? i - fr->hdr_len : 0;
            return start;
        }
        fr->hdr_len = 0;
        fr->left = len;
        if (len == 0) frame_done(fr, fr->hdr[0]);
    }
    return n;
}

bool kx_ws_frames_idle(const kx_ws_frames_t *fr)
{
    return !fr->hdr_len && !fr->left && !fr->in_message;
}

int kx_ws_direct_frame(const uint8_t *p, size_t avail, uint64_t max_payload, size_t *hlen, size_t *plen)
{
    if (avail < 2) return p[0] == 0x81 ? KX_WS_DIRECT_WAIT : KX_WS_DIRECT_NO; /* FIN + text */
    if (p[0] != 0x81 || !(p[1] & 0x80)) return KX_WS_DIRECT_NO;               /* clients mask their frames */
    size_t len = p[1] & 0x7f, h = 6;
    if (len == 127) return KX_WS_DIRECT_NO;
    if (len == 126) {
        if (avail < 4) return KX_WS_DIRECT_WAIT;
        len = ((size_t)p[2] << 8) | p[3];
        if (len < 126) return KX_WS_DIRECT_NO; /* not the minimal encoding: wslay's call */
        h = 8;
    }
    if (max_payload && len > max_payload) return KX_WS_DIRECT_NO;
    if (avail < h + len) return KX_WS_DIRECT_WAIT;
    *hlen = h;
    *plen = len;
    return KX_WS_DIRECT_YES;
}

void kx_ws_unmask(uint8_t *p, size_t n, const uint8_t key[4])
{
    uint8_t k8[8];
    uint64_t k, v;
    memcpy(k8, key, 4);
    memcpy(k8 + 4, key, 4);
    memcpy(&k, k8, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { /* key[i & 3] == k8[0] at every multiple of 8 */
        memcpy(&v, p + i, 8);
        v ^= k;
        memcpy(p + i, &v, 8);
    }
    for (; i < n; i++) p[i] ^= key[i & 3];
}
