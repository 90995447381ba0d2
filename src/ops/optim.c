/* optim.c — the checked entry points of the optim family: optimizer steps, Σx² and scaling for gradient clipping,
 * and the DPO losses.
 *
 * Each dl_op_* checks what can be checked without touching the buffers (they may live on a GPU): pointers, sizes,
 * and the hyper-parameter ranges for which the formulas in ops.h make sense. A bad value fails with
 * DL_ERR_INVALID naming the op, the argument and its value, before any backend sees it; then DL_DISPATCH calls
 * the backend's kernel. An empty buffer (n = 0, no pairs) is a valid no-op. */
#include <inttypes.h>
#include <math.h>

#include "ops/backend_internal.h"
#include "ops/ops.h"

#define REQUIRE_OPEN(be, op) DL_REQUIRE((be) != NULL && (be)->ops != NULL, DL_ERR_INVALID, "%s: backend is not open", op)
#define REQUIRE_PTR(p, op) DL_REQUIRE((p) != NULL, DL_ERR_INVALID, "%s: %s is NULL", op, #p)

/* A learning rate or decay: finite and not negative. */
static dl_status check_nonneg(const char *op, const char *name, float x) {
    DL_REQUIRE(isfinite(x) && x >= 0.0f, DL_ERR_INVALID, "%s: %s = %g must be finite and >= 0", op, name, (double)x);
    return DL_OK;
}

/* A moment decay β: in [0, 1). */
static dl_status check_beta(const char *op, const char *name, float x) {
    if (!(x >= 0.0f && x < 1.0f)) {
        dl_status s = DL_FAIL(DL_ERR_INVALID, "%s: %s = %g is outside [0, 1)", op, name, (double)x);
        dl_error_hint("typical values are beta1 = 0.9, beta2 = 0.95 or 0.999");
        return s;
    }
    return DL_OK;
}

dl_status dl_op_adamw_update(const dl_backend *be, float *params, const float *grads, float *m, float *v, size_t n,
                             float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                             int64_t step) {
    static const char op[] = "dl_op_adamw_update";
    REQUIRE_OPEN(be, op);
    DL_CHECK(check_nonneg(op, "lr", lr));
    DL_CHECK(check_beta(op, "beta1", beta1));
    DL_CHECK(check_beta(op, "beta2", beta2));
    DL_REQUIRE(isfinite(eps) && eps > 0.0f, DL_ERR_INVALID, "%s: eps = %g must be finite and > 0", op, (double)eps);
    DL_CHECK(check_nonneg(op, "weight_decay", weight_decay));
    DL_CHECK(check_nonneg(op, "grad_scale", grad_scale));
    DL_REQUIRE(step >= 1, DL_ERR_INVALID, "%s: step = %" PRId64 " must be >= 1 (bias correction counts from 1)", op,
               step);
    if (n == 0)
        return DL_OK;
    REQUIRE_PTR(params, op);
    REQUIRE_PTR(grads, op);
    REQUIRE_PTR(m, op);
    REQUIRE_PTR(v, op);
    DL_DISPATCH(be, optim, adamw_update, params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, grad_scale,
                step);
}

dl_status dl_op_adagrad_update(const dl_backend *be, float *params, const float *grads, float *accum, size_t n,
                               float lr, float weight_decay, float grad_scale) {
    static const char op[] = "dl_op_adagrad_update";
    REQUIRE_OPEN(be, op);
    DL_CHECK(check_nonneg(op, "lr", lr));
    DL_CHECK(check_nonneg(op, "weight_decay", weight_decay));
    DL_CHECK(check_nonneg(op, "grad_scale", grad_scale));
    if (n == 0)
        return DL_OK;
    REQUIRE_PTR(params, op);
    REQUIRE_PTR(grads, op);
    REQUIRE_PTR(accum, op);
    DL_DISPATCH(be, optim, adagrad_update, params, grads, accum, n, lr, weight_decay, grad_scale);
}

dl_status dl_op_sgd_update(const dl_backend *be, float *params, const float *grads, float *momentum_buf, size_t n,
                           float lr, float momentum, float weight_decay, float grad_scale) {
    static const char op[] = "dl_op_sgd_update";
    REQUIRE_OPEN(be, op);
    DL_CHECK(check_nonneg(op, "lr", lr));
    DL_REQUIRE(momentum >= 0.0f && momentum < 1.0f, DL_ERR_INVALID, "%s: momentum = %g is outside [0, 1)", op,
               (double)momentum);
    DL_CHECK(check_nonneg(op, "weight_decay", weight_decay));
    DL_CHECK(check_nonneg(op, "grad_scale", grad_scale));
    if (n == 0)
        return DL_OK;
    REQUIRE_PTR(params, op);
    REQUIRE_PTR(grads, op);
    DL_REQUIRE(momentum == 0.0f || momentum_buf != NULL, DL_ERR_INVALID,
               "%s: momentum = %g needs a momentum buffer, got NULL", op, (double)momentum);
    DL_DISPATCH(be, optim, sgd_update, params, grads, momentum_buf, n, lr, momentum, weight_decay, grad_scale);
}

dl_status dl_op_sumsq(const dl_backend *be, double *host_result, const float *x, size_t n) {
    static const char op[] = "dl_op_sumsq";
    REQUIRE_OPEN(be, op);
    REQUIRE_PTR(host_result, op);
    if (n == 0) {
        *host_result = 0.0;
        return DL_OK;
    }
    REQUIRE_PTR(x, op);
    DL_DISPATCH(be, optim, sumsq, host_result, x, n);
}

dl_status dl_op_scale(const dl_backend *be, float *x, size_t n, float factor) {
    static const char op[] = "dl_op_scale";
    REQUIRE_OPEN(be, op);
    DL_REQUIRE(isfinite(factor), DL_ERR_INVALID, "%s: factor = %g is not finite", op, (double)factor);
    if (n == 0)
        return DL_OK;
    REQUIRE_PTR(x, op);
    DL_DISPATCH(be, optim, scale, x, n, factor);
}

/* The checks both DPO directions share: sizes, kind, β and label smoothing. */
static dl_status check_dpo(const char *op, int num_pairs, int loss_kind, float beta, float label_smoothing) {
    DL_REQUIRE(num_pairs >= 0, DL_ERR_INVALID, "%s: num_pairs = %d is negative", op, num_pairs);
    if (loss_kind != DL_DPO_SIGMOID && loss_kind != DL_DPO_IPO && loss_kind != DL_DPO_HINGE) {
        dl_status s = DL_FAIL(DL_ERR_INVALID, "%s: unknown loss_kind %d", op, loss_kind);
        dl_error_hint("use DL_DPO_SIGMOID (0), DL_DPO_IPO (1) or DL_DPO_HINGE (2)");
        return s;
    }
    DL_REQUIRE(isfinite(beta) && beta > 0.0f, DL_ERR_INVALID, "%s: beta = %g must be finite and > 0", op,
               (double)beta);
    DL_REQUIRE(label_smoothing >= 0.0f && label_smoothing <= 0.5f, DL_ERR_INVALID,
               "%s: label_smoothing = %g is outside [0, 0.5]", op, (double)label_smoothing);
    if (loss_kind != DL_DPO_SIGMOID && label_smoothing != 0.0f) {
        dl_status s = DL_FAIL(DL_ERR_INVALID, "%s: label_smoothing = %g is defined for the sigmoid loss only, not %s",
                              op, (double)label_smoothing, loss_kind == DL_DPO_IPO ? "ipo" : "hinge");
        dl_error_hint("set label smoothing to 0, or use the sigmoid loss");
        return s;
    }
    return DL_OK;
}

dl_status dl_op_dpo_loss_forward(const dl_backend *be, float *losses, float *chosen_rewards,
                                 float *rejected_rewards, const float *policy_chosen, const float *policy_rejected,
                                 const float *ref_chosen, const float *ref_rejected, int num_pairs, int loss_kind,
                                 float beta, float label_smoothing) {
    static const char op[] = "dl_op_dpo_loss_forward";
    REQUIRE_OPEN(be, op);
    DL_CHECK(check_dpo(op, num_pairs, loss_kind, beta, label_smoothing));
    if (num_pairs == 0)
        return DL_OK;
    REQUIRE_PTR(losses, op);
    REQUIRE_PTR(policy_chosen, op);
    REQUIRE_PTR(policy_rejected, op);
    REQUIRE_PTR(ref_chosen, op);
    REQUIRE_PTR(ref_rejected, op);
    DL_DISPATCH(be, optim, dpo_loss_forward, losses, chosen_rewards, rejected_rewards, policy_chosen,
                policy_rejected, ref_chosen, ref_rejected, num_pairs, loss_kind, beta, label_smoothing);
}

dl_status dl_op_dpo_loss_backward(const dl_backend *be, float *dpolicy_chosen, float *dpolicy_rejected,
                                  const float *dlosses, const float *policy_chosen, const float *policy_rejected,
                                  const float *ref_chosen, const float *ref_rejected, int num_pairs, int loss_kind,
                                  float beta, float label_smoothing) {
    static const char op[] = "dl_op_dpo_loss_backward";
    REQUIRE_OPEN(be, op);
    DL_CHECK(check_dpo(op, num_pairs, loss_kind, beta, label_smoothing));
    if (num_pairs == 0)
        return DL_OK;
    REQUIRE_PTR(dpolicy_chosen, op);
    REQUIRE_PTR(dpolicy_rejected, op);
    REQUIRE_PTR(dlosses, op);
    REQUIRE_PTR(policy_chosen, op);
    REQUIRE_PTR(policy_rejected, op);
    REQUIRE_PTR(ref_chosen, op);
    REQUIRE_PTR(ref_rejected, op);
    DL_DISPATCH(be, optim, dpo_loss_backward, dpolicy_chosen, dpolicy_rejected, dlosses, policy_chosen,
                policy_rejected, ref_chosen, ref_rejected, num_pairs, loss_kind, beta, label_smoothing);
}
