/* bench_gpt.c — the GPT training step on CPU: speed against the sgemm peak, gradient checkpointing, packing.
 *
 *   bench_gpt step [--threads T] [--steps R] [shape options]        ms/step, tokens/s, MFU (default: GPT-2 124M of
 *                                                                     configs/gpt2-124m.yaml, B=4, T=64, 2 threads,
 *                                                                     the shape llm.c's CPU trainer runs)
 *   bench_gpt ckpt [--threads T] [--steps R] [shape options]        model.checkpoint none against blocks: activation
 *                                                                     bytes and step time, interleaved
 *   bench_gpt step --device cuda --peak-tflops P [shape options]    the same step on a GPU: ms, tokens/s, MFU of P
 *   --precision fp32|bf16 (any mode; default fp32): model.precision, bf16 matmul operands with fp32 accumulation
 *                                                  (on the CPU a slow correctness path, not a speed-up)
 *   bench_gpt pack [--threads T] [--steps R] [--data FILE] [shape]  Shakespeare speeches at T=512 on the demo model:
 *                                                                     real tokens/s packed, one speech per row
 *                                                                     (data.packing: false, padding stripped) and
 *                                                                     classic padded rows that compute their padding
 *   shape options: --layers L --heads H --embd C --vocab V --batch B --seq T, or --demo: the model of
 *                  configs/gpt-shakespeare.yaml (rotary positions); otherwise learned positions, 1024 of them
 *
 * A step is what the trainer does on one rank: zero the gradients, forward, backward, Σg² for the clipping norm,
 * AdamW over every parameter view. Each figure is the median of R timed steps after one warm-up step. MFU divides
 * the model FLOPs (dl_gpt_flops_per_token, PaLM convention) per second by the sgemm rate `dealer bench gemm`
 * reports (dl_blas_gemm_gflops, 2048³, same thread count), measured in the same run before and after the steps;
 * the better of the two is the peak. The machine this was written on is shared, so wall-clock figures swing by 2-3×
 * with other jobs' load; every mode therefore also reports CPU time (all threads of the process), which other
 * processes delay but do not inflate: `step` compares the step's GFLOP per CPU-second with one-thread sgemm's
 * ("work efficiency"), and `ckpt` and `pack` interleave their variants step by step and give both ratios. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/philox.h"
#include "core/timer.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "ops/blas_runtime.h"
#include "ops/ops.h"
#include "models/gpt.h"
#include "train/optimizer.h"

void openblas_set_num_threads(int num_threads);

static void die(const char *what) {
    fprintf(stderr, "bench_gpt: %s: %s\n", what, dl_error_message());
    exit(1);
}

static void check(dl_status s, const char *what) {
    if (s != DL_OK)
        die(what);
}

typedef struct options {
    const char *mode;
    const char *data;
    int threads, steps;
    int layers, heads, embd, vocab, batch, seq, max_seq, rope;
    const char *device;  /* "cpu" or "cuda" (step mode) */
    double peak_tflops;  /* cuda: the GPU's peak the MFU is quoted against (no sgemm reference there) */
    int bf16;            /* --precision bf16 */
} options;

static int parse_int(const char *flag, const char *text, int *out) {
    char *end;
    errno = 0;
    long v = strtol(text ? text : "", &end, 10);
    if (!text || errno || *end || v <= 0 || v > 1 << 24) {
        fprintf(stderr, "bench_gpt: %s needs a positive integer, got '%s'\n", flag, text ? text : "");
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* The model of configs/gpt-shakespeare.yaml (rotary positions, so any seq_len works). */
static void demo_shape(options *o) {
    o->layers = 4, o->heads = 4, o->embd = 128, o->vocab = 256, o->batch = 8, o->seq = 512, o->max_seq = 512;
    o->rope = 1;
}

static int parse(int argc, char **argv, options *o) {
    *o = (options){"step", "data/shakespeare/train.tfrecord", 2, 5, 12, 12, 768, 50257, 4, 64, 1024, 0, "cpu", 0.0, 0};
    int i = 1;
    if (argc > 1 && argv[1][0] != '-')
        o->mode = argv[i++];
    if (strcmp(o->mode, "pack") == 0)
        demo_shape(o);
    for (; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *dst = strcmp(a, "--threads") == 0  ? &o->threads
                   : strcmp(a, "--steps") == 0  ? &o->steps
                   : strcmp(a, "--layers") == 0 ? &o->layers
                   : strcmp(a, "--heads") == 0  ? &o->heads
                   : strcmp(a, "--embd") == 0   ? &o->embd
                   : strcmp(a, "--vocab") == 0  ? &o->vocab
                   : strcmp(a, "--batch") == 0  ? &o->batch
                   : strcmp(a, "--seq") == 0    ? &o->seq
                                                : NULL;
        if (dst) {
            if (parse_int(a, v, dst))
                return -1;
            i++;
        } else if (strcmp(a, "--data") == 0 && v) {
            o->data = v;
            i++;
        } else if (strcmp(a, "--demo") == 0) {
            demo_shape(o);
        } else if (strcmp(a, "--device") == 0 && v && (strcmp(v, "cpu") == 0 || strcmp(v, "cuda") == 0)) {
            o->device = v;
            i++;
        } else if (strcmp(a, "--precision") == 0 && v && (strcmp(v, "fp32") == 0 || strcmp(v, "bf16") == 0)) {
            o->bf16 = strcmp(v, "bf16") == 0;
            i++;
        } else if (strcmp(a, "--precision") == 0) {
            fprintf(stderr, "bench_gpt: --precision takes fp32 or bf16, got '%s'\n", v ? v : "");
            return -1;
        } else if (strcmp(a, "--peak-tflops") == 0 && v) {
            char *end;
            o->peak_tflops = strtod(v, &end);
            if (*end || !(o->peak_tflops > 0.0)) {
                fprintf(stderr, "bench_gpt: --peak-tflops needs a positive number, got '%s'\n", v);
                return -1;
            }
            i++;
        } else {
            fprintf(stderr, "bench_gpt: unknown option '%s' (modes: step, ckpt, pack; see the top of bench_gpt.c)\n",
                    a);
            return -1;
        }
    }
    if (o->seq > o->max_seq)
        o->max_seq = o->seq;
    if (strcmp(o->mode, "step") && strcmp(o->mode, "ckpt") && strcmp(o->mode, "pack")) {
        fprintf(stderr, "bench_gpt: unknown mode '%s' (step, ckpt, pack)\n", o->mode);
        return -1;
    }
    if (strcmp(o->device, "cuda") == 0 && (strcmp(o->mode, "step") || o->peak_tflops <= 0.0)) {
        fprintf(stderr, "bench_gpt: --device cuda runs the step mode and needs --peak-tflops (the GPU's peak for "
                        "the MFU, e.g. 989 for an H100's dense bf16)\n");
        return -1;
    }
    return 0;
}

/* ---- one training step ------------------------------------------------------------------------------------------ */

typedef struct phase_times {
    double zero, forward, backward, optimizer, total, cpu;
} phase_times;

typedef struct trainee {
    dl_gpt *gpt;
    dl_optimizer opt;
    dl_gpt_config config;
    int64_t step;
    double init_seconds;
} trainee;

static void trainee_open(trainee *t, const dl_backend *be, const options *o, int checkpoint_every, int max_tokens) {
    memset(t, 0, sizeof *t);
    t->config = (dl_gpt_config){o->vocab,   o->layers, o->heads, o->embd, o->max_seq,
                                o->rope,    10000.0f,  checkpoint_every, o->bf16};
    check(dl_gpt_create(&t->gpt, &t->config, be, max_tokens, max_tokens), "creating the model");
    double t0 = dl_time_seconds();
    check(dl_gpt_init_params(t->gpt, 1337), "initialising the model");
    t->init_seconds = dl_time_seconds() - t0;
    dl_optimizer_settings os = {.kind = DL_OPT_ADAMW, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
    check(dl_optimizer_create(&t->opt, &os, be, dl_gpt_params(t->gpt), 0, dl_gpt_num_params(t->gpt)),
          "creating the optimizer");
}

static void trainee_close(trainee *t) {
    dl_optimizer_destroy(&t->opt);
    dl_gpt_destroy(t->gpt);
}

/* CPU time of every thread of the process: spinning counts, waiting for a core does not. */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double train_step(trainee *t, const dl_backend *be, const dl_gpt_inputs *in, phase_times *p) {
    double c0 = cpu_seconds();
    double t0 = dl_time_seconds();
    check(dl_gpt_zero_grads(t->gpt), "zeroing gradients");
    double t1 = dl_time_seconds();
    double loss;
    int64_t targets;
    check(dl_gpt_forward(t->gpt, in, &loss, &targets), "forward");
    double t2 = dl_time_seconds();
    check(dl_gpt_backward(t->gpt, NULL), "backward");
    check(dl_synchronize(be), "waiting for the backward"); /* a GPU backward returns before it is done */
    double t3 = dl_time_seconds();
    double sumsq;
    check(dl_op_sumsq(be, &sumsq, dl_gpt_grad_data(t->gpt), dl_gpt_num_params(t->gpt)), "gradient norm");
    double scale = targets > 0 ? 1.0 / (double)targets : 0.0;
    double norm = sqrt(sumsq) * scale;
    double clip = norm > 1.0 ? 1.0 / norm : 1.0;
    check(dl_optimizer_step(&t->opt, dl_gpt_param_data(t->gpt), dl_gpt_grad_data(t->gpt), 1e-4, scale * clip),
          "optimizer step");
    double t4 = dl_time_seconds();
    t->step++;
    if (p)
        *p = (phase_times){t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0, cpu_seconds() - c0};
    return targets > 0 ? loss / (double)targets : NAN;
}

/* Random tokens in B documents of T tokens, one per row (llm.c's B×T batch). */
typedef struct token_buffers {
    int32_t *tokens, *targets, *positions, *cu;
    dl_gpt_inputs in;
} token_buffers;

static void random_batch(token_buffers *b, int B, int T, int V) {
    int N = B * T;
    b->tokens = malloc((size_t)N * sizeof(int32_t));
    b->targets = malloc((size_t)N * sizeof(int32_t));
    b->positions = malloc((size_t)N * sizeof(int32_t));
    b->cu = malloc(((size_t)B + 1) * sizeof(int32_t));
    if (!b->tokens || !b->targets || !b->positions || !b->cu) {
        fprintf(stderr, "bench_gpt: out of memory\n");
        exit(1);
    }
    dl_rng rng;
    dl_rng_init(&rng, 42, DL_STREAM_DATA);
    for (int i = 0; i < N; i++)
        b->tokens[i] = (int32_t)dl_rng_below(&rng, (uint64_t)V);
    for (int r = 0; r <= B; r++)
        b->cu[r] = r * T;
    for (int i = 0; i < N; i++) {
        b->positions[i] = i % T;
        b->targets[i] = i % T == T - 1 ? -1 : b->tokens[i + 1];
    }
    b->in = (dl_gpt_inputs){b->tokens, b->targets, b->positions, b->cu, B, N};
}

static void free_batch(token_buffers *b) {
    free(b->tokens), free(b->targets), free(b->positions), free(b->cu);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double attended_context(const dl_gpt_inputs *in) {
    double attended = 0;
    for (int s = 0; s < in->num_seqs; s++) {
        double n = in->cu_seqlens[s + 1] - in->cu_seqlens[s];
        attended += n * (n + 1) / 2;
    }
    return attended / in->num_tokens;
}

static void print_shape(const options *o, const trainee *t) {
    printf("model: %d layers, %d heads, %d wide, vocab %d: %.1fM parameters (initialised in %.2f s); batch %d x %d "
           "tokens; %d thread%s; precision %s\n", o->layers, o->heads, o->embd, o->vocab,
           (double)dl_gpt_num_params(t->gpt) / 1e6, t->init_seconds, o->batch, o->seq, o->threads,
           o->threads == 1 ? "" : "s", o->bf16 ? "bf16 (fp32 accumulation)" : "fp32");
}

/* `dealer bench gemm` (2048³, best of 5 after a warm-up, wall clock at `threads`), and the GFLOP per CPU-second
 * of the same products on one thread (all 6): the sgemm kernel's rate per core, which a loaded machine cannot
 * distort, since other processes delay a thread but do not add to its CPU time. */
static double gemm_reference(int threads, double *per_cpu_second) {
    double gflops = dl_blas_gemm_gflops(2048, 5, threads);
    double c0 = cpu_seconds();
    dl_blas_gemm_gflops(2048, 5, 1);
    *per_cpu_second = 6.0 * 2.0 * 2048.0 * 2048.0 * 2048.0 / (cpu_seconds() - c0) / 1e9;
    return gflops;
}

/* The step on a GPU: tokens/s and MFU against the peak the caller names (the sgemm reference is a CPU figure). */
static int run_step_gpu(const options *o, const dl_backend *be) {
    trainee t;
    trainee_open(&t, be, o, 0, o->batch * o->seq);
    print_shape(o, &t);
    token_buffers b;
    random_batch(&b, o->batch, o->seq, o->vocab);
    double loss0 = train_step(&t, be, &b.in, NULL); /* warm-up: cuBLASLt plans, scratch */
    double *total = calloc((size_t)o->steps, sizeof(double));
    double loss = loss0;
    for (int r = 0; r < o->steps; r++) {
        phase_times p;
        loss = train_step(&t, be, &b.in, &p);
        total[r] = p.total;
        printf("  step %d: %.2f ms (zero %.2f, forward %.2f, backward %.2f, norm+AdamW %.2f), loss %.4f\n", r + 1,
               p.total * 1e3, p.zero * 1e3, p.forward * 1e3, p.backward * 1e3, p.optimizer * 1e3, loss);
    }
    double best = total[0];
    for (int r = 1; r < o->steps; r++)
        best = total[r] < best ? total[r] : best;
    double ms = median(total, o->steps) * 1e3, tokens = b.in.num_tokens;
    double flops = dl_gpt_flops_per_token(&t.config, attended_context(&b.in)) * tokens;
    printf("\nmedian step: %.2f ms | tokens/s %.0f | model %.1f GFLOP/step, %.1f TFLOP/s | MFU %.1f%% of %.1f "
           "TFLOP/s | loss %.4f -> %.4f\n", ms, tokens / (ms / 1e3), flops / 1e9, flops / (ms / 1e3) / 1e12,
           100.0 * flops / (ms / 1e3) / (o->peak_tflops * 1e12), o->peak_tflops, loss0, loss);
    printf("best step: %.2f ms, %.0f tokens/s, MFU %.1f%%\n", best * 1e3, tokens / best,
           100.0 * flops / best / (o->peak_tflops * 1e12));
    free(total);
    free_batch(&b);
    trainee_close(&t);
    return 0;
}

static int run_step(const options *o, const dl_backend *be) {
    if (be->kind == DL_DEVICE_CUDA)
        return run_step_gpu(o, be);
    double cpu_rate_before, cpu_rate_after;
    double peak_before = gemm_reference(o->threads, &cpu_rate_before);
    trainee t;
    trainee_open(&t, be, o, 0, o->batch * o->seq);
    print_shape(o, &t);
    token_buffers b;
    random_batch(&b, o->batch, o->seq, o->vocab);
    double loss0 = train_step(&t, be, &b.in, NULL); /* warm-up: page faults, BLAS buffers */
    double *total = calloc((size_t)o->steps, sizeof(double)), *fwd = calloc((size_t)o->steps, sizeof(double));
    double *bwd = calloc((size_t)o->steps, sizeof(double)), *opt = calloc((size_t)o->steps, sizeof(double));
    double *zero = calloc((size_t)o->steps, sizeof(double)), *cpu = calloc((size_t)o->steps, sizeof(double));
    double loss = loss0;
    for (int r = 0; r < o->steps; r++) {
        phase_times p;
        loss = train_step(&t, be, &b.in, &p);
        total[r] = p.total, fwd[r] = p.forward, bwd[r] = p.backward, opt[r] = p.optimizer, zero[r] = p.zero;
        cpu[r] = p.cpu;
        printf("  step %d: cpu %.0f ms, cpu/wall %.2f, %.1f ms (zero %.1f, forward %.1f, backward %.1f, norm+AdamW %.1f), loss %.4f\n", r + 1, p.cpu * 1e3, p.cpu / p.total,
               p.total * 1e3, p.zero * 1e3, p.forward * 1e3, p.backward * 1e3, p.optimizer * 1e3, loss);
    }
    double peak_after = gemm_reference(o->threads, &cpu_rate_after);
    double peak = peak_before > peak_after ? peak_before : peak_after;
    double cpu_rate = cpu_rate_before > cpu_rate_after ? cpu_rate_before : cpu_rate_after;
    double best = total[0];
    for (int r = 1; r < o->steps; r++)
        best = total[r] < best ? total[r] : best;
    double ms = median(total, o->steps) * 1e3, cpu_ms = median(cpu, o->steps) * 1e3;
    double tokens = b.in.num_tokens;
    double flops = dl_gpt_flops_per_token(&t.config, attended_context(&b.in)) * tokens;
    printf("\nsgemm 2048^3 (dealer bench gemm): %.1f GFLOP/s before, %.1f after; peak %.1f\n", peak_before,
           peak_after, peak);
    printf("median step: %.1f ms (zero %.1f, forward %.1f, backward %.1f, norm+AdamW %.1f)\n", ms,
           median(zero, o->steps) * 1e3, median(fwd, o->steps) * 1e3, median(bwd, o->steps) * 1e3,
           median(opt, o->steps) * 1e3);
    printf("tokens/s %.1f | model %.1f GFLOP/step, %.1f GFLOP/s | MFU %.1f%% of sgemm | loss %.4f -> %.4f\n",
           tokens / (ms / 1e3), flops / 1e9, flops / (ms / 1e3) / 1e9, 100.0 * flops / (ms / 1e3) / (peak * 1e9),
           loss0, loss);
    printf("best step: %.1f ms, %.1f tokens/s, MFU %.1f%%\n", best * 1e3, tokens / best,
           100.0 * flops / best / (peak * 1e9));
    printf("CPU time: %.1f ms per step (all threads) = %.1f GFLOP per CPU-second; one-thread sgemm %.1f GFLOP per "
           "CPU-second; work efficiency %.1f%%\n", cpu_ms, flops / (cpu_ms / 1e3) / 1e9, cpu_rate,
           100.0 * flops / (cpu_ms / 1e3) / (cpu_rate * 1e9));
    free(total), free(fwd), free(bwd), free(opt), free(zero), free(cpu);
    free_batch(&b);
    trainee_close(&t);
    return 0;
}

/* ---- gradient checkpointing ------------------------------------------------------------------------------------ */

static int run_ckpt(const options *o, const dl_backend *be) {
    int N = o->batch * o->seq;
    trainee none, blocks;
    trainee_open(&none, be, o, 0, N);
    trainee_open(&blocks, be, o, 1, N);
    print_shape(o, &none);
    size_t bytes_none = dl_gpt_activation_bytes(&none.config, N, N);
    size_t bytes_blocks = dl_gpt_activation_bytes(&blocks.config, N, N);
    token_buffers b;
    random_batch(&b, o->batch, o->seq, o->vocab);
    double l0 = train_step(&none, be, &b.in, NULL), l1 = train_step(&blocks, be, &b.in, NULL);
    double *tn = calloc((size_t)o->steps, sizeof(double)), *tb = calloc((size_t)o->steps, sizeof(double));
    double *fn = calloc((size_t)o->steps, sizeof(double)), *fb = calloc((size_t)o->steps, sizeof(double));
    double *cn = calloc((size_t)o->steps, sizeof(double)), *cb = calloc((size_t)o->steps, sizeof(double));
    for (int r = 0; r < o->steps; r++) { /* interleaved, so load changes hit both alike */
        phase_times p;
        train_step(&none, be, &b.in, &p);
        tn[r] = p.total, fn[r] = p.forward + p.backward, cn[r] = p.cpu;
        train_step(&blocks, be, &b.in, &p);
        tb[r] = p.total, fb[r] = p.forward + p.backward, cb[r] = p.cpu;
        printf("  round %d: none %.1f ms (cpu %.1f), blocks %.1f ms (cpu %.1f): %.3fx wall, %.3fx cpu\n", r + 1,
               tn[r] * 1e3, cn[r] * 1e3, tb[r] * 1e3, cb[r] * 1e3, tb[r] / tn[r], cb[r] / cn[r]);
    }
    double mn = median(tn, o->steps), mb = median(tb, o->steps);
    double fwbn = median(fn, o->steps), fwbb = median(fb, o->steps);
    double mcn = median(cn, o->steps), mcb = median(cb, o->steps);
    printf("\n| checkpoint | activation MiB | of none | step ms | of none | fwd+bwd ms | of none | CPU ms | of none |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    printf("| none | %.1f | 100%% | %.1f | 1.00x | %.1f | 1.00x | %.1f | 1.00x |\n", (double)bytes_none / 1048576.0,
           mn * 1e3, fwbn * 1e3, mcn * 1e3);
    printf("| blocks | %.1f | %.1f%% | %.1f | %.2fx | %.1f | %.2fx | %.1f | %.2fx |\n",
           (double)bytes_blocks / 1048576.0, 100.0 * (double)bytes_blocks / (double)bytes_none, mb * 1e3, mb / mn,
           fwbb * 1e3, fwbb / fwbn, mcb * 1e3, mcb / mcn);
    free(cn), free(cb);
    printf("first-step losses: none %.6f, blocks %.6f (same parameters and batch: must match)\n", l0, l1);
    free(tn), free(tb), free(fn), free(fb);
    free_batch(&b);
    trainee_close(&none);
    trainee_close(&blocks);
    return 0;
}

/* ---- packing --------------------------------------------------------------------------------------------------- */

typedef struct pack_result {
    double seconds, cpu, real_tokens, computed_tokens, slots;
    int steps;
} pack_result;

/* Classic padding: every row is computed whole (seq_len tokens), its document followed by padding that the loss
 * ignores. The real tokens keep their positions, targets and causal context, so the loss is the same; only the
 * compute on padding is added. */
static void pad_rows(const dl_token_batch *tb, token_buffers *out) {
    int T = tb->seq_len, B = tb->rows;
    int rows = 0;
    for (int r = 0; r < B; r++) {
        int lo = tb->row_offsets[r], hi = tb->row_offsets[r + 1];
        if (hi <= lo)
            continue;
        for (int i = 0; i < T; i++) {
            int k = rows * T + i, src = lo + i;
            int real = src < hi;
            out->tokens[k] = real ? tb->tokens[src] : 0;
            out->targets[k] = real ? tb->targets[src] : -1;
            out->positions[k] = i;
        }
        out->cu[rows + 1] = (rows + 1) * T;
        rows++;
    }
    out->cu[0] = 0;
    out->in = (dl_gpt_inputs){out->tokens, out->targets, out->positions, out->cu, rows, rows * T};
}

enum { PACK_MODES = 3 };

/* The three ways of batching train side by side, one step each in turn (so load changes on a shared machine hit
 * them alike), each with its own model, optimizer and loader. */
static int run_pack(const options *o, const dl_backend *be) {
    dl_dataset *set;
    const char *files[1] = {o->data};
    check(dl_dataset_open(&set, files, 1), "opening the records (make them with scripts/demo or dealer data convert)");
    dl_doc_source src;
    dl_dataset_source(set, &src);
    printf("data: %s; model: %d layers, %d heads, %d wide, vocab %d; %d rows x %d tokens; %d steps per mode, "
           "interleaved; %d thread%s\n", o->data, o->layers, o->heads, o->embd, o->vocab, o->batch, o->seq, o->steps,
           o->threads, o->threads == 1 ? "" : "s");
    const char *names[PACK_MODES] = {"packed (data.packing: true)", "one speech per row (data.packing: false)",
                                     "classic padded rows (padding computed)"};
    const int packing[PACK_MODES] = {1, 0, 0}, classic[PACK_MODES] = {0, 0, 1};
    dl_loader *loaders[PACK_MODES];
    trainee models[PACK_MODES];
    pack_result res[PACK_MODES];
    memset(res, 0, sizeof res);
    int N = o->batch * o->seq;
    token_buffers padded;
    random_batch(&padded, o->batch, o->seq, o->vocab); /* buffers of the right size; overwritten */
    for (int m = 0; m < PACK_MODES; m++) {
        dl_loader_config lc;
        dl_loader_config_default(&lc);
        lc.batch_rows = o->batch;
        lc.seq_len = o->seq;
        lc.packing = packing[m];
        lc.seed = 1337;
        lc.prefetch = 2;
        check(dl_loader_open(&loaders[m], &src, &lc, NULL, 0), "opening the loader");
        trainee_open(&models[m], be, o, 0, N);
    }
    for (int step = 0; step <= o->steps; step++)
        for (int m = 0; m < PACK_MODES; m++) {
            const dl_batch *batch;
            check(dl_loader_next(loaders[m], &batch), "reading a batch");
            const dl_token_batch *tb = &batch->tokens;
            dl_gpt_inputs in = {tb->tokens, tb->targets, tb->positions, tb->cu_seqlens, tb->num_seqs,
                                tb->num_tokens};
            if (classic[m]) {
                pad_rows(tb, &padded);
                in = padded.in;
            }
            phase_times p;
            train_step(&models[m], be, &in, &p);
            if (step == 0)
                continue; /* warm-up */
            res[m].seconds += p.total;
            res[m].cpu += p.cpu;
            res[m].real_tokens += tb->num_tokens;
            res[m].computed_tokens += in.num_tokens;
            res[m].slots += (double)tb->rows * tb->seq_len;
            res[m].steps++;
        }
    printf("\n| batches | slot efficiency | real tokens/step | computed tokens/step | ms/step | real tokens/s | "
           "packed is | real tokens per CPU s | packed is (CPU) |\n|---|---|---|---|---|---|---|---|---|\n");
    double packed_rate = res[0].real_tokens / res[0].seconds, packed_cpu = res[0].real_tokens / res[0].cpu;
    for (int m = 0; m < PACK_MODES; m++) {
        double rate = res[m].real_tokens / res[m].seconds, cpu_rate = res[m].real_tokens / res[m].cpu;
        printf("| %s | %.1f%% | %.0f | %.0f | %.1f | %.0f | %.2fx | %.0f | %.2fx |\n", names[m],
               100.0 * res[m].real_tokens / res[m].slots, res[m].real_tokens / res[m].steps,
               res[m].computed_tokens / res[m].steps, 1e3 * res[m].seconds / res[m].steps, rate, packed_rate / rate,
               cpu_rate, packed_cpu / cpu_rate);
    }
    for (int m = 0; m < PACK_MODES; m++) {
        trainee_close(&models[m]);
        dl_loader_close(loaders[m]);
    }
    free_batch(&padded);
    dl_dataset_close(set);
    return 0;
}

int main(int argc, char **argv) {
    dl_blas_select_kernel(argv);
    options o;
    if (parse(argc, argv, &o))
        return 2;
    omp_set_num_threads(o.threads);
    openblas_set_num_threads(o.threads);
    dl_backend be;
    check(dl_backend_open(&be, o.device, 0), "opening the backend");
    printf("bench_gpt %s: BLAS %s; OMP_WAIT_POLICY=%s\n", o.mode, dl_blas_describe(),
           getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "(unset)");
    int rc = strcmp(o.mode, "step") == 0   ? run_step(&o, &be)
             : strcmp(o.mode, "ckpt") == 0 ? run_ckpt(&o, &be)
                                           : run_pack(&o, &be);
    dl_backend_close(&be);
    return rc;
}
