/* click_fused.cu — the fused libffm-style FM and FFM ops (ops.h, "sparse, fused") on the GPU: scoring a batch of
 * rows from a fused table (weights next to their AdaGrad accumulators) and training on it one instance at a time.
 *
 * Mapping. Four consecutive threads (a "quad") own one batch row. Thread l of the quad handles the latent lanes
 * l, l+4, l+8, ... of every vector the row uses: exactly lane l of the CPU kernels' four-float vectors (dl_v4), so
 * each thread walks the row's entries, pairs and four-float chunks in the CPU's order and keeps the CPU's partial
 * sums (FFM: the two accumulators alternating with (j + chunk) parity; FM: s and Σ(vx)² per lane, then
 * Σ(s² − Σ(vx)²) over chunks), and the quad folds them as dl_v4_fold does ((l0 + l1) + (l2 + l3), via shuffles).
 * Products and sums go through __fmul_rn / __fadd_rn so nvcc cannot contract them into FMAs (the CPU, built as ISO
 * C, rounds every product), and division and square root are the IEEE ones. Scores are therefore the CPU's bits;
 * training differs only through κ = −y·σ(−y·t), whose expf is not correctly rounded on either side (a few ulp).
 * Lanes of a vector never interact in an AdaGrad step, so the per-lane split keeps libffm's sequential semantics
 * within a row exactly: score the row, then update pair after pair (FFM, λ once per pair, each side's gradient from
 * the other side's vector as it is at that moment; when both sides are the same block the second side's step is
 * the one kept, as the CPU's stores do) or entry after entry (FM), then the linear weights and the bias (thread 0).
 * The FM update needs the row's sums s again: they wait in backend scratch, [B, kpad] floats.
 *
 * Concurrency (Hogwild). All rows of a batch train at once, like libffm's lock-free threads but with thousands of
 * rows in flight instead of a few. Each AdaGrad step is applied as two atomic adds (G += g², then w −= η·g/√G'), so
 * concurrent rows never lose each other's steps — without that the bias, which every row updates, would keep about
 * one step per batch. What a row can see is stale: another row's step may land between its reads and its own step,
 * and a row scored while others train reads their vectors mid-update. The result then depends on timing and varies
 * between runs (as on the CPU with several threads), and grows further from the sequential order as batches grow;
 * rows that share no table row (and a table without bias) train exactly as the CPU does. Training reads go through
 * L2 (__ldcg), where the atomics land; scoring alone reads through the read-only path.
 *
 * Ids come from device memory. A check kernel first validates every row's offsets and every entry's row and field;
 * the op kernel does nothing when it found one, so a bad batch changes nothing and the op fails with DL_ERR_INVALID
 * naming the entry (one stream synchronisation per op, which the caller pays anyway to read the logits). */
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

#define QUAD 4
#define CLICK_THREADS 128
#define CLICK_ROWS_PER_BLOCK (CLICK_THREADS / QUAD)
#define CHECK_WARPS 4

/* Rounded single-precision operations that are never fused (see the top of the file). */
__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub(float a, float b) { return __fsub_rn(a, b); }

/* A table float: through L2 when training (other rows' atomics land there; L1 is not coherent with them), through
 * the read-only cache when only scoring. */
template <bool TRAIN>
__device__ __forceinline__ float tload(const float *p) {
    if constexpr (TRAIN)
        return __ldcg(p);
    else
        return __ldg(p);
}

/* (v of quad thread 0 + thread 1) + (thread 2 + thread 3), the same in all four threads: dl_v4_fold. */
__device__ __forceinline__ float quad_fold(float v, unsigned mask) {
    const float v0 = __shfl_sync(mask, v, 0, QUAD), v1 = __shfl_sync(mask, v, 1, QUAD);
    const float v2 = __shfl_sync(mask, v, 2, QUAD), v3 = __shfl_sync(mask, v, 3, QUAD);
    return add(add(v0, v1), add(v2, v3));
}

/* −y·σ(−y·t) with y = ±1 (dl_click_kappa): the logloss gradient with respect to the logit, no overflow for any t. */
__device__ __forceinline__ float click_kappa(float t, float label) {
    const float y = label > 0.0f ? 1.0f : -1.0f;
    const float z = -y * t;
    const float s = z >= 0.0f ? __fdiv_rn(1.0f, add(1.0f, expf(-z))) : __fdiv_rn(expf(z), add(1.0f, expf(z)));
    return -y * s;
}

/* One AdaGrad step with gradient g on the float at pw and its accumulator at pG, which read G: G' = G + g²,
 * w' = w − η·g/√G' (the CPU's roundings), applied as atomic adds so a concurrent row's step is kept too. */
__device__ __forceinline__ void adagrad_step(float *pw, float *pG, float G, float g, float eta) {
    const float g2 = mul(g, g);
    const float step = __fdiv_rn(mul(eta, g), __fsqrt_rn(add(G, g2)));
    atomicAdd(pG, g2);
    atomicAdd(pw, -step);
}

/* Whether the check kernel before this one found a bad index. */
__device__ __forceinline__ bool fault_seen(const dl_cuda_fault *fault) {
    return *(const volatile int *)&fault->flag != 0;
}

/* bias + Σ w_i·x_i·√scale over the entries (0 without bias and linear terms), in entry order. */
template <bool TRAIN>
__device__ __forceinline__ float linear_score(const dl_click_table &t, const dl_click_rows &b, int32_t e0, int32_t e1,
                                              float scale) {
    float s = t.bias ? tload<TRAIN>(t.bias) : 0.0f;
    if (t.linear_offset >= 0) {
        const float root = __fsqrt_rn(scale);
        const size_t rf = (size_t)t.row_floats;
        for (int32_t e = e0; e < e1; e++)
            s = add(s, mul(tload<TRAIN>(t.data + (size_t)b.rows[e] * rf + (size_t)t.linear_offset),
                           mul(b.values[e], root)));
    }
    return s;
}

/* AdaGrad on the row's linear weights (g = κ·x·√scale + λ·w, entry order) and the bias (g = κ). One thread. */
__device__ __forceinline__ void linear_update(const dl_click_table &t, const dl_click_rows &b, int32_t e0, int32_t e1,
                                              float kappa, float scale, float eta, float lambda) {
    if (t.linear_offset >= 0) {
        const float root = __fsqrt_rn(scale);
        const size_t rf = (size_t)t.row_floats;
        for (int32_t e = e0; e < e1; e++) {
            float *w = t.data + (size_t)b.rows[e] * rf + (size_t)t.linear_offset;
            const float g = add(mul(kappa, mul(b.values[e], root)), mul(lambda, __ldcg(w)));
            adagrad_step(w, w + 1, __ldcg(w + 1), g, eta);
        }
    }
    if (t.bias)
        adagrad_step(t.bias, t.bias + 1, __ldcg(t.bias + 1), kappa, eta);
}

/* ---- FFM --------------------------------------------------------------------------------------------------------- */

/* The row's logit, in every thread of its quad. CH: four-float chunks per vector (kpad / 4), 0 = read kpad. */
template <bool TRAIN, int CH>
__device__ __forceinline__ float ffm_score(const dl_click_table &t, const dl_click_rows &b, int row, int lane,
                                           unsigned mask) {
    const int32_t e0 = b.row_ptr[row], e1 = b.row_ptr[row + 1];
    const float scale = b.instance_scale ? b.instance_scale[row] : 1.0f;
    const size_t rf = (size_t)t.row_floats, bs = 2 * (size_t)t.kpad;
    const int chunks = CH > 0 ? CH : t.kpad / 4;
    float acc0 = 0.0f, acc1 = 0.0f;
    for (int32_t i = e0; i < e1; i++) {
        const float *base_i = t.data + (size_t)b.rows[i] * rf + lane;
        const size_t fi = (size_t)b.fields[i] * bs;
        const float xi = b.values[i];
        for (int32_t j = i + 1; j < e1; j++) {
            const float *a = base_i + (size_t)b.fields[j] * bs;                /* v[row_i, field_j] */
            const float *c = t.data + (size_t)b.rows[j] * rf + fi + lane;      /* v[row_j, field_i] */
            const float v = mul(mul(xi, b.values[j]), scale);
            for (int q = 0; q < chunks; q++) {
                const float p = mul(mul(tload<TRAIN>(a + 4 * q), tload<TRAIN>(c + 4 * q)), v);
                if (((j + q) & 1) == 0)
                    acc0 = add(acc0, p);
                else
                    acc1 = add(acc1, p);
            }
        }
    }
    const float pairs = quad_fold(add(acc0, acc1), mask);
    return add(linear_score<TRAIN>(t, b, e0, e1, scale), pairs);
}

/* libffm's pair updates, this thread's lanes: for i < j, g1 = λ·w1 + κv·w2 and g2 = λ·w2 + κv·w1 from the values as
 * they are now, then an AdaGrad step on both blocks (only the second when they are the same block). */
template <int CH>
__device__ __forceinline__ void ffm_update(const dl_click_table &t, const dl_click_rows &b, int row, int lane,
                                           float kappa, float eta, float lambda) {
    const int32_t e0 = b.row_ptr[row], e1 = b.row_ptr[row + 1];
    const float scale = b.instance_scale ? b.instance_scale[row] : 1.0f;
    const int kpad = t.kpad;
    const size_t rf = (size_t)t.row_floats, bs = 2 * (size_t)kpad;
    const int chunks = CH > 0 ? CH : kpad / 4;
    for (int32_t i = e0; i < e1; i++) {
        float *base_i = t.data + (size_t)b.rows[i] * rf;
        const size_t fi = (size_t)b.fields[i] * bs;
        const float xi = b.values[i];
        for (int32_t j = i + 1; j < e1; j++) {
            float *b1 = base_i + (size_t)b.fields[j] * bs;
            float *b2 = t.data + (size_t)b.rows[j] * rf + fi;
            const bool same = b1 == b2;
            const float kv = mul(kappa, mul(mul(xi, b.values[j]), scale));
            for (int q = 0; q < chunks; q++) {
                const int d = 4 * q + lane;
                const float w1 = __ldcg(b1 + d), w2 = __ldcg(b2 + d);
                const float G1 = __ldcg(b1 + kpad + d), G2 = __ldcg(b2 + kpad + d);
                const float g1 = add(mul(lambda, w1), mul(kv, w2));
                const float g2 = add(mul(lambda, w2), mul(kv, w1));
                if (!same)
                    adagrad_step(b1 + d, b1 + kpad + d, G1, g1, eta);
                adagrad_step(b2 + d, b2 + kpad + d, G2, g2, eta);
            }
        }
    }
}

template <bool TRAIN, int CH>
__global__ void __launch_bounds__(CLICK_THREADS)
    ffm_fused_kernel(float *logits, dl_click_table t, dl_click_rows b, float eta, float lambda,
                     const dl_cuda_fault *fault) {
    if (fault_seen(fault))
        return;
    const int lane = (int)(threadIdx.x & (QUAD - 1));
    const long long row = (long long)blockIdx.x * CLICK_ROWS_PER_BLOCK + (threadIdx.x / QUAD);
    if (row >= b.B)
        return; /* the whole quad */
    const unsigned mask = 0xfu << (threadIdx.x & 28u);
    const float score = ffm_score<TRAIN, CH>(t, b, (int)row, lane, mask);
    if (lane == 0)
        logits[row] = score;
    if constexpr (TRAIN) {
        const float kappa = click_kappa(score, b.labels[row]);
        ffm_update<CH>(t, b, (int)row, lane, kappa, eta, lambda);
        if (lane == 0)
            linear_update(t, b, b.row_ptr[row], b.row_ptr[row + 1], kappa,
                          b.instance_scale ? b.instance_scale[row] : 1.0f, eta, lambda);
    }
}

/* ---- FM ---------------------------------------------------------------------------------------------------------- */

/* The row's logit, in every thread of its quad: s_d = Σ v_d·x and q_d = Σ (v_d·x)² per lane, the pairwise term
 * scale·½·Σ_d(s_d² − q_d). When s is set, this thread's s_d are kept there for the update. */
template <bool TRAIN, int CH>
__device__ __forceinline__ float fm_score(const dl_click_table &t, const dl_click_rows &b, int row, int lane,
                                          unsigned mask, float *s) {
    const int32_t e0 = b.row_ptr[row], e1 = b.row_ptr[row + 1];
    const float scale = b.instance_scale ? b.instance_scale[row] : 1.0f;
    const size_t rf = (size_t)t.row_floats;
    const int chunks = CH > 0 ? CH : t.kpad / 4;
    float acc = 0.0f;
    for (int q = 0; q < chunks; q++) {
        const int d = 4 * q + lane;
        float sv = 0.0f, sq = 0.0f;
        for (int32_t e = e0; e < e1; e++) {
            const float xv = mul(tload<TRAIN>(t.data + (size_t)b.rows[e] * rf + d), b.values[e]);
            sv = add(sv, xv);
            sq = add(sq, mul(xv, xv));
        }
        if (s)
            s[d] = sv;
        acc = add(acc, sub(mul(sv, sv), sq));
    }
    const float pairs = quad_fold(acc, mask);
    return add(linear_score<TRAIN>(t, b, e0, e1, scale), mul(scale, mul(0.5f, pairs)));
}

/* Each entry in order: its vector gets g = κ·scale·x·(s − v·x) + λ·v (this thread's lanes), then (thread 0) its
 * linear weight; the bias last. */
template <int CH>
__device__ __forceinline__ void fm_update(const dl_click_table &t, const dl_click_rows &b, int row, int lane,
                                          const float *s, float kappa, float eta, float lambda) {
    const int32_t e0 = b.row_ptr[row], e1 = b.row_ptr[row + 1];
    const float scale = b.instance_scale ? b.instance_scale[row] : 1.0f;
    const int kpad = t.kpad;
    const size_t rf = (size_t)t.row_floats;
    const int chunks = CH > 0 ? CH : kpad / 4;
    const float root = __fsqrt_rn(scale);
    for (int32_t e = e0; e < e1; e++) {
        float *blk = t.data + (size_t)b.rows[e] * rf;
        const float x = b.values[e];
        const float c = mul(mul(kappa, scale), x);
        for (int q = 0; q < chunks; q++) {
            const int d = 4 * q + lane;
            const float v = __ldcg(blk + d), G = __ldcg(blk + kpad + d);
            const float g = add(mul(c, sub(s[d], mul(v, x))), mul(lambda, v));
            adagrad_step(blk + d, blk + kpad + d, G, g, eta);
        }
        if (t.linear_offset >= 0 && lane == 0) {
            float *w = blk + t.linear_offset;
            const float g = add(mul(kappa, mul(x, root)), mul(lambda, __ldcg(w)));
            adagrad_step(w, w + 1, __ldcg(w + 1), g, eta);
        }
    }
    if (t.bias && lane == 0)
        adagrad_step(t.bias, t.bias + 1, __ldcg(t.bias + 1), kappa, eta);
}

template <bool TRAIN, int CH>
__global__ void __launch_bounds__(CLICK_THREADS)
    fm_fused_kernel(float *logits, dl_click_table t, dl_click_rows b, float eta, float lambda, float *sums,
                    const dl_cuda_fault *fault) {
    if (fault_seen(fault))
        return;
    const int lane = (int)(threadIdx.x & (QUAD - 1));
    const long long row = (long long)blockIdx.x * CLICK_ROWS_PER_BLOCK + (threadIdx.x / QUAD);
    if (row >= b.B)
        return; /* the whole quad */
    const unsigned mask = 0xfu << (threadIdx.x & 28u);
    float *s = TRAIN ? sums + (size_t)row * (size_t)t.kpad : NULL;
    const float score = fm_score<TRAIN, CH>(t, b, (int)row, lane, mask, s);
    if (lane == 0)
        logits[row] = score;
    if constexpr (TRAIN) {
        const float kappa = click_kappa(score, b.labels[row]);
        fm_update<CH>(t, b, (int)row, lane, s, kappa, eta, lambda);
    }
}

/* ---- index check and launches ------------------------------------------------------------------------------------ */

/* One warp per batch row: offsets non-negative and non-decreasing, every entry's row in [0, num_rows) and (fields
 * set) field in [0, num_fields). Reports the first bad one. */
__global__ void __launch_bounds__(CHECK_WARPS * 32)
    click_check_kernel(const int32_t *row_ptr, const int32_t *rows, const int32_t *fields, int B, long long num_rows,
                       int num_fields, dl_cuda_fault *fault) {
    const int lane = (int)(threadIdx.x & 31);
    const long long b = (long long)blockIdx.x * CHECK_WARPS + (threadIdx.x >> 5);
    if (b >= B)
        return;
    int start, end;
    if (!dl_csr_bounds(row_ptr, (int)b, lane, start, end, fault))
        return;
    for (long long e = (long long)start + lane; e < end; e += 32) {
        const int32_t r = rows[e];
        if (r < 0 || r >= num_rows)
            dl_cuda_report(fault, DL_FAULT_ROW, e, r, num_rows);
        if (fields && (fields[e] < 0 || fields[e] >= num_fields))
            dl_cuda_report(fault, DL_FAULT_FIELD, e, fields[e], num_fields);
    }
}

static dl_status click_check(dl_cuda_state *st, const char *op, const dl_click_table *t, const dl_click_rows *b,
                             int ffm) {
    DL_CHECK(dl_cuda_fault_reset(st));
    const unsigned grid = (unsigned)(((long long)b->B + CHECK_WARPS - 1) / CHECK_WARPS);
    click_check_kernel<<<grid, CHECK_WARPS * 32, 0, st->stream>>>(b->row_ptr, b->rows, ffm ? b->fields : NULL, b->B,
                                                                   (long long)t->num_rows, t->num_fields,
                                                                   st->fault_dev);
    DL_CUDA_CHECK_LAUNCH(op);
    return DL_OK;
}

static unsigned click_grid(int B) {
    return (unsigned)(((long long)B + CLICK_ROWS_PER_BLOCK - 1) / CLICK_ROWS_PER_BLOCK);
}

/* Checks the batch's ids, then scores (TRAIN false) or trains (true) on it; kpad 4 and 8 get unrolled chunks. */
template <bool TRAIN>
static dl_status ffm_run(void *state, const char *op, float *logits, const dl_click_table *t, const dl_click_rows *b,
                         float eta, float lambda) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (b->B <= 0)
        return DL_OK;
    DL_CHECK(click_check(st, op, t, b, 1));
    const unsigned grid = click_grid(b->B);
    switch (t->kpad) {
    case 4:
        ffm_fused_kernel<TRAIN, 1><<<grid, CLICK_THREADS, 0, st->stream>>>(logits, *t, *b, eta, lambda, st->fault_dev);
        break;
    case 8:
        ffm_fused_kernel<TRAIN, 2><<<grid, CLICK_THREADS, 0, st->stream>>>(logits, *t, *b, eta, lambda, st->fault_dev);
        break;
    default:
        ffm_fused_kernel<TRAIN, 0><<<grid, CLICK_THREADS, 0, st->stream>>>(logits, *t, *b, eta, lambda, st->fault_dev);
        break;
    }
    DL_CUDA_CHECK_LAUNCH(op);
    return dl_cuda_fault_check(st, op);
}

template <bool TRAIN>
static dl_status fm_run(void *state, const char *op, float *logits, const dl_click_table *t, const dl_click_rows *b,
                        float eta, float lambda) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    if (b->B <= 0)
        return DL_OK;
    float *sums = NULL;
    if (TRAIN) /* before the check kernel: growing the scratch waits for the stream */
        DL_CHECK(dl_cuda_scratch(st, (size_t)b->B * (size_t)t->kpad * sizeof(float), (void **)&sums));
    DL_CHECK(click_check(st, op, t, b, 0));
    const unsigned grid = click_grid(b->B);
    switch (t->kpad) {
    case 4:
        fm_fused_kernel<TRAIN, 1><<<grid, CLICK_THREADS, 0, st->stream>>>(logits, *t, *b, eta, lambda, sums,
                                                                          st->fault_dev);
        break;
    case 8:
        fm_fused_kernel<TRAIN, 2><<<grid, CLICK_THREADS, 0, st->stream>>>(logits, *t, *b, eta, lambda, sums,
                                                                          st->fault_dev);
        break;
    default:
        fm_fused_kernel<TRAIN, 0><<<grid, CLICK_THREADS, 0, st->stream>>>(logits, *t, *b, eta, lambda, sums,
                                                                          st->fault_dev);
        break;
    }
    DL_CUDA_CHECK_LAUNCH(op);
    return dl_cuda_fault_check(st, op);
}

extern "C" dl_status dl_cuda_ffm_fused_forward(void *state, float *logits, const dl_click_table *table,
                                               const dl_click_rows *batch) {
    return ffm_run<false>(state, "ffm_fused_forward", logits, table, batch, 0.0f, 0.0f);
}

extern "C" dl_status dl_cuda_ffm_fused_sgd(void *state, float *logits, dl_click_table *table,
                                           const dl_click_rows *batch, float lr, float weight_decay) {
    return ffm_run<true>(state, "ffm_fused_sgd", logits, table, batch, lr, weight_decay);
}

extern "C" dl_status dl_cuda_fm_fused_forward(void *state, float *logits, const dl_click_table *table,
                                              const dl_click_rows *batch) {
    return fm_run<false>(state, "fm_fused_forward", logits, table, batch, 0.0f, 0.0f);
}

extern "C" dl_status dl_cuda_fm_fused_sgd(void *state, float *logits, dl_click_table *table,
                                          const dl_click_rows *batch, float lr, float weight_decay) {
    return fm_run<true>(state, "fm_fused_sgd", logits, table, batch, lr, weight_decay);
}
