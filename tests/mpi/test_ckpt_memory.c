/* test_ckpt_memory.c — checkpointing a sharded FFM table never makes a rank hold the whole table. Runs under
 * mpirun -np 2 and -np 3.
 *
 * The test counts the heap: every byte malloc'd and not yet freed in the process (dealer, HDF5, MPI alike), and the
 * highest that count reaches while a checkpoint is saved and while it is loaded back. Part of that is fixed
 * whatever the table: MPI-IO's aggregation buffers (Open MPI's take 32 MiB on an aggregating rank), HDF5's caches,
 * the slabs split tables move through (ckpt_slabs.c). What must not be there is anything that grows with the table:
 * a save that gathered it on rank 0 (as dealer did before) or a selection of one piece per row (what writing each
 * rank's rows in place costs HDF5 and MPI-IO) grows a rank's heap by about the table or more. So the test saves and
 * loads two tables, 8.5 and 51 MiB, and requires the peak growth for the larger to exceed the smaller's by less than
 * an eighth of the difference between them (measured: the same to within half a MiB).
 *
 * Counting works two ways. In a plain build this file defines malloc and its family on top of glibc's (glibc
 * supports replacing them; the program's definitions take precedence over every library's calls). Under
 * AddressSanitizer, which owns malloc, the sanitizer's allocation hooks do the counting. Before measuring, the test
 * checks that the counter sees a table-sized allocation, so it cannot pass by counting nothing. */
#include "testutil.h"

#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/world.h"
#include "core/hash.h"
#include "train/run_config.h"
#include "ops/ops.h"
#include "ckpt/checkpoint.h"
#include "models/model.h"

/* ---- heap accounting --------------------------------------------------------------------------------------------- */

static atomic_llong heap_now, heap_peak;

static void heap_add(long long bytes) {
    long long now = atomic_fetch_add(&heap_now, bytes) + bytes;
    long long peak = atomic_load(&heap_peak);
    while (now > peak && !atomic_compare_exchange_weak(&heap_peak, &peak, now)) {
    }
}

/* Starts a measurement: the peak so far is forgotten; returns the heap now. */
static long long heap_mark(void) {
    long long now = atomic_load(&heap_now);
    atomic_store(&heap_peak, now);
    return now;
}

#if defined(__SANITIZE_ADDRESS__)
/* From the sanitizer runtime (sanitizer/allocator_interface.h, which GCC does not install). */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
size_t __sanitizer_get_allocated_size(const volatile void *p);

static void on_malloc(const volatile void *p, size_t bytes) {
    if (p)
        heap_add((long long)bytes);
}

static void on_free(const volatile void *p) {
    if (p)
        heap_add(-(long long)__sanitizer_get_allocated_size((const void *)p));
}

static void heap_start(void) { __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free); }
#else
#include <errno.h>
#include <malloc.h>

void *__libc_malloc(size_t bytes);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t bytes);
void __libc_free(void *p);
void *__libc_memalign(size_t alignment, size_t bytes);
void *__libc_valloc(size_t bytes);
void *__libc_pvalloc(size_t bytes);

static void *counted(void *p) {
    if (p)
        heap_add((long long)malloc_usable_size(p));
    return p;
}

void *malloc(size_t bytes) { return counted(__libc_malloc(bytes)); }
void *calloc(size_t n, size_t size) { return counted(__libc_calloc(n, size)); }
void *memalign(size_t alignment, size_t bytes) { return counted(__libc_memalign(alignment, bytes)); }
void *aligned_alloc(size_t alignment, size_t bytes) { return counted(__libc_memalign(alignment, bytes)); }
void *valloc(size_t bytes) { return counted(__libc_valloc(bytes)); }
void *pvalloc(size_t bytes) { return counted(__libc_pvalloc(bytes)); }

void free(void *p) {
    if (p)
        heap_add(-(long long)malloc_usable_size(p));
    __libc_free(p);
}

void *realloc(void *p, size_t bytes) {
    long long before = p ? (long long)malloc_usable_size(p) : 0;
    void *q = __libc_realloc(p, bytes);
    if (q)
        heap_add((long long)malloc_usable_size(q) - before);
    else if (bytes == 0 && p)
        heap_add(-before); /* realloc(p, 0) freed p */
    return q;
}

int posix_memalign(void **out, size_t alignment, size_t bytes) {
    void *p = __libc_memalign(alignment, bytes);
    if (!p)
        return ENOMEM;
    *out = counted(p);
    return 0;
}

static void heap_start(void) {}
#endif

/* ---- the test ---------------------------------------------------------------------------------------------------- */

static dl_world world;

/* The largest heap growth any rank saw in its window, on every rank. */
static long long worst_growth(long long mine) {
    int64_t v = mine;
    if (dl_comm_allreduce_max_i64(&world, &v, 1, "heap growth") != DL_OK)
        DL_TEST_FAIL("%s", dl_error_message());
    return (long long)v;
}

/* Heap growth (worst rank) of saving and of loading back a sharded FFM table of `rows` rows of 64 floats (8 fields
 * of k 4, 256 bytes): save[compress], load[compress]. The load must restore every rank's rows exactly. */
static void measure(int64_t rows, const char *dir, long long save[2], long long load[2], long long *whole) {
    dl_config cfg;
    assert_int_equal(dl_config_defaults(&cfg), DL_OK);
    cfg.device = DL_CFG_DEVICE_CPU;
    cfg.model.kind = DL_MODEL_FFM;
    cfg.model.k = 4;
    cfg.model.num_fields = 8;
    cfg.model.hash_buckets = rows;
    cfg.model.linear_terms = true;
    cfg.optim.name = DL_OPTIM_ADAGRAD;
    cfg.optim.adagrad_init = 1.0;
    cfg.comm.embeddings = DL_EMBEDDINGS_SHARDED;
    dl_backend be;
    assert_int_equal(dl_backend_open(&be, "cpu", 0), DL_OK);
    dl_model *m;
    assert_int_equal(dl_config_create_model(&m, &cfg, &be, 8, 1), DL_OK);
    const dl_shard_layout *l = m->shard_layout;
    assert_non_null(l);
    assert_int_equal(m->init_params(m, 3), DL_OK);
    *whole = (long long)(dl_tensor_table_numel(m->params) * sizeof(float));
    /* What this rank holds: its table rows (back to back from 0) and the bias; the rest is padding. */
    const dl_tensor *table = dl_tensor_table_at(m->params, 0);
    size_t held = 0;
    for (size_t g = 0; g < table->shape[0]; g++)
        held += l->local_row(l->ctx, 0, (int64_t)g) >= 0;
    const size_t table_bytes = held * table->shape[1] * sizeof(float);
    const uint64_t rows_hash = dl_hash_bytes(m->param_data, table_bytes, 0);
    float bias[2] = {m->param_data[l->local_offset[1]], m->param_data[l->local_offset[1] + 1]};
    dl_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.step = 1;
    meta.world_size = world.size;
    snprintf(meta.model_kind, sizeof meta.model_kind, "ffm");
    meta.config_yaml = (char *)"model:\n  kind: ffm\n";
    dl_ckpt_tensors t = {m->params, m->param_data, 0, NULL, NULL, 0, 0};
    for (int compress = 0; compress <= 1; compress++) {
        dl_ckpt_options o = {.compress = compress, .layout = l};
        char path[300], file[400];
        snprintf(file, sizeof file, "%s/ckpt/step_00000001.h5", dir);
        assert_int_equal(dl_comm_barrier(&world, "before save"), DL_OK);
        long long base = heap_mark();
        DL_EXPECT_OK(dl_ckpt_save(&world, dir, &meta, &t, NULL, 0, &o, path, sizeof path));
        save[compress] = worst_growth(atomic_load(&heap_peak) - base);

        dl_test_poison(m->param_data, m->local_numel);
        uint8_t *cursor = NULL;
        size_t cursor_len = 0;
        assert_int_equal(dl_comm_barrier(&world, "before load"), DL_OK);
        base = heap_mark();
        DL_EXPECT_OK(dl_ckpt_load_collective(&world, file, &t, &o, &cursor, &cursor_len));
        load[compress] = worst_growth(atomic_load(&heap_peak) - base);
        free(cursor);
        if (dl_hash_bytes(m->param_data, table_bytes, 0) != rows_hash)
            DL_TEST_FAIL("rank %d: the %zu rows loaded back differ from the rows saved", world.rank, held);
        assert_memory_equal(m->param_data + l->local_offset[1], bias, sizeof bias);
        if (world.rank == 0)
            printf("W=%d, %s, table %.0f MiB (%.1f MiB per rank): heap growth at most %.2f MiB saving, %.2f MiB "
                   "loading\n", world.size, compress ? "compressed" : "plain", (double)*whole / 1048576.0,
                   (double)*whole / world.size / 1048576.0, (double)save[compress] / 1048576.0,
                   (double)load[compress] / 1048576.0);
    }
    dl_model_destroy(m);
    dl_config_free(&cfg);
    dl_backend_close(&be);
}

static void checkpoint_memory_does_not_grow_with_the_table(void **state) {
    (void)state;
    /* The counter sees a table-sized allocation (so the bounds below mean something). */
    const size_t probe_bytes = 16u << 20;
    long long base = heap_mark();
    char *probe = malloc(probe_bytes);
    assert_non_null(probe);
    memset(probe, 1, probe_bytes);
    free(probe);
    long long seen = atomic_load(&heap_peak) - base;
    if (seen < (long long)probe_bytes)
        DL_TEST_FAIL("the heap counter saw %lld bytes of a %zu-byte allocation", seen, probe_bytes);

    char dir[256] = "";
    if (world.rank == 0) {
        snprintf(dir, sizeof dir, "/tmp/dealer_test_ckpt_memory_XXXXXX");
        assert_non_null(mkdtemp(dir));
    }
    assert_int_equal(dl_comm_broadcast(&world, dir, sizeof dir, 0, "dir"), DL_OK);
    long long save_small[2], load_small[2], save_big[2], load_big[2], small = 0, big = 0;
    measure(32768, dir, save_small, load_small, &small);
    measure(196608, dir, save_big, load_big, &big);
    const long long slack = (big - small) / 8;
    for (int c = 0; c <= 1; c++)
        if (save_big[c] - save_small[c] > slack || load_big[c] - load_small[c] > slack)
            DL_TEST_FAIL("W=%d, %s: checkpointing a %lld-byte table grew a rank's heap by %lld bytes saving and "
                         "%lld loading, a %lld-byte one by %lld and %lld: the growth must differ by less than %lld",
                         world.size, c ? "compressed" : "plain", big, save_big[c], load_big[c], small, save_small[c],
                         load_small[c], slack);
    assert_int_equal(dl_comm_barrier(&world, "before cleanup"), DL_OK);
    if (world.rank == 0) {
        char cmd[320];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
    }
}

int main(int argc, char **argv) {
    heap_start();
    if (dl_world_init(&world, &argc, &argv, 120.0) != DL_OK) {
        fprintf(stderr, "%s\n", dl_error_message());
        return 1;
    }
    omp_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(checkpoint_memory_does_not_grow_with_the_table),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dl_world_finalize(&world);
    return failed;
}
