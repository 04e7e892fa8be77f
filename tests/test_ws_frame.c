/* test_ws_frame.c — the client frame tracker (ws_frame.c): where the stream is between and
 * inside frames, and the rules it enforces on a complete header, each fed whole and byte by
 * byte: a header announcing more than the limit (16-bit and 64-bit lengths, up to 2^63-1) →
 * 1009 with no payload needed; a close frame with a 1-byte payload → 1002; a 64-bit length
 * with the top bit set → 1002; bytes before a bad header are handed on, none after; sticky. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames_and_idle),
        cmocka_unit_test(test_oversized_header_refused_at_once),
        cmocka_unit_test(test_protocol_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
