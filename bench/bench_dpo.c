/* bench_dpo.c — what a DPO micro-batch costs with a frozen reference model and with precomputed reference
 * log-probs, against a plain GPT step on the same tokens, measured interleaved in one run (the machine is shared,
 * so only ratios within a run mean something).
 *
 *     bench_dpo [--layers 4] [--embd 128] [--heads 4] [--seq-len 256] [--rows 8] [--reps 20] [--threads 1]
 *
 * The batch: random byte tokens packed as pairs shaped like the Shakespeare demo's (prompt 50, answers 57 tokens).
 * Reported: median milliseconds per micro-batch (forward + backward) of each path, the ratios, and the memory each
 * path holds (parameters, gradients, activations). Output is markdown. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/philox.h"
#include "core/timer.h"
#include "data/loader.h"
#include "models/dpo/dpo.h"

void openblas_set_num_threads(int);

enum { PROMPT = 50, ANSWER = 57, RECORDS = 64 };

static dl_status read_pair(void *ctx, uint64_t record, dl_pref_pair *pair) {
    (void)ctx;
    dl_rng rng;
    dl_rng_init(&rng, 42, ((uint64_t)DL_STREAM_DATA << 32) | record);
    dl_i32_array *sides[3] = {&pair->prompt, &pair->chosen, &pair->rejected};
    size_t lens[3] = {PROMPT, ANSWER, ANSWER};
    for (int k = 0; k < 3; k++) {
        DL_CHECK(dl_i32_array_reserve(sides[k], lens[k]));
        for (size_t i = 0; i < lens[k]; i++)
            sides[k]->data[i] = (int32_t)dl_rng_below(&rng, 256);
        sides[k]->len = lens[k];
    }
    return DL_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int fail(const char *what) {
    fprintf(stderr, "bench_dpo: %s: %s\n", what, dl_error_message());
    return 1;
}

int main(int argc, char **argv) {
    int layers = 4, embd = 128, heads = 4, seq_len = 256, rows = 8, reps = 20, threads = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (strcmp(argv[i], "--layers") == 0)
            layers = v;
        else if (strcmp(argv[i], "--embd") == 0)
            embd = v;
        else if (strcmp(argv[i], "--heads") == 0)
            heads = v;
        else if (strcmp(argv[i], "--seq-len") == 0)
            seq_len = v;
        else if (strcmp(argv[i], "--rows") == 0)
            rows = v;
        else if (strcmp(argv[i], "--reps") == 0)
            reps = v;
        else if (strcmp(argv[i], "--threads") == 0)
            threads = v;
        else {
            fprintf(stderr, "bench_dpo: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (reps < 1 || reps > 10000 || rows < 2 || seq_len < PROMPT + ANSWER) {
        fprintf(stderr, "bench_dpo: bad sizes\n");
        return 2;
    }
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    dl_backend be;
    if (dl_backend_open(&be, "cpu", 0) != DL_OK)
        return fail("backend");
    dl_gpt_config gc = {.vocab_size = 256, .n_layer = layers, .n_head = heads, .n_embd = embd,
                        .max_seq_len = seq_len, .rope = 0, .rope_theta = 10000.0f, .checkpoint_every = 0};
    dl_dpo_settings st = {DL_DPO_SIGMOID, 0.5f, 0.0f};
    int max_tokens = rows * seq_len;
    dl_dpo *frozen = NULL, *pre = NULL;
    if (dl_dpo_create(&frozen, &gc, &st, &be, max_tokens, 1) != DL_OK ||
        dl_dpo_create(&pre, &gc, &st, &be, max_tokens, 0) != DL_OK)
        return fail("create");
    dl_gpt *plain = dl_dpo_policy(pre); /* the plain GPT step runs on the precomputed model's policy */
    if (dl_gpt_init_params(dl_dpo_policy(frozen), 1) != DL_OK ||
        dl_gpt_init_params(dl_dpo_reference_model(frozen), 1) != DL_OK || dl_gpt_init_params(plain, 1) != DL_OK)
        return fail("init");

    dl_doc_source src = {.ctx = NULL, .num_records = RECORDS, .name = "synthetic pairs", .read_pair = read_pair};
    dl_loader_config lc;
    dl_loader_config_default(&lc);
    lc.kind = DL_DATA_PAIRS;
    lc.batch_rows = rows;
    lc.seq_len = seq_len;
    lc.shuffle = 0;
    lc.epochs = 1;
    lc.prefetch = 0;
    dl_dpo_table table;
    if (dl_dpo_table_alloc(&table, RECORDS) != DL_OK ||
        dl_dpo_sequence_table(pre, &src, &lc, &table, NULL, "bench", NULL, NULL) != DL_OK ||
        dl_dpo_set_tables(pre, &table, NULL) != DL_OK)
        return fail("reference table");
    dl_loader *l = NULL;
    const dl_batch *batch;
    if (dl_loader_open(&l, &src, &lc, NULL, 0) != DL_OK || dl_loader_next(l, &batch) != DL_OK)
        return fail("loader");
    const dl_token_batch *b = &batch->tokens;

    double *t_frozen = malloc((size_t)reps * sizeof(double)), *t_pre = malloc((size_t)reps * sizeof(double));
    double *t_plain = malloc((size_t)reps * sizeof(double));
    dl_gpt_inputs in = {b->tokens, b->targets, b->positions, b->cu_seqlens, b->num_seqs, b->num_tokens};
    /* Round r runs the three paths in a rotated order, so no path always follows the same one. */
    for (int r = -2; r < reps; r++) { /* two warm-up rounds */
        double ms[3];
        for (int k = 0; k < 3; k++) {
            int which = (k + (r + 3)) % 3;
            dl_step_stats stats = {0};
            double t0 = dl_time_seconds(), loss;
            int64_t count;
            dl_status s = which == 0   ? dl_dpo_batch(frozen, b, 1, NULL, &stats)
                          : which == 1 ? dl_dpo_batch(pre, b, 1, NULL, &stats)
                                       : dl_gpt_forward(plain, &in, &loss, &count);
            if (s == DL_OK && which == 2)
                s = dl_gpt_backward(plain, NULL);
            if (s != DL_OK)
                return fail(which == 0 ? "frozen-model batch" : which == 1 ? "precomputed batch" : "gpt step");
            ms[which] = (dl_time_seconds() - t0) * 1e3;
        }
        if (r >= 0) {
            t_frozen[r] = ms[0];
            t_pre[r] = ms[1];
            t_plain[r] = ms[2];
        }
    }
    double mf = median(t_frozen, reps), mp = median(t_pre, reps), mg = median(t_plain, reps);
    size_t params = dl_gpt_num_params(plain) * sizeof(float);
    dl_gpt_config ref = gc;
    ref.checkpoint_every = 1;
    size_t act = dl_gpt_activation_bytes(&gc, max_tokens, max_tokens);
    size_t ref_act = dl_gpt_activation_bytes(&ref, max_tokens, max_tokens);
    size_t mem_pre = 2 * params + act + 2 * (size_t)RECORDS * sizeof(float), mem_frozen = 3 * params + act + ref_act;
    printf("## bench_dpo: %d layers, %d wide, %d heads, vocab 256; %d rows x %d tokens; %d threads\n\n", layers, embd,
           heads, rows, seq_len, threads);
    printf("Batch: %d pairs (prompt %d, answers %d tokens), %d tokens; medians of %d rounds, the paths interleaved in rotating order.\n\n",
           b->num_pairs, PROMPT, ANSWER, b->num_tokens, reps);
    printf("| path | ms per micro-batch | vs plain GPT step | memory (params + grads + activations) |\n");
    printf("|---|---|---|---|\n");
    printf("| plain GPT forward + backward | %.1f | 1.00 | %.1f MiB |\n", mg, (2 * params + act) / 1048576.0);
    printf("| DPO, precomputed reference | %.1f | %.2f | %.1f MiB |\n", mp, mp / mg, mem_pre / 1048576.0);
    printf("| DPO, frozen reference model | %.1f | %.2f | %.1f MiB |\n", mf, mf / mg, mem_frozen / 1048576.0);
    printf("\nfrozen / precomputed: %.2f (a reference forward is 1/3 of a forward + backward: 1.33 expected)\n",
           mf / mp);
    dl_loader_close(l);
    free(t_frozen);
    free(t_pre);
    free(t_plain);
    dl_dpo_destroy(frozen);
    dl_dpo_destroy(pre);
    dl_backend_close(&be);
    return 0;
}
