/* gpu_gpt.c — one GPT training micro-batch on the CUDA backend against the same micro-batch on the CPU backend.
 *
 * For each variant (learned or rotary positions, with and without gradient checkpointing; fp32, and two in bf16
 * mixed precision) it builds a small GPT on
 * both backends with the same parameters (initialised on the CPU and copied, so the comparison does not depend on
 * the two initialisers agreeing), runs forward and backward on the same packed batch (documents of uneven lengths,
 * one of a single token, masked targets inside documents), and compares the loss and every parameter's gradient
 * per element: the norm-relative error that decides pass/fail, the largest absolute and relative errors and the
 * index of the worst element. It also reports how far the GPU's own initialiser is from the CPU's for the same seed.
 *
 * Tolerances. Both backends compute in fp32 (the CUDA matmuls run without TF32 unless DEALER_CUDA_TF32=1, which
 * this program refuses) and differ only in summation order and fused multiply-adds; gpu_check bounds each op's
 * error by 1e-5 (norm-relative), and a single op's difference is about √K·2⁻²⁴ ≈ 2e-6 for K ≈ 1000-term sums.
 * A gradient here is the product of ~6 ops per block over 3 blocks plus the head, in forward and backward, so the
 * relative differences add up to a few dozen op errors: ≈ 40 · 2e-6 ≈ 1e-4. Gradients are checked at 5e-4
 * (margin for tensors whose gradient is a difference of nearly equal terms, LayerNorm biases); the loss, a sum of
 * per-token log-probabilities each a few ops deep, at 1e-5 relative. A real bug (a wrong index, a lost
 * accumulation, a race) gives errors of order 1.
 *
 * The bf16 variants (model.precision bf16) compare the CUDA bf16 step with the CPU bf16 step: both round the same
 * tensors to bf16 with the same rule and accumulate the exact products in fp32, so they differ by the fp32
 * differences above plus the roundings those differences flip: a value within the ~1e-6 fp32 difference of a bf16
 * rounding boundary rounds the other way on one side, a fraction p ≈ 2·1e-6/2⁻⁸ ≈ 5e-4 of the elements, each then
 * off by one bf16 step (2⁻⁸ relative): ≈ 2⁻⁸·√p ≈ 9e-5 norm-relative per rounded tensor. About 40 of them lie on
 * a gradient's path (forward and backward), so gradients are checked at 5e-3 (40 · 9e-5 = 3.6e-3, plus the fp32
 * part); the loss, a sum over ~230 tokens whose flips have independent signs, at 2e-4 (13 rounded forward tensors
 * · 9e-5 / √230 ≈ 8e-5, with margin). A bf16 path that rounds differently on the two sides (truncation instead of
 * nearest-even, a tensor left in fp32 on one side) gives errors of 2⁻⁹ or more on every element: far above.
 *
 * Usage: gpu_gpu_gpt [--json FILE] [--dry-run]   (exit 0 pass, 1 a comparison failed, 77 no GPU, 2 bad usage)
 * --dry-run runs the "GPU" side on a second CPU backend, to exercise this program on a CPU machine. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/philox.h"
#include "core/status.h"
#include "models/gpt.h"
#include "ops/ops.h"

enum { CPU = 0, GPU = 1, NUM_DOCS = 6 };

static const double GRAD_TOL = 5e-4, LOSS_TOL = 1e-5, BF16_GRAD_TOL = 5e-3, BF16_LOSS_TOL = 2e-4;

typedef struct packed_batch {
    int32_t *tokens, *targets, *positions;
    int32_t cu[NUM_DOCS + 1];
    dl_gpt_inputs in;
} packed_batch;

typedef struct elem_errors {
    double norm_rel, max_abs, max_rel;
    size_t worst;
} elem_errors;

static FILE *g_json;
static int g_json_rows, g_failed, g_rows;

static void die(const char *what) {
    fprintf(stderr, "gpu_gpt: %s: %s\n", what, dl_error_message());
    exit(1);
}

/* Documents of 37, 1, 64, 17, 90 and 23 tokens packed back to back; the last token of each has no target, and
 * every 11th position inside a document is masked (-1) as a loss mask would. */
static void make_batch(packed_batch *b, int vocab, uint64_t seed) {
    static const int lengths[NUM_DOCS] = {37, 1, 64, 17, 90, 23};
    int n = 0;
    for (int d = 0; d < NUM_DOCS; d++)
        n += lengths[d];
    b->tokens = calloc((size_t)n, sizeof(int32_t));
    b->targets = calloc((size_t)n, sizeof(int32_t));
    b->positions = calloc((size_t)n, sizeof(int32_t));
    if (!b->tokens || !b->targets || !b->positions) {
        fprintf(stderr, "gpu_gpt: out of host memory\n");
        exit(1);
    }
    dl_rng rng;
    dl_rng_init(&rng, seed, DL_STREAM_DATA);
    int t = 0;
    b->cu[0] = 0;
    for (int d = 0; d < NUM_DOCS; d++) {
        for (int i = 0; i < lengths[d]; i++, t++) {
            b->tokens[t] = (int32_t)dl_rng_below(&rng, (uint64_t)vocab);
            b->positions[t] = i;
        }
        b->cu[d + 1] = t;
    }
    for (int d = 0; d < NUM_DOCS; d++)
        for (int i = b->cu[d]; i < b->cu[d + 1]; i++)
            b->targets[i] = (i + 1 < b->cu[d + 1] && (i - b->cu[d]) % 11 != 5) ? b->tokens[i + 1] : -1;
    b->in = (dl_gpt_inputs){b->tokens, b->targets, b->positions, b->cu, NUM_DOCS, n};
}

static elem_errors compare(const float *cpu, const float *gpu, size_t n) {
    elem_errors e = {0.0, 0.0, 0.0, 0};
    double peak = 0.0, diff = 0.0, ref = 0.0;
    for (size_t i = 0; i < n; i++)
        peak = fmax(peak, fabs((double)cpu[i]));
    double floor_abs = 1e-6 * peak + 1e-300; /* elements that are zero up to rounding are not infinitely wrong */
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)gpu[i] - (double)cpu[i]);
        if (isnan(d)) {
            e.norm_rel = e.max_abs = e.max_rel = NAN;
            e.worst = i;
            return e;
        }
        diff += d * d;
        ref += (double)cpu[i] * cpu[i];
        e.max_abs = fmax(e.max_abs, d);
        double rel = d / (fabs((double)cpu[i]) + floor_abs);
        if (rel > e.max_rel) {
            e.max_rel = rel;
            e.worst = i;
        }
    }
    e.norm_rel = diff == 0.0 ? 0.0 : sqrt(diff) / fmax(sqrt(ref), 1e-300);
    return e;
}

static void json_number(double v) {
    if (isfinite(v))
        fprintf(g_json, "%.6e", v);
    else
        fputs("null", g_json);
}

static void report(const char *variant, const char *what, const elem_errors *e, double tol, int checked) {
    int pass = !checked || (e->norm_rel <= tol); /* NaN fails */
    g_rows += checked;
    g_failed += !pass;
    printf("| %s | %s | %.2e | %.2e | %.2e at [%zu] | %s | %s |\n", variant, what, e->norm_rel, e->max_abs,
           e->max_rel, e->worst, checked ? "" : "(reported)", pass ? "pass" : "FAIL");
    if (!g_json)
        return;
    fprintf(g_json, "%s\n  {\"variant\": \"%s\", \"what\": \"%s\", \"norm_rel_err\": ", g_json_rows++ ? "," : "",
            variant, what);
    json_number(e->norm_rel);
    fputs(", \"max_abs_err\": ", g_json);
    json_number(e->max_abs);
    fputs(", \"max_rel_err\": ", g_json);
    json_number(e->max_rel);
    fprintf(g_json, ", \"worst_index\": %zu, \"tol\": ", e->worst);
    json_number(checked ? tol : NAN);
    fprintf(g_json, ", \"pass\": %s}", pass ? "true" : "false");
}

static float *download(const dl_backend *be, const float *device, size_t n) {
    float *host = malloc(n * sizeof(float));
    if (!host) {
        fprintf(stderr, "gpu_gpt: out of host memory\n");
        exit(1);
    }
    if (dl_mem_to_host(be, host, device, n * sizeof(float)) != DL_OK)
        die("copying a buffer to the host");
    return host;
}

static void run_variant(dl_backend be[2], int rope, int checkpoint_every, int bf16) {
    char variant[80];
    snprintf(variant, sizeof variant, "%s, %s%s", rope ? "rotary" : "learned positions",
             checkpoint_every ? "checkpointing every block" : "no checkpointing", bf16 ? ", bf16" : "");
    double grad_tol = bf16 ? BF16_GRAD_TOL : GRAD_TOL, loss_tol = bf16 ? BF16_LOSS_TOL : LOSS_TOL;
    dl_gpt_config cfg = {.vocab_size = 97, .n_layer = 3, .n_head = 4, .n_embd = 64, .max_seq_len = 128,
                         .rope = rope, .rope_theta = 10000.0f, .checkpoint_every = checkpoint_every, .bf16 = bf16};
    packed_batch batch;
    make_batch(&batch, cfg.vocab_size, 2024);
    dl_gpt *m[2];
    for (int s = CPU; s <= GPU; s++)
        if (dl_gpt_create(&m[s], &cfg, &be[s], batch.in.num_tokens, NUM_DOCS) != DL_OK)
            die(s == CPU ? "creating the CPU model" : "creating the GPU model");
    size_t n = dl_gpt_num_params(m[CPU]);

    /* The GPU's own initialiser against the CPU's, for the record; then both start from the CPU's parameters. */
    if (dl_gpt_init_params(m[CPU], 77) != DL_OK || dl_gpt_init_params(m[GPU], 77) != DL_OK)
        die("initialising the parameters");
    float *p_cpu = download(&be[CPU], dl_gpt_param_data(m[CPU]), n);
    float *p_gpu = download(&be[GPU], dl_gpt_param_data(m[GPU]), n);
    elem_errors init = compare(p_cpu, p_gpu, n);
    report(variant, "init_params (same seed)", &init, 0.0, 0);
    if (dl_mem_to_device(&be[GPU], dl_gpt_param_data(m[GPU]), p_cpu, n * sizeof(float)) != DL_OK)
        die("copying the parameters to the GPU");

    double loss[2];
    for (int s = CPU; s <= GPU; s++) {
        int64_t count = 0;
        if (dl_gpt_zero_grads(m[s]) != DL_OK || dl_gpt_forward(m[s], &batch.in, &loss[s], &count) != DL_OK ||
            dl_gpt_backward(m[s], NULL) != DL_OK || dl_synchronize(&be[s]) != DL_OK)
            die(s == CPU ? "the CPU step" : "the GPU step");
    }
    elem_errors le = {fabs(loss[GPU] - loss[CPU]) / fabs(loss[CPU]), fabs(loss[GPU] - loss[CPU]),
                      fabs(loss[GPU] - loss[CPU]) / fabs(loss[CPU]), 0};
    report(variant, "loss (sum over targets)", &le, loss_tol, 1);

    float *g_cpu = download(&be[CPU], dl_gpt_grad_data(m[CPU]), n);
    float *g_gpu = download(&be[GPU], dl_gpt_grad_data(m[GPU]), n);
    const dl_tensor_table *params = dl_gpt_params(m[CPU]);
    for (size_t i = 0; i < params->count; i++) {
        const dl_tensor *t = &params->tensors[i];
        elem_errors e = compare(g_cpu + t->offset, g_gpu + t->offset, t->numel);
        char what[DL_TENSOR_NAME_MAX + 8];
        snprintf(what, sizeof what, "grad %s", t->name);
        report(variant, what, &e, grad_tol, 1);
    }
    free(p_cpu);
    free(p_gpu);
    free(g_cpu);
    free(g_gpu);
    for (int s = CPU; s <= GPU; s++)
        dl_gpt_destroy(m[s]);
    free(batch.tokens);
    free(batch.targets);
    free(batch.positions);
}

int main(int argc, char **argv) {
    const char *json_path = NULL;
    int dry_run = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0) {
            dry_run = 1;
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json_path = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: %s [--json FILE] [--dry-run]\n  --json F   also write every comparison to F (JSON array)\n"
                   "  --dry-run  a second CPU backend stands in for the GPU (exercises this program only)\n",
                   argv[0]);
            return 0;
        } else {
            fprintf(stderr, "gpu_gpt: unknown argument '%s' (try --help)\n", argv[i]);
            return 2;
        }
    }
    const char *tf32 = getenv("DEALER_CUDA_TF32");
    if (tf32 && strcmp(tf32, "1") == 0) {
        fprintf(stderr, "gpu_gpt: DEALER_CUDA_TF32=1 changes the matmuls' precision to ~1e-3, which these fp32 "
                        "tolerances do not cover; unset it for this check\n");
        return 2;
    }
    int gpus = 0;
    if (dl_cuda_device_count(&gpus) != DL_OK) {
        fprintf(stderr, "gpu_gpt: %s\n", dl_error_message());
        return 1;
    }
    if (gpus <= 0 && !dry_run) {
        fprintf(stderr, "gpu_gpt: no CUDA GPU answers on this machine: this check needs one (scripts/gpu-check)\n");
        return 77;
    }
    dl_backend be[2];
    if (dl_backend_open(&be[CPU], "cpu", 0) != DL_OK)
        die("opening the CPU backend");
    if (dl_backend_open(&be[GPU], dry_run ? "cpu" : "cuda", 0) != DL_OK)
        die("opening the GPU backend");
    if (json_path) {
        g_json = fopen(json_path, "w");
        if (!g_json) {
            fprintf(stderr, "gpu_gpt: cannot write %s: %s\n", json_path, strerror(errno));
            return 2;
        }
        fputc('[', g_json);
    }
    printf("# dealer gpu_gpt: a GPT micro-batch on %s against the CPU\n\n", dry_run ? "a CPU stand-in" : "CUDA");
    if (dry_run)
        printf("DRY RUN: the 'gpu' side is a second CPU backend; these rows test the checker, not CUDA.\n\n");
    printf("| variant | compared | norm rel err | max abs err | max rel err at [worst] | | result |\n");
    printf("|---|---|---:|---:|---|---|---|\n");
    for (int rope = 0; rope <= 1; rope++)
        for (int ck = 0; ck <= 1; ck++)
            run_variant(be, rope, ck, 0);
    run_variant(be, 0, 0, 1); /* bf16 mixed precision: CUDA's bf16 step against the CPU's */
    run_variant(be, 1, 1, 1);
    printf("\n%d comparisons, %d failed (norm-relative: gradients within %.0e, loss within %.0e; bf16 variants "
           "%.0e and %.0e)\n",
           g_rows, g_failed, GRAD_TOL, LOSS_TOL, BF16_GRAD_TOL, BF16_LOSS_TOL);
    dl_backend_close(&be[GPU]);
    dl_backend_close(&be[CPU]);
    if (g_json) {
        fputs("\n]\n", g_json);
        if (fclose(g_json) != 0) {
            fprintf(stderr, "gpu_gpt: writing %s failed: %s\n", json_path, strerror(errno));
            return 1;
        }
    }
    return g_failed ? 1 : 0;
}
