/* test_memstat.c — fields of /proc/self/status: memory this test touches shows in the resident size, file pages
 * are part of it, and a field that is not there (or no field) answers -1, never a figure. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "core/memstat.h"

static void touched_memory_shows_in_the_resident_size(void **state) {
    (void)state;
    int64_t before = dl_memstat_kib("VmRSS:");
    assert_true(before > 0);
    enum { MIB = 64 };
    char *block = malloc((size_t)MIB << 20);
    assert_non_null(block);
    memset(block, 1, (size_t)MIB << 20);
    int64_t after = dl_memstat_kib("VmRSS:");
    int64_t peak = dl_memstat_kib("VmHWM:");
    /* Every page was written, so at least most of the 64 MiB is resident (the kernel may reclaim a few of the
     * process's other pages meanwhile: half is a margin no real count misses). */
    if (after - before < MIB * 1024 / 2)
        DL_TEST_FAIL("resident size grew %lld KiB after writing %d MiB", (long long)(after - before), MIB);
    assert_true(peak >= after);
    free(block);
    int64_t file = dl_memstat_kib("RssFile:"); /* the test's own code is mapped from its file */
    assert_true(file > 0 && file <= dl_memstat_kib("VmRSS:"));
}

static void a_missing_field_answers_minus_one(void **state) {
    (void)state;
    assert_int_equal(dl_memstat_kib("NoSuchField:"), -1);
    assert_int_equal(dl_memstat_kib(NULL), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(touched_memory_shows_in_the_resident_size),
        cmocka_unit_test(a_missing_field_answers_minus_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
