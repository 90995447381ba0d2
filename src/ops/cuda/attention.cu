/* attention.cu — causal self-attention over packed documents (varlen, cu_seqlens), FlashAttention-2 style, fp32.
 *
 * Work units. A document of len tokens has ceil(len/64) tiles of 64 positions. The host copies cu_seqlens (one small
 * copy and a stream wait per call), checks it, and lists every (document, tile) pair; blocks are launched over
 * (tile list, head). Longest-running tiles go first (a query tile t of the forward visits t+1 key tiles; a key tile
 * t of the backward visits ntiles−t query tiles), so the last wave is short. Nothing crosses a document: a block
 * only ever reads rows of its own document, and the causal mask is k ≤ q in document positions.
 *
 * Forward (one block per query tile and head, 256 threads as 16×16): Q stays in shared memory; for each key tile up
 * to the diagonal, K and V are loaded, S = scale·Q·Kᵀ is computed as 4×4 register micro-tiles, the running row max
 * and row sum are updated (online softmax: rescale the accumulator when the max grows), P goes through shared memory
 * and O += P·V accumulates in registers. At the end O /= l and lse = m + log l are written; nothing T×T exists.
 *
 * Backward recomputes P = exp(scale·Q·Kᵀ − lse) tile by tile from the saved lse, with D = rowsum(dO ∘ O) computed
 * first. FlashAttention-2 adds dQ across key-tile blocks with atomics; here dQ has its own pass instead (one block
 * per query tile, looping over key tiles) and dK, dV another (one block per key tile, looping over query tiles).
 * That recomputes S and dP once more (7 tile products instead of 5) but every gradient is summed in a fixed order:
 * the attention backward is deterministic, like the CPU's, which exact resume relies on.
 *
 * Shared-memory layout. Every [64 × D] tile is stored row-major with a row stride of DP+1 floats (DP = D rounded up
 * to 32, 64 or 128; the padding columns hold zeros) and the 64×64 score tile with stride 65. With a stride ≡ 1
 * (mod 32), a thread owning rows ty+16i and columns tx+16j reads rows as broadcasts and columns from 16 distinct
 * banks, so every product — Q·Kᵀ, P·V, Pᵀ·dO, dSᵀ·Q, dS·K — reads its operands conflict-free from the one layout,
 * without transposed copies. Cost: 4 KB per tile row block more than unpadded. At DP = 128 the backward needs
 * ~146 KB of shared memory per block (A100 and H100 allow it after opting in; one block per SM).
 *
 * Precision: all fp32 with accurate expf/logf; compared with the CPU the differences are float summation order
 * (a few 1e-7 relative). */
#include <stdlib.h>
#include <string.h>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.cuh"

#define ATT_B 64        /* query rows and key columns per tile */
#define ATT_THREADS 256 /* 16 × 16: thread (ty, tx) owns rows ty+16i and columns tx+16j, i, j < 4 */
#define ATT_PS (ATT_B + 1)

typedef struct att_tile {
    int start; /* first token of the document */
    int len;   /* document length */
    int tile;  /* tile index within the document */
    int pad;
} att_tile;

extern __shared__ float dl_att_smem[];

/* Loads rows [0, rows) of a [64 × D] tile (row r at src + r·row_stride) into dst with stride DP+1; zeros elsewhere. */
template <int DP>
__device__ __forceinline__ void att_load(float *dst, const float *src, size_t row_stride, int rows, int D) {
    for (int idx = threadIdx.x; idx < ATT_B * DP; idx += ATT_THREADS) {
        int r = idx / DP, d = idx % DP;
        float v = 0.0f;
        if (r < rows && d < D)
            v = src[(size_t)r * row_stride + d];
        dst[r * (DP + 1) + d] = v;
    }
}

/* s[i][j] = Σ_{d<D} A[ty+16i][d] · B[tx+16j][d] over two [64 × DP] tiles. */
template <int DP>
__device__ __forceinline__ void att_scores(float s[4][4], const float *A, const float *B, int ty, int tx, int D) {
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
            s[i][j] = 0.0f;
#pragma unroll 4
    for (int d = 0; d < D; d++) {
        float a[4], b[4];
#pragma unroll
        for (int i = 0; i < 4; i++)
            a[i] = A[(ty + 16 * i) * (DP + 1) + d];
#pragma unroll
        for (int j = 0; j < 4; j++)
            b[j] = B[(tx + 16 * j) * (DP + 1) + d];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++)
                s[i][j] = fmaf(a[i], b[j], s[i][j]);
    }
}

/* acc[i][g] += Σ_c P[row_i][c] · M[c][tx+16g], where P is the 64×64 score tile read either by rows
 * (TRANSPOSED = 0: row_i = ty+16i, P[row][c] at P[row·65 + c]) or by columns (TRANSPOSED = 1: the product Pᵀ·M,
 * P[c][ty+16i] at P[c·65 + ty+16i]). M is a [64 × DP] tile. */
template <int DP, int TRANSPOSED>
__device__ __forceinline__ void att_accumulate(float acc[4][DP / 16], const float *P, const float *M, int ty, int tx) {
#pragma unroll 2
    for (int c = 0; c < ATT_B; c++) {
        float p[4], m[DP / 16];
#pragma unroll
        for (int i = 0; i < 4; i++)
            p[i] = TRANSPOSED ? P[c * ATT_PS + ty + 16 * i] : P[(ty + 16 * i) * ATT_PS + c];
#pragma unroll
        for (int g = 0; g < DP / 16; g++)
            m[g] = M[c * (DP + 1) + tx + 16 * g];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int g = 0; g < DP / 16; g++)
                acc[i][g] = fmaf(p[i], m[g], acc[i][g]);
    }
}

/* Sum and max over the 16 threads that share a row (one half-warp). */
__device__ __forceinline__ float att_row_sum(float v) {
    for (int o = 8; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float att_row_max(float v) {
    for (int o = 8; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

template <int DP>
__global__ void __launch_bounds__(ATT_THREADS, 1)
    attention_forward_kernel(float *out, float *lse, const float *qkv, const att_tile *tiles, int H, int D,
                             float scale) {
    constexpr int S = DP + 1, G = DP / 16;
    float *Qs = dl_att_smem, *Ks = Qs + ATT_B * S, *Vs = Ks + ATT_B * S, *Ps = Vs + ATT_B * S;
    const att_tile t = tiles[blockIdx.x];
    const int h = blockIdx.y, tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const size_t tok = (size_t)3 * H * D, hd = (size_t)H * D;
    const int q0 = t.tile * ATT_B, qrows = min(ATT_B, t.len - q0);

    att_load<DP>(Qs, qkv + (size_t)(t.start + q0) * tok + (size_t)h * D, tok, qrows, D);
    float m[4], l[4], acc[4][G];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
#pragma unroll
        for (int g = 0; g < G; g++)
            acc[i][g] = 0.0f;
    }
    for (int kt = 0; kt <= t.tile; kt++) {
        const int k0 = kt * ATT_B, krows = min(ATT_B, t.len - k0);
        const float *kbase = qkv + (size_t)(t.start + k0) * tok + hd + (size_t)h * D;
        __syncthreads(); /* the previous tile's readers are done with Ks, Vs, Ps */
        att_load<DP>(Ks, kbase, tok, krows, D);
        att_load<DP>(Vs, kbase + hd, tok, krows, D);
        __syncthreads();
        float s[4][4];
        att_scores<DP>(s, Qs, Ks, ty, tx, D);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int qi = q0 + ty + 16 * i;
            float mx = -INFINITY;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int kj = k0 + tx + 16 * j;
                s[i][j] = (kj <= qi && kj < t.len) ? s[i][j] * scale : -INFINITY;
                mx = fmaxf(mx, s[i][j]);
            }
            const float mnew = fmaxf(m[i], att_row_max(mx));
            const float mref = mnew == -INFINITY ? 0.0f : mnew; /* a row with no key yet stays all zero */
            const float corr = expf(m[i] - mref);
            float rs = 0.0f;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                s[i][j] = expf(s[i][j] - mref);
                rs += s[i][j];
            }
            l[i] = l[i] * corr + att_row_sum(rs);
            m[i] = mnew;
#pragma unroll
            for (int g = 0; g < G; g++)
                acc[i][g] *= corr;
#pragma unroll
            for (int j = 0; j < 4; j++)
                Ps[(ty + 16 * i) * ATT_PS + tx + 16 * j] = s[i][j];
        }
        __syncthreads();
        att_accumulate<DP, 0>(acc, Ps, Vs, ty, tx);
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int r = ty + 16 * i;
        if (r >= qrows)
            continue;
        const size_t n = (size_t)t.start + q0 + r;
#pragma unroll
        for (int g = 0; g < G; g++) {
            const int d = tx + 16 * g;
            if (d < D)
                out[n * hd + (size_t)h * D + d] = acc[i][g] / l[i];
        }
        if (tx == 0)
            lse[n * H + h] = m[i] + logf(l[i]);
    }
}

/* Di[n, h] = Σ_d dout[n, h, d] · out[n, h, d]: one warp per (token, head). */
__global__ void attention_dot_kernel(float *Di, const float *dout, const float *out, size_t rows, int D) {
    size_t w = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (w >= rows)
        return;
    const float *a = dout + w * D, *b = out + w * D;
    float s = 0.0f;
    for (int d = lane; d < D; d += 32)
        s += a[d] * b[d];
    s = dl_warp_sum(s);
    if (lane == 0)
        Di[w] = s;
}

/* Loads lse and Di of query rows [q0, q0+qrows) into shared memory (zeros for rows past the document). */
__device__ __forceinline__ void att_load_rows(float *lse_s, float *di_s, const float *lse, const float *Di, size_t n0,
                                              int qrows, int H, int h) {
    if (threadIdx.x < ATT_B) {
        int r = threadIdx.x;
        lse_s[r] = r < qrows ? lse[(n0 + r) * H + h] : 0.0f;
        di_s[r] = r < qrows ? Di[(n0 + r) * H + h] : 0.0f;
    }
}

/* dK and dV of one key tile: loops over the query tiles at or after it. */
template <int DP>
__global__ void __launch_bounds__(ATT_THREADS, 1)
    attention_backward_kv_kernel(float *dqkv, const float *dout, const float *qkv, const float *lse, const float *Di,
                                 const att_tile *tiles, int H, int D, float scale) {
    constexpr int S = DP + 1, G = DP / 16;
    float *Ks = dl_att_smem, *Vs = Ks + ATT_B * S, *Qs = Vs + ATT_B * S, *dOs = Qs + ATT_B * S;
    float *Ps = dOs + ATT_B * S, *lse_s = Ps + ATT_B * ATT_PS, *di_s = lse_s + ATT_B;
    const att_tile t = tiles[blockIdx.x];
    const int h = blockIdx.y, tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const size_t tok = (size_t)3 * H * D, hd = (size_t)H * D;
    const int k0 = t.tile * ATT_B, krows = min(ATT_B, t.len - k0);
    const int ntiles = (t.len + ATT_B - 1) / ATT_B;

    const float *kbase = qkv + (size_t)(t.start + k0) * tok + hd + (size_t)h * D;
    att_load<DP>(Ks, kbase, tok, krows, D);
    att_load<DP>(Vs, kbase + hd, tok, krows, D);
    float dk[4][G], dv[4][G];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int g = 0; g < G; g++)
            dk[i][g] = dv[i][g] = 0.0f;

    for (int qt = t.tile; qt < ntiles; qt++) {
        const int q0 = qt * ATT_B, qrows = min(ATT_B, t.len - q0);
        const size_t n0 = (size_t)t.start + q0;
        __syncthreads(); /* the previous tile's readers are done with Qs, dOs, Ps */
        att_load<DP>(Qs, qkv + n0 * tok + (size_t)h * D, tok, qrows, D);
        att_load<DP>(dOs, dout + n0 * hd + (size_t)h * D, hd, qrows, D);
        att_load_rows(lse_s, di_s, lse, Di, n0, qrows, H, h);
        __syncthreads();
        float p[4][4], dp[4][4];
        att_scores<DP>(p, Qs, Ks, ty, tx, D);
        att_scores<DP>(dp, dOs, Vs, ty, tx, D);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int r = ty + 16 * i;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int kj = k0 + tx + 16 * j;
                p[i][j] = (r < qrows && kj <= q0 + r) ? expf(p[i][j] * scale - lse_s[r]) : 0.0f;
                Ps[r * ATT_PS + tx + 16 * j] = p[i][j];
            }
        }
        __syncthreads();
        att_accumulate<DP, 1>(dv, Ps, dOs, ty, tx); /* dV += Pᵀ·dO */
        __syncthreads();
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int r = ty + 16 * i;
#pragma unroll
            for (int j = 0; j < 4; j++)
                Ps[r * ATT_PS + tx + 16 * j] = p[i][j] * (dp[i][j] - di_s[r]); /* dS */
        }
        __syncthreads();
        att_accumulate<DP, 1>(dk, Ps, Qs, ty, tx); /* dK += dSᵀ·Q (scaled at the end) */
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int c = ty + 16 * i;
        if (c >= krows)
            continue;
        float *row = dqkv + ((size_t)t.start + k0 + c) * tok + (size_t)h * D;
#pragma unroll
        for (int g = 0; g < G; g++) {
            const int d = tx + 16 * g;
            if (d < D) {
                row[hd + d] += scale * dk[i][g];
                row[2 * hd + d] += dv[i][g];
            }
        }
    }
}

/* dQ of one query tile: loops over the key tiles up to the diagonal. */
template <int DP>
__global__ void __launch_bounds__(ATT_THREADS, 1)
    attention_backward_q_kernel(float *dqkv, const float *dout, const float *qkv, const float *lse, const float *Di,
                                const att_tile *tiles, int H, int D, float scale) {
    constexpr int S = DP + 1, G = DP / 16;
    float *Qs = dl_att_smem, *dOs = Qs + ATT_B * S, *Ks = dOs + ATT_B * S, *Vs = Ks + ATT_B * S;
    float *Ps = Vs + ATT_B * S, *lse_s = Ps + ATT_B * ATT_PS, *di_s = lse_s + ATT_B;
    const att_tile t = tiles[blockIdx.x];
    const int h = blockIdx.y, tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const size_t tok = (size_t)3 * H * D, hd = (size_t)H * D;
    const int q0 = t.tile * ATT_B, qrows = min(ATT_B, t.len - q0);
    const size_t n0 = (size_t)t.start + q0;

    att_load<DP>(Qs, qkv + n0 * tok + (size_t)h * D, tok, qrows, D);
    att_load<DP>(dOs, dout + n0 * hd + (size_t)h * D, hd, qrows, D);
    att_load_rows(lse_s, di_s, lse, Di, n0, qrows, H, h);
    float dq[4][G];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int g = 0; g < G; g++)
            dq[i][g] = 0.0f;

    for (int kt = 0; kt <= t.tile; kt++) {
        const int k0 = kt * ATT_B, krows = min(ATT_B, t.len - k0);
        const float *kbase = qkv + (size_t)(t.start + k0) * tok + hd + (size_t)h * D;
        __syncthreads(); /* the previous tile's readers are done with Ks, Vs, Ps */
        att_load<DP>(Ks, kbase, tok, krows, D);
        att_load<DP>(Vs, kbase + hd, tok, krows, D);
        __syncthreads();
        float p[4][4], dp[4][4];
        att_scores<DP>(p, Qs, Ks, ty, tx, D);
        att_scores<DP>(dp, dOs, Vs, ty, tx, D);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int r = ty + 16 * i;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int kj = k0 + tx + 16 * j;
                float pij = (r < qrows && kj <= q0 + r) ? expf(p[i][j] * scale - lse_s[r]) : 0.0f;
                Ps[r * ATT_PS + tx + 16 * j] = pij * (dp[i][j] - di_s[r]); /* dS */
            }
        }
        __syncthreads();
        att_accumulate<DP, 0>(dq, Ps, Ks, ty, tx); /* dQ += dS·K (scaled at the end) */
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int r = ty + 16 * i;
        if (r >= qrows)
            continue;
        float *row = dqkv + (n0 + r) * tok + (size_t)h * D;
#pragma unroll
        for (int g = 0; g < G; g++) {
            const int d = tx + 16 * g;
            if (d < D)
                row[d] += scale * dq[i][g];
        }
    }
}

/* ---- host side ------------------------------------------------------------------------------------------------- */

static size_t att_smem_forward(int DP) { return sizeof(float) * (size_t)(3 * ATT_B * (DP + 1) + ATT_B * ATT_PS); }
static size_t att_smem_backward(int DP) {
    return sizeof(float) * (size_t)(4 * ATT_B * (DP + 1) + ATT_B * ATT_PS + 2 * ATT_B);
}

static int att_cost_q(const att_tile *t) { return t->tile + 1; }
static int att_cost_kv(const att_tile *t) { return (t->len + ATT_B - 1) / ATT_B - t->tile; }

/* Most work first; ties by position so the order (and so nothing else) depends only on cu_seqlens. */
static int att_cmp_q(const void *a, const void *b) {
    const att_tile *x = (const att_tile *)a, *y = (const att_tile *)b;
    if (att_cost_q(x) != att_cost_q(y))
        return att_cost_q(y) - att_cost_q(x);
    return x->start != y->start ? (x->start < y->start ? -1 : 1) : x->tile - y->tile;
}
static int att_cmp_kv(const void *a, const void *b) {
    const att_tile *x = (const att_tile *)a, *y = (const att_tile *)b;
    if (att_cost_kv(x) != att_cost_kv(y))
        return att_cost_kv(y) - att_cost_kv(x);
    return x->start != y->start ? (x->start < y->start ? -1 : 1) : x->tile - y->tile;
}

typedef struct att_plan {
    int count;           /* tiles in each list */
    att_tile *q_order;   /* device: tiles by query-side cost (forward, dQ) */
    att_tile *kv_order;  /* device: tiles by key-side cost (dK, dV); NULL unless asked */
    float *Di;           /* device: N·H floats of scratch when asked, else NULL */
} att_plan;

/* Copies and checks cu_seqlens, lists the tiles, and uploads the list(s) to device scratch (after `Di` floats). */
static dl_status att_make_plan(dl_cuda_state *st, const char *op, const int32_t *cu_seqlens, int num_seqs, int N,
                               int H, int backward, att_plan *plan) {
    size_t max_tiles = (size_t)(N + ATT_B - 1) / ATT_B + (size_t)num_seqs;
    size_t cu_bytes = ((size_t)(num_seqs + 1) * sizeof(int32_t) + 15) & ~(size_t)15;
    size_t lists = backward ? 2 : 1;
    void *host;
    DL_CHECK(dl_cuda_host_scratch(st, cu_bytes + lists * max_tiles * sizeof(att_tile), &host));
    int32_t *cu = (int32_t *)host;
    att_tile *htiles = (att_tile *)((char *)host + cu_bytes);
    /* The wait also means no earlier upload still reads the pinned buffer we are about to overwrite. */
    DL_CUDA_CHECK(cudaMemcpyAsync(cu, cu_seqlens, (size_t)(num_seqs + 1) * sizeof(int32_t), cudaMemcpyDeviceToHost,
                                  st->stream));
    DL_CUDA_CHECK(cudaStreamSynchronize(st->stream));
    const char *bad = NULL;
    int at = 0;
    if (cu[0] != 0)
        bad = "does not start at 0";
    for (int s = 0; s < num_seqs && !bad; s++)
        if (cu[s + 1] < cu[s]) {
            bad = "decreases";
            at = s + 1;
        }
    if (!bad && cu[num_seqs] != N) {
        bad = "does not end at N";
        at = num_seqs;
    }
    if (bad) {
        dl_status st = DL_FAIL(DL_ERR_INVALID, "%s (cuda): cu_seqlens %s: cu_seqlens[%d] = %d (previous %d, N = %d)",
                               op, bad, at, cu[at], at > 0 ? cu[at - 1] : 0, N);
        dl_error_hint("the batch's cu_seqlens are corrupt: check the code that packs the batch");
        return st;
    }
    int count = 0;
    for (int s = 0; s < num_seqs; s++) {
        int len = cu[s + 1] - cu[s];
        for (int t = 0; t * ATT_B < len; t++) {
            att_tile tile = {cu[s], len, t, 0};
            htiles[count++] = tile;
        }
    }
    plan->count = count;
    plan->q_order = plan->kv_order = NULL;
    plan->Di = NULL;
    if (count == 0)
        return DL_OK;
    qsort(htiles, (size_t)count, sizeof(att_tile), att_cmp_q);
    if (backward) {
        memcpy(htiles + count, htiles, (size_t)count * sizeof(att_tile));
        qsort(htiles + count, (size_t)count, sizeof(att_tile), att_cmp_kv);
    }
    size_t di_bytes = backward ? (((size_t)N * H * sizeof(float) + 255) & ~(size_t)255) : 0;
    size_t list_bytes = lists * (size_t)count * sizeof(att_tile);
    void *dev;
    DL_CHECK(dl_cuda_scratch(st, di_bytes + list_bytes, &dev));
    if (backward)
        plan->Di = (float *)dev;
    plan->q_order = (att_tile *)((char *)dev + di_bytes);
    if (backward)
        plan->kv_order = plan->q_order + count;
    DL_CUDA_CHECK(cudaMemcpyAsync(plan->q_order, htiles, list_bytes, cudaMemcpyHostToDevice, st->stream));
    return DL_OK;
}

static int att_dp(int D) { return D <= 32 ? 32 : D <= 64 ? 64 : 128; }

/* Lets `kernel` use `bytes` of dynamic shared memory, or says why the GPU cannot. */
static dl_status att_smem_allow(dl_cuda_state *st, const void *kernel, size_t bytes, const char *op, int D) {
    if (bytes > st->smem_optin) {
        dl_status s = DL_FAIL(DL_ERR_UNSUPPORTED,
                              "%s (cuda): head size %d needs %zu bytes of shared memory per block; GPU %d offers %zu",
                              op, D, bytes, st->device, st->smem_optin);
        dl_error_hint("use a head size of 64 or less on this GPU, or device: cpu");
        return s;
    }
    DL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    return DL_OK;
}

static dl_status att_check(const char *op, int num_seqs, int N, int H, int D) {
    if (D < 1 || D > 128)
        return DL_FAIL(DL_ERR_INVALID, "%s (cuda): head size D = %d must be in [1, 128]", op, D);
    if (num_seqs < 1 || N < 0 || H < 1 || H > 65535)
        return DL_FAIL(DL_ERR_INVALID, "%s (cuda): bad sizes num_seqs = %d, N = %d, H = %d", op, num_seqs, N, H);
    return DL_OK;
}

template <int DP>
static dl_status att_forward_dp(dl_cuda_state *st, float *out, float *lse, const float *qkv, const att_plan *plan,
                                int H, int D) {
    size_t smem = att_smem_forward(DP);
    DL_CHECK(att_smem_allow(st, (const void *)attention_forward_kernel<DP>, smem, "attention_forward", D));
    dim3 grid((unsigned)plan->count, (unsigned)H);
    attention_forward_kernel<DP><<<grid, ATT_THREADS, smem, st->stream>>>(out, lse, qkv, plan->q_order, H, D,
                                                                         1.0f / sqrtf((float)D));
    DL_CUDA_CHECK_LAUNCH("attention_forward");
    return DL_OK;
}

template <int DP>
static dl_status att_backward_dp(dl_cuda_state *st, float *dqkv, const float *dout, const float *qkv,
                                 const float *lse, const att_plan *plan, int H, int D) {
    size_t smem = att_smem_backward(DP);
    DL_CHECK(att_smem_allow(st, (const void *)attention_backward_kv_kernel<DP>, smem, "attention_backward", D));
    DL_CHECK(att_smem_allow(st, (const void *)attention_backward_q_kernel<DP>, smem, "attention_backward", D));
    dim3 grid((unsigned)plan->count, (unsigned)H);
    float scale = 1.0f / sqrtf((float)D);
    attention_backward_kv_kernel<DP><<<grid, ATT_THREADS, smem, st->stream>>>(dqkv, dout, qkv, lse, plan->Di,
                                                                             plan->kv_order, H, D, scale);
    DL_CUDA_CHECK_LAUNCH("attention_backward dk/dv");
    attention_backward_q_kernel<DP><<<grid, ATT_THREADS, smem, st->stream>>>(dqkv, dout, qkv, lse, plan->Di,
                                                                            plan->q_order, H, D, scale);
    DL_CUDA_CHECK_LAUNCH("attention_backward dq");
    return DL_OK;
}

extern "C" dl_status dl_cuda_attention_forward(void *state, float *out, float *lse, const float *qkv,
                                               const int32_t *cu_seqlens, int num_seqs, int N, int H, int D) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    DL_CHECK(att_check("attention_forward", num_seqs, N, H, D));
    att_plan plan;
    DL_CHECK(att_make_plan(st, "attention_forward", cu_seqlens, num_seqs, N, H, 0, &plan));
    if (plan.count == 0)
        return DL_OK;
    switch (att_dp(D)) {
    case 32: return att_forward_dp<32>(st, out, lse, qkv, &plan, H, D);
    case 64: return att_forward_dp<64>(st, out, lse, qkv, &plan, H, D);
    default: return att_forward_dp<128>(st, out, lse, qkv, &plan, H, D);
    }
}

extern "C" dl_status dl_cuda_attention_backward(void *state, float *dqkv, const float *dout, const float *qkv,
                                                const float *out, const float *lse, const int32_t *cu_seqlens,
                                                int num_seqs, int N, int H, int D) {
    dl_cuda_state *st = (dl_cuda_state *)state;
    DL_CHECK(att_check("attention_backward", num_seqs, N, H, D));
    att_plan plan;
    DL_CHECK(att_make_plan(st, "attention_backward", cu_seqlens, num_seqs, N, H, 1, &plan));
    if (plan.count == 0)
        return DL_OK;
    size_t rows = (size_t)N * H;
    unsigned blocks = (unsigned)((rows * 32 + 255) / 256);
    attention_dot_kernel<<<blocks, 256, 0, st->stream>>>(plan.Di, dout, out, rows, D);
    DL_CUDA_CHECK_LAUNCH("attention_backward rowsum(dO*O)");
    switch (att_dp(D)) {
    case 32: return att_backward_dp<32>(st, dqkv, dout, qkv, lse, &plan, H, D);
    case 64: return att_backward_dp<64>(st, dqkv, dout, qkv, lse, &plan, H, D);
    default: return att_backward_dp<128>(st, dqkv, dout, qkv, lse, &plan, H, D);
    }
}
