/* backward_hooks.h — what a model's backward pass tells the gradient exchange while it runs.
 *
 * Three calls, all optional:
 *   layer_done      after each layer's gradients are complete (gpt: n_layer for the LM head and the final
 *                   LayerNorm, n_layer-1 … 0 for the blocks, then -1 for the embeddings): buckets holding only
 *                   finished layers can start their all-reduce while earlier layers still compute;
 *   part_done       after the first part of a layer (gpt: a block's MLP half, the first two thirds of its
 *                   weights): those bytes can leave half a block earlier, and the call drives the messages in
 *                   flight, which move only inside MPI calls;
 *   embedding_rows  the input side of a tied token embedding. The table's gradient gets a dense term from the LM
 *                   head at the very start of backward and a sparse one (a row per input token) at the very end.
 *                   Handing the sparse rows over instead of adding them lets the table's bucket (a third of GPT-2's
 *                   gradient bytes) leave right after the head; the receiver exchanges the few rows separately and
 *                   adds them once the bucket has arrived (train/grad_sync.h). A receiver that has nothing to
 *                   overlap simply adds them at once.
 * A model that gets no embedding_rows adds the rows to its gradients itself. */
#ifndef DL_COMM_BACKWARD_HOOKS_H
#define DL_COMM_BACKWARD_HOOKS_H

#include <stdint.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_backward_hooks {
    dl_status (*layer_done)(void *ctx, int layer);
    dl_status (*part_done)(void *ctx, int layer);
    /* Row i of `rows` (width floats) adds to row ids[i] of table_grad ([table_rows, width]); n rows. All three
     * pointers are device memory of the model's backend; they stay valid only during the call. */
    dl_status (*embedding_rows)(void *ctx, float *table_grad, int table_rows, const int32_t *ids, const float *rows,
                                int n, int width);
    void *ctx;
} dl_backward_hooks;

#ifdef __cplusplus
}
#endif

#endif
