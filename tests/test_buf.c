/* test_buf.c — kx_buf_t: growth through append/puts/printf across many sizes (including
 * printf output longer than its 256-byte stack scratch), consume (partial, all, past the end),
 * reset, reserve, and the always-NUL-terminated invariant. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"

#include <stdio.h>
#include <stdlib.h>

/* Deterministic filler: byte i of a pattern is 'a' + i % 26. */
static void fill_pattern(char *p, size_t n, size_t start)
{
    for (size_t i = 0; i < n; i++) p[i] = (char)('a' + (start + i) % 26);
}

static void assert_invariants(const kx_buf_t *b)
{
    if (b->data == NULL) {
        assert_int_equal(b->len, 0);
        return;
    }
    assert_true(b->len < b->cap);
    assert_int_equal(b->data[b->len], '\0');
}

static void test_init_is_empty(void **state)
{
    (void)state;
    kx_buf_t b = KX_BUF_INIT;
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    /* Freeing / resetting / consuming a never-used buffer is safe. */
    kx_buf_reset(&b);
    kx_buf_consume(&b, 10);
    assert_int_equal(b.len, 0);
    kx_buf_free(&b);
    assert_null(b.data);
}

static void test_append_zero_bytes_terminates(void **state)
{
    (void)state;
    kx_buf_t b = KX_BUF_INIT;
    kx_buf_append(&b, "", 0);
    assert_non_null(b.data);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_invariants(&b);
    kx_buf_free(&b);
}

static void test_append_many_sizes(void **state)
{
    (void)state;
    static const size_t sizes[] = { 1,   2,    254,  255,  256,  257,   511,   512,
                                    513, 1000, 4095, 4096, 4097, 65536, 100003 };
    for (size_t si = 0; si < KX_ARRAY_LEN(sizes); si++) {
        size_t n = sizes[si];
        char *src = malloc(n);
        assert_non_null(src);
        fill_pattern(src, n, 0);
        kx_buf_t b = KX_BUF_INIT;
        kx_buf_append(&b, src, n);
        assert_int_equal(b.len, n);
        assert_memory_equal(b.data, src, n);
        assert_invariants(&b);
        /* A second append lands right after the first. */
        kx_buf_append(&b, src, n);
        assert_int_equal(b.len, 2 * n);
        assert_memory_equal(b.data + n, src, n);
        assert_invariants(&b);
        kx_buf_free(&b);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.cap, 0);
        free(src);
    }
}

static void test_append_byte_by_byte(void **state)
{
    (void)state;
    kx_buf_t b = KX_BUF_INIT;
    char expect[3000];
    fill_pattern(expect, sizeof expect, 7);
    for (size_t i = 0; i < sizeof expect; i++) {
        kx_buf_append(&b, &expect[i], 1);
        assert_int_equal(b.len, i + 1);
        assert_invariants(&b);
    }
    assert_memory_equal(b.data, expect, sizeof expect);
    kx_buf_free(&b);
}

static void test_append_embedded_nul(void **state)
{
    (void)state;
    kx_buf_t b = KX_BUF_INIT;
    kx_buf_append(&b, "a\0b", 3);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "a\0b", 4); /* incl. the terminator */
    kx_buf_free(&b);
}

static void test_puts(void **state)
{
    (void)state;
    kx_buf_t b = KX_BUF_INIT;
    kx_buf_puts(&b, "hello");
    kx_buf_puts(&b, "");
    kx_buf_puts(&b, ", world");
    assert_int_equal(b.len, 12);
    assert_string_equal(b.data, "hello, world");
    assert_invariants(&b);
    kx_buf_free(&b);
}

static void test_printf_small(void **state)
{
    (void)state;
    kx_buf_t b = KX_BUF_INIT;
    kx_buf_printf(&b, "%d-%s-%zu", -42, "x", (size_t)7);
    assert_string_equal(b.data, "-42-x-7");
    assert_int_equal(b.len, 7);
    kx_buf_printf(&b, "%s", "");
    assert_int_equal(b.len, 7);
    kx_buf_printf(&b, "%c%%", 'z');
    assert_string_equal(b.data, "-42-x-7z%");
    assert_invariants(&b);
    kx_buf_free(&b);
}

/* Output lengths around the 256-byte scratch in kx_buf_printf, and far beyond it, appended
 * after an existing prefix of varying length so that both the fast and slow paths grow. */
static void test_printf_many_sizes(void **state)
{
    (void)state;
    static const size_t sizes[] = { 0, 1, 254, 255, 256, 257, 300, 511, 512, 513, 4096, 70000 };
    static const size_t prefixes[] = { 0, 1, 200, 255, 256, 1000 };
    for (size_t pi = 0; pi < KX_ARRAY_LEN(prefixes); pi++) {
        for (size_t si = 0; si < KX_ARRAY_LEN(sizes); si++) {
            size_t plen = prefixes[pi], n = sizes[si];
            char *pre = malloc(plen + 1), *arg = malloc(n + 1);
            assert_non_null(pre);
            assert_non_null(arg);
            fill_pattern(pre, plen, 3);
            pre[plen] = '\0';
            fill_pattern(arg, n, 11);
            arg[n] = '\0';

            kx_buf_t b = KX_BUF_INIT;
            kx_buf_append(&b, pre, plen);
            kx_buf_printf(&b, "<%s>%zu", arg, n);
            char tail[32];
            int tl = snprintf(tail, sizeof tail, "%zu", n);
            size_t want = plen + 1 + n + 1 + (size_t)tl;
            assert_int_equal(b.len, want);
            assert_memory_equal(b.data, pre, plen);
            assert_int_equal(b.data[plen], '<');
            assert_memory_equal(b.data + plen + 1, arg, n);
            assert_int_equal(b.data[plen + 1 + n], '>');
            assert_string_equal(b.data + plen + 2 + n, tail);
            assert_int_equal(strlen(b.data), want);
            assert_invariants(&b);
            kx_buf_free(&b);
            free(pre);
            free(arg);
        }
    }
}

/* A long printf whose arguments are re-read on the second pass (va_list restarted). */
static void test_printf_long_multiple_args(void **state)
{
    (void)state;
    kx_buf_t b = KX_BUF_INIT;
    char big[400];
    memset(big, 'Q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    kx_buf_printf(&b, "%s|%d|%s|%ld", big, 12345, "end", -9L);
    char expect[600];
    snprintf(expect, sizeof expect, "%s|%d|%s|%ld", big, 12345, "end", -9L);
    assert_string_equal(b.data, expect);
    assert_int_equal(b.len, strlen(expect));
    assert_invariants(&b);
    kx_buf_free(&b);
}

static void test_consume_partial(void **state)
{
    (void)state;
    kx_buf_t b = KX_BUF_INIT;
    kx_buf_puts(&b, "0123456789");
    kx_buf_consume(&b, 0);
    assert_string_equal(b.data, "0123456789");
    kx_buf_consume(&b, 3);
    assert_int_equal(b.len, 7);
    assert_string_equal(b.data, "3456789");
    kx_buf_consume(&b, 6);
    assert_int_equal(b.len, 1);
    assert_string_equal(b.data, "9");
    assert_invariants(&b);
    /* Appending after a consume continues from the remaining bytes. */
    kx_buf_puts(&b, "ab");
    assert_string_equal(b.data, "9ab");
    kx_buf_free(&b);
}

static void test_consume_all_and_over(void **state)
{
    (void)state;
    kx_buf_t b = KX_BUF_INIT;
    kx_buf_puts(&b, "abcdef");
    kx_buf_consume(&b, 6);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    kx_buf_puts(&b, "xyz");
    kx_buf_consume(&b, 1000);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    kx_buf_consume(&b, SIZE_MAX);
    assert_int_equal(b.len, 0);
    assert_invariants(&b);
    kx_buf_puts(&b, "again");
    assert_string_equal(b.data, "again");
    kx_buf_free(&b);
}

/* Consume a large buffer in uneven chunks and check every remaining byte each time. */
static void test_consume_large_chunks(void **state)
{
    (void)state;
    size_t n = 20000;
    char *src = malloc(n);
    assert_non_null(src);
    fill_pattern(src, n, 0);
    kx_buf_t b = KX_BUF_INIT;
    kx_buf_append(&b, src, n);
    size_t gone = 0, step = 1;
    while (b.len > 0) {
        kx_buf_consume(&b, step);
        gone = gone + step > n ? n : gone + step;
        assert_int_equal(b.len, n - gone);
        if (b.len) assert_memory_equal(b.data, src + gone, b.len);
        assert_invariants(&b);
        step = step * 3 + 1;
    }
    kx_buf_free(&b);
    free(src);
}

static void test_reset_keeps_capacity(void **state)
{
    (void)state;
    kx_buf_t b = KX_BUF_INIT;
    char big[5000];
    fill_pattern(big, sizeof big, 0);
    kx_buf_append(&b, big, sizeof big);
    size_t cap = b.cap;
    char *data = b.data;
    kx_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(b.cap, cap);
    /* Refilling up to the old size does not reallocate. */
    kx_buf_append(&b, big, sizeof big);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_memory_equal(b.data, big, sizeof big);
    kx_buf_free(&b);
}

static void test_reserve(void **state)
{
    (void)state;
    kx_buf_t b = KX_BUF_INIT;
    kx_buf_reserve(&b, 0);
    assert_non_null(b.data);
    assert_true(b.cap >= 1);

    kx_buf_reserve(&b, 1000);
    assert_true(b.cap >= 1001); /* room for 1000 bytes + the NUL */
    assert_int_equal(b.len, 0);
    size_t cap = b.cap;
    char *data = b.data;
    /* Writing the reserved bytes needs no further growth. */
    char src[1000];
    fill_pattern(src, sizeof src, 5);
    kx_buf_append(&b, src, sizeof src);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_memory_equal(b.data, src, sizeof src);
    assert_invariants(&b);

    /* Reserve never shrinks nor loses content. */
    kx_buf_reserve(&b, 0);
    assert_int_equal(b.cap, cap);
    kx_buf_reserve(&b, 100000);
    assert_true(b.cap >= b.len + 100000 + 1);
    assert_int_equal(b.len, sizeof src);
    assert_memory_equal(b.data, src, sizeof src);
    kx_buf_free(&b);
}

/* Reserve exactly to the capacity boundary: len + extra + 1 == cap must not grow, one more
 * byte must. */
static void test_reserve_boundary(void **state)
{
    (void)state;
    kx_buf_t b = KX_BUF_INIT;
    kx_buf_puts(&b, "abc");
    size_t cap = b.cap;
    kx_buf_reserve(&b, cap - b.len - 1);
    assert_int_equal(b.cap, cap);
    kx_buf_reserve(&b, cap - b.len);
    assert_true(b.cap > cap);
    assert_string_equal(b.data, "abc");
    kx_buf_free(&b);
}

static void test_json_escape(void **state)
{
    (void)state;
    kx_buf_t b = KX_BUF_INIT;
    const char in[] = "a\"b\\c\n\x01\x1f /é";
    kx_buf_json_escape(&b, in, sizeof in - 1);
    assert_string_equal(b.data, "a\\\"b\\\\c\\u000a\\u0001\\u001f /é");
    kx_buf_reset(&b);
    kx_buf_json_escape(&b, "x\0y", 3); /* a NUL inside the span is escaped, not a terminator */
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data, "x\\u0000y", 8);
    kx_buf_free(&b);
}

/* Freed blocks of 1–16 KiB are reused by the next buffer whose first growth reaches their
 * size, capacities stay what they would be without the pool, and the pool is bounded: a
 * burst of frees beyond 256 KiB goes back to malloc. */
static void test_free_list_is_bounded(void **state)
{
    (void)state;
    kx_buf_t a = KX_BUF_INIT;
    kx_buf_reserve(&a, 3000); /* 256 → 4096 (maybe a block earlier tests freed) */
    assert_int_equal(a.cap, 4096);
    size_t before = kx_buf_pooled_bytes();
    char *block = a.data;
    kx_buf_free(&a);
    assert_null(a.data);
    assert_int_equal(kx_buf_pooled_bytes(), before + 4096);
    kx_buf_t b = KX_BUF_INIT;
    kx_buf_append(&b, "x", 1); /* a small buffer never takes a pooled 4 KiB block */
    assert_int_equal(b.cap, 256);
    kx_buf_reserve(&b, 5000); /* growth of a used buffer is a realloc, as always */
    assert_int_equal(b.cap, 8192);
    assert_memory_equal(b.data, "x", 2);
    kx_buf_t c = KX_BUF_INIT;
    kx_buf_reserve(&c, 2100);
    assert_ptr_equal(c.data, block); /* the freed block, reused */
    assert_int_equal(c.cap, 4096);
    assert_int_equal(kx_buf_pooled_bytes(), before);
    kx_buf_free(&c);
    /* 200 buffers of 16 KiB freed at once: at most 256 KiB are kept. */
    enum { N = 200 };
    kx_buf_t many[N];
    for (int i = 0; i < N; i++) {
        many[i] = (kx_buf_t)KX_BUF_INIT;
        kx_buf_reserve(&many[i], 9000);
        assert_int_equal(many[i].cap, 16384);
        memset(many[i].data, 'q', 9000);
    }
    for (int i = 0; i < N; i++) kx_buf_free(&many[i]);
    assert_true(kx_buf_pooled_bytes() <= 256 * 1024);
    assert_true(kx_buf_pooled_bytes() >= 256 * 1024 - 16384);
    /* Blocks outside the classes (here 32 KiB) are never kept. */
    size_t kept = kx_buf_pooled_bytes();
    for (int i = 0; i < N; i++) kx_buf_reserve(&many[i], 9000); /* drain the pool */
    assert_true(kx_buf_pooled_bytes() < kept);
    kx_buf_t big = KX_BUF_INIT;
    kx_buf_reserve(&big, 20000);
    assert_int_equal(big.cap, 32768);
    size_t now = kx_buf_pooled_bytes();
    kx_buf_free(&big);
    assert_int_equal(kx_buf_pooled_bytes(), now);
    for (int i = 0; i < N; i++) kx_buf_free(&many[i]);
    kx_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_init_is_empty),
        cmocka_unit_test(test_append_zero_bytes_terminates),
        cmocka_unit_test(test_append_many_sizes),
        cmocka_unit_test(test_append_byte_by_byte),
        cmocka_unit_test(test_append_embedded_nul),
        cmocka_unit_test(test_puts),
        cmocka_unit_test(test_printf_small),
        cmocka_unit_test(test_printf_many_sizes),
        cmocka_unit_test(test_printf_long_multiple_args),
        cmocka_unit_test(test_consume_partial),
        cmocka_unit_test(test_consume_all_and_over),
        cmocka_unit_test(test_consume_large_chunks),
        cmocka_unit_test(test_reset_keeps_capacity),
        cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_reserve_boundary),
        cmocka_unit_test(test_free_list_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
