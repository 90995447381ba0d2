/* bench_overlap.c — how much of the gradient all-reduce hides behind a GPT-2-124M-shape backward, and how tokens/s
 * scale from 1 to 2 ranks. Ratios are measured inside one run, interleaved, because the machine is shared.
 *
 *     mpirun -np 2 --bind-to none build/bench_overlap [--tokens 64] [--reps 3] [--bucket-mb 25]
 *                                                     [--scaling-reps 3] [--scaling-steps 4] [--skip-overlap]
 *                                                     [--skip-scaling] [--simulate-block-ms MS]
 *
 * Overlap (GPT-2 124M: 12 layers, 768 wide, 12 heads, vocab 50257, tied head; one document of --tokens tokens per
 * rank, one thread per rank). Each rep times three variants of one step, each started after a barrier, each the
 * slowest rank's time:
 *   compute     forward + backward, no communication                                  T_c
 *   blocking    forward + backward, then the whole exchange (no hook)                  T_b = T_c' + T_ar
 *   overlapped  forward + backward with the layer hook starting buckets, then the wait T_o (wait: T_w)
 * and reports the medians, and two hidden fractions:
 *   wait-based   1 − T_w / T_ar: the share of the all-reduce the step no longer waits for after backward;
 *   end-to-end   1 − (T_o − T_c) / T_ar: the share of the all-reduce's cost that vanished from the step. On a CPU
 *                without spare cores this counts the copies and sums that the hooks now do between layers as not
 *                hidden: they still run on the core that computes.
 *
 * With --simulate-block-ms MS the backward is a timeline of sleeps instead (a block MS, the LM head V/(12C) blocks,
 * the embedding a tenth of a block) with the hooks at the same points: the compute of an accelerator, with the host
 * idle meanwhile. It separates the schedule (which buckets can leave when, how often MPI progresses) from CPU
 * contention, which on a loaded 2-core machine swamps the real-backward figures.
 *
 * Scaling (the gpt-shakespeare shape: 4 layers, 128 wide, vocab 256, 8 rows of 256 tokens per rank, AdamW): whole
 * steps (forward, backward with overlap, reduce, update) on rank 0 alone (a one-rank world; rank 1 sleeps) and on
 * both ranks, alternating; tokens/s ratio = (2 · tokens / T_2) / (tokens / T_1). */
#include <math.h>
#include <mpi.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm/world.h"
#include "train/run_config.h"
#include "core/philox.h"
#include "core/timer.h"
#include "models/gpt.h"
#include "train/grad_sync.h"
#include "models/model.h"

void openblas_set_num_threads(int num_threads);

enum { MAX_REPS = 51 };

static void load_average(char *buf, size_t cap) {
    FILE *f = fopen("/proc/loadavg", "r");
    buf[0] = '\0';
    if (f) {
        if (!fgets(buf, (int)cap, f))
            buf[0] = '\0';
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static double max_over(dl_world *w, double v) {
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_MAX, w->comm);
    return v;
}

/* Waits for every rank without spinning a core. */
static void sleepy_barrier(dl_world *w) {
    MPI_Request request;
    MPI_Ibarrier(w->comm, &request);
    for (int done = 0; !done;) {
        MPI_Test(&request, &done, MPI_STATUS_IGNORE);
        if (!done)
            usleep(1000);
    }
}

#define TRY(call)                                                                                             \
    do {                                                                                                      \
        if ((call) != DL_OK) {                                                                                \
            fprintf(stderr, "rank %d: %s failed: %s\n", world.rank, #call, dl_error_message());               \
            dl_world_abort(&world, 1);                                                                        \
        }                                                                                                     \
    } while (0)

static dl_world world;

typedef struct bench_model {
    dl_config cfg;
    dl_backend be;
    dl_model *model;
    dl_grad_sync *sync;
    int32_t *tokens, *targets, *positions, *cu;
    dl_gpt_inputs in;
    double hook_seconds; /* time spent inside the layer hook this step */
} bench_model;

static dl_status timed_hook(void *ctx, int layer) {
    bench_model *b = ctx;
    double t0 = dl_time_seconds();
    dl_status s = dl_grad_sync_layer_done(b->sync, layer);
    b->hook_seconds += dl_time_seconds() - t0;
    return s;
}

static dl_status timed_part(void *ctx, int layer) {
    bench_model *b = ctx;
    double t0 = dl_time_seconds();
    dl_status s = dl_grad_sync_part_done(b->sync, layer);
    b->hook_seconds += dl_time_seconds() - t0;
    return s;
}

static dl_status timed_rows(void *ctx, float *table_grad, int table_rows, const int32_t *ids, const float *rows,
                            int n, int width) {
    bench_model *b = ctx;
    double t0 = dl_time_seconds();
    dl_status s = dl_grad_sync_embedding_rows(b->sync, table_grad, table_rows, ids, rows, n, width);
    b->hook_seconds += dl_time_seconds() - t0;
    return s;
}

/* A model of the given shape on `w`, with `docs` documents of `len` tokens of random ids. */
static void bench_model_open(bench_model *b, dl_world *w, char **overrides, int n_overrides, int docs, int len,
                             int adamw) {
    memset(b, 0, sizeof *b);
    TRY(dl_config_load(&b->cfg, NULL, n_overrides, overrides));
    TRY(dl_backend_open(&b->be, "cpu", 0));
    TRY(dl_config_create_model(&b->model, &b->cfg, &b->be, docs, len));
    TRY(b->model->init_params(b->model, 1));
    dl_optimizer_settings os = {.kind = adamw ? DL_OPT_ADAMW : DL_OPT_SGD, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8,
                                .weight_decay = 0.1, .momentum = 0.0};
    TRY(dl_grad_sync_create(&b->sync, w, &b->be, b->model, &b->cfg, &os));
    int n = docs * len, V = b->cfg.model.vocab_size;
    b->tokens = malloc((size_t)n * sizeof(int32_t));
    b->targets = malloc((size_t)n * sizeof(int32_t));
    b->positions = malloc((size_t)n * sizeof(int32_t));
    b->cu = malloc((size_t)(docs + 1) * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        b->tokens[i] = (int32_t)(dl_philox_word(42, (uint64_t)w->rank, (uint64_t)i) % (uint32_t)V);
        b->positions[i] = i % len;
    }
    for (int i = 0; i < n; i++)
        b->targets[i] = (i % len == len - 1) ? -1 : b->tokens[i + 1];
    for (int d = 0; d <= docs; d++)
        b->cu[d] = d * len;
    b->in = (dl_gpt_inputs){b->tokens, b->targets, b->positions, b->cu, docs, n};
}

static void bench_model_close(bench_model *b) {
    dl_grad_sync_destroy(b->sync);
    dl_model_destroy(b->model);
    dl_backend_close(&b->be);
    dl_config_free(&b->cfg);
    free(b->tokens);
    free(b->targets);
    free(b->positions);
    free(b->cu);
}

/* > 0: the backward is simulated, an accelerator's timeline on an idle host (see run_overlap). */
static double simulate_block_ms;

static void sleep_ms(double ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(fmod(ms, 1000.0) * 1e6)};
    nanosleep(&ts, NULL);
}

/* Forward + backward; the hook only when `overlap`. */
static void forward_backward(bench_model *b, int overlap) {
    size_t numel = dl_tensor_table_numel(b->model->params);
    double loss;
    int64_t targets;
    b->hook_seconds = 0;
    TRY(dl_mem_zero(&b->be, b->model->grad_data, numel * sizeof(float)));
    TRY(dl_grad_sync_begin(b->sync, overlap));
    if (simulate_block_ms > 0) {
        /* Backward times in proportion to FLOPs: the LM head V/(12 C) blocks, the embedding a tenth of one. */
        const dl_gpt_config *c = dl_gpt_get_config(b->model->impl);
        double head = simulate_block_ms * c->vocab_size / (12.0 * c->n_embd);
        sleep_ms(head);
        if (overlap)
            TRY(timed_hook(b, c->n_layer));
        for (int layer = c->n_layer - 1; layer >= 0; layer--) { /* the gpt's MLP half ends half-way */
            sleep_ms(simulate_block_ms / 2);
            if (overlap)
                TRY(timed_part(b, layer));
            sleep_ms(simulate_block_ms / 2);
            if (overlap)
                TRY(timed_hook(b, layer));
        }
        sleep_ms(simulate_block_ms / 10);
        if (overlap) { /* the embedding hands its (here zero) token rows over, as the real backward does */
            const dl_tensor *wte = dl_tensor_table_find(b->model->params, "wte");
            float *rows = calloc((size_t)b->in.num_tokens * (size_t)c->n_embd, sizeof(float));
            if (!rows || !wte) {
                fprintf(stderr, "bench_overlap: cannot simulate the embedding rows\n");
                exit(1);
            }
            TRY(timed_rows(b, b->model->grad_data + wte->offset, c->vocab_size, b->tokens, rows, b->in.num_tokens,
                           c->n_embd));
            free(rows);
            TRY(timed_hook(b, -1));
        }
        return;
    }
    TRY(dl_gpt_forward(b->model->impl, &b->in, &loss, &targets));
    dl_backward_hooks hooks = {timed_hook, timed_part, timed_rows, b};
    TRY(dl_gpt_backward(b->model->impl, overlap ? &hooks : NULL));
}

static void run_overlap(int tokens, int reps, const char *bucket) {
    char tok[64];
    snprintf(tok, sizeof tok, "data.seq_len=%d", tokens);
    char *gpt2[] = {"model.n_layer=12", "model.n_head=12", "model.n_embd=768", "model.vocab_size=50257",
                    "model.max_seq_len=1024", tok, (char *)bucket};
    bench_model b;
    bench_model_open(&b, &world, gpt2, 7, 1, tokens, 0);
    size_t numel = dl_tensor_table_numel(b.model->params);
    const size_t *bounds;
    const int *ready;
    int nb = dl_grad_sync_buckets(b.sync, &bounds, &ready);
    size_t last_bytes = 0;
    for (int k = 0; k < nb; k++)
        if (ready[k] < 0) /* leaves only after the embeddings (grad_sync.h) */
            last_bytes += (bounds[k + 1] - bounds[k]) * sizeof(float);
    double tc[MAX_REPS], tb[MAX_REPS], tar[MAX_REPS], to[MAX_REPS], tw[MAX_REPS], th[MAX_REPS];
    double fw[MAX_REPS], fe[MAX_REPS]; /* per-rep hidden fractions: wait-based, end-to-end */
    double fs[MAX_REPS];               /* per-rep hidden fraction as the step log computes it (grad_sync stats) */
    double fl[MAX_REPS];               /* per-rep wait-based fraction from the last rank's end of backward */
    int overlapped = 0;
    for (int r = 0; r <= reps; r++) { /* rep 0 warms up */
        double sumsq;
        MPI_Barrier(world.comm);
        double t0 = dl_time_seconds();
        forward_backward(&b, 0);
        double c = max_over(&world, dl_time_seconds() - t0);

        MPI_Barrier(world.comm);
        t0 = dl_time_seconds();
        forward_backward(&b, 0);
        double t1 = dl_time_seconds();
        TRY(dl_grad_sync_reduce(b.sync, &sumsq));
        double t2 = dl_time_seconds();
        double blocking = max_over(&world, t2 - t0), allreduce = max_over(&world, t2 - t1);
        /* From the last rank's end of backward: on one node CLOCK_MONOTONIC is one clock for every rank, so this
         * leaves out the time a faster rank waits for a slower one (load imbalance, not communication). */
        double allreduce_last = max_over(&world, t2) - max_over(&world, t1);

        MPI_Barrier(world.comm);
        t0 = dl_time_seconds();
        forward_backward(&b, 1);
        t1 = dl_time_seconds();
        TRY(dl_grad_sync_reduce(b.sync, &sumsq));
        t2 = dl_time_seconds();
        dl_grad_sync_stats stats;
        dl_grad_sync_stats_get(b.sync, &stats);
        overlapped = stats.buckets_overlapped;
        double over = max_over(&world, t2 - t0), wait = max_over(&world, t2 - t1);
        double wait_last = max_over(&world, t2) - max_over(&world, t1);
        double hook = max_over(&world, b.hook_seconds);
        if (r > 0) {
            tc[r - 1] = c;
            tb[r - 1] = blocking;
            tar[r - 1] = allreduce;
            to[r - 1] = over;
            tw[r - 1] = wait;
            th[r - 1] = hook;
            fw[r - 1] = 1 - wait / allreduce;
            fl[r - 1] = 1 - wait_last / allreduce_last;
            fe[r - 1] = 1 - (over - c) / allreduce;
            double exposed = max_over(&world, stats.exposed_seconds);
            double span = max_over(&world, stats.comm_seconds);
            fs[r - 1] = span > 0 ? 1 - exposed / span : 0;
        }
        if (world.rank == 0)
            fprintf(stderr, "rep %d: compute %.3f s, blocking %.3f s (all-reduce %.3f s), overlapped %.3f s (wait "
                            "%.3f s, in hooks %.3f s)\n",
                    r, c, blocking, allreduce, over, wait, hook);
    }
    double Tc = median(tc, reps), Tb = median(tb, reps), Tar = median(tar, reps), To = median(to, reps),
           Tw = median(tw, reps), Th = median(th, reps);
    if (world.rank == 0) {
        if (simulate_block_ms > 0)
            printf("### Overlap: GPT-2 124M shape, %d ranks, simulated backward (%g ms per block, LM head and "
                   "embedding in proportion; the host sleeps meanwhile, as it would with the compute on a GPU), %s\n\n",
                   world.size, simulate_block_ms, bucket);
        else
            printf("### Overlap: GPT-2 124M shape, %d ranks, %d tokens per rank, %s\n\n", world.size, tokens, bucket);
        const dl_tensor *wte = dl_tensor_table_find(b.model->params, "wte");
        int split = wte && ready[0] >= 0 && bounds[1] <= wte->numel; /* the table's first bucket leaves early */
        printf("%zu parameters (%.0f MB of gradients), %d buckets, %d started during backward; the buckets that can "
               "only leave after the embedding backward hold %.0f MB (%.0f%%): %s.\n\n",
               numel, numel * 4.0 / 1e6, nb, overlapped, last_bytes / 1e6, 100.0 * last_bytes / (numel * 4.0),
               split ? "the bucket holding the position table; the tied token embedding leaves after the LM head, and its input-side "
                       "rows are exchanged apart, inside the wait"
                     : "the tied token embedding travels whole (its rows would cost more than its all-reduce) with "
                       "the position table");
        printf("| median of %d | seconds |\n|---|---:|\n", reps);
        printf("| compute only (forward + backward), T_c | %.3f |\n", Tc);
        printf("| blocking: forward + backward + all-reduce, T_b | %.3f |\n", Tb);
        printf("| of which the all-reduce, T_ar | %.3f |\n", Tar);
        printf("| overlapped: forward + backward with hooks + wait, T_o | %.3f |\n", To);
        printf("| of which the wait after backward, T_w | %.3f |\n", Tw);
        printf("| of which inside the layer hooks (progress, sums) | %.3f |\n\n", Th);
        printf("hidden, wait-based 1 − T_w/T_ar: **%.0f%%** (median of per-rep values %.0f%%); end-to-end "
               "1 − (T_o − T_c)/T_ar: **%.0f%%** (median of per-rep values %.0f%%); step time overlapped / blocking: "
               "%.3f\n\n",
               100 * (1 - Tw / Tar), 100 * median(fw, reps), 100 * (1 - (To - Tc) / Tar), 100 * median(fe, reps),
               To / Tb);
        if (world.local_size == world.size)
            printf("hidden, wait-based from the last rank's end of backward (both waits timed from the moment the "
                   "slowest rank finished its backward, so load imbalance between ranks is left out): **%.0f%%** "
                   "(median of per-rep values)\n\n",
                   100 * median(fl, reps));
        printf("hidden as the step log reports it (grad_sync stats: 1 − exposed / time from the first bucket's start "
               "to the end of the wait): %.0f%%\n\n",
               100 * median(fs, reps));
        fflush(stdout);
    }
    bench_model_close(&b);
}

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Seconds per step (slowest rank); *cpu gets the CPU seconds per step of the busiest rank. */
static double timed_steps(bench_model *b, dl_world *w, int steps, double *cpu) {
    double c0 = cpu_seconds();
    double t0 = dl_time_seconds();
    for (int s = 0; s < steps; s++) {
        double sumsq;
        forward_backward(b, 1);
        TRY(dl_grad_sync_reduce(b->sync, &sumsq));
        TRY(dl_grad_sync_update(b->sync, 1e-4, 1.0 / b->in.num_tokens));
    }
    double wall = dl_time_seconds() - t0;
    *cpu = max_over(w, cpu_seconds() - c0) / steps;
    return max_over(w, wall) / steps;
}

static void run_scaling(int reps, int steps, const char *bucket) {
    char *shape[] = {"model.n_layer=4", "model.n_head=4", "model.n_embd=128", "model.vocab_size=256",
                     "model.max_seq_len=256", "data.seq_len=256", (char *)bucket};
    enum { ROWS = 8, LEN = 256 };
    dl_world self;
    TRY(dl_world_split(&world, world.rank == 0 ? 0 : -1, 0, &self));
    bench_model one, two;
    if (world.rank == 0)
        bench_model_open(&one, &self, shape, 7, ROWS, LEN, 1);
    bench_model_open(&two, &world, shape, 7, ROWS, LEN, 1);
    double t1[MAX_REPS], t2[MAX_REPS], c1[MAX_REPS], c2[MAX_REPS];
    for (int r = 0; r <= reps; r++) {
        double a = 0, ca = 0, cb = 0;
        if (world.rank == 0)
            a = timed_steps(&one, &self, steps, &ca);
        sleepy_barrier(&world);
        double b = timed_steps(&two, &world, steps, &cb);
        if (r > 0) {
            t1[r - 1] = a;
            t2[r - 1] = b;
            c1[r - 1] = ca;
            c2[r - 1] = cb;
        }
        if (world.rank == 0)
            fprintf(stderr, "scaling rep %d: 1 rank %.3f s/step (CPU %.3f s), %d ranks %.3f s/step (CPU %.3f s)\n", r,
                    a, ca, world.size, b, cb);
    }
    if (world.rank == 0) {
        double T1 = median(t1, reps), T2 = median(t2, reps), C1 = median(c1, reps), C2 = median(c2, reps);
        double tokens = ROWS * LEN;
        double tps1 = tokens / T1, tps2 = world.size * tokens / T2;
        printf("### Scaling: gpt-shakespeare shape (4 × 128, %d × %d tokens per rank, AdamW, 1 thread per rank)\n\n",
               ROWS, LEN);
        printf("| ranks | s/step (median of %d × %d steps) | tokens/s | CPU s/step (busiest rank) | tokens per CPU-s "
               "of the busiest rank × ranks |\n|---:|---:|---:|---:|---:|\n",
               reps, steps);
        printf("| 1 | %.3f | %.0f | %.3f | %.0f |\n| %d | %.3f | %.0f | %.3f | %.0f |\n\n", T1, tps1, C1, tokens / C1,
               world.size, T2, tps2, C2, world.size * tokens / C2);
        printf("tokens/s ratio %d ranks / 1 rank: **%.2f** wall-clock; **%.2f** from CPU time (what the ratio would be "
               "with a core per rank)\n\n",
               world.size, tps2 / tps1, (world.size * tokens / C2) / (tokens / C1));
        fflush(stdout);
        bench_model_close(&one);
    }
    bench_model_close(&two);
    dl_world_finalize(&self);
}

int main(int argc, char **argv) {
    if (dl_world_init(&world, &argc, &argv, 600.0) != DL_OK) {
        fprintf(stderr, "%s\n", dl_error_message());
        return 1;
    }
    omp_set_num_threads(1);
    openblas_set_num_threads(1);
    int tokens = 64, reps = 3, scaling_reps = 3, scaling_steps = 4, skip_overlap = 0, skip_scaling = 0;
    char bucket[64] = "comm.bucket_mb=25";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
            tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bucket-mb") && i + 1 < argc)
            snprintf(bucket, sizeof bucket, "comm.bucket_mb=%s", argv[++i]);
        else if (!strcmp(argv[i], "--scaling-reps") && i + 1 < argc)
            scaling_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--scaling-steps") && i + 1 < argc)
            scaling_steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--simulate-block-ms") && i + 1 < argc)
            simulate_block_ms = atof(argv[++i]);
        else if (!strcmp(argv[i], "--skip-overlap"))
            skip_overlap = 1;
        else if (!strcmp(argv[i], "--skip-scaling"))
            skip_scaling = 1;
        else {
            if (world.rank == 0)
                fprintf(stderr, "usage: bench_overlap [--tokens 64] [--reps 3] [--bucket-mb 25] [--scaling-reps 3] "
                                "[--scaling-steps 4] [--simulate-block-ms MS] [--skip-overlap] [--skip-scaling]\n");
            dl_world_finalize(&world);
            return 2;
        }
    }
    if (tokens < 2 || tokens > 1024 || reps < 1 || reps > MAX_REPS - 1 || scaling_reps < 1 ||
        scaling_reps > MAX_REPS - 1 || scaling_steps < 1) {
        if (world.rank == 0)
            fprintf(stderr, "bench_overlap: --tokens 2..1024, --reps and --scaling-reps 1..%d\n", MAX_REPS - 1);
        dl_world_finalize(&world);
        return 2;
    }
    char load_before[128], load_after[128];
    load_average(load_before, sizeof load_before);
    if (!skip_overlap)
        run_overlap(tokens, reps, bucket);
    if (!skip_scaling)
        run_scaling(scaling_reps, scaling_steps, bucket);
    load_average(load_after, sizeof load_after);
    if (world.rank == 0)
        printf("load average before: %s; after: %s (2 cores)\n", load_before, load_after);
    dl_world_finalize(&world);
    return 0;
}
