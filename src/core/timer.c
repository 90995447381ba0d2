/* timer.c — see timer.h. */
#include "core/timer.h"

#include <time.h>

uint64_t dl_time_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double dl_time_seconds(void) { return (double)dl_time_ns() * 1e-9; }

void dl_stopwatch_reset(dl_stopwatch *sw) {
    sw->started_ns = 0;
    sw->total_ns = 0;
    sw->intervals = 0;
}

void dl_stopwatch_start(dl_stopwatch *sw) { sw->started_ns = dl_time_ns(); }

double dl_stopwatch_stop(dl_stopwatch *sw) {
    if (!sw->started_ns)
        return 0.0;
    uint64_t dt = dl_time_ns() - sw->started_ns;
    sw->started_ns = 0;
    sw->total_ns += dt;
    sw->intervals++;
    return (double)dt * 1e-9;
}

double dl_stopwatch_seconds(const dl_stopwatch *sw) { return (double)sw->total_ns * 1e-9; }
