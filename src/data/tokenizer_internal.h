/* tokenizer_internal.h — what tokenizer.c (loading, encoding) and tokenizer_train.c (training, saving) share.
 * Not part of the public API: only src/data/tokenizer*.c include it. */
#ifndef DL_DATA_TOKENIZER_INTERNAL_H
#define DL_DATA_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "data/tokenizer.h"

/* ---- a string -> uint64 hash map (open addressing, keys copied into one growing pool) ------------------------ */
typedef struct dl_strmap {
    uint64_t *hashes;  /* 0 marks an empty slot (a real hash of 0 is stored as 1) */
    uint64_t *offsets; /* key offset in pool (low 40 bits) and length (high 24 bits) */
    uint64_t *values;
    size_t cap, count;
    char *pool;
    size_t pool_len, pool_cap;
} dl_strmap;

void dl_strmap_free(dl_strmap *m);
void dl_strmap_clear(dl_strmap *m);
/* The value of key, or 0 and *found = 0. */
uint64_t dl_strmap_get(const dl_strmap *m, const void *key, size_t len, int *found);
/* Inserts or replaces. Keys are at most 2^24-1 bytes. */
dl_status dl_strmap_put(dl_strmap *m, const void *key, size_t len, uint64_t value);
/* The stored key of the slot holding value lookups (for iteration: slot i in [0, cap) is used when hashes[i]). */
static inline const char *dl_strmap_key(const dl_strmap *m, size_t slot, size_t *len) {
    *len = (size_t)(m->offsets[slot] >> 40);
    return m->pool + (m->offsets[slot] & ((1ull << 40) - 1));
}

/* GPT-2's bytes_to_unicode: byte b is shown as code point dl_byte_char[b]; dl_char_byte inverts it (-1 for code
 * points outside the 256). */
extern const uint16_t dl_byte_char[256];
int dl_char_byte(uint32_t cp);

/* Appends the UTF-8 encoding of cp (< 0x110000) to buf; returns the bytes written (1..4). */
size_t dl_utf8_put(uint32_t cp, uint8_t *buf);
/* Decodes one well-formed UTF-8 character at s[0..n): its length (1..4) and *cp, or 0 when ill-formed. */
size_t dl_utf8_next(const uint8_t *s, size_t n, uint32_t *cp);
/* The length of the maximal ill-formed subpart at s[0..n) (>= 1) when s does not start a well-formed character. */
size_t dl_utf8_bad_len(const uint8_t *s, size_t n);

/* 1 when s[0..n) is a proper prefix of a well-formed character (more bytes could complete it). */
int dl_utf8_is_prefix(const uint8_t *s, size_t n);

/* ---- building a BPE tokenizer (the loaders and the trainer all go through this) ------------------------------ */
typedef struct dl_tok_builder dl_tok_builder;

typedef struct dl_tok_options {
    int add_prefix_space; /* ByteLevel pre-tokenizer */
    int use_regex;        /* ByteLevel pre-tokenizer: split with GPT-2's regex (1) or not at all (0) */
    int ignore_merges;    /* BPE: a pre-token found whole in the vocabulary is one token */
    int fuse_unk;
    const char *unk_token; /* NULL: none */
} dl_tok_options;

dl_status dl_tok_builder_new(dl_tok_builder **out, const char *name);
void dl_tok_builder_free(dl_tok_builder *b);
/* A model vocabulary entry: `content` is its JSON text (bytes_to_unicode characters for byte-level tokens). */
dl_status dl_tok_builder_vocab(dl_tok_builder *b, const char *content, size_t len, int64_t id);
/* The next merge in rank order (contents as in the vocabulary). */
dl_status dl_tok_builder_merge(dl_tok_builder *b, const char *left, size_t left_len, const char *right,
                               size_t right_len);
dl_status dl_tok_builder_added(dl_tok_builder *b, const char *content, size_t len, int64_t id, int special,
                               int lstrip, int rstrip, int single_word, int normalized);
/* Checks everything, builds the tables and the regex, and frees the builder (also on failure). */
dl_status dl_tok_builder_finish(dl_tok_builder *b, const dl_tok_options *options, dl_tokenizer **out);

/* The GPT-2 pre-tokenizer regex, for the trainer's word counting. */
extern const char dl_gpt2_pattern[];

#endif
