/* test_config.c — settings: value parsers (bool, int, origins), defaults per NODE_ENV,
 * kx_config_set messages and minimums, environment precedence (VAR_<NODE_ENV> over VAR, empty
 * values), and kx_config_finish cross-field checks and derived values. Every descriptor row
 * carries its own default (and NODE_ENV rule): each must parse and read back unchanged.
 *
 * Environment hygiene: every test that touches the environment starts and ends by unsetting
 * every variable keryx reads (plain and with _DEVELOPMENT/_TEST/_PRODUCTION suffixes), so the
 * tests neither affect each other nor depend on the shell they run in. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- helpers ------------------------------------------------------------------------------ */

static const kx_config_desc_t *desc(const char *env)
{
    for (const kx_config_desc_t *d = kx_config_descs(); d->key; d++)
        if (strcmp(d->env, env) == 0) return d;
    fail_msg("no config descriptor for %s", env);
    return NULL;
}

static void set_ok(kx_config_t *c, const char *env, const char *value)
{
    char err[512] = "";
    if (kx_config_set(c, desc(env), value, env, err, sizeof err) != KX_OK)
        fail_msg("set %s=\"%s\" refused: %s", env, value, err);
}

/* kx_config_set must refuse, with a message naming the source and quoting the value. */
static void set_refused(kx_config_t *c, const char *env, const char *value, char *err, size_t errcap)
{
    err[0] = '\0';
    int rc = kx_config_set(c, desc(env), value, env, err, errcap);
    if (rc != KX_EINVAL) fail_msg("set %s=\"%s\" returned %d, expected KX_EINVAL", env, value, rc);
    char quoted[256];
    snprintf(quoted, sizeof quoted, "\"%s\"", value);
    if (!strstr(err, env)) fail_msg("message does not name %s: %s", env, err);
    if (!strstr(err, quoted)) fail_msg("message does not quote %s: %s", quoted, err);
}

static void env_clean(void)
{
    static const char *sfx[] = { "", "_DEVELOPMENT", "_TEST", "_PRODUCTION", "_STAGING" };
    for (const kx_config_desc_t *d = kx_config_descs(); d->key; d++) {
        for (size_t i = 0; i < KX_ARRAY_LEN(sfx); i++) {
            char name[200];
            snprintf(name, sizeof name, "%s%s", d->env, sfx[i]);
            unsetenv(name);
        }
    }
}

static int env_setup(void **state)
{
    (void)state;
    env_clean();
    return 0;
}

static int env_teardown(void **state)
{
    (void)state;
    env_clean();
    return 0;
}

/* Defaults + finish for node_env; fails the test on error. */
static void finished(kx_config_t *c, const char *node_env)
{
    kx_config_defaults(c, node_env);
    char err[512] = "";
    if (kx_config_finish(c, err, sizeof err) != KX_OK) fail_msg("finish: %s", err);
}

static void finish_refused(kx_config_t *c, char *err, size_t errcap)
{
    err[0] = '\0';
    assert_int_equal(kx_config_finish(c, err, errcap), KX_EINVAL);
    assert_true(strlen(err) > 0);
}

/* ---- kx_config_parse_bool ----------------------------------------------------------------- */

static void test_parse_bool(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        bool v;
    } ok[] = {
        { "true", true },   { "TRUE", true }, { "True", true }, { "tRuE", true },   { "1", true },
        { "yes", true },    { "YES", true },  { "Yes", true },  { "false", false }, { "FALSE", false },
        { "False", false }, { "0", false },   { "no", false },  { "NO", false },    { "No", false },
    };
    for (size_t i = 0; i < KX_ARRAY_LEN(ok); i++) {
        bool out = !ok[i].v;
        if (kx_config_parse_bool(ok[i].s, &out) != KX_OK) fail_msg("\"%s\" refused", ok[i].s);
        assert_int_equal(out, ok[i].v);
    }
    static const char *bad[] = { "",     "2",   "-1",     "truee",  " true", "true ",     "t",  "f",
                                 "y",    "n",   "on",     "off",    "01",    "00",        "10", "yes!",
                                 "nope", "tru", "\ttrue", "true\n", "null",  "undefined", "1.0" };
    for (size_t i = 0; i < KX_ARRAY_LEN(bad); i++) {
        bool out = true;
        if (kx_config_parse_bool(bad[i], &out) != KX_EINVAL) fail_msg("\"%s\" accepted", bad[i]);
        assert_true(out); /* untouched on failure */
        out = false;
        assert_int_equal(kx_config_parse_bool(bad[i], &out), KX_EINVAL);
        assert_false(out);
    }
}

/* ---- kx_config_parse_int ------------------------------------------------------------------ */

static void test_parse_int(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t v;
    } ok[] = {
        { "0", 0 },
        { "1", 1 },
        { "-1", -1 },
        { "42", 42 },
        { "-300", -300 },
        { "007", 7 },
        { "9223372036854775807", INT64_MAX },
        { "-9223372036854775808", INT64_MIN },
        { "10485760", 10485760 },
    };
    for (size_t i = 0; i < KX_ARRAY_LEN(ok); i++) {
        int64_t out = 12345;
        if (kx_config_parse_int(ok[i].s, &out) != KX_OK) fail_msg("\"%s\" refused", ok[i].s);
        assert_true(out == ok[i].v);
    }
    static const char *bad[] = {
        "",
        " ",
        " 1",
        "1 ",
        "\t1",
        "1\n",
        "\n1",
        "1.5",
        "1.0",
        "1e3",
        "0x10",
        "0X10",
        "1_000",
        "1,000",
        "abc",
        "12abc",
        "-",
        "+",
        "--1",
        "+-1",
        "99999999999999999999",
        "-99999999999999999999",
        "9223372036854775808",
        "-9223372036854775809",
        "Infinity",
        "NaN",
        "true",
    };
    for (size_t i = 0; i < KX_ARRAY_LEN(bad); i++) {
        int64_t out = 777;
        if (kx_config_parse_int(bad[i], &out) != KX_EINVAL) fail_msg("\"%s\" accepted", bad[i]);
        assert_true(out == 777); /* untouched on failure */
    }
}

/* ---- kx_config_parse_origins -------------------------------------------------------------- */

static void free_list(char **out, int n)
{
    for (int i = 0; i < n; i++) {
        free(out[i]);
        out[i] = NULL;
    }
}

static void test_parse_origins_valid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int n;
        const char *first, *last;
    } ok[] = {
        { "https://a.example", 1, "https://a.example", "https://a.example" },
        { "https://a.example,http://b.example:8080", 2, "https://a.example", "http://b.example:8080" },
        { "  https://a.example ,  http://b.example:8080  ", 2, "https://a.example", "http://b.example:8080" },
        { "\thttps://a\t,\thttps://b\t", 2, "https://a", "https://b" },
        { "http://localhost:3000", 1, "http://localhost:3000", "http://localhost:3000" },
        { "http://127.0.0.1:65535", 1, "http://127.0.0.1:65535", "http://127.0.0.1:65535" },
        { "http://[::1]:8080", 1, "http://[::1]:8080", "http://[::1]:8080" },
        { "http://[::1]", 1, "http://[::1]", "http://[::1]" },
        { "app+x-y.z://host", 1, "app+x-y.z://host", "app+x-y.z://host" },
        { "https://a,https://b,https://c", 3, "https://a", "https://c" },
    };
    for (size_t i = 0; i < KX_ARRAY_LEN(ok); i++) {
        char *out[KX_MAX_ORIGINS] = { 0 };
        int n = -1;
        bool any = true;
        if (kx_config_parse_origins(ok[i].s, out, KX_MAX_ORIGINS, &n, &any) != KX_OK)
            fail_msg("\"%s\" refused", ok[i].s);
        assert_false(any);
        assert_int_equal(n, ok[i].n);
        assert_string_equal(out[0], ok[i].first);
        assert_string_equal(out[n - 1], ok[i].last);
        for (int k = n; k < KX_MAX_ORIGINS; k++) assert_null(out[k]);
        free_list(out, n);
        /* Validate-only mode agrees. */
        n = -1;
        any = true;
        assert_int_equal(kx_config_parse_origins(ok[i].s, NULL, KX_MAX_ORIGINS, &n, &any), KX_OK);
        assert_int_equal(n, ok[i].n);
        assert_false(any);
    }
}

static void test_parse_origins_star(void **state)
{
    (void)state;
    static const char *stars[] = { "*", " * ", "\t*" };
    for (size_t i = 0; i < KX_ARRAY_LEN(stars); i++) {
        char *out[KX_MAX_ORIGINS] = { 0 };
        int n = -1;
        bool any = false;
        assert_int_equal(kx_config_parse_origins(stars[i], out, KX_MAX_ORIGINS, &n, &any), KX_OK);
        assert_true(any);
        assert_int_equal(n, 0);
        for (int k = 0; k < KX_MAX_ORIGINS; k++) assert_null(out[k]);
    }
}

static void test_parse_origins_refused(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        " ",
        ",",
        "*,https://a",
        "https://a,*",
        "*,*",
        "**",
        "*a",
        "https://a/",
        "https://a/path",
        "https://a?x=1",
        "https://a#f",
        "null",
        "a.example",
        "//a.example",
        "://a.example",
        "https://",
        "https://user@a",
        "https://user:pw@a",
        "https://a:",
        "https://a:99x",
        "https://a:-1",
        "https://a: 80",
        "https://a b",
        "https://a,,https://b",
        "https://a,",
        ",https://a",
        "https://a, ,https://b",
        "ht tp://a",
        "h_t://a",
        "https://a\x7f",
        "https://\xc3\xa9.example",
        "https://a\r\nX-Evil: 1",
    };
    for (size_t i = 0; i < KX_ARRAY_LEN(bad); i++) {
        char *out[KX_MAX_ORIGINS] = { 0 };
        int n = -1;
        bool any = true;
        if (kx_config_parse_origins(bad[i], out, KX_MAX_ORIGINS, &n, &any) != KX_EINVAL)
            fail_msg("\"%s\" accepted", bad[i]);
        /* Nothing left allocated (the sanitizer build checks for leaks) nor reported. */
        for (int k = 0; k < KX_MAX_ORIGINS; k++) assert_null(out[k]);
        assert_int_equal(n, 0);
        assert_false(any);
        assert_int_equal(kx_config_parse_origins(bad[i], NULL, KX_MAX_ORIGINS, &n, &any), KX_EINVAL);
    }
}

static void build_origin_list(char *s, size_t cap, int count)
{
    size_t len = 0;
    s[0] = '\0';
    for (int i = 0; i < count; i++)
        len += (size_t)snprintf(s + len, cap - len, "%shttps://o%d.example", i ? "," : "", i);
}

static void test_parse_origins_limit(void **state)
{
    (void)state;
    char s[4096];
    char *out[KX_MAX_ORIGINS] = { 0 };
    int n = -1;
    bool any = true;

    build_origin_list(s, sizeof s, KX_MAX_ORIGINS);
    assert_int_equal(kx_config_parse_origins(s, out, KX_MAX_ORIGINS, &n, &any), KX_OK);
    assert_int_equal(n, KX_MAX_ORIGINS);
    assert_string_equal(out[KX_MAX_ORIGINS - 1], "https://o31.example");
    free_list(out, n);

    build_origin_list(s, sizeof s, KX_MAX_ORIGINS + 1);
    assert_int_equal(kx_config_parse_origins(s, out, KX_MAX_ORIGINS, &n, &any), KX_EINVAL);
    for (int k = 0; k < KX_MAX_ORIGINS; k++) assert_null(out[k]);
    assert_int_equal(kx_config_parse_origins(s, NULL, KX_MAX_ORIGINS, &n, &any), KX_EINVAL);

    /* A smaller max is honoured too. */
    build_origin_list(s, sizeof s, 3);
    assert_int_equal(kx_config_parse_origins(s, out, 2, &n, &any), KX_EINVAL);
    for (int k = 0; k < KX_MAX_ORIGINS; k++) assert_null(out[k]);

    /* Through the config: 33 origins stop finish with a message naming the variable. */
    kx_config_t c;
    kx_config_defaults(&c, "development");
    build_origin_list(s, sizeof s, KX_MAX_ORIGINS + 1);
    set_ok(&c, "WEB_SERVER_ALLOWED_ORIGINS", s);
    char err[8192];
    finish_refused(&c, err, sizeof err);
    assert_non_null(strstr(err, "WEB_SERVER_ALLOWED_ORIGINS"));
    kx_config_free(&c);
}

/* BUG: on failure kx_config_parse_origins frees out[] slots it never wrote. For
 * "https://a,*" it stores out[0], then counts "*" as entry 1 without writing out[1], and the
 * fail path frees out[0] AND out[1]; for "*,https://a" it frees out[0] which it never wrote.
 * A caller passing an uninitialised array (or one holding its own pointers) gets free() of
 * garbage. kx_config_finish is safe only because it NULLs origins[] first. Expected: slots the
 * call did not write are left untouched; got: out[1] (a caller-owned pointer) freed and NULLed. */
static void test_parse_origins_fail_leaves_unwritten_slots(void **state)
{
    (void)state;
    static const char *inputs[] = { "https://a,*", "*,https://a" };
    for (size_t i = 0; i < KX_ARRAY_LEN(inputs); i++) {
        char *out[KX_MAX_ORIGINS] = { 0 };
        char *mine = kx_xstrdup("caller-owned");
        size_t slot = i == 0 ? 1 : 0; /* the slot the call never writes */
        out[slot] = mine;
        int n;
        bool any;
        assert_int_equal(kx_config_parse_origins(inputs[i], out, KX_MAX_ORIGINS, &n, &any), KX_EINVAL);
        assert_ptr_equal(out[slot], mine);
        free(mine);
    }
}

/* ---- defaults ----------------------------------------------------------------------------- */

static void test_defaults_per_env(void **state)
{
    (void)state;
    kx_config_t c;

    kx_config_defaults(&c, "production");
    assert_string_equal(c.node_env, "production");
    assert_false(c.include_stack_in_errors);
    assert_false(c.rate_limit_fail_open);
    assert_true(c.rate_limit_enabled);
    kx_config_free(&c);

    kx_config_defaults(&c, "test");
    assert_string_equal(c.node_env, "test");
    assert_false(c.rate_limit_enabled);
    assert_true(c.include_stack_in_errors);
    assert_true(c.rate_limit_fail_open);
    kx_config_free(&c);

    static const char *dev[] = { "development", NULL, "", "staging" };
    for (size_t i = 0; i < KX_ARRAY_LEN(dev); i++) {
        kx_config_defaults(&c, dev[i]);
        assert_string_equal(c.node_env, dev[i] && dev[i][0] ? dev[i] : "development");
        assert_true(c.include_stack_in_errors);
        assert_true(c.rate_limit_fail_open);
        assert_true(c.rate_limit_enabled);
        kx_config_free(&c);
    }

    /* Only the exact lowercase names select the special profiles. */
    kx_config_defaults(&c, "Production");
    assert_true(c.include_stack_in_errors);
    kx_config_free(&c);
}

/* Every row's default (for each NODE_ENV rule) is accepted by kx_config_set, and is written
 * the way kx_config_get_string prints it back, so the Lua view (core.config) shows exactly the
 * table's text. Only strings may lack a default (the field stays unset: "" in Lua); an int or
 * bool without one would silently be 0/false, below some minimums. */
static void test_every_row_default_parses(void **state)
{
    (void)state;
    static const char *envs[] = { "development", "test", "production" };
    for (size_t i = 0; i < KX_ARRAY_LEN(envs); i++) {
        kx_config_t c;
        kx_config_defaults(&c, envs[i]);
        for (const kx_config_desc_t *d = kx_config_descs(); d->key; d++) {
            const char *def = kx_config_default(d, envs[i]);
            if (!def) {
                if (d->type != KX_CT_STRING) fail_msg("%s: only strings may have no default", d->key);
                continue;
            }
            kx_config_t scratch;
            memset(&scratch, 0, sizeof scratch);
            char err[512] = "", got[1024];
            if (kx_config_set(&scratch, d, def, d->key, err, sizeof err) != KX_OK)
                fail_msg("%s (NODE_ENV=%s): default \"%s\" refused: %s", d->key, envs[i], def, err);
            kx_config_free(&scratch);
            kx_config_get_string(&c, d, got, sizeof got);
            if (strcmp(got, def) != 0)
                fail_msg("%s (NODE_ENV=%s): default \"%s\" reads back as \"%s\"", d->key, envs[i], def, got);
        }
        char err[512] = "";
        if (kx_config_finish(&c, err, sizeof err) != KX_OK)
            fail_msg("finish (NODE_ENV=%s): %s", envs[i], err);
        kx_config_free(&c);
    }
}

/* The NODE_ENV rules are only ever overrides of a row's plain default. */
static void test_env_rules_have_a_plain_default(void **state)
{
    (void)state;
    for (const kx_config_desc_t *d = kx_config_descs(); d->key; d++)
        if ((d->def_production || d->def_test) && !d->def) fail_msg("%s: NODE_ENV rule without def", d->key);
    assert_string_equal(kx_config_default(desc("RATE_LIMIT_ENABLED"), "test"), "false");
    assert_string_equal(kx_config_default(desc("RATE_LIMIT_ENABLED"), NULL), "true");
    assert_string_equal(kx_config_default(desc("WEB_SERVER_INCLUDE_STACK_IN_ERRORS"), "production"), "false");
    assert_string_equal(kx_config_default(desc("WEB_SERVER_INCLUDE_STACK_IN_ERRORS"), "Production"), "true");
    assert_null(kx_config_default(desc("APPLICATION_URL"), "development"));
}

static void test_defaults_are_secure_and_finish(void **state)
{
    (void)state;
    kx_config_t c;
    finished(&c, "development");
    assert_true(c.origins_any);
    assert_int_equal(c.n_origins, 0);
    assert_string_equal(c.api_route, "/api");
    assert_true(c.session_cookie_http_only);
    assert_int_equal(c.session_cookie_same_site, KX_SAMESITE_STRICT);
    assert_string_equal(c.application_url, "http://localhost:8080");
    assert_true(c.max_body_size > 0);
    kx_config_free(&c);
    /* kx_config_free leaves a zeroed struct; freeing twice is harmless. */
    assert_null(c.node_env);
    kx_config_free(&c);
}

/* ---- kx_config_set ------------------------------------------------------------------------ */

/* LOG_FORMAT=text|json (any case) sets the field LOG_JSON sets; anything else is refused. */
static void test_log_format(void **state)
{
    (void)state;
    kx_config_t c;
    kx_config_defaults(&c, "development");
    assert_false(c.log_json);
    set_ok(&c, "LOG_FORMAT", "json");
    assert_true(c.log_json);
    char got[16];
    kx_config_get_string(&c, desc("LOG_FORMAT"), got, sizeof got);
    assert_string_equal(got, "json");
    set_ok(&c, "LOG_FORMAT", "TEXT");
    assert_false(c.log_json);
    set_ok(&c, "LOG_JSON", "true");
    kx_config_get_string(&c, desc("LOG_FORMAT"), got, sizeof got);
    assert_string_equal(got, "json");
    char err[512];
    set_refused(&c, "LOG_FORMAT", "yaml", err, sizeof err);
    assert_string_equal(err, "invalid value for LOG_FORMAT: \"yaml\" (expected text or json)");
    assert_true(c.log_json);
    kx_config_free(&c);
}

static void test_set_messages(void **state)
{
    (void)state;
    kx_config_t c;
    kx_config_defaults(&c, "development");
    char err[512];

    set_refused(&c, "WEB_SERVER_PORT", "80a", err, sizeof err);
    assert_non_null(strstr(err, "whole number"));
    assert_int_equal(c.web_port, 8080);

    set_refused(&c, "LOG_JSON", "maybe", err, sizeof err);
    assert_non_null(strstr(err, "true/false"));
    set_refused(&c, "LOG_LEVEL", "loud", err, sizeof err);
    set_refused(&c, "SESSION_COOKIE_SAME_SITE", "sometimes", err, sizeof err);
    set_refused(&c, "WEB_SERVER_WORKERS", "0", err, sizeof err);
    set_refused(&c, "WEB_SERVER_WORKERS", "-2", err, sizeof err);
    set_refused(&c, "WEB_SERVER_WORKERS", "many", err, sizeof err);
    assert_int_equal(c.workers, 1);

    /* The source is whatever the caller names: a config.lua key here. */
    err[0] = '\0';
    assert_int_equal(kx_config_set(&c, desc("WEB_SERVER_PORT"), "x", "server.web.port", err, sizeof err),
                     KX_EINVAL);
    assert_non_null(strstr(err, "server.web.port"));
    assert_non_null(strstr(err, "\"x\""));

    /* Successful sets of every kind. */
    set_ok(&c, "WEB_SERVER_PORT", "9090");
    assert_int_equal(c.web_port, 9090);
    set_ok(&c, "LOG_JSON", "YES");
    assert_true(c.log_json);
    set_ok(&c, "LOG_LEVEL", "WARN");
    assert_int_equal(c.log_level, KX_LOG_WARN);
    set_ok(&c, "SESSION_COOKIE_SAME_SITE", "lax");
    assert_int_equal(c.session_cookie_same_site, KX_SAMESITE_LAX);
    set_ok(&c, "WEB_SERVER_WORKERS", "auto");
    assert_int_equal(c.workers, 0);
    set_ok(&c, "WEB_SERVER_WORKERS", "4");
    assert_int_equal(c.workers, 4);
    set_ok(&c, "PROCESS_NAME", "my server");
    assert_string_equal(c.process_name, "my server");
    set_ok(&c, "PROCESS_NAME", "");
    assert_string_equal(c.process_name, "");
    kx_config_free(&c);
}

/* A long hostile value cannot overflow the message buffer. */
static void test_set_message_truncated(void **state)
{
    (void)state;
    kx_config_t c;
    kx_config_defaults(&c, "development");
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char err[64];
    memset(err, 'Z', sizeof err);
    assert_int_equal(kx_config_set(&c, desc("WEB_SERVER_PORT"), big, "WEB_SERVER_PORT", err, sizeof err),
                     KX_EINVAL);
    assert_int_equal(strlen(err), sizeof err - 1);
    kx_config_free(&c);
}

static void test_int_minimums(void **state)
{
    (void)state;
    kx_config_t c;
    kx_config_defaults(&c, "development");
    char err[512];

    set_refused(&c, "WEB_SERVER_MAX_CONNECTIONS", "0", err, sizeof err);
    assert_non_null(strstr(err, ">= 1"));
    set_refused(&c, "WEB_SERVER_MAX_CONNECTIONS", "-5", err, sizeof err);
    assert_int_equal(c.max_connections, 10000);
    set_ok(&c, "WEB_SERVER_MAX_CONNECTIONS", "1");
    assert_int_equal(c.max_connections, 1);

    static const char *min1[] = { "SESSION_TTL",
                                  "RATE_LIMIT_WINDOW_MS",
                                  "REDIS_COMMAND_TIMEOUT_MS",
                                  "WEB_SERVER_HEADER_TIMEOUT_MS",
                                  "WEB_SERVER_KEEPALIVE_TIMEOUT_MS",
                                  "WEB_SERVER_BODY_TIMEOUT_MS",
                                  "WS_MAX_PAYLOAD_SIZE",
                                  "WS_PING_INTERVAL_MS",
                                  "WS_IDLE_TIMEOUT_MS",
                                  "WS_MAX_MESSAGES_PER_SECOND",
                                  "WS_MAX_SUBSCRIPTIONS",
                                  "RATE_LIMIT_UNAUTH_LIMIT",
                                  "RATE_LIMIT_AUTH_LIMIT",
                                  "RATE_LIMIT_OAUTH_REGISTER_LIMIT" };
    for (size_t i = 0; i < KX_ARRAY_LEN(min1); i++) {
        set_refused(&c, min1[i], "0", err, sizeof err);
        set_ok(&c, min1[i], "1");
    }
    /* Minimum 0: zero fine, negative refused. */
    static const char *min0[] = { "WEB_SERVER_PORT", "WEB_MAX_BODY_SIZE", "WEB_SERVER_MAX_CONNECTIONS_PER_IP",
                                  "ACTION_TIMEOUT" };
    for (size_t i = 0; i < KX_ARRAY_LEN(min0); i++) {
        set_ok(&c, min0[i], "0");
        set_refused(&c, min0[i], "-1", err, sizeof err);
    }

    /* LUA_MEMORY_LIMIT_MB has minimum 16. */
    set_refused(&c, "LUA_MEMORY_LIMIT_MB", "15", err, sizeof err);
    assert_int_equal(c.lua_memory_limit_mb, 512);
    set_ok(&c, "LUA_MEMORY_LIMIT_MB", "16");
    assert_int_equal(c.lua_memory_limit_mb, 16);
    kx_config_free(&c);
}

/* BUG: the message for an int below a minimum other than 1 states the wrong bound.
 * LUA_MEMORY_LIMIT_MB=8 (min 16) is refused with
 *   invalid value for LUA_MEMORY_LIMIT_MB: "8" (expected a whole number >= 1)
 * — 8 *is* >= 1, so the operator is told nothing useful. Expected the message to say ">= 16";
 * got ">= 1" (config.c hard-codes "a whole number >= 1" whenever d->min > 0). */
static void test_int_minimum_message_names_bound(void **state)
{
    (void)state;
    kx_config_t c;
    kx_config_defaults(&c, "development");
    char err[512];
    set_refused(&c, "LUA_MEMORY_LIMIT_MB", "8", err, sizeof err);
    assert_non_null(strstr(err, "16"));
    kx_config_free(&c);
}

/* Every setting survives get_string → set → get_string unchanged (the Lua view of the config
 * round-trips). */
static void test_get_string_round_trip(void **state)
{
    (void)state;
    kx_config_t c;
    finished(&c, "production");
    for (const kx_config_desc_t *d = kx_config_descs(); d->key; d++) {
        char a[1024], b[1024], err[512];
        kx_config_get_string(&c, d, a, sizeof a);
        if (kx_config_set(&c, d, a, d->key, err, sizeof err) != KX_OK)
            fail_msg("%s: own value \"%s\" refused: %s", d->key, a, err);
        kx_config_get_string(&c, d, b, sizeof b);
        assert_string_equal(a, b);
    }
    char v[64];
    kx_config_get_string(&c, desc("WEB_SERVER_PORT"), v, sizeof v);
    assert_string_equal(v, "8080");
    kx_config_get_string(&c, desc("SESSION_COOKIE_SAME_SITE"), v, sizeof v);
    assert_string_equal(v, "Strict");
    kx_config_get_string(&c, desc("WEB_SERVER_INCLUDE_STACK_IN_ERRORS"), v, sizeof v);
    assert_string_equal(v, "false");
    kx_config_get_string(&c, desc("WEB_SERVER_TLS_CERT"), v, sizeof v); /* unset → "" */
    assert_string_equal(v, "");
    kx_config_free(&c);
}

static void test_descriptor_table(void **state)
{
    (void)state;
    int n = 0;
    for (const kx_config_desc_t *d = kx_config_descs(); d->key; d++, n++) {
        assert_non_null(d->env);
        assert_true(d->offset < sizeof(kx_config_t));
        /* Keys and variable names are unique. */
        for (const kx_config_desc_t *e = d + 1; e->key; e++) {
            if (strcmp(d->key, e->key) == 0) fail_msg("duplicate key %s", d->key);
            if (strcmp(d->env, e->env) == 0) fail_msg("duplicate env %s", d->env);
        }
    }
    assert_true(n > 40);
}

/* ---- kx_config_apply_env ------------------------------------------------------------------ */

static void test_env_plain(void **state)
{
    (void)state;
    kx_config_t c;
    kx_config_defaults(&c, "test");
    char err[512] = "";
    setenv("WEB_SERVER_PORT", "1111", 1);
    setenv("LOG_JSON", "true", 1);
    setenv("PROCESS_NAME", "from-env", 1);
    assert_int_equal(kx_config_apply_env(&c, err, sizeof err), KX_OK);
    assert_int_equal(c.web_port, 1111);
    assert_true(c.log_json);
    assert_string_equal(c.process_name, "from-env");
    /* Untouched settings keep their defaults. */
    assert_int_equal(c.max_connections, 10000);
    kx_config_free(&c);
}

static void test_env_suffix_beats_plain(void **state)
{
    (void)state;
    kx_config_t c;
    char err[512] = "";
    setenv("WEB_SERVER_PORT", "1111", 1);
    setenv("WEB_SERVER_PORT_TEST", "2222", 1);
    setenv("WEB_SERVER_PORT_PRODUCTION", "3333", 1);
    setenv("WEB_SERVER_PORT_DEVELOPMENT", "4444", 1);

    kx_config_defaults(&c, "test");
    assert_int_equal(kx_config_apply_env(&c, err, sizeof err), KX_OK);
    assert_int_equal(c.web_port, 2222);
    kx_config_free(&c);

    kx_config_defaults(&c, "production");
    assert_int_equal(kx_config_apply_env(&c, err, sizeof err), KX_OK);
    assert_int_equal(c.web_port, 3333);
    kx_config_free(&c);

    kx_config_defaults(&c, NULL);
    assert_int_equal(kx_config_apply_env(&c, err, sizeof err), KX_OK);
    assert_int_equal(c.web_port, 4444);
    kx_config_free(&c);

    /* An env with no suffixed variable falls back to the plain one. */
    kx_config_defaults(&c, "staging");
    assert_int_equal(kx_config_apply_env(&c, err, sizeof err), KX_OK);
    assert_int_equal(c.web_port, 1111);
    kx_config_free(&c);

    /* The suffix is the upper-cased NODE_ENV; a lower-case suffix is not read. */
    unsetenv("WEB_SERVER_PORT_TEST");
    setenv("WEB_SERVER_PORT_test", "5555", 1);
    kx_config_defaults(&c, "test");
    assert_int_equal(kx_config_apply_env(&c, err, sizeof err), KX_OK);
    assert_int_equal(c.web_port, 1111);
    unsetenv("WEB_SERVER_PORT_test");
    kx_config_free(&c);
}

static void test_env_empty_suffix_ignored(void **state)
{
    (void)state;
    kx_config_t c;
    char err[512] = "";
    setenv("WEB_SERVER_PORT", "1111", 1);
    setenv("WEB_SERVER_PORT_TEST", "", 1);
    setenv("WEB_SECURITY_CSP", "default-src 'none'", 1);
    setenv("WEB_SECURITY_CSP_TEST", "", 1);
    kx_config_defaults(&c, "test");
    assert_int_equal(kx_config_apply_env(&c, err, sizeof err), KX_OK);
    assert_int_equal(c.web_port, 1111);
    assert_string_equal(c.sec_csp, "default-src 'none'");
    kx_config_free(&c);

    /* Empty suffixed and no plain: the default stays. */
    unsetenv("WEB_SERVER_PORT");
    kx_config_defaults(&c, "test");
    assert_int_equal(kx_config_apply_env(&c, err, sizeof err), KX_OK);
    assert_int_equal(c.web_port, 8080);
    kx_config_free(&c);
}

static void test_env_empty_plain_string_is_empty(void **state)
{
    (void)state;
    kx_config_t c;
    char err[512] = "";
    setenv("WEB_SECURITY_CSP", "", 1);
    setenv("WEB_SECURITY_HSTS", "", 1);
    kx_config_defaults(&c, "test");
    assert_true(strlen(c.sec_csp) > 0);
    assert_int_equal(kx_config_apply_env(&c, err, sizeof err), KX_OK);
    assert_non_null(c.sec_csp);
    assert_string_equal(c.sec_csp, "");
    assert_string_equal(c.sec_hsts, "");
    kx_config_free(&c);
}

static void test_env_empty_plain_int_or_bool_refused(void **state)
{
    (void)state;
    static const char *vars[] = { "WEB_SERVER_PORT", "WEB_SERVER_MAX_CONNECTIONS", "LOG_JSON",
                                  "LOG_LEVEL",       "SESSION_COOKIE_SAME_SITE",   "WEB_SERVER_WORKERS" };
    for (size_t i = 0; i < KX_ARRAY_LEN(vars); i++) {
        env_clean();
        kx_config_t c;
        char err[512] = "";
        setenv(vars[i], "", 1);
        kx_config_defaults(&c, "test");
        assert_int_equal(kx_config_apply_env(&c, err, sizeof err), KX_EINVAL);
        if (!strstr(err, vars[i])) fail_msg("message does not name %s: %s", vars[i], err);
        assert_non_null(strstr(err, "\"\""));
        kx_config_free(&c);
    }
}

/* The message names the variable actually read (the suffixed one when it won). */
static void test_env_error_names_suffixed_var(void **state)
{
    (void)state;
    kx_config_t c;
    char err[512] = "";
    setenv("WEB_SERVER_PORT", "1111", 1);
    setenv("WEB_SERVER_PORT_TEST", "12ab", 1);
    kx_config_defaults(&c, "test");
    assert_int_equal(kx_config_apply_env(&c, err, sizeof err), KX_EINVAL);
    assert_non_null(strstr(err, "WEB_SERVER_PORT_TEST"));
    assert_non_null(strstr(err, "\"12ab\""));
    kx_config_free(&c);

    env_clean();
    setenv("WEB_SERVER_MAX_CONNECTIONS", "0", 1);
    kx_config_defaults(&c, "production");
    assert_int_equal(kx_config_apply_env(&c, err, sizeof err), KX_EINVAL);
    assert_non_null(strstr(err, "WEB_SERVER_MAX_CONNECTIONS"));
    assert_null(strstr(err, "WEB_SERVER_MAX_CONNECTIONS_"));
    assert_non_null(strstr(err, "\"0\""));
    kx_config_free(&c);
}

/* The full boot order: defaults → env → finish; env-provided origins are validated. */
static void test_env_then_finish(void **state)
{
    (void)state;
    kx_config_t c;
    char err[512] = "";
    setenv("WEB_SERVER_ALLOWED_ORIGINS_PRODUCTION", "https://a.example, https://b.example", 1);
    setenv("WEB_SERVER_HOST", "0.0.0.0", 1);
    setenv("WEB_SERVER_PORT", "9000", 1);
    setenv("WEB_SERVER_API_ROUTE", "/v1/", 1);
    kx_config_defaults(&c, "production");
    assert_int_equal(kx_config_apply_env(&c, err, sizeof err), KX_OK);
    assert_int_equal(kx_config_finish(&c, err, sizeof err), KX_OK);
    assert_false(c.origins_any);
    assert_int_equal(c.n_origins, 2);
    assert_string_equal(c.origins[0], "https://a.example");
    assert_string_equal(c.origins[1], "https://b.example");
    assert_string_equal(c.api_route, "/v1");
    assert_string_equal(c.application_url, "http://0.0.0.0:9000");
    kx_config_free(&c);

    env_clean();
    setenv("WEB_SERVER_ALLOWED_ORIGINS", "https://a.example/", 1);
    kx_config_defaults(&c, "production");
    assert_int_equal(kx_config_apply_env(&c, err, sizeof err), KX_OK);
    finish_refused(&c, err, sizeof err);
    assert_non_null(strstr(err, "WEB_SERVER_ALLOWED_ORIGINS"));
    assert_non_null(strstr(err, "\"https://a.example/\""));
    kx_config_free(&c);
}

/* ---- kx_config_finish --------------------------------------------------------------------- */

static void test_finish_samesite_none_needs_secure(void **state)
{
    (void)state;
    kx_config_t c;
    char err[512];
    kx_config_defaults(&c, "development");
    set_ok(&c, "SESSION_COOKIE_SAME_SITE", "None");
    finish_refused(&c, err, sizeof err);
    assert_non_null(strstr(err, "SESSION_COOKIE_SECURE"));
    set_ok(&c, "SESSION_COOKIE_SECURE", "true");
    assert_int_equal(kx_config_finish(&c, err, sizeof err), KX_OK);
    kx_config_free(&c);

    /* Strict and Lax do not need Secure. */
    kx_config_defaults(&c, "development");
    set_ok(&c, "SESSION_COOKIE_SAME_SITE", "Lax");
    assert_int_equal(kx_config_finish(&c, err, sizeof err), KX_OK);
    kx_config_free(&c);
}

static void test_finish_tls_pair(void **state)
{
    (void)state;
    kx_config_t c;
    char err[512];

    kx_config_defaults(&c, "development");
    set_ok(&c, "WEB_SERVER_TLS_CERT", "/etc/cert.pem");
    finish_refused(&c, err, sizeof err);
    assert_non_null(strstr(err, "WEB_SERVER_TLS_KEY"));
    set_ok(&c, "WEB_SERVER_TLS_KEY", "");
    finish_refused(&c, err, sizeof err);
    set_ok(&c, "WEB_SERVER_TLS_KEY", "/etc/key.pem");
    assert_int_equal(kx_config_finish(&c, err, sizeof err), KX_OK);
    kx_config_free(&c);

    kx_config_defaults(&c, "development");
    set_ok(&c, "WEB_SERVER_TLS_KEY", "/etc/key.pem");
    finish_refused(&c, err, sizeof err);
    assert_non_null(strstr(err, "WEB_SERVER_TLS_CERT"));
    kx_config_free(&c);

    /* Both empty: TLS off, fine. */
    kx_config_defaults(&c, "development");
    set_ok(&c, "WEB_SERVER_TLS_KEY", "");
    set_ok(&c, "WEB_SERVER_TLS_CERT", "");
    assert_int_equal(kx_config_finish(&c, err, sizeof err), KX_OK);
    kx_config_free(&c);
}

static void test_finish_api_route(void **state)
{
    (void)state;
    static const char *bad[] = { "api",          "",       "/",         "/a b",
                                 "/api\"x",      "/api?x", "/api#x",    "/api%2F",
                                 "/api\r\nX: y", "/ap*",   "/\xc3\xa9", "api/" };
    for (size_t i = 0; i < KX_ARRAY_LEN(bad); i++) {
        kx_config_t c;
        char err[512];
        kx_config_defaults(&c, "development");
        set_ok(&c, "WEB_SERVER_API_ROUTE", bad[i]);
        err[0] = '\0';
        if (kx_config_finish(&c, err, sizeof err) != KX_EINVAL) fail_msg("\"%s\" accepted", bad[i]);
        assert_non_null(strstr(err, "WEB_SERVER_API_ROUTE"));
        kx_config_free(&c);
    }
    static const struct {
        const char *in, *out;
    } ok[] = {
        { "/api", "/api" },        { "/api/", "/api" },        { "/v1/api", "/v1/api" },
        { "/v1/api/", "/v1/api" }, { "/a-b_c.d", "/a-b_c.d" },
    };
    for (size_t i = 0; i < KX_ARRAY_LEN(ok); i++) {
        kx_config_t c;
        char err[512] = "";
        kx_config_defaults(&c, "development");
        set_ok(&c, "WEB_SERVER_API_ROUTE", ok[i].in);
        if (kx_config_finish(&c, err, sizeof err) != KX_OK) fail_msg("\"%s\" refused: %s", ok[i].in, err);
        assert_string_equal(c.api_route, ok[i].out);
        kx_config_free(&c);
    }
}

/* BUG: WEB_SERVER_API_ROUTE="//" passes validation ("//" is not "/") and is then normalised by
 * dropping its trailing slash to "/" — exactly the value finish refuses. Expected: KX_EINVAL
 * (or at least never api_route == "/"); got: KX_OK with api_route "/". Likewise "/api//"
 * becomes "/api/" (one slash dropped), which is not the normalised form. */
static void test_finish_api_route_double_slash(void **state)
{
    (void)state;
    kx_config_t c;
    char err[512] = "";
    kx_config_defaults(&c, "development");
    set_ok(&c, "WEB_SERVER_API_ROUTE", "//");
    int rc = kx_config_finish(&c, err, sizeof err);
    assert_int_equal(rc, KX_EINVAL);
    assert_string_not_equal(c.api_route, "/");
    kx_config_free(&c);
}

static void test_finish_application_url(void **state)
{
    (void)state;
    kx_config_t c;
    char err[512];

    finished(&c, "development");
    assert_string_equal(c.application_url, "http://localhost:8080");
    kx_config_free(&c);

    kx_config_defaults(&c, "development");
    set_ok(&c, "WEB_SERVER_HOST", "example.internal");
    set_ok(&c, "WEB_SERVER_PORT", "1234");
    assert_int_equal(kx_config_finish(&c, err, sizeof err), KX_OK);
    assert_string_equal(c.application_url, "http://example.internal:1234");
    kx_config_free(&c);

    /* An empty value counts as unset. */
    kx_config_defaults(&c, "development");
    set_ok(&c, "APPLICATION_URL", "");
    assert_int_equal(kx_config_finish(&c, err, sizeof err), KX_OK);
    assert_string_equal(c.application_url, "http://localhost:8080");
    kx_config_free(&c);

    /* A configured one is kept verbatim. */
    kx_config_defaults(&c, "development");
    set_ok(&c, "APPLICATION_URL", "https://app.example.com");
    set_ok(&c, "WEB_SERVER_PORT", "1234");
    assert_int_equal(kx_config_finish(&c, err, sizeof err), KX_OK);
    assert_string_equal(c.application_url, "https://app.example.com");
    kx_config_free(&c);
}

static void test_finish_port_range(void **state)
{
    (void)state;
    kx_config_t c;
    char err[512];
    kx_config_defaults(&c, "development");
    set_ok(&c, "WEB_SERVER_PORT", "65536");
    finish_refused(&c, err, sizeof err);
    assert_non_null(strstr(err, "WEB_SERVER_PORT"));
    assert_non_null(strstr(err, "65536"));
    set_ok(&c, "WEB_SERVER_PORT", "65535");
    assert_int_equal(kx_config_finish(&c, err, sizeof err), KX_OK);
    kx_config_free(&c);
}

/* TASK_QUEUES names become Redis keys: "*" or a list of names, nothing else; TASK_PROCESSORS
 * has a ceiling. kx_config_queue_name_valid is also what Lua checks queue names with. */
static void test_finish_task_settings(void **state)
{
    (void)state;
    const char *good[] = { "*", "default", "high, default ,low", "a.b:c-d_e" };
    const char *bad[] = { "", "a b", "a,,b", "a,*", "q{x}", "a\r\nb", "default,", "\x1b" };
    char err[512];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        kx_config_t c;
        kx_config_defaults(&c, "development");
        set_ok(&c, "TASK_QUEUES", good[i]);
        assert_int_equal(kx_config_finish(&c, err, sizeof err), KX_OK);
        kx_config_free(&c);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kx_config_t c;
        kx_config_defaults(&c, "development");
        set_ok(&c, "TASK_QUEUES", bad[i]);
        finish_refused(&c, err, sizeof err);
        assert_non_null(strstr(err, "TASK_QUEUES"));
        kx_config_free(&c);
    }
    kx_config_t c;
    kx_config_defaults(&c, "development");
    set_ok(&c, "TASK_PROCESSORS", "65");
    finish_refused(&c, err, sizeof err);
    assert_non_null(strstr(err, "TASK_PROCESSORS"));
    kx_config_free(&c);
    char name[KX_MAX_QUEUE_NAME + 2];
    memset(name, 'q', sizeof name);
    assert_true(kx_config_queue_name_valid(name, KX_MAX_QUEUE_NAME));
    assert_false(kx_config_queue_name_valid(name, KX_MAX_QUEUE_NAME + 1));
    assert_false(kx_config_queue_name_valid("a\0b", 3));
}

/* finish may run again (main.c may re-finish after config.lua): no leak, same result. */
static void test_finish_twice(void **state)
{
    (void)state;
    kx_config_t c;
    char err[512];
    kx_config_defaults(&c, "development");
    set_ok(&c, "WEB_SERVER_ALLOWED_ORIGINS", "https://a,https://b");
    assert_int_equal(kx_config_finish(&c, err, sizeof err), KX_OK);
    assert_int_equal(kx_config_finish(&c, err, sizeof err), KX_OK);
    assert_int_equal(c.n_origins, 2);
    assert_string_equal(c.origins[1], "https://b");
    /* A now-invalid list leaves no stale entries behind. */
    set_ok(&c, "WEB_SERVER_ALLOWED_ORIGINS", "https://a,null");
    finish_refused(&c, err, sizeof err);
    assert_int_equal(c.n_origins, 0);
    for (int i = 0; i < KX_MAX_ORIGINS; i++) assert_null(c.origins[i]);
    kx_config_free(&c);
}

/* Settings that would run wrong rather than fail: refused at finish, naming the variable. */
static void finish_refuses(const char *node_env, const char *env, const char *value, const char *needle)
{
    kx_config_t c;
    kx_config_defaults(&c, node_env);
    if (env) set_ok(&c, env, value);
    char err[512] = "";
    if (kx_config_finish(&c, err, sizeof err) == KX_OK)
        fail_msg("%s=\"%s\" accepted", env ? env : "NODE_ENV", value);
    if (!strstr(err, needle)) fail_msg("error does not name %s: %s", needle, err);
    kx_config_free(&c);
}

static void test_finish_refuses_unsafe_settings(void **state)
{
    (void)state;
    finish_refuses("prod", NULL, "prod", "NODE_ENV");
    finish_refuses("Production", NULL, "Production", "NODE_ENV");
    finish_refuses("test", "WEB_SECURITY_CSP", "default-src 'self'\r\nX-Injected: 1", "WEB_SECURITY_CSP");
    finish_refuses("test", "WEB_SECURITY_HSTS", "max-age=1\n", "WEB_SECURITY_HSTS");
    finish_refuses("test", "WEB_SECURITY_REFERRER_POLICY", "a\x01", "WEB_SECURITY_REFERRER_POLICY");
    finish_refuses("test", "PROCESS_NAME", "x\ry", "PROCESS_NAME");
    finish_refuses("test", "WEB_CORRELATION_ID_HEADER", "X-Id\r\nX-Evil", "WEB_CORRELATION_ID_HEADER");
    finish_refuses("test", "WEB_CORRELATION_ID_HEADER", "X Id", "WEB_CORRELATION_ID_HEADER");
    finish_refuses("test", "SESSION_COOKIE_NAME", "a;b=c", "SESSION_COOKIE_NAME");
    finish_refuses("test", "SESSION_COOKIE_NAME", "", "SESSION_COOKIE_NAME");
    finish_refuses("test", "SESSION_COOKIE_NAME", "sid ", "SESSION_COOKIE_NAME");
    /* What stays fine: a tab in a value, an empty security header (omits it), an empty
     * correlation header (disables it), an unusual but valid cookie name. */
    kx_config_t c;
    kx_config_defaults(&c, "production");
    set_ok(&c, "WEB_SECURITY_CSP", "default-src\t'self'");
    set_ok(&c, "WEB_SECURITY_HSTS", "");
    set_ok(&c, "WEB_CORRELATION_ID_HEADER", "");
    set_ok(&c, "SESSION_COOKIE_NAME", "__Host-sid.v2");
    char err[512] = "";
    if (kx_config_finish(&c, err, sizeof err) != KX_OK) fail_msg("refused: %s", err);
    kx_config_free(&c);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_parse_bool),
        T(test_parse_int),
        T(test_parse_origins_valid),
        T(test_parse_origins_star),
        T(test_parse_origins_refused),
        T(test_parse_origins_limit),
        T(test_parse_origins_fail_leaves_unwritten_slots),
        T(test_defaults_per_env),
        T(test_defaults_are_secure_and_finish),
        T(test_every_row_default_parses),
        T(test_finish_refuses_unsafe_settings),
        T(test_env_rules_have_a_plain_default),
        T(test_set_messages),
        T(test_log_format),
        T(test_set_message_truncated),
        T(test_int_minimums),
        T(test_int_minimum_message_names_bound),
        T(test_get_string_round_trip),
        T(test_descriptor_table),
        T(test_env_plain),
        T(test_env_suffix_beats_plain),
        T(test_env_empty_suffix_ignored),
        T(test_env_empty_plain_string_is_empty),
        T(test_env_empty_plain_int_or_bool_refused),
        T(test_env_error_names_suffixed_var),
        T(test_env_then_finish),
        T(test_finish_samesite_none_needs_secure),
        T(test_finish_tls_pair),
        T(test_finish_api_route),
        T(test_finish_api_route_double_slash),
        T(test_finish_application_url),
        T(test_finish_port_range),
        T(test_finish_twice),
        T(test_finish_task_settings),
    };
#undef T
    (void)test_parse_origins_fail_leaves_unwritten_slots;
    (void)test_int_minimum_message_names_bound;
    (void)test_finish_api_route_double_slash;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
