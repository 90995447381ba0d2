/* testutil.c — see testutil.h. */
#include <dirent.h>
#include "testutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/batch.h"
#include "data/example.h"
#include "data/loader.h"

static uint64_t test_seed;
static int test_seed_ready;

uint64_t dl_test_seed(void) {
    if (!test_seed_ready) {
        const char *env = getenv("DEALER_TEST_SEED");
        if (env && *env) {
            test_seed = strtoull(env, NULL, 10);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            test_seed = (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec;
        }
        test_seed_ready = 1;
    }
    return test_seed;
}

void dl_test_rng(dl_rng *rng, uint64_t stream) { dl_rng_init(rng, dl_test_seed(), stream); }

void dl_test_fill_uniform(dl_rng *rng, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * dl_rng_uniform(rng);
}

void dl_test_poison(float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = NAN;
}

long dl_test_first_nonfinite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return (long)i;
    return -1;
}

double dl_test_rel_error(const float *a, const double *b, size_t n) {
    double diff = 0.0, ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        diff += d * d;
        ref += b[i] * b[i];
    }
    return sqrt(diff) / fmax(sqrt(ref), 1e-30);
}

double dl_test_rel_error_f(const float *a, const float *b, size_t n) {
    double diff = 0.0, ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        diff += d * d;
        ref += (double)b[i] * (double)b[i];
    }
    return sqrt(diff) / fmax(sqrt(ref), 1e-30);
}

void dl_test_fail(const char *file, int line, const char *fmt, ...) {
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    fail_msg("%s:%d: %s (DEALER_TEST_SEED=%" PRIu64 ")", file, line, message, dl_test_seed());
}

void dl_test_assert_rel(const float *actual, const double *reference, size_t n, double tol, const char *what,
                        const char *file, int line) {
    long bad = dl_test_first_nonfinite(actual, n);
    if (bad >= 0)
        dl_test_fail(file, line, "%s[%ld] is %f (not written or not finite)", what, bad, (double)actual[bad]);
    double err = dl_test_rel_error(actual, reference, n);
    if (!(err <= tol)) {
        size_t worst = 0;
        double worst_d = -1;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)actual[i] - reference[i]);
            if (d > worst_d) {
                worst_d = d;
                worst = i;
            }
        }
        dl_test_fail(file, line, "%s: relative error %.3g > %.3g (worst [%zu]: got %.9g, want %.9g)", what, err, tol,
                     worst, (double)actual[worst], reference[worst]);
    }
}

float *dl_test_alloc_f(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(p);
    return p;
}

double *dl_test_alloc_d(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    assert_non_null(p);
    return p;
}

void dl_test_click_batch_build(struct dl_click_batch *cb, int rows, int64_t first, uint64_t stream,
                               void (*row_at)(uint64_t stream, int64_t i, struct dl_click_row *row)) {
    dl_click_row row;
    memset(&row, 0, sizeof row);
    cb->num_rows = 0;
    cb->nnz = 0;
    cb->row_ptr[0] = 0;
    for (int b = 0; b < rows; b++) {
        row_at(stream, first + b, &row);
        if (dl_click_batch_reserve(cb, cb->nnz + (int64_t)row.feature.len) != DL_OK)
            DL_TEST_FAIL("dl_click_batch_reserve: %s", dl_error_message());
        for (size_t e = 0; e < row.feature.len; e++) {
            cb->features[cb->nnz] = row.feature.data[e];
            cb->fields[cb->nnz] = row.field.data[e];
            cb->values[cb->nnz++] = row.value.data[e];
        }
        cb->labels[b] = row.label;
        cb->row_ptr[++cb->num_rows] = (int32_t)cb->nnz;
    }
    dl_click_row_free(&row);
}

void dl_test_click_random_row(uint64_t seed, int fields, int max_id, uint64_t stream, int64_t i, dl_click_row *row) {
    dl_rng rng;
    dl_rng_init(&rng, seed, stream * 100003 + (uint64_t)i);
    int n = 1 + (int)dl_rng_below(&rng, 5);
    row->field.len = row->feature.len = row->value.len = 0;
    for (int e = 0; e < n; e++) {
        int32_t id = e > 0 && dl_rng_below(&rng, 4) == 0 ? row->feature.data[e - 1]
                                                          : (int32_t)dl_rng_below(&rng, (uint64_t)max_id);
        dl_i32_array_push(&row->field, (int32_t)dl_rng_below(&rng, (uint64_t)fields));
        dl_i32_array_push(&row->feature, id);
        dl_f32_array_push(&row->value, 0.5f + dl_rng_uniform(&rng));
    }
    row->label = (float)dl_rng_below(&rng, 2);
}

void dl_test_click_loader_config(dl_loader_config *lc, int batch_rows, int rank, int world) {
    dl_loader_config_default(lc);
    lc->kind = DL_DATA_CLICKS;
    lc->batch_rows = batch_rows;
    lc->shuffle = 0;
    lc->epochs = 1;
    lc->prefetch = 0;
    lc->world = (uint32_t)world;
    lc->rank = (uint32_t)rank;
}

void dl_test_click_config(dl_config *cfg, dl_model_kind kind, int k, int fields, int64_t buckets, bool linear_terms,
                          double lambda, dl_embeddings embeddings) {
    if (dl_config_defaults(cfg) != DL_OK)
        DL_TEST_FAIL("dl_config_defaults: %s", dl_error_message());
    cfg->device = DL_CFG_DEVICE_CPU;
    cfg->model.kind = kind;
    cfg->model.k = k;
    cfg->model.num_fields = fields;
    cfg->model.hash_buckets = buckets;
    cfg->model.linear_terms = linear_terms;
    cfg->model.normalize = true;
    cfg->optim.name = DL_OPTIM_ADAGRAD;
    cfg->optim.lr = 0.2;
    cfg->optim.weight_decay = lambda;
    cfg->optim.adagrad_init = 1.0;
    cfg->comm.embeddings = embeddings;
}

dl_backend dl_test_open_cpu(void) {
    dl_backend be;
    if (dl_backend_open(&be, "cpu", 0) != DL_OK)
        DL_TEST_FAIL("dl_backend_open(cpu): %s", dl_error_message());
    return be;
}

void *dl_test_calloc(size_t bytes) {
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p)
        DL_TEST_FAIL("cannot allocate %zu bytes", bytes);
    return p;
}

int dl_test_tmp_count(const char *path) {
    char dir[4096], prefix[1024];
    const char *slash = strrchr(path, '/');
    if (slash) {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        snprintf(prefix, sizeof prefix, "%s.tmp", slash + 1);
    } else {
        snprintf(dir, sizeof dir, ".");
        snprintf(prefix, sizeof prefix, "%s.tmp", path);
    }
    DIR *d = opendir(dir[0] ? dir : "/");
    if (!d)
        return 0;
    int n = 0;
    size_t len = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, len) == 0 && (e->d_name[len] == '\0' || e->d_name[len] == '.'))
            n++;
    closedir(d);
    return n;
}

double *dl_test_to_double(const float *x, size_t n) {
    double *d = dl_test_alloc_d(n);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

void dl_test_prefill_like(dl_rng *rng, float *g, const double *ref, size_t n) {
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += ref[i] * ref[i];
    double rms = sqrt(ss / (double)n);
    if (!(rms > 0.0))
        rms = 1.0;
    for (size_t i = 0; i < n; i++)
        g[i] = (float)(rms * (2.0 * dl_rng_uniform(rng) - 1.0));
}
