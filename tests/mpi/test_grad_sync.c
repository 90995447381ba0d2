/* test_grad_sync.c — the bucketed gradient exchange (comm/exchange.h) and the gradient synchroniser
 * (train/grad_sync.h) under mpirun -np 2 and -np 3.
 *
 *   - exchange: all-reduce and ZeRO reduce-scatter of random floats against a serial sum in rank order, exactly (the
 *     exchange promises that order), for odd sizes and several bucket layouts, started all at once or one by one
 *     with progress calls in between;
 *   - the bucket plan of a small GPT follows its layers (the tied embedding leaves last);
 *   - overlapped small buckets, one big bucket, and ZeRO-1 give bit-identical gradients and parameters after a real
 *     backward with the layer hook;
 *   - a step abandoned after some buckets left completes, and the next step is right. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/exchange.h"
#include "comm/world.h"
#include "train/run_config.h"
#include "models/gpt.h"
#include "train/grad_sync.h"
#include "models/model.h"

static dl_world world;
static uint64_t seed;

/* Rank r's value at element i: random in [-1, 1), so the order of additions shows in the last bits. */
static float contribution(int rank, size_t i) {
    return 2.0f * dl_philox_uniform(dl_philox_word(seed, 1000 + (uint64_t)rank, i)) - 1.0f;
}

static float rank_order_sum(size_t i) {
    float s = contribution(0, i);
    for (int r = 1; r < world.size; r++)
        s += contribution(r, i);
    return s;
}

static void fill_mine(float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = contribution(world.rank, i);
}

/* Bucket bounds for `count` elements: `kind` 0 = one bucket, 1 = buckets of 1000, 2 = uneven (random) cuts. */
static int make_bounds(size_t count, int kind, size_t *bounds, int cap) {
    int nb = 0;
    bounds[nb] = 0;
    if (kind == 0 || count == 0) {
        bounds[1] = count;
        return 1;
    }
    size_t pos = 0;
    uint64_t k = 0;
    while (pos < count && nb < cap - 1) {
        size_t step = kind == 1 ? 1000 : 1 + dl_philox_word(seed, 77, k++) % 5000;
        pos = pos + step < count ? pos + step : count;
        bounds[++nb] = pos;
    }
    bounds[nb] = count;
    return nb;
}

static void exchange_allreduce_sums_in_rank_order(void **state) {
    (void)state;
    const size_t sizes[] = {1, 7, 1023, 100003};
    size_t bounds[256];
    for (int t = 0; t < 4; t++)
        for (int kind = 0; kind < 3; kind++)
            for (int one_by_one = 0; one_by_one < 2; one_by_one++) {
                size_t n = sizes[t];
                float *x = malloc(n * sizeof *x);
                fill_mine(x, n);
                int nb = make_bounds(n, kind, bounds, 256);
                dl_exchange_layout layout = {n, nb, bounds, NULL, 1};
                dl_exchange *ex = NULL;
                assert_int_equal(dl_exchange_create(&ex, &world, x, &layout), DL_OK);
                if (one_by_one)
                    for (int b = 0; b < nb; b++) {
                        assert_int_equal(dl_exchange_start(ex, b), DL_OK);
                        assert_int_equal(dl_exchange_progress(ex, NULL), DL_OK);
                    }
                assert_int_equal(dl_exchange_finish(ex, "test exchange"), DL_OK);
                for (size_t i = 0; i < n; i++)
                    if (x[i] != rank_order_sum(i))
                        DL_TEST_FAIL("n=%zu layout %d (%d buckets) element %zu: got %.9g want %.9g", n, kind, nb, i,
                                     (double)x[i], (double)rank_order_sum(i));
                /* A second round on the same exchange works the same way. */
                fill_mine(x, n);
                assert_int_equal(dl_exchange_finish(ex, "test exchange again"), DL_OK);
                assert_true(x[n - 1] == rank_order_sum(n - 1));
                dl_exchange_destroy(ex);
                free(x);
            }
}

static void exchange_reduce_scatter_fills_each_slice(void **state) {
    (void)state;
    size_t n = 54321, bounds[256], slices[17];
    int W = world.size;
    for (int r = 0; r <= W; r++) /* uneven slices, one of them possibly inside a single bucket */
        slices[r] = r == W ? n : (size_t)r * n / (size_t)(W + 1);
    for (int kind = 0; kind < 3; kind++) {
        float *x = malloc(n * sizeof *x);
        fill_mine(x, n);
        int nb = make_bounds(n, kind, bounds, 256);
        dl_exchange_layout layout = {n, nb, bounds, slices, 0};
        dl_exchange *ex = NULL;
        assert_int_equal(dl_exchange_create(&ex, &world, x, &layout), DL_OK);
        assert_int_equal(dl_exchange_finish(ex, "test reduce-scatter"), DL_OK);
        for (size_t i = slices[world.rank]; i < slices[world.rank + 1]; i++)
            if (x[i] != rank_order_sum(i))
                DL_TEST_FAIL("slice element %zu: got %.9g want %.9g", i, (double)x[i], (double)rank_order_sum(i));
        size_t covered = 0;
        for (int b = 0; b < nb; b++) {
            size_t lo, hi;
            dl_exchange_owned(ex, b, &lo, &hi);
            assert_true(lo <= hi);
            if (hi > lo)
                assert_true(lo >= slices[world.rank] && hi <= slices[world.rank + 1]);
            covered += hi - lo;
        }
        assert_int_equal(covered, slices[world.rank + 1] - slices[world.rank]);
        dl_exchange_destroy(ex);
        free(x);
    }
}

static void exchange_rejects_bad_use(void **state) {
    (void)state;
    float x[100];
    fill_mine(x, 100);
    size_t bounds[3] = {0, 50, 100}, bad[3] = {0, 60, 50};
    dl_exchange *ex = NULL;
    dl_exchange_layout broken = {100, 2, bad, NULL, 1};
    assert_int_equal(dl_exchange_create(&ex, &world, x, &broken), DL_ERR_INVALID);
    assert_null(ex);
    dl_exchange_layout layout = {100, 2, bounds, NULL, 1};
    assert_int_equal(dl_exchange_create(&ex, &world, x, &layout), DL_OK);
    assert_int_equal(dl_exchange_start(ex, 1), DL_ERR_INVALID); /* out of order */
    if (!strstr(dl_error_message(), "out of order"))
        DL_TEST_FAIL("message: %s", dl_error_message());
    assert_int_equal(dl_exchange_finish(ex, "after a refused start"), DL_OK);
    assert_true(x[99] == rank_order_sum(99));
    dl_exchange_destroy(ex);
}

static void sum_in_order_aliases_and_orders(void **state) {
    (void)state;
    enum { N = 1500 };
    static float a[N], b[N], c[N], d[N];
    for (size_t i = 0; i < N; i++) {
        a[i] = contribution(0, i);
        b[i] = contribution(1, i) * 1e-3f;
        c[i] = contribution(2, i) * 1e3f;
        d[i] = contribution(3, i);
    }
    const float *src[4] = {a, b, c, d};
    static float want[N];
    for (size_t i = 0; i < N; i++)
        want[i] = ((a[i] + b[i]) + c[i]) + d[i];
    dl_sum_in_order(c, src, 4, N); /* out aliases a source in the middle of the order */
    for (size_t i = 0; i < N; i++)
        if (c[i] != want[i])
            DL_TEST_FAIL("element %zu: got %.9g want %.9g", i, (double)c[i], (double)want[i]);
}

/* ---- grad_sync on a small GPT ---------------------------------------------------------------------------------- */

typedef struct tiny {
    dl_config cfg;
    dl_backend be;
    dl_model *model;
    dl_grad_sync *sync;
} tiny;

enum { T_TOKENS = 24, T_VOCAB = 40 };

/* rows: the micro-batch rows the model is made for (max tokens = rows × T_TOKENS; the batches use one). */
static void tiny_open_rows(tiny *t, const char *bucket_mb, int zero, int rows) {
    char bucket[64], zero_kv[32];
    snprintf(bucket, sizeof bucket, "comm.bucket_mb=%s", bucket_mb);
    snprintf(zero_kv, sizeof zero_kv, "comm.zero=%d", zero);
    char *overrides[] = {"model.n_layer=3",       "model.n_head=2",   "model.n_embd=16", "model.vocab_size=40",
                         "model.max_seq_len=32", "data.seq_len=24", bucket,            zero_kv};
    memset(t, 0, sizeof *t);
    assert_int_equal(dl_config_load(&t->cfg, NULL, 8, overrides), DL_OK);
    assert_int_equal(dl_backend_open(&t->be, "cpu", 0), DL_OK);
    assert_int_equal(dl_config_create_model(&t->model, &t->cfg, &t->be, rows, T_TOKENS), DL_OK);
    assert_int_equal(t->model->init_params(t->model, 5), DL_OK);
    dl_optimizer_settings os = {.kind = DL_OPT_ADAMW, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
    assert_int_equal(dl_grad_sync_create(&t->sync, &world, &t->be, t->model, &t->cfg, &os), DL_OK);
}

static void tiny_open(tiny *t, const char *bucket_mb, int zero) { tiny_open_rows(t, bucket_mb, zero, 1); }

static void tiny_close(tiny *t) {
    dl_grad_sync_destroy(t->sync);
    dl_model_destroy(t->model);
    dl_backend_close(&t->be);
    dl_config_free(&t->cfg);
}

enum { HOOKS_NONE, HOOKS_ALL, HOOKS_LAYERS_ONLY };

/* One forward + backward on this rank's own two documents; `hooks` says which of the sync's hooks it passes. */
static void tiny_backward(tiny *t, int hooks, uint64_t salt) {
    int32_t tokens[T_TOKENS], targets[T_TOKENS], positions[T_TOKENS], cu[3] = {0, 10, T_TOKENS};
    for (int i = 0; i < T_TOKENS; i++) {
        tokens[i] = (int32_t)(dl_philox_word(seed, 500 + (uint64_t)world.rank * 16 + salt, (uint64_t)i) % T_VOCAB);
        positions[i] = i < 10 ? i : i - 10;
    }
    for (int i = 0; i < T_TOKENS; i++)
        targets[i] = (i == 9 || i == T_TOKENS - 1) ? -1 : tokens[i + 1];
    dl_gpt_inputs in = {tokens, targets, positions, cu, 2, T_TOKENS};
    double loss;
    int64_t n_targets;
    size_t numel = dl_tensor_table_numel(t->model->params);
    assert_int_equal(dl_mem_zero(&t->be, t->model->grad_data, numel * sizeof(float)), DL_OK);
    assert_int_equal(dl_grad_sync_begin(t->sync, 1), DL_OK);
    assert_int_equal(dl_gpt_forward(t->model->impl, &in, &loss, &n_targets), DL_OK);
    dl_backward_hooks layers_only = {dl_grad_sync_layer_done, dl_grad_sync_part_done, NULL, t->sync};
    const dl_backward_hooks *h = hooks == HOOKS_ALL           ? dl_grad_sync_hooks(t->sync)
                                 : hooks == HOOKS_LAYERS_ONLY ? &layers_only
                                                              : NULL;
    if (dl_gpt_backward(t->model->impl, h) != DL_OK)
        DL_TEST_FAIL("backward: %s", dl_error_message());
}

static void bucket_plan_follows_layers(void **state) {
    (void)state;
    tiny t;
    tiny_open(&t, "0.002", 0); /* ~524 floats per bucket */
    const size_t *bounds;
    const int *ready;
    int nb = dl_grad_sync_buckets(t.sync, &bounds, &ready);
    size_t numel = dl_tensor_table_numel(t.model->params);
    assert_true(nb > 5);
    assert_int_equal(bounds[0], 0);
    assert_int_equal(bounds[nb], numel);
    const dl_gpt *gpt = t.model->impl;
    int L = dl_gpt_get_config(gpt)->n_layer;
    assert_int_equal(ready[0], 2 * L); /* the head's stage: it comes first in the buffer and in backward */
    int part_buckets = 0;
    for (int b = 0; b < nb; b++) {
        assert_true(bounds[b + 1] > bounds[b]);
        assert_true(bounds[b + 1] - bounds[b] <= 2 * 525);
        if (b > 0)
            assert_true(ready[b] <= ready[b - 1]);
        /* ready = the earliest stage at which every element is final: 2·layer for a layer's range, 2·layer + 1 for
         * a block's first part (its MLP half), -2 for the position table */
        int lowest = 2 * L + 2;
        for (int layer = -1; layer <= L; layer++) {
            dl_byte_range r = dl_gpt_layer_param_range(gpt, layer);
            dl_byte_range part = dl_gpt_layer_part_range(gpt, layer);
            size_t lo = r.begin / 4, hi = r.end / 4, mid = part.end > part.begin ? part.end / 4 : lo;
            int stage = layer < 0 ? -2 : 2 * layer;
            if (lo < bounds[b + 1] && mid > bounds[b] && 2 * layer + 1 < lowest && layer >= 0)
                lowest = 2 * layer + 1;
            if (mid < bounds[b + 1] && hi > bounds[b] && stage < lowest)
                lowest = stage;
        }
        assert_int_equal(ready[b], lowest);
        part_buckets += ready[b] % 2 != 0;
    }
    assert_true(part_buckets > 0); /* some buckets hold only MLP halves and leave half a block early */
    /* The tied token embedding is first in the buffer and its buckets leave right after the head; only the
     * position table (layer -1's range) waits for the embedding backward. */
    const dl_tensor *wte = dl_tensor_table_find(t.model->params, "wte");
    assert_non_null(wte);
    assert_int_equal(wte->offset, 0);
    dl_byte_range emb = dl_gpt_layer_param_range(gpt, -1);
    assert_true(emb.end > emb.begin);
    for (int b = 0; b < nb; b++) {
        if (bounds[b + 1] <= wte->numel)
            assert_int_equal(ready[b], 2 * L);
        if (bounds[b + 1] > emb.begin / 4)
            assert_int_equal(ready[b], -2);
    }
    tiny_close(&t);
}

static void overlap_buckets_and_zero_agree_bitwise(void **state) {
    (void)state;
    tiny small, big, zero;
    tiny_open(&small, "0.002", 0);
    tiny_open(&big, "1000", 0);
    tiny_open(&zero, "0.003", 1);
    size_t numel = dl_tensor_table_numel(small.model->params);
    double sq_small, sq_big, sq_zero;
    tiny_backward(&small, 1, 0);
    assert_int_equal(dl_grad_sync_reduce(small.sync, &sq_small), DL_OK);
    dl_grad_sync_stats stats;
    dl_grad_sync_stats_get(small.sync, &stats);
    assert_true(stats.buckets > 5);
    assert_true(stats.buckets_overlapped > 0 && stats.buckets_overlapped <= stats.buckets);
    assert_true(stats.comm_seconds >= stats.exposed_seconds && stats.exposed_seconds >= 0);
    tiny_backward(&big, 1, 0);
    assert_int_equal(dl_grad_sync_reduce(big.sync, &sq_big), DL_OK);
    dl_grad_sync_stats_get(big.sync, &stats);
    assert_int_equal(stats.buckets, 1);
    assert_true(stats.buckets_overlapped <= 1); /* one bucket holding the position table: it leaves at layer -1 */
    tiny_backward(&zero, 1, 0);
    assert_int_equal(dl_grad_sync_reduce(zero.sync, &sq_zero), DL_OK);
    /* Bits hold: exchange.c adds the W copies of every element in rank order itself (never MPI's reduction, whose
     * algorithm depends on the message size), so bucket size and ZeRO change no addition. */
    if (memcmp(small.model->grad_data, big.model->grad_data, numel * sizeof(float)) != 0)
        DL_TEST_FAIL("gradients with small overlapped buckets differ from one bucket");
    /* Bits hold: the same dl_op_sumsq over bit-identical gradient buffers. */
    assert_true(sq_small == sq_big);
    assert_true(sq_zero > 0 && fabs(sq_zero - sq_small) <= 1e-12 * sq_small);
    /* ZeRO-1: this rank's slice holds the same sums. */
    dl_optimizer *opt = dl_grad_sync_optimizer(zero.sync);
    assert_true(opt->end - opt->begin < numel);
    if (memcmp(zero.model->grad_data + opt->begin, small.model->grad_data + opt->begin,
               (opt->end - opt->begin) * sizeof(float)) != 0)
        DL_TEST_FAIL("ZeRO-1 slice sums differ from the all-reduce");
    /* The update: every rank ends with the same parameters, bit for bit, with or without ZeRO-1. */
    double scale = 1.0 / 40.0;
    assert_int_equal(dl_grad_sync_update(small.sync, 1e-2, scale), DL_OK);
    assert_int_equal(dl_grad_sync_update(zero.sync, 1e-2, scale), DL_OK);
    if (memcmp(small.model->param_data, zero.model->param_data, numel * sizeof(float)) != 0)
        DL_TEST_FAIL("parameters after a ZeRO-1 update differ from the replicated update");
    /* and all ranks agree: compare a checksum with rank 0's */
    double sum = 0;
    for (size_t i = 0; i < numel; i++)
        sum += (double)zero.model->param_data[i] * (double)(i % 13 + 1);
    double mine = sum;
    assert_int_equal(dl_comm_broadcast(&world, &sum, sizeof sum, 0, "checksum"), DL_OK);
    assert_true(sum == mine);
    tiny_close(&small);
    tiny_close(&big);
    tiny_close(&zero);
}

static void abandoned_step_leaves_nothing_in_flight(void **state) {
    (void)state;
    tiny a, ref;
    tiny_open(&a, "0.002", 0);
    tiny_open(&ref, "1000", 0);
    /* Rank 0 gets half-way through its backward (the buckets of layers 2 and up leave); the others "fail" before
     * theirs. */
    if (world.rank == 0) {
        assert_int_equal(dl_grad_sync_begin(a.sync, 1), DL_OK);
        assert_int_equal(dl_grad_sync_layer_done(a.sync, 3), DL_OK);
        assert_int_equal(dl_grad_sync_layer_done(a.sync, 2), DL_OK);
    }
    assert_int_equal(dl_grad_sync_abandon(a.sync), DL_OK);
    /* The next step is a normal one and gives the right sums. */
    size_t numel = dl_tensor_table_numel(a.model->params);
    double sq_a, sq_ref;
    tiny_backward(&a, 1, 4);
    assert_int_equal(dl_grad_sync_reduce(a.sync, &sq_a), DL_OK);
    tiny_backward(&ref, 1, 4);
    assert_int_equal(dl_grad_sync_reduce(ref.sync, &sq_ref), DL_OK);
    /* Bits hold: rank-order sums whatever the buckets (see overlap_buckets_and_zero_agree_bitwise). */
    if (memcmp(a.model->grad_data, ref.model->grad_data, numel * sizeof(float)) != 0)
        DL_TEST_FAIL("the step after an abandoned one has wrong gradients");
    tiny_close(&a);
    tiny_close(&ref);
}

/* The tied embedding's rows exchanged apart (the table's bucket leaves after the head) give the gradient of the
 * plain all-reduce, where each rank adds its rows itself before one bucket leaves at the end: equal up to the
 * order of float additions in the table, bit for bit everywhere else. */
static void tied_rows_match_the_plain_sum(void **state) {
    (void)state;
    tiny split, plain;
    tiny_open(&split, "0.002", 0);
    tiny_open(&plain, "1000", 0);
    size_t numel = dl_tensor_table_numel(split.model->params);
    double sq_split, sq_plain;
    tiny_backward(&split, HOOKS_ALL, 7);
    assert_int_equal(dl_grad_sync_reduce(split.sync, &sq_split), DL_OK);
    tiny_backward(&plain, HOOKS_NONE, 7);
    assert_int_equal(dl_grad_sync_reduce(plain.sync, &sq_plain), DL_OK);
    const dl_tensor *wte = dl_tensor_table_find(split.model->params, "wte");
    double diff = 0, ref = 0;
    for (size_t i = 0; i < wte->numel; i++) {
        double d = (double)split.model->grad_data[i] - plain.model->grad_data[i];
        diff += d * d;
        ref += (double)plain.model->grad_data[i] * plain.model->grad_data[i];
    }
    if (!(ref > 0 && sqrt(diff / ref) <= 1e-6))
        DL_TEST_FAIL("tied embedding gradient: relative difference %.3g", ref > 0 ? sqrt(diff / ref) : -1.0);
    /* Outside wte, bits hold: the same backward and rank-order sums; only the table's additions are regrouped (the
     * 1e-6 above: each element of wte's gradient is a sum of a few dozen rows, regrouped, ~u·sqrt(terms)). */
    if (memcmp(split.model->grad_data + wte->numel, plain.model->grad_data + wte->numel,
               (numel - wte->numel) * sizeof(float)) != 0)
        DL_TEST_FAIL("gradients outside the tied embedding differ");
    assert_true(fabs(sq_split - sq_plain) <= 1e-6 * sq_plain);
    tiny_close(&split);
    tiny_close(&plain);
}

/* When a step's rows could outweigh the table (W × max tokens > 2 × vocabulary: here 4 rows of 24 tokens against
 * 40 ids), the table is not split: it leaves at the end as one tensor, and the gradients are the plain
 * all-reduce's bit for bit. */
static void table_not_split_when_rows_would_cost_more(void **state) {
    (void)state;
    tiny whole, plain;
    tiny_open_rows(&whole, "0.002", 0, 4);
    tiny_open_rows(&plain, "1000", 0, 4);
    const size_t *bounds;
    const int *ready;
    int nb = dl_grad_sync_buckets(whole.sync, &bounds, &ready);
    const dl_tensor *wte = dl_tensor_table_find(whole.model->params, "wte");
    for (int b = 0; b < nb; b++)
        if (bounds[b] < wte->numel)
            assert_int_equal(ready[b], -2);
    size_t numel = dl_tensor_table_numel(whole.model->params);
    double sq_whole, sq_plain;
    tiny_backward(&whole, HOOKS_ALL, 11);
    assert_int_equal(dl_grad_sync_reduce(whole.sync, &sq_whole), DL_OK);
    tiny_backward(&plain, HOOKS_NONE, 11);
    assert_int_equal(dl_grad_sync_reduce(plain.sync, &sq_plain), DL_OK);
    /* Bits hold: with the table kept whole both runs do the same additions in the same order. */
    if (memcmp(whole.model->grad_data, plain.model->grad_data, numel * sizeof(float)) != 0)
        DL_TEST_FAIL("gradients with the table kept whole differ from the plain all-reduce");
    tiny_close(&whole);
    tiny_close(&plain);
}

/* A backward that reports its layers but adds the embedding rows itself (after the table's bucket left) is an
 * error on every rank, named on the rank that did it, not a silently wrong gradient. */
static void rows_added_after_the_bucket_left_fail_everywhere(void **state) {
    (void)state;
    tiny t;
    tiny_open(&t, "0.002", 0);
    double sq;
    tiny_backward(&t, world.rank == 0 ? HOOKS_LAYERS_ONLY : HOOKS_ALL, 9);
    dl_status s = dl_grad_sync_reduce(t.sync, &sq);
    assert_int_not_equal(s, DL_OK);
    if (world.rank == 0)
        assert_non_null(strstr(dl_error_message(), "token embedding's rows"));
    else
        assert_non_null(strstr(dl_error_message(), "rank 0 could not hand over"));
    /* The next step works. */
    tiny_backward(&t, HOOKS_ALL, 10);
    assert_int_equal(dl_grad_sync_reduce(t.sync, &sq), DL_OK);
    tiny_close(&t);
}

int main(int argc, char **argv) {
    if (dl_world_init(&world, &argc, &argv, 120.0) != DL_OK) {
        fprintf(stderr, "%s\n", dl_error_message());
        return 1;
    }
    /* One seed for all ranks (rank 0's), so failures replay with DEALER_TEST_SEED. */
    seed = world.rank == 0 ? dl_test_seed() : 0;
    if (dl_comm_broadcast(&world, &seed, sizeof seed, 0, "test seed") != DL_OK)
        return 1;
    char text[32];
    snprintf(text, sizeof text, "%llu", (unsigned long long)seed);
    setenv("DEALER_TEST_SEED", text, 1);
    dl_test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exchange_allreduce_sums_in_rank_order),
        cmocka_unit_test(exchange_reduce_scatter_fills_each_slice),
        cmocka_unit_test(exchange_rejects_bad_use),
        cmocka_unit_test(sum_in_order_aliases_and_orders),
        cmocka_unit_test(bucket_plan_follows_layers),
        cmocka_unit_test(overlap_buckets_and_zero_agree_bitwise),
        cmocka_unit_test(abandoned_step_leaves_nothing_in_flight),
        cmocka_unit_test(tied_rows_match_the_plain_sum),
        cmocka_unit_test(table_not_split_when_rows_would_cost_more),
        cmocka_unit_test(rows_added_after_the_bucket_left_fail_everywhere),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dl_world_finalize(&world);
    return failed;
}
