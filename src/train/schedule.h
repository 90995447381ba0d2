/* schedule.h — learning-rate schedules: constant, linear warmup then cosine / linear decay to a floor, and
 * inverse square root. A pure function of the step, so a resumed run continues the same curve. */
#ifndef DL_TRAIN_SCHEDULE_H
#define DL_TRAIN_SCHEDULE_H

#include <stdint.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dl_schedule_kind {
    DL_LR_CONSTANT = 0,
    DL_LR_COSINE = 1,
    DL_LR_LINEAR = 2,
    DL_LR_INVERSE_SQRT = 3,
} dl_schedule_kind;

typedef struct dl_schedule {
    dl_schedule_kind kind;
    double peak_lr;
    int64_t warmup_steps;  /* linear ramp from peak/warmup to peak over steps 1..warmup */
    int64_t total_steps;   /* cosine and linear reach the floor here */
    double min_lr_ratio;   /* floor = peak · min_lr_ratio */
} dl_schedule;

dl_status dl_schedule_check(const dl_schedule *schedule);

/* The learning rate of `step` (1-based). Constant: peak after warmup. Cosine: peak → floor by a half cosine from
 * the end of warmup to total_steps, floor after. Linear: straight line to the floor. Inverse sqrt: peak ·
 * sqrt(warmup / step) after warmup (warmup 0 is treated as 1). */
double dl_schedule_lr(const dl_schedule *schedule, int64_t step);

#ifdef __cplusplus
}
#endif

#endif
