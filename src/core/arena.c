/* arena.c — see arena.h.
 *
 * The planned arena keeps its region table in host memory (it is small and read at start-up) and asks its
 * allocator for total + DL_ARENA_ALIGN - 1 bytes so it can align the base itself: allocators differ in what they
 * guarantee (malloc 16 bytes, cudaMalloc 256) and the arena should not depend on it. It does pointer arithmetic on
 * the base only, never dereferences it, so device pointers are fine.
 *
 * The bump arena is host only. Under AddressSanitizer it poisons every byte it has not handed out, so reading a
 * scratch buffer after dl_bump_reset, or past the end of an allocation into the next one's padding, is reported at
 * the faulting line instead of silently reading stale data. */
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define DL_ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DL_ARENA_ASAN 1
#endif
#endif

#ifdef DL_ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* ---- helpers -------------------------------------------------------------------------------------------------- */

/* Rounds x up to a multiple of DL_ARENA_ALIGN into *out; 0 on overflow. */
static int align_up(size_t x, size_t *out) {
    size_t padded;
    if (__builtin_add_overflow(x, (size_t)DL_ARENA_ALIGN - 1, &padded))
        return 0;
    *out = padded & ~((size_t)DL_ARENA_ALIGN - 1);
    return 1;
}

/* "1.50 GiB" style size for messages. */
static const char *human_bytes(size_t bytes, char *buf, size_t cap) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 6) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%zu B", bytes);
    else
        snprintf(buf, cap, "%.2f %s", v, units[u]);
    return buf;
}

/* Copies a name into a fixed field; fails when empty or too long. `what` says whose name it is ("arena x: region"). */
static dl_status copy_name(char dst[DL_ARENA_NAME_MAX], const char *name, const char *what) {
    DL_REQUIRE(name && name[0], DL_ERR_INVALID, "%s with an empty name", what);
    size_t len = strnlen(name, DL_ARENA_NAME_MAX);
    DL_REQUIRE(len < DL_ARENA_NAME_MAX, DL_ERR_INVALID, "%s %.60s...: name longer than %d characters", what, name,
               DL_ARENA_NAME_MAX - 1);
    memcpy(dst, name, len + 1);
    return DL_OK;
}

static void *host_alloc(void *ctx, size_t bytes) {
    (void)ctx;
    return malloc(bytes ? bytes : 1);
}

static void host_free(void *ctx, void *ptr) {
    (void)ctx;
    free(ptr);
}

dl_allocator dl_allocator_host(void) {
    dl_allocator a = {host_alloc, host_free, NULL, "host"};
    return a;
}

/* ---- planned arena -------------------------------------------------------------------------------------------- */

dl_status dl_arena_init(dl_arena *arena, const char *name, size_t limit) {
    DL_REQUIRE(arena, DL_ERR_INVALID, "dl_arena_init: no arena");
    memset(arena, 0, sizeof *arena);
    DL_CHECK(copy_name(arena->name, name, "arena"));
    arena->limit = limit;
    return DL_OK;
}

static const dl_arena_region *find_region(const dl_arena *arena, const char *name) {
    for (size_t i = 0; i < arena->count; i++)
        if (strcmp(arena->regions[i].name, name) == 0)
            return &arena->regions[i];
    return NULL;
}

dl_status dl_arena_reserve(dl_arena *arena, const char *region, size_t bytes, size_t *id) {
    DL_REQUIRE(arena && arena->name[0], DL_ERR_INVALID, "dl_arena_reserve: arena not initialised");
    dl_arena_region r;
    char what[DL_ARENA_NAME_MAX + 16];
    snprintf(what, sizeof what, "arena %s: region", arena->name);
    DL_CHECK(copy_name(r.name, region, what));
    if (arena->allocated) {
        DL_FAIL(DL_ERR_INVALID, "arena %s: region %s reserved after the arena was allocated", arena->name, r.name);
        dl_error_hint("reserve every region before dl_arena_allocate");
        return DL_ERR_INVALID;
    }
    DL_REQUIRE(!find_region(arena, r.name), DL_ERR_INVALID, "arena %s: region %s reserved twice", arena->name,
               r.name);
    size_t offset, end;
    if (!align_up(arena->total, &offset) || __builtin_add_overflow(offset, bytes, &end)) {
        return DL_FAIL(DL_ERR_INVALID, "arena %s: region %s of %zu bytes overflows the arena size (%zu bytes so far)",
                       arena->name, r.name, bytes, arena->total);
    }
    if (arena->limit && end > arena->limit) {
        char need[32], lim[32];
        DL_FAIL(DL_ERR_NOMEM, "arena %s: region %s of %zu bytes exceeds the limit: %s needed, %s allowed", arena->name,
                r.name, bytes, human_bytes(end, need, sizeof need), human_bytes(arena->limit, lim, sizeof lim));
        dl_error_hint("reduce the batch or sequence length, or use a device with more memory");
        return DL_ERR_NOMEM;
    }
    if (arena->count == arena->capacity) {
        size_t cap = arena->capacity ? arena->capacity * 2 : 16;
        dl_arena_region *grown = realloc(arena->regions, cap * sizeof *grown);
        DL_REQUIRE(grown, DL_ERR_NOMEM, "arena %s: out of host memory recording region %s", arena->name, r.name);
        arena->regions = grown;
        arena->capacity = cap;
    }
    r.offset = offset;
    r.bytes = bytes;
    arena->regions[arena->count] = r;
    if (id)
        *id = arena->count;
    arena->count++;
    arena->total = end;
    return DL_OK;
}

/* The largest region, for the out-of-memory message. */
static const dl_arena_region *largest_region(const dl_arena *arena) {
    const dl_arena_region *best = NULL;
    for (size_t i = 0; i < arena->count; i++)
        if (!best || arena->regions[i].bytes > best->bytes)
            best = &arena->regions[i];
    return best;
}

dl_status dl_arena_allocate(dl_arena *arena, const dl_allocator *allocator) {
    DL_REQUIRE(arena && arena->name[0], DL_ERR_INVALID, "dl_arena_allocate: arena not initialised");
    DL_REQUIRE(allocator && allocator->alloc, DL_ERR_INVALID, "arena %s: no allocator given", arena->name);
    DL_REQUIRE(!arena->allocated, DL_ERR_INVALID, "arena %s: allocated twice", arena->name);
    const char *source = allocator->name ? allocator->name : "the";
    if (arena->total > 0) {
        size_t request;
        DL_REQUIRE(!__builtin_add_overflow(arena->total, (size_t)DL_ARENA_ALIGN - 1, &request), DL_ERR_INVALID,
                   "arena %s: size %zu bytes overflows with alignment", arena->name, arena->total);
        void *raw = allocator->alloc(allocator->ctx, request);
        if (!raw) {
            char size[32], big[32];
            const dl_arena_region *r = largest_region(arena);
            DL_FAIL(DL_ERR_NOMEM, "arena %s: %s allocator could not provide %s for %zu regions (largest: %s, %s)",
                    arena->name, source, human_bytes(request, size, sizeof size), arena->count, r->name,
                    human_bytes(r->bytes, big, sizeof big));
            dl_error_hint("reduce the batch or sequence length, or keep fewer activations (gpt: "
                          "model.checkpoint: blocks)");
            return DL_ERR_NOMEM;
        }
        uintptr_t addr = (uintptr_t)raw;
        uintptr_t pad = (DL_ARENA_ALIGN - addr % DL_ARENA_ALIGN) % DL_ARENA_ALIGN;
        arena->raw = raw;
        arena->base = (unsigned char *)raw + pad;
    }
    arena->allocator = *allocator;
    arena->allocated = 1;
    return DL_OK;
}

void *dl_arena_ptr(const dl_arena *arena, size_t id) {
    if (!arena || !arena->allocated || id >= arena->count || !arena->base)
        return NULL;
    return arena->base + arena->regions[id].offset;
}

dl_status dl_arena_get(const dl_arena *arena, const char *region, void **ptr, size_t *bytes) {
    DL_REQUIRE(arena && region, DL_ERR_INVALID, "dl_arena_get: no arena or region name");
    const dl_arena_region *r = find_region(arena, region);
    DL_REQUIRE(r, DL_ERR_INVALID, "arena %s: no region named %.*s", arena->name, DL_ARENA_NAME_MAX, region);
    if (ptr)
        *ptr = dl_arena_ptr(arena, (size_t)(r - arena->regions));
    if (bytes)
        *bytes = r->bytes;
    return DL_OK;
}

size_t dl_arena_total_bytes(const dl_arena *arena) { return arena ? arena->total : 0; }

static int by_size_desc(const void *a, const void *b) {
    const dl_arena_region *x = *(const dl_arena_region *const *)a, *y = *(const dl_arena_region *const *)b;
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? 1 : -1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

dl_status dl_arena_print(const dl_arena *arena, FILE *out, size_t max_regions) {
    DL_REQUIRE(arena && out, DL_ERR_INVALID, "dl_arena_print: no arena or stream");
    char size[32];
    int ok = fprintf(out, "arena %s: %s in %zu regions%s\n", arena->name,
                     human_bytes(arena->total, size, sizeof size), arena->count,
                     arena->allocated ? "" : " (planned, not allocated)") >= 0;
    if (arena->count > 0 && ok) {
        const dl_arena_region **order = malloc(arena->count * sizeof *order);
        DL_REQUIRE(order, DL_ERR_NOMEM, "arena %s: out of memory printing the summary", arena->name);
        for (size_t i = 0; i < arena->count; i++)
            order[i] = &arena->regions[i];
        qsort(order, arena->count, sizeof *order, by_size_desc);
        size_t shown = max_regions && max_regions < arena->count ? max_regions : arena->count;
        for (size_t i = 0; i < shown && ok; i++)
            ok = fprintf(out, "  %-40s %12zu bytes at %zu\n", order[i]->name, order[i]->bytes, order[i]->offset) >= 0;
        if (shown < arena->count && ok)
            ok = fprintf(out, "  ... %zu smaller regions\n", arena->count - shown) >= 0;
        free(order);
    }
    DL_REQUIRE(ok, DL_ERR_IO, "arena %s: writing the summary failed", arena->name);
    return DL_OK;
}

void dl_arena_destroy(dl_arena *arena) {
    if (!arena)
        return;
    if (arena->raw && arena->allocator.free)
        arena->allocator.free(arena->allocator.ctx, arena->raw);
    free(arena->regions);
    memset(arena, 0, sizeof *arena);
}

/* ---- bump arena ----------------------------------------------------------------------------------------------- */

dl_status dl_bump_init(dl_bump *bump, const char *name, size_t capacity) {
    DL_REQUIRE(bump, DL_ERR_INVALID, "dl_bump_init: no arena");
    memset(bump, 0, sizeof *bump);
    DL_CHECK(copy_name(bump->name, name, "scratch arena"));
    if (capacity > 0) {
        size_t rounded;
        DL_REQUIRE(align_up(capacity, &rounded), DL_ERR_INVALID, "scratch arena %s: capacity %zu overflows",
                   bump->name, capacity);
        void *block = aligned_alloc(DL_ARENA_ALIGN, rounded);
        if (!block) {
            char size[32];
            DL_FAIL(DL_ERR_NOMEM, "scratch arena %s: cannot allocate %s of host memory", bump->name,
                    human_bytes(rounded, size, sizeof size));
            memset(bump, 0, sizeof *bump);
            return DL_ERR_NOMEM;
        }
        bump->owned = block;
        bump->base = block;
        bump->capacity = capacity;
        POISON(bump->base, capacity);
    }
    return DL_OK;
}

dl_status dl_bump_init_buffer(dl_bump *bump, const char *name, void *buffer, size_t capacity) {
    DL_REQUIRE(bump, DL_ERR_INVALID, "dl_bump_init_buffer: no arena");
    memset(bump, 0, sizeof *bump);
    DL_CHECK(copy_name(bump->name, name, "scratch arena"));
    DL_REQUIRE(buffer || capacity == 0, DL_ERR_INVALID, "scratch arena %s: no buffer for %zu bytes", bump->name,
               capacity);
    DL_REQUIRE((uintptr_t)buffer % DL_ARENA_ALIGN == 0, DL_ERR_INVALID,
               "scratch arena %s: buffer %p is not aligned to %d bytes", bump->name, buffer, DL_ARENA_ALIGN);
    bump->base = buffer;
    bump->capacity = capacity;
    if (buffer)
        POISON(bump->base, capacity);
    return DL_OK;
}

dl_status dl_bump_alloc(dl_bump *bump, const char *what, size_t bytes, void **out) {
    DL_REQUIRE(bump && out, DL_ERR_INVALID, "dl_bump_alloc: no arena or output");
    const char *label = what && what[0] ? what : "(unnamed)";
    size_t start, end;
    /* The cursor never exceeds capacity, so aligning it can only overflow for a capacity near SIZE_MAX. */
    int fits = align_up(bump->used, &start) && !__builtin_add_overflow(start, bytes, &end) && end <= bump->capacity;
    if (!fits) {
        char want[32], left[32], cap[32];
        size_t free_bytes = bump->capacity - bump->used;
        DL_FAIL(DL_ERR_NOMEM, "scratch arena %s: %s needs %s but only %s of %s is free", bump->name, label,
                human_bytes(bytes, want, sizeof want), human_bytes(free_bytes, left, sizeof left),
                human_bytes(bump->capacity, cap, sizeof cap));
        dl_error_hint("the scratch arena is sized at start-up; its peak so far is %zu bytes", bump->peak);
        return DL_ERR_NOMEM;
    }
    /* A 0-capacity arena has no base; only 0-byte requests get here, and they get NULL. */
    unsigned char *p = bump->base ? bump->base + start : NULL;
    if (p)
        UNPOISON(p, bytes);
    bump->used = end;
    if (end > bump->peak)
        bump->peak = end;
    *out = p;
    return DL_OK;
}

dl_status dl_bump_alloc_array(dl_bump *bump, const char *what, size_t count, size_t size, void **out) {
    size_t bytes;
    DL_REQUIRE(!__builtin_mul_overflow(count, size, &bytes), DL_ERR_INVALID,
               "scratch arena %s: %s of %zu x %zu bytes overflows size_t", bump ? bump->name : "?",
               what ? what : "(unnamed)", count, size);
    return dl_bump_alloc(bump, what, bytes, out);
}

size_t dl_bump_mark(const dl_bump *bump) { return bump ? bump->used : 0; }

dl_status dl_bump_reset(dl_bump *bump, size_t mark) {
    DL_REQUIRE(bump, DL_ERR_INVALID, "dl_bump_reset: no arena");
    DL_REQUIRE(mark <= bump->used, DL_ERR_INVALID,
               "scratch arena %s: reset to mark %zu beyond the cursor %zu (marks reset out of order)", bump->name,
               mark, bump->used);
    if (bump->base)
        POISON(bump->base + mark, bump->used - mark);
    bump->used = mark;
    return DL_OK;
}

size_t dl_bump_peak(const dl_bump *bump) { return bump ? bump->peak : 0; }

void dl_bump_destroy(dl_bump *bump) {
    if (!bump)
        return;
    /* Lent memory goes back to its owner usable; owned memory must be unpoisoned before free as well. */
    if (bump->base)
        UNPOISON(bump->base, bump->capacity);
    free(bump->owned);
    memset(bump, 0, sizeof *bump);
}
