/* ffm.c — the FFM model: click_model.c with the FFM kernels (ops.h: dl_op_ffm_fused_*). An FFM row is one block of
 * [k weights | k accumulators] per field plus, with model.linear_terms, its linear weight. */
#include "models/click/ffm.h"

const dl_click_kind dl_ffm_kind = {
    .name = "ffm",
    .field_aware = 1,
    .forward = dl_op_ffm_fused_forward,
    .sgd = dl_op_ffm_fused_sgd,
};

dl_status dl_ffm_create(dl_model *model, const dl_model_setup *setup, const dl_backend *be, int rows) {
    return dl_click_model_create(model, &dl_ffm_kind, setup, be, rows, 0);
}
