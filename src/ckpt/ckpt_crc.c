/* ckpt_crc.c — the CRC32C of a dataset whose bytes are spread over ranks or read in slabs.
 *
 * CRC32C is linear over GF(2), so each rank computes the "raw" CRC register of the whole dataset with its own bytes
 * in place and zeros everywhere else (zero runs cost O(log n) through a precomputed table of shift operators, not a
 * pass over zeros). The XOR of those over ranks is the raw register of the whole contents; one gather, a fold and a
 * broadcast turn it into the ordinary CRC32C every rank writes as the attribute (ckpt_write.c), and a collective
 * load checks a split table the same way (ckpt_load.c). No rank ever reads a dataset back to checksum it. */
#include "ckpt/ckpt_internal.h"

#include <pthread.h>
#include <string.h>

#include "core/crc32c.h"

/* The raw register R(s, M) of the reflected CRC-32C (no pre/post inversion) satisfies R(s, M) = Lⁿ(s) ⊕ R(0, M) for
 * |M| = n bytes, where L is the linear map of feeding one zero byte; dl_crc32c(c, M) = ~R(~c, M). zero_op[k] holds
 * the 32x32 bit matrix of L^(2^k) (as 32 column words). */
static uint32_t zero_op[64][32];
static pthread_once_t zero_op_once = PTHREAD_ONCE_INIT;

static uint32_t gf2_apply(const uint32_t *mat, uint32_t vec) {
    uint32_t sum = 0;
    for (int i = 0; vec; i++, vec >>= 1)
        if (vec & 1u)
            sum ^= mat[i];
    return sum;
}

static void zero_op_init(void) {
    uint32_t bit[32], sq[32];
    bit[0] = 0x82F63B78u; /* one zero bit: s -> (s >> 1) ^ (s & 1 ? poly : 0) */
    for (int i = 1; i < 32; i++)
        bit[i] = 1u << (i - 1);
    for (int step = 0; step < 3; step++) { /* 2, 4, 8 bits */
        for (int i = 0; i < 32; i++)
            sq[i] = gf2_apply(bit, bit[i]);
        memcpy(bit, sq, sizeof bit);
    }
    memcpy(zero_op[0], bit, sizeof bit);
    for (int k = 1; k < 64; k++)
        for (int i = 0; i < 32; i++)
            zero_op[k][i] = gf2_apply(zero_op[k - 1], zero_op[k - 1][i]);
}

/* Lⁿ(raw): the register after n more zero bytes. */
uint32_t dl_ckpt_raw_zeros(uint32_t raw, uint64_t n) {
    pthread_once(&zero_op_once, zero_op_init);
    for (int k = 0; n && raw; k++, n >>= 1)
        if (n & 1u)
            raw = gf2_apply(zero_op[k], raw);
    return raw;
}

uint32_t dl_ckpt_raw_feed(uint32_t raw, const void *data, size_t len) { return ~dl_crc32c(~raw, data, len); }

/* The ordinary CRC32C of `total` bytes whose raw register from 0 is `raw`. */
uint32_t dl_ckpt_raw_finish(uint32_t raw, uint64_t total) { return ~(dl_ckpt_raw_zeros(0xFFFFFFFFu, total) ^ raw); }

uint32_t dl_ckpt_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
    return dl_ckpt_raw_zeros(crc_a, len_b) ^ crc_b;
}

/* The raw CRC register (from 0) of a dataset of `total` bytes holding `bytes` bytes of data at byte `at` and zeros
 * elsewhere: the part one slab contributes (XOR the parts for the whole). */
uint32_t dl_ckpt_raw_piece(const void *data, size_t bytes, uint64_t at, uint64_t total) {
    return dl_ckpt_raw_zeros(dl_ckpt_raw_feed(0, data, bytes), total - at - bytes);
}
