/* test_names.c — looking names up in a fixed table, and the nearest name offered for a misspelt one (core/names.h):
 * what `dealer CMD --tokenzier` and a misspelt config key are answered with. */
#include "testutil.h"

#include <string.h>

#include "core/names.h"

static const char *const options[] = {"format", "output", "tokenizer", "threads", "valid-fraction", "valid-out", "seed"};
enum { NUM_OPTIONS = sizeof options / sizeof options[0] };

static void lookup_finds_exact_names_only(void **state) {
    (void)state;
    int index = -1;
    DL_EXPECT_OK(dl_name_lookup("tokenizer", options, NUM_OPTIONS, "option", &index));
    assert_int_equal(index, 2);
    DL_EXPECT_INVALID(dl_name_lookup("Tokenizer", options, NUM_OPTIONS, "option", &index));
    DL_EXPECT_INVALID(dl_name_lookup("token", options, NUM_OPTIONS, "option", &index));
    assert_non_null(strstr(dl_error_message(), "unknown option 'token' (known: format, output, tokenizer"));
    DL_EXPECT_INVALID(dl_name_lookup(NULL, options, NUM_OPTIONS, "option", &index));
}

static void nearest_offers_slips_of_the_keyboard(void **state) {
    (void)state;
    /* A transposition, a dropped letter, a doubled letter, a case slip: one or two edits. */
    assert_string_equal(dl_name_nearest("tokenzier", options, NUM_OPTIONS), "tokenizer");
    assert_string_equal(dl_name_nearest("fromat", options, NUM_OPTIONS), "format");
    assert_string_equal(dl_name_nearest("outpt", options, NUM_OPTIONS), "output");
    assert_string_equal(dl_name_nearest("seeed", options, NUM_OPTIONS), "seed");
    assert_string_equal(dl_name_nearest("Threads", options, NUM_OPTIONS), "threads");
    assert_string_equal(dl_name_nearest("valid-fractoin", options, NUM_OPTIONS), "valid-fraction");
    /* A short prefix is a slip; half a name, or nothing alike, is offered nothing rather than a guess. */
    assert_string_equal(dl_name_nearest("form", options, NUM_OPTIONS), "format");
    assert_null(dl_name_nearest("out", options, NUM_OPTIONS));
    assert_null(dl_name_nearest("bogus-flag", options, NUM_OPTIONS));
    assert_null(dl_name_nearest("x", options, NUM_OPTIONS));
    /* Ties go to the first entry of the table: the order a command lists its options in. */
    static const char *const pair[] = {"abc", "abd"};
    assert_string_equal(dl_name_nearest("abx", pair, 2), "abc");
    /* NULL entries are passed over; no table, no name or no entries: nothing. */
    static const char *const holes[] = {NULL, "output", NULL};
    assert_string_equal(dl_name_nearest("outptu", holes, 3), "output");
    assert_null(dl_name_nearest(NULL, options, NUM_OPTIONS));
    assert_null(dl_name_nearest("output", NULL, 3));
    assert_null(dl_name_nearest("output", options, 0));
}

static void close_enough_scales_with_length(void **state) {
    (void)state;
    /* About one edit in three characters, and never as many edits as the longer name has characters. */
    assert_true(dl_name_close_enough("ab", "ac", 1));
    assert_false(dl_name_close_enough("ab", "cd", 2));
    assert_true(dl_name_close_enough("tokenzier", "tokenizer", 2));
    assert_true(dl_name_close_enough("valid-frac", "valid-fraction", 3));
    assert_false(dl_name_close_enough("valid-f", "valid-fraction", 7));
    assert_false(dl_name_close_enough("x", "y", 1));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lookup_finds_exact_names_only),
        cmocka_unit_test(nearest_offers_slips_of_the_keyboard),
        cmocka_unit_test(close_enough_scales_with_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
