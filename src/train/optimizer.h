/* optimizer.h — AdamW, AdaGrad and SGD over a model's parameter buffer.
 *
 * The optimizer walks the parameter table view by view, so each view gets its own weight decay: matrices and
 * embeddings (2 or more dims) decay, biases and LayerNorm parameters (1 dim) do not, as in GPT-2 and nanoGPT.
 * State buffers (Adam's m and v, AdaGrad's accumulator, SGD's momentum) have the parameter buffer's layout but
 * cover only the element range [begin, end) this rank updates: the whole buffer normally, one ZeRO-1 slice when
 * the optimizer state is sharded. Gradients arrive as sums; `grad_scale` (1 / target tokens, times the clipping
 * factor) turns them into the mean inside the update, with no extra pass over the buffer. */
#ifndef DL_TRAIN_OPTIMIZER_H
#define DL_TRAIN_OPTIMIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"
#include "ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dl_optimizer_kind { DL_OPT_ADAMW = 0, DL_OPT_ADAGRAD = 1, DL_OPT_SGD = 2 } dl_optimizer_kind;

typedef struct dl_optimizer_settings {
    dl_optimizer_kind kind;
    double beta1, beta2, eps; /* AdamW */
    double weight_decay;      /* AdamW: decoupled; SGD and AdaGrad: L2 added to the gradient */
    double momentum;          /* SGD */
    double adagrad_init;      /* AdaGrad accumulator start (libffm: 1) */
} dl_optimizer_settings;

enum { DL_OPTIMIZER_MAX_STATES = 2 };

typedef struct dl_optimizer {
    dl_optimizer_settings settings;
    const dl_backend *be;
    const dl_tensor_table *params;
    size_t begin, end;                              /* element range updated by this rank */
    int num_states;
    const char *state_names[DL_OPTIMIZER_MAX_STATES]; /* "adam_m", "adam_v", "adagrad_accum", "momentum" */
    float *states[DL_OPTIMIZER_MAX_STATES];         /* device buffers of end - begin elements */
    int64_t step;                                   /* updates applied so far */
} dl_optimizer;

/* Creates the optimizer and its zeroed (AdaGrad: adagrad_init) state for elements [begin, end) of `params`. */
dl_status dl_optimizer_create(dl_optimizer *opt, const dl_optimizer_settings *settings, const dl_backend *be,
                              const dl_tensor_table *params, size_t begin, size_t end);
void dl_optimizer_destroy(dl_optimizer *opt);

/* Whether a view gets weight decay (2+ dims). */
int dl_optimizer_decays(const dl_tensor *view);

/* One update of params[begin, end) from grads[begin, end) (full-layout buffers) at learning rate lr. */
dl_status dl_optimizer_step(dl_optimizer *opt, float *params, const float *grads, double lr, double grad_scale);

#ifdef __cplusplus
}
#endif

#endif
