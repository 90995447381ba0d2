/* schedule.c — see schedule.h. */
#include "train/schedule.h"

#include <math.h>

dl_status dl_schedule_check(const dl_schedule *s) {
    DL_REQUIRE(s != NULL, DL_ERR_INVALID, "schedule is NULL");
    DL_REQUIRE(s->peak_lr > 0 && isfinite(s->peak_lr), DL_ERR_CONFIG, "optim.lr must be positive, got %g", s->peak_lr);
    DL_REQUIRE(s->warmup_steps >= 0, DL_ERR_CONFIG, "optim.warmup_steps must be >= 0");
    DL_REQUIRE(s->min_lr_ratio >= 0 && s->min_lr_ratio <= 1, DL_ERR_CONFIG,
               "optim.min_lr_ratio must be in [0, 1], got %g", s->min_lr_ratio);
    DL_REQUIRE(s->kind == DL_LR_CONSTANT || s->kind == DL_LR_INVERSE_SQRT || s->total_steps > s->warmup_steps,
               DL_ERR_CONFIG, "a decaying schedule needs more steps (%lld) than optim.warmup_steps (%lld)",
               (long long)s->total_steps, (long long)s->warmup_steps);
    return DL_OK;
}

double dl_schedule_lr(const dl_schedule *s, int64_t step) {
    if (step < 1)
        step = 1;
    double peak = s->peak_lr, floor_lr = s->peak_lr * s->min_lr_ratio;
    if (s->kind != DL_LR_INVERSE_SQRT && step <= s->warmup_steps)
        return peak * (double)step / (double)s->warmup_steps;
    switch (s->kind) {
    case DL_LR_CONSTANT:
        return peak;
    case DL_LR_COSINE: {
        if (step >= s->total_steps)
            return floor_lr;
        double progress = (double)(step - s->warmup_steps) / (double)(s->total_steps - s->warmup_steps);
        return floor_lr + 0.5 * (peak - floor_lr) * (1.0 + cos(M_PI * progress));
    }
    case DL_LR_LINEAR: {
        if (step >= s->total_steps)
            return floor_lr;
        double progress = (double)(step - s->warmup_steps) / (double)(s->total_steps - s->warmup_steps);
        return peak + (floor_lr - peak) * progress;
    }
    case DL_LR_INVERSE_SQRT: {
        double warmup = s->warmup_steps > 0 ? (double)s->warmup_steps : 1.0;
        if (step <= s->warmup_steps)
            return peak * (double)step / warmup;
        return peak * sqrt(warmup / (double)step);
    }
    }
    return peak;
}
