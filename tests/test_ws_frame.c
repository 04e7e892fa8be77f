/* test_ws_frame.c — the client frame tracker (ws_frame.c): where the stream is between and
 * inside frames, and the rules it enforces on a complete header, each fed whole and byte by
 * byte: a header announcing more than the limit (16-bit and 64-bit lengths, up to 2^63-1) →
 * 1009 with no payload needed; a close frame with a 1-byte payload → 1002; a 64-bit length
 * with the top bit set → 1002; bytes before a bad header are handed on, none after; sticky.
 * Then the direct path's frame test (kx_ws_direct_frame) and kx_ws_unmask. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "ws_frame.h"

#define MAX 1024

/* A masked client frame header announcing len (no payload). */
static size_t header(uint8_t *h, uint8_t b0, uint64_t len)
{
    size_t n = 2;
    h[0] = b0;
    if (len < 126) {
        h[1] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        h[1] = 0x80 | 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        n = 4;
    } else {
        h[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    memset(h + n, 0x11, 4); /* mask key */
    return n + 4;
}

static void feed_bytewise(kx_ws_frames_t *fr, const uint8_t *p, size_t n, size_t *taken)
{
    *taken = 0;
    for (size_t i = 0; i < n; i++) *taken += kx_ws_frames_feed(fr, p + i, 1, MAX);
}

static void expect_violation(const uint8_t *p, size_t n, size_t before, uint16_t code)
{
    kx_ws_frames_t fr = { 0 };
    assert_int_equal(kx_ws_frames_feed(&fr, p, n, MAX), before);
    assert_int_equal(fr.violation, code);
    assert_int_equal(kx_ws_frames_feed(&fr, p, n, MAX), 0); /* sticky */
    kx_ws_frames_t fb = { 0 };
    size_t taken;
    feed_bytewise(&fb, p, n, &taken);
    assert_int_equal(fb.violation, code);
}

static void test_frames_and_idle(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = header(buf, 0x01, 3); /* text, not final: a fragmented message opens */
    memcpy(buf + n, "abc", 3);
    n += 3;
    kx_ws_frames_t fr = { 0 };
    assert_true(kx_ws_frames_idle(&fr));
    assert_int_equal(kx_ws_frames_feed(&fr, buf, n, MAX), n);
    assert_false(kx_ws_frames_idle(&fr)); /* inside the message */
    n = header(buf, 0x80, 0);             /* final continuation */
    assert_int_equal(kx_ws_frames_feed(&fr, buf, n - 1, MAX), n - 1);
    assert_false(kx_ws_frames_idle(&fr)); /* mid-header */
    assert_int_equal(kx_ws_frames_feed(&fr, buf + n - 1, 1, MAX), 1);
    assert_true(kx_ws_frames_idle(&fr));
    assert_int_equal(fr.violation, 0);
}

static void test_oversized_header_refused_at_once(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t ok = header(buf, 0x81, 2);
    memcpy(buf + ok, "hi", 2);
    ok += 2; /* a valid frame first: it goes on */
    size_t n = ok + header(buf + ok, 0x81, MAX + 1);
    expect_violation(buf, n, ok, 1009);
    n = header(buf, 0x82, (uint64_t)1 << 40);
    expect_violation(buf, n, 0, 1009);
    n = header(buf, 0x81, ((uint64_t)1 << 63) - 1);
    expect_violation(buf, n, 0, 1009);
    n = header(buf, 0x81, MAX); /* exactly the limit is fine */
    kx_ws_frames_t fr = { 0 };
    assert_int_equal(kx_ws_frames_feed(&fr, buf, n, MAX), n);
    assert_int_equal(fr.violation, 0);
}

static void test_protocol_errors(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = header(buf, 0x88, 1); /* close with a 1-byte payload */
    expect_violation(buf, n, 0, 1002);
    n = header(buf, 0x81, (uint64_t)1 << 63); /* top bit of a 64-bit length */
    expect_violation(buf, n, 0, 1002);
    n = header(buf, 0x88, 2); /* a close with a code is fine */
    kx_ws_frames_t fr = { 0 };
    assert_int_equal(kx_ws_frames_feed(&fr, buf, n, MAX), n);
    assert_int_equal(fr.violation, 0);
}

/* The frames ws.c takes without wslay: whole masked FIN text frames with a 7-bit or minimal
 * 16-bit length within the limit; WAIT while one may still be coming; wslay's otherwise. */
static void test_direct_frames(void **state)
{
    (void)state;
    uint8_t buf[300 + 8];
    size_t hl, pl, n = header(buf, 0x81, 5);
    memcpy(buf + n, "hello", 5);
    assert_int_equal(kx_ws_direct_frame(buf, n + 5, MAX, &hl, &pl), KX_WS_DIRECT_YES);
    assert_int_equal(hl, 6);
    assert_int_equal(pl, 5);
    for (size_t k = 1; k < n + 5; k++)
        assert_int_equal(kx_ws_direct_frame(buf, k, MAX, &hl, &pl), KX_WS_DIRECT_WAIT);
    n = header(buf, 0x81, 300);
    assert_int_equal(n, 8);
    assert_int_equal(kx_ws_direct_frame(buf, n + 300, MAX, &hl, &pl), KX_WS_DIRECT_YES);
    assert_int_equal(pl, 300);
    assert_int_equal(kx_ws_direct_frame(buf, 3, MAX, &hl, &pl), KX_WS_DIRECT_WAIT);
    assert_int_equal(kx_ws_direct_frame(buf, n + 300, 299, &hl, &pl), KX_WS_DIRECT_NO); /* over the limit */
    static const uint8_t others[] = {
        0x01, 0x82, 0x80, 0x89, 0x88, 0xc1, 0xa1, 0x91
    }; /* fragment, binary, … */
    for (size_t i = 0; i < sizeof others; i++) {
        n = header(buf, others[i], 5);
        assert_int_equal(kx_ws_direct_frame(buf, n + 5, MAX, &hl, &pl), KX_WS_DIRECT_NO);
    }
    n = header(buf, 0x81, 5);
    buf[1] &= 0x7f; /* unmasked */
    assert_int_equal(kx_ws_direct_frame(buf, n + 5, MAX, &hl, &pl), KX_WS_DIRECT_NO);
    uint8_t l16[] = { 0x81, 0x80 | 126, 0, 5, 1, 2, 3, 4, 'a', 'b', 'c', 'd', 'e' }; /* not minimal */
    assert_int_equal(kx_ws_direct_frame(l16, sizeof l16, MAX, &hl, &pl), KX_WS_DIRECT_NO);
    n = header(buf, 0x81, 70000); /* 64-bit length */
    assert_int_equal(kx_ws_direct_frame(buf, n, 0, &hl, &pl), KX_WS_DIRECT_NO);
}

static void test_unmask(void **state)
{
    (void)state;
    static const uint8_t key[4] = { 0x37, 0xfa, 0x21, 0x3d };
    uint8_t p[37], want[37];
    for (size_t n = 0; n <= sizeof p; n++) { /* every tail length around the 8-byte steps */
        for (size_t i = 0; i < n; i++) {
            p[i] = (uint8_t)(i * 7 + 1);
            want[i] = p[i] ^ key[i % 4];
        }
        kx_ws_unmask(p, n, key);
        if (n > 0) assert_memory_equal(p, want, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames_and_idle), cmocka_unit_test(test_oversized_header_refused_at_once),
        cmocka_unit_test(test_protocol_errors), cmocka_unit_test(test_direct_frames),
        cmocka_unit_test(test_unmask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
