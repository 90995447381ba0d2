/* test_ops_dpo.c — the DPO losses (sigmoid with label smoothing, IPO, hinge): hand-computed values for fixed pairs,
 * central finite differences on random pairs, stability at huge margins, accumulation, and argument checks.
 *
 * The fixed pairs use values exact in float (β = 0.5, ε = 0.25), so the expected numbers below are exact up to the
 * digits written. They follow from the formulas of ops.h (checked with Python's math module):
 *     h = (πc − πr) − (ρc − ρr), z = β·h, softplus(x) = log(1 + eˣ), σ(x) = 1/(1 + e⁻ˣ)
 *     sigmoid: L = (1−ε)·softplus(−z) + ε·softplus(z),   ∂L/∂πc = β·(−(1−ε)·σ(−z) + ε·σ(z)) = −∂L/∂πr
 *     ipo:     L = (h − 1/(2β))²,                         ∂L/∂πc = 2·(h − 1/(2β))
 *     hinge:   L = max(0, 1 − z),                         ∂L/∂πc = −β when 1 − z > 0, else 0
 *     rewards: chosen β(πc − ρc), rejected β(πr − ρr) */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

#define NP 4
/* Pairs (πc, πr, ρc, ρr); margins h = 1.5, −2, 0.25, 3, so z = βh = 0.75, −1, 0.125, 1.5. */
static const float PC[NP] = {-10.0f, -20.0f, -5.25f, -1.0f};
static const float PR[NP] = {-12.0f, -18.0f, -5.0f, -4.0f};
static const float RC[NP] = {-11.0f, -19.0f, -5.5f, -2.0f};
static const float RR[NP] = {-11.5f, -19.0f, -5.0f, -2.0f};
static const float BETA = 0.5f;
/* β(πc − ρc) = 0.5·(1, −1, 0.25, 1); β(πr − ρr) = 0.5·(−0.5, 1, 0, −2). */
static const double CHOSEN_REWARDS[NP] = {0.5, -0.5, 0.125, 0.5};
static const double REJECTED_REWARDS[NP] = {-0.25, 0.5, 0.0, -1.0};

/* Runs forward (NaN-poisoned outputs) and backward (dlosses = 1, gradients from zero) on the fixed pairs and
 * compares with the expected loss and ∂L/∂πc. */
static void check_fixed_pairs(int kind, float eps, const double want_loss[NP], const double want_dchosen[NP]) {
    dl_backend be = dl_test_open_cpu();
    float loss[NP], chosen[NP], rejected[NP];
    dl_test_poison(loss, NP);
    dl_test_poison(chosen, NP);
    dl_test_poison(rejected, NP);
    assert_int_equal(dl_op_dpo_loss_forward(&be, loss, chosen, rejected, PC, PR, RC, RR, NP, kind, BETA, eps), DL_OK);
    DL_ASSERT_REL(loss, want_loss, NP, 1e-7);
    DL_ASSERT_REL(chosen, CHOSEN_REWARDS, NP, 1e-7);
    DL_ASSERT_REL(rejected, REJECTED_REWARDS, NP, 1e-7);
    float dl[NP] = {1, 1, 1, 1}, dc[NP] = {0}, dr[NP] = {0};
    assert_int_equal(dl_op_dpo_loss_backward(&be, dc, dr, dl, PC, PR, RC, RR, NP, kind, BETA, eps), DL_OK);
    double want_dr[NP];
    for (int i = 0; i < NP; i++)
        want_dr[i] = -want_dchosen[i];
    DL_ASSERT_REL(dc, want_dchosen, NP, 1e-7);
    DL_ASSERT_REL(dr, want_dr, NP, 1e-7);
    dl_backend_close(&be);
}

static void sigmoid_matches_hand_values(void **state) {
    (void)state;
    /* ε = 0: L = softplus(−z): log(1 + e^−0.75) = 0.3868710061, log(1 + e) = 1.3132616875,
     * log(1 + e^−0.125) = 0.6325990353, log(1 + e^−1.5) = 0.2014132780.
     * ∂L/∂πc = −β·σ(−z): −0.5·0.3208213008 = −0.1604106504, −0.5·0.7310585786 = −0.3655292893,
     * −0.5·0.4687906266 = −0.2343953133, −0.5·0.1824255238 = −0.0912127619. */
    const double loss0[NP] = {0.3868710061, 1.3132616875, 0.6325990353, 0.2014132780};
    const double grad0[NP] = {-0.1604106504, -0.3655292893, -0.2343953133, -0.0912127619};
    check_fixed_pairs(DL_DPO_SIGMOID, 0.0f, loss0, grad0);
    /* ε = 0.25: L = 0.75·softplus(−z) + 0.25·softplus(z) = softplus(−z) + 0.25·z (softplus(z) = z + softplus(−z)):
     * 0.3868710061 + 0.1875, 1.3132616875 − 0.25, 0.6325990353 + 0.03125, 0.2014132780 + 0.375.
     * ∂L/∂πc = β·(−0.75·σ(−z) + 0.25·σ(z)) = β·(0.25 − σ(−z)): 0.5·(0.25 − 0.3208213008) = −0.0354106504, ... */
    const double loss1[NP] = {0.5743710061, 1.0632616875, 0.6638490353, 0.5764132780};
    const double grad1[NP] = {-0.0354106504, -0.2405292893, -0.1093953133, 0.0337872381};
    check_fixed_pairs(DL_DPO_SIGMOID, 0.25f, loss1, grad1);
}

static void ipo_matches_hand_values(void **state) {
    (void)state;
    /* 1/(2β) = 1: L = (h − 1)² = 0.25, 9, 0.5625, 4; ∂L/∂πc = 2(h − 1) = 1, −6, −1.5, 4. */
    const double loss[NP] = {0.25, 9.0, 0.5625, 4.0};
    const double grad[NP] = {1.0, -6.0, -1.5, 4.0};
    check_fixed_pairs(DL_DPO_IPO, 0.0f, loss, grad);
}

static void hinge_matches_hand_values(void **state) {
    (void)state;
    /* L = max(0, 1 − z) = 0.25, 2, 0.875, 0; ∂L/∂πc = −β = −0.5 for the first three, 0 for the last (z = 1.5). */
    const double loss[NP] = {0.25, 2.0, 0.875, 0.0};
    const double grad[NP] = {-0.5, -0.5, -0.5, 0.0};
    check_fixed_pairs(DL_DPO_HINGE, 0.0f, loss, grad);
}

/* ---- finite differences ----------------------------------------------------------------------------------------- */

#define NFD 64

/* Central differences of each pair's loss in πc and πr (each loss depends on its own pair only, so all pairs are
 * perturbed at once), weighted by dlosses, against backward. */
static void check_fd(int kind, float beta, float eps, uint64_t stream) {
    dl_backend be = dl_test_open_cpu();
    dl_rng rng;
    dl_test_rng(&rng, stream);
    float pc[NFD], pr[NFD], rc[NFD], rr[NFD], dl[NFD];
    for (int i = 0; i < NFD; i++) {
        for (;;) {
            pc[i] = -60.0f + 55.0f * dl_rng_uniform(&rng);
            pr[i] = -60.0f + 55.0f * dl_rng_uniform(&rng);
            rc[i] = pc[i] + (dl_rng_uniform(&rng) - 0.5f) * 8.0f;
            rr[i] = pr[i] + (dl_rng_uniform(&rng) - 0.5f) * 8.0f;
            double z = beta * (((double)pc[i] - pr[i]) - ((double)rc[i] - rr[i]));
            if (kind != DL_DPO_HINGE || fabs(1.0 - z) > 0.5 * beta) /* stay away from the hinge's kink */
                break;
        }
        dl[i] = 0.5f + dl_rng_uniform(&rng);
    }
    float dc[NFD], dr[NFD];
    memset(dc, 0, sizeof dc);
    memset(dr, 0, sizeof dr);
    assert_int_equal(dl_op_dpo_loss_backward(&be, dc, dr, dl, pc, pr, rc, rr, NFD, kind, beta, eps), DL_OK);

    const float delta = 0.0625f;
    double fd_c[NFD], fd_r[NFD];
    for (int which = 0; which < 2; which++) {
        float *x = which == 0 ? pc : pr;
        double *fd = which == 0 ? fd_c : fd_r;
        float plus[NFD], minus[NFD], saved[NFD], up[NFD], down[NFD];
        memcpy(saved, x, sizeof saved);
        for (int i = 0; i < NFD; i++)
            x[i] = up[i] = saved[i] + delta;
        assert_int_equal(dl_op_dpo_loss_forward(&be, plus, NULL, NULL, pc, pr, rc, rr, NFD, kind, beta, eps), DL_OK);
        for (int i = 0; i < NFD; i++)
            x[i] = down[i] = saved[i] - delta;
        assert_int_equal(dl_op_dpo_loss_forward(&be, minus, NULL, NULL, pc, pr, rc, rr, NFD, kind, beta, eps),
                         DL_OK);
        memcpy(x, saved, sizeof saved);
        /* Divide by the step the floats actually took, which rounding may have changed slightly. */
        for (int i = 0; i < NFD; i++)
            fd[i] = (double)dl[i] * ((double)plus[i] - (double)minus[i]) / ((double)up[i] - (double)down[i]);
    }
    DL_ASSERT_REL(dc, fd_c, NFD, 2e-3);
    DL_ASSERT_REL(dr, fd_r, NFD, 2e-3);
    dl_backend_close(&be);
}

static void gradients_match_finite_differences(void **state) {
    (void)state;
    check_fd(DL_DPO_SIGMOID, 0.1f, 0.0f, 1);
    check_fd(DL_DPO_SIGMOID, 0.5f, 0.1f, 2);
    check_fd(DL_DPO_IPO, 0.1f, 0.0f, 3);
    check_fd(DL_DPO_IPO, 1.0f, 0.0f, 4);
    check_fd(DL_DPO_HINGE, 0.25f, 0.0f, 5);
}

/* ---- stability, accumulation ------------------------------------------------------------------------------------ */

static void huge_margins_stay_finite(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    /* h = +1000 and −1000 with β = 1, ε = 0.1: softplus(−1000) underflows to 0, softplus(1000) = 1000. */
    const float pc[2] = {0.0f, -1000.0f}, pr[2] = {-1000.0f, 0.0f}, rc[2] = {0, 0}, rr[2] = {0, 0};
    float loss[2], dc[2] = {0, 0}, dr[2] = {0, 0}, dl[2] = {1, 1};
    assert_int_equal(dl_op_dpo_loss_forward(&be, loss, NULL, NULL, pc, pr, rc, rr, 2, DL_DPO_SIGMOID, 1.0f, 0.1f),
                     DL_OK);
    assert_int_equal(dl_op_dpo_loss_backward(&be, dc, dr, dl, pc, pr, rc, rr, 2, DL_DPO_SIGMOID, 1.0f, 0.1f), DL_OK);
    /* z = 1000: L = 0.9·0 + 0.1·1000 = 100, ∂L/∂πc = −0.9·σ(−1000) + 0.1·σ(1000) = 0.1.
     * z = −1000: L = 0.9·1000 + 0.1·0 = 900, ∂L/∂πc = −0.9·1 + 0.1·0 = −0.9. */
    const double want_loss[2] = {100.0, 900.0}, want_dc[2] = {0.1, -0.9}, want_dr[2] = {-0.1, 0.9};
    DL_ASSERT_REL(loss, want_loss, 2, 1e-7);
    DL_ASSERT_REL(dc, want_dc, 2, 1e-7);
    DL_ASSERT_REL(dr, want_dr, 2, 1e-7);
    dl_backend_close(&be);
}

static void backward_accumulates(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    float dl[NP] = {1.0f, 2.0f, -1.0f, 0.5f};
    float dc[NP] = {10, 20, 30, 40}, dr[NP] = {-1, -2, -3, -4};
    assert_int_equal(dl_op_dpo_loss_backward(&be, dc, dr, dl, PC, PR, RC, RR, NP, DL_DPO_IPO, BETA, 0.0f), DL_OK);
    assert_int_equal(dl_op_dpo_loss_backward(&be, dc, dr, dl, PC, PR, RC, RR, NP, DL_DPO_IPO, BETA, 0.0f), DL_OK);
    /* IPO ∂L/∂πc = 1, −6, −1.5, 4 (see ipo_matches_hand_values), twice, times dlosses. */
    const double want_dc[NP] = {10 + 2 * 1.0, 20 + 2 * 2 * -6.0, 30 + 2 * -1 * -1.5, 40 + 2 * 0.5 * 4.0};
    const double want_dr[NP] = {-1 - 2 * 1.0, -2 - 2 * 2 * -6.0, -3 - 2 * -1 * -1.5, -4 - 2 * 0.5 * 4.0};
    DL_ASSERT_REL(dc, want_dc, NP, 1e-7);
    DL_ASSERT_REL(dr, want_dr, NP, 1e-7);
    dl_backend_close(&be);
}

/* ---- argument checks -------------------------------------------------------------------------------------------- */

#define EXPECT_FAIL(call, needle)                                                                              \
    do {                                                                                                       \
        dl_error_clear();                                                                                      \
        dl_status s_ = (call);                                                                                 \
        if (s_ != DL_ERR_INVALID || strstr(dl_error_message(), (needle)) == NULL)                              \
            DL_TEST_FAIL("%s: got status %d and message '%s', want DL_ERR_INVALID mentioning '%s'", #call,     \
                         (int)s_, dl_error_message(), (needle));                                              \
    } while (0)

static void arguments_are_checked(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    float loss[NP], dl[NP] = {1, 1, 1, 1}, dc[NP] = {0}, dr[NP] = {0};
    EXPECT_FAIL(dl_op_dpo_loss_forward(&be, loss, NULL, NULL, PC, PR, RC, RR, NP, 3, BETA, 0.0f),
                "unknown loss_kind 3");
    EXPECT_FAIL(dl_op_dpo_loss_forward(&be, loss, NULL, NULL, PC, PR, RC, RR, NP, DL_DPO_IPO, BETA, 0.1f),
                "label_smoothing = 0.1 is defined for the sigmoid loss only, not ipo");
    EXPECT_FAIL(dl_op_dpo_loss_backward(&be, dc, dr, dl, PC, PR, RC, RR, NP, DL_DPO_HINGE, BETA, 0.1f),
                "not hinge");
    EXPECT_FAIL(dl_op_dpo_loss_forward(&be, loss, NULL, NULL, PC, PR, RC, RR, NP, DL_DPO_SIGMOID, BETA, 0.75f),
                "label_smoothing = 0.75 is outside [0, 0.5]");
    EXPECT_FAIL(dl_op_dpo_loss_forward(&be, loss, NULL, NULL, PC, PR, RC, RR, NP, DL_DPO_SIGMOID, 0.0f, 0.0f),
                "beta = 0 must be finite and > 0");
    EXPECT_FAIL(dl_op_dpo_loss_backward(&be, dc, dr, dl, PC, PR, RC, RR, NP, DL_DPO_SIGMOID, NAN, 0.0f), "beta = nan");
    EXPECT_FAIL(dl_op_dpo_loss_forward(&be, NULL, NULL, NULL, PC, PR, RC, RR, NP, DL_DPO_SIGMOID, BETA, 0.0f),
                "losses is NULL");
    EXPECT_FAIL(dl_op_dpo_loss_forward(&be, loss, NULL, NULL, PC, PR, NULL, RR, NP, DL_DPO_SIGMOID, BETA, 0.0f),
                "ref_chosen is NULL");
    EXPECT_FAIL(dl_op_dpo_loss_backward(&be, dc, dr, NULL, PC, PR, RC, RR, NP, DL_DPO_SIGMOID, BETA, 0.0f),
                "dlosses is NULL");
    EXPECT_FAIL(dl_op_dpo_loss_forward(&be, loss, NULL, NULL, PC, PR, RC, RR, -1, DL_DPO_SIGMOID, BETA, 0.0f),
                "num_pairs = -1 is negative");
    dl_backend_close(&be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sigmoid_matches_hand_values),
        cmocka_unit_test(ipo_matches_hand_values),
        cmocka_unit_test(hinge_matches_hand_values),
        cmocka_unit_test(gradients_match_finite_differences),
        cmocka_unit_test(huge_margins_stay_finite),
        cmocka_unit_test(backward_accumulates),
        cmocka_unit_test(arguments_are_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
