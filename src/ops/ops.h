/* ops.h — every kernel dealer runs, behind one interface.
 *
 * A model never calls a kernel directly. It holds a dl_backend (chosen once at start-up from `device:
 * auto|cpu|cuda`) and calls the dl_op_* functions below with raw pointers and sizes, llm.c style. Each dl_op_*
 * checks its arguments, then dispatches through the backend's table of function pointers; the CPU table lives in
 * src/ops/cpu/, the CUDA table in src/ops/cuda/. An op a backend lacks fails with DL_ERR_UNSUPPORTED naming the op
 * and the backend, never a crash.
 *
 *     dl_backend be;
 *     DL_CHECK(dl_backend_open(&be, "auto", local_rank));           // CUDA when a GPU answers, else CPU
 *     float *x;  DL_CHECK(dl_mem_alloc(&be, (void **)&x, N * C * sizeof(float)));
 *     DL_CHECK(dl_op_layernorm_forward(&be, y, mean, rstd, x, w, b, N, C, 1e-5f));
 *
 * Conventions (every op, both backends):
 * - Pointers are device pointers of the backend (host memory on CPU). fp32 unless the name says bf16.
 * - Packed sequences: N tokens in one stream; `cu_seqlens[0..num_seqs]` are document boundaries
 *   (cu_seqlens[0] = 0, cu_seqlens[num_seqs] = N, non-decreasing). Nothing crosses a boundary.
 * - Row-major. A [N, C] activation has C contiguous floats per token. Linear weights are [OC, C] (out, in).
 * - Backward ops ACCUMULATE (+=) into every gradient they write (parameters and activations), so gradient
 *   accumulation and residual branches need no extra adds; the caller zeroes gradients when a step starts.
 *   An output pointer documented "nullable" may be NULL to skip that gradient.
 * - Deterministic: the same inputs and thread count give bit-identical results (no float atomics on CPU), which
 *   exact resume depends on.
 * - Nothing allocates per call; scratch lives in the backend state, sized on first use.
 */
#ifndef DL_OPS_OPS_H
#define DL_OPS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "ops/op_list.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dl_device_kind { DL_DEVICE_CPU = 0, DL_DEVICE_CUDA = 1 } dl_device_kind;

/* bf16 as stored on the GPU: the high 16 bits of an fp32. */
typedef uint16_t dl_bf16;

/* ---- the backend tables ----------------------------------------------------------------------------------------
 * Implementations take the backend's private `state` first. The families are separate tables so a backend (or a
 * build) can provide them one at a time; a NULL member means "not on this backend". */

typedef struct dl_memory_ops {
    dl_status (*alloc)(void *state, void **ptr, size_t bytes);
    void (*free)(void *state, void *ptr);
    dl_status (*zero)(void *state, void *ptr, size_t bytes);
    dl_status (*to_device)(void *state, void *dst, const void *host_src, size_t bytes);
    dl_status (*to_host)(void *state, void *host_dst, const void *src, size_t bytes);
    dl_status (*copy)(void *state, void *dst, const void *src, size_t bytes);
    dl_status (*synchronize)(void *state);
} dl_memory_ops;

/* The kernel families: one member per row of op_list.h, in its order (the signatures live there, once for the
 * tables and both backends' kernels). */
typedef struct dl_dense_ops {
    DL_DENSE_OPS(DL_OP_TABLE_MEMBER)
} dl_dense_ops;

typedef struct dl_attention_ops {
    DL_ATTENTION_OPS(DL_OP_TABLE_MEMBER)
} dl_attention_ops;

typedef struct dl_optim_ops {
    DL_OPTIM_OPS(DL_OP_TABLE_MEMBER)
} dl_optim_ops;

/* The sparse family includes the fused click-model tables (dl_click_table below): libffm-style per-instance
 * training and scoring. */
typedef struct dl_sparse_ops {
    DL_SPARSE_OPS(DL_OP_TABLE_MEMBER)
} dl_sparse_ops;

typedef struct dl_backend_ops {
    const dl_memory_ops *memory;
    const dl_dense_ops *dense;
    const dl_attention_ops *attention;
    const dl_optim_ops *optim;
    const dl_sparse_ops *sparse;
} dl_backend_ops;

typedef struct dl_backend {
    dl_device_kind kind;
    const char *name;          /* "cpu" or "cuda" */
    int device_index;          /* GPU index; 0 on CPU */
    int num_threads;           /* CPU: OpenMP threads the kernels use */
    const char *cpu_variant;   /* CPU: the kernel variant running ("avx512", "avx2", "baseline", ...); NULL on CUDA */
    void *state;               /* backend-private: scratch, cuBLAS handle, stream */
    const dl_backend_ops *ops;
} dl_backend;

/* ---- backends -------------------------------------------------------------------------------------------------- */

/* Opens "auto" (CUDA when built with it and a GPU answers, else CPU), "cpu" or "cuda". With CUDA, GPU index is
 * local_rank modulo the number of visible GPUs. "cuda" without a GPU fails with DL_ERR_DEVICE. */
dl_status dl_backend_open(dl_backend *be, const char *device, int local_rank);
void dl_backend_close(dl_backend *be);

/* *count = CUDA devices that answer; 0 without a CUDA build, a GPU or an NVIDIA driver. An installed driver that
 * CUDA cannot use (too old for the runtime, not loaded, no permission) is DL_ERR_DEVICE naming the cause. */
dl_status dl_cuda_device_count(int *count);
/* The device index and cudaStream_t (as void *) of an open CUDA backend, for code outside ops/ that queues its own
 * GPU work behind the kernels (the NCCL exchange). DL_ERR_INVALID for any other backend. */
dl_status dl_backend_cuda_handles(const dl_backend *be, int *device, void **stream);
/* Whether this build includes the CUDA backend. */
int dl_cuda_built(void);

/* ---- CPU kernel variants ----------------------------------------------------------------------------------------
 * The portable build compiles the CPU kernels three times from the same source: "baseline" (x86-64-v2, SSE4.2),
 * "avx2" (AVX2 + FMA) and "avx512" (AVX-512 F/CD/BW/DQ/VL); -DDEALER_NATIVE=ON builds one, "native", for the build
 * machine (on other processors: one "generic"). One is chosen once per process: the best the CPU runs, or the one
 * the environment variable DEALER_CPU_VARIANT names (auto, or a variant's name: tests and users force a lower one
 * with it). Every CPU backend then runs that variant's kernels. For tests, DEALER_TEST_CPU_HIDE=avx512 (a comma-
 * separated list) makes variants read as missing from the CPU. */

/* Chooses the variant (once; later calls return the first answer). DEALER_CPU_VARIANT naming an unknown variant,
 * or one this CPU lacks the instructions for, is DL_ERR_INVALID (exit 2) naming the variable and the choices. */
dl_status dl_cpu_variant_select(void);
/* The chosen variant's name, and a line saying why it runs ("avx512: the best this CPU supports (...)"), after
 * dl_cpu_variant_select succeeded; NULL before. */
const char *dl_cpu_variant_name(void);
const char *dl_cpu_variant_reason(void);
/* The variants built into this binary, in order of preference from worst to best: index 0 .. count-1. */
int dl_cpu_variant_count(void);
const char *dl_cpu_variant_at(int index);
/* Whether this CPU has the instructions the variant at `index` needs. */
int dl_cpu_variant_supported(int index);
/* Opens the CPU backend with one named variant instead of the chosen one (tests and benchmarks compare them);
 * a variant that is not built in or that this CPU lacks is DL_ERR_INVALID. */
dl_status dl_backend_open_cpu_variant(dl_backend *be, const char *variant);

/* ---- memory ---------------------------------------------------------------------------------------------------- */
dl_status dl_mem_alloc(const dl_backend *be, void **ptr, size_t bytes);
void dl_mem_free(const dl_backend *be, void *ptr);
dl_status dl_mem_zero(const dl_backend *be, void *ptr, size_t bytes);
dl_status dl_mem_to_device(const dl_backend *be, void *dst, const void *host_src, size_t bytes);
dl_status dl_mem_to_host(const dl_backend *be, void *host_dst, const void *src, size_t bytes);
dl_status dl_mem_copy(const dl_backend *be, void *dst, const void *src, size_t bytes);
/* Makes the device buffer *p (capacity *cap elements of `elem` bytes) hold at least `need` elements, at least
 * doubling; its content is NOT kept when it grows. `what` names it in messages. */
dl_status dl_mem_grow(const dl_backend *be, void **p, size_t *cap, size_t need, size_t elem, const char *what);
dl_status dl_synchronize(const dl_backend *be);

/* ---- dense (src/ops/dense.c dispatches) ------------------------------------------------------------------------ */

/* out[N,OC] = inp[N,C] · weight[OC,C]ᵀ + bias[OC] (bias nullable). */
dl_status dl_op_matmul_forward(const dl_backend *be, float *out, const float *inp, const float *weight,
                               const float *bias, int N, int C, int OC);
/* dinp[N,C] += dout·weight; dweight[OC,C] += doutᵀ·inp; dbias[OC] += Σₙ dout. dinp and dbias nullable. */
dl_status dl_op_matmul_backward(const dl_backend *be, float *dinp, float *dweight, float *dbias,
                                const float *dout, const float *inp, const float *weight, int N, int C, int OC);
/* Like matmul_forward with bf16 inputs, fp32 accumulation and output (GPU). */
dl_status dl_op_matmul_forward_bf16(const dl_backend *be, float *out, const dl_bf16 *inp, const dl_bf16 *weight,
                                    const float *bias, int N, int C, int OC);
/* Like matmul_backward with bf16 operands (dout, inp, weight), fp32 accumulation, fp32 gradients accumulated (+=)
 * as matmul_backward's: the backward of mixed precision (model.precision bf16). dbias sums the bf16 dout values. */
dl_status dl_op_matmul_backward_bf16(const dl_backend *be, float *dinp, float *dweight, float *dbias,
                                     const dl_bf16 *dout, const dl_bf16 *inp, const dl_bf16 *weight, int N, int C,
                                     int OC);
/* out[n] = wte[tokens[n]] + wpe[positions[n]]; wpe and positions nullable together (rotary models).
 * Token ids must be in [0,V), positions in [0,max_pos): out-of-range ids fail with DL_ERR_INVALID. */
dl_status dl_op_embedding_forward(const dl_backend *be, float *out, const int32_t *tokens, const int32_t *positions,
                                  const float *wte, const float *wpe, int N, int C, int V, int max_pos);
dl_status dl_op_embedding_backward(const dl_backend *be, float *dwte, float *dwpe, const float *dout,
                                   const int32_t *tokens, const int32_t *positions, int N, int C, int V,
                                   int max_pos);
/* Rotary embedding (GPT-NeoX half-split pairs: i and i+D/2) of a [N, H, D] view whose tokens are `stride` floats
 * apart (3C for q or k inside a qkv buffer). Frequencies theta^(-2i/D). out may equal inp. */
dl_status dl_op_rope_forward(const dl_backend *be, float *out, const float *inp, const int32_t *positions, int N,
                             int H, int D, int stride, float theta);
/* dinp += Rᵀ dout (the inverse rotation). dinp may equal dout: then it is rotated in place (overwritten). */
dl_status dl_op_rope_backward(const dl_backend *be, float *dinp, const float *dout, const int32_t *positions, int N,
                              int H, int D, int stride, float theta);
/* LayerNorm over C; saves mean[N] and rstd[N] (= 1/sqrt(var + eps), biased variance). */
dl_status dl_op_layernorm_forward(const dl_backend *be, float *out, float *mean, float *rstd, const float *inp,
                                  const float *weight, const float *bias, int N, int C, float eps);
dl_status dl_op_layernorm_backward(const dl_backend *be, float *dinp, float *dweight, float *dbias,
                                   const float *dout, const float *inp, const float *weight, const float *mean,
                                   const float *rstd, int N, int C);
/* GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
dl_status dl_op_gelu_forward(const dl_backend *be, float *out, const float *inp, size_t n);
dl_status dl_op_gelu_backward(const dl_backend *be, float *dinp, const float *inp, const float *dout, size_t n);
/* out = a + b; backward: da += dout, db += dout. */
dl_status dl_op_residual_forward(const dl_backend *be, float *out, const float *a, const float *b, size_t n);
dl_status dl_op_residual_backward(const dl_backend *be, float *da, float *db, const float *dout, size_t n);
/* Inverted dropout: element i is kept when dl_philox_uniform(dl_philox_word(seed, stream, i)) >= p and then scaled
 * by 1/(1-p). The mask is never stored: backward regenerates it. p in [0,1). */
dl_status dl_op_dropout_forward(const dl_backend *be, float *out, const float *inp, size_t n, float p, uint64_t seed,
                                uint64_t stream);
dl_status dl_op_dropout_backward(const dl_backend *be, float *dinp, const float *dout, size_t n, float p,
                                 uint64_t seed, uint64_t stream);
/* Softmax cross-entropy per token: losses[n] = lse[n] − logits[n, targets[n]], lse[n] = log Σ_v exp(logits[n,v]).
 * targets[n] < 0 marks an ignored position: loss 0 (its lse is still written). Other targets must be in [0,V).
 * losses[n] is also −log p(target), the per-token log-probability DPO sums. */
dl_status dl_op_xent_forward(const dl_backend *be, float *losses, float *lse, const float *logits,
                             const int32_t *targets, int N, int V);
/* dlogits[n,v] += dlosses[n] · (exp(logits[n,v] − lse[n]) − [v = targets[n]]); zero for ignored rows.
 * dlogits may equal logits (in place, the fused classifier: then it is overwritten, not accumulated). */
dl_status dl_op_xent_backward(const dl_backend *be, float *dlogits, const float *logits, const float *lse,
                              const int32_t *targets, const float *dlosses, int N, int V);
/* out[s] = Σ_{n in document s} values[n]; backward dvalues[n] += dout[s]. */
dl_status dl_op_sequence_sum_forward(const dl_backend *be, float *out, const float *values,
                                     const int32_t *cu_seqlens, int num_seqs);
dl_status dl_op_sequence_sum_backward(const dl_backend *be, float *dvalues, const float *dout,
                                      const int32_t *cu_seqlens, int num_seqs);
/* Round-to-nearest-even conversion to bf16 and back. */
dl_status dl_op_f32_to_bf16(const dl_backend *be, dl_bf16 *out, const float *inp, size_t n);
dl_status dl_op_bf16_to_f32(const dl_backend *be, float *out, const dl_bf16 *inp, size_t n);

/* ---- attention (src/ops/attention.c dispatches) ---------------------------------------------------------------- */

/* Causal self-attention over packed documents, flash style (tiled, online softmax, never a T×T matrix).
 * qkv is [N, 3, H, D] (q, k, v of each token side by side, i.e. [N, 3C] with C = H·D); out is [N, H, D];
 * lse is [N, H]: the log-sum-exp of each query row's scaled scores, the only thing saved for backward.
 * Scale 1/√D. Token n attends to tokens m ≤ n of its own document only. D ≤ 128. */
dl_status dl_op_attention_forward(const dl_backend *be, float *out, float *lse, const float *qkv,
                                  const int32_t *cu_seqlens, int num_seqs, int N, int H, int D);
/* dqkv [N, 3, H, D] += gradients, recomputing the score tiles from qkv and lse (FlashAttention-2 scheme). */
dl_status dl_op_attention_backward(const dl_backend *be, float *dqkv, const float *dout, const float *qkv,
                                   const float *out, const float *lse, const int32_t *cu_seqlens, int num_seqs,
                                   int N, int H, int D);

/* ---- optimizers, norms, DPO loss (src/ops/optim.c dispatches) -------------------------------------------------- */

/* AdamW (Loshchilov & Hutter): g = grad_scale·grads; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
 * p −= lr·( m̂/(√v̂ + eps) + weight_decay·p ) with bias correction by `step` (1-based). Pass weight_decay 0 for the
 * no-decay parameters (biases, norms). */
dl_status dl_op_adamw_update(const dl_backend *be, float *params, const float *grads, float *m, float *v, size_t n,
                             float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                             int64_t step);
/* AdaGrad, libffm semantics: g = grad_scale·grads + weight_decay·p; accum += g²; p −= lr·g/√accum.
 * accum starts at 1 (the caller initialises it). */
dl_status dl_op_adagrad_update(const dl_backend *be, float *params, const float *grads, float *accum, size_t n,
                               float lr, float weight_decay, float grad_scale);
/* SGD with optional momentum (momentum_buf nullable when momentum is 0) and L2 weight decay. */
dl_status dl_op_sgd_update(const dl_backend *be, float *params, const float *grads, float *momentum_buf, size_t n,
                           float lr, float momentum, float weight_decay, float grad_scale);
/* Σ x² in double, written to host memory: a partial sum, so ZeRO shards can all-reduce it into a global norm. */
dl_status dl_op_sumsq(const dl_backend *be, double *host_result, const float *x, size_t n);
/* x *= factor (clipping). */
dl_status dl_op_scale(const dl_backend *be, float *x, size_t n, float factor);

enum dl_dpo_loss_kind { DL_DPO_SIGMOID = 0, DL_DPO_IPO = 1, DL_DPO_HINGE = 2 };
/* DPO losses on summed log-probs, per pair: h = (πc − πr) − (ρc − ρr);
 * sigmoid: −(1−ε)·log σ(β·h) − ε·log σ(−β·h); ipo: (h − 1/(2β))²; hinge: max(0, 1 − β·h).
 * chosen_rewards = β(πc − ρc), rejected_rewards = β(πr − ρr) (both nullable). */
dl_status dl_op_dpo_loss_forward(const dl_backend *be, float *losses, float *chosen_rewards,
                                 float *rejected_rewards, const float *policy_chosen, const float *policy_rejected,
                                 const float *ref_chosen, const float *ref_rejected, int num_pairs, int loss_kind,
                                 float beta, float label_smoothing);
dl_status dl_op_dpo_loss_backward(const dl_backend *be, float *dpolicy_chosen, float *dpolicy_rejected,
                                  const float *dlosses, const float *policy_chosen, const float *policy_rejected,
                                  const float *ref_chosen, const float *ref_rejected, int num_pairs, int loss_kind,
                                  float beta, float label_smoothing);

/* ---- sparse: embedding bags, FM, FFM (src/ops/sparse.c dispatches) ---------------------------------------------
 * A batch of B sparse rows is CSR: entries row_ptr[b]..row_ptr[b+1]-1 of `rows` (table row of each feature),
 * `fields` and `values`. instance_scale[b] (nullable = 1) is libffm's instance-wise normalisation 1/Σx².
 * Tables have num_rows rows; a latent vector is k floats padded to kpad (the vector width). In sharded mode the
 * caller passes a compact table of the rows it gathered and local row indices. */

/* out[b, :] = Σ weights[j] · table[rows[j], :] over the bag's entries (weights nullable = 1). */
dl_status dl_op_embedding_bag_forward(const dl_backend *be, float *out, const float *table, const int32_t *rows,
                                      const float *weights, const int32_t *offsets, int num_bags, int dim,
                                      int64_t num_rows);
dl_status dl_op_embedding_bag_backward(const dl_backend *be, float *dtable, const float *dout, const int32_t *rows,
                                       const float *weights, const int32_t *offsets, int num_bags, int dim,
                                       int64_t num_rows);
/* FM (Rendle): logit = bias + Σ w_i x_i + ½ Σ_f [(Σ_i v_if x_i)² − Σ_i v_if² x_i²], times instance_scale on the
 * pairwise part. linear [num_rows], latent [num_rows, kpad], bias scalar (all nullable but latent); saves
 * sum_vx [B, kpad] for backward. */
dl_status dl_op_fm_forward(const dl_backend *be, float *logits, float *sum_vx, const float *linear,
                           const float *latent, const float *bias, const int32_t *row_ptr, const int32_t *rows,
                           const float *values, const float *instance_scale, int B, int k, int kpad,
                           int64_t num_rows);
dl_status dl_op_fm_backward(const dl_backend *be, float *dlinear, float *dlatent, float *dbias,
                            const float *dlogits, const float *sum_vx, const float *latent, const int32_t *row_ptr,
                            const int32_t *rows, const float *values, const float *instance_scale, int B, int k,
                            int kpad, int64_t num_rows);
/* FFM (Juan et al.): logit = Σ_{i<j} ⟨v[row_i, field_j], v[row_j, field_i]⟩ x_i x_j · instance_scale;
 * latent [num_rows, num_fields, kpad]. */
dl_status dl_op_ffm_forward(const dl_backend *be, float *logits, const float *latent, const int32_t *row_ptr,
                            const int32_t *rows, const int32_t *fields, const float *values,
                            const float *instance_scale, int B, int num_fields, int k, int kpad, int64_t num_rows);
dl_status dl_op_ffm_backward(const dl_backend *be, float *dlatent, const float *dlogits, const float *latent,
                             const int32_t *row_ptr, const int32_t *rows, const int32_t *fields,
                             const float *values, const float *instance_scale, int B, int num_fields, int k,
                             int kpad, int64_t num_rows);
/* AdaGrad (libffm) on the listed rows only: for each r in rows, over row_floats floats, as dl_op_adagrad_update
 * with grads taken from grads[i·row_floats ...] (i = position in `rows`). Rows must be distinct. */
dl_status dl_op_adagrad_rows_update(const dl_backend *be, float *table, float *accum, const float *grads,
                                    const int32_t *rows, int num_rows_touched, int row_floats, float lr,
                                    float weight_decay);

/* ---- sparse, fused: libffm-style click-model tables (src/ops/sparse_fused.c dispatches) ------------------------
 * A fused table keeps every latent vector next to its AdaGrad accumulators, as libffm does, so the cache line that
 * brings a weight brings its accumulator too. Row r starts at r·row_floats; its block for field f starts at
 * r·row_floats + f·2·kpad and holds kpad weights (k real, the padding zero) then kpad accumulators (the padding
 * lanes hold any positive value). FM rows have one block (num_fields = 1). With linear terms a row also holds its
 * linear weight and accumulator at linear_offset (a multiple of 4 floats past the blocks); bias points to the
 * global bias and its accumulator. kpad is a multiple of 4; row_floats a multiple of 4 that holds it all.
 *
 *   FFM   logit = bias + √scale · Σ_i w_i x_i + scale · Σ_{i<j} ⟨v[row_i, field_j], v[row_j, field_i]⟩ x_i x_j
 *   FM    logit = bias + √scale · Σ_i w_i x_i + scale · Σ_{i<j} ⟨v[row_i], v[row_j]⟩ x_i x_j  (O(kn) identity)
 *
 * scale is instance_scale[b] (nullable = 1; libffm's 1/Σx², which makes the model see the row scaled to unit norm:
 * hence √scale on the linear terms). Labels are > 0 for a click, else no click.
 *
 * The sgd ops train on the batch rows one instance at a time, as libffm does: score the row with the current
 * weights (that logit is written out, for the loss), κ = ∂logloss/∂logit, then update every vector the row used
 * with AdaGrad: g = κ·∂logit/∂v + λ·v, G += g², v −= lr·g/√G. FFM updates pair by pair in libffm's order (λ once
 * per pair, each side's gradient from the other side's current vector); FM updates each entry's vector once per
 * entry with the forward's sums; linear weights get κ·x·√scale + λ·w; the bias gets κ (no λ). With more than one thread
 * the rows are split into contiguous parts trained concurrently without locks (Hogwild, libffm's scheme): the
 * result then depends on timing. With one thread it is deterministic. The CUDA backend trains all rows of a batch
 * at once (src/ops/cuda/click_fused.cu): deterministic, and equal to the CPU's, when no two rows share a table row. */
typedef struct dl_click_table {
    float *data;          /* [num_rows, row_floats] */
    int64_t num_rows;
    int row_floats;
    int num_fields;       /* blocks per row: FFM fields; 1 for FM */
    int k, kpad;
    int linear_offset;    /* floats from a row's start to (weight, accumulator); -1: no linear terms */
    float *bias;          /* [2]: bias and accumulator; NULL: no bias */
} dl_click_table;

/* A CSR batch of B rows over a click table: entries row_ptr[b]..row_ptr[b+1]-1 give table rows, fields (FFM only;
 * NULL for FM) and values; labels [B] (sgd only) and instance_scale [B] (nullable). */
typedef struct dl_click_rows {
    int B;
    const int32_t *row_ptr;
    const int32_t *rows;
    const int32_t *fields;
    const float *values;
    const float *labels;
    const float *instance_scale;
} dl_click_rows;

/* logits[b] of every batch row with the current weights (no update). */
dl_status dl_op_ffm_fused_forward(const dl_backend *be, float *logits, const dl_click_table *table,
                                  const dl_click_rows *batch);
/* Per-instance AdaGrad training over the batch rows in order (see above); logits[b] = row b's logit before its
 * update. lr > 0, weight_decay >= 0. */
dl_status dl_op_ffm_fused_sgd(const dl_backend *be, float *logits, dl_click_table *table, const dl_click_rows *batch,
                              float lr, float weight_decay);
dl_status dl_op_fm_fused_forward(const dl_backend *be, float *logits, const dl_click_table *table,
                                 const dl_click_rows *batch);
dl_status dl_op_fm_fused_sgd(const dl_backend *be, float *logits, dl_click_table *table, const dl_click_rows *batch,
                             float lr, float weight_decay);

#ifdef __cplusplus
}
#endif

#endif
