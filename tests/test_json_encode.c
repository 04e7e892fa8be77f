/* test_json_encode.c — core.json_encode (src/lua_api_json.c) against lua/keryx/json.lua's Lua
 * encoder, byte for byte, in a real LuaJIT state with the real lua-cjson: every fixed case and
 * 20000 generated values of spec/unit/json_cases.lua (strings of every byte, numbers of every
 * kind, marked and sparse arrays, keys lua-cjson wraps, the depth limit on both sides, cycles,
 * failures, a value past the buffer C keeps between calls). Runs from the repository root. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "lua_api.h"
#include "lua_cases.h"

static const char driver[] = "package.path = 'lua/?.lua;spec/unit/?.lua;' .. package.path\n"
                             "local json = require 'keryx.json'\n"
                             "local core = require 'keryx.core'\n"
                             "local r = require('json_cases').compare(json, core.json_encode, 20000)\n"
                             "return r.checked, r.by_c, table.concat(r.mismatches, '\\n')\n";

static void test_same_bytes_as_lua(void **state)
{
    (void)state;
    long checked, by_c;
    run_lua_cases(kx_lua_open_json, driver, &checked, &by_c);
    /* every case was compared, and C answered most of them (not the Lua fallback) */
    assert_true(checked > 20000);
    assert_true(by_c > checked / 2);
    print_message("%ld values compared, %ld encoded by C\n", checked, by_c);
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_same_bytes_as_lua) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
