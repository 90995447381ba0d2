/* test_timer.c — the monotonic clock and the stopwatch.
 *
 * Timing on a shared machine is noisy, so the checks are one-sided: a sleep of d takes at least d (CLOCK_MONOTONIC
 * never runs slow), and upper bounds are generous. */
#include "testutil.h"

#include <math.h>
#include <time.h>

#include "core/timer.h"

static void sleep_ns(long ns) {
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void clock_is_monotonic_and_consistent(void **state) {
    (void)state;
    uint64_t prev = dl_time_ns();
    assert_true(prev > 0);
    for (int i = 0; i < 100000; i++) {
        uint64_t now = dl_time_ns();
        if (now < prev)
            DL_TEST_FAIL("clock went back from %llu to %llu ns", (unsigned long long)prev, (unsigned long long)now);
        prev = now;
    }
    /* Seconds and nanoseconds read the same clock. */
    uint64_t a = dl_time_ns();
    double s = dl_time_seconds();
    uint64_t b = dl_time_ns();
    assert_true(s >= (double)a * 1e-9 - 1e-6 && s <= (double)b * 1e-9 + 1e-6);

    uint64_t t0 = dl_time_ns();
    sleep_ns(2000000);
    uint64_t t1 = dl_time_ns();
    assert_true(t1 - t0 >= 2000000);
    assert_true(t1 - t0 < 2000000000ull);
}

static void stopwatch_accumulates_intervals(void **state) {
    (void)state;
    dl_stopwatch sw;
    dl_stopwatch_reset(&sw);
    assert_int_equal(sw.intervals, 0);
    assert_true(dl_stopwatch_seconds(&sw) == 0.0);
    /* Stopping a stopwatch that is not running adds nothing. */
    assert_true(dl_stopwatch_stop(&sw) == 0.0);
    assert_int_equal(sw.intervals, 0);

    double sum = 0.0;
    uint64_t wall0 = dl_time_ns();
    for (int i = 0; i < 3; i++) {
        dl_stopwatch_start(&sw);
        sleep_ns(1000000);
        double dt = dl_stopwatch_stop(&sw);
        assert_true(dt >= 1e-3);
        sum += dt;
        /* Time between intervals is not counted. */
        sleep_ns(3000000);
    }
    uint64_t wall = dl_time_ns() - wall0;
    assert_int_equal(sw.intervals, 3);
    double total = dl_stopwatch_seconds(&sw);
    assert_true(total >= 3e-3);
    /* The total is the sum of the intervals, and the three 3 ms gaps between them are not in it. */
    assert_true(fabs(total - sum) < 1e-9);
    assert_true(wall - sw.total_ns >= 9000000);
    assert_true(dl_stopwatch_stop(&sw) == 0.0);
    assert_int_equal(sw.intervals, 3);

    dl_stopwatch_reset(&sw);
    assert_int_equal(sw.intervals, 0);
    assert_true(dl_stopwatch_seconds(&sw) == 0.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clock_is_monotonic_and_consistent),
        cmocka_unit_test(stopwatch_accumulates_intervals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
