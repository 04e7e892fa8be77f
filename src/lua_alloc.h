/* lua_alloc.h — the allocator behind every Lua VM of the server: size classes carved from
 * slabs, and the process-wide byte budget (LUA_MEMORY_LIMIT_MB).
 *
 * Owns: its slabs (64 KiB mmap'd regions, each serving one size class at a time), the blocks
 * above KX_LUA_ALLOC_SMALL_MAX (plain malloc), and the arithmetic of the budget it is given
 * (used bytes, the cap, the grace reserve); and kx_spare_t, a capped free list of fixed-size
 * structs (lua_bridge.c's tasks, lua_api.c's Redis waits, ratelimit.c's checks and batches: no malloc when
 * one is kept). The budget's storage belongs to the caller, and
 * one budget may serve several allocators: the cap is the process's, over every VM alive.
 * Callers: lua_bridge.c (one allocator per VM, passed as the `ud` of lua_newstate, so two VMs
 * alive during an in-place reload never share a free list; destroyed after lua_close), and
 * tests/test_lua_alloc.c. It includes no Lua header: kx_lua_alloc_f has lua_Alloc's shape.
 * Never: per-block headers (Lua passes each block's size back on realloc and free, and the
 * size names the class); frees a block into a class other than the one it came from (a size
 * that disagrees with the slab's class aborts); keeps more than KX_LUA_ALLOC_CACHED_SLABS empty
 * slabs (a slab whose last block is freed goes to that cache or back to the system at once);
 * locks anything (one event loop, one thread: it is not thread-safe).
 *
 * What stays held: empty slabs, at most KX_LUA_ALLOC_CACHED_SLABS (256 KiB) per allocator; and
 * the free blocks of slabs that still hold a live block (one live block pins its 64 KiB slab:
 * fragmentation, bounded by the VM's peak of live small blocks per class).
 *
 * Accounting is by the sizes Lua asks for, exactly as before the allocator existed: `used`
 * grows by nsize - osize and shrinks by osize on free; rounding to a class, slab headers and
 * cached slabs are not charged. Under AddressSanitizer (__SANITIZE_ADDRESS__) a free block,
 * the bytes of a block past the size asked for, and the never-used part of a slab are
 * poisoned, so Lua-held memory still reports use-after-free and overflows; a double free
 * aborts. */
#ifndef KX_LUA_ALLOC_H
#define KX_LUA_ALLOC_H
#include "common.h"

#define KX_LUA_ALLOC_SLAB (64 * 1024) /* bytes per slab, and its alignment */
#define KX_LUA_ALLOC_GRAIN 16         /* class step: LuaJIT wants 8-byte alignment, 16 is safe */
#define KX_LUA_ALLOC_SMALL_MAX 512    /* larger blocks go to malloc */
#define KX_LUA_ALLOC_CACHED_SLABS 4   /* empty slabs kept per allocator: 256 KiB at most */

/* Past the cap an allocation that grows fails (Lua raises "not enough memory"); from then on
 * `reserve` more bytes are allowed (grace) so unwinding, the error envelope and the log line
 * can be built. The caller closes the grace (after a full collection brought `used` back
 * under the cap): kx_lua_budget_relax. limit 0: no cap. */
typedef struct {
    size_t used;
    size_t limit;
    size_t reserve;
    bool grace;
} kx_lua_budget_t;

typedef struct kx_lua_alloc kx_lua_alloc_t;

typedef struct {
    size_t slabs;        /* mapped now: in use plus cached */
    size_t cached_slabs; /* empty, kept for the next class that needs one */
    size_t small_blocks; /* handed out from slabs and not freed */
    size_t large_blocks; /* handed out from malloc and not freed */
} kx_lua_alloc_stats_t;

/* A new allocator charging `budget` (which must outlive it). NULL when out of memory. */
kx_lua_alloc_t *kx_lua_alloc_new(kx_lua_budget_t *budget);
/* Unmaps every slab and frees the allocator; call it after lua_close. Blocks still handed out
 * from slabs are gone with them; malloc'd ones are not tracked (lua_close frees them all). */
void kx_lua_alloc_destroy(kx_lua_alloc_t *a);
/* lua_Alloc: ud is a kx_lua_alloc_t. nsize 0 frees ptr (osize bytes) and returns NULL;
 * otherwise returns a block of nsize bytes holding the first min(osize, nsize) bytes of ptr
 * (ptr NULL: a new block), or NULL (budget refused or no memory: ptr is untouched). */
void *kx_lua_alloc_f(void *ud, void *ptr, size_t osize, size_t nsize);
void kx_lua_alloc_stats(const kx_lua_alloc_t *a, kx_lua_alloc_stats_t *st);
/* Closes the grace reserve when `used` is back under the cap. */
void kx_lua_budget_relax(kx_lua_budget_t *b);

/* A free list of structs of one size, keeping at most `cap` (past that, as after a burst, they
 * go back to free). Zero-initialise it with the size and cap: {.size = sizeof(T), .cap = N}. */
typedef struct {
    size_t size;
    int cap;
    int n;      /* kept now */
    void *head; /* through each kept struct's first word */
} kx_spare_t;

/* A zeroed struct: a kept one, else from calloc (aborts when out of memory). */
void *kx_spare_get(kx_spare_t *s);
/* Keeps p (poisoned under ASan until handed out again) or frees it when cap are kept. */
void kx_spare_put(kx_spare_t *s, void *p);
/* Frees every kept struct. */
void kx_spare_clear(kx_spare_t *s);

/* Manual AddressSanitizer poisoning (no-ops in other builds): memory a pool keeps for reuse
 * stays unreachable until it is handed out again. */
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#define KX_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define KX_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define KX_IS_POISONED(p) __asan_address_is_poisoned(p)
#else
#define KX_POISON(p, n) ((void)(p), (void)(n))
#define KX_UNPOISON(p, n) ((void)(p), (void)(n))
#define KX_IS_POISONED(p) ((void)(p), 0)
#endif

#endif
