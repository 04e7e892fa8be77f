/* test_prodcheck.c — the production self-check: the defaults for NODE_ENV=production are
 * unsafe in exactly the expected ways; a configuration with every item safe reports nothing;
 * each unsafe item alone produces exactly one line naming its variable (and the safe value of
 * a switch); look-alikes that are safe (https APPLICATION_URL, TLS) are not reported. Configs
 * are built as main.c builds them: defaults → kx_config_set → kx_config_finish. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "prodcheck.h"

#include <stdio.h>

static const kx_config_desc_t *desc(const char *env)
{
    for (const kx_config_desc_t *d = kx_config_descs(); d->key; d++)
        if (strcmp(d->env, env) == 0) return d;
    fail_msg("no config descriptor for %s", env);
    return NULL;
}

static void cfg_set(kx_config_t *c, const char *env, const char *value)
{
    char err[512] = "";
    if (kx_config_set(c, desc(env), value, env, err, sizeof err) != KX_OK)
        fail_msg("set %s=%s: %s", env, value, err);
}

static void finish(kx_config_t *c)
{
    char err[512] = "";
    if (kx_config_finish(c, err, sizeof err) != KX_OK) fail_msg("finish: %s", err);
}

/* Production defaults with every checklist item made safe. */
static void safe_cfg(kx_config_t *c)
{
    kx_config_defaults(c, "production");
    cfg_set(c, "SESSION_COOKIE_SECURE", "true");
    cfg_set(c, "WEB_SERVER_ALLOWED_ORIGINS", "https://app.example.com");
    cfg_set(c, "APPLICATION_URL", "https://app.example.com");
}

static int run(const kx_config_t *c, kx_prodcheck_item_t *items)
{
    int n = kx_prodcheck(c, items);
    assert_true(n >= 0 && n <= KX_PRODCHECK_MAX);
    for (int i = 0; i < n; i++) {
        assert_non_null(items[i].var);
        assert_non_null(strstr(items[i].line, items[i].var)); /* each line names its variable */
        assert_null(strchr(items[i].line, '\n'));             /* one line */
    }
    return n;
}

/* Exactly one item, for var, whose line contains `want` (the safe value of a switch). */
static void expect_one(const kx_config_t *c, const char *var, const char *want)
{
    kx_prodcheck_item_t items[KX_PRODCHECK_MAX];
    int n = run(c, items);
    if (n != 1) fail_msg("expected 1 item (%s), got %d (first: %s)", var, n, n ? items[0].line : "-");
    assert_string_equal(items[0].var, var);
    if (want && !strstr(items[0].line, want)) fail_msg("line \"%s\" does not say %s", items[0].line, want);
}

static void test_safe_config_reports_nothing(void **state)
{
    (void)state;
    kx_config_t c;
    safe_cfg(&c);
    finish(&c);
    kx_prodcheck_item_t items[KX_PRODCHECK_MAX];
    assert_int_equal(run(&c, items), 0);
    kx_config_free(&c);
}

static void test_production_defaults(void **state)
{
    (void)state;
    kx_config_t c;
    kx_config_defaults(&c, "production");
    finish(&c);
    kx_prodcheck_item_t items[KX_PRODCHECK_MAX];
    int n = run(&c, items);
    /* Stacks are off and rate limiting on by default in production; the cookie, the "*" origin
     * and the missing HTTPS are not. */
    assert_int_equal(n, 3);
    assert_string_equal(items[0].var, "SESSION_COOKIE_SECURE");
    assert_string_equal(items[1].var, "WEB_SERVER_ALLOWED_ORIGINS");
    assert_string_equal(items[2].var, "APPLICATION_URL");
    assert_non_null(strstr(items[2].line, "WEB_SERVER_TLS_CERT"));
    kx_config_free(&c);
}

static void test_each_switch_alone(void **state)
{
    (void)state;
    const struct {
        const char *var, *value, *want;
    } cases[] = {
        { "WEB_SERVER_ALLOWED_ORIGINS", "*", "WEB_SERVER_ALLOWED_ORIGINS=https://" },
        { "RATE_LIMIT_ENABLED", "false", "RATE_LIMIT_ENABLED=true" },
        { "WEB_SERVER_INCLUDE_STACK_IN_ERRORS", "true", "WEB_SERVER_INCLUDE_STACK_IN_ERRORS=false" },
        { "WEB_SECURITY_CSP", "", "Content-Security-Policy" },
        { "WEB_SECURITY_CONTENT_TYPE_OPTIONS", "", "X-Content-Type-Options" },
        { "WEB_SECURITY_FRAME_OPTIONS", "", "X-Frame-Options" },
        { "WEB_SECURITY_HSTS", "", "Strict-Transport-Security" },
        { "WEB_SECURITY_REFERRER_POLICY", "", "Referrer-Policy" },
    };
    for (size_t i = 0; i < KX_ARRAY_LEN(cases); i++) {
        kx_config_t c;
        safe_cfg(&c);
        cfg_set(&c, cases[i].var, cases[i].value);
        finish(&c);
        expect_one(&c, cases[i].var, cases[i].want);
        kx_config_free(&c);
    }
}

/* The cookie is Secure when configured so or served over HTTPS (session.c's rule). */
static void test_cookie_and_https(void **state)
{
    (void)state;
    kx_config_t c;
    /* https APPLICATION_URL (a TLS proxy): the cookie is Secure without the switch. */
    safe_cfg(&c);
    cfg_set(&c, "SESSION_COOKIE_SECURE", "false");
    finish(&c);
    kx_prodcheck_item_t items[KX_PRODCHECK_MAX];
    assert_int_equal(run(&c, items), 0);
    kx_config_free(&c);
    /* http APPLICATION_URL, no TLS: both the cookie and the transport are reported. */
    safe_cfg(&c);
    cfg_set(&c, "SESSION_COOKIE_SECURE", "false");
    cfg_set(&c, "APPLICATION_URL", "http://app.example.com");
    finish(&c);
    assert_int_equal(run(&c, items), 2);
    assert_string_equal(items[0].var, "SESSION_COOKIE_SECURE");
    assert_non_null(strstr(items[0].line, "SESSION_COOKIE_SECURE=true"));
    assert_string_equal(items[1].var, "APPLICATION_URL");
    kx_config_free(&c);
    /* Secure cookie, plain http: only the transport. */
    safe_cfg(&c);
    cfg_set(&c, "APPLICATION_URL", "http://app.example.com");
    finish(&c);
    expect_one(&c, "APPLICATION_URL", "WEB_SERVER_TLS_CERT");
    kx_config_free(&c);
    /* TLS in process: safe whatever APPLICATION_URL says. */
    safe_cfg(&c);
    cfg_set(&c, "APPLICATION_URL", "http://app.example.com");
    cfg_set(&c, "WEB_SERVER_TLS_CERT", "/etc/keryx/cert.pem");
    cfg_set(&c, "WEB_SERVER_TLS_KEY", "/etc/keryx/key.pem");
    finish(&c);
    assert_int_equal(run(&c, items), 0);
    kx_config_free(&c);
    /* A look-alike scheme is not https. */
    safe_cfg(&c);
    cfg_set(&c, "APPLICATION_URL", "httpsx://app.example.com");
    finish(&c);
    expect_one(&c, "APPLICATION_URL", NULL);
    kx_config_free(&c);
}

static void test_mcp_origins(void **state)
{
    (void)state;
    const struct {
        const char *enabled, *origins;
        int unsafe;
    } cases[] = {
        { "true", "", 0 },
        { "true", "https://a.example.com, https://b.example.com:8443", 0 },
        { "true", "*", 1 },
        { "true", "https://a.example.com,*", 1 },
        { "true", "http://a.example.com", 1 },
        { "true", "https://*.example.com", 1 },
        { "false", "*", 0 }, /* MCP off: its origins open nothing */
    };
    for (size_t i = 0; i < KX_ARRAY_LEN(cases); i++) {
        kx_config_t c;
        safe_cfg(&c);
        cfg_set(&c, "MCP_SERVER_ENABLED", cases[i].enabled);
        cfg_set(&c, "MCP_ALLOWED_ORIGINS", cases[i].origins);
        finish(&c);
        if (cases[i].unsafe) {
            expect_one(&c, "MCP_ALLOWED_ORIGINS", "https://");
        } else {
            kx_prodcheck_item_t items[KX_PRODCHECK_MAX];
            if (run(&c, items) != 0) fail_msg("case %zu: %s", i, items[0].line);
        }
        kx_config_free(&c);
    }
}

/* Everything unsafe at once: one line each, never more than the table holds. */
static void test_everything_unsafe(void **state)
{
    (void)state;
    kx_config_t c;
    kx_config_defaults(&c, "production");
    const char *empty[] = { "WEB_SECURITY_CSP", "WEB_SECURITY_CONTENT_TYPE_OPTIONS",
                            "WEB_SECURITY_FRAME_OPTIONS", "WEB_SECURITY_HSTS",
                            "WEB_SECURITY_REFERRER_POLICY" };
    for (size_t i = 0; i < KX_ARRAY_LEN(empty); i++) cfg_set(&c, empty[i], "");
    cfg_set(&c, "RATE_LIMIT_ENABLED", "no");
    cfg_set(&c, "WEB_SERVER_INCLUDE_STACK_IN_ERRORS", "yes");
    cfg_set(&c, "MCP_SERVER_ENABLED", "true");
    cfg_set(&c, "MCP_ALLOWED_ORIGINS", "*");
    finish(&c);
    kx_prodcheck_item_t items[KX_PRODCHECK_MAX];
    assert_int_equal(run(&c, items), 11);
    kx_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safe_config_reports_nothing),
        cmocka_unit_test(test_production_defaults),
        cmocka_unit_test(test_each_switch_alone),
        cmocka_unit_test(test_cookie_and_https),
        cmocka_unit_test(test_mcp_origins),
        cmocka_unit_test(test_everything_unsafe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
