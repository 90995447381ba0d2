/* test_status.c — the error record: DL_FAIL, contexts, hints, truncation, exit codes and thread isolation. */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/status.h"

static int fail_line; /* the line of the DL_FAIL in parse_record, for the location check */

static dl_status parse_record(int byte) {
    fail_line = __LINE__ + 1;
    return DL_FAIL(DL_ERR_FORMAT, "bad varint at byte %d", byte);
}

static dl_status read_record(int index) {
    DL_CHECK_CTX(parse_record(12), "record %d", index);
    return DL_OK;
}

static dl_status load_file(const char *path) {
    DL_CHECK_CTX(read_record(3), "reading %s", path);
    return DL_OK;
}

static dl_status passes_through(dl_status s) {
    DL_CHECK(s == DL_OK ? DL_OK : DL_FAIL(s, "inner"));
    return DL_OK;
}

static dl_status require_positive(int n) {
    DL_REQUIRE(n > 0, DL_ERR_INVALID, "n must be positive (got %d)", n);
    return DL_OK;
}

static void fail_records_code_message_and_location(void **state) {
    (void)state;
    dl_error_clear();
    assert_int_equal(dl_error_status(), DL_OK);
    assert_string_equal(dl_error_message(), "");
    assert_int_equal(parse_record(7), DL_ERR_FORMAT);
    assert_int_equal(dl_error_status(), DL_ERR_FORMAT);
    assert_string_equal(dl_error_message(), "bad varint at byte 7");
    char where[64];
    snprintf(where, sizeof where, "test_status.c:%d", fail_line);
    const char *loc = dl_error_location();
    if (!strstr(loc, where))
        DL_TEST_FAIL("location \"%s\" does not end with \"%s\"", loc, where);
    /* A later failure replaces the earlier one. */
    assert_int_equal(require_positive(-3), DL_ERR_INVALID);
    assert_string_equal(dl_error_message(), "n must be positive (got -3)");
    assert_int_equal(require_positive(2), DL_OK);
    dl_error_clear();
    assert_int_equal(dl_error_status(), DL_OK);
    assert_string_equal(dl_error_message(), "");
    assert_string_equal(dl_error_location(), "");
}

static void check_passes_status_through(void **state) {
    (void)state;
    assert_int_equal(passes_through(DL_OK), DL_OK);
    assert_int_equal(passes_through(DL_ERR_IO), DL_ERR_IO);
    assert_string_equal(dl_error_message(), "inner");
    dl_error_clear();
}

static void contexts_are_prepended_outermost_first(void **state) {
    (void)state;
    assert_int_equal(load_file("train.tfrecord"), DL_ERR_FORMAT);
    assert_string_equal(dl_error_message(), "reading train.tfrecord: record 3: bad varint at byte 12");
    /* The location stays the innermost failure's. */
    char where[64];
    snprintf(where, sizeof where, "test_status.c:%d", fail_line);
    assert_non_null(strstr(dl_error_location(), where));
    /* A context with no recorded message (a callee that returned a bare status) stands alone. */
    dl_error_clear();
    dl_error_context("loading %s", "ckpt");
    assert_string_equal(dl_error_message(), "loading ckpt");
    dl_error_clear();
}

static void hints_appear_after_the_message(void **state) {
    (void)state;
    DL_FAIL(DL_ERR_IO, "cannot open %s", "run/ckpt/latest");
    dl_error_hint("pass train.resume=never to start %s", "fresh");
    dl_error_context("resuming");
    assert_string_equal(dl_error_message(),
                        "resuming: cannot open run/ckpt/latest (hint: pass train.resume=never to start fresh)");
    /* A new failure drops the old hint. */
    DL_FAIL(DL_ERR_IO, "disk full");
    assert_string_equal(dl_error_message(), "disk full");
    dl_error_clear();
}

/* Fails unless s is at most max characters and ends with "...". */
static void assert_cut(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n > max || n < 3 || strcmp(s + n - 3, "...") != 0)
        DL_TEST_FAIL("expected a string of at most %zu characters ending in \"...\", got %zu ending \"%s\"", max, n,
                     n > 10 ? s + n - 10 : s);
}

static void long_messages_are_cut_with_ellipsis(void **state) {
    (void)state;
    static char big[6000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';

    /* A message longer than the record. */
    DL_FAIL(DL_ERR_RUNTIME, "%s", big);
    assert_cut(dl_error_message(), 2047);
    assert_int_equal(strncmp(dl_error_message(), "xxxx", 4), 0);

    /* A context that pushes a full message over: the front (the context) survives, the end is cut. */
    DL_FAIL(DL_ERR_RUNTIME, "%.2040s", big);
    dl_error_context("step %d", 42);
    assert_cut(dl_error_message(), 2047);
    assert_int_equal(strncmp(dl_error_message(), "step 42: xxx", 12), 0);

    /* A context longer than the record on its own. */
    DL_FAIL(DL_ERR_RUNTIME, "short");
    dl_error_context("%s", big);
    assert_cut(dl_error_message(), 2047);

    /* A long hint: the composed line holds message and (cut) hint, and stays terminated. */
    DL_FAIL(DL_ERR_RUNTIME, "bad value");
    dl_error_hint("%s", big);
    const char *msg = dl_error_message();
    assert_int_equal(strncmp(msg, "bad value (hint: xxx", 20), 0);
    assert_true(strstr(msg, "...") != NULL);
    assert_true(strlen(msg) < 2048 + 512 + 16);

    /* Message and hint both at capacity. */
    DL_FAIL(DL_ERR_RUNTIME, "%s", big);
    dl_error_hint("%s", big);
    assert_true(strlen(dl_error_message()) < 2048 + 512 + 16);
    assert_true(strstr(dl_error_message(), "...") != NULL);
    dl_error_clear();
}

static void exit_codes_and_names(void **state) {
    (void)state;
    assert_int_equal(dl_status_exit_code(DL_OK), 0);
    const dl_status bad_input[] = {DL_ERR_INVALID, DL_ERR_CONFIG, DL_ERR_FORMAT, DL_ERR_UNSUPPORTED,
                                   DL_ERR_NOT_IMPLEMENTED};
    for (size_t i = 0; i < sizeof bad_input / sizeof bad_input[0]; i++)
        assert_int_equal(dl_status_exit_code(bad_input[i]), 2);
    const dl_status failures[] = {DL_ERR_IO, DL_ERR_NOMEM, DL_ERR_RUNTIME, DL_ERR_COMM, DL_ERR_DEVICE};
    for (size_t i = 0; i < sizeof failures / sizeof failures[0]; i++)
        assert_int_equal(dl_status_exit_code(failures[i]), 1);
    assert_int_equal(dl_status_exit_code(DL_ERR_INTERRUPTED), 75);
    assert_int_equal(dl_status_exit_code((dl_status)-99), 1);
    assert_string_equal(dl_status_name(DL_OK), "ok");
    assert_string_equal(dl_status_name(DL_ERR_INVALID), "invalid");
    assert_string_equal(dl_status_name(DL_ERR_IO), "io");
    assert_string_equal(dl_status_name(DL_ERR_INTERRUPTED), "interrupted");
    assert_string_equal(dl_status_name((dl_status)-99), "unknown");
}

typedef struct thread_result {
    dl_status seen_before; /* the thread's record when it starts */
    char message[128];
} thread_result;

static void *fail_in_thread(void *arg) {
    thread_result *r = arg;
    r->seen_before = dl_error_status();
    DL_FAIL(DL_ERR_COMM, "rank 1 timed out");
    dl_error_context("all-reduce");
    snprintf(r->message, sizeof r->message, "%s", dl_error_message());
    return NULL;
}

static void errors_are_thread_local(void **state) {
    (void)state;
    DL_FAIL(DL_ERR_IO, "main thread failure");
    thread_result r = {0};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, fail_in_thread, &r), 0);
    assert_int_equal(pthread_join(thread, NULL), 0);
    /* The worker started clean and kept its failure to itself. */
    assert_int_equal(r.seen_before, DL_OK);
    assert_string_equal(r.message, "all-reduce: rank 1 timed out");
    assert_int_equal(dl_error_status(), DL_ERR_IO);
    assert_string_equal(dl_error_message(), "main thread failure");
    dl_error_clear();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fail_records_code_message_and_location),
        cmocka_unit_test(check_passes_status_through),
        cmocka_unit_test(contexts_are_prepended_outermost_first),
        cmocka_unit_test(hints_appear_after_the_message),
        cmocka_unit_test(long_messages_are_cut_with_ellipsis),
        cmocka_unit_test(exit_codes_and_names),
        cmocka_unit_test(errors_are_thread_local),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
