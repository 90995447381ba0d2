/* test_equivalence.c — data parallelism changes nothing but speed: 20 steps of a tiny GPT on W ranks with b rows per
 * rank end with the parameters of 20 steps on one rank with W·b rows, to a relative 1e-5 (the sums are only
 * reassociated), with and without ZeRO-1 and gradient accumulation; small overlapped buckets and one bucket end
 * bit-identical.
 *
 * How: rank 0 writes a record file to a temp directory; every configuration runs through dl_train (the real
 * trainer, loader, checkpoint) on all W ranks; the reference runs dl_train on a one-rank world split off rank 0
 * while the others sleep; rank 0 then loads the final checkpoints and compares parameters.
 *
 * Why the data is the same: the loader gives rank r of W the positions r, r+W, r+2W, … of each epoch's
 * permutation, which depends only on (seed, epoch, record count). With data.packing off every document gets a row
 * of its own, and every document here fits in one row (2..16 tokens, seq_len 16), so step s on rank r holds
 * positions W(s·b + j) + r, j < b: over the ranks exactly the positions s·W·b … (s+1)·W·b − 1 that the one-rank run
 * with W·b rows takes at step s. (Packing would not do: its best-fit choices depend on which documents share a
 * window, i.e. on the rank's shard.) The loss is normalised by the global target count in both runs. The first test
 * checks this claim on the loader itself.
 *
 * Why optim.eps is 1e-5 here: with AdamW's default 1e-8, a coordinate whose gradient nearly cancels (|g| around the
 * rounding of its sum) gets an update of about ±lr whichever way the rounding fell, so reassociating the sum could
 * move a few coordinates by a whole step: seen with OpenBLAS's Haswell kernel, DEALER_TEST_SEED=1796670966718853,
 * 1.46e-5 on 2 ranks where other seeds give 1-2e-6. With eps 1e-5 the update is smooth in g near zero and the same
 * seed gives 5e-8 (others 4e-8 to 1e-7), so 1e-5 again measures reassociation, with 100x to spare, while a lost
 * rank or a wrong normalisation still moves the parameters by ~1e-2 (they move 0.1 in the run). */
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm/world.h"
#include "train/run_config.h"
#include "data/dataset.h"
#include "data/example.h"
#include "data/loader.h"
#include "data/record.h"
#include "ops/ops.h"
#include "ckpt/checkpoint.h"
#include "models/model.h"
#include "train/trainer.h"

enum { ROWS = 4, STEPS = 20, SEQ = 16, VOCAB = 32 };

static dl_world world;
static uint64_t seed;
static char dir[256];
static char data_path[512];

/* Waits for every rank without spinning a core (rank 0 may be training alone meanwhile). */
static void sleepy_barrier(void) {
    MPI_Request request;
    assert_int_equal(MPI_Ibarrier(world.comm, &request), MPI_SUCCESS);
    for (;;) {
        int done = 0;
        assert_int_equal(MPI_Test(&request, &done, MPI_STATUS_IGNORE), MPI_SUCCESS);
        if (done)
            return;
        usleep(2000);
    }
}

/* Rank 0 writes the documents: exactly one epoch for 20 steps. Returns 0 on success. */
static int write_records(void) {
    size_t n = (size_t)STEPS * ROWS * (size_t)world.size;
    dl_record_writer *w = NULL;
    if (dl_record_writer_open(&w, data_path) != DL_OK)
        return 1;
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    dl_status s = DL_OK;
    for (size_t d = 0; d < n && s == DL_OK; d++) {
        int32_t tokens[SEQ];
        size_t len_tokens = 2 + dl_philox_word(seed, 11, d) % (SEQ - 1); /* 2 … 16 */
        for (size_t i = 0; i < len_tokens; i++)
            tokens[i] = (int32_t)(dl_philox_word(seed, 12 + d, i) % VOCAB);
        s = dl_example_encode_tokens(tokens, len_tokens, &buf, &cap, &len);
        if (s == DL_OK)
            s = dl_record_writer_append(w, buf, len);
    }
    free(buf);
    if (s != DL_OK) {
        dl_record_writer_abort(w);
        return 1;
    }
    return dl_record_writer_close(w) != DL_OK;
}

/* The run's config: the shared settings plus `extra` overrides (NULL-terminated). */
static void make_config(dl_config *cfg, const char *name, int rows, char **extra) {
    static char run_dir[600], train[600], rows_kv[64];
    snprintf(run_dir, sizeof run_dir, "run.dir=%s/%s", dir, name);
    snprintf(train, sizeof train, "data.train=%s", data_path);
    snprintf(rows_kv, sizeof rows_kv, "train.batch_per_rank=%d", rows);
    char *base[] = {run_dir,  train,          rows_kv,           "model.n_layer=2",    "model.n_head=2",
                    "model.n_embd=16",       "model.vocab_size=32", "model.max_seq_len=16", "data.seq_len=16",
                    "data.packing=false",    "train.steps=20",  "train.eval_every=0",  "train.threads=1",
                    "train.resume=never",    "optim.lr=3e-3",   "optim.warmup_steps=2", "optim.grad_clip=1", "optim.eps=1e-5",
                    "ckpt.every=0",          "log.every=20",    "log.tensorboard=false"};
    char *all[40];
    int n = 0;
    for (size_t i = 0; i < sizeof base / sizeof *base; i++)
        all[n++] = base[i];
    for (int i = 0; extra && extra[i]; i++)
        all[n++] = extra[i];
    if (dl_config_load(cfg, NULL, n, all) != DL_OK)
        DL_TEST_FAIL("config: %s", dl_error_message());
}

static void train_on(dl_world *w, const char *name, int rows, char **extra) {
    dl_config cfg;
    make_config(&cfg, name, rows, extra);
    w->timeout_s = 120;
    dl_status s = dl_train(&cfg, w);
    if (s != DL_OK)
        DL_TEST_FAIL("training %s: %s", name, dl_error_message());
    dl_config_free(&cfg);
}

/* The final parameters of run `name` (rank 0), malloc'd; *numel gets their count. */
static float *final_params(const char *name, size_t *numel) {
    dl_config cfg;
    make_config(&cfg, name, ROWS, NULL);
    dl_backend be;
    assert_int_equal(dl_backend_open(&be, "cpu", 0), DL_OK);
    dl_model *model = NULL;
    assert_int_equal(dl_config_create_model(&model, &cfg, &be, 1, SEQ), DL_OK);
    *numel = dl_tensor_table_numel(model->params);
    float *params = calloc(*numel, sizeof(float));
    dl_ckpt_tensors t = {model->params, params, 0, NULL, NULL, 0, 0};
    char path[800];
    snprintf(path, sizeof path, "%s/%s/ckpt/step_%08d.h5", dir, name, STEPS);
    uint8_t *cursor = NULL;
    size_t cursor_len = 0;
    if (dl_ckpt_load(path, &t, 0, 1, &cursor, &cursor_len) != DL_OK)
        DL_TEST_FAIL("loading %s: %s", path, dl_error_message());
    free(cursor);
    dl_model_destroy(model);
    dl_backend_close(&be);
    dl_config_free(&cfg);
    return params;
}

static double rel_error(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Order-independent fingerprint of a step's documents: Σ and Σ² of per-document hashes (mod 2^64). */
static void fingerprint_batch(const dl_token_batch *b, uint64_t out[3]) {
    for (int d = 0; d < b->num_seqs; d++) {
        uint64_t h = 1469598103934665603ull;
        for (int i = b->cu_seqlens[d]; i < b->cu_seqlens[d + 1]; i++)
            h = (h ^ (uint64_t)(uint32_t)b->tokens[i]) * 1099511628211ull;
        out[0] += h;
        out[1] += h * h;
        out[2] += 1;
    }
}

static void fingerprints(int world_size, int rank, int rows, uint64_t fp[STEPS][3]) {
    dl_dataset *set = NULL;
    const char *paths[1] = {data_path};
    assert_int_equal(dl_dataset_open(&set, paths, 1), DL_OK);
    dl_doc_source src;
    dl_dataset_source(set, &src);
    dl_config cfg;
    make_config(&cfg, "unused", rows, NULL);
    dl_loader_config lc;
    dl_loader_config_default(&lc);
    lc.kind = DL_DATA_TEXT;
    lc.batch_rows = rows;
    lc.seq_len = SEQ;
    lc.packing = cfg.data.packing;
    lc.pack_window = cfg.data.pack_window;
    lc.shuffle = cfg.data.shuffle;
    lc.seed = (uint64_t)cfg.run.seed;
    lc.world = (uint32_t)world_size;
    lc.rank = (uint32_t)rank;
    lc.prefetch = 0;
    dl_config_free(&cfg);
    dl_loader *loader = NULL;
    assert_int_equal(dl_loader_open(&loader, &src, &lc, NULL, 0), DL_OK);
    memset(fp, 0, sizeof(uint64_t) * STEPS * 3);
    for (int s = 0; s < STEPS; s++) {
        const dl_batch *batch;
        assert_int_equal(dl_loader_next(loader, &batch), DL_OK);
        assert_int_equal(batch->tokens.num_seqs, rows); /* one document per row, every row used */
        fingerprint_batch(&batch->tokens, fp[s]);
    }
    dl_loader_close(loader);
    dl_dataset_close(set);
}

static void ranks_read_the_one_rank_batches(void **state) {
    (void)state;
    uint64_t mine[STEPS][3], sum[STEPS][3];
    fingerprints(world.size, world.rank, ROWS, mine);
    memcpy(sum, mine, sizeof sum);
    /* Σ over ranks (uint64 wraps the same way everywhere). */
    assert_int_equal(MPI_Allreduce(mine, sum, STEPS * 3, MPI_UINT64_T, MPI_SUM, world.comm), MPI_SUCCESS);
    if (world.rank == 0) {
        uint64_t one[STEPS][3];
        fingerprints(1, 0, ROWS * world.size, one);
        for (int s = 0; s < STEPS; s++)
            if (memcmp(one[s], sum[s], sizeof one[s]) != 0)
                DL_TEST_FAIL("step %d: the %d ranks' documents are not the one-rank batch's", s, world.size);
    }
}

static void data_parallel_equals_one_rank(void **state) {
    (void)state;
    char *plain_small[] = {"comm.zero=0", "comm.bucket_mb=0.001", NULL};
    char *plain_one[] = {"comm.zero=0", "comm.bucket_mb=100", NULL};
    char *zero_small[] = {"comm.zero=1", "comm.bucket_mb=0.001", NULL};
    char *zero_one[] = {"comm.zero=1", "comm.bucket_mb=100", NULL};
    char *zero_accum[] = {"comm.zero=1", "comm.bucket_mb=0.002", "train.grad_accum=2", NULL};
    train_on(&world, "plain_small", ROWS, plain_small);
    train_on(&world, "plain_one", ROWS, plain_one);
    train_on(&world, "zero_small", ROWS, zero_small);
    train_on(&world, "zero_one", ROWS, zero_one);
    train_on(&world, "zero_accum", ROWS / 2, zero_accum);
    dl_world self;
    assert_int_equal(dl_world_split(&world, world.rank == 0 ? 0 : -1, 0, &self), DL_OK);
    if (world.rank == 0) {
        char *ref[] = {"comm.zero=0", NULL};
        train_on(&self, "reference", ROWS * world.size, ref);
    }
    dl_world_finalize(&self);
    sleepy_barrier();
    if (world.rank != 0)
        return;
    size_t n = 0, m = 0;
    float *reference = final_params("reference", &n);
    float *plain_small_p = final_params("plain_small", &m);
    assert_int_equal(m, n);
    float *plain_one_p = final_params("plain_one", &m);
    float *zero_small_p = final_params("zero_small", &m);
    float *zero_one_p = final_params("zero_one", &m);
    float *zero_accum_p = final_params("zero_accum", &m);
    /* Bits hold: bucket size changes no float operation (exchange.c sums in rank order itself). */
    if (memcmp(plain_small_p, plain_one_p, n * sizeof(float)) != 0)
        DL_TEST_FAIL("small buckets and one bucket differ (relative %.3g)", rel_error(plain_small_p, plain_one_p, n));
    if (memcmp(zero_small_p, zero_one_p, n * sizeof(float)) != 0)
        DL_TEST_FAIL("ZeRO-1: small buckets and one bucket differ (relative %.3g)",
                     rel_error(zero_small_p, zero_one_p, n));
    /* The parameters moved from their initial values (so agreeing means something). */
    dl_config cfg;
    make_config(&cfg, "reference", ROWS, NULL);
    dl_backend be;
    assert_int_equal(dl_backend_open(&be, "cpu", 0), DL_OK);
    dl_model *model = NULL;
    assert_int_equal(dl_config_create_model(&model, &cfg, &be, 1, SEQ), DL_OK);
    assert_int_equal(model->init_params(model, (uint64_t)cfg.run.seed), DL_OK);
    double moved = rel_error(reference, model->param_data, n);
    printf("one-rank run: parameters moved by %.3g (relative) in %d steps\n", moved, STEPS);
    assert_true(moved > 1e-3);
    dl_model_destroy(model);
    dl_backend_close(&be);
    dl_config_free(&cfg);
    const struct {
        const char *name;
        const float *p;
    } runs[] = {{"plain", plain_small_p}, {"zero-1", zero_small_p}, {"zero-1 + grad_accum 2", zero_accum_p}};
    for (int k = 0; k < 3; k++) {
        double e = rel_error(runs[k].p, reference, n);
        printf("%d ranks, %s: relative difference to one rank %.3g\n", world.size, runs[k].name, e);
        if (!(e <= 1e-5))
            DL_TEST_FAIL("%s on %d ranks vs one rank: relative difference %.3g > 1e-5", runs[k].name, world.size, e);
    }
    free(reference);
    free(plain_small_p);
    free(plain_one_p);
    free(zero_small_p);
    free(zero_one_p);
    free(zero_accum_p);
}

static int remove_tree(const char *path) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    return system(cmd);
}

int main(int argc, char **argv) {
    if (dl_world_init(&world, &argc, &argv, 120.0) != DL_OK) {
        fprintf(stderr, "%s\n", dl_error_message());
        return 1;
    }
    seed = world.rank == 0 ? dl_test_seed() : 0;
    if (world.rank == 0) {
        snprintf(dir, sizeof dir, "/tmp/dealer_equiv.XXXXXX");
        if (!mkdtemp(dir)) {
            fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
            dir[0] = '\0';
        }
    }
    if (dl_comm_broadcast(&world, &seed, sizeof seed, 0, "seed") != DL_OK ||
        dl_comm_broadcast(&world, dir, sizeof dir, 0, "temp dir") != DL_OK || !dir[0])
        return 1;
    char text[32];
    snprintf(text, sizeof text, "%llu", (unsigned long long)seed);
    setenv("DEALER_TEST_SEED", text, 1);
    dl_test_seed();
    snprintf(data_path, sizeof data_path, "%s/train.tfrecord", dir);
    int64_t bad = world.rank == 0 ? write_records() : 0;
    if (dl_comm_allreduce_max_i64(&world, &bad, 1, "records written") != DL_OK || bad) {
        fprintf(stderr, "cannot write the test records in %s: %s\n", dir, dl_error_message());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ranks_read_the_one_rank_batches),
        cmocka_unit_test(data_parallel_equals_one_rank),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Barrier(world.comm);
    if (world.rank == 0)
        remove_tree(dir);
    dl_world_finalize(&world);
    return failed;
}
