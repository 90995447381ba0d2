/* bench_ckpt_sharded.c — saving and loading a sharded FFM table: each rank's share through slabs (what dealer
 * does) against gathering the table on rank 0 (what it did before).
 *
 *     mpirun -np W bench_ckpt_sharded [--buckets R] [--fields F] [--k K] [--slab MIB] [--repeat N] [--dir DIR]
 *
 * The table is an FFM table with comm.embeddings sharded (default 65536 rows × 69 fields × k 4: the 145 MB table of
 * configs/ffm-criteo.yaml), initialised, then saved and loaded N times (default 3) each way; the fastest of each is
 * printed, in seconds, with the peak resident memory each way added to what the rank held before (VmHWM after
 * /proc/self/clear_refs, per rank, the largest rank shown):
 *
 *   new save  dl_ckpt_save with the model's shard layout (every rank sends its rows to the slab writers; slabs
 *             of --slab MiB, default the checkpoint's own);
 *   new load  dl_ckpt_load_collective with the layout (every rank reads a slab and receives its own rows);
 *   old save  every rank's rows gathered on rank 0 (one gather of the rows, placed by dl_hash_owner into a whole
 *             table), then rank 0 writes the table alone;
 *   old load  every rank reads the whole table, then keeps its rows.
 *
 * The old path is rebuilt here from public calls (the gather was one MPI gather of each rank's rows rather than the
 * 64 MiB chunks dealer used), so its time is close to, and its memory exactly, what it cost: a whole table on rank
 * 0 for a save and on every rank for a load. The machine these run on is shared: compare the two ways within one
 * run, not across runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/world.h"
#include "train/run_config.h"
#include "core/hash.h"
#include "core/memstat.h"
#include "core/timer.h"
#include "ckpt/checkpoint.h"
#include "models/model.h"

static dl_world world;

static void die(const char *what) {
    fprintf(stderr, "bench_ckpt_sharded: %s: %s\n", what, dl_error_message());
    dl_world_abort(&world, 1);
    exit(1);
}

#define CHECK(expr)                                                                                              \
    do {                                                                                                         \
        if ((expr) != DL_OK)                                                                                     \
            die(#expr);                                                                                          \
    } while (0)

/* Starts a peak measurement: the kernel forgets the peak resident size; returns the resident size now (kB). */
static long peak_start(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
    return dl_memstat_kib("VmRSS:");
}

/* The largest value over the ranks. */
static double most(double v) {
    int64_t x = (int64_t)(v * 1e6);
    CHECK(dl_comm_allreduce_max_i64(&world, &x, 1, "most"));
    return (double)x / 1e6;
}

typedef struct timing {
    double seconds, peak_mib; /* fastest run; its peak growth over the resident size before, largest rank */
} timing;

static void keep_best(timing *t, double seconds, long rss_before) {
    double s = most(seconds), growth = most((double)(dl_memstat_kib("VmHWM:") - rss_before) / 1024.0);
    if (t->seconds == 0 || s < t->seconds) {
        t->seconds = s;
        t->peak_mib = growth;
    }
}

int main(int argc, char **argv) {
    CHECK(dl_world_init(&world, &argc, &argv, 600.0));
    int64_t buckets = 65536;
    int fields = 69, k = 4, repeat = 3;
    double slab_mib = 0;
    const char *base_dir = "/tmp";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--buckets") == 0 && i + 1 < argc)
            buckets = atoll(argv[++i]);
        else if (strcmp(argv[i], "--fields") == 0 && i + 1 < argc)
            fields = atoi(argv[++i]);
        else if (strcmp(argv[i], "--k") == 0 && i + 1 < argc)
            k = atoi(argv[++i]);
        else if (strcmp(argv[i], "--slab") == 0 && i + 1 < argc)
            slab_mib = atof(argv[++i]);
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            base_dir = argv[++i];
        else {
            fprintf(stderr, "usage: mpirun -np W bench_ckpt_sharded [--buckets R] [--fields F] [--k K] [--slab MIB] "
                            "[--repeat N] [--dir DIR]\n");
            return 2;
        }
    }
    dl_config cfg;
    CHECK(dl_config_defaults(&cfg));
    cfg.device = DL_CFG_DEVICE_CPU;
    cfg.model.kind = DL_MODEL_FFM;
    cfg.model.k = k;
    cfg.model.num_fields = fields;
    cfg.model.hash_buckets = buckets;
    cfg.model.linear_terms = false;
    cfg.optim.name = DL_OPTIM_ADAGRAD;
    cfg.optim.adagrad_init = 1.0;
    cfg.comm.embeddings = DL_EMBEDDINGS_SHARDED;
    dl_backend be;
    CHECK(dl_backend_open(&be, "cpu", 0));
    dl_model *m;
    CHECK(dl_config_create_model(&m, &cfg, &be, 8, 1));
    CHECK(m->init_params(m, 1));
    const dl_shard_layout *l = m->shard_layout;
    if (!l && world.size > 1)
        die("the model has no shard layout");
    const dl_tensor *table = dl_tensor_table_at(m->params, 0);
    const size_t rf = table->shape[1], numel = dl_tensor_table_numel(m->params);
    const double table_mib = (double)numel * sizeof(float) / 1048576.0;
    size_t held = 0;
    for (int64_t g = 0; l && g < buckets; g++)
        held += l->local_row(l->ctx, 0, g) >= 0;
    if (!l)
        held = (size_t)buckets;

    char dir[512] = "";
    if (world.rank == 0) {
        snprintf(dir, sizeof dir, "%s/dealer_bench_ckpt_XXXXXX", base_dir);
        if (!mkdtemp(dir))
            dir[0] = '\0';
    }
    CHECK(dl_comm_broadcast(&world, dir, sizeof dir, 0, "dir"));
    if (!dir[0])
        die("cannot make a directory");
    char path[700];
    snprintf(path, sizeof path, "%s/ckpt/step_00000001.h5", dir);
    dl_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.step = 1;
    meta.world_size = world.size;
    snprintf(meta.model_kind, sizeof meta.model_kind, "ffm");
    meta.config_yaml = (char *)"model:\n  kind: ffm\n";
    dl_ckpt_tensors mine = {m->params, m->param_data, 0, NULL, NULL, 0, 0};
    dl_ckpt_options how = {.layout = l, .slab_bytes = (size_t)(slab_mib * 1048576.0)};
    timing new_save = {0}, new_load = {0}, old_save = {0}, old_load = {0};
    uint8_t *cursor = NULL;
    size_t cursor_len = 0;
    for (int r = 0; r < repeat; r++) {
        /* new: shares through slabs */
        CHECK(dl_comm_barrier(&world, "new save"));
        long rss = peak_start();
        double t0 = dl_time_seconds();
        CHECK(dl_ckpt_save(&world, dir, &meta, &mine, NULL, 0, &how, NULL, 0));
        keep_best(&new_save, dl_time_seconds() - t0, rss);
        CHECK(dl_comm_barrier(&world, "new load"));
        rss = peak_start();
        t0 = dl_time_seconds();
        CHECK(dl_ckpt_load_collective(&world, path, &mine, &how, &cursor, &cursor_len));
        keep_best(&new_load, dl_time_seconds() - t0, rss);
        free(cursor);

        /* old: the whole table on rank 0 to save, on every rank to load */
        CHECK(dl_comm_barrier(&world, "old save"));
        rss = peak_start();
        t0 = dl_time_seconds();
        void *rows = NULL;
        int *lengths = calloc((size_t)world.size, sizeof(int));
        float *full = world.rank == 0 ? malloc(numel * sizeof(float)) : NULL;
        if (!lengths || (world.rank == 0 && !full))
            die("allocating the old path's buffers");
        CHECK(dl_comm_gather_bytes(&world, m->param_data, (int)(held * rf * sizeof(float)), 0, &rows, lengths,
                                   "rows to rank 0"));
        if (world.rank == 0) {
            size_t *next = calloc((size_t)world.size, sizeof(size_t)), *start = calloc((size_t)world.size,
                                                                                         sizeof(size_t));
            for (int q = 1; q < world.size; q++)
                start[q] = start[q - 1] + (size_t)lengths[q - 1] / sizeof(float);
            for (int64_t g = 0; g < buckets; g++) {
                int q = world.size > 1 ? dl_hash_owner((uint64_t)g, world.size) : 0;
                memcpy(full + table->offset + (size_t)g * rf, (const float *)rows + start[q] + next[q] * rf,
                       rf * sizeof(float));
                next[q]++;
            }
            free(next);
            free(start);
        }
        free(rows);
        dl_ckpt_tensors whole = {m->params, full, 0, NULL, NULL, 0, 0};
        CHECK(dl_ckpt_save(&world, dir, &meta, &whole, NULL, 0, NULL, NULL, 0));
        free(full);
        free(lengths);
        keep_best(&old_save, dl_time_seconds() - t0, rss);
        CHECK(dl_comm_barrier(&world, "old load"));
        rss = peak_start();
        t0 = dl_time_seconds();
        full = malloc(numel * sizeof(float));
        if (!full)
            die("allocating a whole table");
        whole.params_data = full;
        CHECK(dl_ckpt_load(path, &whole, world.rank, world.size, &cursor, &cursor_len));
        free(cursor);
        for (int64_t g = 0; l && g < buckets; g++) {
            int64_t slot = l->local_row(l->ctx, 0, g);
            if (slot >= 0)
                memcpy(m->param_data + (size_t)slot * rf, full + table->offset + (size_t)g * rf, rf * sizeof(float));
        }
        free(full);
        keep_best(&old_load, dl_time_seconds() - t0, rss);
    }
    if (world.rank == 0) {
        printf("W=%d: FFM table %lld rows x %zu floats = %.1f MiB (%.1f MiB per rank), fastest of %d\n", world.size,
               (long long)buckets, rf, table_mib, table_mib / world.size, repeat);
        printf("  %-22s %8s %16s\n", "", "seconds", "peak growth MiB");
        printf("  %-22s %8.3f %16.1f\n", "save, slabs (new)", new_save.seconds, new_save.peak_mib);
        printf("  %-22s %8.3f %16.1f\n", "save, gather (old)", old_save.seconds, old_save.peak_mib);
        printf("  %-22s %8.3f %16.1f\n", "load, slabs (new)", new_load.seconds, new_load.peak_mib);
        printf("  %-22s %8.3f %16.1f\n", "load, whole (old)", old_load.seconds, old_load.peak_mib);
        printf("  new/old time: save %.2f, load %.2f\n", new_save.seconds / old_save.seconds,
               new_load.seconds / old_load.seconds);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    dl_model_destroy(m);
    dl_config_free(&cfg);
    dl_backend_close(&be);
    dl_world_finalize(&world);
    return 0;
}
