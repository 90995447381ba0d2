/* fm.c — the FM model: click_model.c with the FM kernels (ops.h: dl_op_fm_fused_*). An FM row is one block of
 * [k weights | k accumulators] plus, with model.linear_terms, its linear weight; fields are ignored. */
#include "models/click/fm.h"

const dl_click_kind dl_fm_kind = {
    .name = "fm",
    .field_aware = 0,
    .forward = dl_op_fm_fused_forward,
    .sgd = dl_op_fm_fused_sgd,
};

dl_status dl_fm_create(dl_model *model, const dl_model_setup *setup, const dl_backend *be, int rows) {
    return dl_click_model_create(model, &dl_fm_kind, setup, be, rows, 0);
}
