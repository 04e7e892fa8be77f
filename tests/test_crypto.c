/* test_crypto.c — crypto.c and lua_api_crypto.c.
 *
 * ids: length, alphabet, canonical last character, uniqueness over 10,000 draws, and every
 * way valid_id must refuse. Hashes: the stored format, recomputed independently with
 * OpenSSL's own base64 + EVP_PBE_scrypt; a known-answer vector made with `openssl kdf`
 * (non-default N/r/p, 20-byte salt, 24-byte hash) so verification provably honours stored
 * parameters; wrong / empty / every-one-bit-different passwords; a catalogue of malformed
 * and out-of-range stored strings plus random mutations. Pool: real libev loop, 8 mixed jobs,
 * cancel while queued / running / finished-but-undelivered / from another job's callback,
 * stop with jobs pending, the 1024-job bound. Lua binding: driven by a fake scheduler defined
 * here (this file supplies kx_task_* so lua_bridge.o is never linked): results, errors,
 * "invalid password", "aborted", "busy", and the action-timeout cancel path.
 * Leaks and use-after-free are left to the ASan/UBSan build of this same file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto.h"
#include "lua_api.h"

#include <lauxlib.h>
#include <lualib.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* scrypt N=1024 r=4 p=2, salt = bytes 0..19, password "correct horse battery staple",
 * 24-byte key; from `openssl kdf -keylen 24 -kdfopt pass:... -kdfopt hexsalt:0001..13
 * -kdfopt n:1024 -kdfopt r:4 -kdfopt p:2 SCRYPT` = ccf2e683ef04b914be333823e8417cd4...40a5. */
#define KAT_PW "correct horse battery staple"
#define KAT_SALT "AAECAwQFBgcICQoLDA0ODxAREhM"
#define KAT_HASH "zPLmg-8EuRS-Mzgj6EF81FU0iWv0nECl"
#define KAT "scrypt$1024$4$2$" KAT_SALT "$" KAT_HASH

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static bool all_b64url(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !strchr(B64URL, s[i])) return false;
    return true;
}

static bool verify_str(const char *pw, const char *stored)
{
    return kx_crypto_verify_sync(pw, strlen(pw), stored, strlen(stored));
}

/* ---- ids ----------------------------------------------------------------------------------- */

static int cmp_ids(const void *a, const void *b)
{
    return memcmp(a, b, KX_CRYPTO_ID_LEN);
}

static void test_random_id_format_and_uniqueness(void **state)
{
    (void)state;
    enum { N = 10000 };
    char(*ids)[KX_CRYPTO_ID_LEN + 1] = calloc(N, sizeof *ids);
    assert_non_null(ids);
    bool seen[64] = { false };
    for (int i = 0; i < N; i++) {
        assert_int_equal(kx_crypto_random_id(ids[i], sizeof ids[i]), KX_OK);
        assert_int_equal(strlen(ids[i]), KX_CRYPTO_ID_LEN);
        assert_true(all_b64url(ids[i], KX_CRYPTO_ID_LEN));
        assert_true(kx_crypto_valid_id(ids[i], KX_CRYPTO_ID_LEN));
        for (int k = 0; k < KX_CRYPTO_ID_LEN - 1; k++) seen[strchr(B64URL, ids[i][k]) - B64URL] = true;
    }
    /* 420,000 random sextets: every symbol of the alphabet must show up. */
    for (int k = 0; k < 64; k++) assert_true(seen[k]);
    qsort(ids, N, sizeof *ids, cmp_ids);
    for (int i = 1; i < N; i++) assert_true(memcmp(ids[i - 1], ids[i], KX_CRYPTO_ID_LEN) != 0);
    free(ids);
}

static void test_random_id_small_buffer(void **state)
{
    (void)state;
    char buf[KX_CRYPTO_ID_LEN] = "x";
    assert_int_equal(kx_crypto_random_id(buf, sizeof buf), KX_EINVAL);
    assert_string_equal(buf, "");
    assert_int_equal(kx_crypto_random_id(NULL, 64), KX_EINVAL);
}

static void test_valid_id_refusals(void **state)
{
    (void)state;
    char id[KX_CRYPTO_ID_LEN + 2];
    assert_int_equal(kx_crypto_random_id(id, sizeof id), KX_OK);
    assert_true(kx_crypto_valid_id(id, 43));
    assert_false(kx_crypto_valid_id(id, 42));
    id[43] = 'A';
    id[44] = '\0';
    assert_false(kx_crypto_valid_id(id, 44));
    assert_false(kx_crypto_valid_id(NULL, 43));
    assert_false(kx_crypto_valid_id("", 0));
    /* Padding, the standard alphabet's + and /, NUL, space, non-ASCII, each in the middle. */
    const char bad[] = { '=', '+', '/', '\0', ' ', '.', '\xc3', '\n', '~' };
    for (size_t b = 0; b < sizeof bad; b++) {
        char t[44];
        memcpy(t, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 44);
        assert_true(kx_crypto_valid_id(t, 43));
        t[20] = bad[b];
        assert_false(kx_crypto_valid_id(t, 43));
    }
    /* Last character: exactly 16 of the 64 symbols encode 256 bits canonically. */
    const char *ok_last = "AEIMQUYcgkosw048";
    int accepted = 0;
    for (int k = 0; k < 64; k++) {
        char t[44];
        memcpy(t, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 44);
        t[42] = B64URL[k];
        bool v = kx_crypto_valid_id(t, 43);
        assert_int_equal(v, strchr(ok_last, B64URL[k]) != NULL);
        accepted += v;
    }
    assert_int_equal(accepted, 16);
    /* '=' as the last character (a padded 32-byte encoding would end "...=") */
    char t[45];
    memcpy(t, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 44);
    assert_false(kx_crypto_valid_id(t, 43));
}

/* ---- hash format ----------------------------------------------------------------------------- */

/* Standard base64 via OpenSSL, turned into unpadded base64url: an independent encoder. */
static void ossl_b64url(const unsigned char *in, int n, char *out)
{
    unsigned char tmp[128];
    int len = EVP_EncodeBlock(tmp, in, n);
    int o = 0;
    for (int i = 0; i < len; i++) {
        if (tmp[i] == '=') break;
        out[o++] = tmp[i] == '+' ? '-' : tmp[i] == '/' ? '_' : (char)tmp[i];
    }
    out[o] = '\0';
}

static int ossl_b64url_decode(const char *in, unsigned char *out)
{
    char tmp[128];
    size_t n = strlen(in), o = 0;
    for (size_t i = 0; i < n; i++) tmp[o++] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
    while (o % 4) tmp[o++] = '=';
    tmp[o] = '\0';
    return EVP_DecodeBlock(out, (unsigned char *)tmp, (int)o);
}

static void test_hash_format_recomputed_independently(void **state)
{
    (void)state;
    const char *pw = "hunter2 ünïcode";
    char h[KX_CRYPTO_HASH_MAX];
    assert_int_equal(kx_crypto_hash_sync(pw, strlen(pw), h, sizeof h), KX_OK);
    const char *prefix = "scrypt$16384$8$1$";
    assert_int_equal(strncmp(h, prefix, strlen(prefix)), 0);
    const char *salt = h + strlen(prefix);
    const char *dollar = strchr(salt, '$');
    assert_non_null(dollar);
    assert_int_equal(dollar - salt, 22);
    const char *hash = dollar + 1;
    assert_int_equal(strlen(hash), 43);
    assert_null(strchr(hash, '$'));
    assert_true(all_b64url(salt, 22));
    assert_true(all_b64url(hash, 43));

    char salt_s[23];
    memcpy(salt_s, salt, 22);
    salt_s[22] = '\0';
    unsigned char salt_b[32], key[32];
    assert_true(ossl_b64url_decode(salt_s, salt_b) >= 16);
    assert_int_equal(EVP_PBE_scrypt(pw, strlen(pw), salt_b, 16, 16384, 8, 1, 64u << 20, key, 32), 1);
    char expect[64];
    ossl_b64url(key, 32, expect);
    assert_string_equal(hash, expect);
    /* and our own re-encoding of the salt is canonical */
    char salt_again[64];
    ossl_b64url(salt_b, 16, salt_again);
    assert_string_equal(salt_again, salt_s);
    assert_true(verify_str(pw, h));
}

static void test_hash_salted(void **state)
{
    (void)state;
    char a[KX_CRYPTO_HASH_MAX], b[KX_CRYPTO_HASH_MAX];
    assert_int_equal(kx_crypto_hash_sync("same", 4, a, sizeof a), KX_OK);
    assert_int_equal(kx_crypto_hash_sync("same", 4, b, sizeof b), KX_OK);
    assert_string_not_equal(a, b);
    /* the salts differ, not just the hashes */
    assert_int_not_equal(memcmp(a + 17, b + 17, 22), 0);
    assert_true(verify_str("same", a));
    assert_true(verify_str("same", b));
}

static void test_hash_password_limits(void **state)
{
    (void)state;
    char h[KX_CRYPTO_HASH_MAX];
    char *big = malloc(KX_CRYPTO_PW_MAX + 1);
    assert_non_null(big);
    memset(big, 'p', KX_CRYPTO_PW_MAX + 1);
    assert_int_equal(kx_crypto_hash_sync("", 0, h, sizeof h), KX_EINVAL);
    assert_string_equal(h, "");
    assert_int_equal(kx_crypto_hash_sync(NULL, 5, h, sizeof h), KX_EINVAL);
    assert_int_equal(kx_crypto_hash_sync(big, KX_CRYPTO_PW_MAX + 1, h, sizeof h), KX_EINVAL);
    assert_int_equal(kx_crypto_hash_sync(big, SIZE_MAX, h, sizeof h), KX_EINVAL);
    assert_int_equal(kx_crypto_hash_sync("x", 1, h, 40), KX_EINVAL); /* too small for the result */
    assert_int_equal(kx_crypto_hash_sync("x", 1, NULL, 0), KX_EINVAL);
    /* 4096 bytes is allowed, and the 4097th byte matters not (verify refuses it outright). */
    assert_int_equal(kx_crypto_hash_sync(big, KX_CRYPTO_PW_MAX, h, sizeof h), KX_OK);
    assert_true(kx_crypto_verify_sync(big, KX_CRYPTO_PW_MAX, h, strlen(h)));
    assert_false(kx_crypto_verify_sync(big, KX_CRYPTO_PW_MAX + 1, h, strlen(h)));
    assert_false(kx_crypto_verify_sync(big, KX_CRYPTO_PW_MAX - 1, h, strlen(h)));
    /* passwords are byte strings: an embedded NUL counts */
    assert_int_equal(kx_crypto_hash_sync("ab\0cd", 5, h, sizeof h), KX_OK);
    assert_true(kx_crypto_verify_sync("ab\0cd", 5, h, strlen(h)));
    assert_false(kx_crypto_verify_sync("ab\0ce", 5, h, strlen(h)));
    assert_false(kx_crypto_verify_sync("ab", 2, h, strlen(h)));
    free(big);
}

static void test_hash_timing(void **state)
{
    (void)state;
    char h[KX_CRYPTO_HASH_MAX];
    enum { ROUNDS = 5 };
    double t0 = now_ms();
    for (int i = 0; i < ROUNDS; i++) assert_int_equal(kx_crypto_hash_sync("timing", 6, h, sizeof h), KX_OK);
    double t1 = now_ms();
    for (int i = 0; i < ROUNDS; i++) assert_true(verify_str("timing", h));
    double t2 = now_ms();
    printf("[ info ] scrypt N=16384 r=8 p=1: %.1f ms per hash, %.1f ms per verify\n", (t1 - t0) / ROUNDS,
           (t2 - t1) / ROUNDS);
}

/* ---- verification ----------------------------------------------------------------------------- */

static void test_verify_known_answer(void **state)
{
    (void)state;
    assert_true(verify_str(KAT_PW, KAT));
    assert_false(verify_str("correct horse battery stapl", KAT));
    assert_false(verify_str("correct horse battery staple ", KAT));
    assert_false(verify_str("Correct horse battery staple", KAT));
    assert_false(kx_crypto_verify_sync("", 0, KAT, strlen(KAT)));
    assert_false(kx_crypto_verify_sync(NULL, 3, KAT, strlen(KAT)));
    /* the same salt/hash under other parameters is another record */
    assert_false(verify_str(KAT_PW, "scrypt$1024$4$1$" KAT_SALT "$" KAT_HASH));
    assert_false(verify_str(KAT_PW, "scrypt$2048$4$2$" KAT_SALT "$" KAT_HASH));
    assert_false(verify_str(KAT_PW, "scrypt$1024$8$2$" KAT_SALT "$" KAT_HASH));
}

static void test_verify_every_one_bit_flip(void **state)
{
    (void)state;
    char pw[] = KAT_PW;
    size_t n = strlen(pw);
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            pw[i] ^= (char)(1 << bit);
            assert_false(kx_crypto_verify_sync(pw, n, KAT, strlen(KAT)));
            pw[i] ^= (char)(1 << bit);
        }
    }
    assert_true(kx_crypto_verify_sync(pw, n, KAT, strlen(KAT)));
    /* and against a default-parameter hash: first and last bit */
    char h[KX_CRYPTO_HASH_MAX];
    char p2[] = "s3cret-passw0rd";
    size_t n2 = strlen(p2);
    assert_int_equal(kx_crypto_hash_sync(p2, n2, h, sizeof h), KX_OK);
    p2[0] ^= 1;
    assert_false(kx_crypto_verify_sync(p2, n2, h, strlen(h)));
    p2[0] ^= 1;
    p2[n2 - 1] ^= (char)0x80;
    assert_false(kx_crypto_verify_sync(p2, n2, h, strlen(h)));
    p2[n2 - 1] ^= (char)0x80;
    assert_true(kx_crypto_verify_sync(p2, n2, h, strlen(h)));
}

static void test_verify_malformed_stored(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "scrypt",
        "scrypt$",
        "scrypt$1024",
        "scrypt$1024$4$2",
        "scrypt$1024$4$2$" KAT_SALT,            /* hash missing */
        "scrypt$1024$4$2$" KAT_SALT "$",        /* empty hash */
        "scrypt$1024$4$2$$" KAT_HASH,           /* empty salt */
        "scrypt$1024$4$" KAT_SALT "$" KAT_HASH, /* p missing */
        "scrypt$1024$4$2$" KAT_SALT "$"
        "zPLmg-8EuRS-Mzgj6EF81FU0iWv0nEC", /* truncated, stray bits */
        "scrypt$1024$4$2$" KAT_SALT "$"
        "zPLmg-8EuRS-Mzgj6EF8", /* 15 bytes */
        "scrypt$1024$4$2$AAECAwQFBgcICQoLDA0ODxARE"
        "$" KAT_HASH, /* salt cut, stray bits */
        KAT "$",      /* extra empty field */
        KAT "$extra",
        "scrypt$1024$4$2$2$" KAT_SALT "$" KAT_HASH,
        "$" KAT,
        "Scrypt$1024$4$2$" KAT_SALT "$" KAT_HASH,
        "scrypt2$1024$4$2$" KAT_SALT "$" KAT_HASH,
        "bcrypt$1024$4$2$" KAT_SALT "$" KAT_HASH,
        /* bad base64 */
        "scrypt$1024$4$2$" KAT_SALT "="
        "$" KAT_HASH,
        "scrypt$1024$4$2$" KAT_SALT "$" KAT_HASH "=",
        "scrypt$1024$4$2$" KAT_SALT "$"
        "zPLmg+8EuRS+Mzgj6EF81FU0iWv0nECl", /* standard alphabet */
        "scrypt$1024$4$2$AAECAwQFBgcICQoLDA0ODx/REhM$" KAT_HASH,
        "scrypt$1024$4$2$AAECAwQFBgcI.QoLDA0ODxAREhM$" KAT_HASH,
        "scrypt$1024$4$2$AAECAwQFBgcI QoLDA0ODxAREhM$" KAT_HASH,
        "scrypt$1024$4$2$" KAT_SALT "$"
        "zPLmg-8EuRS-Mzgj6EF81FU0iWv0nECm",                      /* last byte altered */
        "scrypt$1024$4$2$AAECAwQFBgcICQoLDA0ODxAREhN$" KAT_HASH, /* stray salt bits */
        "scrypt$1024$4$2$" KAT_SALT "$"
        "zPLmg-8EuRS-Mzgj6EF81FU0iWv0nECl"
        "A", /* 4n+1 chars */
        /* N */
        "scrypt$1000$4$2$" KAT_SALT "$" KAT_HASH,
        "scrypt$1025$4$2$" KAT_SALT "$" KAT_HASH,
        "scrypt$3072$4$2$" KAT_SALT "$" KAT_HASH,
        "scrypt$512$4$2$" KAT_SALT "$" KAT_HASH,                  /* 2^9: too small */
        "scrypt$2097152$4$2$" KAT_SALT "$" KAT_HASH,              /* 2^21 */
        "scrypt$1073741824$4$2$" KAT_SALT "$" KAT_HASH,           /* 2^30 */
        "scrypt$18446744073709551616$4$2$" KAT_SALT "$" KAT_HASH, /* 2^64: wraps */
        "scrypt$0$4$2$" KAT_SALT "$" KAT_HASH,
        "scrypt$1$4$2$" KAT_SALT "$" KAT_HASH,
        "scrypt$-1024$4$2$" KAT_SALT "$" KAT_HASH,
        "scrypt$+1024$4$2$" KAT_SALT "$" KAT_HASH,
        "scrypt$01024$4$2$" KAT_SALT "$" KAT_HASH,
        "scrypt$ 1024$4$2$" KAT_SALT "$" KAT_HASH,
        "scrypt$1024 $4$2$" KAT_SALT "$" KAT_HASH,
        "scrypt$0x400$4$2$" KAT_SALT "$" KAT_HASH,
        "scrypt$1e3$4$2$" KAT_SALT "$" KAT_HASH,
        "scrypt$$4$2$" KAT_SALT "$" KAT_HASH,
        /* r and p */
        "scrypt$1024$0$2$" KAT_SALT "$" KAT_HASH,
        "scrypt$1024$33$2$" KAT_SALT "$" KAT_HASH,
        "scrypt$1024$-4$2$" KAT_SALT "$" KAT_HASH,
        "scrypt$1024$4294967297$2$" KAT_SALT "$" KAT_HASH,
        "scrypt$1024$99999999999999999999999$2$" KAT_SALT "$" KAT_HASH,
        "scrypt$1024$4$0$" KAT_SALT "$" KAT_HASH,
        "scrypt$1024$4$17$" KAT_SALT "$" KAT_HASH,
        "scrypt$1024$4$-2$" KAT_SALT "$" KAT_HASH,
        "scrypt$1024$4$4294967298$" KAT_SALT "$" KAT_HASH,
        /* inside each range, but 4 GiB / minutes of work: refused by the cost caps */
        "scrypt$1048576$32$1$" KAT_SALT "$" KAT_HASH,
        "scrypt$1048576$8$16$" KAT_SALT "$" KAT_HASH,
        "scrypt$131072$16$1$" KAT_SALT "$" KAT_HASH,
        "scrypt$65536$16$16$" KAT_SALT "$" KAT_HASH, /* fits in memory, 128x the work */
        /* salt / hash sizes: 15 and 65 bytes */
        "scrypt$1024$4$2$AAECAwQFBgcICQoLDA0O$" KAT_HASH,
        "scrypt$1024$4$2$" KAT_SALT "$"
        "AAECAwQFBgcICQoLDA0O",
        "scrypt$1024$4$2$"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "$" KAT_HASH,
        "scrypt$1024$4$2$" KAT_SALT "$"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };
    for (size_t i = 0; i < KX_ARRAY_LEN(bad); i++) {
        double t0 = now_ms();
        if (verify_str(KAT_PW, bad[i])) fail_msg("accepted malformed stored hash #%zu: %s", i, bad[i]);
        /* nothing here may cost a real (default-or-bigger) scrypt run */
        if (now_ms() - t0 > 2000) fail_msg("stored hash #%zu took %.0f ms", i, now_ms() - t0);
    }
    /* counted strings: embedded NUL, a NUL-free prefix, NULL, absurd length */
    char withnul[sizeof KAT + 1];
    memcpy(withnul, KAT, sizeof KAT);
    withnul[20] = '\0';
    assert_false(kx_crypto_verify_sync(KAT_PW, strlen(KAT_PW), withnul, strlen(KAT)));
    assert_true(kx_crypto_verify_sync(KAT_PW, strlen(KAT_PW), KAT "$junk", strlen(KAT)));
    assert_false(kx_crypto_verify_sync(KAT_PW, strlen(KAT_PW), NULL, 0));
    assert_false(kx_crypto_verify_sync(KAT_PW, strlen(KAT_PW), KAT, 0));
    char *huge = malloc(100000);
    assert_non_null(huge);
    memset(huge, 'A', 100000);
    memcpy(huge, KAT, strlen(KAT));
    assert_false(kx_crypto_verify_sync(KAT_PW, strlen(KAT_PW), huge, 100000));
    free(huge);
}

/* Every prefix of the record. Cut inside the header or salt: always refused. Cut inside the
 * hash: scrypt's output is a prefix-stable stream, so a cut that still decodes canonically
 * to >= 16 bytes is a valid (shorter-tag) record and matches — pinned here so the canonical
 * decoder's choices are visible: hash field lengths 23, 24, 28 (and the full 32). */
static void test_verify_every_prefix(void **state)
{
    (void)state;
    size_t full = strlen(KAT), hash_at = full - strlen(KAT_HASH);
    for (size_t n = 0; n < full; n++) {
        bool want = false;
        if (n >= hash_at) {
            size_t l = n - hash_at;
            want = l == 23 || l == 24 || l == 28;
        }
        if (kx_crypto_verify_sync(KAT_PW, strlen(KAT_PW), KAT, n) != want)
            fail_msg("prefix of %zu chars: expected %s", n, want ? "match" : "refusal");
    }
}

/* Random single-byte rewrites of the known-answer record: never a crash, never a match. */
static void test_verify_mutations(void **state)
{
    (void)state;
    srand(12345);
    const char alphabet[] = "$0123456789-_=+/ Aazs\xff";
    char m[sizeof KAT];
    int changed = 0;
    for (int iter = 0; iter < 300; iter++) {
        memcpy(m, KAT, sizeof KAT);
        size_t pos = (size_t)rand() % (sizeof KAT - 1);
        m[pos] = alphabet[rand() % (int)(sizeof alphabet - 1)];
        if (memcmp(m, KAT, sizeof KAT) == 0) continue;
        changed++;
        if (kx_crypto_verify_sync(KAT_PW, strlen(KAT_PW), m, sizeof KAT - 1))
            fail_msg("mutation accepted: %s", m);
    }
    assert_true(changed > 200);
}

/* ---- the pool on a real loop ---------------------------------------------------------------- */

static struct ev_loop *g_loop;

static int pool_setup(void **state)
{
    (void)state;
    g_loop = ev_loop_new(EVFLAG_AUTO);
    if (!g_loop) return -1;
    return kx_crypto_start(g_loop) == KX_OK ? 0 : -1;
}

static int pool_teardown(void **state)
{
    (void)state;
    kx_crypto_stop();
    int left = kx_crypto_in_flight();
    ev_loop_destroy(g_loop);
    g_loop = NULL;
    return left == 0 ? 0 : -1;
}

typedef struct {
    ev_timer w;
    bool (*cond)(void *);
    void *arg;
    ev_tstamp deadline;
} waiter_t;

static void on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    waiter_t *wt = (waiter_t *)w;
    if (wt->cond(wt->arg) || ev_now(loop) > wt->deadline) ev_break(loop, EVBREAK_ONE);
}

/* Runs the loop (polling every ms) until cond holds; fails after `seconds`. */
static void run_until(bool (*cond)(void *), void *arg, double seconds)
{
    ev_now_update(g_loop);
    /* on_poll reads cond, arg and deadline back through the timer pointer. */
    waiter_t wt = { .cond = cond, .arg = arg, .deadline = ev_now(g_loop) + seconds };
    ev_timer_init(&wt.w, on_poll, 0.001, 0.001);
    ev_timer_start(g_loop, &wt.w);
    if (!cond(arg)) ev_run(g_loop, 0);
    ev_timer_stop(g_loop, &wt.w);
    assert_true(cond(arg));
}

static bool pool_empty(void *arg)
{
    (void)arg;
    return kx_crypto_in_flight() == 0;
}

static void on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* ev_run with nothing but the pool's own refs: returns when every live job was answered. The
 * watchdog is unref'd so it never keeps the loop alive itself. */
static double run_pool_loop(double max_seconds)
{
    ev_timer dog;
    ev_timer_init(&dog, on_watchdog, max_seconds, 0.);
    ev_timer_start(g_loop, &dog);
    ev_unref(g_loop);
    double t0 = now_ms();
    ev_run(g_loop, 0);
    double took = now_ms() - t0;
    ev_ref(g_loop);
    ev_timer_stop(g_loop, &dog);
    return took;
}

typedef struct {
    int calls;
    int status;
    char result[KX_CRYPTO_HASH_MAX];
} rec_t;

static void record(void *ud, int status, const char *result)
{
    rec_t *r = ud;
    r->calls++;
    r->status = status;
    snprintf(r->result, sizeof r->result, "%s", result);
}

static void test_pool_idle_loop_returns(void **state)
{
    (void)state;
    /* an idle pool must not keep ev_run from returning */
    assert_true(run_pool_loop(5.0) < 1000);
    assert_int_equal(kx_crypto_start(g_loop), KX_EINVAL); /* already running */
}

static void test_pool_eight_jobs(void **state)
{
    (void)state;
    char stored[KX_CRYPTO_HASH_MAX];
    assert_int_equal(kx_crypto_hash_sync("secret", 6, stored, sizeof stored), KX_OK);
    rec_t rec[8] = { 0 };
    const char *hash_pw[4] = { "pw-zero", "pw-one", "pw-two", "pw-three" };
    const char *ver_pw[4] = { "secret", "secret!", "Secret", "secre" };
    const char *ver_want[4] = { "1", "0", "0", "0" };
    for (int i = 0; i < 4; i++) {
        assert_non_null(kx_crypto_hash(hash_pw[i], strlen(hash_pw[i]), record, &rec[i]));
        assert_non_null(
            kx_crypto_verify(ver_pw[i], strlen(ver_pw[i]), stored, strlen(stored), record, &rec[4 + i]));
    }
    assert_int_equal(kx_crypto_in_flight(), 8);
    /* nothing is answered before the loop runs: callbacks only come from the loop thread */
    usleep(20000);
    for (int i = 0; i < 8; i++) assert_int_equal(rec[i].calls, 0);
    double took = run_pool_loop(60.0);
    printf("[ info ] 8 jobs on %d threads: %.0f ms\n", KX_CRYPTO_THREADS, took);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(rec[i].calls, 1);
        assert_int_equal(rec[i].status, KX_OK);
        assert_true(verify_str(hash_pw[i], rec[i].result));
        assert_false(verify_str(hash_pw[(i + 1) % 4], rec[i].result));
        assert_int_equal(rec[4 + i].calls, 1);
        assert_int_equal(rec[4 + i].status, KX_OK);
        assert_string_equal(rec[4 + i].result, ver_want[i]);
    }
    assert_int_equal(kx_crypto_in_flight(), 0);
}

static void test_pool_bad_inputs(void **state)
{
    (void)state;
    rec_t r[5] = { 0 };
    assert_non_null(kx_crypto_hash("", 0, record, &r[0]));
    assert_non_null(kx_crypto_hash("x", KX_CRYPTO_PW_MAX + 1, record, &r[1]));
    assert_non_null(kx_crypto_verify("", 0, KAT, strlen(KAT), record, &r[2]));
    assert_non_null(kx_crypto_verify(KAT_PW, strlen(KAT_PW), "scrypt$1$1$1$x$y", 16, record, &r[3]));
    assert_non_null(kx_crypto_verify(KAT_PW, strlen(KAT_PW), KAT, strlen(KAT), record, &r[4]));
    assert_null(kx_crypto_hash("x", 1, NULL, NULL)); /* no callback, no job */
    run_pool_loop(30.0);
    assert_int_equal(r[0].status, KX_EINVAL);
    assert_string_equal(r[0].result, "");
    assert_int_equal(r[1].status, KX_EINVAL);
    assert_string_equal(r[2].result, "0");
    assert_string_equal(r[3].result, "0");
    assert_string_equal(r[4].result, "1");
    for (int i = 0; i < 5; i++) assert_int_equal(r[i].calls, 1);
}

static double g_hash_ms = 100; /* refreshed by test_pool_cancel_paths */

static void test_pool_cancel_paths(void **state)
{
    (void)state;
    char h[KX_CRYPTO_HASH_MAX];
    double t0 = now_ms();
    assert_int_equal(kx_crypto_hash_sync("t", 1, h, sizeof h), KX_OK);
    g_hash_ms = now_ms() - t0;

    /* 1. cancelled while (probably) still queued: 2 busy workers, then the victim */
    rec_t busy[2] = { 0 }, victim = { 0 }, after = { 0 };
    assert_non_null(kx_crypto_hash("b0", 2, record, &busy[0]));
    assert_non_null(kx_crypto_hash("b1", 2, record, &busy[1]));
    kx_crypto_job_t *v = kx_crypto_hash("victim", 6, record, &victim);
    assert_non_null(v);
    kx_crypto_cancel(v);
    assert_non_null(kx_crypto_hash("after", 5, record, &after));
    run_pool_loop(60.0);
    assert_int_equal(busy[0].calls + busy[1].calls + after.calls, 3);
    run_until(pool_empty, NULL, 30.0);
    assert_int_equal(victim.calls, 0);

    /* 2. cancelled while a worker computes it */
    rec_t running = { 0 };
    v = kx_crypto_hash("running", 7, record, &running);
    assert_non_null(v);
    usleep((useconds_t)(g_hash_ms * 300)); /* ~30% into the hash */
    kx_crypto_cancel(v);
    run_until(pool_empty, NULL, 30.0);
    assert_int_equal(running.calls, 0);

    /* 3. finished, waiting on the done list, cancelled before the loop delivers it */
    rec_t finished = { 0 };
    v = kx_crypto_verify(KAT_PW, strlen(KAT_PW), KAT, strlen(KAT), record, &finished);
    assert_non_null(v);
    usleep((useconds_t)(g_hash_ms * 4000 + 200000));
    kx_crypto_cancel(v);
    run_until(pool_empty, NULL, 30.0);
    assert_int_equal(finished.calls, 0);
    /* the loop is no longer held by any of them */
    assert_true(run_pool_loop(5.0) < 1000);
}

/* Two jobs finished and delivered in one batch, each callback cancelling the other: whichever
 * runs first must stop the second. */
typedef struct {
    rec_t self;
    kx_crypto_job_t *other;
} canceller_t;

static void cancel_other(void *ud, int status, const char *result)
{
    canceller_t *c = ud;
    record(&c->self, status, result);
    kx_crypto_cancel(c->other);
}

static void test_pool_cancel_from_callback(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        canceller_t a = { 0 }, b = { 0 };
        /* verifying a malformed record is instant, so both are done before the loop runs */
        kx_crypto_job_t *ja = kx_crypto_verify("x", 1, "nope", 4, cancel_other, &a);
        kx_crypto_job_t *jb = kx_crypto_verify("y", 1, "nope", 4, cancel_other, &b);
        assert_non_null(ja);
        assert_non_null(jb);
        a.other = jb;
        b.other = ja;
        usleep(50000);
        run_until(pool_empty, NULL, 30.0);
        assert_int_equal(a.self.calls + b.self.calls, 1);
        assert_string_equal(a.self.calls ? a.self.result : b.self.result, "0");
    }
}

static void test_pool_bound(void **state)
{
    (void)state;
    static kx_crypto_job_t *jobs[KX_CRYPTO_MAX_JOBS];
    static rec_t recs[KX_CRYPTO_MAX_JOBS];
    memset(recs, 0, sizeof recs);
    for (int i = 0; i < KX_CRYPTO_MAX_JOBS; i++) {
        jobs[i] = kx_crypto_hash("flood", 5, record, &recs[i]);
        assert_non_null(jobs[i]);
    }
    rec_t extra = { 0 };
    assert_null(kx_crypto_hash("one more", 8, record, &extra));
    assert_null(kx_crypto_verify(KAT_PW, strlen(KAT_PW), KAT, strlen(KAT), record, &extra));
    assert_int_equal(kx_crypto_in_flight(), KX_CRYPTO_MAX_JOBS);
    for (int i = 0; i < KX_CRYPTO_MAX_JOBS; i++) kx_crypto_cancel(jobs[i]);
    double t0 = now_ms();
    run_until(pool_empty, NULL, 60.0);
    double drained = now_ms() - t0;
    printf("[ info ] 1024 cancelled jobs drained in %.0f ms\n", drained);
    /* computing them would take ~20 s: workers must skip cancelled jobs */
    assert_true(drained < 5000);
    for (int i = 0; i < KX_CRYPTO_MAX_JOBS; i++) assert_int_equal(recs[i].calls, 0);
    assert_int_equal(extra.calls, 0);
    /* capacity is back */
    assert_non_null(kx_crypto_verify(KAT_PW, strlen(KAT_PW), KAT, strlen(KAT), record, &extra));
    run_pool_loop(30.0);
    assert_int_equal(extra.calls, 1);
    assert_string_equal(extra.result, "1");
}

static void test_pool_stop_drops_pending(void **state)
{
    (void)state;
    rec_t r[20] = { 0 };
    for (int i = 0; i < 20; i++) assert_non_null(kx_crypto_hash("pending", 7, record, &r[i]));
    usleep(10000);
    kx_crypto_stop();
    assert_int_equal(kx_crypto_in_flight(), 0);
    assert_null(kx_crypto_hash("stopped", 7, record, &r[0]));
    /* whatever the workers finished is never delivered, even if the loop runs again */
    ev_run(g_loop, EVRUN_NOWAIT);
    for (int i = 0; i < 20; i++) assert_int_equal(r[i].calls, 0);
    kx_crypto_stop(); /* twice is harmless */
    /* restart on the same loop works, and the loop is not left holding a ref */
    assert_int_equal(kx_crypto_start(g_loop), KX_OK);
    rec_t again = { 0 };
    assert_non_null(kx_crypto_verify(KAT_PW, strlen(KAT_PW), KAT, strlen(KAT), record, &again));
    run_pool_loop(30.0);
    assert_string_equal(again.result, "1");
    assert_true(run_pool_loop(5.0) < 1000);
}

static void test_pool_not_started(void **state)
{
    (void)state;
    rec_t r = { 0 };
    assert_null(kx_crypto_hash("x", 1, record, &r));
    assert_null(kx_crypto_verify("x", 1, KAT, strlen(KAT), record, &r));
    kx_crypto_stop();
    kx_crypto_cancel(NULL);
    assert_int_equal(kx_crypto_start(NULL), KX_EINVAL);
}

/* ---- the Lua binding, on a fake scheduler --------------------------------------------------- */

/* The subset of lua_bridge.c's task API that lua_api_crypto.c uses, with the same contract. */
struct kx_task {
    lua_State *co;
    bool aborted;
    void (*cancel)(void *ud);
    void *cancel_ud;
    int wakes;
    int nargs;
    int yields;
};

static kx_task_t *g_current;
static lua_State *g_L;

kx_task_t *kx_lua_current_task(void)
{
    return g_current;
}

bool kx_task_aborted(const kx_task_t *t)
{
    return t->aborted;
}

lua_State *kx_task_thread(kx_task_t *t)
{
    return t->co;
}

void kx_task_wake(kx_task_t *t, int nargs)
{
    t->wakes++;
    t->nargs = nargs;
}

void kx_task_set_wait(kx_task_t *t, void (*cancel)(void *ud), void *ud)
{
    t->cancel = cancel;
    t->cancel_ud = ud;
}

lua_State *kx_lua_main(void)
{
    return g_L;
}

static int lua_setup(void **state)
{
    if (pool_setup(state) != 0) return -1;
    g_L = luaL_newstate();
    luaL_openlibs(g_L);
    lua_newtable(g_L);
    kx_lua_open_crypto(g_L);
    lua_setglobal(g_L, "core");
    return 0;
}

static int lua_teardown(void **state)
{
    lua_close(g_L);
    g_L = NULL;
    return pool_teardown(state);
}

static bool task_woken(void *arg)
{
    kx_task_t *t = arg;
    return t->wakes > 0;
}

/* Runs `chunk` as a task until it finishes, resuming after each wake (as lua_bridge does).
 * Leaves the coroutine (with the chunk's results) on top of g_L; returns lua_resume's code. */
static int run_task(kx_task_t *t, const char *chunk)
{
    memset(t, 0, sizeof *t);
    t->co = lua_newthread(g_L);
    if (luaL_loadstring(t->co, chunk) != 0) fail_msg("chunk: %s", lua_tostring(t->co, -1));
    int nargs = 0;
    for (;;) {
        g_current = t;
        int rc = lua_resume(t->co, nargs);
        g_current = NULL;
        if (rc != LUA_YIELD) return rc;
        t->yields++;
        assert_non_null(t->cancel); /* parked on a job: the timeout must be able to cancel it */
        run_until(task_woken, t, 60.0);
        assert_null(t->cancel); /* the completion clears the hook before waking */
        nargs = t->nargs;
        t->wakes = 0;
    }
}

static void test_lua_ids(void **state)
{
    (void)state;
    int rc = luaL_dostring(g_L,
                           "local id = core.random_id()\n"
                           "return #id, core.valid_id(id), core.valid_id(id .. 'A'),\n"
                           "  core.valid_id(nil), core.valid_id(42), core.valid_id(id:sub(1, 42) .. '='),\n"
                           "  id ~= core.random_id()");
    assert_int_equal(rc, 0);
    assert_int_equal(lua_tointeger(g_L, -7), 43);
    assert_true(lua_toboolean(g_L, -6));
    for (int i = -5; i <= -2; i++) assert_false(lua_toboolean(g_L, i));
    assert_true(lua_toboolean(g_L, -1));
    lua_settop(g_L, 0);
}

static void test_lua_hash_and_verify(void **state)
{
    (void)state;
    kx_task_t t;
    int rc = run_task(&t,
                      "local h, e = core.hash_password('hunter22')\n"
                      "return h, e, core.verify_password('hunter22', h),\n"
                      "  core.verify_password('hunter23', h), core.verify_password('hunter22', 'garbage')");
    if (rc != 0) fail_msg("task failed: %s", lua_tostring(t.co, -1));
    assert_int_equal(t.yields, 4);
    assert_int_equal(lua_gettop(t.co), 5);
    const char *h = lua_tostring(t.co, 1);
    assert_non_null(h);
    assert_int_equal(strncmp(h, "scrypt$16384$8$1$", 17), 0);
    assert_true(verify_str("hunter22", h));
    assert_true(lua_isnil(t.co, 2));
    assert_true(lua_isboolean(t.co, 3) && lua_toboolean(t.co, 3));
    assert_true(lua_isboolean(t.co, 4) && !lua_toboolean(t.co, 4));
    assert_true(lua_isboolean(t.co, 5) && !lua_toboolean(t.co, 5));
    lua_settop(g_L, 0);
}

static void test_lua_immediate_answers(void **state)
{
    (void)state;
    kx_task_t t;
    /* bad lengths answer without parking the task */
    int rc = run_task(&t, "local big = string.rep('x', 4097)\n"
                          "local a, ae = core.hash_password('')\n"
                          "local b, be = core.hash_password(big)\n"
                          "return a, ae, b, be, core.verify_password('', 'scrypt$x'),\n"
                          "  core.verify_password(big, 'scrypt$x')");
    assert_int_equal(rc, 0);
    assert_int_equal(t.yields, 0);
    assert_true(lua_isnil(t.co, 1));
    assert_string_equal(lua_tostring(t.co, 2), "invalid password");
    assert_true(lua_isnil(t.co, 3));
    assert_string_equal(lua_tostring(t.co, 4), "invalid password");
    assert_true(lua_isboolean(t.co, 5) && !lua_toboolean(t.co, 5));
    assert_true(lua_isboolean(t.co, 6) && !lua_toboolean(t.co, 6));
    lua_settop(g_L, 0);

    /* an aborted task gets nil, "aborted" at once */
    kx_task_t a;
    memset(&a, 0, sizeof a);
    a.co = lua_newthread(g_L);
    a.aborted = true;
    assert_int_equal(luaL_loadstring(a.co, "local h, he = core.hash_password('pw')\n"
                                           "local v, ve = core.verify_password('pw', 'x')\n"
                                           "return h, he, v, ve"),
                     0);
    g_current = &a;
    rc = lua_resume(a.co, 0);
    g_current = NULL;
    assert_int_equal(rc, 0);
    assert_true(lua_isnil(a.co, 1));
    assert_string_equal(lua_tostring(a.co, 2), "aborted");
    assert_true(lua_isnil(a.co, 3));
    assert_string_equal(lua_tostring(a.co, 4), "aborted");
    assert_int_equal(kx_crypto_in_flight(), 0);
    lua_settop(g_L, 0);
}

static void test_lua_errors(void **state)
{
    (void)state;
    /* outside a task (no current task, main state) */
    int rc = luaL_dostring(g_L, "local ok1, e1 = pcall(core.hash_password, 'x')\n"
                                "local ok2, e2 = pcall(core.verify_password, 'x', 'y')\n"
                                "return ok1, e1, ok2, e2");
    assert_int_equal(rc, 0);
    assert_false(lua_toboolean(g_L, 1));
    assert_non_null(strstr(lua_tostring(g_L, 2), "outside a request"));
    assert_false(lua_toboolean(g_L, 3));
    assert_non_null(strstr(lua_tostring(g_L, 4), "outside a request"));
    lua_settop(g_L, 0);

    /* inside a task, non-string arguments (numbers are not coerced) */
    kx_task_t t;
    rc = run_task(&t, "local r = {}\n"
                      "for _, f in ipairs({\n"
                      "  function() return core.hash_password(123) end,\n"
                      "  function() return core.hash_password() end,\n"
                      "  function() return core.hash_password({}) end,\n"
                      "  function() return core.verify_password('x') end,\n"
                      "  function() return core.verify_password('x', 5) end,\n"
                      "  function() return core.verify_password(nil, 'x') end }) do\n"
                      "  local ok, e = pcall(f)\n"
                      "  r[#r + 1] = (not ok) and e:find('must be a string', 1, true) ~= nil\n"
                      "end\n"
                      "return unpack(r)");
    assert_int_equal(rc, 0);
    assert_int_equal(lua_gettop(t.co), 6);
    for (int i = 1; i <= 6; i++) assert_true(lua_toboolean(t.co, i));
    assert_int_equal(t.yields, 0);
    assert_int_equal(kx_crypto_in_flight(), 0);
    lua_settop(g_L, 0);

    /* a task whose coroutine is not the caller (e.g. a nested coroutine) is refused */
    kx_task_t other;
    memset(&other, 0, sizeof other);
    other.co = lua_newthread(g_L);
    g_current = &other;
    rc = luaL_dostring(g_L, "return pcall(core.hash_password, 'x')");
    g_current = NULL;
    assert_int_equal(rc, 0);
    assert_false(lua_toboolean(g_L, -2));
    lua_settop(g_L, 0);
}

static void test_lua_busy(void **state)
{
    (void)state;
    static kx_crypto_job_t *jobs[KX_CRYPTO_MAX_JOBS];
    rec_t sink = { 0 };
    for (int i = 0; i < KX_CRYPTO_MAX_JOBS; i++) {
        jobs[i] = kx_crypto_verify("x", 1, "nope", 4, record, &sink);
        assert_non_null(jobs[i]);
    }
    kx_task_t t;
    int rc = run_task(&t, "local a, ae = core.hash_password('pw')\n"
                          "local b, be = core.verify_password('pw', 'x')\n"
                          "return a, ae, b, be");
    assert_int_equal(rc, 0);
    assert_int_equal(t.yields, 0);
    assert_true(lua_isnil(t.co, 1));
    assert_string_equal(lua_tostring(t.co, 2), "busy");
    assert_true(lua_isnil(t.co, 3));
    assert_string_equal(lua_tostring(t.co, 4), "busy");
    for (int i = 0; i < KX_CRYPTO_MAX_JOBS; i++) kx_crypto_cancel(jobs[i]);
    run_until(pool_empty, NULL, 30.0);
    assert_int_equal(sink.calls, 0);
    lua_settop(g_L, 0);
}

/* The action timeout: lua_bridge's on_timeout calls the hook, then wakes the task itself. */
static void test_lua_timeout_cancels(void **state)
{
    (void)state;
    for (int which = 0; which < 2; which++) {
        kx_task_t t;
        memset(&t, 0, sizeof t);
        t.co = lua_newthread(g_L);
        const char *chunk = which == 0 ? "return core.hash_password('slow')"
                                       : "return core.verify_password('pw', '" KAT "')";
        assert_int_equal(luaL_loadstring(t.co, chunk), 0);
        g_current = &t;
        assert_int_equal(lua_resume(t.co, 0), LUA_YIELD);
        g_current = NULL;
        assert_non_null(t.cancel);
        /* on_timeout: */
        t.aborted = true;
        t.cancel(t.cancel_ud);
        t.cancel = NULL;
        t.cancel_ud = NULL;
        lua_pushnil(t.co);
        lua_pushliteral(t.co, "aborted");
        kx_task_wake(&t, 2);
        /* the worker finishes later; its answer must not reach the task */
        run_until(pool_empty, NULL, 30.0);
        assert_int_equal(t.wakes, 1);
        assert_int_equal(lua_gettop(t.co), 2);
        g_current = &t;
        assert_int_equal(lua_resume(t.co, 2), 0);
        g_current = NULL;
        assert_true(lua_isnil(t.co, 1));
        assert_string_equal(lua_tostring(t.co, 2), "aborted");
        lua_settop(g_L, 0);
    }
}

int main(void)
{
#define P(f) cmocka_unit_test_setup_teardown(f, pool_setup, pool_teardown)
#define L(f) cmocka_unit_test_setup_teardown(f, lua_setup, lua_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_id_format_and_uniqueness),
        cmocka_unit_test(test_random_id_small_buffer),
        cmocka_unit_test(test_valid_id_refusals),
        cmocka_unit_test(test_hash_format_recomputed_independently),
        cmocka_unit_test(test_hash_salted),
        cmocka_unit_test(test_hash_password_limits),
        cmocka_unit_test(test_hash_timing),
        cmocka_unit_test(test_verify_known_answer),
        cmocka_unit_test(test_verify_every_one_bit_flip),
        cmocka_unit_test(test_verify_malformed_stored),
        cmocka_unit_test(test_verify_every_prefix),
        cmocka_unit_test(test_verify_mutations),
        cmocka_unit_test(test_pool_not_started),
        P(test_pool_idle_loop_returns),
        P(test_pool_eight_jobs),
        P(test_pool_bad_inputs),
        P(test_pool_cancel_paths),
        P(test_pool_cancel_from_callback),
        P(test_pool_bound),
        P(test_pool_stop_drops_pending),
        L(test_lua_ids),
        L(test_lua_hash_and_verify),
        L(test_lua_immediate_answers),
        L(test_lua_errors),
        L(test_lua_busy),
        L(test_lua_timeout_cancels),
    };
#undef P
#undef L
    return cmocka_run_group_tests(tests, NULL, NULL);
}
