/* bench_records.c — how fast one core reads and decodes records, against what training consumes.
 *
 * Converts the bundled Shakespeare text (blank-line documents) and Criteo libffm samples (18 and 69 fields per
 * row) into record files under /tmp, then times, on one thread, passes over each file:
 *   crc only      the framing: both CRC32C checks per record through dl_record_file_view (no copy)
 *   read+decode   view + dl_example_decode_tokens / _click into reused arrays (what the data pipeline does)
 *   random order  the same in a Philox permutation (shuffled epochs)
 *   protobuf-c    sequential, decoding with protobuf-c alone (the reference the wire fast path replaces)
 * plus CRC32C itself (SSE4.2 against the table fallback). Each figure is the median of 5 timed repeats of passes
 * lasting at least 0.2 s of this thread's CPU time (so time slices taken by other jobs on a shared machine do not
 * count; a busy sibling hyperthread still does): rates are per CPU-second of one core. Compare figures within one
 * run rather than across runs.
 *
 *     build/bench_records            (DEALER_SOURCE_DIR is compiled in; the data comes from the repository) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/philox.h"
#include "data/convert.h"
#include "data/example.h"
#include "data/example_wire.h"
#include "data/record.h"

/* CPU time of this thread: on a machine shared with other jobs, time slices given to them do not count. */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "bench_records: %s: %s\n", what, dl_error_message());
    exit(1);
}

typedef struct pass_ctx {
    dl_record_file *f;
    const uint64_t *order; /* NULL: sequential */
    int mode;              /* 0 crc only, 1 tokens, 2 click */
    int reference;         /* decode with protobuf-c alone (no fast path) */
    dl_i32_array tokens;
    dl_click_row row;
    uint64_t items;        /* tokens or entries decoded */
    uint64_t bytes;
} pass_ctx;

static void one_pass(pass_ctx *c) {
    uint64_t n = dl_record_file_count(c->f);
    for (uint64_t k = 0; k < n; k++) {
        uint64_t i = c->order ? c->order[k] : k;
        const uint8_t *p;
        size_t len;
        if (dl_record_file_view(c->f, i, &p, &len) != DL_OK)
            die("read");
        c->bytes += len + DL_RECORD_OVERHEAD;
        if (c->mode == 1) {
            dl_status s = c->reference ? dl_example_decode_tokens_reference(p, len, &c->tokens)
                                       : dl_example_decode_tokens(p, len, &c->tokens);
            if (s != DL_OK)
                die("decode tokens");
            c->items += c->tokens.len;
        } else if (c->mode == 2) {
            dl_status s = c->reference ? dl_example_decode_click_reference(p, len, &c->row)
                                       : dl_example_decode_click(p, len, &c->row);
            if (s != DL_OK)
                die("decode click");
            c->items += c->row.feature.len;
        }
    }
}

typedef struct rate {
    double records_per_s, mb_per_s, items_per_s;
} rate;

static int compare_rates(const void *a, const void *b) {
    double x = ((const rate *)a)->records_per_s, y = ((const rate *)b)->records_per_s;
    return (x > y) - (x < y);
}

/* Median of 5 repeats, each a whole number of passes lasting >= 0.2 s. */
static rate measure(dl_record_file *f, int mode, int reference, const uint64_t *order) {
    pass_ctx c;
    memset(&c, 0, sizeof c);
    c.f = f;
    c.mode = mode;
    c.reference = reference;
    c.order = order;
    one_pass(&c); /* warm-up: page cache, arrays grown */
    rate runs[5];
    for (int r = 0; r < 5; r++) {
        c.items = c.bytes = 0;
        uint64_t passes = 0;
        double t0 = cpu_seconds(), dt;
        do {
            one_pass(&c);
            passes++;
            dt = cpu_seconds() - t0;
        } while (dt < 0.2);
        runs[r].records_per_s = (double)passes * (double)dl_record_file_count(f) / dt;
        runs[r].mb_per_s = (double)c.bytes / dt / 1e6;
        runs[r].items_per_s = (double)c.items / dt;
    }
    qsort(runs, 5, sizeof runs[0], compare_rates);
    dl_i32_array_free(&c.tokens);
    dl_click_row_free(&c.row);
    return runs[2];
}

static void convert(dl_convert_format format, const char *in, const char *out) {
    const char *inputs[] = {in};
    dl_convert_options o;
    memset(&o, 0, sizeof o);
    o.format = format;
    o.inputs = inputs;
    o.num_inputs = 1;
    o.output = out;
    if (dl_convert(&o, NULL) != DL_OK)
        die(in);
}

static uint64_t *permutation(uint64_t n) {
    uint64_t *p = malloc((n ? n : 1) * sizeof *p);
    for (uint64_t i = 0; i < n; i++)
        p[i] = i;
    dl_rng rng;
    dl_rng_init(&rng, 7, DL_STREAM_SHUFFLE);
    for (uint64_t i = n; i > 1; i--) {
        uint64_t j = dl_rng_below(&rng, i), t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
    return p;
}

static double crc_gb_per_s(int hardware) {
    size_t n = 1 << 20;
    uint8_t *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(i * 31 + 7);
    double best = 0; /* best, not median: this one is only a sanity figure for the CRC instruction */
    volatile uint32_t sink = 0;
    for (int r = 0; r < 5; r++) {
        uint64_t bytes = 0;
        double t0 = cpu_seconds(), dt;
        do {
            sink ^= hardware ? dl_crc32c(0, buf, n) : dl_crc32c_portable(0, buf, n);
            bytes += n;
            dt = cpu_seconds() - t0;
        } while (dt < 0.1);
        if (bytes / dt / 1e9 > best)
            best = (double)bytes / dt / 1e9;
    }
    free(buf);
    return best;
}

int main(void) {
    char dir[] = "/tmp/dealer_bench_records_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    struct {
        const char *name, *input, *file;
        dl_convert_format format;
        int mode;
        const char *items;
    } sets[] = {
        {"text: Shakespeare speeches", DEALER_SOURCE_DIR "/data/tinyshakespeare.txt", "text.tfrecord",
         DL_CONVERT_TEXT, 1, "tokens"},
        {"clicks: Criteo 18 fields", DEALER_SOURCE_DIR "/data/criteo/small_train.txt", "small.tfrecord",
         DL_CONVERT_LIBFFM, 2, "entries"},
        {"clicks: Criteo 69 fields", DEALER_SOURCE_DIR "/data/criteo/tr1599.ffm", "tr1599.tfrecord",
         DL_CONVERT_LIBFFM, 2, "entries"},
    };
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s", dir, sets[s].file);
        convert(sets[s].format, sets[s].input, path);
        dl_record_file *f;
        if (dl_record_file_open(&f, path) != DL_OK)
            die(path);
        uint64_t *order = permutation(dl_record_file_count(f));
        rate crc = measure(f, 0, 0, NULL);
        rate seq = measure(f, sets[s].mode, 0, NULL);
        rate rnd = measure(f, sets[s].mode, 0, order);
        rate ref = measure(f, sets[s].mode, 1, NULL);
        const char *pass[4] = {"crc only", "read+decode", "read+decode, random order", "read+decode, protobuf-c"};
        rate *rates[4] = {&crc, &seq, &rnd, &ref};
        for (int k = 0; k < 4; k++) {
            printf("%-26s %-26s %7.3f M records/s %6.0f MB/s", sets[s].name, pass[k], rates[k]->records_per_s / 1e6,
                   rates[k]->mb_per_s);
            if (k > 0)
                printf(" %7.1f M %s/s", rates[k]->items_per_s / 1e6, sets[s].items);
            if (k == 3)
                printf("  (fast path %.1fx)", seq.records_per_s / ref.records_per_s);
            printf("\n");
        }
        free(order);
        dl_record_file_close(f);
        unlink(path);
        snprintf(path, sizeof path, "%s/%s.idx", dir, sets[s].file);
        unlink(path);
    }
    printf("crc32c: %.2f GB/s %s, %.2f GB/s table fallback\n", crc_gb_per_s(1),
           dl_crc32c_hardware() ? "SSE4.2" : "(no SSE4.2: table)", crc_gb_per_s(0));
    rmdir(dir);
    return 0;
}
