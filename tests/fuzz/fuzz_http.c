/* fuzz_http.c — libFuzzer harness for the request framing that guards against smuggling:
 * kx_http_head_end (whole and resumed byte by byte must agree), the one-pass parser http.c
 * runs (whole and byte by byte, the same end, status, reason and info as the reference
 * kx_http_head_end + kx_http_guard_head) and whose spans are llhttp's on every head it accepts
 * (llhttp must tokenise it when the method is one http.c takes the spans for),
 * kx_http_guard_head, then llhttp
 * on every head the guard accepts (it must accept it too, as one message), and the strict
 * chunked decoder on the rest (fed whole and split must agree). Run: make fuzz. */
#include <llhttp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "http_guard.h"

/* ---- llhttp as the reference tokeniser (llhttp_spans.h) ---------------------------------- */

#include "../llhttp_spans.h"

static int count_complete(llhttp_t *p)
{
    (*(int *)p->data)++;
    return 0;
}

static int skip_body(llhttp_t *p)
{
    (void)p;
    return 1; /* keryx never lets llhttp read a body */
}

static void on_data(void *ud, const char *p, size_t n)
{
    (void)p;
    *(size_t *)ud += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    long end = kx_http_head_end(buf, size);
    size_t scanned = 0;
    long end2 = 0;
    for (size_t n = 1; n <= size && end2 == 0; n++) end2 = kx_http_head_end_from(buf, n, &scanned);
    if ((end > 0) != (end2 > 0) || (end > 0 && end != end2)) abort();

    kx_head_parser_t whole, trickled;
    kx_head_parser_init(&whole);
    kx_head_parser_init(&trickled);
    long end3 = kx_head_parser_feed(&whole, buf, size), end4 = 0;
    for (size_t n = 1; n <= size && end4 == 0; n++) end4 = kx_head_parser_feed(&trickled, buf, n);
    if (end3 != end || end4 != end) abort();
    if (end <= 0) return 0;

    kx_head_info_t info, info3, info4;
    int status = 0, st3 = 0, st4 = 0;
    const char *reason = NULL, *why3 = NULL, *why4 = NULL;
    int rc = kx_http_guard_head(buf, (size_t)end, &info, &status, &reason);
    if (kx_head_parser_result(&whole, &info3, &st3, &why3) != rc ||
        kx_head_parser_result(&trickled, &info4, &st4, &why4) != rc)
        abort();
    if (st3 != status || st4 != status || why3 != reason || why4 != reason) abort();
    if (rc != KX_OK) {
        if (status < 400 || status > 599 || !reason) abort();
        return 0;
    }
    if (memcmp(&info3, &info, sizeof info) != 0 || memcmp(&info4, &info, sizeof info) != 0) abort();
    if (spans_differ(buf, (size_t)end, &whole) || spans_differ(buf, (size_t)end, &trickled)) abort();
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_complete = count_complete;
    s.on_headers_complete = skip_body;
    llhttp_t p;
    int messages = 0;
    llhttp_init(&p, HTTP_REQUEST, &s);
    p.data = &messages;
    llhttp_errno_t e = llhttp_execute(&p, buf, (size_t)end);
    /* A head the guard accepted is one message to llhttp, or an error (llhttp is stricter
     * about methods): never two. */
    if (e == HPE_OK && messages > 1) abort();

    if (info.transfer_encoding == KX_TE_CHUNKED) {
        const char *rest = buf + end;
        size_t rlen = size - (size_t)end;
        kx_chunk_decoder_t a, b;
        size_t out_a = 0, out_b = 0, used_a = 0, used_b = 0;
        kx_chunk_decoder_init(&a, 1 << 20);
        kx_chunk_decoder_init(&b, 1 << 20);
        int ra = kx_chunk_decoder_feed(&a, rest, rlen, &used_a, on_data, &out_a);
        int rb = KX_OK;
        for (size_t i = 0; i < rlen && rb == KX_OK && !kx_chunk_decoder_done(&b); i++) {
            size_t u = 0;
            rb = kx_chunk_decoder_feed(&b, rest + i, 1, &u, on_data, &out_b);
            used_b += u;
        }
        if (ra != rb || out_a != out_b || kx_chunk_decoder_done(&a) != kx_chunk_decoder_done(&b)) abort();
        if (ra == KX_OK && kx_chunk_decoder_done(&a) && used_a != used_b) abort();
    }
    return 0;
}
