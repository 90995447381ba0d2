/* dpo_loss.c — the DPO family of preference losses on summed log-probabilities, per pair, on the CPU.
 *
 * With h = (πc − πr) − (ρc − ρr) and z = β·h (ops.h):
 *     sigmoid (Rafailov et al., label smoothing ε as in cDPO):  L = −(1−ε)·log σ(z) − ε·log σ(−z)
 *     ipo     (Azar et al.):                                    L = (h − 1/(2β))²
 *     hinge   (SLiC):                                           L = max(0, 1 − z)
 * log σ(z) is written −softplus(−z) with softplus(x) = max(x, 0) + log1p(e^−|x|), which neither overflows nor
 * loses the tail, so a margin of ±1000 gives a finite loss and a gradient of exactly 0 or ±β. Each pair is a few
 * dozen flops and a batch holds at most thousands of pairs, so the loop is serial and in double: the answer is
 * then the correctly rounded float of a double computation, whatever the thread count. */
#include <math.h>

#include "ops/cpu/cpu_optim.h"

static double softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }

static double sigmoid(double x) {
    if (x >= 0.0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

static double margin(const float *pc, const float *pr, const float *rc, const float *rr, int i) {
    return ((double)pc[i] - (double)pr[i]) - ((double)rc[i] - (double)rr[i]);
}

/* losses[i] per pair; chosen/rejected rewards β(π − ρ) when non-NULL. */
dl_status dl_cpu_dpo_loss_forward(void *state, float *losses, float *chosen_rewards, float *rejected_rewards,
                                  const float *policy_chosen, const float *policy_rejected, const float *ref_chosen,
                                  const float *ref_rejected, int num_pairs, int loss_kind, float beta,
                                  float label_smoothing) {
    (void)state;
    const double b = beta, eps = label_smoothing;
    for (int i = 0; i < num_pairs; i++) {
        double h = margin(policy_chosen, policy_rejected, ref_chosen, ref_rejected, i);
        double z = b * h, loss;
        switch (loss_kind) {
        case DL_DPO_SIGMOID:
            loss = (1.0 - eps) * softplus(-z) + eps * softplus(z);
            break;
        case DL_DPO_IPO: {
            double d = h - 1.0 / (2.0 * b);
            loss = d * d;
            break;
        }
        default: /* DL_DPO_HINGE: the dispatcher rejects other kinds */
            loss = fmax(0.0, 1.0 - z);
            break;
        }
        losses[i] = (float)loss;
        if (chosen_rewards)
            chosen_rewards[i] = (float)(b * ((double)policy_chosen[i] - (double)ref_chosen[i]));
        if (rejected_rewards)
            rejected_rewards[i] = (float)(b * ((double)policy_rejected[i] - (double)ref_rejected[i]));
    }
    return DL_OK;
}

/* dpolicy_chosen[i] += dlosses[i]·∂L/∂πc and dpolicy_rejected[i] += dlosses[i]·∂L/∂πr (= −∂L/∂πc). */
dl_status dl_cpu_dpo_loss_backward(void *state, float *dpolicy_chosen, float *dpolicy_rejected, const float *dlosses,
                                   const float *policy_chosen, const float *policy_rejected, const float *ref_chosen,
                                   const float *ref_rejected, int num_pairs, int loss_kind, float beta,
                                   float label_smoothing) {
    (void)state;
    const double b = beta, eps = label_smoothing;
    for (int i = 0; i < num_pairs; i++) {
        double h = margin(policy_chosen, policy_rejected, ref_chosen, ref_rejected, i);
        double z = b * h, dh;
        switch (loss_kind) {
        case DL_DPO_SIGMOID:
            /* d/dz [(1−ε)·softplus(−z) + ε·softplus(z)] = −(1−ε)·σ(−z) + ε·σ(z) */
            dh = b * (-(1.0 - eps) * sigmoid(-z) + eps * sigmoid(z));
            break;
        case DL_DPO_IPO:
            dh = 2.0 * (h - 1.0 / (2.0 * b));
            break;
        default: /* DL_DPO_HINGE; the kink at z = 1 takes the zero subgradient */
            dh = 1.0 - z > 0.0 ? -b : 0.0;
            break;
        }
        double g = (double)dlosses[i] * dh;
        dpolicy_chosen[i] = (float)((double)dpolicy_chosen[i] + g);
        dpolicy_rejected[i] = (float)((double)dpolicy_rejected[i] - g);
    }
    return DL_OK;
}
