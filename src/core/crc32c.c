/* crc32c.c — CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of TFRecord framing.
 *
 * Two implementations of one function. With SSE4.2 (__SSE4_2__, which the portable build's -march=x86-64-v2 sets,
 * as does -march=native on any x86 made since 2008) the crc32 instruction consumes 8 bytes per step: about 8 GB/s
 * on one core, so checking every record costs nothing next to decoding it. Elsewhere a slicing-by-8 table walk
 * (eight 256-entry tables, one lookup per input byte but eight independent lookups per step) does about 1-2 GB/s.
 * Both are always compiled where possible so the tests can check each against known values and against each other.
 *
 * The running-value convention is the usual one: dl_crc32c(0, data, n) is the CRC of data, and
 * dl_crc32c(dl_crc32c(0, a, n), b, m) is the CRC of a followed by b (the pre- and post-inversion happen inside). */
#include <pthread.h>
#include <string.h>

#include "core/crc32c.h"

#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

#define DL_CRC32C_POLY 0x82F63B78u

static uint32_t crc_tables[8][256];
static pthread_once_t crc_tables_once = PTHREAD_ONCE_INIT;

static void crc_tables_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ ((c & 1u) ? DL_CRC32C_POLY : 0u);
        crc_tables[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t prev = crc_tables[t - 1][i];
            crc_tables[t][i] = (prev >> 8) ^ crc_tables[0][prev & 0xffu];
        }
}

uint32_t dl_crc32c_portable(uint32_t crc, const void *data, size_t len) {
    pthread_once(&crc_tables_once, crc_tables_init);
    const uint8_t *p = data;
    uint32_t c = ~crc;
    while (len >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= c; /* little-endian: the first four bytes fold into the running value */
        c = crc_tables[7][lo & 0xff] ^ crc_tables[6][(lo >> 8) & 0xff] ^ crc_tables[5][(lo >> 16) & 0xff] ^
            crc_tables[4][lo >> 24] ^ crc_tables[3][hi & 0xff] ^ crc_tables[2][(hi >> 8) & 0xff] ^
            crc_tables[1][(hi >> 16) & 0xff] ^ crc_tables[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        c = (c >> 8) ^ crc_tables[0][(c ^ *p++) & 0xffu];
    return ~c;
}

#if defined(__SSE4_2__)
static uint32_t crc32c_sse42(uint32_t crc, const void *data, size_t len) {
    const uint8_t *p = data;
    uint64_t c = (uint32_t)~crc;
    while (len >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = _mm_crc32_u64(c, word);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = _mm_crc32_u8(c32, *p++);
    return ~c32;
}
#endif

int dl_crc32c_hardware(void) {
#if defined(__SSE4_2__)
    return 1;
#else
    return 0;
#endif
}

uint32_t dl_crc32c(uint32_t crc, const void *data, size_t len) {
    if (len == 0)
        return crc;
#if defined(__SSE4_2__)
    return crc32c_sse42(crc, data, len);
#else
    return dl_crc32c_portable(crc, data, len);
#endif
}

uint32_t dl_crc32c_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

uint32_t dl_crc32c_unmask(uint32_t masked) {
    uint32_t rot = masked - 0xa282ead8u;
    return (rot >> 17) | (rot << 15);
}
