/* test_arena.c — the planned arena (reserve, allocate once, carve) and the bump arena (mark, reset, peak). */
#include "testutil.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

static void assert_error_mentions(const char *needle) {
    const char *msg = dl_error_message();
    if (!strstr(msg, needle))
        DL_TEST_FAIL("error message \"%s\" does not mention \"%s\"", msg, needle);
}

/* An allocator that counts its calls, can refuse, and returns deliberately misaligned blocks (malloc + 8) so the
 * arena's own alignment is exercised. */
typedef struct counting_ctx {
    int allocs, frees;
    size_t last_request;
    int refuse;
} counting_ctx;

static void *counting_alloc(void *ctx, size_t bytes) {
    counting_ctx *c = ctx;
    c->allocs++;
    c->last_request = bytes;
    if (c->refuse)
        return NULL;
    unsigned char *p = malloc(bytes + 72);
    if (!p)
        return NULL;
    unsigned char *q = p + (64 - (uintptr_t)p % 64) % 64 + 8; /* 8 past a 64-byte boundary */
    memcpy(q - sizeof p, &p, sizeof p);                       /* remember what to free */
    return q;
}

static void counting_free(void *ctx, void *ptr) {
    counting_ctx *c = ctx;
    c->frees++;
    unsigned char *p;
    memcpy(&p, (unsigned char *)ptr - sizeof p, sizeof p);
    free(p);
}

static dl_allocator counting_allocator(counting_ctx *ctx) {
    dl_allocator a = {counting_alloc, counting_free, ctx, "test"};
    return a;
}

static void planned_arena_carves_aligned_disjoint_regions(void **state) {
    (void)state;
    counting_ctx ctx = {0};
    dl_allocator alloc = counting_allocator(&ctx);
    dl_arena arena;
    assert_int_equal(dl_arena_init(&arena, "activations", 0), DL_OK);
    static const size_t sizes[] = {100, 64, 1, 0, 4096, 3};
    static const char *names[] = {"ln1", "qkv", "flag", "empty", "att", "tail"};
    size_t ids[6];
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(dl_arena_reserve(&arena, names[i], sizes[i], &ids[i]), DL_OK);
        assert_int_equal(ids[i], i);
        /* Nothing to carve from before allocation. */
        assert_null(dl_arena_ptr(&arena, ids[i]));
    }
    /* Offsets 0, 128, 192, 256, 256, 4352: the total is known before any allocation. */
    static const size_t offsets[] = {0, 128, 192, 256, 256, 4352};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(arena.regions[i].offset, offsets[i]);
    assert_int_equal(dl_arena_total_bytes(&arena), 4355);
    assert_int_equal(ctx.allocs, 0);

    assert_int_equal(dl_arena_allocate(&arena, &alloc), DL_OK);
    assert_int_equal(ctx.allocs, 1);
    assert_true(ctx.last_request >= 4355 && ctx.last_request <= 4355 + 63);
    for (size_t i = 0; i < 6; i++) {
        unsigned char *p = dl_arena_ptr(&arena, ids[i]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % DL_ARENA_ALIGN, 0);
        assert_ptr_equal(p, arena.base + offsets[i]);
        /* Every byte of every region is writable (ASan checks the bounds of the block). */
        memset(p, (int)i, sizes[i]);
    }
    /* Regions did not overlap: each still holds its own fill. */
    for (size_t i = 0; i < 6; i++) {
        const unsigned char *p = dl_arena_ptr(&arena, ids[i]);
        for (size_t b = 0; b < sizes[i]; b++)
            if (p[b] != i)
                DL_TEST_FAIL("region %s byte %zu was overwritten", names[i], b);
    }
    void *ptr = NULL;
    size_t bytes = 0;
    assert_int_equal(dl_arena_get(&arena, "att", &ptr, &bytes), DL_OK);
    assert_ptr_equal(ptr, dl_arena_ptr(&arena, ids[4]));
    assert_int_equal(bytes, 4096);
    assert_int_equal(dl_arena_get(&arena, "mlp", &ptr, &bytes), DL_ERR_INVALID);
    assert_error_mentions("arena activations: no region named mlp");
    assert_null(dl_arena_ptr(&arena, 6));

    dl_arena_destroy(&arena);
    assert_int_equal(ctx.frees, 1);
    dl_arena_destroy(&arena); /* twice is harmless */
    assert_int_equal(ctx.frees, 1);
    dl_error_clear();
}

static void reserve_after_allocation_is_an_error_naming_the_region(void **state) {
    (void)state;
    dl_allocator host = dl_allocator_host();
    dl_arena arena;
    assert_int_equal(dl_arena_init(&arena, "acts", 0), DL_OK);
    assert_int_equal(dl_arena_reserve(&arena, "x", 256, NULL), DL_OK);
    assert_int_equal(dl_arena_allocate(&arena, &host), DL_OK);
    assert_int_equal(dl_arena_reserve(&arena, "h.3.mlp.fc", 16, NULL), DL_ERR_INVALID);
    assert_error_mentions("arena acts: region h.3.mlp.fc reserved after the arena was allocated");
    assert_error_mentions("(hint: ");
    assert_int_equal(arena.count, 1);
    assert_int_equal(dl_arena_allocate(&arena, &host), DL_ERR_INVALID);
    assert_error_mentions("allocated twice");
    dl_arena_destroy(&arena);
    dl_error_clear();
}

static void reserve_rejects_duplicates_names_and_overflow(void **state) {
    (void)state;
    dl_arena arena;
    assert_int_equal(dl_arena_init(&arena, "acts", 0), DL_OK);
    assert_int_equal(dl_arena_reserve(&arena, "logits", 1000, NULL), DL_OK);
    assert_int_equal(dl_arena_reserve(&arena, "logits", 8, NULL), DL_ERR_INVALID);
    assert_error_mentions("arena acts: region logits reserved twice");
    assert_int_equal(dl_arena_reserve(&arena, "", 8, NULL), DL_ERR_INVALID);
    assert_error_mentions("arena acts: region with an empty name");
    assert_int_equal(dl_arena_reserve(&arena, NULL, 8, NULL), DL_ERR_INVALID);
    char long_name[DL_ARENA_NAME_MAX + 10];
    memset(long_name, 'r', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(dl_arena_reserve(&arena, long_name, 8, NULL), DL_ERR_INVALID);
    assert_error_mentions("name longer than 127 characters");
    /* A size that cannot be added to the arena: an error naming the region, not a wrapped total. */
    assert_int_equal(dl_arena_reserve(&arena, "huge", SIZE_MAX - 100, NULL), DL_ERR_INVALID);
    assert_error_mentions("arena acts: region huge of");
    assert_error_mentions("overflows");
    assert_int_equal(arena.count, 1);
    assert_int_equal(dl_arena_total_bytes(&arena), 1000);
    /* The next region still lands right after the first. */
    size_t id;
    assert_int_equal(dl_arena_reserve(&arena, "probs", 8, &id), DL_OK);
    assert_int_equal(id, 1);
    assert_int_equal(arena.regions[1].offset, 1024);
    dl_arena_destroy(&arena);

    assert_int_equal(dl_arena_init(&arena, "", 0), DL_ERR_INVALID);
    assert_int_equal(dl_arena_reserve(&arena, "x", 1, NULL), DL_ERR_INVALID);
    assert_error_mentions("not initialised");
    dl_error_clear();
}

static void limit_is_enforced_per_region(void **state) {
    (void)state;
    dl_arena arena;
    assert_int_equal(dl_arena_init(&arena, "device", 1024), DL_OK);
    assert_int_equal(dl_arena_reserve(&arena, "a", 512, NULL), DL_OK);
    assert_int_equal(dl_arena_reserve(&arena, "b", 512, NULL), DL_OK);
    assert_int_equal(dl_arena_total_bytes(&arena), 1024);
    assert_int_equal(dl_arena_reserve(&arena, "c", 1, NULL), DL_ERR_NOMEM);
    assert_error_mentions("arena device: region c of 1 bytes exceeds the limit");
    assert_int_equal(dl_arena_total_bytes(&arena), 1024);
    /* A 0-byte region at the very end still fits. */
    assert_int_equal(dl_arena_reserve(&arena, "d", 0, NULL), DL_OK);
    dl_arena_destroy(&arena);
    dl_error_clear();
}

static void allocator_failure_names_arena_and_largest_region(void **state) {
    (void)state;
    counting_ctx ctx = {.refuse = 1};
    dl_allocator alloc = counting_allocator(&ctx);
    dl_arena arena;
    assert_int_equal(dl_arena_init(&arena, "activations", 0), DL_OK);
    assert_int_equal(dl_arena_reserve(&arena, "small", 10, NULL), DL_OK);
    assert_int_equal(dl_arena_reserve(&arena, "h.0.att", (size_t)3 << 30, NULL), DL_OK);
    assert_int_equal(dl_arena_allocate(&arena, &alloc), DL_ERR_NOMEM);
    assert_error_mentions("arena activations: test allocator could not provide 3.00 GiB for 2 regions");
    assert_error_mentions("largest: h.0.att, 3.00 GiB");
    assert_error_mentions("(hint: ");
    assert_int_equal(arena.allocated, 0);
    assert_null(dl_arena_ptr(&arena, 0));
    /* After a refusal the arena can still be allocated from another allocator. */
    ctx.refuse = 0;
    dl_arena_destroy(&arena);
    assert_int_equal(ctx.frees, 0);

    dl_allocator none = {0};
    assert_int_equal(dl_arena_init(&arena, "acts", 0), DL_OK);
    assert_int_equal(dl_arena_allocate(&arena, &none), DL_ERR_INVALID);
    assert_error_mentions("no allocator");
    dl_arena_destroy(&arena);
    dl_error_clear();
}

static void empty_arena_calls_no_allocator(void **state) {
    (void)state;
    counting_ctx ctx = {0};
    dl_allocator alloc = counting_allocator(&ctx);
    dl_arena arena;
    assert_int_equal(dl_arena_init(&arena, "nothing", 0), DL_OK);
    assert_int_equal(dl_arena_reserve(&arena, "zero", 0, NULL), DL_OK);
    assert_int_equal(dl_arena_allocate(&arena, &alloc), DL_OK);
    assert_int_equal(ctx.allocs, 0);
    assert_null(dl_arena_ptr(&arena, 0));
    dl_arena_destroy(&arena);
    assert_int_equal(ctx.frees, 0);
}

static void print_lists_largest_regions_first(void **state) {
    (void)state;
    dl_arena arena;
    assert_int_equal(dl_arena_init(&arena, "acts", 0), DL_OK);
    assert_int_equal(dl_arena_reserve(&arena, "small", 10, NULL), DL_OK);
    assert_int_equal(dl_arena_reserve(&arena, "big", 5000, NULL), DL_OK);
    assert_int_equal(dl_arena_reserve(&arena, "mid", 300, NULL), DL_OK);
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    assert_non_null(out);
    assert_int_equal(dl_arena_print(&arena, out, 2), DL_OK);
    fclose(out);
    assert_non_null(strstr(text, "arena acts: 5.29 KiB in 3 regions (planned, not allocated)"));
    const char *big = strstr(text, "big"), *mid = strstr(text, "mid");
    assert_non_null(big);
    assert_non_null(mid);
    assert_true(big < mid);
    assert_null(strstr(text, "small "));
    assert_non_null(strstr(text, "... 1 smaller regions"));
    free(text);
    dl_arena_destroy(&arena);
}

static void bump_allocates_aligned_and_tracks_peak(void **state) {
    (void)state;
    dl_bump bump;
    assert_int_equal(dl_bump_init(&bump, "scratch", 1024), DL_OK);
    void *a, *b, *c;
    assert_int_equal(dl_bump_alloc(&bump, "a", 10, &a), DL_OK);
    assert_int_equal(dl_bump_alloc(&bump, "b", 100, &b), DL_OK);
    assert_int_equal((uintptr_t)a % DL_ARENA_ALIGN, 0);
    assert_int_equal((uintptr_t)b % DL_ARENA_ALIGN, 0);
    assert_ptr_equal((unsigned char *)b, (unsigned char *)a + 64);
    memset(a, 1, 10);
    memset(b, 2, 100);
    assert_int_equal(dl_bump_mark(&bump), 164);

    size_t mark = dl_bump_mark(&bump);
    assert_int_equal(dl_bump_alloc_array(&bump, "c", 100, sizeof(float), &c), DL_OK);
    assert_ptr_equal((unsigned char *)c, (unsigned char *)a + 192);
    memset(c, 3, 400);
    assert_int_equal(dl_bump_peak(&bump), 592);
    assert_int_equal(dl_bump_reset(&bump, mark), DL_OK);
    assert_int_equal(dl_bump_mark(&bump), 164);
#if defined(__SANITIZE_ADDRESS__)
    /* Under ASan released scratch is poisoned, so a use after reset is reported; live allocations are not. */
    assert_true(__asan_address_is_poisoned(c));
    assert_true(__asan_address_is_poisoned((unsigned char *)b + 100));
    assert_false(__asan_address_is_poisoned((unsigned char *)b + 99));
#endif
    /* The peak remembers the high-water mark; the freed space is reused. */
    assert_int_equal(dl_bump_peak(&bump), 592);
    void *d;
    assert_int_equal(dl_bump_alloc(&bump, "d", 8, &d), DL_OK);
    assert_ptr_equal(d, c);
    memset(d, 4, 8);
    /* Earlier allocations are untouched. */
    assert_int_equal(((unsigned char *)a)[9], 1);
    assert_int_equal(((unsigned char *)b)[99], 2);

    assert_int_equal(dl_bump_reset(&bump, 0), DL_OK);
    assert_int_equal(dl_bump_mark(&bump), 0);
    /* The whole capacity can be taken at once after a full reset. */
    void *all;
    assert_int_equal(dl_bump_alloc(&bump, "all", 1024, &all), DL_OK);
    assert_ptr_equal(all, a);
    memset(all, 5, 1024);
    assert_int_equal(dl_bump_peak(&bump), 1024);
    dl_bump_destroy(&bump);
    dl_bump_destroy(&bump);
}

static void bump_overflow_is_an_error_naming_the_allocation(void **state) {
    (void)state;
    dl_bump bump;
    assert_int_equal(dl_bump_init(&bump, "step scratch", 256), DL_OK);
    void *p = NULL, *q = (void *)&bump;
    assert_int_equal(dl_bump_alloc(&bump, "ids", 200, &p), DL_OK);
    assert_int_equal(dl_bump_alloc(&bump, "unique ids", 1, &q), DL_ERR_NOMEM);
    assert_error_mentions("scratch arena step scratch: unique ids needs 1 B but only 56 B of 256 B is free");
    assert_error_mentions("peak so far is 200 bytes");
    assert_ptr_equal(q, (void *)&bump); /* output untouched */
    assert_int_equal(dl_bump_mark(&bump), 200);
    /* A request so large that cursor + request wraps around. */
    assert_int_equal(dl_bump_alloc(&bump, "wrap", SIZE_MAX - 10, &q), DL_ERR_NOMEM);
    assert_error_mentions("wrap needs");
    assert_int_equal(dl_bump_alloc_array(&bump, "grid", SIZE_MAX / 2, 4, &q), DL_ERR_INVALID);
    assert_error_mentions("grid of");
    assert_error_mentions("overflows");
    assert_int_equal(dl_bump_mark(&bump), 200);
    /* Resetting to a mark beyond the cursor means marks were misused. */
    assert_int_equal(dl_bump_reset(&bump, 201), DL_ERR_INVALID);
    assert_error_mentions("beyond the cursor");
    assert_int_equal(dl_bump_mark(&bump), 200);
    dl_bump_destroy(&bump);

    /* A zero-capacity arena: nothing but empty requests fit. */
    assert_int_equal(dl_bump_init(&bump, "none", 0), DL_OK);
    assert_int_equal(dl_bump_alloc(&bump, "x", 0, &p), DL_OK);
    assert_int_equal(dl_bump_alloc(&bump, "x", 1, &p), DL_ERR_NOMEM);
    dl_bump_destroy(&bump);
    dl_error_clear();
}

/* A bump arena over a region of a host planned arena: the usual way scratch gets its memory at start-up. */
static void bump_over_a_lent_buffer(void **state) {
    (void)state;
    dl_allocator host = dl_allocator_host();
    dl_arena arena;
    size_t id;
    assert_int_equal(dl_arena_init(&arena, "host", 0), DL_OK);
    assert_int_equal(dl_arena_reserve(&arena, "scratch", 512, &id), DL_OK);
    assert_int_equal(dl_arena_allocate(&arena, &host), DL_OK);
    dl_bump bump;
    assert_int_equal(dl_bump_init_buffer(&bump, "scratch", dl_arena_ptr(&arena, id), 512), DL_OK);
    void *p;
    assert_int_equal(dl_bump_alloc(&bump, "p", 512, &p), DL_OK);
    assert_ptr_equal(p, dl_arena_ptr(&arena, id));
    memset(p, 7, 512);
    assert_int_equal(dl_bump_alloc(&bump, "q", 1, &p), DL_ERR_NOMEM);
    assert_int_equal(dl_bump_reset(&bump, 0), DL_OK);
    dl_bump_destroy(&bump);
    /* The lent memory is usable by its owner again (ASan would report a poisoned byte here). */
    memset(dl_arena_ptr(&arena, id), 0, 512);
    dl_arena_destroy(&arena);

    unsigned char raw[128];
    unsigned char *odd = raw + ((64 - (uintptr_t)raw % 64) % 64) + 1;
    assert_int_equal(dl_bump_init_buffer(&bump, "odd", odd, 16), DL_ERR_INVALID);
    assert_error_mentions("not aligned to 64 bytes");
    assert_int_equal(dl_bump_init_buffer(&bump, "null", NULL, 16), DL_ERR_INVALID);
    assert_error_mentions("no buffer");
    dl_error_clear();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(planned_arena_carves_aligned_disjoint_regions),
        cmocka_unit_test(reserve_after_allocation_is_an_error_naming_the_region),
        cmocka_unit_test(reserve_rejects_duplicates_names_and_overflow),
        cmocka_unit_test(limit_is_enforced_per_region),
        cmocka_unit_test(allocator_failure_names_arena_and_largest_region),
        cmocka_unit_test(empty_arena_calls_no_allocator),
        cmocka_unit_test(print_lists_largest_regions_first),
        cmocka_unit_test(bump_allocates_aligned_and_tracks_peak),
        cmocka_unit_test(bump_overflow_is_an_error_naming_the_allocation),
        cmocka_unit_test(bump_over_a_lent_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
