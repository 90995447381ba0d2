/* dpo_loss.cu — the DPO losses (sigmoid with label smoothing, IPO, hinge) on per-sequence summed log-probs, and
 * their gradients with respect to the policy's log-probs (the reference gets none).
 *
 * One thread per pair, in double: the inputs are sums of hundreds of log-probs (large, close numbers whose
 * differences matter), and there are only as many pairs as the batch holds, so double costs nothing here and keeps
 * the GPU result the exactly rounded one. log σ(z) is evaluated as min(z, 0) − log1p(e^−|z|), stable for any z. */
#include <math.h>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

__device__ __forceinline__ double dpo_log_sigmoid(double z) { return fmin(z, 0.0) - log1p(exp(-fabs(z))); }
__device__ __forceinline__ double dpo_sigmoid(double z) {
    return z >= 0.0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
}

/* h = (πc − πr) − (ρc − ρr) */
__device__ __forceinline__ double dpo_margin(const float *pc, const float *pr, const float *rc, const float *rr,
                                             int i) {
    return ((double)pc[i] - (double)pr[i]) - ((double)rc[i] - (double)rr[i]);
}

__global__ void dpo_forward_kernel(float *losses, float *chosen_rewards, float *rejected_rewards, const float *pc,
                                   const float *pr, const float *rc, const float *rr, int num_pairs, int kind,
                                   double beta, double eps) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= num_pairs)
        return;
    double h = dpo_margin(pc, pr, rc, rr, i);
    double loss;
    if (kind == DL_DPO_SIGMOID) {
        loss = -(1.0 - eps) * dpo_log_sigmoid(beta * h) - eps * dpo_log_sigmoid(-beta * h);
    } else if (kind == DL_DPO_IPO) {
        double d = h - 1.0 / (2.0 * beta);
        loss = d * d;
    } else {
        loss = fmax(0.0, 1.0 - beta * h);
    }
    losses[i] = (float)loss;
    if (chosen_rewards)
        chosen_rewards[i] = (float)(beta * ((double)pc[i] - (double)rc[i]));
    if (rejected_rewards)
        rejected_rewards[i] = (float)(beta * ((double)pr[i] - (double)rr[i]));
}

__global__ void dpo_backward_kernel(float *dpc, float *dpr, const float *dlosses, const float *pc, const float *pr,
                                    const float *rc, const float *rr, int num_pairs, int kind, double beta,
                                    double eps) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= num_pairs)
        return;
    double h = dpo_margin(pc, pr, rc, rr, i);
    double dh; /* dloss/dh */
    if (kind == DL_DPO_SIGMOID)
        dh = -(1.0 - eps) * beta * dpo_sigmoid(-beta * h) + eps * beta * dpo_sigmoid(beta * h);
    else if (kind == DL_DPO_IPO)
        dh = 2.0 * (h - 1.0 / (2.0 * beta));
    else
        dh = (1.0 - beta * h > 0.0) ? -beta : 0.0;
    double g = (double)dlosses[i] * dh;
    if (dpc)
        dpc[i] += (float)g;
    if (dpr)
        dpr[i] -= (float)g;
}

static dl_status dpo_check(const char *op, int loss_kind, float beta) {
    if (loss_kind != DL_DPO_SIGMOID && loss_kind != DL_DPO_IPO && loss_kind != DL_DPO_HINGE)
        return DL_FAIL(DL_ERR_INVALID, "%s (cuda): unknown loss kind %d", op, loss_kind);
    if (loss_kind == DL_DPO_IPO && beta == 0.0f)
        return DL_FAIL(DL_ERR_INVALID, "%s (cuda): the ipo loss needs beta != 0", op);
    return DL_OK;
}

extern "C" dl_status dl_cuda_dpo_loss_forward(void *state, float *losses, float *chosen_rewards,
                                              float *rejected_rewards, const float *policy_chosen,
                                              const float *policy_rejected, const float *ref_chosen,
                                              const float *ref_rejected, int num_pairs, int loss_kind, float beta,
                                              float label_smoothing) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    DL_CHECK(dpo_check("dpo_loss_forward", loss_kind, beta));
    if (num_pairs <= 0)
        return DL_OK;
    dpo_forward_kernel<<<(unsigned)((num_pairs + 255) / 256), 256, 0, st->stream>>>(
        losses, chosen_rewards, rejected_rewards, policy_chosen, policy_rejected, ref_chosen, ref_rejected, num_pairs,
        loss_kind, (double)beta, (double)label_smoothing);
    DL_CUDA_CHECK_LAUNCH("dpo_loss_forward");
    return DL_OK;
}

extern "C" dl_status dl_cuda_dpo_loss_backward(void *state, float *dpolicy_chosen, float *dpolicy_rejected,
                                               const float *dlosses, const float *policy_chosen,
                                               const float *policy_rejected, const float *ref_chosen,
                                               const float *ref_rejected, int num_pairs, int loss_kind, float beta,
                                               float label_smoothing) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    DL_CHECK(dpo_check("dpo_loss_backward", loss_kind, beta));
    if (num_pairs <= 0 || (!dpolicy_chosen && !dpolicy_rejected))
        return DL_OK;
    dpo_backward_kernel<<<(unsigned)((num_pairs + 255) / 256), 256, 0, st->stream>>>(
        dpolicy_chosen, dpolicy_rejected, dlosses, policy_chosen, policy_rejected, ref_chosen, ref_rejected, num_pairs,
        loss_kind, (double)beta, (double)label_smoothing);
    DL_CUDA_CHECK_LAUNCH("dpo_loss_backward");
    return DL_OK;
}
