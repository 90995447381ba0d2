/* test_log.c — level filtering, the rank prefix, quiet non-zero ranks, DEALER_LOG, long lines.
 *
 * stderr is captured by pointing file descriptor 2 at a temporary file for the duration of one check. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

static int saved_stderr = -1;
static FILE *capture_file;

static void capture_begin(void) {
    fflush(stderr);
    capture_file = tmpfile();
    assert_non_null(capture_file);
    saved_stderr = dup(STDERR_FILENO);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(fileno(capture_file), STDERR_FILENO) >= 0);
}

/* Restores stderr and returns what was written meanwhile (caller frees). */
static char *capture_end(void) {
    fflush(stderr);
    assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
    close(saved_stderr);
    saved_stderr = -1;
    /* The writes went to the descriptor, around the FILE's buffer: ask the file itself how long it is. */
    assert_int_equal(fseek(capture_file, 0, SEEK_END), 0);
    long size = ftell(capture_file);
    assert_true(size >= 0);
    rewind(capture_file);
    char *text = calloc((size_t)size + 1, 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)size, capture_file), (size_t)size);
    fclose(capture_file);
    capture_file = NULL;
    return text;
}

/* Every test starts from the defaults: INFO, no rank. */
static int reset_log(void **state) {
    (void)state;
    dl_log_set_level(DL_LOG_INFO);
    dl_log_set_rank(-1, 0);
    return 0;
}

static void assert_text(const char *got, const char *want) {
    if (strcmp(got, want) != 0)
        DL_TEST_FAIL("captured stderr:\n%s\nwanted:\n%s", got, want);
}

static void level_filters_lower_levels(void **state) {
    (void)state;
    dl_log_set_level(DL_LOG_WARN);
    assert_int_equal(dl_log_get_level(), DL_LOG_WARN);
    capture_begin();
    DL_DEBUG("debug %d", 1);
    DL_INFO("info %d", 2);
    DL_WARN("warn %d", 3);
    DL_ERROR("error %d", 4);
    char *text = capture_end();
    assert_text(text, "[dealer WARN] warn 3\n[dealer ERROR] error 4\n");
    free(text);

    dl_log_set_level(DL_LOG_DEBUG);
    capture_begin();
    DL_DEBUG("d");
    DL_INFO("i");
    text = capture_end();
    assert_text(text, "[dealer DEBUG] d\n[dealer INFO] i\n");
    free(text);
}

static void rank_prefix_and_quiet_ranks(void **state) {
    (void)state;
    dl_log_set_level(DL_LOG_DEBUG);
    dl_log_set_rank(0, 0);
    capture_begin();
    DL_INFO("step %d", 10);
    DL_DEBUG("detail");
    char *text = capture_end();
    assert_text(text, "[dealer r0 INFO] step 10\n[dealer r0 DEBUG] detail\n");
    free(text);

    /* Rank 2 prints only warnings and errors, even at DEBUG. */
    dl_log_set_rank(2, 0);
    capture_begin();
    DL_DEBUG("detail");
    DL_INFO("step %d", 10);
    DL_WARN("slow collective");
    DL_ERROR("timed out");
    text = capture_end();
    assert_text(text, "[dealer r2 WARN] slow collective\n[dealer r2 ERROR] timed out\n");
    free(text);

    /* Unless every rank is asked to print. */
    dl_log_set_rank(2, 1);
    capture_begin();
    DL_INFO("step %d", 11);
    text = capture_end();
    assert_text(text, "[dealer r2 INFO] step 11\n");
    free(text);

    /* The level still applies to the loud ranks. */
    dl_log_set_level(DL_LOG_ERROR);
    capture_begin();
    DL_WARN("hidden");
    DL_ERROR("shown");
    text = capture_end();
    assert_text(text, "[dealer r2 ERROR] shown\n");
    free(text);
}

static void levels_parse_and_come_from_the_environment(void **state) {
    (void)state;
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        dl_log_level level = DL_LOG_ERROR;
        assert_int_equal(dl_log_parse_level(names[i], &level), 0);
        assert_int_equal(level, (dl_log_level)i);
    }
    dl_log_level level = DL_LOG_INFO;
    assert_int_equal(dl_log_parse_level("WARN", &level), -1);
    assert_int_equal(dl_log_parse_level("verbose", &level), -1);
    assert_int_equal(dl_log_parse_level(NULL, &level), -1);
    assert_int_equal(dl_log_parse_level("info", NULL), -1);
    assert_int_equal(level, DL_LOG_INFO);

    assert_int_equal(setenv("DEALER_LOG", "debug", 1), 0);
    assert_int_equal(dl_log_init_from_env(), 0);
    assert_int_equal(dl_log_get_level(), DL_LOG_DEBUG);
    /* An unknown value is reported and leaves the level alone. */
    assert_int_equal(setenv("DEALER_LOG", "loud", 1), 0);
    assert_int_equal(dl_log_init_from_env(), -1);
    assert_int_equal(dl_log_get_level(), DL_LOG_DEBUG);
    assert_int_equal(setenv("DEALER_LOG", "", 1), 0);
    assert_int_equal(dl_log_init_from_env(), 0);
    assert_int_equal(dl_log_get_level(), DL_LOG_DEBUG);
    assert_int_equal(unsetenv("DEALER_LOG"), 0);
    assert_int_equal(dl_log_init_from_env(), 0);
    assert_int_equal(dl_log_get_level(), DL_LOG_DEBUG);
}

static void long_lines_are_cut_and_stay_one_line(void **state) {
    (void)state;
    static char big[10000];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    capture_begin();
    DL_WARN("%s", big);
    DL_WARN("after");
    char *text = capture_end();
    char *newline = strchr(text, '\n');
    assert_non_null(newline);
    size_t first = (size_t)(newline - text);
    assert_true(first < 4096);
    assert_int_equal(strncmp(text, "[dealer WARN] yyy", 17), 0);
    assert_int_equal(strncmp(newline - 3, "...", 3), 0);
    assert_string_equal(newline + 1, "[dealer WARN] after\n");
    free(text);
}

static void out_of_range_levels_are_clamped(void **state) {
    (void)state;
    dl_log_set_level((dl_log_level)17);
    assert_int_equal(dl_log_get_level(), DL_LOG_ERROR);
    dl_log_set_level(DL_LOG_DEBUG);
    capture_begin();
    dl_log((dl_log_level)9, "too high");
    dl_log((dl_log_level)-4, "too low");
    char *text = capture_end();
    assert_text(text, "[dealer ERROR] too high\n[dealer DEBUG] too low\n");
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(level_filters_lower_levels, reset_log),
        cmocka_unit_test_setup(rank_prefix_and_quiet_ranks, reset_log),
        cmocka_unit_test_setup(levels_parse_and_come_from_the_environment, reset_log),
        cmocka_unit_test_setup(long_lines_are_cut_and_stay_one_line, reset_log),
        cmocka_unit_test_setup(out_of_range_levels_are_clamped, reset_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
