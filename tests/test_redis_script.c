/* test_redis_script.c — the pure parts of redis_script.c: SHA1, NOSCRIPT detection, loading a
 * directory of scripts (refusals name the file; a failed load leaves nothing half loaded), and
 * a call while Redis is down. The EVALSHA/EVAL fallback against a real Redis is covered by
 * spec/integration (SCRIPT FLUSH between requests). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "redis_script.h"

static void test_noscript(void **state)
{
    (void)state;
    redisReply e = { 0 };
    e.type = REDIS_REPLY_ERROR;
    e.str = "NOSCRIPT No matching script. Please use EVAL.";
    e.len = strlen(e.str);
    assert_true(kx_redis_is_noscript(&e));
    e.type = REDIS_REPLY_STATUS; /* only an error reply means it */
    assert_false(kx_redis_is_noscript(&e));
    e.type = REDIS_REPLY_ERROR;
    e.str = "ERR NOSCRIPT";
    e.len = strlen(e.str);
    assert_false(kx_redis_is_noscript(&e));
    e.str = "NOSCRIP";
    e.len = 7;
    assert_false(kx_redis_is_noscript(&e));
    assert_false(kx_redis_is_noscript(NULL));
}

/* ---- SHA1 and loading ----------------------------------------------------------------------- */

static void test_sha1(void **state)
{
    (void)state;
    char hex[41];
    kx_redis_sha1_hex("abc", 3, hex);
    assert_string_equal(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
    kx_redis_sha1_hex("", 0, hex);
    assert_string_equal(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    kx_redis_sha1_hex("a\0b", 3, hex); /* binary-safe: the NUL is hashed */
    char hex2[41];
    kx_redis_sha1_hex("a", 1, hex2);
    assert_string_not_equal(hex, hex2);
}

static void write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void test_load(void **state)
{
    (void)state;
    char dir[] = "/tmp/kx_scripts_testXXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[512], path[700], other[700];
    snprintf(path, sizeof path, "%s/ratelimit.lua", dir);
    snprintf(other, sizeof other, "%s/not-a-script.lua", dir);

    err[0] = '\0';
    assert_int_equal(kx_redis_scripts_load("/nonexistent/kx", err, sizeof err), KX_EIO);
    assert_non_null(strstr(err, "/nonexistent/kx"));

    write_file(path, "", 0);
    assert_int_equal(kx_redis_scripts_load(dir, err, sizeof err), KX_EIO); /* empty */
    assert_non_null(strstr(err, "ratelimit.lua"));
    assert_null(kx_redis_script_find("ratelimit")); /* nothing half loaded */

    size_t big = KX_REDIS_SCRIPT_MAX_BYTES + 1;
    char *blob = malloc(big);
    memset(blob, '-', big);
    write_file(path, blob, big);
    assert_int_equal(kx_redis_scripts_load(dir, err, sizeof err), KX_EIO); /* oversized */
    free(blob);

    write_file(path, "abc", 3);
    write_file(other, "", 0); /* not a script name: ignored, even though empty */
    assert_int_equal(kx_redis_scripts_load(dir, err, sizeof err), KX_OK);
    const kx_redis_script_t *s = kx_redis_script_find("ratelimit");
    assert_non_null(s);
    assert_string_equal(kx_redis_script_sha(s), "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_null(kx_redis_script_find("not-a-script"));
    assert_null(kx_redis_script_find("missing"));
    write_file(path, "return 1", 8); /* a second load replaces the scripts */
    assert_int_equal(kx_redis_scripts_load(dir, err, sizeof err), KX_OK);
    char want[41];
    kx_redis_sha1_hex("return 1", 8, want);
    assert_string_equal(kx_redis_script_sha(kx_redis_script_find("ratelimit")), want);

    kx_redis_scripts_free();
    assert_null(kx_redis_script_find("ratelimit"));
    unlink(path);
    unlink(other);
    rmdir(dir);
}

/* The repository's scripts load (tests run from the repository root). */
static void test_load_real_scripts(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(kx_redis_scripts_load("lua/redis", err, sizeof err), KX_OK);
    const char *names[] = { "ratelimit", "presence_add", "presence_remove", "oauth_family" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const kx_redis_script_t *s = kx_redis_script_find(names[i]);
        assert_non_null(s);
        assert_int_equal(strlen(kx_redis_script_sha(s)), 40);
    }
    kx_redis_scripts_free();
}

static int calls;
static void count_fn(void *ud, redisReply *reply, const char *err)
{
    (void)ud;
    (void)reply;
    (void)err;
    calls++;
}

/* No connection in this process: nothing is sent, fn is never called, nothing leaks. */
static void test_eval_while_down(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(kx_redis_scripts_load("lua/redis", err, sizeof err), KX_OK);
    const char *argv[] = { "k", "1" };
    const size_t lens[] = { 1, 1 };
    calls = 0;
    assert_null(
        kx_redis_eval(NULL, kx_redis_script_find("ratelimit"), 1, 2, argv, lens, 1.0, count_fn, NULL));
    assert_int_equal(calls, 0);
    kx_redis_eval_cancel(NULL); /* harmless */
    kx_redis_scripts_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_noscript),
        cmocka_unit_test(test_sha1),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_load_real_scripts),
        cmocka_unit_test(test_eval_while_down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
