/* head.c — DPO's loss on pairs: the settings check and the pair head, which runs dl_op_dpo_loss_forward/backward on
 * the pairs' summed log-probs and sums the metrics (see dpo.h for the design). */
#include "models/dpo/dpo_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const dl_dpo_metric_names[DL_DPO_NUM_METRICS] = {
    "rewards/chosen", "rewards/rejected", "rewards/accuracy", "rewards/margin",
    "logps/chosen",   "logps/rejected",   "data/truncated",   "data/dropped",
};

dl_status dl_dpo_settings_check(const dl_dpo_settings *s) {
    DL_REQUIRE(s != NULL, DL_ERR_INVALID, "dl_dpo_settings_check: NULL settings");
    DL_REQUIRE(s->loss_kind == DL_DPO_SIGMOID || s->loss_kind == DL_DPO_IPO || s->loss_kind == DL_DPO_HINGE,
               DL_ERR_CONFIG, "dpo.loss: unknown loss kind %d (sigmoid, ipo or hinge)", s->loss_kind);
    DL_REQUIRE(isfinite(s->beta) && s->beta > 0, DL_ERR_CONFIG, "dpo.beta must be a finite number > 0, got %g",
               (double)s->beta);
    DL_REQUIRE(s->label_smoothing >= 0 && s->label_smoothing < 0.5f, DL_ERR_CONFIG,
               "dpo.label_smoothing must be in [0, 0.5), got %g", (double)s->label_smoothing);
    if (s->label_smoothing > 0 && s->loss_kind != DL_DPO_SIGMOID) {
        dl_status st = DL_FAIL(DL_ERR_CONFIG, "dpo.label_smoothing (%g) applies only to dpo.loss sigmoid, not %s",
                               (double)s->label_smoothing, s->loss_kind == DL_DPO_IPO ? "ipo" : "hinge");
        dl_error_hint("set dpo.label_smoothing: 0, or use dpo.loss: sigmoid");
        return st;
    }
    return DL_OK;
}

/* ---- the pair head --------------------------------------------------------------------------------------------- */

struct dl_dpo_head {
    dl_dpo_settings settings;
    const dl_backend *be;
    int max_pairs;
    float *dev;  /* one device block: pc, pr, rc, rr, losses, reward_c, reward_r, dpc, dpr, ones */
    float *host; /* losses, reward_c, reward_r */
};

enum { H_PC, H_PR, H_RC, H_RR, H_LOSS, H_REWC, H_REWR, H_DPC, H_DPR, H_ONES, H_COUNT };

dl_status dl_dpo_head_create(dl_dpo_head **out, const dl_dpo_settings *settings, const dl_backend *be,
                             int max_pairs) {
    DL_REQUIRE(out && settings && be, DL_ERR_INVALID, "dl_dpo_head_create: NULL argument");
    DL_REQUIRE(max_pairs >= 1, DL_ERR_INVALID, "dl_dpo_head_create: max_pairs must be positive, got %d", max_pairs);
    *out = NULL;
    DL_CHECK(dl_dpo_settings_check(settings));
    dl_dpo_head *h = calloc(1, sizeof *h);
    DL_REQUIRE(h != NULL, DL_ERR_NOMEM, "cannot allocate the DPO head");
    h->settings = *settings;
    h->be = be;
    h->max_pairs = max_pairs;
    size_t n = (size_t)max_pairs;
    h->host = malloc(3 * n * sizeof(float));
    float *ones = malloc(n * sizeof(float));
    dl_status s = h->host && ones ? dl_mem_alloc(be, (void **)&h->dev, H_COUNT * n * sizeof(float))
                                  : DL_FAIL(DL_ERR_NOMEM, "cannot allocate the DPO head's buffers");
    if (s == DL_OK) {
        for (size_t i = 0; i < n; i++)
            ones[i] = 1.0f;
        s = dl_mem_to_device(be, h->dev + H_ONES * n, ones, n * sizeof(float));
    }
    free(ones);
    if (s != DL_OK) {
        dl_dpo_head_destroy(h);
        return s;
    }
    *out = h;
    return DL_OK;
}

void dl_dpo_head_destroy(dl_dpo_head *h) {
    if (!h)
        return;
    if (h->dev)
        dl_mem_free(h->be, h->dev);
    free(h->host);
    free(h);
}

dl_status dl_dpo_head_run(dl_dpo_head *h, int n, const float *pc, const float *pr, const float *rc, const float *rr,
                          double *loss_sum, double *metrics, float *dchosen, float *drejected) {
    DL_REQUIRE(h && loss_sum && metrics, DL_ERR_INVALID, "dl_dpo_head_run: NULL argument");
    DL_REQUIRE(n >= 0 && n <= h->max_pairs, DL_ERR_INVALID, "dl_dpo_head_run: %d pairs, the head holds 0..%d", n,
               h->max_pairs);
    DL_REQUIRE((dchosen == NULL) == (drejected == NULL), DL_ERR_INVALID,
               "dl_dpo_head_run: dchosen and drejected must both be given or both be NULL");
    if (n == 0)
        return DL_OK;
    DL_REQUIRE(pc && pr && rc && rr, DL_ERR_INVALID, "dl_dpo_head_run: NULL log-prob array");
    const dl_backend *be = h->be;
    size_t cap = (size_t)h->max_pairs, bytes = (size_t)n * sizeof(float);
    float *d = h->dev;
#define DEV(k) (d + (size_t)(k) * cap)
    DL_CHECK(dl_mem_to_device(be, DEV(H_PC), pc, bytes));
    DL_CHECK(dl_mem_to_device(be, DEV(H_PR), pr, bytes));
    DL_CHECK(dl_mem_to_device(be, DEV(H_RC), rc, bytes));
    DL_CHECK(dl_mem_to_device(be, DEV(H_RR), rr, bytes));
    const dl_dpo_settings *st = &h->settings;
    DL_CHECK(dl_op_dpo_loss_forward(be, DEV(H_LOSS), DEV(H_REWC), DEV(H_REWR), DEV(H_PC), DEV(H_PR), DEV(H_RC),
                                    DEV(H_RR), n, st->loss_kind, st->beta, st->label_smoothing));
    float *loss = h->host, *rew_c = h->host + cap, *rew_r = h->host + 2 * cap;
    DL_CHECK(dl_mem_to_host(be, loss, DEV(H_LOSS), bytes));
    DL_CHECK(dl_mem_to_host(be, rew_c, DEV(H_REWC), bytes));
    DL_CHECK(dl_mem_to_host(be, rew_r, DEV(H_REWR), bytes));
    for (int i = 0; i < n; i++) {
        *loss_sum += loss[i];
        metrics[DL_DPO_REWARD_CHOSEN] += rew_c[i];
        metrics[DL_DPO_REWARD_REJECTED] += rew_r[i];
        /* A tie is a coin flip: the policy has not learnt this pair either way. */
        metrics[DL_DPO_ACCURACY] += rew_c[i] > rew_r[i] ? 1.0 : rew_c[i] == rew_r[i] ? 0.5 : 0.0;
        metrics[DL_DPO_MARGIN] += (double)rew_c[i] - (double)rew_r[i];
        metrics[DL_DPO_LOGP_CHOSEN] += pc[i];
        metrics[DL_DPO_LOGP_REJECTED] += pr[i];
    }
    if (dchosen) {
        DL_CHECK(dl_mem_zero(be, DEV(H_DPC), bytes));
        DL_CHECK(dl_mem_zero(be, DEV(H_DPR), bytes));
        DL_CHECK(dl_op_dpo_loss_backward(be, DEV(H_DPC), DEV(H_DPR), DEV(H_ONES), DEV(H_PC), DEV(H_PR), DEV(H_RC),
                                         DEV(H_RR), n, st->loss_kind, st->beta, st->label_smoothing));
        DL_CHECK(dl_mem_to_host(be, dchosen, DEV(H_DPC), bytes));
        DL_CHECK(dl_mem_to_host(be, drejected, DEV(H_DPR), bytes));
    }
#undef DEV
    return DL_OK;
}

dl_dpo_settings dl_dpo_settings_of(const dl_dpo_config *dpo) {
    return (dl_dpo_settings){
        .loss_kind = dpo->loss, .beta = (float)dpo->beta, .label_smoothing = (float)dpo->label_smoothing};
}
