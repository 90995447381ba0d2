/* bench_ffm.c — training throughput of the FM/FFM models, and table memory per rank with sharded tables.
 *
 *     bench_ffm [--sample PATH] [--rows N] [--id-space M] [--buckets R] [--batch B] [--threads T] [--models LIST]
 *               [--shuffle]   (the rows in a random order, as a shuffled epoch of `dealer train` sees them)
 *     mpirun -np W bench_ffm --memory [--rows N] [--buckets R] ...
 *
 * Data: the libffm sample (default data/criteo/small_train.txt: 18 fields, ~17.5 entries per row) replicated to N
 * rows (default 1,000,000) with every feature id re-hashed per copy into [0, M) — exactly the rows `dealer data
 * synth-clicks SAMPLE --rows N --id-space M` writes, so libffm and xLearn can be timed on the same rows. The rows are
 * decoded into batches of B rows in memory first; the timed part is one epoch of model->train_batch (feature hashing,
 * instance scales, the fused per-instance AdaGrad kernel), what `dealer train` runs per step minus the record
 * decoding (which the loader's prefetch thread does alongside). Models: ffm4, ffm8 (FFM, k 4 and 8, libffm's
 * settings, no linear terms) and fm4 (FM, k 4, bias and linear terms); table of R rows (default 1,000,000), with
 * as many fields as the sample has (so a Criteo-shaped file from bench_criteo_synth, 39 fields, works as is).
 *
 * Figures: rows per second of wall time, and rows per CPU-second of the whole process. The machine this runs on is
 * shared: wall time then measures the load as much as the code, while CPU time does not (two threads that each get
 * half a core take twice the wall time but the same CPU time), so both are printed with the load average.
 *
 * --memory (under mpirun): each rank builds the model with comm.embeddings sharded, trains on its share of the rows,
 * and reports the bytes its table holds, its resident memory before building the model (the rows in memory, MPI)
 * and its peak resident memory (VmHWM) after. Run one model per process for a clean peak. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm/world.h"
#include "train/run_config.h"
#include "core/hash.h"
#include "core/memstat.h"
#include "core/philox.h"
#include "core/timer.h"
#include "data/convert.h"
#include "models/model.h"

static void die(const char *what) {
    fprintf(stderr, "bench_ffm: %s: %s\n", what, dl_error_message());
    exit(1);
}

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct rows {
    int64_t n, nnz;
    int32_t *row_ptr; /* int64 would be safer; 1e6 rows × 18 entries fit */
    int32_t *fields, *features;
    float *values, *labels;
} rows;

/* The sample replicated to n rows, ids re-hashed per copy as synth-clicks does. */
static void make_rows(const char *path, int64_t n, uint64_t id_space, rows *out) {
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "bench_ffm: cannot open %s: %s (use --sample)\n", path, strerror(errno));
        exit(1);
    }
    dl_click_row r;
    memset(&r, 0, sizeof r);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    dl_click_row *sample = NULL;
    int64_t ns = 0;
    while ((got = getline(&line, &cap, fp)) >= 0) {
        size_t len = (size_t)got;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (dl_line_is_blank(line, len))
            continue;
        if (dl_parse_libffm_line(line, len, &r) != DL_OK)
            die("parsing the sample");
        sample = realloc(sample, (size_t)(ns + 1) * sizeof *sample);
        memset(&sample[ns], 0, sizeof sample[ns]);
        sample[ns].label = r.label;
        for (size_t e = 0; e < r.feature.len; e++) {
            dl_i32_array_push(&sample[ns].field, r.field.data[e]);
            dl_i32_array_push(&sample[ns].feature, r.feature.data[e]);
            dl_f32_array_push(&sample[ns].value, r.value.data[e]);
        }
        ns++;
    }
    fclose(fp);
    free(line);
    dl_click_row_free(&r);
    int64_t nnz = 0;
    for (int64_t i = 0; i < n; i++)
        nnz += (int64_t)sample[i % ns].feature.len;
    out->n = n;
    out->nnz = nnz;
    out->row_ptr = malloc((size_t)(n + 1) * sizeof(int32_t));
    out->fields = malloc((size_t)nnz * sizeof(int32_t));
    out->features = malloc((size_t)nnz * sizeof(int32_t));
    out->values = malloc((size_t)nnz * sizeof(float));
    out->labels = malloc((size_t)n * sizeof(float));
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        const dl_click_row *s = &sample[i % ns];
        uint64_t copy = (uint64_t)(i / ns);
        out->row_ptr[i] = (int32_t)at;
        out->labels[i] = s->label;
        for (size_t e = 0; e < s->feature.len; e++, at++) {
            out->fields[at] = s->field.data[e];
            out->features[at] = (int32_t)(dl_hash_pair(copy, (uint64_t)(uint32_t)s->feature.data[e]) % id_space);
            out->values[at] = s->value.data[e];
        }
    }
    out->row_ptr[n] = (int32_t)at;
    for (int64_t i = 0; i < ns; i++)
        dl_click_row_free(&sample[i]);
    free(sample);
}

/* The rows in a random order (Fisher-Yates over Philox(seed)): `dealer train` shuffles every epoch
 * (data.shuffle: true), and in a shuffled order a hashed table's rows are cache misses, while in file order the
 * synthetic copies of one sample row share table rows still in cache. Timing both separates the kernel from the
 * order. */
static void shuffle_rows(rows *d, uint64_t seed) {
    int64_t *order = malloc((size_t)d->n * sizeof *order);
    rows out = {d->n, d->nnz, malloc((size_t)(d->n + 1) * sizeof(int32_t)), malloc((size_t)d->nnz * sizeof(int32_t)),
                malloc((size_t)d->nnz * sizeof(int32_t)), malloc((size_t)d->nnz * sizeof(float)),
                malloc((size_t)d->n * sizeof(float))};
    if (!order || !out.row_ptr || !out.fields || !out.features || !out.values || !out.labels) {
        fprintf(stderr, "bench_ffm: out of memory shuffling the rows\n");
        exit(1);
    }
    dl_rng rng;
    dl_rng_init(&rng, seed, 0);
    for (int64_t i = 0; i < d->n; i++)
        order[i] = i;
    for (int64_t i = d->n - 1; i > 0; i--) {
        int64_t j = (int64_t)dl_rng_below(&rng, (uint64_t)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    int32_t at = 0;
    for (int64_t i = 0; i < d->n; i++) {
        int64_t r = order[i];
        out.row_ptr[i] = at;
        out.labels[i] = d->labels[r];
        for (int32_t e = d->row_ptr[r]; e < d->row_ptr[r + 1]; e++, at++) {
            out.fields[at] = d->fields[e];
            out.features[at] = d->features[e];
            out.values[at] = d->values[e];
        }
    }
    out.row_ptr[d->n] = at;
    free(d->row_ptr);
    free(d->fields);
    free(d->features);
    free(d->values);
    free(d->labels);
    free(order);
    *d = out;
}

/* A click batch viewing rows [lo, hi) (its row_ptr rebased into `ptr`). */
static void view_batch(const rows *d, int64_t lo, int64_t hi, int32_t *ptr, dl_batch *b) {
    memset(b, 0, sizeof *b);
    b->kind = DL_DATA_CLICKS;
    int32_t base = d->row_ptr[lo];
    for (int64_t i = lo; i <= hi; i++)
        ptr[i - lo] = d->row_ptr[i] - base;
    b->clicks.rows = b->clicks.num_rows = (int32_t)(hi - lo);
    b->clicks.nnz = ptr[hi - lo];
    b->clicks.row_ptr = ptr;
    b->clicks.fields = d->fields + base;
    b->clicks.features = d->features + base;
    b->clicks.values = d->values + base;
    b->clicks.labels = d->labels + lo;
}

/* One more than the largest field id of the rows: the model's num_fields (18 for the default sample). */
static int num_fields_of(const rows *d) {
    int32_t most = 0;
    for (int64_t i = 0; i < d->nnz; i++)
        most = d->fields[i] > most ? d->fields[i] : most;
    return (int)most + 1;
}

static void model_config(dl_config *cfg, const char *name, const rows *d, int64_t buckets, int sharded) {
    if (dl_config_defaults(cfg) != DL_OK)
        die("config defaults");
    int fm = strncmp(name, "fm", 2) == 0;
    cfg->device = DL_CFG_DEVICE_CPU;
    cfg->model.kind = fm ? DL_MODEL_FM : DL_MODEL_FFM;
    cfg->model.k = atoi(name + (fm ? 2 : 3));
    cfg->model.num_fields = num_fields_of(d);
    cfg->model.hash_buckets = buckets;
    cfg->model.linear_terms = fm;
    cfg->model.normalize = true;
    cfg->optim.name = DL_OPTIM_ADAGRAD;
    cfg->optim.lr = 0.2;
    cfg->optim.weight_decay = 2e-5;
    cfg->optim.adagrad_init = 1.0;
    cfg->comm.embeddings = sharded ? DL_EMBEDDINGS_SHARDED : DL_EMBEDDINGS_REPLICATED;
}

static double load_average(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fscanf(f, "%lf", &l) != 1)
        l = -1;
    if (f)
        fclose(f);
    return l;
}

/* One epoch of train_batch over the rows; prints one line. */
static void run_model(const char *name, const rows *d, int64_t buckets, int batch, dl_world *world) {
    dl_config cfg;
    model_config(&cfg, name, d, buckets, 0);
    dl_backend be;
    if (dl_backend_open(&be, "cpu", 0) != DL_OK)
        die("opening the CPU backend");
    dl_model *model;
    if (dl_config_create_model(&model, &cfg, &be, batch, 1) != DL_OK)
        die("creating the model");
    if (model->init_params(model, 1) != DL_OK)
        die("initialising");
    int32_t *ptr = malloc(((size_t)batch + 1) * sizeof(int32_t));
    dl_step_stats stats = {0};
    double load0 = load_average(), t0 = dl_time_seconds(), c0 = cpu_seconds();
    int64_t step = 0;
    for (int64_t lo = 0; lo < d->n; lo += batch) {
        int64_t hi = lo + batch < d->n ? lo + batch : d->n;
        dl_batch b;
        view_batch(d, lo, hi, ptr, &b);
        dl_step_context ctx = {world, ++step, 0.2, NULL};
        if (model->train_batch(model, &b, &ctx, &stats) != DL_OK)
            die("training");
    }
    double wall = dl_time_seconds() - t0, cpu = cpu_seconds() - c0, load1 = load_average();
    printf("| %-5s | %9.0f | %8.2f | %8.2f | %9.0f | %6.4f | %4.1f-%4.1f |\n", name, (double)d->n / wall, wall, cpu,
           (double)d->n / cpu, stats.loss_sum / stats.targets, load0, load1);
    fflush(stdout);
    free(ptr);
    dl_model_destroy(model);
    dl_backend_close(&be);
    dl_config_free(&cfg);
}

/* Sharded tables: this rank trains on rows r, r + W, ... and reports its table size and peak memory. */
static void run_memory(const char *name, const rows *d, int64_t buckets, int batch, dl_world *world) {
    double before = (double)dl_memstat_kib("VmRSS:") / 1024.0;
    dl_config cfg;
    model_config(&cfg, name, d, buckets, 1);
    dl_backend be;
    if (dl_backend_open(&be, "cpu", 0) != DL_OK)
        die("opening the CPU backend");
    dl_model *model;
    if (dl_config_create_model(&model, &cfg, &be, batch, 1) != DL_OK)
        die("creating the model");
    if (model->init_params(model, 1) != DL_OK)
        die("initialising");
    int64_t per_rank = d->n / world->size;
    int32_t *ptr = malloc(((size_t)batch + 1) * sizeof(int32_t));
    dl_step_stats stats = {0};
    int64_t step = 0;
    for (int64_t lo = 0; lo < per_rank; lo += batch) { /* every rank runs the same number of steps */
        int64_t a = world->rank * per_rank + lo, hi = a + (lo + batch < per_rank ? batch : per_rank - lo);
        dl_batch b;
        view_batch(d, a, hi, ptr, &b);
        dl_step_context ctx = {world, ++step, 0.2, NULL};
        if (model->train_batch(model, &b, &ctx, &stats) != DL_OK)
            die("training");
    }
    size_t numel = model->local_numel ? model->local_numel : dl_tensor_table_numel(model->params);
    double mib[3] = {(double)numel * 4.0 / 1048576.0, before, (double)dl_memstat_kib("VmHWM:") / 1024.0};
    double all[3 * 64] = {0};
    if (world->rank < 64)
        memcpy(all + 3 * world->rank, mib, sizeof mib);
    if (dl_comm_allreduce_sum_f64(world, all, 3 * 64, "memory report") != DL_OK)
        die("gathering the report");
    if (world->rank == 0) {
        double whole = (double)dl_tensor_table_numel(model->params) * 4.0 / 1048576.0;
        for (int r = 0; r < world->size && r < 64; r++)
            printf("| %-5s | %d | %d | %8.1f | %8.1f | %8.1f | %8.1f |\n", name, world->size, r, whole, all[3 * r],
                   all[3 * r + 1], all[3 * r + 2]);
    }
    free(ptr);
    dl_model_destroy(model);
    dl_backend_close(&be);
    dl_config_free(&cfg);
}

static long parse_long(const char *text, const char *flag) {
    char *end;
    errno = 0;
    double v = strtod(text ? text : "", &end);
    if (!text || errno || *end || !(v >= 1) || v > 9e18) {
        fprintf(stderr, "bench_ffm: %s needs a positive number, got '%s'\n", flag, text ? text : "");
        exit(2);
    }
    return (long)v;
}

int main(int argc, char **argv) {
    const char *src = getenv("DEALER_SOURCE_DIR");
    char sample_path[4096];
    snprintf(sample_path, sizeof sample_path, "%s/data/criteo/small_train.txt", src ? src : ".");
    const char *sample = sample_path, *models = "ffm4,ffm8,fm4";
    long n = 1000000, id_space = 1000000, buckets = 1000000, batch = 1024, threads = 2;
    int memory = 0, shuffle = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--memory") == 0 || strcmp(a, "--shuffle") == 0) {
            *(a[2] == 'm' ? &memory : &shuffle) = 1;
            continue;
        }
        if (strcmp(a, "--sample") == 0 && v)
            sample = v;
        else if (strcmp(a, "--models") == 0 && v)
            models = v;
        else if (strcmp(a, "--rows") == 0)
            n = parse_long(v, a);
        else if (strcmp(a, "--id-space") == 0)
            id_space = parse_long(v, a);
        else if (strcmp(a, "--buckets") == 0)
            buckets = parse_long(v, a);
        else if (strcmp(a, "--batch") == 0)
            batch = parse_long(v, a);
        else if (strcmp(a, "--threads") == 0)
            threads = parse_long(v, a);
        else {
            fprintf(stderr, "usage: bench_ffm [--sample PATH] [--rows N] [--id-space M] [--buckets R] [--batch B] "
                            "[--threads T] [--models ffm4,ffm8,fm4] [--shuffle] [--memory]\n");
            return 2;
        }
        i++;
    }
    omp_set_num_threads((int)threads);
    dl_world world;
    if (dl_world_init(&world, &argc, &argv, 600.0) != DL_OK)
        die("starting MPI");
    rows d;
    make_rows(sample, n, (uint64_t)id_space, &d);
    if (shuffle)
        shuffle_rows(&d, 1);
    if (world.rank == 0) {
        printf("%ld rows (%lld entries, %.1f per row) from %s, ids re-hashed into %ld, table of %ld rows, batches of "
               "%ld, %ld thread(s), %d rank(s)\n\n",
               n, (long long)d.nnz, (double)d.nnz / (double)n, sample, id_space, buckets, batch, threads, world.size);
        if (memory)
            printf("| model | W | rank | whole table MiB | table on this rank MiB | RSS before the model MiB | "
                   "peak RSS MiB |\n|---|---|---|---|---|---|---|\n");
        else
            printf("| model | rows/s (wall) | wall s | CPU s | rows per CPU-s | train logloss | load avg |\n"
                   "|---|---|---|---|---|---|---|\n");
    }
    char list[256];
    snprintf(list, sizeof list, "%s", models);
    for (char *save = NULL, *m = strtok_r(list, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
        if (strcmp(m, "ffm4") && strcmp(m, "ffm8") && strcmp(m, "fm4") && strcmp(m, "fm8")) {
            fprintf(stderr, "bench_ffm: unknown model '%s' (ffm4, ffm8, fm4, fm8)\n", m);
            return 2;
        }
        if (memory)
            run_memory(m, &d, buckets, (int)batch, &world);
        else if (world.rank == 0)
            run_model(m, &d, buckets, (int)batch, NULL);
    }
    dl_world_finalize(&world);
    return 0;
}
