/* fuzz_ws.c — libFuzzer harness for the WebSocket/pub-sub checks done in C on untrusted bytes:
 * UTF-8 validation (checked against a byte-by-byte reference decoder), channel names and the
 * broadcast payload prefix. Run: make fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "channel_name.h"
#include "utf8.h"

/* Reference: decode one code point at a time by the RFC 3629 table. */
static bool ref_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c <= 0x7F) { i++; continue; }
        else if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c == 0xE0) { len = 3; lo = 0xA0; }
        else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) len = 3;
        else if (c == 0xED) { len = 3; hi = 0x9F; }
        else if (c == 0xF0) { len = 4; lo = 0x90; }
        else if (c >= 0xF1 && c <= 0xF3) len = 4;
        else if (c == 0xF4) { len = 4; hi = 0x8F; }
        else return false;
        if (i + len > n) return false;
        if (s[i + 1] < lo || s[i + 1] > hi) return false;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return false;
        i += len;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
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
    return 0;
}
