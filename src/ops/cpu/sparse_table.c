/* sparse_table.c — the CPU sparse kernel family: embedding bags, FM, FFM and the AdaGrad row update of sharded
 * tables. The kernels live in embedding_bag.c, fm.c, ffm.c and adagrad.c; the fused (libffm-style) ones in
 * fm_fused.c and ffm_fused.c. */
#include "ops/backend_internal.h"
#include "ops/cpu/cpu_optim.h"
#include "ops/cpu/cpu_sparse.h"
#include "ops/cpu/cpu_sparse_fused.h"

const dl_sparse_ops dl_cpu_sparse_ops = {
    .embedding_bag_forward = dl_cpu_embedding_bag_forward,
    .embedding_bag_backward = dl_cpu_embedding_bag_backward,
    .fm_forward = dl_cpu_fm_forward,
    .fm_backward = dl_cpu_fm_backward,
    .ffm_forward = dl_cpu_ffm_forward,
    .ffm_backward = dl_cpu_ffm_backward,
    .adagrad_rows_update = dl_cpu_adagrad_rows_update,
    .ffm_fused_forward = dl_cpu_ffm_fused_forward,
    .ffm_fused_sgd = dl_cpu_ffm_fused_sgd,
    .fm_fused_forward = dl_cpu_fm_fused_forward,
    .fm_fused_sgd = dl_cpu_fm_fused_sgd,
};
