/* lua_api_json.c — core.json_encode: the encoder behind lua/keryx/json.lua's encode, in C.
 *
 *   core.json_encode(value, array_mt, empty_array) → JSON text | nil
 *
 * It writes exactly the bytes json.lua's Lua encoder (lua-cjson plus its pre/post-processing)
 * writes for the same value; json.lua passes its array metatable and its empty-array sentinel.
 * nil means "not here": a value json.lua refuses (functions, userdata, threads, bad keys,
 * nesting deeper than 1000, cycles) or a table with a metatable of its own (which the Lua
 * path may read through __index); json.lua then runs its Lua encoder, which gives the same
 * text or the same error message. Nothing raises short of memory exhaustion.
 *
 * The rules it reproduces (lua/keryx/json.lua):
 *   - a marked table (array_mt) is an array when all its keys are integers >= 1 and it is not
 *     too sparse (largest key > 10 and > 2 × count), else an object; the sentinel is [];
 *   - another table is an array when that holds and it has a key, else an object. lua-cjson
 *     keeps the largest key in a C int, so a key >= 2^31 in a table that json.lua hands to
 *     lua-cjson whole ("plain": no marked table, no integer >= 1e14 below it, as key or value)
 *     overflows it (CJSON_INT_OVERFLOW); such tables are rare enough to scan when they occur
 *     (see table_is_plain);
 *   - keys in lua_next order (the order of pairs, which both Lua paths use);
 *   - strings escaped as lua-cjson escapes them, except "/" (json.lua undoes that escape);
 *   - numbers by json_number.c; number keys quoted.
 * Output goes to one buffer kept between calls (the VM is single-threaded), so a response
 * costs no malloc once the buffer has grown; a buffer grown past KX_JSON_KEEP is given back. */
#include "lua_api.h"
#include "buf.h"
#include "json_number.h"
#include <lauxlib.h>
#include <math.h>

#define MAX_DEPTH 1000
/* What lua-cjson's `int max = k` gives for a key k >= 2^31 (out of range: undefined in C, so
 * whatever the CPU's conversion does): x86 answers INT_MIN, the other CPUs Debian builds for
 * saturate to INT_MAX (which makes the table an object, as json.lua's own rule does). */
#if defined(__x86_64__) || defined(__i386__)
#define CJSON_INT_OVERFLOW INT32_MIN
#else
#define CJSON_INT_OVERFLOW INT32_MAX
#endif
/* Capacity kept between calls; a larger one (a one-off big answer) is freed after use. */
#define KX_JSON_KEEP (1u << 20)

typedef struct {
    lua_State *L;
    kx_buf_t *b;
    int array_mt; /* stack indexes of json.lua's marks */
    int empty;
} enc_t;

static kx_buf_t out_buf = KX_BUF_INIT;

/* 0: copy as is; 1: a two-byte escape (escape_char[c]); 2: \u00XX. lua-cjson's table, less
 * "/": json.lua never escapes it. */
static unsigned char escape_kind[256];
static char escape_char[256];

static void escape_init(void)
{
    for (int c = 0; c < 0x20; c++) escape_kind[c] = 2;
    escape_kind[0x7f] = 2;
    static const char two[][2] = { { '\b', 'b' }, { '\t', 't' }, { '\n', 'n' }, { '\f', 'f' },
                                   { '\r', 'r' }, { '"', '"' },  { '\\', '\\' } };
    for (size_t i = 0; i < sizeof two / sizeof two[0]; i++) {
        escape_kind[(unsigned char)two[i][0]] = 1;
        escape_char[(unsigned char)two[i][0]] = two[i][1];
    }
}

static inline char *reserve(kx_buf_t *b, size_t n)
{
    if (b->cap - b->len <= n) kx_buf_reserve(b, n); /* the common case stays inline */
    return b->data + b->len;
}

static inline void put(kx_buf_t *b, const char *s, size_t n)
{
    memcpy(reserve(b, n), s, n);
    b->len += n;
}

static inline void put_char(kx_buf_t *b, char c)
{
    *reserve(b, 1) = c;
    b->len++;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Whether one of the 8 bytes of w needs an escape: below 0x20, '"', '\\' or 0x7f. Each test
 * is the exact "has a zero byte" / "has a byte below n" word trick (n <= 128), so a word
 * without such a byte is never flagged and is copied whole. */
static inline bool word_needs_escape(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"'), bs = w ^ (ONES * '\\'), del = w ^ (ONES * 0x7f);
    uint64_t t = ((w - ONES * 0x20) & ~w) | ((q - ONES) & ~q) | ((bs - ONES) & ~bs) | ((del - ONES) & ~del);
    return (t & HIGHS) != 0;
}

static void put_string(kx_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char *o = reserve(b, 6 * n + 2); /* worst case: every byte \u00XX */
    char *start = o;
    *o++ = '"';
    size_t i = 0;
    for (;;) {
        while (n - i >= 8) { /* eight plain bytes at a time */
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (word_needs_escape(w)) break;
            memcpy(o, &w, 8);
            o += 8;
            i += 8;
        }
        /* byte by byte: the word holding an escape, or the tail */
        size_t stop = n - i >= 8 ? i + 8 : n;
        for (; i < stop; i++) {
            unsigned char c = (unsigned char)s[i];
            unsigned kind = escape_kind[c];
            if (kind == 0) {
                *o++ = (char)c;
            } else if (kind == 1) {
                *o++ = '\\';
                *o++ = escape_char[c];
            } else {
                memcpy(o, "\\u00", 4);
                o[4] = hex[c >> 4];
                o[5] = hex[c & 15];
                o += 6;
            }
        }
        if (i == n) break;
    }
    *o++ = '"';
    b->len += (size_t)(o - start);
}

static void put_number(kx_buf_t *b, double v)
{
    char *o = reserve(b, KX_JSON_NUMBER_MAX);
    b->len += kx_json_number(v, o);
}

/* floor(x) == x without a libm call where a cast is exact (|x| < 2^63). */
static inline bool is_integral(double x)
{
    if (x > -9223372036854775808.0 && x < 9223372036854775808.0) return (double)(int64_t)x == x;
    return floor(x) == x; /* beyond: every finite double is integral; NaN and Inf are not */
}

static bool is_big_integer(double n)
{
    return isfinite(n) && is_integral(n) && (n >= 1e14 || n <= -1e14);
}

/* json.lua's scan for the table at idx: whether it holds a big integer (as key or value) or a
 * marked table anywhere below it (tables as keys are not looked into, as scan does not). The
 * caller has checked idx itself is not marked. Depth is bounded by the encoder's. */
static bool table_is_plain(enc_t *e, int idx, int depth)
{
    lua_State *L = e->L;
    if (depth > MAX_DEPTH || !lua_checkstack(L, 3)) return false; /* the encoder fails there first */
    bool plain = true;
    lua_pushnil(L);
    while (plain && lua_next(L, idx)) {
        if (lua_type(L, -2) == LUA_TNUMBER && is_big_integer(lua_tonumber(L, -2))) plain = false;
        int tv = lua_type(L, -1);
        if (tv == LUA_TNUMBER) {
            if (is_big_integer(lua_tonumber(L, -1))) plain = false;
        } else if (tv == LUA_TTABLE) {
            int sub = lua_gettop(L);
            if (lua_rawequal(L, sub, e->empty)) {
                plain = false;
            } else if (lua_getmetatable(L, sub)) {
                if (lua_rawequal(L, -1, e->array_mt)) plain = false;
                lua_pop(L, 1);
            }
            if (plain && !table_is_plain(e, sub, depth + 1)) plain = false;
        }
        lua_pop(L, 1);
    }
    if (!plain) lua_pop(L, 1); /* the key left by the interrupted lua_next */
    return plain;
}

static bool encode_value(enc_t *e, int idx, int depth);

/* Array of n elements (t[1..n], holes are null). */
static bool encode_array(enc_t *e, int idx, int n, int depth)
{
    lua_State *L = e->L;
    put_char(e->b, '[');
    for (int i = 1; i <= n; i++) {
        if (i > 1) put_char(e->b, ',');
        lua_rawgeti(L, idx, i);
        bool ok = encode_value(e, lua_gettop(L), depth);
        lua_pop(L, 1);
        if (!ok) return false;
    }
    put_char(e->b, ']');
    return true;
}

static bool encode_object(enc_t *e, int idx, int depth)
{
    lua_State *L = e->L;
    kx_buf_t *b = e->b;
    put_char(b, '{');
    bool first = true;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (!first) put_char(b, ',');
        first = false;
        int tk = lua_type(L, -2);
        if (tk == LUA_TSTRING) {
            size_t n;
            const char *s = lua_tolstring(L, -2, &n);
            put_string(b, s, n);
        } else if (tk == LUA_TNUMBER) {
            /* lua_tonumber, never lua_tolstring: that would change the key under lua_next */
            put_char(b, '"');
            put_number(b, lua_tonumber(L, -2));
            put_char(b, '"');
        } else {
            lua_pop(L, 2);
            return false;
        }
        put_char(b, ':');
        if (!encode_value(e, lua_gettop(L), depth)) {
            lua_pop(L, 2);
            return false;
        }
        lua_pop(L, 1);
    }
    put_char(b, '}');
    return true;
}

static bool encode_table(enc_t *e, int idx, int depth)
{
    lua_State *L = e->L;
    if (depth > MAX_DEPTH || !lua_checkstack(L, 6)) return false;
    if (lua_rawequal(L, idx, e->empty)) {
        put(e->b, "[]", 2);
        return true;
    }
    bool marked = false;
    if (lua_getmetatable(L, idx)) {
        marked = lua_rawequal(L, -1, e->array_mt);
        lua_pop(L, 1);
        if (!marked) return false; /* a metatable of the app's own: the Lua path */
    }
    /* One pass over the keys for both rules: json.lua's (largest key as a double) and
     * lua-cjson's (the same, kept in an int: a key >= 2^31 overflows it, CJSON_INT_OVERFLOW). */
    bool all_int = true, wrapped = false;
    double dmax = 0;
    int cmax = 0, count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        double k;
        if (lua_type(L, -1) != LUA_TNUMBER || (k = lua_tonumber(L, -1)) < 1 || !is_integral(k)) {
            all_int = false;
            lua_pop(L, 1);
            break;
        }
        if (k > dmax) dmax = k;
        if (k > cmax) {
            if (k < 2147483648.0) {
                cmax = (int)k;
            } else {
                cmax = CJSON_INT_OVERFLOW;
                wrapped = true;
            }
        }
        count++;
    }
    if (!all_int) return encode_object(e, idx, depth);
    bool lua_sparse = dmax > 10 && dmax > (double)count * 2;
    if (marked) {
        if (lua_sparse) return encode_object(e, idx, depth);
        return encode_array(e, idx, (int)dmax, depth); /* dmax <= 2 × count: fits an int */
    }
    if (wrapped && table_is_plain(e, idx, depth)) {
        /* lua-cjson's rule, overflowed int and all */
        bool c_sparse = cmax > 10 && (long long)cmax > (long long)count * 2;
        if (c_sparse || cmax <= 0) return encode_object(e, idx, depth);
        return encode_array(e, idx, cmax, depth);
    }
    if (lua_sparse || dmax == 0) return encode_object(e, idx, depth);
    return encode_array(e, idx, (int)dmax, depth);
}

static bool encode_value(enc_t *e, int idx, int depth)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: put(e->b, "null", 4); return true;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx)) put(e->b, "true", 4);
        else put(e->b, "false", 5);
        return true;
    case LUA_TNUMBER: put_number(e->b, lua_tonumber(L, idx)); return true;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        put_string(e->b, s, n);
        return true;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) != NULL) return false;
        put(e->b, "null", 4); /* json.null / core.redis_null */
        return true;
    case LUA_TTABLE: return encode_table(e, idx, depth + 1);
    default: return false;
    }
}

/* core.json_encode(value, array_mt, empty_array) → text | nil (see the header). */
bool kx_lua_json_encode_into(lua_State *L, int idx, int array_mt, int empty, kx_buf_t *b)
{
    enc_t e = { .L = L, .b = b, .array_mt = array_mt, .empty = empty };
    return encode_value(&e, idx, 0);
}

static int l_json_encode(lua_State *L)
{
    lua_settop(L, 3);
    enc_t e = { .L = L, .b = &out_buf, .array_mt = 2, .empty = 3 };
    out_buf.len = 0;
    bool ok = encode_value(&e, 1, 0);
    if (ok) lua_pushlstring(L, out_buf.data, out_buf.len);
    else lua_pushnil(L);
    if (out_buf.cap > KX_JSON_KEEP) kx_buf_free(&out_buf);
    return 1;
}

void kx_lua_open_json(lua_State *L)
{
    escape_init();
    lua_pushcfunction(L, l_json_encode);
    lua_setfield(L, -2, "json_encode");
}
