/* test_channels_feed.c — the broadcast feed of channels.c (the MCP GET streams' source): kept
 * only while a reader is registered, numbered from 1, the oldest entries overwritten past
 * KX_CHANNELS_FEED_SIZE, an oversized payload skipped, and everything freed with the last
 * reader. Payloads go through kx_channels_on_publish, as pub/sub hands them over. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "channels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void publish(const char *channel, int n)
{
    char p[128];
    int len = snprintf(p, sizeof p, "{\"channel\":\"%s\",\"message\":%d,\"sender\":\"server\"}", channel, n);
    kx_channels_on_publish(p, (size_t)len);
}

static void test_no_reader_no_copy(void **state)
{
    (void)state;
    uint64_t before = kx_channels_feed_seq();
    publish("room:a", 1);
    assert_int_equal(kx_channels_feed_seq(), before);
}

static void test_numbered_and_wrapping(void **state)
{
    (void)state;
    kx_channels_feed_readers(1);
    uint64_t base = kx_channels_feed_seq();
    publish("room:a", 1);
    const char *p;
    size_t len;
    assert_true(kx_channels_feed_get(base + 1, &p, &len));
    assert_memory_equal(p, "{\"channel\":\"room:a\",\"message\":1,", 31);
    assert_false(kx_channels_feed_get(base + 2, &p, &len));
    assert_false(kx_channels_feed_get(0, &p, &len));
    for (int i = 2; i <= KX_CHANNELS_FEED_SIZE + 10; i++) publish("room:a", i);
    uint64_t last = kx_channels_feed_seq();
    assert_int_equal(last, base + KX_CHANNELS_FEED_SIZE + 10);
    assert_false(kx_channels_feed_get(base + 1, &p, &len)); /* overwritten */
    assert_false(kx_channels_feed_get(last - KX_CHANNELS_FEED_SIZE, &p, &len));
    assert_true(kx_channels_feed_get(last - KX_CHANNELS_FEED_SIZE + 1, &p, &len));
    assert_true(kx_channels_feed_get(last, &p, &len));
    kx_channels_feed_readers(-1);
}

static void test_oversized_skipped_and_not_a_broadcast(void **state)
{
    (void)state;
    kx_channels_feed_readers(1);
    size_t n = KX_CHANNELS_FEED_MAX + 100;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    memcpy(big, "{\"channel\":\"room:a\",\"message\":\"", 31);
    memcpy(big + n - 2, "\"}", 2);
    uint64_t before = kx_channels_feed_seq();
    kx_channels_on_publish(big, n);
    const char *p;
    size_t len;
    assert_int_equal(kx_channels_feed_seq(), before + 1);
    assert_false(kx_channels_feed_get(before + 1, &p, &len));
    free(big);
    kx_channels_on_publish("nonsense", 8); /* not a broadcast: not fed */
    assert_int_equal(kx_channels_feed_seq(), before + 1);
    kx_channels_feed_readers(-1);
    /* The last reader gone: no copy is kept. */
    assert_false(kx_channels_feed_get(before, &p, &len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_reader_no_copy),
        cmocka_unit_test(test_numbered_and_wrapping),
        cmocka_unit_test(test_oversized_skipped_and_not_a_broadcast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
