/* tokenizer_util.c — the small pieces the tokenizer is built from: GPT-2's byte-to-character map, a UTF-8 reader
 * that finds maximal ill-formed subparts exactly as Unicode (and so Python and Rust) define them, and a string hash
 * map with its keys in one pool (a vocabulary of 50k entries is two allocations, not 50k). */
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "data/tokenizer_internal.h"

/* bytes_to_unicode from GPT-2's encoder.py: printable Latin-1 bytes show as themselves, the other 68 as 256 + n in
 * byte order, so every byte has a visible, non-space character. */
const uint16_t dl_byte_char[256] = {
    256, 257, 258, 259, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 270, 271, 272, 273, 274, 275, 276, 277,
    278, 279, 280, 281, 282, 283, 284, 285, 286, 287, 288, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
    44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
    66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87,
    88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109,
    110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 289, 290, 291, 292, 293,
    294, 295, 296, 297, 298, 299, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310, 311, 312, 313, 314, 315,
    316, 317, 318, 319, 320, 321, 322, 161, 162, 163, 164, 165, 166, 167, 168, 169, 170, 171, 172, 323, 174, 175,
    176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191, 192, 193, 194, 195, 196, 197,
    198, 199, 200, 201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213, 214, 215, 216, 217, 218, 219,
    220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239, 240, 241,
    242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253, 254, 255,
};

int dl_char_byte(uint32_t cp) {
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
        return (int)cp;
    if (cp >= 256 && cp <= 323) {
        /* The 67 remapped bytes in order: 0..32, 127..160, 173. */
        uint32_t k = cp - 256;
        if (k <= 32)
            return (int)k;
        if (k <= 32 + 34)
            return (int)(127 + (k - 33));
        return 173;
    }
    return -1;
}

size_t dl_utf8_put(uint32_t cp, uint8_t *buf) {
    if (cp < 0x80) {
        buf[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        buf[0] = (uint8_t)(0xC0 | (cp >> 6));
        buf[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        buf[0] = (uint8_t)(0xE0 | (cp >> 12));
        buf[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        buf[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    buf[0] = (uint8_t)(0xF0 | (cp >> 18));
    buf[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    buf[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    buf[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* The allowed range of the second byte after lead byte b (Unicode Table 3-7); the later bytes are 80..BF. */
static int second_range(uint8_t b, uint8_t *lo, uint8_t *hi) {
    if (b >= 0xC2 && b <= 0xDF) {
        *lo = 0x80, *hi = 0xBF;
        return 2;
    }
    if (b == 0xE0) {
        *lo = 0xA0, *hi = 0xBF;
        return 3;
    }
    if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
        *lo = 0x80, *hi = 0xBF;
        return 3;
    }
    if (b == 0xED) { /* excludes the surrogates D800..DFFF */
        *lo = 0x80, *hi = 0x9F;
        return 3;
    }
    if (b == 0xF0) {
        *lo = 0x90, *hi = 0xBF;
        return 4;
    }
    if (b >= 0xF1 && b <= 0xF3) {
        *lo = 0x80, *hi = 0xBF;
        return 4;
    }
    if (b == 0xF4) {
        *lo = 0x80, *hi = 0x8F;
        return 4;
    }
    return 0;
}

size_t dl_utf8_next(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0)
        return 0;
    uint8_t b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    uint8_t lo, hi;
    int need = second_range(b, &lo, &hi);
    if (need == 0 || (size_t)need > n || s[1] < lo || s[1] > hi)
        return 0;
    for (int i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    uint32_t v = need == 2 ? (b & 0x1Fu) : need == 3 ? (b & 0x0Fu) : (b & 0x07u);
    for (int i = 1; i < need; i++)
        v = (v << 6) | (s[i] & 0x3Fu);
    *cp = v;
    return (size_t)need;
}

size_t dl_utf8_bad_len(const uint8_t *s, size_t n) {
    uint8_t lo, hi;
    int need = second_range(s[0], &lo, &hi);
    if (need == 0 || n < 2 || s[1] < lo || s[1] > hi)
        return 1;
    size_t k = 2;
    while (k < (size_t)need && k < n && s[k] >= 0x80 && s[k] <= 0xBF)
        k++;
    return k; /* a well-formed prefix cut short: one subpart */
}

int dl_utf8_is_prefix(const uint8_t *s, size_t n) {
    uint8_t lo, hi;
    int need = n ? second_range(s[0], &lo, &hi) : 0;
    if (need == 0 || n >= (size_t)need)
        return 0;
    if (n >= 2 && (s[1] < lo || s[1] > hi))
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return 1;
}

/* ---- string map ---------------------------------------------------------------------------------------------- */

void dl_strmap_free(dl_strmap *m) {
    if (!m)
        return;
    free(m->hashes);
    free(m->offsets);
    free(m->values);
    free(m->pool);
    memset(m, 0, sizeof *m);
}

void dl_strmap_clear(dl_strmap *m) {
    if (m->hashes)
        memset(m->hashes, 0, m->cap * sizeof *m->hashes);
    m->count = 0;
    m->pool_len = 0;
}

static inline uint64_t key_hash(const void *key, size_t len) {
    uint64_t h = dl_hash_bytes(key, len, 0x746f6b656e697a65ull);
    return h ? h : 1;
}

uint64_t dl_strmap_get(const dl_strmap *m, const void *key, size_t len, int *found) {
    *found = 0;
    if (!m->cap)
        return 0;
    uint64_t h = key_hash(key, len);
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        uint64_t sh = m->hashes[i];
        if (!sh)
            return 0;
        if (sh == h && (size_t)(m->offsets[i] >> 40) == len &&
            memcmp(m->pool + (m->offsets[i] & ((1ull << 40) - 1)), key, len) == 0) {
            *found = 1;
            return m->values[i];
        }
    }
}

static dl_status rehash(dl_strmap *m, size_t cap) {
    uint64_t *hashes = calloc(cap, sizeof *hashes);
    uint64_t *offsets = malloc(cap * sizeof *offsets);
    uint64_t *values = malloc(cap * sizeof *values);
    if (!hashes || !offsets || !values) {
        free(hashes);
        free(offsets);
        free(values);
        return DL_FAIL(DL_ERR_NOMEM, "out of memory growing a tokenizer table to %zu slots", cap);
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->hashes[i])
            continue;
        size_t j = (size_t)m->hashes[i] & (cap - 1);
        while (hashes[j])
            j = (j + 1) & (cap - 1);
        hashes[j] = m->hashes[i];
        offsets[j] = m->offsets[i];
        values[j] = m->values[i];
    }
    free(m->hashes);
    free(m->offsets);
    free(m->values);
    m->hashes = hashes;
    m->offsets = offsets;
    m->values = values;
    m->cap = cap;
    return DL_OK;
}

dl_status dl_strmap_put(dl_strmap *m, const void *key, size_t len, uint64_t value) {
    DL_REQUIRE(len < (1u << 24), DL_ERR_INVALID, "a tokenizer string of %zu bytes is too long", len);
    if ((m->count + 1) * 4 > m->cap * 3)
        DL_CHECK(rehash(m, m->cap ? m->cap * 2 : 64));
    uint64_t h = key_hash(key, len);
    size_t mask = m->cap - 1;
    size_t i = (size_t)h & mask;
    for (;; i = (i + 1) & mask) {
        uint64_t sh = m->hashes[i];
        if (!sh)
            break;
        if (sh == h && (size_t)(m->offsets[i] >> 40) == len &&
            memcmp(m->pool + (m->offsets[i] & ((1ull << 40) - 1)), key, len) == 0) {
            m->values[i] = value;
            return DL_OK;
        }
    }
    if (m->pool_len + len > m->pool_cap) {
        size_t cap = m->pool_cap ? m->pool_cap : 4096;
        while (cap < m->pool_len + len)
            cap *= 2;
        char *grown = realloc(m->pool, cap);
        if (!grown)
            return DL_FAIL(DL_ERR_NOMEM, "out of memory growing a tokenizer string pool to %zu bytes", cap);
        m->pool = grown;
        m->pool_cap = cap;
    }
    if (len)
        memcpy(m->pool + m->pool_len, key, len);
    m->hashes[i] = h;
    m->offsets[i] = ((uint64_t)len << 40) | (uint64_t)m->pool_len;
    m->values[i] = value;
    m->pool_len += len;
    m->count++;
    return DL_OK;
}
