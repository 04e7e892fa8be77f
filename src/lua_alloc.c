/* lua_alloc.c — size classes on slabs for the Lua VMs, and the memory budget.
 * See lua_alloc.h for the contract.
 *
 * Why: a GET /api/status makes about 13 Lua allocations (tables of 64 bytes, hash parts of
 * 160-384 bytes, ...), all freed by a later collection; through glibc's realloc/free they cost
 * about 4,600 instructions per request under callgrind, a tenth of the request. Every request
 * allocation and 99% of those of the boot are at most 512 bytes, hence KX_LUA_ALLOC_SMALL_MAX.
 *
 * A slab is a 64 KiB region aligned on 64 KiB: its header (slab_t) sits at its start, so the
 * slab of any small block is the block's address rounded down. A slab serves one class: its
 * blocks are carved on demand from `bump` (pages never asked for are never touched) and freed
 * ones are linked through their first word in the slab's own free list. The slabs of a class
 * that have room are on the class's `avail` list; a full slab is on no list until a block of
 * it is freed. When a slab's last block is freed it leaves its class: it is kept in the empty
 * cache (any class may take it up again) while that holds fewer than KX_LUA_ALLOC_CACHED_SLABS,
 * else unmapped — so memory goes back to the system as the VM's live set shrinks. */
#include "lua_alloc.h"
#include <stdlib.h>
#include <sys/mman.h>

#define NCLASS (KX_LUA_ALLOC_SMALL_MAX / KX_LUA_ALLOC_GRAIN)
#define HDR 64 /* the header's room: blocks start 64 bytes in, so they are 16-byte aligned */

typedef struct slab {
    struct slab *prev, *next;         /* the class's avail list, or the empty cache */
    struct slab *all_prev, *all_next; /* every slab mapped: destroy unmaps them all */
    void *free;                       /* freed blocks, linked through their first word */
    char *bump, *end;                 /* [bump, end): never handed out yet */
    uint32_t used;                    /* blocks handed out */
    uint16_t cls;                     /* block size / GRAIN; 0 while empty in the cache */
    bool listed;                      /* on its class's avail list */
} slab_t;

_Static_assert(sizeof(slab_t) <= HDR, "slab header outgrew its room");
_Static_assert((KX_LUA_ALLOC_SLAB & (KX_LUA_ALLOC_SLAB - 1)) == 0, "slab size: a power of two");

struct kx_lua_alloc {
    kx_lua_budget_t *budget;
    slab_t *avail[NCLASS + 1]; /* by class; [0] unused */
    slab_t *cache;             /* empty slabs, through next */
    slab_t *all;
    size_t nslabs, ncached, small_blocks, large_blocks;
};

/* 1..NCLASS for a small size, 0 for a large one (size > 0). */
static inline uint32_t class_of(size_t size)
{
    return size <= KX_LUA_ALLOC_SMALL_MAX ? (uint32_t)((size + KX_LUA_ALLOC_GRAIN - 1) / KX_LUA_ALLOC_GRAIN)
                                          : 0;
}

static inline slab_t *slab_of(const void *p)
{
    return (slab_t *)((uintptr_t)p & ~(uintptr_t)(KX_LUA_ALLOC_SLAB - 1));
}

/* ---- slabs --------------------------------------------------------------------------------- */

/* A fresh 64 KiB region aligned on its size: map twice that and give back both ends. */
static slab_t *slab_map(void)
{
    size_t len = 2 * (size_t)KX_LUA_ALLOC_SLAB;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return NULL;
    char *s = (char *)(((uintptr_t)m + KX_LUA_ALLOC_SLAB - 1) & ~(uintptr_t)(KX_LUA_ALLOC_SLAB - 1));
    if (s > m) munmap(m, (size_t)(s - m));
    char *tail = s + KX_LUA_ALLOC_SLAB;
    if (tail < m + len) munmap(tail, (size_t)(m + len - tail));
    KX_POISON(s + HDR, KX_LUA_ALLOC_SLAB - HDR);
    return (slab_t *)s;
}

static void slab_unmap(kx_lua_alloc_t *a, slab_t *s)
{
    if (s->all_prev) s->all_prev->all_next = s->all_next;
    else a->all = s->all_next;
    if (s->all_next) s->all_next->all_prev = s->all_prev;
    a->nslabs--;
    /* The shadow of the range must not stay poisoned for whatever is mapped there next. */
    KX_UNPOISON(s, KX_LUA_ALLOC_SLAB);
    munmap(s, KX_LUA_ALLOC_SLAB);
}

static void avail_push(kx_lua_alloc_t *a, slab_t *s)
{
    s->prev = NULL;
    s->next = a->avail[s->cls];
    if (s->next) s->next->prev = s;
    a->avail[s->cls] = s;
    s->listed = true;
}

static void avail_remove(kx_lua_alloc_t *a, slab_t *s)
{
    if (s->prev) s->prev->next = s->next;
    else a->avail[s->cls] = s->next;
    if (s->next) s->next->prev = s->prev;
    s->listed = false;
}

/* An empty slab set up for class cls (from the cache, else mapped), on the class's list. */
static slab_t *slab_take(kx_lua_alloc_t *a, uint32_t cls)
{
    slab_t *s = a->cache;
    if (s) {
        a->cache = s->next;
        a->ncached--;
    } else {
        s = slab_map();
        if (!s) return NULL;
        s->all_prev = NULL;
        s->all_next = a->all;
        if (a->all) a->all->all_prev = s;
        a->all = s;
        a->nslabs++;
    }
    size_t size = (size_t)cls * KX_LUA_ALLOC_GRAIN;
    s->cls = (uint16_t)cls;
    s->used = 0;
    s->free = NULL;
    s->bump = (char *)s + HDR;
    s->end = s->bump + (KX_LUA_ALLOC_SLAB - HDR) / size * size;
    avail_push(a, s);
    return s;
}

/* Its last block was freed: to the cache, or back to the system when the cache is full. */
static void slab_release(kx_lua_alloc_t *a, slab_t *s)
{
    if (s->listed) avail_remove(a, s);
    s->cls = 0;
    if (a->ncached >= KX_LUA_ALLOC_CACHED_SLABS) {
        slab_unmap(a, s);
        return;
    }
    s->next = a->cache;
    a->cache = s;
    a->ncached++;
}

/* ---- blocks -------------------------------------------------------------------------------- */

/* kx_lua_alloc_f does the common cases itself (a new small block off a slab's free list, a
 * small block freed into a slab that stays listed) and hands everything else to the cold
 * functions below in tail position, so its fast paths save no registers and make no call. */
#define COLD static __attribute__((noinline))
#define LIKELY(x) __builtin_expect(!!(x), 1)

/* A block of class cls from s (listed, so it has room) with its first n bytes addressable
 * (the rest stays poisoned). */
static inline void *small_get_from(kx_lua_alloc_t *a, slab_t *s, uint32_t cls, size_t n)
{
    void *p = s->free;
    if (p) {
        KX_UNPOISON(p, sizeof(void *));
        s->free = *(void **)p;
        KX_POISON(p, sizeof(void *));
    } else {
        p = s->bump;
        s->bump += (size_t)cls * KX_LUA_ALLOC_GRAIN;
    }
    s->used++;
    if (!s->free && s->bump == s->end) avail_remove(a, s);
    a->small_blocks++;
    KX_UNPOISON(p, n);
    return p;
}

static void *small_get(kx_lua_alloc_t *a, uint32_t cls, size_t n)
{
    slab_t *s = a->avail[cls];
    if (!s && !(s = slab_take(a, cls))) return NULL;
    return small_get_from(a, s, cls, n);
}

/* After a free: a slab left empty leaves its class, one that was full is listed again. */
COLD void *slab_relist(kx_lua_alloc_t *a, slab_t *s)
{
    if (s->used == 0) slab_release(a, s);
    else avail_push(a, s);
    return NULL;
}

/* Pushes p on its slab's free list; true when the slab must be relisted (slab_relist). */
static inline bool small_put(kx_lua_alloc_t *a, void *p, uint32_t cls, slab_t *s)
{
    /* Lua passed a size of another class than the block's: freeing it there would hand the
     * same bytes out twice. */
    kx_assert(s->cls == cls);
    /* Every block handed out has its first byte addressable; a poisoned one is free already. */
    kx_assert(!KX_IS_POISONED(p));
    KX_UNPOISON(p, sizeof(void *));
    *(void **)p = s->free;
    s->free = p;
    KX_POISON(p, (size_t)cls * KX_LUA_ALLOC_GRAIN);
    a->small_blocks--;
    return --s->used == 0 || !s->listed;
}

static void small_free(kx_lua_alloc_t *a, void *p, uint32_t cls)
{
    slab_t *s = slab_of(p);
    if (small_put(a, p, cls, s)) slab_relist(a, s);
}

COLD void *large_free(kx_lua_alloc_t *a, void *p)
{
    free(p);
    a->large_blocks--;
    return NULL;
}

/* A new block, small from a slab that had no free block or large from malloc; the budget is
 * charged here (it allowed it already). */
COLD void *alloc_slow(kx_lua_alloc_t *a, size_t nsize)
{
    uint32_t nc = class_of(nsize);
    void *p;
    if (nc) p = small_get(a, nc, nsize);
    else if ((p = malloc(nsize))) a->large_blocks++;
    if (p) a->budget->used += nsize;
    return p;
}

/* ptr resized, the budget allowed it and is charged here: NULL leaves ptr as it was. */
COLD void *resize(kx_lua_alloc_t *a, void *ptr, size_t osize, size_t nsize)
{
    uint32_t oc = class_of(osize), nc = class_of(nsize);
    void *q;
    if (oc && oc == nc) {
        /* Same class: the same block, only what is addressable changes. */
        KX_UNPOISON(ptr, nsize);
        KX_POISON((char *)ptr + nsize, (size_t)oc * KX_LUA_ALLOC_GRAIN - nsize);
        q = ptr;
    } else if (!oc && !nc) {
        if (!(q = realloc(ptr, nsize))) return NULL;
    } else {
        if (nc) q = small_get(a, nc, nsize);
        else if ((q = malloc(nsize))) a->large_blocks++;
        if (!q) return NULL;
        memcpy(q, ptr, osize < nsize ? osize : nsize);
        if (oc) small_free(a, ptr, oc);
        else large_free(a, ptr);
    }
    a->budget->used = a->budget->used - osize + nsize;
    return q;
}

/* ---- the lua_Alloc ------------------------------------------------------------------------- */

void *kx_lua_alloc_f(void *ud, void *ptr, size_t osize, size_t nsize)
{
    kx_lua_alloc_t *a = ud;
    kx_lua_budget_t *b = a->budget;
    if (nsize == 0) {
        b->used -= osize;
        if (!ptr) return NULL;
        uint32_t oc = class_of(osize);
        if (!LIKELY(oc)) return large_free(a, ptr);
        slab_t *s = slab_of(ptr);
        if (!LIKELY(!small_put(a, ptr, oc, s))) return slab_relist(a, s);
        return NULL;
    }
    if (nsize > osize && b->limit) {
        size_t cap = b->limit + (b->grace ? b->reserve : 0);
        if (b->used + (nsize - osize) > cap) {
            b->grace = true;
            return NULL;
        }
    }
    if (ptr) return resize(a, ptr, osize, nsize);
    /* A new block: osize is 0 (the budget arithmetic above is the same either way). */
    uint32_t nc = class_of(nsize);
    slab_t *s = nc ? a->avail[nc] : NULL;
    if (!LIKELY(s)) return alloc_slow(a, nsize);
    b->used += nsize;
    return small_get_from(a, s, nc, nsize);
}

void kx_lua_budget_relax(kx_lua_budget_t *b)
{
    if (b->used < b->limit) b->grace = false;
}

kx_lua_alloc_t *kx_lua_alloc_new(kx_lua_budget_t *budget)
{
    kx_lua_alloc_t *a = calloc(1, sizeof *a);
    if (a) a->budget = budget;
    return a;
}

void kx_lua_alloc_destroy(kx_lua_alloc_t *a)
{
    if (!a) return;
    while (a->all) slab_unmap(a, a->all);
    free(a);
}

void kx_lua_alloc_stats(const kx_lua_alloc_t *a, kx_lua_alloc_stats_t *st)
{
    st->slabs = a->nslabs;
    st->cached_slabs = a->ncached;
    st->small_blocks = a->small_blocks;
    st->large_blocks = a->large_blocks;
}

/* ---- spare structs ------------------------------------------------------------------------- */

void *kx_spare_get(kx_spare_t *s)
{
    void *p = s->head;
    if (!p) return kx_xcalloc(1, s->size);
    KX_UNPOISON(p, s->size);
    s->head = *(void **)p;
    s->n--;
    memset(p, 0, s->size);
    return p;
}

void kx_spare_put(kx_spare_t *s, void *p)
{
    if (s->n >= s->cap) {
        free(p);
        return;
    }
    *(void **)p = s->head;
    s->head = p;
    s->n++;
    KX_POISON(p, s->size);
}

void kx_spare_clear(kx_spare_t *s)
{
    while (s->head) {
        void *p = s->head;
        KX_UNPOISON(p, s->size);
        s->head = *(void **)p;
        free(p);
    }
    s->n = 0;
}
