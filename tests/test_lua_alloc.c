/* test_lua_alloc.c — lua_alloc.c, called as LuaJIT calls it (kx_lua_alloc_f with the sizes of
 * earlier calls): size classes and their alignment, LIFO reuse, realloc within a class (same
 * pointer) and across classes and to and from malloc'd blocks (contents kept), the budget
 * (exact byte count, refusal at the cap, the grace reserve, shrinking always allowed, the
 * reserve closing), slabs going back once empty with at most KX_LUA_ALLOC_CACHED_SLABS kept,
 * two allocators on one budget (two VMs during an in-place reload), a size that disagrees with
 * the block's class aborting, the AddressSanitizer poisoning (in the ASan build), a random
 * torture of alloc/free/realloc checked against a shadow copy of every block; and kx_spare_t
 * (reuse, zeroing, its cap, clear). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "lua_alloc.h"

#define SLAB KX_LUA_ALLOC_SLAB
#define MAXS KX_LUA_ALLOC_SMALL_MAX

static void *al(kx_lua_alloc_t *a, void *p, size_t o, size_t n)
{
    return kx_lua_alloc_f(a, p, o, n);
}

static kx_lua_alloc_stats_t stats(kx_lua_alloc_t *a)
{
    kx_lua_alloc_stats_t st;
    kx_lua_alloc_stats(a, &st);
    return st;
}

static void test_classes_and_alignment(void **state)
{
    (void)state;
    kx_lua_budget_t b = { 0 };
    kx_lua_alloc_t *a = kx_lua_alloc_new(&b);
    assert_non_null(a);
    void *blocks[MAXS + 1];
    size_t total = 0;
    for (size_t n = 1; n <= MAXS; n++) {
        blocks[n] = al(a, NULL, 0, n);
        assert_non_null(blocks[n]);
        assert_int_equal((uintptr_t)blocks[n] % KX_LUA_ALLOC_GRAIN, 0);
        memset(blocks[n], (int)(n & 0xff), n);
        total += n;
    }
    /* Sizes of one class share its slab; every size up to the limit came from a slab. */
    assert_true((uintptr_t)blocks[17] / SLAB == (uintptr_t)blocks[32] / SLAB);
    assert_true((uintptr_t)blocks[16] / SLAB != (uintptr_t)blocks[17] / SLAB);
    assert_int_equal(stats(a).small_blocks, MAXS);
    assert_int_equal(stats(a).large_blocks, 0);
    assert_int_equal(stats(a).slabs, MAXS / KX_LUA_ALLOC_GRAIN);
    assert_int_equal(b.used, total);
    /* One byte over: malloc. */
    void *big = al(a, NULL, 0, MAXS + 1);
    assert_non_null(big);
    assert_int_equal(stats(a).large_blocks, 1);
    for (size_t n = 1; n <= MAXS; n++) {
        for (size_t i = 0; i < n; i++) assert_int_equal(((unsigned char *)blocks[n])[i], n & 0xff);
        assert_null(al(a, blocks[n], n, 0));
    }
    assert_null(al(a, big, MAXS + 1, 0));
    assert_int_equal(b.used, 0);
    kx_lua_alloc_stats_t st = stats(a);
    assert_int_equal(st.small_blocks, 0);
    assert_int_equal(st.large_blocks, 0);
    assert_int_equal(st.slabs, KX_LUA_ALLOC_CACHED_SLABS);
    assert_int_equal(st.cached_slabs, KX_LUA_ALLOC_CACHED_SLABS);
    kx_lua_alloc_destroy(a);
}

static void test_reuse_is_lifo_within_a_class(void **state)
{
    (void)state;
    kx_lua_budget_t b = { 0 };
    kx_lua_alloc_t *a = kx_lua_alloc_new(&b);
    void *keep = al(a, NULL, 0, 40); /* keeps the slab in its class */
    void *p = al(a, NULL, 0, 40);
    void *q = al(a, NULL, 0, 48);
    al(a, p, 40, 0);
    al(a, q, 48, 0);
    assert_ptr_equal(al(a, NULL, 0, 33), q);
    assert_ptr_equal(al(a, NULL, 0, 48), p);
    /* Another class never gets them. */
    void *r = al(a, NULL, 0, 64);
    assert_true(r != p && r != q);
    al(a, r, 64, 0);
    al(a, p, 48, 0);
    al(a, q, 33, 0);
    al(a, keep, 40, 0);
    assert_int_equal(b.used, 0);
    kx_lua_alloc_destroy(a);
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed * 31 + i * 7);
}

static void check(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) assert_int_equal(p[i], (unsigned char)(seed * 31 + i * 7));
}

static void test_realloc_within_and_across_classes(void **state)
{
    (void)state;
    kx_lua_budget_t b = { 0 };
    kx_lua_alloc_t *a = kx_lua_alloc_new(&b);
    unsigned char *p = al(a, NULL, 0, 17);
    fill(p, 17, 1);
    /* 17 -> 32 and back to 20: one class, one pointer. */
    assert_ptr_equal(al(a, p, 17, 32), p);
    check(p, 17, 1);
    fill(p, 32, 2);
    assert_ptr_equal(al(a, p, 32, 20), p);
    check(p, 20, 2);
    /* Up a class, to malloc, further up in malloc, back to a slab: contents follow. */
    size_t sizes[] = { 20, 33, 200, 512, 513, 4000, 100000, 600, 300, 1 };
    size_t o = 20;
    for (size_t i = 1; i < KX_ARRAY_LEN(sizes); i++) {
        size_t n = sizes[i];
        fill(p, o, (unsigned)i);
        unsigned char *q = al(a, p, o, n);
        assert_non_null(q);
        check(q, o < n ? o : n, (unsigned)i);
        assert_int_equal(b.used, n);
        p = q;
        o = n;
    }
    assert_int_equal(stats(a).large_blocks, 0);
    assert_int_equal(stats(a).small_blocks, 1);
    al(a, p, o, 0);
    assert_int_equal(b.used, 0);
    kx_lua_alloc_destroy(a);
}

static void test_budget_refusal_and_grace(void **state)
{
    (void)state;
    kx_lua_budget_t b = { .limit = 10000, .reserve = 1000 };
    kx_lua_alloc_t *a = kx_lua_alloc_new(&b);
    void *p[100];
    int n = 0;
    /* 100-byte blocks up to the cap exactly. */
    while (n < 100) {
        p[n] = al(a, NULL, 0, 100);
        assert_non_null(p[n]);
        n++;
    }
    assert_int_equal(b.used, 10000);
    assert_false(b.grace);
    /* One byte more is refused, nothing is charged, and the reserve opens. */
    assert_null(al(a, NULL, 0, 1));
    assert_int_equal(b.used, 10000);
    assert_true(b.grace);
    /* Growing in place counts too: refused above the reserve, allowed within it. */
    assert_null(al(a, p[0], 100, 100 + 1001));
    assert_int_equal(b.used, 10000);
    void *g = al(a, p[0], 100, 100 + 1000);
    assert_non_null(g);
    p[0] = g;
    assert_int_equal(b.used, 11000);
    assert_null(al(a, NULL, 0, 1));
    /* Shrinking is never refused, even over the cap. */
    p[0] = al(a, p[0], 1100, 50);
    assert_non_null(p[0]);
    assert_int_equal(b.used, 9950);
    /* Still in grace until relaxed under the cap. */
    assert_true(b.grace);
    kx_lua_budget_relax(&b);
    assert_false(b.grace);
    assert_null(al(a, NULL, 0, 51));
    assert_true(b.grace);
    al(a, p[1], 100, 0);
    al(a, p[2], 100, 0);
    assert_int_equal(b.used, 9750);
    kx_lua_budget_relax(&b);
    assert_false(b.grace);
    assert_non_null(p[1] = al(a, NULL, 0, 250)); /* exactly to the cap again */
    assert_int_equal(b.used, 10000);
    al(a, p[1], 250, 0);
    al(a, p[0], 50, 0);
    for (int i = 3; i < n; i++) al(a, p[i], 100, 0);
    assert_int_equal(b.used, 0);
    kx_lua_alloc_destroy(a);
}

static void test_no_limit_means_no_refusal(void **state)
{
    (void)state;
    kx_lua_budget_t b = { .limit = 0, .reserve = 0 };
    kx_lua_alloc_t *a = kx_lua_alloc_new(&b);
    void *p = al(a, NULL, 0, 8 << 20);
    assert_non_null(p);
    assert_false(b.grace);
    al(a, p, 8 << 20, 0);
    kx_lua_alloc_destroy(a);
}

static void test_empty_slabs_go_back(void **state)
{
    (void)state;
    kx_lua_budget_t b = { 0 };
    kx_lua_alloc_t *a = kx_lua_alloc_new(&b);
    /* Ten slabs' worth of 256-byte blocks. */
    size_t per = (SLAB - 64) / 256, n = per * 10;
    void **p = calloc(n, sizeof *p);
    for (size_t i = 0; i < n; i++) assert_non_null(p[i] = al(a, NULL, 0, 256));
    assert_int_equal(stats(a).slabs, 10);
    assert_int_equal(stats(a).cached_slabs, 0);
    /* One block of each slab back: no slab is empty, none goes. */
    for (size_t s = 0; s < 10; s++) {
        al(a, p[s * per], 256, 0);
        p[s * per] = NULL;
    }
    assert_int_equal(stats(a).slabs, 10);
    /* A freed block is handed out again before a new slab is mapped. */
    void *again = al(a, NULL, 0, 250);
    assert_int_equal(stats(a).slabs, 10);
    al(a, again, 250, 0);
    /* Everything back: the cache keeps its cap, the rest is unmapped. */
    for (size_t i = 0; i < n; i++)
        if (p[i]) al(a, p[i], 256, 0);
    assert_int_equal(stats(a).slabs, KX_LUA_ALLOC_CACHED_SLABS);
    assert_int_equal(stats(a).cached_slabs, KX_LUA_ALLOC_CACHED_SLABS);
    /* A cached slab serves another class. */
    void *q = al(a, NULL, 0, 16);
    assert_int_equal(stats(a).slabs, KX_LUA_ALLOC_CACHED_SLABS);
    assert_int_equal(stats(a).cached_slabs, KX_LUA_ALLOC_CACHED_SLABS - 1);
    al(a, q, 16, 0);
    assert_int_equal(b.used, 0);
    free(p);
    kx_lua_alloc_destroy(a);
}

/* A block freed with the size of another class must not be filed there: the process aborts. */
static void test_size_of_another_class_aborts(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fclose(stderr); /* the assertion's message is expected */
        kx_lua_budget_t b = { 0 };
        kx_lua_alloc_t *a = kx_lua_alloc_new(&b);
        void *p = al(a, NULL, 0, 64);
        al(a, p, 128, 0);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
}

static void test_asan_poisoning(void **state)
{
    (void)state;
#ifdef __SANITIZE_ADDRESS__
    kx_lua_budget_t b = { 0 };
    kx_lua_alloc_t *a = kx_lua_alloc_new(&b);
    char *keep = al(a, NULL, 0, 40);
    char *p = al(a, NULL, 0, 40);
    assert_false(__asan_address_is_poisoned(p));
    assert_false(__asan_address_is_poisoned(p + 39));
    assert_true(__asan_address_is_poisoned(p + 40)); /* the class's slack past the size */
    assert_ptr_equal(al(a, p, 40, 45), p);
    assert_false(__asan_address_is_poisoned(p + 44));
    assert_true(__asan_address_is_poisoned(p + 45));
    assert_ptr_equal(al(a, p, 45, 36), p);
    assert_true(__asan_address_is_poisoned(p + 36));
    al(a, p, 36, 0);
    assert_true(__asan_address_is_poisoned(p)); /* freed: use-after-free is reported */
    assert_true(__asan_address_is_poisoned(p + 20));
    /* Never handed out yet: the rest of the slab. */
    assert_true(__asan_address_is_poisoned(keep + 4096));
    al(a, keep, 40, 0);
    kx_lua_alloc_destroy(a);
    /* A double free aborts. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fclose(stderr);
        kx_lua_budget_t b2 = { 0 };
        kx_lua_alloc_t *a2 = kx_lua_alloc_new(&b2);
        void *k = al(a2, NULL, 0, 40), *q = al(a2, NULL, 0, 40);
        (void)k;
        al(a2, q, 40, 0);
        al(a2, q, 40, 0);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
#else
    skip();
#endif
}

/* ---- torture ------------------------------------------------------------------------------- */

#define SLOTS 3000
typedef struct {
    unsigned char *p;
    size_t n;
    unsigned seed;
    int vm;
} slot_t;

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Mostly small sizes (what Lua asks for), sometimes large, sometimes exactly on a boundary. */
static size_t rnd_size(void)
{
    uint64_t r = rnd() % 100;
    if (r < 70) return 1 + rnd() % 128;
    if (r < 90) return 1 + rnd() % MAXS;
    if (r < 95) return (1 + rnd() % (MAXS / 16)) * 16 + (rnd() % 3) - 1;
    return MAXS + 1 + rnd() % 20000;
}

static void test_torture_against_shadow(void **state)
{
    (void)state;
    kx_lua_budget_t b = { 0 };
    /* Two allocators on one budget: two VMs alive during an in-place reload. */
    kx_lua_alloc_t *vm[2] = { kx_lua_alloc_new(&b), kx_lua_alloc_new(&b) };
    static slot_t s[SLOTS];
    memset(s, 0, sizeof s);
    size_t used = 0;
    for (long step = 0; step < 400000; step++) {
        slot_t *x = &s[rnd() % SLOTS];
        if (x->p) check(x->p, x->n, x->seed);
        uint64_t op = rnd() % 3;
        if (!x->p) {
            x->n = rnd_size();
            x->vm = (int)(rnd() % 2);
            x->p = al(vm[x->vm], NULL, 0, x->n);
            assert_non_null(x->p);
            x->seed = (unsigned)rnd();
            fill(x->p, x->n, x->seed);
            used += x->n;
        } else if (op == 0) {
            al(vm[x->vm], x->p, x->n, 0);
            used -= x->n;
            x->p = NULL;
        } else {
            size_t n = rnd_size();
            unsigned char *q = al(vm[x->vm], x->p, x->n, n);
            assert_non_null(q);
            check(q, x->n < n ? x->n : n, x->seed);
            used = used - x->n + n;
            x->p = q;
            x->n = n;
            x->seed = (unsigned)rnd();
            fill(x->p, x->n, x->seed);
        }
        assert_int_equal(b.used, used);
    }
    for (int i = 0; i < SLOTS; i++)
        if (s[i].p) {
            check(s[i].p, s[i].n, s[i].seed);
            al(vm[s[i].vm], s[i].p, s[i].n, 0);
        }
    assert_int_equal(b.used, 0);
    for (int v = 0; v < 2; v++) {
        kx_lua_alloc_stats_t st = stats(vm[v]);
        assert_int_equal(st.small_blocks, 0);
        assert_int_equal(st.large_blocks, 0);
        assert_true(st.slabs <= KX_LUA_ALLOC_CACHED_SLABS);
        assert_int_equal(st.slabs, st.cached_slabs);
        kx_lua_alloc_destroy(vm[v]);
    }
}

/* One allocator destroyed while the other keeps going: nothing shared. */
static void test_destroy_one_of_two(void **state)
{
    (void)state;
    kx_lua_budget_t b = { 0 };
    kx_lua_alloc_t *old = kx_lua_alloc_new(&b), *cur = kx_lua_alloc_new(&b);
    void *o = al(old, NULL, 0, 64);
    unsigned char *c = al(cur, NULL, 0, 64);
    fill(c, 64, 9);
    assert_true((uintptr_t)o / SLAB != (uintptr_t)c / SLAB);
    al(old, o, 64, 0);
    kx_lua_alloc_destroy(old);
    check(c, 64, 9);
    void *d = al(cur, NULL, 0, 64);
    assert_non_null(d);
    al(cur, d, 64, 0);
    al(cur, c, 64, 0);
    assert_int_equal(b.used, 0);
    kx_lua_alloc_destroy(cur);
}

/* ---- spare structs ------------------------------------------------------------------------- */

typedef struct {
    void *link;
    char body[100];
} thing_t;

static void test_spare_reuse_zeroed_and_capped(void **state)
{
    (void)state;
    kx_spare_t sp = { .size = sizeof(thing_t), .cap = 4 };
    thing_t *a = kx_spare_get(&sp);
    assert_non_null(a);
    memset(a, 0xab, sizeof *a);
    kx_spare_put(&sp, a);
    assert_int_equal(sp.n, 1);
    /* The same struct again, zeroed. */
    thing_t *b = kx_spare_get(&sp);
    assert_ptr_equal(b, a);
    assert_int_equal(sp.n, 0);
    for (size_t i = 0; i < sizeof b->body; i++) assert_int_equal(b->body[i], 0);
    assert_null(b->link);
#ifdef __SANITIZE_ADDRESS__
    kx_spare_put(&sp, b);
    assert_true(__asan_address_is_poisoned(b->body + 50)); /* kept: use-after-free is reported */
    b = kx_spare_get(&sp);
    assert_false(__asan_address_is_poisoned(b->body + 50));
#endif
    /* Past the cap: the extras go back to free (the ASan build's leak check sees a leak or a
     * double free here), the cap stays the cap. */
    thing_t *many[10];
    many[0] = b;
    for (int i = 1; i < 10; i++) many[i] = kx_spare_get(&sp);
    for (int i = 0; i < 10; i++) kx_spare_put(&sp, many[i]);
    assert_int_equal(sp.n, 4);
    /* LIFO: the last kept comes back first. */
    thing_t *c = kx_spare_get(&sp);
    assert_ptr_equal(c, many[3]);
    kx_spare_put(&sp, c);
    kx_spare_clear(&sp);
    assert_int_equal(sp.n, 0);
    assert_null(sp.head);
    /* Usable after a clear. */
    c = kx_spare_get(&sp);
    kx_spare_put(&sp, c);
    kx_spare_clear(&sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes_and_alignment),
        cmocka_unit_test(test_reuse_is_lifo_within_a_class),
        cmocka_unit_test(test_realloc_within_and_across_classes),
        cmocka_unit_test(test_budget_refusal_and_grace),
        cmocka_unit_test(test_no_limit_means_no_refusal),
        cmocka_unit_test(test_empty_slabs_go_back),
        cmocka_unit_test(test_size_of_another_class_aborts),
        cmocka_unit_test(test_asan_poisoning),
        cmocka_unit_test(test_torture_against_shadow),
        cmocka_unit_test(test_destroy_one_of_two),
        cmocka_unit_test(test_spare_reuse_zeroed_and_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
