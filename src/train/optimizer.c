/* optimizer.c — see optimizer.h. */
#include "train/optimizer.h"

#include <stdlib.h>
#include <string.h>

dl_status dl_optimizer_create(dl_optimizer *opt, const dl_optimizer_settings *settings, const dl_backend *be,
                              const dl_tensor_table *params, size_t begin, size_t end) {
    DL_REQUIRE(opt && settings && be && params, DL_ERR_INVALID, "dl_optimizer_create: NULL argument");
    memset(opt, 0, sizeof *opt);
    size_t numel = dl_tensor_table_numel(params);
    DL_REQUIRE(begin <= end && end <= numel, DL_ERR_INVALID, "optimizer range [%zu, %zu) outside the %zu parameters",
               begin, end, numel);
    opt->settings = *settings;
    opt->be = be;
    opt->params = params;
    opt->begin = begin;
    opt->end = end;
    switch (settings->kind) {
    case DL_OPT_ADAMW:
        DL_REQUIRE(settings->beta1 >= 0 && settings->beta1 < 1 && settings->beta2 >= 0 && settings->beta2 < 1,
                   DL_ERR_CONFIG, "optim.beta1 and optim.beta2 must be in [0, 1)");
        opt->num_states = 2;
        opt->state_names[0] = "adam_m";
        opt->state_names[1] = "adam_v";
        break;
    case DL_OPT_ADAGRAD:
        opt->num_states = 1;
        opt->state_names[0] = "adagrad_accum";
        break;
    case DL_OPT_SGD:
        opt->num_states = settings->momentum > 0 ? 1 : 0;
        opt->state_names[0] = "momentum";
        break;
    default:
        return DL_FAIL(DL_ERR_CONFIG, "unknown optimizer %d", (int)settings->kind);
    }
    size_t n = end - begin;
    for (int s = 0; s < opt->num_states && n > 0; s++) {
        dl_status st = dl_mem_alloc(be, (void **)&opt->states[s], n * sizeof(float));
        if (st == DL_OK)
            st = dl_mem_zero(be, opt->states[s], n * sizeof(float));
        if (st != DL_OK) {
            dl_optimizer_destroy(opt);
            return st;
        }
    }
    if (settings->kind == DL_OPT_ADAGRAD && n > 0) {
        float *host = malloc(n * sizeof(float));
        DL_REQUIRE(host != NULL, DL_ERR_NOMEM, "cannot allocate %zu floats", n);
        for (size_t i = 0; i < n; i++)
            host[i] = (float)settings->adagrad_init;
        dl_status st = dl_mem_to_device(be, opt->states[0], host, n * sizeof(float));
        free(host);
        if (st != DL_OK) {
            dl_optimizer_destroy(opt);
            return st;
        }
    }
    return DL_OK;
}

void dl_optimizer_destroy(dl_optimizer *opt) {
    if (!opt)
        return;
    for (int s = 0; s < DL_OPTIMIZER_MAX_STATES; s++)
        dl_mem_free(opt->be, opt->states[s]);
    memset(opt, 0, sizeof *opt);
}

int dl_optimizer_decays(const dl_tensor *view) { return view->ndim >= 2; }

dl_status dl_optimizer_step(dl_optimizer *opt, float *params, const float *grads, double lr, double grad_scale) {
    DL_REQUIRE(opt && opt->be && params && grads, DL_ERR_INVALID, "dl_optimizer_step: NULL argument");
    opt->step++;
    const dl_optimizer_settings *s = &opt->settings;
    for (size_t i = 0; i < opt->params->count; i++) {
        const dl_tensor *v = dl_tensor_table_at(opt->params, i);
        size_t lo = v->offset > opt->begin ? v->offset : opt->begin;
        size_t hi = v->offset + v->numel < opt->end ? v->offset + v->numel : opt->end;
        if (lo >= hi)
            continue;
        size_t n = hi - lo;
        float wd = dl_optimizer_decays(v) ? (float)s->weight_decay : 0.0f;
        float *state0 = opt->states[0] ? opt->states[0] + (lo - opt->begin) : NULL;
        float *state1 = opt->states[1] ? opt->states[1] + (lo - opt->begin) : NULL;
        dl_status st;
        switch (s->kind) {
        case DL_OPT_ADAMW:
            st = dl_op_adamw_update(opt->be, params + lo, grads + lo, state0, state1, n, (float)lr, (float)s->beta1,
                                    (float)s->beta2, (float)s->eps, wd, (float)grad_scale, opt->step);
            break;
        case DL_OPT_ADAGRAD:
            st = dl_op_adagrad_update(opt->be, params + lo, grads + lo, state0, n, (float)lr, wd, (float)grad_scale);
            break;
        default:
            st = dl_op_sgd_update(opt->be, params + lo, grads + lo, state0, n, (float)lr, (float)s->momentum, wd,
                                  (float)grad_scale);
            break;
        }
        DL_CHECK_CTX(st, "updating %s", v->name);
    }
    return DL_OK;
}
