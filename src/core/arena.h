/* arena.h — memory with a clear lifetime: a planned arena for step buffers and a bump arena for host scratch.
 *
 * Training allocates nothing per step (docs/core.md). Buffers whose sizes follow from the config — activations,
 * gradients of activations, attention statistics — come from a *planned arena*, in two passes (llm.c's activation
 * buffer, made checkable):
 *
 *     dl_arena acts;
 *     DL_CHECK(dl_arena_init(&acts, "activations", 0));             // 0: no limit
 *     size_t ln1, qkv;
 *     DL_CHECK(dl_arena_reserve(&acts, "h.0.ln1", (size_t)B * T * C * sizeof(float), &ln1));  // planning pass
 *     DL_CHECK(dl_arena_reserve(&acts, "h.0.qkv", (size_t)B * T * 3 * C * sizeof(float), &qkv));
 *     DL_CHECK(dl_arena_allocate(&acts, &allocator));               // one allocation for everything
 *     float *x = dl_arena_ptr(&acts, ln1);                          // regions carved from it, 64-byte aligned
 *     ...
 *     dl_arena_destroy(&acts);
 *
 * The memory itself comes from a caller-supplied allocator, so the same plan works for host memory
 * (dl_allocator_host) and device memory (a cudaMalloc wrapper in the CUDA backend); the arena never reads or writes
 * the memory it hands out. Reserving after the allocation, a reservation beyond the arena's limit and a size that
 * overflows are errors naming the arena and the region — never a silently short buffer.
 *
 * Short-lived host temporaries (a sort buffer, the unique ids of a batch) come from a *bump arena*: one block
 * allocated up front, allocations move a cursor forward, and dl_bump_mark / dl_bump_reset release everything
 * allocated after a mark at once — per step, or per call:
 *
 *     size_t mark = dl_bump_mark(&scratch);
 *     void *ids;
 *     DL_CHECK(dl_bump_alloc_array(&scratch, "unique ids", n, sizeof(int64_t), &ids));
 *     ...
 *     DL_CHECK(dl_bump_reset(&scratch, mark));
 *
 * Both report their peak (the planned arena's total is its peak), so start-up can log what a step needs. Under
 * AddressSanitizer the bump arena poisons memory it has not handed out, so a use after reset is reported. */
#ifndef DL_CORE_ARENA_H
#define DL_CORE_ARENA_H

#include <stddef.h>
#include <stdio.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    DL_ARENA_ALIGN = 64,     /* every region and bump allocation starts at a multiple of this many bytes */
    DL_ARENA_NAME_MAX = 128, /* bytes including the NUL, for arena and region names */
};

/* Where an arena's memory comes from. alloc returns NULL on failure (any alignment; the arena aligns itself);
 * free may be NULL when the memory needs no release. ctx is passed through untouched. */
typedef struct dl_allocator {
    void *(*alloc)(void *ctx, size_t bytes);
    void (*free)(void *ctx, void *ptr);
    void *ctx;
    const char *name; /* for messages: "host", "cuda:0" */
} dl_allocator;

/* The host allocator: malloc and free. */
dl_allocator dl_allocator_host(void);

typedef struct dl_arena_region {
    char name[DL_ARENA_NAME_MAX];
    size_t offset; /* bytes from the arena's aligned base, a multiple of DL_ARENA_ALIGN */
    size_t bytes;  /* as reserved */
} dl_arena_region;

/* A planned arena. Treat the fields as read-only. */
typedef struct dl_arena {
    char name[DL_ARENA_NAME_MAX];
    size_t limit;              /* largest total allowed, 0 for none */
    dl_arena_region *regions;  /* host memory, in order of reservation */
    size_t count;
    size_t capacity;
    size_t total;              /* bytes the regions span: the arena's size and its peak */
    dl_allocator allocator;    /* set by dl_arena_allocate */
    void *raw;                 /* what the allocator returned */
    unsigned char *base;       /* raw rounded up to DL_ARENA_ALIGN; NULL before allocation or when total is 0 */
    int allocated;
} dl_arena;

/* Starts the planning pass of an empty arena called `name` (for messages). `limit` caps the total in bytes (e.g. a
 * device's free memory); 0 means no cap. */
dl_status dl_arena_init(dl_arena *arena, const char *name, size_t limit);

/* Reserves `bytes` (0 allowed) under `region`, a name unique within the arena, and stores its id in *id (may be
 * NULL). Fails, naming the region, after dl_arena_allocate, on a duplicate or bad name, when the total would exceed
 * the limit, or when it would overflow size_t. The arena is unchanged on failure. */
dl_status dl_arena_reserve(dl_arena *arena, const char *region, size_t bytes, size_t *id);

/* Ends planning: takes total bytes (plus alignment slack) from `allocator` in one call. An allocator failure is
 * DL_ERR_NOMEM naming the arena, its size and its largest region. Fails if already allocated. An arena with total
 * 0 calls no allocator. */
dl_status dl_arena_allocate(dl_arena *arena, const dl_allocator *allocator);

/* The start of region `id` after allocation; NULL before it or for an unknown id. A 0-byte region gets a pointer
 * that must not be dereferenced (NULL when the whole arena is empty). */
void *dl_arena_ptr(const dl_arena *arena, size_t id);

/* Looks a region up by name: its pointer (NULL before allocation) and size, each output optional. A missing name
 * is DL_ERR_INVALID naming it. */
dl_status dl_arena_get(const dl_arena *arena, const char *region, void **ptr, size_t *bytes);

/* Total bytes the regions span, padding included; known from the first reservation on, before allocation. */
size_t dl_arena_total_bytes(const dl_arena *arena);

/* Writes a summary to `out`: the arena's size and its regions, largest first, up to `max_regions` of them (0 for
 * all), for the start-up log. */
dl_status dl_arena_print(const dl_arena *arena, FILE *out, size_t max_regions);

/* Returns the memory to its allocator and the arena to a zeroed state; safe on a zeroed or destroyed arena. */
void dl_arena_destroy(dl_arena *arena);

/* A bump arena over one host block. Treat the fields as read-only. */
typedef struct dl_bump {
    char name[DL_ARENA_NAME_MAX];
    unsigned char *base; /* 64-byte aligned */
    size_t capacity;
    size_t used;         /* cursor: bytes from base, including alignment padding */
    size_t peak;         /* largest `used` seen since init */
    void *owned;         /* the block to free, NULL when the memory was lent by the caller */
} dl_bump;

/* A bump arena called `name` owning a fresh host block of `capacity` bytes (0 allowed: every non-empty allocation
 * fails). Fails with DL_ERR_NOMEM when the block cannot be allocated. */
dl_status dl_bump_init(dl_bump *bump, const char *name, size_t capacity);

/* A bump arena over `buffer`, lent by the caller (e.g. a region of a host dl_arena), which must be
 * DL_ARENA_ALIGN-aligned and outlive the bump arena; it is never freed here. */
dl_status dl_bump_init_buffer(dl_bump *bump, const char *name, void *buffer, size_t capacity);

/* Takes `bytes` (uninitialised, 64-byte aligned) and stores the pointer in *out. `what` names the allocation for the
 * error when it does not fit: DL_ERR_NOMEM naming the arena, `what`, the request and the space left, with the
 * arena unchanged. */
dl_status dl_bump_alloc(dl_bump *bump, const char *what, size_t bytes, void **out);

/* dl_bump_alloc of count * size bytes, failing (naming `what`) when the product overflows. */
dl_status dl_bump_alloc_array(dl_bump *bump, const char *what, size_t count, size_t size, void **out);

/* The cursor, to hand back to dl_bump_reset. */
size_t dl_bump_mark(const dl_bump *bump);

/* Releases every allocation made after `mark` (0 releases all). Fails when mark lies beyond the cursor, which
 * means marks were reset out of order. */
dl_status dl_bump_reset(dl_bump *bump, size_t mark);

/* The most bytes in use at once since init: what a step needs, to size the arena next time. */
size_t dl_bump_peak(const dl_bump *bump);

/* Frees an owned block and zeroes the arena; safe on a zeroed or destroyed one. */
void dl_bump_destroy(dl_bump *bump);

#ifdef __cplusplus
}
#endif

#endif
