/* test_json_number.c — json_number.c against snprintf: kx_json_g14 must write exactly what
 * "%.14g" writes, and kx_json_number exactly what lua/keryx/json.lua's rules give (reference
 * below, written with snprintf alone), for over a million doubles: random bit patterns (NaN, Inf,
 * subnormals included), random short decimals (the fast path), log-uniform magnitudes, and
 * the edges — each side of 1e-4, 1e14, 2^53, 2^63, every power of ten, rounding ties at the
 * 14th digit, -0. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "json_number.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void)
{
    /* xorshift64*: deterministic, so a failure reproduces */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static double from_bits(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* lua/keryx/json.lua's number rules, with snprintf only. */
static void reference(double v, char *out, size_t cap)
{
    if (isnan(v) || isinf(v)) {
        snprintf(out, cap, "null");
    } else if (floor(v) == v && (v >= 1e14 || v <= -1e14)) {
        snprintf(out, cap, (v < 9223372036854775808.0 && v > -9223372036854775808.0) ? "%.0f" : "%.17g", v);
    } else {
        snprintf(out, cap, "%.14g", v);
    }
}

static unsigned long checked;

static void check(double v)
{
    char want[64], got[KX_JSON_NUMBER_MAX + 1];
    if (!isnan(v) && !isinf(v)) {
        snprintf(want, sizeof want, "%.14g", v);
        size_t n = kx_json_g14(v, got);
        got[n] = '\0';
        if (strcmp(want, got) != 0) fail_msg("%%.14g of %a: want %s, got %s", v, want, got);
    }
    reference(v, want, sizeof want);
    size_t n = kx_json_number(v, got);
    got[n] = '\0';
    if (strcmp(want, got) != 0) fail_msg("number %a: want %s, got %s", v, want, got);
    checked++;
}

static void check_around(double v)
{
    double lo = v, hi = v;
    check(v);
    check(-v);
    for (int i = 0; i < 8; i++) {
        lo = nextafter(lo, -INFINITY);
        hi = nextafter(hi, INFINITY);
        check(lo);
        check(hi);
        check(-lo);
        check(-hi);
    }
}

static void test_edges(void **state)
{
    (void)state;
    /* clang-format off */
    static const double fixed[] = {
        0.0, -0.0, 1.0, -1.0, 0.5, 0.1, 0.2, 0.3, 1.5, 2.5, 12.34, 99.99, 1e-4, 1e-5, 1e14, 1e15, 1e16,
        1e17, 1e21, 1e22, 1e23, 1e300, 1e308, 1.7976931348623157e308, 4.9e-324, 2.2250738585072014e-308,
        9007199254740992.0, 9007199254740993.0, 9223372036854775808.0, 9223372036854774784.0,
        18446744073709551616.0, 99999999999999.99, 99999999999999.5, 9999999999999.995,
        0.00009999999999999999, 0.123456789012345, 0.12345678901234, 0.123456789012345678,
        1234567890123.45, 123456789012.345, 0.1 + 0.2, 1.0 / 3.0, 2.0 / 3.0, 100.0 / 3.0, 1e-4 + 1e-18,
        0.30000000000000004, 5e-5, 0.00015, NAN, INFINITY, -INFINITY,
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) check_around(fixed[i]);
    for (int e = -30; e <= 30; e++) check_around(pow(10, e));
    for (int e = 0; e <= 64; e++) check_around(ldexp(1, e));
    /* a 5 in the 15th significant digit: the rounding of "%.14g" itself */
    for (int e = -4; e <= 13; e++)
        for (int i = 0; i < 2000; i++) {
            double m = (double)(rng() % 100000000000000ull) * 10 + 5; /* 15 digits ending in 5 */
            check_around(m * pow(10, e - 14));
        }
}

static void test_random_bits(void **state)
{
    (void)state;
    for (int i = 0; i < 250000; i++) check(from_bits(rng()));
}

static void test_short_decimals(void **state)
{
    (void)state;
    /* m / 10^k with up to 17 digits in m: the values responses hold (prices, ratios, MB) */
    for (int i = 0; i < 375000; i++) {
        uint64_t r = rng();
        int digits = 1 + (int)(r % 17);
        uint64_t mod = 1;
        for (int d = 0; d < digits; d++) mod *= 10;
        double m = (double)(rng() % mod);
        int k = (int)((r >> 8) % 20);
        double v = m / pow(10, k);
        check((r >> 16) & 1 ? -v : v);
    }
}

static void test_log_uniform(void **state)
{
    (void)state;
    for (int i = 0; i < 250000; i++) {
        double u = (double)(rng() >> 11) / 9007199254740992.0; /* [0, 1) */
        double v = pow(10, -6 + u * 22);                       /* 1e-6 .. 1e16 */
        check(i & 1 ? -v : v);
    }
}

static void test_integers(void **state)
{
    (void)state;
    char got[KX_JSON_NUMBER_MAX + 1];
    static const int64_t ints[] = {
        0, 1, -1, 9, 10, 99, 100, INT64_MAX, INT64_MIN, INT64_MIN + 1, 1000000007
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        char want[32];
        snprintf(want, sizeof want, "%lld", (long long)ints[i]);
        size_t n = kx_json_int64(ints[i], got);
        got[n] = '\0';
        assert_string_equal(want, got);
    }
    for (int i = 0; i < 125000; i++) {
        int64_t v = (int64_t)(rng() >> (rng() % 64));
        if (i & 1) v = -v;
        char want[32];
        snprintf(want, sizeof want, "%lld", (long long)v);
        size_t n = kx_json_int64(v, got);
        got[n] = '\0';
        if (strcmp(want, got) != 0) fail_msg("int64 %lld: got %s", (long long)v, got);
        check((double)v); /* integral doubles of every magnitude up to 2^64 */
    }
}

static void test_count(void **state)
{
    (void)state;
    /* the claim in the header: over a million values, all compared */
    assert_true(checked > 1000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edges),          cmocka_unit_test(test_random_bits),
        cmocka_unit_test(test_short_decimals), cmocka_unit_test(test_log_uniform),
        cmocka_unit_test(test_integers),       cmocka_unit_test(test_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
