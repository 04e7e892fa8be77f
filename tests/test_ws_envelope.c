/* test_ws_envelope.c — the simple WebSocket envelope (ws_envelope.c): the shapes it takes and
 * what it reads from them (strings, messageId as string or number with -0 kept, the params
 * text), each reason it says no, JSON whitespace around every token, long and deep inputs,
 * and every prefix of a taken message refused. Every input is scanned from a heap copy of its
 * exact length (no NUL after it), so an out-of-bounds read fails under ASan (make test-asan).
 * Then core.ws_envelope (lua_api_ws.c) in a real LuaJIT state against lua/keryx/json.lua's
 * decode with the real lua-cjson, on the fixed and 20000 generated messages of
 * spec/unit/ws_envelope_cases.lua. Runs from the repository root. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ws_envelope.h"
#include "lua_api.h"
#include "lua_cases.h"

/* Scans a heap copy of s[0..n) of exactly n bytes; the spans found are moved to point into s
 * (same offsets), as the copy is freed. */
static bool scan_n(const char *s, size_t n, kx_ws_envelope_t *e)
{
    char *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, s, n);
    bool ok = kx_ws_envelope_scan(copy, n, e);
    if (ok) {
        kx_ws_span_t *sp[] = { &e->type, &e->action, &e->channel, &e->params, &e->mid_string };
        for (size_t i = 0; i < KX_ARRAY_LEN(sp); i++)
            if (sp[i]->p) sp[i]->p = s + (sp[i]->p - copy);
    }
    free(copy);
    return ok;
}

static bool scan(const char *s, kx_ws_envelope_t *e)
{
    return scan_n(s, strlen(s), e);
}

static void span_is(kx_ws_span_t sp, const char *want)
{
    if (!want) {
        assert_null(sp.p);
        return;
    }
    assert_non_null(sp.p);
    assert_int_equal(sp.len, strlen(want));
    assert_memory_equal(sp.p, want, sp.len);
}

static void test_takes_simple_envelopes(void **state)
{
    (void)state;
    kx_ws_envelope_t e;
    assert_true(scan("{\"messageType\":\"action\",\"action\":\"status\",\"messageId\":1}", &e));
    span_is(e.type, "action");
    span_is(e.action, "status");
    span_is(e.channel, NULL);
    span_is(e.params, NULL);
    assert_int_equal(e.mid, KX_WS_MID_NUMBER);
    assert_true(e.mid_number == 1.0);

    assert_true(scan("{\"channel\":\"messages\",\"messageId\":\"m-1\",\"messageType\":\"subscribe\"}", &e));
    span_is(e.type, "subscribe");
    span_is(e.action, NULL);
    span_is(e.channel, "messages");
    assert_int_equal(e.mid, KX_WS_MID_STRING);
    span_is(e.mid_string, "m-1");

    assert_true(scan("{\"messageType\":\"\"}", &e));
    span_is(e.type, "");
    assert_int_equal(e.mid, KX_WS_MID_NONE);

    /* the params object as text, whatever it holds; strings with brackets and escapes inside */
    const char *p = "{\"a\":[1,{\"b\":\"}]\\\"\\\\\"}],\"c\":null,\"d\":\"\\u00e9\"}";
    char msg[256];
    snprintf(msg, sizeof msg, "{\"params\":%s,\"messageType\":\"action\",\"action\":\"echo\"}", p);
    assert_true(scan(msg, &e));
    span_is(e.params, p);
    span_is(e.action, "echo");
    assert_true(scan("{\"messageType\":\"action\",\"params\":{}}", &e));
    span_is(e.params, "{}");

    /* bytes >= 0x20 other than '"' and '\\' are taken as they are (UTF-8 or not) */
    assert_true(scan("{\"messageType\":\"\xc3\xa9\xff\x7f /{}[]:,\"}", &e));
    span_is(e.type, "\xc3\xa9\xff\x7f /{}[]:,");
}

static void test_message_id_numbers(void **state)
{
    (void)state;
    kx_ws_envelope_t e;
    static const struct {
        const char *text;
        double want;
    } ok[] = {
        { "0", 0 },
        { "7", 7 },
        { "-1", -1 },
        { "42", 42 },
        { "123456789012345", 123456789012345.0 },
        { "-999999999999999", -999999999999999.0 },
        { "100000000000000", 1e14 },
    };
    char msg[128];
    for (size_t i = 0; i < KX_ARRAY_LEN(ok); i++) {
        snprintf(msg, sizeof msg, "{\"messageType\":\"action\",\"messageId\":%s}", ok[i].text);
        assert_true(scan(msg, &e));
        assert_int_equal(e.mid, KX_WS_MID_NUMBER);
        assert_true(e.mid_number == ok[i].want);
        assert_int_equal(signbit(e.mid_number) != 0, ok[i].want < 0);
    }
    /* -0 is -0.0, as strtod reads it */
    assert_true(scan("{\"messageType\":\"action\",\"messageId\":-0}", &e));
    assert_true(e.mid_number == 0 && signbit(e.mid_number));
    /* followed by whitespace, then the rest */
    assert_true(scan("{\"messageId\":12 \t\r\n,\"messageType\":\"action\"}", &e));
    assert_true(e.mid_number == 12);

    static const char *bad[] = { "1000000000000000",
                                 "-1000000000000000",
                                 "01",
                                 "00",
                                 "-01",
                                 "-",
                                 "+1",
                                 "1.0",
                                 "1.",
                                 "1e3",
                                 "1E3",
                                 "1x",
                                 "0x10",
                                 "Infinity",
                                 "NaN",
                                 "null",
                                 "true",
                                 "[1]",
                                 "{}",
                                 "\"a\\\"\"",
                                 "12345678901234567890" };
    for (size_t i = 0; i < KX_ARRAY_LEN(bad); i++) {
        snprintf(msg, sizeof msg, "{\"messageType\":\"action\",\"messageId\":%s}", bad[i]);
        if (scan(msg, &e)) fail_msg("took messageId %s", bad[i]);
    }
    /* a number last in the text (no '}' after it) */
    assert_false(scan("{\"messageType\":\"action\",\"messageId\":1", &e));
}

static void test_whitespace(void **state)
{
    (void)state;
    kx_ws_envelope_t e;
    assert_true(
        scan(" \t\r\n{ \t\r\n\"messageType\" \t\r\n: \t\r\n\"action\" \t\r\n, \t\r\n\"params\"\n:\n{ }\n,"
             "\"messageId\" : 5 \t\r\n} \t\r\n",
             &e));
    span_is(e.type, "action");
    span_is(e.params, "{ }");
    assert_true(e.mid_number == 5);
    /* only those four: form feed, vertical tab, NUL, a BOM are not JSON whitespace */
    static const char *bad[] = { "\f{\"messageType\":\"a\"}", "{\"messageType\":\"a\"}\f",
                                 "{\v\"messageType\":\"a\"}", "\xef\xbb\xbf{\"messageType\":\"a\"}" };
    for (size_t i = 0; i < KX_ARRAY_LEN(bad); i++) assert_false(scan(bad[i], &e));
    static const char nul_after[] = "{\"messageType\":\"a\"}\0";
    assert_false(scan_n(nul_after, sizeof nul_after - 1, &e));
    static const char nul_before[] = "\0{\"messageType\":\"a\"}";
    assert_false(scan_n(nul_before, sizeof nul_before - 1, &e));
}

static void test_says_no(void **state)
{
    (void)state;
    kx_ws_envelope_t e;
    static const char *bad[] = {
        "",
        " ",
        "{",
        "}",
        "{}",
        "[]",
        "\"x\"",
        "1",
        "null",
        "{ }",
        /* messageType absent */
        "{\"action\":\"status\"}",
        /* a foreign key, a repeated key, a key with an escape */
        "{\"messageType\":\"action\",\"other\":1}",
        "{\"messageType\":\"action\",\"messageType\":\"action\"}",
        "{\"messageType\":\"action\",\"params\":{},\"params\":{}}",
        "{\"message\\u0054ype\":\"action\"}",
        "{\"messageTyp\":\"action\"}",
        "{\"messageTypes\":\"action\"}",
        /* escapes and control bytes in strings */
        "{\"messageType\":\"act\\u0069on\"}",
        "{\"messageType\":\"a\\\"b\"}",
        "{\"messageType\":\"a\\\\\"}",
        "{\"messageType\":\"a\tb\"}",
        "{\"messageType\":\"a\x01\"}",
        /* strings expected */
        "{\"messageType\":1}",
        "{\"messageType\":null}",
        "{\"messageType\":\"action\",\"action\":null}",
        "{\"messageType\":\"action\",\"action\":[\"x\"]}",
        "{\"messageType\":\"action\",\"channel\":{}}",
        "{\"messageType\":\"action\",\"channel\":true}",
        /* params: only an object */
        "{\"messageType\":\"action\",\"params\":null}",
        "{\"messageType\":\"action\",\"params\":[]}",
        "{\"messageType\":\"action\",\"params\":\"{}\"}",
        "{\"messageType\":\"action\",\"params\":1}",
        /* brackets that do not match, strings that do not end */
        "{\"messageType\":\"action\",\"params\":{\"a\":[}]}",
        "{\"messageType\":\"action\",\"params\":{\"a\":\"}",
        "{\"messageType\":\"action\",\"params\":{\"a\":\"\\",
        "{\"messageType\":\"action\",\"params\":{\"a\":1}",
        "{\"messageType\":\"action\",\"params\":{{{",
        /* syntax around the members */
        "{\"messageType\":\"action\",}",
        "{,\"messageType\":\"action\"}",
        "{\"messageType\":\"action\",,\"action\":\"x\"}",
        "{\"messageType\" \"action\"}",
        "{\"messageType\"::\"action\"}",
        "{\"messageType\":\"action\" \"action\":\"x\"}",
        "{messageType:\"action\"}",
        "{'messageType':'action'}",
        "{\"messageType\":\"action\"",
        "{\"messageType\":\"action\"}}",
        "{\"messageType\":\"action\"}x",
        "{\"messageType\":\"action\"} {}",
        "{\"messageType\":\"action\",\"action\":",
        "{\"messageType\"",
        "{\"messageType\":",
        "{\"messageType\":\"",
    };
    for (size_t i = 0; i < KX_ARRAY_LEN(bad); i++) {
        if (scan(bad[i], &e)) fail_msg("took %s", bad[i]);
    }
    assert_false(kx_ws_envelope_scan(NULL, 0, &e));
    assert_false(kx_ws_envelope_scan("{}", 2, NULL));
}

static void test_nul_bytes(void **state)
{
    (void)state;
    kx_ws_envelope_t e;
    static const char in_string[] = "{\"messageType\":\"a\0b\"}";
    assert_false(scan_n(in_string, sizeof in_string - 1, &e));
    static const char in_params[] = "{\"messageType\":\"a\",\"params\":{\"a\":\"b\0\"}}";
    assert_false(scan_n(in_params, sizeof in_params - 1, &e));
    static const char escaped[] = "{\"messageType\":\"a\",\"params\":{\"a\":\"\\\0\"}}";
    assert_false(scan_n(escaped, sizeof escaped - 1, &e));
    static const char between[] = "{\"messageType\":\"a\",\"params\":{\"a\":1\0}}";
    assert_false(scan_n(between, sizeof between - 1, &e));
}

/* Every proper prefix of a taken message is refused, and reads nothing past its end. */
static void test_prefixes(void **state)
{
    (void)state;
    kx_ws_envelope_t e;
    static const char *taken[] = {
        " {\"messageType\" : \"action\",\"action\":\"status\",\"messageId\":123,\"channel\":\"c\","
        "\"params\":{\"a\":[1,\"]\\\"\"],\"b\":{}}} ",
        "{\"params\":{},\"messageId\":\"x\",\"messageType\":\"subscribe\"}",
        "{\"messageType\":\"a\",\"messageId\":-0}",
    };
    for (size_t t = 0; t < KX_ARRAY_LEN(taken); t++) {
        size_t n = strlen(taken[t]);
        assert_true(scan_n(taken[t], n, &e));
        size_t last_ws = n;
        while (last_ws > 0 && taken[t][last_ws - 1] == ' ') last_ws--;
        for (size_t k = 0; k < last_ws; k++) {
            if (scan_n(taken[t], k, &e)) fail_msg("took the first %zu bytes of %s", k, taken[t]);
        }
    }
}

static void test_long_and_deep(void **state)
{
    (void)state;
    kx_ws_envelope_t e;
    /* a 1 MiB string value, 1 MiB of whitespace */
    size_t big = 1u << 20;
    char *s = malloc(big + 64);
    assert_non_null(s);
    size_t n = (size_t)sprintf(s, "{\"messageType\":\"");
    memset(s + n, 'x', big);
    n += big;
    n += (size_t)sprintf(s + n, "\"}");
    assert_true(scan_n(s, n, &e));
    assert_int_equal(e.type.len, big);
    n = (size_t)sprintf(s, "{\"messageType\":\"a\"");
    memset(s + n, ' ', big);
    n += big;
    s[n++] = '}';
    assert_true(scan_n(s, n, &e));
    free(s);

    /* params nested exactly KX_WS_ENVELOPE_MAX_DEPTH deep is taken, one more is not */
    char deep[1024];
    for (int d = KX_WS_ENVELOPE_MAX_DEPTH; d <= KX_WS_ENVELOPE_MAX_DEPTH + 1; d++) {
        n = (size_t)sprintf(deep, "{\"messageType\":\"a\",\"params\":");
        for (int i = 0; i < d - 1; i++) n += (size_t)sprintf(deep + n, "{\"a\":");
        n += (size_t)sprintf(deep + n, "[]");
        for (int i = 0; i < d - 1; i++) deep[n++] = '}';
        deep[n++] = '}';
        /* d levels: d - 1 objects around the array, so the array is level d */
        assert_int_equal(scan_n(deep, n, &e), d <= KX_WS_ENVELOPE_MAX_DEPTH);
    }
}

static const char driver[] = "package.path = 'lua/?.lua;spec/unit/?.lua;' .. package.path\n"
                             "local json = require 'keryx.json'\n"
                             "local core = require 'keryx.core'\n"
                             "local cases = dofile 'spec/unit/ws_envelope_cases.lua'\n"
                             "local r = cases.compare(json, core.ws_envelope, 20000)\n"
                             "assert(select('#', core.ws_envelope('{}')) == 0)\n"
                             "assert(select('#', core.ws_envelope(42)) == 0)\n"
                             "return r.checked, r.taken, table.concat(r.mismatches, '\\n')\n";

static void test_same_fields_as_json_decode(void **state)
{
    (void)state;
    long checked, taken;
    run_lua_cases(kx_lua_open_ws, driver, &checked, &taken);
    /* every message was compared, and a good share of them took the fast path */
    assert_true(checked > 20000);
    assert_true(taken > checked / 5);
    print_message("%ld messages compared, %ld read by the fast path\n", checked, taken);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_takes_simple_envelopes),
        cmocka_unit_test(test_message_id_numbers),
        cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_says_no),
        cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_long_and_deep),
        cmocka_unit_test(test_same_fields_as_json_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
