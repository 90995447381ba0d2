/* dropout.c — inverted dropout on CPU with a counter-based mask: element i is kept when
 * dl_philox_uniform(dl_philox_word(seed, stream, i)) >= p, and kept elements are scaled by 1/(1−p).
 *
 * The mask is a pure function of (seed, stream, i), so it is never stored: backward draws it again, the CUDA
 * kernel draws the same one, and any split of the elements among threads gives the same result. The elements go in
 * chunks of 1024 (a multiple of 4, so a chunk starts on a Philox block): the chunk's 256 blocks are generated first
 * into a stack buffer, then one vectorised loop applies them. p = 0 is the identity and skips the generator. The
 * scale is computed once in float, 1.0f/(1.0f − p), and multiplied in; the CUDA kernel does the same. */
#include "core/philox.h"
#include "ops/cpu/cpu_dense.h"

enum { DROP_CHUNK = 1024 };

/* The mask words of elements [start, start + len), start a multiple of 4. */
static void chunk_words(uint32_t *restrict words, uint64_t seed, uint64_t stream, size_t start, size_t len) {
    size_t blocks = (len + 3) / 4;
    uint64_t first = start / 4;
    for (size_t b = 0; b < blocks; b++)
        dl_philox_block(seed, stream, first + b, &words[4 * b]);
}

dl_status dl_cpu_dropout_forward(void *state, float *out, const float *inp, size_t n, float p, uint64_t seed,
                                 uint64_t stream) {
    (void)state;
    if (p == 0.0f) {
        if (out != inp) {
#pragma omp parallel for simd schedule(static) if (n >= DL_CPU_PARALLEL_MIN)
            for (size_t i = 0; i < n; i++)
                out[i] = inp[i];
        }
        return DL_OK;
    }
    const float scale = 1.0f / (1.0f - p);
    size_t chunks = (n + DROP_CHUNK - 1) / DROP_CHUNK;
#pragma omp parallel for schedule(static) if (n >= DL_CPU_PARALLEL_MIN)
    for (size_t k = 0; k < chunks; k++) {
        size_t start = k * DROP_CHUNK;
        size_t len = n - start < DROP_CHUNK ? n - start : DROP_CHUNK;
        uint32_t words[DROP_CHUNK];
        chunk_words(words, seed, stream, start, len);
        const float *x = inp + start;
        float *y = out + start;
#pragma omp simd
        for (size_t i = 0; i < len; i++)
            y[i] = dl_philox_uniform(words[i]) >= p ? x[i] * scale : 0.0f;
    }
    return DL_OK;
}

dl_status dl_cpu_dropout_backward(void *state, float *dinp, const float *dout, size_t n, float p, uint64_t seed,
                                  uint64_t stream) {
    (void)state;
    if (p == 0.0f) {
#pragma omp parallel for simd schedule(static) if (n >= DL_CPU_PARALLEL_MIN)
        for (size_t i = 0; i < n; i++)
            dinp[i] += dout[i];
        return DL_OK;
    }
    const float scale = 1.0f / (1.0f - p);
    size_t chunks = (n + DROP_CHUNK - 1) / DROP_CHUNK;
#pragma omp parallel for schedule(static) if (n >= DL_CPU_PARALLEL_MIN)
    for (size_t k = 0; k < chunks; k++) {
        size_t start = k * DROP_CHUNK;
        size_t len = n - start < DROP_CHUNK ? n - start : DROP_CHUNK;
        uint32_t words[DROP_CHUNK];
        chunk_words(words, seed, stream, start, len);
        const float *g = dout + start;
        float *d = dinp + start;
#pragma omp simd
        for (size_t i = 0; i < len; i++)
            d[i] += dl_philox_uniform(words[i]) >= p ? g[i] * scale : 0.0f;
    }
    return DL_OK;
}
