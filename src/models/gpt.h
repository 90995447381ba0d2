/* gpt.h — a decoder-only transformer (GPT-2 shape) over packed variable-length batches.
 *
 * Token embedding (+ learned positions, or rotary positions on q and k), L pre-LayerNorm blocks of causal
 * flash attention and a GELU MLP, a final LayerNorm and an LM head tied to the token embedding. Forward and backward
 * are explicit passes over the ops interface (src/ops/ops.h), so the same code runs on every backend.
 *
 * Memory (llm.c style): parameters in one contiguous buffer of named views, gradients in a second of the same
 * layout, laid out in reverse backward order — the tied token embedding, final LayerNorm, block L-1, ..., block 0,
 * position embedding — so the gradients that backward finishes first are the first bytes of the buffer (gradient
 * buckets can start all-reducing them while earlier layers still compute). The token embedding counts as finished
 * after the LM head: its input-side rows go to the backward hooks' embedding_rows when one is given
 * (comm/backward_hooks.h), so a third of GPT-2's gradient bytes can leave at the start of backward instead of the
 * end. Activations come from one arena planned at
 * creation for `max_tokens` tokens; a step allocates nothing.
 *
 * Gradient checkpointing (`model.checkpoint`): blocks are grouped in segments of K (none: one segment of all L
 * blocks with every activation kept; blocks: K = 1; every:K). Forward keeps only each segment's input; backward
 * recomputes a segment's forward into a shared set of K block-activation buffers (all but the last block's output
 * projection, whose result is the next segment's stored input) and then runs its backward. The recomputation is
 * the same deterministic computation, so block gradients are bit-identical with and without it.
 * With checkpointing the LM head also works in chunks of tokens whose logits fit 16 MiB (at least 64 tokens),
 * and backward recomputes each chunk's logits: at a 50k vocabulary the logits would otherwise be 40% of what
 * remains. Losses and every other gradient are unchanged; the tied embedding's gradient adds its head term chunk
 * by chunk, which changes float rounding only. GPT-2 124M at 256 tokens: 202 MiB of activations without
 * checkpointing, 45 MiB with blocks (22%); 16% at 1024 tokens.
 *
 * Loss: forward returns the SUM of per-token cross-entropies over target positions (targets < 0 are ignored) and
 * the number of targets; backward produces gradients of that sum. The trainer divides by the total target count
 * across micro-batches and ranks (through the optimizer's grad_scale), so the normalisation is exact. */
#ifndef DL_MODELS_GPT_H
#define DL_MODELS_GPT_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"
#include "comm/backward_hooks.h"
#include "ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_gpt_config {
    int vocab_size;
    int n_layer;
    int n_head;
    int n_embd;
    int max_seq_len;        /* rows of the learned position table; the longest document piece */
    int rope;               /* 1: rotary positions on q and k, no position table */
    float rope_theta;
    int checkpoint_every;   /* 0: no checkpointing; K ≥ 1: keep the input of every K-th block */
    int bf16;               /* model.precision bf16: matmuls on bf16 operands, fp32 accumulation (see gpt.c) */
} dl_gpt_config;

/* One packed micro-batch (host memory): num_tokens tokens in documents cu_seqlens[0..num_seqs]. */
typedef struct dl_gpt_inputs {
    const int32_t *tokens;     /* [num_tokens] */
    const int32_t *targets;    /* [num_tokens], -1 = no loss at this position */
    const int32_t *positions;  /* [num_tokens], reset to 0 at each document start */
    const int32_t *cu_seqlens; /* [num_seqs + 1] */
    int num_seqs;
    int num_tokens;
} dl_gpt_inputs;

typedef struct dl_gpt dl_gpt;

/* Checks a configuration; the message names the offending key (model.n_embd, ...). */
dl_status dl_gpt_config_check(const dl_gpt_config *config);

/* Bytes of activations a step of `max_tokens` tokens needs with this config's checkpointing, and with none. */
size_t dl_gpt_activation_bytes(const dl_gpt_config *config, int max_tokens, int max_seqs);

/* Creates a model on `backend` for micro-batches of at most max_tokens tokens and max_seqs documents. The
 * parameters are allocated but not initialised (dl_gpt_init_params or a checkpoint load fills them). */
dl_status dl_gpt_create(dl_gpt **model, const dl_gpt_config *config, const dl_backend *backend, int max_tokens,
                        int max_seqs);
void dl_gpt_destroy(dl_gpt *model);

/* GPT-2 initialisation from Philox(seed): weights N(0, 0.02), residual output projections N(0, 0.02/√(2L)),
 * biases 0, LayerNorm weights 1. The same seed gives the same parameters on every rank and device. */
dl_status dl_gpt_init_params(dl_gpt *model, uint64_t seed);

/* The configuration the model was created with. */
const dl_gpt_config *dl_gpt_get_config(const dl_gpt *model);

/* The parameter layout and the device buffers of parameters and gradients (same layout). */
const dl_tensor_table *dl_gpt_params(const dl_gpt *model);
float *dl_gpt_param_data(dl_gpt *model);
float *dl_gpt_grad_data(dl_gpt *model);
size_t dl_gpt_num_params(const dl_gpt *model);
/* The most tokens a micro-batch may hold (dl_gpt_create's max_tokens); 0 for NULL. */
int dl_gpt_max_tokens(const dl_gpt *model);

/* Forward pass: *loss_sum = Σ cross-entropy over target positions, *num_targets = their count. Keeps what backward
 * needs. Token ids outside the vocabulary or positions beyond max_seq_len fail with DL_ERR_INVALID. */
dl_status dl_gpt_forward(dl_gpt *model, const dl_gpt_inputs *inputs, double *loss_sum, int64_t *num_targets);

/* Backward of the last forward: ACCUMULATES d(loss_sum)/dθ into the gradient buffer (zero it with
 * dl_gpt_zero_grads at the start of a step). hooks (nullable, and each member nullable): layer_done(ctx, layer)
 * after the head and final LayerNorm (layer n_layer), after each block (n_layer-1 … 0) and after the embeddings
 * (-1); part_done(ctx, layer) half-way through each block, when its MLP half is done; embedding_rows receives the
 * token embedding's input-side rows instead of the gradient buffer. */
dl_status dl_gpt_backward(dl_gpt *model, const dl_backward_hooks *hooks);
/* Like dl_gpt_backward for the loss Σ_n dlosses[n]·loss_n, where loss_n is the cross-entropy of token n (what
 * dl_gpt_token_losses holds): dlosses is device memory with one upstream gradient per token of the last forward.
 * Positions without a target get no gradient whatever their weight. DPO uses it to push d(loss)/d(log-prob of a
 * sequence) into every token of that sequence; dl_gpt_backward is this with every weight 1. */
dl_status dl_gpt_backward_weighted(dl_gpt *model, const float *dlosses, const dl_backward_hooks *hooks);
dl_status dl_gpt_zero_grads(dl_gpt *model);

/* Per-token losses of the last forward (device memory, [num_tokens]): −log p(target), 0 where ignored. */
const float *dl_gpt_token_losses(const dl_gpt *model);
/* Logits of the last forward (device memory, [num_tokens, vocab_size]); valid until backward overwrites them.
 * NULL when checkpointing makes the head work in chunks (max_tokens above 16 MiB of logits): they never all exist. */
const float *dl_gpt_logits(const dl_gpt *model);

/* Byte ranges of the gradient buffer each layer's parameters occupy (for buckets): layer n_layer = the token
 * embedding and the final LayerNorm (complete after the head when backward hands the embedding's input-side rows to
 * hooks->embedding_rows), n_layer-1 … 0 = the blocks, -1 = the position embedding (empty with rotary positions). */
dl_byte_range dl_gpt_layer_param_range(const dl_gpt *model, int layer);
/* The first part of block `layer`'s range (its MLP half and ln2), complete when backward calls hooks->part_done;
 * empty for other layers. */
dl_byte_range dl_gpt_layer_part_range(const dl_gpt *model, int layer);

/* FLOPs of forward+backward for one token at context length `context` (the MFU numerator; see gpt.c). */
double dl_gpt_flops_per_token(const dl_gpt_config *config, double context);

#ifdef __cplusplus
}
#endif

#endif
