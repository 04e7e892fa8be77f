/* json_number.c — number text of the JSON encoder (see json_number.h).
 *
 * Why a fast path is exact: for a finite, non-integral v with 1e-4 <= |v| < 1e14, "%.14g"
 * prints v rounded to 14 significant digits in fixed notation (its exponent is in [-4, 13]),
 * trailing zeros removed. If an integer m with |m| < 1e14 and a k in 1..17 give m / 10^k == v
 * in double arithmetic (the division is correctly rounded and 10^k is exact), then v is the
 * double nearest to the decimal D = m / 10^k, which has at most 14 significant digits. v is
 * within half an ulp (a relative 2^-53) of D, far less than half a unit of D's 14th digit (a
 * relative 5e-15 at least), so rounding v to 14 digits gives D back: "%.14g" prints D. Any v
 * this does not settle goes to snprintf. tests/test_json_number.c compares both with snprintf
 * on millions of values. */
#include "json_number.h"
#include <math.h>
#include <stdio.h>

/* 10^k, exact in a double for k <= 22. */
static const double pow10_tab[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static const char digit_pairs[] = "00010203040506070809"
                                  "10111213141516171819"
                                  "20212223242526272829"
                                  "30313233343536373839"
                                  "40414243444546474849"
                                  "50515253545556575859"
                                  "60616263646566676869"
                                  "70717273747576777879"
                                  "80818283848586878889"
                                  "90919293949596979899";

/* Digits of u, most significant first, into out; returns how many (1..20). */
static size_t put_u64(uint64_t u, char *out)
{
    char tmp[20];
    size_t i = sizeof tmp;
    while (u >= 100) {
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        tmp[--i] = digit_pairs[2 * r + 1];
        tmp[--i] = digit_pairs[2 * r];
    }
    if (u >= 10) {
        tmp[--i] = digit_pairs[2 * u + 1];
        tmp[--i] = digit_pairs[2 * u];
    } else {
        tmp[--i] = (char)('0' + u);
    }
    size_t n = sizeof tmp - i;
    memcpy(out, tmp + i, n);
    return n;
}

size_t kx_json_int64(int64_t v, char *out)
{
    if (v >= 0) return put_u64((uint64_t)v, out);
    out[0] = '-';
    /* 0 - (uint64_t)v is |v| even for INT64_MIN. */
    return 1 + put_u64(0 - (uint64_t)v, out + 1);
}

static size_t via_snprintf(const char *fmt, double v, char *out)
{
    char tmp[KX_JSON_NUMBER_MAX + 8];
    int n = snprintf(tmp, sizeof tmp, fmt, v);
    kx_assert(n > 0 && n < KX_JSON_NUMBER_MAX);
    memcpy(out, tmp, (size_t)n);
    return (size_t)n;
}

/* The fast path of the header comment: D = m / 10^k in fixed notation, or 0 when no
 * k in 1..17 gives an exact, short enough m. */
static size_t g14_decimal(double v, char *out)
{
    double a = fabs(v);
    for (int k = 1; k <= 17; k++) {
        double p = pow10_tab[k];
        double m = a * p;
        if (m >= 1e14) return 0;
        if (m != (double)(int64_t)m || m / p != a) continue; /* m < 1e14: the cast is exact */
        uint64_t u = (uint64_t)m;
        while (u % 10 == 0) { /* "%g" drops trailing zeros; v is not integral so u % 10^k != 0 */
            u /= 10;
            k--;
        }
        char digits[20];
        size_t nd = put_u64(u, digits);
        size_t o = 0;
        if (v < 0) out[o++] = '-';
        if (nd > (size_t)k) { /* integer part, point, k decimals */
            memcpy(out + o, digits, nd - (size_t)k);
            o += nd - (size_t)k;
            out[o++] = '.';
            memcpy(out + o, digits + nd - (size_t)k, (size_t)k);
            o += (size_t)k;
        } else { /* "0.", leading zeros, digits */
            out[o++] = '0';
            out[o++] = '.';
            for (size_t z = nd; z < (size_t)k; z++) out[o++] = '0';
            memcpy(out + o, digits, nd);
            o += nd;
        }
        return o;
    }
    return 0;
}

size_t kx_json_g14(double v, char *out)
{
    if (isfinite(v)) {
        double a = fabs(v);
        if (a < 1e14 && (double)(int64_t)a == a) { /* at most 14 digits: "%.14g" prints the integer */
            if (a == 0 && signbit(v)) {
                memcpy(out, "-0", 2);
                return 2;
            }
            return kx_json_int64((int64_t)v, out);
        }
        if (a >= 1e-4 && a < 1e14) {
            size_t n = g14_decimal(v, out);
            if (n) return n;
        }
    }
    return via_snprintf("%.14g", v, out);
}

size_t kx_json_number(double v, char *out)
{
    if (!isfinite(v)) {
        memcpy(out, "null", 4);
        return 4;
    }
    double a = fabs(v);
    if (a >= 1e14 && floor(a) == a) {
        /* 2^63 itself does not fit an int64_t: it and everything above take "%.17g". */
        if (a < 9223372036854775808.0) return kx_json_int64((int64_t)v, out);
        return via_snprintf("%.17g", v, out);
    }
    return kx_json_g14(v, out);
}
