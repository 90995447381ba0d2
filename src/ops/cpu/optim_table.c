/* optim_table.c — the CPU optim kernel family: optimizer steps, Σx² and scaling for clipping, DPO losses.
 * The kernels live one per file (adamw.c, adagrad.c, sgd.c, norm.c, dpo_loss.c). */
#include "ops/backend_internal.h"
#include "ops/cpu/cpu_optim.h"

const dl_optim_ops dl_cpu_optim_ops = {
    .adamw_update = dl_cpu_adamw_update,
    .adagrad_update = dl_cpu_adagrad_update,
    .sgd_update = dl_cpu_sgd_update,
    .sumsq = dl_cpu_sumsq,
    .scale = dl_cpu_scale,
    .dpo_loss_forward = dl_cpu_dpo_loss_forward,
    .dpo_loss_backward = dl_cpu_dpo_loss_backward,
};
