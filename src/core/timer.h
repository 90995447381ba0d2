/* timer.h — monotonic wall-clock time for step timing and benchmarks. */
#ifndef DL_CORE_TIMER_H
#define DL_CORE_TIMER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Seconds from an arbitrary fixed point (CLOCK_MONOTONIC): only differences mean anything. */
double dl_time_seconds(void);
/* Nanoseconds, same clock. */
uint64_t dl_time_ns(void);

/* Accumulates the time between start and stop over many intervals (e.g. communication time per step). */
typedef struct dl_stopwatch {
    uint64_t started_ns; /* 0 when not running */
    uint64_t total_ns;
    uint64_t intervals;
} dl_stopwatch;

void dl_stopwatch_reset(dl_stopwatch *sw);
void dl_stopwatch_start(dl_stopwatch *sw);
/* Stops and adds the interval; returns its length in seconds (0 when it was not running). */
double dl_stopwatch_stop(dl_stopwatch *sw);
double dl_stopwatch_seconds(const dl_stopwatch *sw);

#ifdef __cplusplus
}
#endif

#endif
