/* test_convert.c — the converters end to end: every format converted from a small input the test writes, read back
 * and compared; the Shakespeare corpus (7,222 speeches, bytes round-trip); document splitting; the deterministic
 * train/valid split; and failures that must leave no output behind. Parser details are in test_convert_parsers.c. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fs.h"
#include "data/convert.h"
#include "data/example.h"
#include "data/record.h"
#include "data/stat.h"

#define ASSERT_OK(expr)                                                                                          \
    do {                                                                                                         \
        dl_status s_ = (expr);                                                                                   \
        if (s_ != DL_OK)                                                                                         \
            DL_TEST_FAIL("%s failed: %s", #expr, dl_error_message());                                            \
    } while (0)

static char dir[256];

static int make_dir(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/dealer_test_convert_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state) {
    (void)state;
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* dir/name into a static ring of buffers (a few live at once). */
static const char *in_dir(const char *name) {
    static char ring[8][320];
    static int next;
    char *p = ring[next++ & 7];
    snprintf(p, 320, "%s/%s", dir, name);
    return p;
}

static const char *write_text(const char *name, const char *text) {
    const char *path = in_dir(name);
    ASSERT_OK(dl_write_file_atomic(path, text, strlen(text)));
    return path;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static int exists_suffix(const char *path, const char *suffix) {
    char buf[400];
    snprintf(buf, sizeof buf, "%s%s", path, suffix);
    return exists(buf);
}

static dl_convert_options options(dl_convert_format format, const char *const *inputs, size_t n, const char *out) {
    dl_convert_options o;
    memset(&o, 0, sizeof o);
    o.format = format;
    o.inputs = inputs;
    o.num_inputs = n;
    o.output = out;
    o.seed = 1;
    return o;
}

/* Reads every record of a token file as a byte string (tokens must be bytes). */
typedef struct docs {
    char **text;
    size_t *len;
    size_t n;
} docs;

static docs read_docs(const char *path) {
    dl_record_file *f;
    ASSERT_OK(dl_record_file_open(&f, path));
    docs d = {0};
    d.n = dl_record_file_count(f);
    d.text = calloc(d.n + 1, sizeof *d.text);
    d.len = calloc(d.n + 1, sizeof *d.len);
    dl_i32_array tokens = {0};
    for (size_t i = 0; i < d.n; i++) {
        const uint8_t *p;
        size_t len;
        ASSERT_OK(dl_record_file_view(f, i, &p, &len));
        ASSERT_OK(dl_example_decode_tokens(p, len, &tokens));
        d.text[i] = malloc(tokens.len + 1);
        for (size_t k = 0; k < tokens.len; k++) {
            if (tokens.data[k] > 255)
                DL_TEST_FAIL("%s record %zu token %zu is %d, not a byte", path, i, k, tokens.data[k]);
            d.text[i][k] = (char)tokens.data[k];
        }
        d.text[i][tokens.len] = '\0';
        d.len[i] = tokens.len;
    }
    dl_i32_array_free(&tokens);
    dl_record_file_close(f);
    return d;
}

static void free_docs(docs *d) {
    for (size_t i = 0; i < d->n; i++)
        free(d->text[i]);
    free(d->text);
    free(d->len);
}

static void expect_docs(const char *path, const char *const *want, size_t n) {
    docs d = read_docs(path);
    if (d.n != n)
        DL_TEST_FAIL("%s: %zu documents, want %zu", path, d.n, n);
    for (size_t i = 0; i < n; i++)
        if (d.len[i] != strlen(want[i]) || memcmp(d.text[i], want[i], d.len[i]) != 0)
            DL_TEST_FAIL("%s: document %zu is '%s', want '%s'", path, i, d.text[i], want[i]);
    free_docs(&d);
}

/* ---- text ----------------------------------------------------------------------------------------------------- */

static void shakespeare_gives_7222_speeches_whose_bytes_round_trip(void **state) {
    (void)state;
    const char *src = DEALER_SOURCE_DIR "/data/tinyshakespeare.txt";
    const char *out = in_dir("shakespeare.tfrecord");
    const char *inputs[] = {src};
    dl_convert_options o = options(DL_CONVERT_TEXT, inputs, 1, out);
    dl_convert_result res;
    ASSERT_OK(dl_convert(&o, &res));
    assert_int_equal(res.records, 7222);
    assert_int_equal(res.input_bytes, 1115394);
    assert_int_equal(res.lines, 40000);

    /* Round trip: walking the original, each document is the next run of bytes after the blank lines before it,
     * and nothing but newlines is left over. */
    uint8_t *text;
    size_t text_len;
    ASSERT_OK(dl_read_file(src, &text, &text_len));
    docs d = read_docs(out);
    assert_int_equal(d.n, 7222);
    size_t pos = 0, tokens = 0;
    for (size_t i = 0; i < d.n; i++) {
        while (pos < text_len && text[pos] == '\n')
            pos++;
        if (d.len[i] == 0 || pos + d.len[i] > text_len || memcmp(text + pos, d.text[i], d.len[i]) != 0)
            DL_TEST_FAIL("document %zu does not match the text at byte %zu", i, pos);
        pos += d.len[i];
        if (pos < text_len && text[pos] != '\n')
            DL_TEST_FAIL("document %zu ends mid-line at byte %zu", i, pos);
        if (strstr(d.text[i], "\n\n"))
            DL_TEST_FAIL("document %zu spans a blank line", i);
        tokens += d.len[i];
    }
    while (pos < text_len && text[pos] == '\n')
        pos++;
    assert_int_equal(pos, text_len);
    assert_int_equal(res.tokens, tokens);

    /* The figures of the data README: median 83, 90th percentile 347, longest 3,080 (bytes per speech). */
    dl_data_stats st;
    ASSERT_OK(dl_data_stat(out, &st));
    assert_int_equal(st.kind, DL_EXAMPLE_TOKENS);
    assert_int_equal(st.records, 7222);
    assert_int_equal(st.doc.total, tokens);
    assert_int_equal(st.doc.median, 83);
    assert_int_equal(st.doc.p90, 347);
    assert_int_equal(st.doc.max, 3080);
    assert_int_equal(st.doc.min, 4);
    uint64_t hist_total = 0;
    for (int b = 0; b < DL_STAT_HIST_BUCKETS; b++)
        hist_total += st.hist[b];
    assert_int_equal(hist_total, 7222);
    assert_int_equal(st.max_token, 'z');
    free_docs(&d);
    free(text);
}

static void text_split_modes(void **state) {
    (void)state;
    /* Blank lines: empty, spaces, a tab and CR; a last line without newline; CRLF content is kept. */
    const char *text = "one\ntwo two\n\n\nthree\n  \n\t\r\nfour\r\nfive";
    const char *in = write_text("modes.txt", text);
    const char *inputs[] = {in};
    const char *out = in_dir("modes.tfrecord");
    dl_convert_options o = options(DL_CONVERT_TEXT, inputs, 1, out);

    o.doc_split = DL_DOC_SPLIT_BLANK;
    ASSERT_OK(dl_convert(&o, NULL));
    const char *blank[] = {"one\ntwo two", "three", "four\r\nfive"};
    expect_docs(out, blank, 3);

    o.doc_split = DL_DOC_SPLIT_LINE;
    ASSERT_OK(dl_convert(&o, NULL));
    const char *line[] = {"one", "two two", "three", "four\r", "five"};
    expect_docs(out, line, 5);

    o.doc_split = DL_DOC_SPLIT_FILE;
    ASSERT_OK(dl_convert(&o, NULL));
    const char *file[] = {text};
    expect_docs(out, file, 1);

    /* Several inputs: documents never span files, even when a file lacks its final newline; an empty file adds
     * nothing. */
    const char *second = write_text("second.txt", "six\nseven\n\neight\n");
    const char *empty = write_text("empty.txt", "");
    const char *three[] = {in, empty, second};
    o.inputs = three;
    o.num_inputs = 3;
    o.doc_split = DL_DOC_SPLIT_BLANK;
    ASSERT_OK(dl_convert(&o, NULL));
    const char *joined[] = {"one\ntwo two", "three", "four\r\nfive", "six\nseven", "eight"};
    expect_docs(out, joined, 5);
    o.doc_split = DL_DOC_SPLIT_FILE;
    ASSERT_OK(dl_convert(&o, NULL));
    const char *files[] = {text, "six\nseven\n\neight\n"};
    expect_docs(out, files, 2);

    /* Bytes 0..255 are all tokens, NUL and 0xff included. */
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    const char *bin = in_dir("bytes.bin");
    ASSERT_OK(dl_write_file_atomic(bin, all, sizeof all));
    const char *bins[] = {bin};
    o.inputs = bins;
    o.num_inputs = 1;
    o.doc_split = DL_DOC_SPLIT_FILE;
    ASSERT_OK(dl_convert(&o, NULL));
    docs d = read_docs(out);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.len[0], 256);
    assert_memory_equal(d.text[0], all, 256);
    free_docs(&d);
}

typedef struct collected {
    char text[8][32];
    uint64_t line[8];
    int n;
} collected;

static dl_status collect(void *ctx, const uint8_t *doc, size_t len, uint64_t first_line) {
    collected *c = ctx;
    if (c->n < 8 && len < 32) {
        memcpy(c->text[c->n], doc, len);
        c->text[c->n][len] = '\0';
        c->line[c->n] = first_line;
    }
    c->n++;
    return DL_OK;
}

static void splitter_streams_line_by_line(void **state) {
    (void)state;
    /* The splitter alone, fed line by line: documents and the line each starts on, restarting per file. */
    collected got = {0};
    dl_text_splitter s;
    dl_text_splitter_init(&s, DL_DOC_SPLIT_BLANK);
    const char *lines[] = {"\n", "a\n", "b\n", " \n", "c"};
    for (int i = 0; i < 5; i++)
        ASSERT_OK(dl_text_splitter_feed(&s, lines[i], strlen(lines[i]), collect, &got));
    ASSERT_OK(dl_text_splitter_finish(&s, collect, &got));
    ASSERT_OK(dl_text_splitter_feed(&s, "d\n", 2, collect, &got));
    ASSERT_OK(dl_text_splitter_finish(&s, collect, &got));
    dl_text_splitter_free(&s);
    assert_int_equal(got.n, 3);
    assert_string_equal(got.text[0], "a\nb");
    assert_int_equal(got.line[0], 2);
    assert_string_equal(got.text[1], "c");
    assert_int_equal(got.line[1], 5);
    assert_string_equal(got.text[2], "d");
    assert_int_equal(got.line[2], 1);
}

/* ---- click rows ------------------------------------------------------------------------------------------------ */

/* Writes `rows` random click rows as libffm or libsvm text and keeps the rows for comparison. */
static void random_click_file(const char *path, int libffm, int rows, dl_click_row *keep, dl_rng *rng) {
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int r = 0; r < rows; r++) {
        dl_click_row *row = &keep[r];
        memset(row, 0, sizeof *row);
        int positive = (int)dl_rng_below(rng, 2);
        row->label = (float)positive;
        /* libsvm labels as -1/+1 half the time. */
        if (!libffm && dl_rng_below(rng, 2))
            fprintf(fp, "%s", positive ? "+1" : "-1");
        else
            fprintf(fp, "%d", positive);
        int n = (int)dl_rng_below(rng, 12);
        for (int k = 0; k < n; k++) {
            int32_t field = (int32_t)dl_rng_below(rng, 20);
            int32_t feature = (int32_t)(dl_rng_u32(rng) >> 1);
            float value = dl_rng_below(rng, 3) == 0 ? 1.0f : dl_rng_uniform(rng) * 10 - 5;
            ASSERT_OK(dl_i32_array_push(&row->field, field));
            ASSERT_OK(dl_i32_array_push(&row->feature, feature));
            ASSERT_OK(dl_f32_array_push(&row->value, value));
            if (libffm)
                fprintf(fp, "%s%d:%d:%.9g", dl_rng_below(rng, 4) ? " " : "\t ", field, feature, (double)value);
            else
                fprintf(fp, " %d:%.9g", feature, (double)value);
        }
        fprintf(fp, r % 5 == 0 ? " \r\n" : "\n");
        if (r % 7 == 3)
            fprintf(fp, "\n"); /* blank lines are skipped */
    }
    fclose(fp);
}

static void expect_rows(const char *path, const dl_click_row *want, int rows, int field_mode) {
    /* field_mode: 0 = as written (libffm), 1 = all zero, 2 = position */
    dl_record_file *f;
    ASSERT_OK(dl_record_file_open(&f, path));
    assert_int_equal(dl_record_file_count(f), rows);
    dl_click_row got = {0};
    for (int r = 0; r < rows; r++) {
        const uint8_t *p;
        size_t len;
        ASSERT_OK(dl_record_file_view(f, (uint64_t)r, &p, &len));
        ASSERT_OK(dl_example_decode_click(p, len, &got));
        if (got.label != want[r].label || got.feature.len != want[r].feature.len)
            DL_TEST_FAIL("%s row %d: label %g with %zu entries, want %g with %zu", path, r, (double)got.label,
                         got.feature.len, (double)want[r].label, want[r].feature.len);
        for (size_t k = 0; k < got.feature.len; k++) {
            int32_t field = field_mode == 0 ? want[r].field.data[k] : field_mode == 1 ? 0 : (int32_t)k;
            if (got.field.data[k] != field || got.feature.data[k] != want[r].feature.data[k] ||
                got.value.data[k] != want[r].value.data[k])
                DL_TEST_FAIL("%s row %d entry %zu: %d:%d:%.9g, want %d:%d:%.9g", path, r, k, got.field.data[k],
                             got.feature.data[k], (double)got.value.data[k], field, want[r].feature.data[k],
                             (double)want[r].value.data[k]);
        }
    }
    dl_click_row_free(&got);
    dl_record_file_close(f);
}

static void libffm_and_libsvm_round_trip(void **state) {
    (void)state;
    enum { ROWS = 300 };
    static dl_click_row rows[ROWS];
    dl_rng rng;
    dl_test_rng(&rng, 41);
    const char *ffm = in_dir("rows.ffm");
    random_click_file(ffm, 1, ROWS, rows, &rng);
    const char *inputs[] = {ffm};
    const char *out = in_dir("rows.tfrecord");
    dl_convert_options o = options(DL_CONVERT_LIBFFM, inputs, 1, out);
    dl_convert_result res;
    ASSERT_OK(dl_convert(&o, &res));
    assert_int_equal(res.records, ROWS);
    expect_rows(out, rows, ROWS, 0);
    for (int r = 0; r < ROWS; r++)
        dl_click_row_free(&rows[r]);

    const char *svm = in_dir("rows.svm");
    random_click_file(svm, 0, ROWS, rows, &rng);
    inputs[0] = svm;
    o.format = DL_CONVERT_LIBSVM;
    ASSERT_OK(dl_convert(&o, NULL));
    expect_rows(out, rows, ROWS, 1);
    o.libsvm_field_by_position = 1;
    ASSERT_OK(dl_convert(&o, NULL));
    expect_rows(out, rows, ROWS, 2);
    for (int r = 0; r < ROWS; r++)
        dl_click_row_free(&rows[r]);
}

static void criteo_sample_converts(void **state) {
    (void)state;
    /* The bundled libffm sample: 200 rows, 18 fields, 24% clicks (DESIGN data README). */
    const char *inputs[] = {DEALER_SOURCE_DIR "/data/criteo/small_train.txt"};
    const char *out = in_dir("criteo.tfrecord");
    dl_convert_options o = options(DL_CONVERT_LIBFFM, inputs, 1, out);
    ASSERT_OK(dl_convert(&o, NULL));
    dl_data_stats st;
    ASSERT_OK(dl_data_stat(out, &st));
    assert_int_equal(st.kind, DL_EXAMPLE_CLICK);
    assert_int_equal(st.records, 200);
    assert_true(st.entries.min == 17 && st.entries.max == 31); /* 17 or 18 entries mostly, a few rows more */
    assert_int_equal(st.distinct_fields, 18);
    double click_rate = (double)st.positives / (double)st.records;
    assert_true(click_rate > 0.2 && click_rate < 0.28);
    assert_true(st.distinct_features > 100 && st.distinct_features < 10000);
}

/* ---- pairs ----------------------------------------------------------------------------------------------------- */

static void jsonl_pairs_round_trip_as_utf8_bytes(void **state) {
    (void)state;
    const char *in = write_text("pairs.jsonl",
                                "{\"prompt\": \"caf\\u00e9?\", \"chosen\": \"yes \\\"quoted\\\"\", \"rejected\": \"no\\n\"}\n"
                                "\n"
                                "{\"rejected\": \"r\", \"chosen\": \"\xe2\x82\xac 5\", \"prompt\": \"\", \"id\": 7}\r\n");
    const char *inputs[] = {in};
    const char *out = in_dir("pairs.tfrecord");
    dl_convert_options o = options(DL_CONVERT_JSONL_PAIRS, inputs, 1, out);
    dl_convert_result res;
    ASSERT_OK(dl_convert(&o, &res));
    assert_int_equal(res.records, 2);
    assert_int_equal(res.blank_lines, 1);
    const char *want[2][3] = {{"caf\xc3\xa9?", "yes \"quoted\"", "no\n"}, {"", "\xe2\x82\xac 5", "r"}};
    dl_record_file *f;
    ASSERT_OK(dl_record_file_open(&f, out));
    dl_pref_pair pair = {0};
    for (int r = 0; r < 2; r++) {
        const uint8_t *p;
        size_t len;
        ASSERT_OK(dl_record_file_view(f, (uint64_t)r, &p, &len));
        ASSERT_OK(dl_example_decode_pair(p, len, &pair));
        const dl_i32_array *parts[3] = {&pair.prompt, &pair.chosen, &pair.rejected};
        for (int k = 0; k < 3; k++) {
            size_t n = strlen(want[r][k]);
            if (parts[k]->len != n)
                DL_TEST_FAIL("pair %d part %d: %zu tokens, want %zu", r, k, parts[k]->len, n);
            for (size_t i = 0; i < n; i++)
                assert_int_equal(parts[k]->data[i], (uint8_t)want[r][k][i]);
        }
    }
    assert_int_equal(res.tokens, 6 + 12 + 3 + 0 + 5 + 1);
    dl_pref_pair_free(&pair);
    dl_record_file_close(f);
    dl_data_stats st;
    ASSERT_OK(dl_data_stat(out, &st));
    assert_int_equal(st.kind, DL_EXAMPLE_PAIR);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.prompt.max, 6);
    assert_int_equal(st.chosen.min, 5);
}

/* ---- split ----------------------------------------------------------------------------------------------------- */

static void valid_split_is_deterministic_and_partitions_the_records(void **state) {
    (void)state;
    enum { LINES = 2000 };
    const char *in = in_dir("split.txt");
    FILE *fp = fopen(in, "w");
    for (int i = 0; i < LINES; i++)
        fprintf(fp, "line %d\n", i);
    fclose(fp);
    const char *inputs[] = {in};
    const char *train = in_dir("split_train.tfrecord"), *valid = in_dir("split_valid.tfrecord");
    dl_convert_options o = options(DL_CONVERT_TEXT, inputs, 1, train);
    o.doc_split = DL_DOC_SPLIT_LINE;
    o.valid_fraction = 0.25;
    o.valid_output = valid;
    o.seed = 77;
    dl_convert_result res;
    ASSERT_OK(dl_convert(&o, &res));
    assert_int_equal(res.records + res.valid_records, LINES);
    /* Binomial(2000, 0.25): mean 500, sd 19.4; 5 sd either way. */
    assert_true(res.valid_records > 403 && res.valid_records < 597);
    /* Every line sits in the file its Philox draw names, in input order. */
    docs t = read_docs(train), v = read_docs(valid);
    size_t ti = 0, vi = 0;
    for (int i = 0; i < LINES; i++) {
        char want[32];
        snprintf(want, sizeof want, "line %d", i);
        int is_valid = dl_convert_is_valid(77, (uint64_t)i, 0.25);
        docs *d = is_valid ? &v : &t;
        size_t *at = is_valid ? &vi : &ti;
        if (*at >= d->n || strcmp(d->text[*at], want) != 0)
            DL_TEST_FAIL("line %d missing from the %s file", i, is_valid ? "valid" : "train");
        (*at)++;
    }
    assert_int_equal(ti, t.n);
    assert_int_equal(vi, v.n);
    /* Same seed: the same bytes. Another seed: another split. */
    uint8_t *first, *again;
    size_t first_len, again_len;
    ASSERT_OK(dl_read_file(valid, &first, &first_len));
    ASSERT_OK(dl_convert(&o, NULL));
    ASSERT_OK(dl_read_file(valid, &again, &again_len));
    assert_int_equal(first_len, again_len);
    assert_memory_equal(first, again, first_len);
    free(again);
    o.seed = 78;
    ASSERT_OK(dl_convert(&o, NULL));
    ASSERT_OK(dl_read_file(valid, &again, &again_len));
    assert_true(again_len != first_len || memcmp(first, again, first_len) != 0);
    /* A larger fraction only adds to the valid set. */
    for (uint64_t k = 0; k < 5000; k++)
        if (dl_convert_is_valid(5, k, 0.05))
            assert_true(dl_convert_is_valid(5, k, 0.10));
    free(first);
    free(again);
    free_docs(&t);
    free_docs(&v);
}

/* ---- failures leave nothing ------------------------------------------------------------------------------------ */

static void expect_failure_leaves_nothing(dl_convert_options *o, dl_status want, const char *fragment,
                                          const char *fragment2) {
    dl_status s = dl_convert(o, NULL);
    if (s != want || !strstr(dl_error_message(), fragment) || (fragment2 && !strstr(dl_error_message(), fragment2)))
        DL_TEST_FAIL("got %s '%s', want %s mentioning '%s' and '%s'", dl_status_name(s), dl_error_message(),
                     dl_status_name(want), fragment, fragment2 ? fragment2 : "");
    const char *outs[2] = {o->output, o->valid_output};
    for (int k = 0; k < 2; k++) {
        if (!outs[k])
            continue;
        if (exists(outs[k]) || dl_test_tmp_count(outs[k]) || exists_suffix(outs[k], ".idx"))
            DL_TEST_FAIL("a failed conversion left %s (or its .tmp/.idx) behind", outs[k]);
    }
}

static void malformed_lines_fail_naming_file_line_and_column_with_no_output(void **state) {
    (void)state;
    const char *out = in_dir("bad.tfrecord"), *valid = in_dir("bad_valid.tfrecord");
    const char *ffm = write_text("bad.ffm", "1 0:1:1 1:2:1\n0 0:3:1\n\n1 0:4:1 2:x:1\n");
    const char *inputs[] = {ffm};
    dl_convert_options o = options(DL_CONVERT_LIBFFM, inputs, 1, out);
    o.valid_fraction = 0.5;
    o.valid_output = valid;
    char where[400];
    snprintf(where, sizeof where, "%s:4: column 9: token '2:x:1'", ffm);
    expect_failure_leaves_nothing(&o, DL_ERR_FORMAT, where, "feature 'x' is not an integer");

    const char *svm = write_text("bad.svm", "+1 3:1 7:0.5\n2 1:1\n");
    inputs[0] = svm;
    o.format = DL_CONVERT_LIBSVM;
    snprintf(where, sizeof where, "%s:2: column 1: label '2' is not a click label", svm);
    expect_failure_leaves_nothing(&o, DL_ERR_FORMAT, where, NULL);

    const char *jsonl = write_text("bad.jsonl", "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n"
                                                "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": 3}\n");
    inputs[0] = jsonl;
    o.format = DL_CONVERT_JSONL_PAIRS;
    snprintf(where, sizeof where, "%s:2: \"rejected\" must be a string", jsonl);
    expect_failure_leaves_nothing(&o, DL_ERR_FORMAT, where, NULL);

    const char *broken = write_text("broken.jsonl", "{\"prompt\": \"a\",, }\n");
    inputs[0] = broken;
    snprintf(where, sizeof where, "%s:1: column", broken);
    expect_failure_leaves_nothing(&o, DL_ERR_FORMAT, where, "invalid JSON");

    /* The second of two inputs fails: the first one's records are not written either. */
    const char *good = write_text("good.ffm", "1 0:1:1\n");
    const char *two[] = {good, ffm};
    o.inputs = two;
    o.num_inputs = 2;
    o.format = DL_CONVERT_LIBFFM;
    expect_failure_leaves_nothing(&o, DL_ERR_FORMAT, "bad.ffm:4", NULL);

    /* A missing input is an I/O error, again with nothing written. */
    const char *missing[] = {good, in_dir("no_such_file.ffm")};
    o.inputs = missing;
    expect_failure_leaves_nothing(&o, DL_ERR_INVALID, "no_such_file.ffm", "No such file");
}

static void failed_conversion_keeps_the_previous_output(void **state) {
    (void)state;
    const char *good = write_text("keep.ffm", "1 0:1:1\n0 1:2:3\n");
    const char *bad = write_text("keep_bad.ffm", "1 0:1\n");
    const char *out = in_dir("keep.tfrecord");
    const char *inputs[] = {good};
    dl_convert_options o = options(DL_CONVERT_LIBFFM, inputs, 1, out);
    ASSERT_OK(dl_convert(&o, NULL));
    inputs[0] = bad;
    assert_int_equal(dl_convert(&o, NULL), DL_ERR_FORMAT);
    assert_non_null(strstr(dl_error_message(), "this looks like libsvm"));
    assert_int_equal(dl_test_tmp_count(out), 0);
    dl_record_file *f;
    ASSERT_OK(dl_record_file_open(&f, out));
    assert_int_equal(dl_record_file_count(f), 2);
    assert_int_equal(dl_record_file_indexed(f), 1);
    dl_record_file_close(f);
}

static void bad_options_are_refused(void **state) {
    (void)state;
    const char *in = write_text("opt.txt", "x\n");
    const char *inputs[] = {in};
    const char *out = in_dir("opt.tfrecord");
    dl_convert_options o = options(DL_CONVERT_TEXT, inputs, 1, out);
    o.valid_fraction = 1.0;
    o.valid_output = in_dir("v.tfrecord");
    assert_int_equal(dl_convert(&o, NULL), DL_ERR_INVALID);
    o.valid_fraction = 0.1;
    o.valid_output = NULL;
    assert_int_equal(dl_convert(&o, NULL), DL_ERR_INVALID);
    o.valid_output = out;
    assert_int_equal(dl_convert(&o, NULL), DL_ERR_INVALID);
    o.valid_fraction = 0;
    o.num_inputs = 0;
    assert_int_equal(dl_convert(&o, NULL), DL_ERR_INVALID);
    o.num_inputs = 1;
    o.output = NULL;
    assert_int_equal(dl_convert(&o, NULL), DL_ERR_INVALID);
    dl_convert_format fmt;
    ASSERT_OK(dl_convert_parse_format("jsonl-pairs", &fmt));
    assert_int_equal(fmt, DL_CONVERT_JSONL_PAIRS);
    assert_string_equal(dl_convert_format_name(fmt), "jsonl-pairs");
    assert_int_equal(dl_convert_parse_format("csv", &fmt), DL_ERR_INVALID);
    dl_doc_split split;
    ASSERT_OK(dl_convert_parse_doc_split("file", &split));
    assert_int_equal(split, DL_DOC_SPLIT_FILE);
    assert_int_equal(dl_convert_parse_doc_split("para", &split), DL_ERR_INVALID);
    assert_false(exists(out));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shakespeare_gives_7222_speeches_whose_bytes_round_trip),
        cmocka_unit_test(text_split_modes),
        cmocka_unit_test(splitter_streams_line_by_line),
        cmocka_unit_test(libffm_and_libsvm_round_trip),
        cmocka_unit_test(criteo_sample_converts),
        cmocka_unit_test(jsonl_pairs_round_trip_as_utf8_bytes),
        cmocka_unit_test(valid_split_is_deterministic_and_partitions_the_records),
        cmocka_unit_test(malformed_lines_fail_naming_file_line_and_column_with_no_output),
        cmocka_unit_test(failed_conversion_keeps_the_previous_output),
        cmocka_unit_test(bad_options_are_refused),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
