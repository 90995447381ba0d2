/* bench_records.c — how fast one core reads and decodes records, against what training consumes.
 *
 * Converts the bundled Shakespeare text (blank-line documents) and Criteo libffm samples (18 and 69 fields per
 * row) into record files under /tmp, then times, on one thread, passes over each file:
 *   crc only      the framing: both CRC32C checks per record through dl_record_file_view (no copy)
 *   read+decode   view + dl_example_decode_tokens / _click into reused arrays (what the data pipeline does)
 *   random order  the same in a Philox permutation (shuffled epochs)
 * plus CRC32C itself (SSE4.2 against the table fallback). Each figure is the best of 5 timed repeats of passes
 * lasting at least 0.2 s, so a noisy shared machine biases it as little as possible; compare figures within one run.
 *
 *     build/bench_records            (DEALER_SOURCE_DIR is compiled in; the data comes from the repository) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/philox.h"
#include "core/timer.h"
#include "data/convert.h"
#include "data/example.h"
#include "data/record.h"

static void die(const char *what) {
    fprintf(stderr, "bench_records: %s: %s\n", what, dl_error_message());
    exit(1);
}

typedef struct pass_ctx {
    dl_record_file *f;
    const uint64_t *order; /* NULL: sequential */
    int mode;              /* 0 crc only, 1 tokens, 2 click */
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
            if (dl_example_decode_tokens(p, len, &c->tokens) != DL_OK)
                die("decode tokens");
            c->items += c->tokens.len;
        } else if (c->mode == 2) {
            if (dl_example_decode_click(p, len, &c->row) != DL_OK)
                die("decode click");
            c->items += c->row.feature.len;
        }
    }
}

typedef struct rate {
    double records_per_s, mb_per_s, items_per_s;
} rate;

/* Best of 5 repeats, each a whole number of passes lasting >= 0.2 s. */
static rate measure(dl_record_file *f, int mode, const uint64_t *order) {
    pass_ctx c;
    memset(&c, 0, sizeof c);
    c.f = f;
    c.mode = mode;
    c.order = order;
    one_pass(&c); /* warm-up: page cache, arrays grown */
    rate best = {0, 0, 0};
    for (int r = 0; r < 5; r++) {
        c.items = c.bytes = 0;
        uint64_t passes = 0;
        double t0 = dl_time_seconds(), dt;
        do {
            one_pass(&c);
            passes++;
            dt = dl_time_seconds() - t0;
        } while (dt < 0.2);
        double recs = (double)passes * (double)dl_record_file_count(f) / dt;
        if (recs > best.records_per_s) {
            best.records_per_s = recs;
            best.mb_per_s = (double)c.bytes / dt / 1e6;
            best.items_per_s = (double)c.items / dt;
        }
    }
    dl_i32_array_free(&c.tokens);
    dl_click_row_free(&c.row);
    return best;
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
    double best = 0;
    volatile uint32_t sink = 0;
    for (int r = 0; r < 5; r++) {
        uint64_t bytes = 0;
        double t0 = dl_time_seconds(), dt;
        do {
            sink ^= hardware ? dl_crc32c(0, buf, n) : dl_crc32c_portable(0, buf, n);
            bytes += n;
            dt = dl_time_seconds() - t0;
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
        rate crc = measure(f, 0, NULL);
        rate seq = measure(f, sets[s].mode, NULL);
        rate rnd = measure(f, sets[s].mode, order);
        const char *pass[3] = {"crc only", "read+decode", "read+decode, random order"};
        rate *rates[3] = {&crc, &seq, &rnd};
        for (int k = 0; k < 3; k++) {
            printf("%-26s %-26s %7.3f M records/s %6.0f MB/s", sets[s].name, pass[k], rates[k]->records_per_s / 1e6,
                   rates[k]->mb_per_s);
            if (k > 0)
                printf(" %7.1f M %s/s", rates[k]->items_per_s / 1e6, sets[s].items);
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
