/* test_oauth.c — oauth.c: every redirect URI rule (accepted and refused forms, the message
 * naming the rule), PKCE S256 against the RFC 7636 Appendix B vector and every way a verifier
 * or challenge must fail, and the stored hash form of codes and tokens. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "oauth.h"
#include <stdio.h>
#include <string.h>

static const char *why_of(const char *uri)
{
    static char why[KX_OAUTH_ERR_CAP];
    why[0] = '\0';
    return kx_oauth_redirect_check(uri, strlen(uri), why, sizeof why) == KX_OK ? NULL : why;
}

static void refused_with(const char *uri, const char *rule)
{
    const char *why = why_of(uri);
    if (!why || strncmp(why, rule, strlen(rule)) != 0)
        fail_msg("%s: got %s, want %s", uri, why ? why : "OK", rule);
}

static void test_accepted(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "https://app.example.com/callback",
        "https://app.example.com:8443/cb?x=1&y=2",
        "http://localhost/cb",
        "http://localhost:3000/oauth/callback",
        "HTTP://LOCALHOST:1/cb",
        "http://127.0.0.1:8080/cb",
        "http://[::1]:9000/cb",
        "vscode://publisher.extension/callback",
        "com.example.app:/oauth2redirect",
        "cursor://anysphere.cursor-retrieval/oauth/callback",
    };
    for (size_t i = 0; i < KX_ARRAY_LEN(ok); i++)
        if (why_of(ok[i])) fail_msg("%s refused: %s", ok[i], why_of(ok[i]));
}

static void test_not_a_url(void **state)
{
    (void)state;
    refused_with("", "Invalid URI");
    refused_with("not a url", "Invalid URI");
    refused_with("/relative/path", "Invalid URI");
    refused_with("://no-scheme", "Invalid URI");
    refused_with("1http://x", "Invalid URI");
    refused_with("https:/one-slash", "Invalid URI");
    refused_with("https://", "Invalid URI");
    refused_with("https:///path", "Invalid URI");
    refused_with("https://host/with space", "Invalid URI");
    refused_with("https://host/\xc3\xa9", "Invalid URI");
    refused_with("https://host/\r\nX: y", "Invalid URI");
    char longer[KX_OAUTH_URI_MAX + 2];
    memset(longer, 'a', sizeof longer - 1);
    memcpy(longer, "https://h/", 10);
    longer[sizeof longer - 1] = '\0';
    refused_with(longer, "Invalid URI");
    /* An embedded NUL is not part of any URL. */
    char why[KX_OAUTH_ERR_CAP];
    assert_int_equal(kx_oauth_redirect_check("https://a\0b", 11, why, sizeof why), KX_EINVAL);
}

static void test_fragment_userinfo_scheme_https(void **state)
{
    (void)state;
    refused_with("https://app.example.com/cb#frag", "Redirect URI must not contain a fragment");
    refused_with("https://app.example.com/cb#", "Redirect URI must not contain a fragment");
    refused_with("vscode://ext/cb#x", "Redirect URI must not contain a fragment");
    refused_with("https://user:pw@app.example.com/cb", "Redirect URI must not contain userinfo");
    refused_with("https://user@app.example.com/cb", "Redirect URI must not contain userinfo");
    refused_with("http://localhost@evil.example/cb", "Redirect URI must not contain userinfo");
    refused_with("javascript:alert(1)", "Redirect URI scheme \"javascript:\" is not allowed");
    refused_with("JavaScript://x/%0aalert(1)", "Redirect URI scheme \"javascript:\" is not allowed");
    refused_with("data:text/html,hi", "Redirect URI scheme \"data:\" is not allowed");
    refused_with("vbscript:msgbox", "Redirect URI scheme \"vbscript:\" is not allowed");
    refused_with("file:///etc/passwd", "Redirect URI scheme \"file:\" is not allowed");
    refused_with("http://app.example.com/cb", "Redirect URI must use HTTPS for non-localhost URIs");
    refused_with("http://localhost.evil.example/cb", "Redirect URI must use HTTPS for non-localhost URIs");
    refused_with("http://127.0.0.2/cb", "Redirect URI must use HTTPS for non-localhost URIs");
    refused_with("http://[::2]/cb", "Redirect URI must use HTTPS for non-localhost URIs");
    /* The path after the host does not make a loopback host. */
    refused_with("http://evil.example/localhost", "Redirect URI must use HTTPS for non-localhost URIs");
}

static void test_why_never_overflows(void **state)
{
    (void)state;
    char why[8];
    assert_int_equal(kx_oauth_redirect_check("javascript:x", 12, why, sizeof why), KX_EINVAL);
    assert_int_equal(strlen(why), 7);
}

/* RFC 7636 Appendix B. */
#define RFC_VERIFIER "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
#define RFC_CHALLENGE "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

static bool pkce(const char *v, const char *c)
{
    return kx_oauth_pkce_s256_ok(v, strlen(v), c, strlen(c));
}

static void test_pkce(void **state)
{
    (void)state;
    assert_true(pkce(RFC_VERIFIER, RFC_CHALLENGE));
    assert_false(pkce(RFC_VERIFIER, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
    assert_false(pkce("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl", RFC_CHALLENGE));
    /* plain: the challenge equal to the verifier never verifies. */
    assert_false(pkce(RFC_VERIFIER, RFC_VERIFIER));
    assert_false(pkce(RFC_VERIFIER, ""));
    assert_false(pkce("", RFC_CHALLENGE));
    assert_false(pkce("short", RFC_CHALLENGE));
    char v[130];
    memset(v, 'a', 129);
    v[129] = '\0';
    assert_false(pkce(v, RFC_CHALLENGE)); /* 129 > 128 */
    assert_false(pkce("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjX!", RFC_CHALLENGE));
    assert_false(pkce(RFC_VERIFIER, RFC_CHALLENGE "="));
}

static void test_hash(void **state)
{
    (void)state;
    char out[KX_OAUTH_HASH_LEN + 1];
    assert_int_equal(kx_oauth_hash("", 0, out, sizeof out), KX_OK);
    assert_string_equal(out, "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
    assert_int_equal(kx_oauth_hash(RFC_VERIFIER, strlen(RFC_VERIFIER), out, sizeof out), KX_OK);
    assert_string_equal(out, RFC_CHALLENGE);
    assert_int_equal(kx_oauth_hash("x", 1, out, KX_OAUTH_HASH_LEN), KX_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_not_a_url),
        cmocka_unit_test(test_fragment_userinfo_scheme_https),
        cmocka_unit_test(test_why_never_overflows),
        cmocka_unit_test(test_pkce),
        cmocka_unit_test(test_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
