/* xent.c — softmax cross-entropy per token on CPU (forward, backward, the fused in-place classifier), and the
 * per-document sums DPO takes of the resulting log-probabilities.
 *
 * Forward, per row (rows split among threads): the max, then Σ exp(logit − max), then lse = max + log(Σ). The sum
 * runs over up to 50k terms, so it is added in vector-wide float partial sums over blocks of 1024 and the block sums
 * in double; the row costs one vectorised exp per logit (dl_cpu_expf: glibc's expf would not vectorise).
 *
 * Backward recomputes the probabilities from the saved lse instead of storing an [N, V] softmax: the gradient of a
 * row is dloss·(exp(logit − lse) − onehot(target)). When dlogits is logits (the fused classifier: the logits buffer
 * turns into its own gradient, as GPT's backward wants), each element is read once and overwritten; otherwise it is
 * added. The target column is handled on its own so its "− 1" is not a second rounding. Ignored rows (target < 0)
 * get a zero gradient: nothing is added, and in place the row is zeroed.
 *
 * Targets come from data; a target ≥ V fails naming the row and value before anything is written. */
#include <math.h>

#include "ops/cpu/cpu_dense.h"
#include "ops/cpu/cpu_dense_math.h"

enum { XENT_BLOCK = 1024 };

static dl_status check_targets(const char *op, const int32_t *targets, int N, int V) {
    for (int n = 0; n < N; n++) {
        if (targets[n] >= V) {
            dl_status s = DL_FAIL(DL_ERR_INVALID, "%s: targets[%d] = %d is outside [0, V = %d) (negative = ignored)",
                                  op, n, (int)targets[n], V);
            dl_error_hint("the data's token ids must be below the model's vocabulary size");
            return s;
        }
    }
    return DL_OK;
}

/* log Σ_v exp(x[v]) with the max subtracted. */
static float row_lse(const float *restrict x, int V) {
    /* The max in 16 lanes (one AVX-512 vector): a plain elementwise loop that every compiler vectorises, where a
     * max reduction with NaN-aware semantics is not recognised by all of them. */
    float lanes[16];
    for (int j = 0; j < 16; j++)
        lanes[j] = -INFINITY;
    int v = 0;
    for (; v + 16 <= V; v += 16) {
#pragma omp simd
        for (int j = 0; j < 16; j++)
            lanes[j] = x[v + j] > lanes[j] ? x[v + j] : lanes[j];
    }
    float mx = -INFINITY;
    for (; v < V; v++)
        mx = x[v] > mx ? x[v] : mx;
    for (int j = 0; j < 16; j++)
        mx = lanes[j] > mx ? lanes[j] : mx;
    double total = 0.0;
    for (int v0 = 0; v0 < V; v0 += XENT_BLOCK) {
        int len = V - v0 < XENT_BLOCK ? V - v0 : XENT_BLOCK;
        float part = 0.0f;
#pragma omp simd reduction(+ : part)
        for (int v = 0; v < len; v++)
            part += dl_cpu_expf(x[v0 + v] - mx);
        total += (double)part;
    }
    return (float)((double)mx + log(total));
}

dl_status dl_cpu_xent_forward(void *state, float *losses, float *lse, const float *logits, const int32_t *targets,
                              int N, int V) {
    (void)state;
    DL_CHECK(check_targets("xent_forward", targets, N, V));
    size_t work = (size_t)N * (size_t)V;
#pragma omp parallel for schedule(static) if (work >= DL_CPU_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        float l = row_lse(x, V);
        lse[n] = l;
        int t = targets[n];
        losses[n] = t < 0 ? 0.0f : l - x[t];
    }
    return DL_OK;
}

/* d[v] += scale·exp(x[v] − l) for v in [0, len). */
static void row_grad_add(float *restrict d, const float *restrict x, int len, float l, float scale) {
#pragma omp simd
    for (int v = 0; v < len; v++)
        d[v] += scale * dl_cpu_expf(x[v] - l);
}

/* x[v] = scale·exp(x[v] − l) for v in [0, len): the in-place form. */
static void row_grad_inplace(float *restrict x, int len, float l, float scale) {
#pragma omp simd
    for (int v = 0; v < len; v++)
        x[v] = scale * dl_cpu_expf(x[v] - l);
}

dl_status dl_cpu_xent_backward(void *state, float *dlogits, const float *logits, const float *lse,
                               const int32_t *targets, const float *dlosses, int N, int V) {
    (void)state;
    DL_CHECK(check_targets("xent_backward", targets, N, V));
    const int inplace = dlogits == logits;
    size_t work = (size_t)N * (size_t)V;
#pragma omp parallel for schedule(static) if (work >= DL_CPU_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        float *d = dlogits + (size_t)n * V;
        const float *x = logits + (size_t)n * V;
        int t = targets[n];
        float l = lse[n], g = dlosses[n];
        if (t < 0) {
            if (inplace)
                for (int v = 0; v < V; v++)
                    d[v] = 0.0f;
            continue;
        }
        float gt = g * (dl_cpu_expf(x[t] - l) - 1.0f); /* read before an in-place pass overwrites x[t] */
        if (inplace) {
            row_grad_inplace(d, t, l, g);
            row_grad_inplace(d + t + 1, V - t - 1, l, g);
            d[t] = gt;
        } else {
            row_grad_add(d, x, t, l, g);
            row_grad_add(d + t + 1, x + t + 1, V - t - 1, l, g);
            d[t] += gt;
        }
    }
    return DL_OK;
}

/* ---- sums per document --------------------------------------------------------------------------------------- */

static dl_status check_cu_seqlens(const char *op, const int32_t *cu_seqlens, int num_seqs) {
    if (cu_seqlens[0] != 0)
        return DL_FAIL(DL_ERR_INVALID, "%s: cu_seqlens[0] = %d, must be 0", op, (int)cu_seqlens[0]);
    for (int s = 0; s < num_seqs; s++)
        if (cu_seqlens[s + 1] < cu_seqlens[s])
            return DL_FAIL(DL_ERR_INVALID, "%s: cu_seqlens decreases at [%d]: %d after %d", op, s + 1,
                           (int)cu_seqlens[s + 1], (int)cu_seqlens[s]);
    return DL_OK;
}

dl_status dl_cpu_sequence_sum_forward(void *state, float *out, const float *values, const int32_t *cu_seqlens,
                                      int num_seqs) {
    (void)state;
    DL_CHECK(check_cu_seqlens("sequence_sum_forward", cu_seqlens, num_seqs));
    int total = cu_seqlens[num_seqs];
#pragma omp parallel for schedule(static) if (total >= DL_CPU_PARALLEL_MIN)
    for (int s = 0; s < num_seqs; s++) {
        double sum = 0.0;
        for (int n = cu_seqlens[s]; n < cu_seqlens[s + 1]; n++)
            sum += (double)values[n];
        out[s] = (float)sum;
    }
    return DL_OK;
}

dl_status dl_cpu_sequence_sum_backward(void *state, float *dvalues, const float *dout, const int32_t *cu_seqlens,
                                       int num_seqs) {
    (void)state;
    DL_CHECK(check_cu_seqlens("sequence_sum_backward", cu_seqlens, num_seqs));
    int total = cu_seqlens[num_seqs];
#pragma omp parallel for schedule(static) if (total >= DL_CPU_PARALLEL_MIN)
    for (int s = 0; s < num_seqs; s++) {
        float g = dout[s];
        for (int n = cu_seqlens[s]; n < cu_seqlens[s + 1]; n++)
            dvalues[n] += g;
    }
    return DL_OK;
}
