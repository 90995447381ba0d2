/* bench_pack.c — how fast the data pipeline turns documents into packed batches on one core, against what
 * training can consume, measured in the same run.
 *
 *     bench_pack [--data tinyshakespeare.txt] [--seq-len 512] [--rows 8] [--window 256] [--params 10.9e6]
 *                [--seconds 1]
 *
 * Documents are the Shakespeare speeches (split on blank lines), byte tokens. It measures
 *   1. the packer alone over documents in memory (packed, and the padded baseline), and a sweep of pack_window;
 *   2. the whole loader from a record file it writes to /tmp (Feistel shuffle, CRC checks, protobuf decode,
 *      packing, cursor), synchronous (one core), then with the prefetch thread;
 *   3. sgemm on all threads through dealer's BLAS, which bounds training from above: a step needs 6·params FLOPs
 *      per token, so training consumes at most sgemm_flops / (6·params) tokens per second on this machine.
 * The ratio pipeline / training bound is the figure the issue asks to be ≥ 10. Output is markdown. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/philox.h"
#include "core/timer.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/pack.h"
#include "data/record.h"
#include "ops/blas_runtime.h"

void openblas_set_num_threads(int);

typedef struct docs {
    size_t n;
    int32_t **tok;
    size_t *len;
    size_t total;
} docs;

static int load_docs(const char *path, docs *d) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench_pack: cannot open %s (pass --data PATH to tinyshakespeare.txt)\n", path);
        return 2;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    if (!text || fread(text, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "bench_pack: cannot read %s\n", path);
        fclose(f);
        free(text);
        return 1;
    }
    fclose(f);
    text[size] = '\0';
    memset(d, 0, sizeof *d);
    size_t cap = 8192;
    d->tok = malloc(cap * sizeof *d->tok);
    d->len = malloc(cap * sizeof *d->len);
    size_t start = 0, n = (size_t)size;
    while (start < n) {
        const char *blank = strstr(text + start, "\n\n");
        size_t end = blank ? (size_t)(blank - text) + 1 : n;
        if (end > start) {
            if (d->n == cap) {
                cap *= 2;
                d->tok = realloc(d->tok, cap * sizeof *d->tok);
                d->len = realloc(d->len, cap * sizeof *d->len);
            }
            size_t len = end - start;
            d->tok[d->n] = malloc(len * sizeof(int32_t));
            for (size_t i = 0; i < len; i++)
                d->tok[d->n][i] = (unsigned char)text[start + i];
            d->len[d->n++] = len;
            d->total += len;
        }
        start = blank ? (size_t)(blank - text) + 2 : n;
    }
    free(text);
    return 0;
}

static dl_status mem_fetch(void *ctx, uint64_t stream, dl_pack_doc *doc) {
    const docs *d = ctx;
    size_t i = (size_t)(stream % d->n);
    doc->present = 1;
    doc->tokens = d->tok[i];
    doc->len = d->len[i];
    return DL_OK;
}

typedef struct result {
    double tokens_per_s;
    double efficiency;
} result;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Packs passes over the corpus until `seconds` have gone (at least 3 passes); median pass rate. */
static result bench_packer(docs *d, int32_t rows, int32_t seq_len, int32_t window, int packing, double seconds) {
    dl_pack_config cfg = {.kind = DL_DATA_TEXT, .rows = rows, .seq_len = seq_len, .window = window,
                          .packing = packing};
    dl_packer *p;
    dl_batch batch;
    if (dl_packer_create(&p, &cfg) != DL_OK || dl_batch_alloc(&batch, DL_DATA_TEXT, rows, seq_len) != DL_OK) {
        fprintf(stderr, "bench_pack: %s\n", dl_error_message());
        exit(1);
    }
    double rates[64];
    int passes = 0;
    double begin = dl_time_seconds();
    result r = {0, 0};
    while (passes < 64 && (passes < 3 || dl_time_seconds() - begin < seconds)) {
        dl_packer_reset(p, 0, d->n);
        double t0 = dl_time_seconds();
        int produced = 1;
        while (produced)
            if (dl_packer_next(p, &batch.tokens, mem_fetch, d, &produced) != DL_OK) {
                fprintf(stderr, "bench_pack: %s\n", dl_error_message());
                exit(1);
            }
        double dt = dl_time_seconds() - t0;
        const dl_pack_stats *st = dl_packer_stats(p);
        rates[passes++] = (double)st->tokens / dt;
        r.efficiency = (double)st->tokens / (double)st->slots;
    }
    qsort(rates, (size_t)passes, sizeof rates[0], cmp_double);
    r.tokens_per_s = rates[passes / 2];
    dl_batch_free(&batch);
    dl_packer_destroy(p);
    return r;
}

static int write_records(const docs *d, const char *path) {
    dl_record_writer *w;
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    if (dl_record_writer_open(&w, path) != DL_OK)
        goto fail;
    for (size_t i = 0; i < d->n; i++)
        if (dl_example_encode_tokens(d->tok[i], d->len[i], &buf, &cap, &len) != DL_OK ||
            dl_record_writer_append(w, buf, len) != DL_OK) {
            dl_record_writer_abort(w);
            goto fail;
        }
    free(buf);
    if (dl_record_writer_close(w) != DL_OK)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "bench_pack: writing %s: %s\n", path, dl_error_message());
    return 1;
}

/* Consumes `epochs` epochs from a loader over the record file; tokens per second seen by the consumer. */
static result bench_loader(const char *path, int32_t rows, int32_t seq_len, int32_t window, int prefetch,
                           uint64_t epochs) {
    dl_dataset *ds;
    if (dl_dataset_open_spec(&ds, path) != DL_OK) {
        fprintf(stderr, "bench_pack: %s\n", dl_error_message());
        exit(1);
    }
    dl_doc_source src;
    dl_dataset_source(ds, &src);
    dl_loader_config cfg;
    dl_loader_config_default(&cfg);
    cfg.batch_rows = rows;
    cfg.seq_len = seq_len;
    cfg.pack_window = window;
    cfg.prefetch = prefetch;
    cfg.epochs = epochs;
    cfg.seed = 1;
    dl_loader *l;
    if (dl_loader_open(&l, &src, &cfg, NULL, 0) != DL_OK) {
        fprintf(stderr, "bench_pack: %s\n", dl_error_message());
        exit(1);
    }
    double t0 = dl_time_seconds();
    for (;;) {
        const dl_batch *b;
        if (dl_loader_next(l, &b) != DL_OK) {
            fprintf(stderr, "bench_pack: %s\n", dl_error_message());
            exit(1);
        }
        if (b->end_of_data)
            break;
    }
    double dt = dl_time_seconds() - t0;
    dl_loader_stats st;
    dl_loader_stats_get(l, &st);
    result r = {(double)st.tokens / dt, (double)st.tokens / (double)st.slots};
    dl_loader_close(l);
    dl_dataset_close(ds);
    return r;
}

/* Reads and decodes every record in file order (CRC checks + protobuf), no shuffle, no packing: the decode share. */
static double bench_decode(const char *path, int passes) {
    dl_dataset *ds;
    if (dl_dataset_open_spec(&ds, path) != DL_OK) {
        fprintf(stderr, "bench_pack: %s\n", dl_error_message());
        exit(1);
    }
    dl_doc_source src;
    dl_dataset_source(ds, &src);
    dl_i32_array tokens = {0};
    uint64_t total = 0;
    double t0 = dl_time_seconds();
    for (int p = 0; p < passes; p++)
        for (uint64_t i = 0; i < src.num_records; i++) {
            if (src.read_tokens(src.ctx, i, &tokens) != DL_OK) {
                fprintf(stderr, "bench_pack: %s\n", dl_error_message());
                exit(1);
            }
            total += tokens.len;
        }
    double dt = dl_time_seconds() - t0;
    dl_i32_array_free(&tokens);
    dl_dataset_close(ds);
    return (double)total / dt;
}

static double sgemm_gflops(int threads) {
    const int n = 1024;
    float *a = malloc((size_t)n * n * sizeof(float)), *b = malloc((size_t)n * n * sizeof(float)),
          *c = malloc((size_t)n * n * sizeof(float));
    dl_rng rng;
    dl_rng_init(&rng, 5, DL_STREAM_DATA);
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = dl_rng_uniform(&rng) - 0.5f;
        b[i] = dl_rng_uniform(&rng) - 0.5f;
    }
    openblas_set_num_threads(threads);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = dl_time_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = dl_time_seconds() - t0;
        if (dt < best)
            best = dt;
    }
    free(a), free(b), free(c);
    return 2.0 * n * (double)n * n / best / 1e9;
}

int main(int argc, char **argv) {
    dl_blas_select_kernel(argv);
    const char *data = NULL;
    int32_t seq_len = 512, rows = 8, window = 256;
    double params = 10.9e6, seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "usage: bench_pack [--data PATH] [--seq-len T] [--rows B] [--window W] [--params N] "
                            "[--seconds S]\n");
            return 2;
        }
        if (!strcmp(argv[i], "--data"))
            data = v;
        else if (!strcmp(argv[i], "--seq-len"))
            seq_len = atoi(v);
        else if (!strcmp(argv[i], "--rows"))
            rows = atoi(v);
        else if (!strcmp(argv[i], "--window"))
            window = atoi(v);
        else if (!strcmp(argv[i], "--params"))
            params = atof(v);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(v);
        else {
            fprintf(stderr, "bench_pack: unknown option %s\n", argv[i]);
            return 2;
        }
        i++;
    }
    if (seq_len <= 0 || rows <= 0 || window <= 0 || params <= 0 || seconds <= 0) {
        fprintf(stderr, "bench_pack: --seq-len, --rows, --window, --params and --seconds must be positive\n");
        return 2;
    }
    char fallback[4096];
    if (!data) {
        snprintf(fallback, sizeof fallback, "%s/data/tinyshakespeare.txt", DEALER_SOURCE_DIR); /* bundled copy */
        data = fallback;
    }
    docs d;
    int rc = load_docs(data, &d);
    if (rc)
        return rc;

    printf("## bench_pack: %zu documents, %zu tokens (Shakespeare speeches, byte tokens)\n\n", d.n, d.total);
    printf("seq_len %d, %d rows per batch; median of passes over the corpus; one core unless said.\n\n", seq_len,
           rows);
    printf("| what | window | efficiency | M tokens/s |\n|---|---|---|---|\n");
    result packed = bench_packer(&d, rows, seq_len, window, 1, seconds);
    result padded = bench_packer(&d, rows, seq_len, 1, 0, seconds);
    printf("| packer, packed | %d | %.2f%% | %.1f |\n", window, 100 * packed.efficiency, packed.tokens_per_s / 1e6);
    printf("| packer, padded (packing: false) | - | %.2f%% | %.1f |\n", 100 * padded.efficiency,
           padded.tokens_per_s / 1e6);
    const int32_t windows[] = {1, 4, 16, 64, 1024, 4096};
    for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++) {
        result r = bench_packer(&d, rows, seq_len, windows[i], 1, seconds / 4);
        printf("| packer, packed | %d | %.2f%% | %.1f |\n", windows[i], 100 * r.efficiency, r.tokens_per_s / 1e6);
    }

    char dir[] = "/tmp/bench_pack_XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench_pack: cannot create a temporary folder\n");
        return 1;
    }
    char path[256], idx[300];
    snprintf(path, sizeof path, "%s/shakespeare.tfrecord", dir);
    snprintf(idx, sizeof idx, "%s.idx", path);
    if (write_records(&d, path))
        return 1;
    double decode = bench_decode(path, 8);
    result sync = bench_loader(path, rows, seq_len, window, 0, 8);
    result ahead = bench_loader(path, rows, seq_len, window, 4, 8);
    printf("| record read + decode only, file order (1 core) | - | - | %.1f |\n", decode / 1e6);
    printf("| loader from records, no prefetch (1 core) | %d | %.2f%% | %.1f |\n", window, 100 * sync.efficiency,
           sync.tokens_per_s / 1e6);
    printf("| loader from records, prefetch 4 (consumer side) | %d | %.2f%% | %.1f |\n", window,
           100 * ahead.efficiency, ahead.tokens_per_s / 1e6);
    unlink(idx);
    unlink(path);
    rmdir(dir);

    int threads = omp_get_max_threads();
    double gflops = sgemm_gflops(threads);
    double train = gflops * 1e9 / (6.0 * params);
    printf("\nTraining bound: sgemm %.1f GFLOP/s on %d threads (%s); a %.1fM-parameter GPT needs %.1f MFLOP per "
           "token, so it trains at most %.0f tokens/s here.\n",
           gflops, threads, dl_blas_describe(), params / 1e6, 6.0 * params / 1e6, train);
    printf("Pipeline / training bound: loader on one core %.0fx, packer alone %.0fx.\n", sync.tokens_per_s / train,
           packed.tokens_per_s / train);
    for (size_t i = 0; i < d.n; i++)
        free(d.tok[i]);
    free(d.tok);
    free(d.len);
    return 0;
}
