/* testutil.h — what every dealer test shares: CMocka, random inputs with a printed seed, NaN poisoning, and
 * norm-relative comparisons that print both operands.
 *
 * Each test binary draws a fresh seed (time-based) unless DEALER_TEST_SEED is set, and prints it when a check fails,
 * so a failure is reproducible with DEALER_TEST_SEED=<seed>. */
#ifndef DL_TESTUTIL_H
#define DL_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the three headers above first. */
#include <cmocka.h>

#include "core/philox.h"
#include "core/status.h"

/* The seed of this run (fixed on first call). */
uint64_t dl_test_seed(void);
/* A generator on its own stream of the test seed: pass a different stream per use. */
void dl_test_rng(dl_rng *rng, uint64_t stream);
/* Fills x[0..n) with uniform values in [lo, hi). */
void dl_test_fill_uniform(dl_rng *rng, float *x, size_t n, float lo, float hi);
/* Fills with NaN so a test can check that an op wrote every output. */
void dl_test_poison(float *x, size_t n);
/* Index of the first NaN or Inf, or -1 when all are finite. */
long dl_test_first_nonfinite(const float *x, size_t n);
/* ‖a − b‖₂ / max(‖b‖₂, tiny): b is the reference. */
double dl_test_rel_error(const float *a, const double *b, size_t n);
double dl_test_rel_error_f(const float *a, const float *b, size_t n);

/* Fails the test (printing both sides, the seed and the location) when the relative error exceeds tol. */
#define DL_ASSERT_REL(actual_f, reference_d, n, tol)                                                           \
    dl_test_assert_rel((actual_f), (reference_d), (n), (tol), #actual_f, __FILE__, __LINE__)
void dl_test_assert_rel(const float *actual, const double *reference, size_t n, double tol, const char *what,
                        const char *file, int line);

/* Checked allocations for tests (never NULL: the test fails instead). alloc_d zeroes; n = 0 is allowed. */
float *dl_test_alloc_f(size_t n);
double *dl_test_alloc_d(size_t n);
/* A double copy of n floats (dl_test_alloc_d: fails the test when memory is short). */
double *dl_test_to_double(const float *x, size_t n);
/* Fills g with uniform values of the RMS of ref: a backward op accumulating into g then keeps the gradient's
 * digits in float, and a test checks accumulation, not overwrite. */
void dl_test_prefill_like(dl_rng *rng, float *g, const double *ref, size_t n);

/* Fails the test unless `call` returns DL_OK (printing the error message) or DL_ERR_INVALID respectively. */
#define DL_EXPECT_OK(call)                                                                                   \
    do {                                                                                                     \
        dl_status dl_expect_s_ = (call);                                                                     \
        if (dl_expect_s_ != DL_OK)                                                                           \
            DL_TEST_FAIL("%s failed: %s", #call, dl_error_message());                                        \
    } while (0)
#define DL_EXPECT_INVALID(call)                                                                              \
    do {                                                                                                     \
        dl_status dl_expect_s_ = (call);                                                                     \
        if (dl_expect_s_ != DL_ERR_INVALID)                                                                  \
            DL_TEST_FAIL("%s returned %d, want DL_ERR_INVALID", #call, (int)dl_expect_s_);                   \
    } while (0)

#include "train/run_config.h"

/* A CPU FM/FFM configuration for model tests: kind, k, fields, hash buckets, linear terms, λ and the embeddings
 * mode; libffm's normalisation and AdaGrad (η 0.2, G from 1). */
void dl_test_click_config(dl_config *cfg, dl_model_kind kind, int k, int fields, int64_t buckets, bool linear_terms,
                          double lambda, dl_embeddings embeddings);

#include "ops/ops.h"

/* The CPU backend, opened (fails the test otherwise). */
dl_backend dl_test_open_cpu(void);
/* Zeroed memory of at least one byte (fails the test when it cannot be had). */
void *dl_test_calloc(size_t bytes);

struct dl_click_batch;
struct dl_click_row;
/* Refills a click batch with `rows` rows: row b is what row_at(stream, first + b, &row) makes (the test's own
 * synthetic data). */
void dl_test_click_batch_build(struct dl_click_batch *batch, int rows, int64_t first, uint64_t stream,
                               void (*row_at)(uint64_t stream, int64_t i, struct dl_click_row *row));

/* Row i of a random click stream: 1-5 entries over `fields` fields, ids in [0, max_id) (tests pick max_id above
 * the table so some ids hash), an entry sometimes repeating the previous id, values in [0.5, 1.5), label 0 or 1;
 * a pure function of (seed, stream, i), so every rank can make any rank's rows. */
void dl_test_click_random_row(uint64_t seed, int fields, int max_id, uint64_t stream, int64_t i,
                              struct dl_click_row *row);

struct dl_loader_config;
/* A loader config for one in-order epoch of click rows in batches of batch_rows, this rank's share of `world`. */
void dl_test_click_loader_config(struct dl_loader_config *lc, int batch_rows, int rank, int world);

/* How many temporary files of writers of PATH lie next to it (PATH.tmp, or PATH.tmp.* as core/fs.h names them):
 * "nothing half-written is left" checks. */
int dl_test_tmp_count(const char *path);

/* Fails the test with a formatted message that includes the seed. */
void dl_test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define DL_TEST_FAIL(...) dl_test_fail(__FILE__, __LINE__, __VA_ARGS__)

#endif
