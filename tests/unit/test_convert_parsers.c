/* test_convert_parsers.c — the line parsers on their own (good lines, every kind of bad line and the message it
 * gets), byte tokenisation, the order statistics and histogram buckets behind `dealer data stat`, and the
 * progress line. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "data/convert.h"
#include "data/stat.h"

#define ASSERT_OK(expr)                                                                                          \
    do {                                                                                                         \
        dl_status s_ = (expr);                                                                                   \
        if (s_ != DL_OK)                                                                                         \
            DL_TEST_FAIL("%s failed: %s", #expr, dl_error_message());                                            \
    } while (0)

/* Parses `line` as libffm (fmt 0), libsvm (1), libsvm by position (2) or a pair (3) and expects a format error
 * whose message holds `fragment`. */
static void expect_bad(int fmt, const char *line, const char *fragment) {
    dl_click_row row = {0};
    dl_pref_pair pair = {0};
    size_t len = strlen(line);
    dl_status s = fmt == 0   ? dl_parse_libffm_line(line, len, &row)
                  : fmt == 1 ? dl_parse_libsvm_line(line, len, 0, &row)
                  : fmt == 2 ? dl_parse_libsvm_line(line, len, 1, &row)
                             : dl_parse_pair_json(line, len, &pair);
    if (s != DL_ERR_FORMAT || !strstr(dl_error_message(), fragment))
        DL_TEST_FAIL("parsing '%s': got %s '%s', want a format error with '%s'", line, dl_status_name(s),
                     dl_error_message(), fragment);
    dl_click_row_free(&row);
    dl_pref_pair_free(&pair);
}

static void libffm_lines_parse(void **state) {
    (void)state;
    dl_click_row row = {0};
    const char *line = "1 0:17:0.5\t3:4294967296:1e-3  2:0:-2 ";
    ASSERT_OK(dl_parse_libffm_line(line, strlen(line), &row));
    assert_true(row.label == 1.0f);
    assert_int_equal(row.feature.len, 3);
    assert_int_equal(row.field.data[1], 3);
    assert_int_equal(row.feature.data[0], 17);
    assert_int_equal(row.feature.data[1], dl_feature_id_fold(4294967296ll)); /* wide ids fold */
    assert_int_equal(row.feature.data[2], 0);
    assert_true(row.value.data[0] == 0.5f && row.value.data[1] == 1e-3f && row.value.data[2] == -2.0f);
    /* The parser reads only `len` bytes: what follows is ignored, and the row is reset per call. */
    const char *prefix = "0 5:6:7 9:9:9";
    ASSERT_OK(dl_parse_libffm_line(prefix, 7, &row));
    assert_true(row.label == 0.0f);
    assert_int_equal(row.feature.len, 1);
    assert_int_equal(row.feature.data[0], 6);
    /* A label alone is a row with no entries; -1 and 1.0 are labels too. */
    ASSERT_OK(dl_parse_libffm_line("-1", 2, &row));
    assert_true(row.label == 0.0f);
    assert_int_equal(row.feature.len, 0);
    ASSERT_OK(dl_parse_libffm_line("1.0 0:1:1", 9, &row));
    assert_true(row.label == 1.0f);
    dl_click_row_free(&row);
}

static void libffm_bad_lines_name_column_and_token(void **state) {
    (void)state;
    expect_bad(0, "", "empty line: expected a label");
    expect_bad(0, "   ", "empty line");
    expect_bad(0, "yes 0:1:1", "column 1: label 'yes' is not a number");
    expect_bad(0, "0.5 0:1:1", "label '0.5' is not a click label (0, 1 or -1)");
    expect_bad(0, "nan 0:1:1", "label 'nan' is not a number");
    expect_bad(0, "1 0:1", "column 3: token '0:1': expected field:feature:value");
    expect_bad(0, "1 0:1:1:1", "expected field:feature:value");
    expect_bad(0, "1 0:1:1 -1:2:1", "column 9: token '-1:2:1': field '-1' is not an integer in [0, 2^31)");
    expect_bad(0, "1 2147483648:2:1", "field '2147483648' is not an integer");
    expect_bad(0, "1 0:99999999999999999999:1", "feature '99999999999999999999' is not an integer in [0, 2^63)");
    expect_bad(0, "1 0::1", "feature '' is not an integer");
    expect_bad(0, "1 0:1:abc", "value 'abc' is not a finite number");
    expect_bad(0, "1 0:1:inf", "value 'inf' is not a finite number");
    expect_bad(0, "1 0:1:1e999", "value '1e999' is not a finite number");
    expect_bad(0, "1 0:1:1e39", "value '1e39' is not a finite number"); /* finite double, not a finite float */
    expect_bad(0, "1 0:1:0x10", "value '0x10' is not a finite number");
    expect_bad(0, "1 0:1:", "value '' is not a finite number");
    /* Unprintable bytes are escaped in messages. */
    expect_bad(0, "1 0:\x01:1", "token '0:\\x01:1'");
    /* The hint points at the other format. */
    expect_bad(0, "1 3:1", "expected field:feature:value");
    assert_non_null(strstr(dl_error_message(), "use --format libsvm"));
}

static void libsvm_lines_parse_with_either_field_rule(void **state) {
    (void)state;
    dl_click_row row = {0};
    const char *line = "+1 10:1 20:0.5 7:2";
    ASSERT_OK(dl_parse_libsvm_line(line, strlen(line), 0, &row));
    assert_true(row.label == 1.0f);
    assert_int_equal(row.feature.len, 3);
    for (int k = 0; k < 3; k++)
        assert_int_equal(row.field.data[k], 0);
    assert_int_equal(row.feature.data[2], 7);
    ASSERT_OK(dl_parse_libsvm_line(line, strlen(line), 1, &row));
    for (int k = 0; k < 3; k++)
        assert_int_equal(row.field.data[k], k);
    expect_bad(1, "-1 1:1 2:3:4", "column 8: token '2:3:4': expected feature:value");
    assert_non_null(strstr(dl_error_message(), "use --format libffm"));
    expect_bad(1, "3 1:1", "label '3' is not a click label");
    expect_bad(2, "1 a:1", "feature 'a' is not an integer");
    expect_bad(1, "1 1:", "value '' is not a finite number");
    expect_bad(1, "1 qid:3 1:1", "feature 'qid' is not an integer");
    dl_click_row_free(&row);
}

static void pair_lines_parse_and_fail_clearly(void **state) {
    (void)state;
    dl_pref_pair pair = {0};
    const char *line = "{\"chosen\": \"b\\u00fc\", \"prompt\": \"\", \"rejected\": \"c\", \"meta\": [1, 2]}";
    ASSERT_OK(dl_parse_pair_json(line, strlen(line), &pair));
    assert_int_equal(pair.prompt.len, 0);
    assert_int_equal(pair.chosen.len, 3); /* b, 0xc3, 0xbc */
    assert_int_equal(pair.chosen.data[1], 0xc3);
    assert_int_equal(pair.chosen.data[2], 0xbc);
    assert_int_equal(pair.rejected.len, 1);
    expect_bad(3, "", "invalid JSON");
    expect_bad(3, "[1, 2]", "expected a JSON object");
    expect_bad(3, "{\"prompt\": \"a\", \"chosen\": \"b\"}", "missing \"rejected\"");
    expect_bad(3, "{\"prompt\": 1, \"chosen\": \"b\", \"rejected\": \"c\"}", "\"prompt\" must be a string");
    /* conversational lists must be on both sides and hold {"role", "content"} messages */
    expect_bad(3, "{\"prompt\": \"a\", \"chosen\": [{\"role\": \"user\", \"content\": \"b\"}], \"rejected\": \"c\"}",
               "\"rejected\" must be a message list like \"chosen\", not a string");
    expect_bad(3, "{\"chosen\": [{\"role\": \"user\"}], \"rejected\": [{\"role\": \"user\", \"content\": \"x\"}]}",
               "\"chosen\" message 1 has no string \"content\"");
    expect_bad(3, "{\"chosen\": [], \"rejected\": [{\"role\": \"user\", \"content\": \"x\"}]}",
               "\"chosen\" is an empty message list");
    expect_bad(3, "{\"chosen\": [{\"role\": \"u\", \"content\": \"x\"}], \"rejected\": [{\"role\": \"u\", \"content\": \"x\"}]}",
               "are the same conversation");
    expect_bad(3, "{\"prompt\": \"a\", \"chosen\": \"\", \"rejected\": \"c\"}", "\"chosen\" is empty");
    expect_bad(3, "{\"prompt\": \"a\", \"chosen\": \"b\", \"chosen\": \"x\", \"rejected\": \"c\"}", "invalid JSON");
    expect_bad(3, "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"} {}", "invalid JSON");
    /* jansson reports the column where the bad token ends, and the token. */
    expect_bad(3, "{\"prompt\": \"a\" \"chosen\": \"b\"}", "column 23: invalid JSON: '}' expected near '\"chosen\"'");
    /* Only `len` bytes are read: a cut line is broken JSON, not a read past the end. */
    assert_int_equal(dl_parse_pair_json("{\"prompt\": \"a\"}", 12, &pair), DL_ERR_FORMAT);
    assert_non_null(strstr(dl_error_message(), "invalid JSON"));
    ASSERT_OK(dl_parse_pair_json("{\"prompt\":\"\",\"chosen\":\"x\",\"rejected\":\"y\"}garbage", 41, &pair));
    assert_int_equal(pair.chosen.data[0], 'x');
    dl_pref_pair_free(&pair);
}

static void bytes_tokenise_one_to_one(void **state) {
    (void)state;
    dl_i32_array t = {0};
    const uint8_t bytes[] = {0, 'A', 0x80, 0xff};
    ASSERT_OK(dl_tokenize_bytes(bytes, 4, &t));
    assert_int_equal(t.len, 4);
    assert_int_equal(t.data[0], 0);
    assert_int_equal(t.data[1], 'A');
    assert_int_equal(t.data[2], 0x80);
    assert_int_equal(t.data[3], 0xff);
    ASSERT_OK(dl_tokenize_bytes(NULL, 0, &t));
    assert_int_equal(t.len, 0);
    assert_true(dl_line_is_blank(" \t\r\n", 4));
    assert_true(dl_line_is_blank("", 0));
    assert_false(dl_line_is_blank(" x ", 3));
    dl_i32_array_free(&t);
}

static void length_stats_use_nearest_rank(void **state) {
    (void)state;
    uint32_t v[] = {9, 1, 5, 3, 7, 2, 8, 4, 6, 10};
    dl_length_stats st;
    dl_length_stats_compute(v, 10, &st);
    assert_int_equal(st.count, 10);
    assert_int_equal(st.total, 55);
    assert_int_equal(st.min, 1);
    assert_int_equal(st.median, 5); /* ceil(0.5 * 10) = 5th smallest */
    assert_int_equal(st.p90, 9);    /* ceil(0.9 * 10) = 9th smallest */
    assert_int_equal(st.max, 10);
    assert_true(st.mean == 5.5);
    uint32_t one[] = {42};
    dl_length_stats_compute(one, 1, &st);
    assert_true(st.min == 42 && st.median == 42 && st.p90 == 42 && st.max == 42);
    dl_length_stats_compute(NULL, 0, &st);
    assert_int_equal(st.count, 0);
    assert_int_equal(dl_stat_bucket(0), 0);
    assert_int_equal(dl_stat_bucket(1), 1);
    assert_int_equal(dl_stat_bucket(2), 2);
    assert_int_equal(dl_stat_bucket(3), 2);
    assert_int_equal(dl_stat_bucket(4), 3);
    assert_int_equal(dl_stat_bucket(83), 7); /* [64, 128) */
    assert_int_equal(dl_stat_bucket(UINT64_MAX), DL_STAT_HIST_BUCKETS - 1);
}

static void progress_line_shows_count_rate_and_eta(void **state) {
    (void)state;
    char line[256];
    dl_progress_format(line, sizeof line, "convert", 50000000, 100000000, 1, "records", 1234567, 10.0, 10);
    assert_string_equal(line, "convert  [#####.....]  50%  50.0 MB/100.0 MB  5.0 MB/s  1,234,567 records  ETA 0:10");
    dl_progress_format(line, sizeof line, "index", 3000, 0, 0, NULL, 0, 2.0, 10);
    assert_string_equal(line, "index  3,000  1.5K/s");
    dl_progress_format(line, sizeof line, "convert", 100, 100, 0, "docs", 7, 3725.0, 4);
    assert_string_equal(line, "convert  [####] 100%  100/100  0/s  7 docs  in 1:02:05");
    /* A tiny buffer is cut, never overrun. */
    char tiny[8];
    size_t n = dl_progress_format(tiny, sizeof tiny, "convert", 1, 2, 1, "records", 1, 1.0, 10);
    assert_true(n < sizeof tiny);
    assert_int_equal(strlen(tiny), n);
    /* DEALER_PROGRESS=0 turns the bar off even on a terminal (off one, as under ctest, it is off anyway). */
    setenv("DEALER_PROGRESS", "0", 1);
    dl_progress p;
    dl_progress_begin(&p, "test", 10, 0, NULL);
    assert_int_equal(p.enabled, 0);
    dl_progress_update(&p, 5, 0);
    dl_progress_end(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(libffm_lines_parse),
        cmocka_unit_test(libffm_bad_lines_name_column_and_token),
        cmocka_unit_test(libsvm_lines_parse_with_either_field_rule),
        cmocka_unit_test(pair_lines_parse_and_fail_clearly),
        cmocka_unit_test(bytes_tokenise_one_to_one),
        cmocka_unit_test(length_stats_use_nearest_rank),
        cmocka_unit_test(progress_line_shows_count_rate_and_eta),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
