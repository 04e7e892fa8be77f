/* json_number.h — the text keryx's JSON encoder gives a number (lua/keryx/json.lua's rules),
 * without glibc's float printer on the common paths.
 *
 * Owns: nothing (pure, no allocation). Callers: lua_api_json.c (core.json_encode),
 * tests/test_json_number.c. Never: depends on the locale (the decimal point is always '.').
 *
 * The rules (lua/keryx/json.lua, header comment): NaN and ±Inf are `null`; an integral value
 * with |v| < 1e14 prints as its digits (-0 as "-0", as "%.14g" does); an integral value with
 * 1e14 <= |v| < 2^63 prints exactly ("%.0f"); larger integral values print as "%.17g";
 * every other value prints as "%.14g" would (lua-cjson's format). */
#ifndef KX_JSON_NUMBER_H
#define KX_JSON_NUMBER_H
#include "common.h"

/* Room kx_json_number and kx_json_g14 need: "%.17g" of -DBL_MAX is 24 bytes. */
#define KX_JSON_NUMBER_MAX 32

/* Writes v's JSON text (no NUL) into out[KX_JSON_NUMBER_MAX]; returns its length. */
size_t kx_json_number(double v, char *out);

/* Writes exactly what snprintf(out, …, "%.14g", v) writes in the C locale (no NUL) into
 * out[KX_JSON_NUMBER_MAX]; returns its length. */
size_t kx_json_g14(double v, char *out);

/* Writes the decimal digits of v (with a '-' when negative) into out[21]; returns the length. */
size_t kx_json_int64(int64_t v, char *out);

#endif
