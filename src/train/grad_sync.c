/* grad_sync.c — see grad_sync.h. This version reduces the whole gradient buffer with one all-reduce after the
 * backward (staged through host memory when the gradients live on a GPU) and updates every element on every rank. */
#include "train/grad_sync.h"

#include <stdlib.h>
#include <string.h>

#include "core/timer.h"

struct dl_grad_sync {
    dl_world *world;
    const dl_backend *be;
    dl_model *model;
    size_t numel;
    dl_optimizer optimizer;
    int optimizer_ready;
    float *host_staging; /* gradients of a GPU backend, for MPI */
    dl_grad_sync_stats stats;
};

dl_status dl_grad_sync_create(dl_grad_sync **out, dl_world *world, const dl_backend *be, dl_model *model,
                              const dl_config *config, const dl_optimizer_settings *optimizer) {
    DL_REQUIRE(out && world && be && model && config && optimizer, DL_ERR_INVALID, "dl_grad_sync_create: NULL argument");
    *out = NULL;
    dl_grad_sync *s = calloc(1, sizeof *s);
    DL_REQUIRE(s != NULL, DL_ERR_NOMEM, "cannot allocate the gradient synchroniser");
    s->world = world;
    s->be = be;
    s->model = model;
    s->numel = dl_tensor_table_numel(model->params);
    dl_status st = dl_optimizer_create(&s->optimizer, optimizer, be, model->params, 0, s->numel);
    if (st == DL_OK) {
        s->optimizer_ready = 1;
        if (be->kind != DL_DEVICE_CPU && world->size > 1 && s->numel > 0) {
            s->host_staging = malloc(s->numel * sizeof(float));
            if (!s->host_staging)
                st = DL_FAIL(DL_ERR_NOMEM, "cannot allocate the gradient staging buffer");
        }
    }
    if (st != DL_OK) {
        dl_grad_sync_destroy(s);
        return st;
    }
    *out = s;
    return DL_OK;
}

void dl_grad_sync_destroy(dl_grad_sync *s) {
    if (!s)
        return;
    if (s->optimizer_ready)
        dl_optimizer_destroy(&s->optimizer);
    free(s->host_staging);
    free(s);
}

dl_status dl_grad_sync_begin(dl_grad_sync *s, int final_micro_batch) {
    DL_REQUIRE(s != NULL, DL_ERR_INVALID, "dl_grad_sync_begin: NULL");
    (void)final_micro_batch;
    return DL_OK;
}

dl_status dl_grad_sync_layer_done(void *sync, int layer) {
    (void)sync;
    (void)layer;
    return DL_OK;
}

dl_status dl_grad_sync_reduce(dl_grad_sync *s, double *sumsq) {
    DL_REQUIRE(s != NULL && sumsq != NULL, DL_ERR_INVALID, "dl_grad_sync_reduce: NULL");
    memset(&s->stats, 0, sizeof s->stats);
    float *grads = s->model->grad_data;
    if (s->world->size > 1 && s->numel > 0) {
        double t0 = dl_time_seconds();
        size_t bytes = s->numel * sizeof(float);
        if (s->be->kind == DL_DEVICE_CPU) {
            DL_CHECK(dl_comm_allreduce_sum_f32(s->world, grads, s->numel, "gradient all-reduce"));
        } else {
            DL_CHECK(dl_mem_to_host(s->be, s->host_staging, grads, bytes));
            DL_CHECK(dl_comm_allreduce_sum_f32(s->world, s->host_staging, s->numel, "gradient all-reduce"));
            DL_CHECK(dl_mem_to_device(s->be, grads, s->host_staging, bytes));
        }
        s->stats.comm_seconds = s->stats.exposed_seconds = dl_time_seconds() - t0;
    }
    *sumsq = 0;
    if (s->numel > 0)
        DL_CHECK(dl_op_sumsq(s->be, sumsq, grads, s->numel));
    return DL_OK;
}

dl_status dl_grad_sync_update(dl_grad_sync *s, double lr, double grad_scale) {
    DL_REQUIRE(s != NULL, DL_ERR_INVALID, "dl_grad_sync_update: NULL");
    if (s->numel == 0)
        return DL_OK;
    return dl_optimizer_step(&s->optimizer, s->model->param_data, s->model->grad_data, lr, grad_scale);
}

dl_optimizer *dl_grad_sync_optimizer(dl_grad_sync *s) { return s ? &s->optimizer : NULL; }

void dl_grad_sync_stats_get(const dl_grad_sync *s, dl_grad_sync_stats *stats) {
    if (s && stats)
        *stats = s->stats;
}
