/* tokenizer.c — loading and running byte-level BPE (see tokenizer.h for the exact encoding rules).
 *
 * Layout: a shared, immutable `tok_model` (vocabulary, merge table, added tokens, the compiled regex) and per-handle
 * state (PCRE2 match data, the per-word cache, scratch arrays). The merge table is an open-addressing map from the
 * pair (left id, right id) to (rank, merged id); the per-word merge is `tokenizers`' heap algorithm (lowest rank,
 * then leftmost), which is what makes the ids identical rather than merely similar. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <jansson.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fs.h"
#include "core/grow.h"
#include "core/hash.h"
#include "core/log.h"
#include "data/tokenizer_internal.h"

/* GPT-2's pattern with \s spelled out as Unicode's White_Space property (what Oniguruma's \s is in `tokenizers`),
 * so the answer does not depend on which PCRE2 release defines \s how. */
#define WS "\\t-\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
const char dl_gpt2_pattern[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS
                               "]+(?![^" WS "])|[" WS "]+";

#define ID_PRESENT 1u
#define ID_SPECIAL 2u
#define ID_ADDED 4u
#define ID_MODEL 8u

/* Pre-tokens up to this many bytes are cached; longer ones (runs of spaces, base64 blobs) are rare and would only
 * evict useful entries. The cache is dropped and restarted when it holds this many words. */
#define CACHE_MAX_WORD 256
#define CACHE_MAX_WORDS (1u << 20)

typedef struct tok_added {
    char *content;
    size_t len;
    int32_t id;
    uint8_t special, lstrip, rstrip, single_word, normalized;
} tok_added;

typedef struct tok_model {
    int refs;
    dl_tokenizer_kind kind;
    int32_t vocab_size;
    uint64_t hash;
    /* per id: decoded bytes and flags */
    size_t *id_off;
    uint32_t *id_len;
    uint8_t *id_flags;
    uint8_t *id_data;
    /* model vocabulary: content (JSON text) -> id, and per id its content for saving */
    dl_strmap vocab;
    char **model_content;
    uint32_t *model_content_len;
    /* byte-level initial symbols; ignore_merges lookups by decoded bytes */
    int32_t byte_id[256];
    dl_strmap vocab_bytes;
    /* merges in file order; the map holds the rank that wins (the last of duplicates, as in `tokenizers`) */
    int32_t *merge_left, *merge_right, *merge_new;
    size_t num_merges;
    uint64_t *mm_keys, *mm_vals;
    size_t mm_cap;
    tok_added *added;
    size_t num_added;
    uint8_t added_first[256];
    int has_single_word;
    dl_tok_options opt;
    char *unk_token;
    int32_t unk_id;
    pcre2_code *re;
    pcre2_code *word_re; /* Rust regex's \w, for single_word */
} tok_model;

struct dl_tokenizer {
    tok_model *m;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    dl_strmap cache;
    int32_t *cache_ids;
    size_t cache_ids_len, cache_ids_cap;
    uint8_t *clean;
    size_t clean_cap;
    uint8_t *piece;
    size_t piece_cap;
    int32_t *sym_c, *sym_prev, *sym_next;
    uint32_t *sym_len;
    size_t sym_cap;
    uint64_t *heap;
    int32_t *heap_new;
    size_t heap_len, heap_cap;
};

/* ---- merge map ------------------------------------------------------------------------------------------------ */

static inline uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1; }

static inline int merge_find(const tok_model *m, int32_t a, int32_t b, uint32_t *rank, int32_t *new_id) {
    if (!m->mm_cap)
        return 0;
    uint64_t k = pair_key(a, b);
    size_t mask = m->mm_cap - 1;
    for (size_t i = (size_t)dl_hash_u64(k) & mask;; i = (i + 1) & mask) {
        if (m->mm_keys[i] == k) {
            *rank = (uint32_t)(m->mm_vals[i] >> 32);
            *new_id = (int32_t)(uint32_t)m->mm_vals[i];
            return 1;
        }
        if (!m->mm_keys[i])
            return 0;
    }
}

static void merge_put(tok_model *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id) {
    uint64_t k = pair_key(a, b);
    size_t mask = m->mm_cap - 1;
    size_t i = (size_t)dl_hash_u64(k) & mask;
    while (m->mm_keys[i] && m->mm_keys[i] != k)
        i = (i + 1) & mask;
    m->mm_keys[i] = k;
    m->mm_vals[i] = (uint64_t)rank << 32 | (uint32_t)new_id;
}

/* ---- model lifetime -------------------------------------------------------------------------------------------- */

static void model_release(tok_model *m) {
    if (!m || __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    free(m->id_off);
    free(m->id_len);
    free(m->id_flags);
    free(m->id_data);
    dl_strmap_free(&m->vocab);
    if (m->model_content)
        for (int32_t i = 0; i < m->vocab_size; i++)
            free(m->model_content[i]);
    free(m->model_content);
    free(m->model_content_len);
    dl_strmap_free(&m->vocab_bytes);
    free(m->merge_left);
    free(m->merge_right);
    free(m->merge_new);
    free(m->mm_keys);
    free(m->mm_vals);
    for (size_t i = 0; i < m->num_added; i++)
        free(m->added[i].content);
    free(m->added);
    free(m->unk_token);
    pcre2_code_free(m->re);
    pcre2_code_free(m->word_re);
    free(m);
}

static dl_status handle_new(tok_model *m, dl_tokenizer **out) {
    dl_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory creating a tokenizer handle");
    t->m = m;
    __atomic_add_fetch(&m->refs, 1, __ATOMIC_ACQ_REL);
    if (m->re) {
        t->md = pcre2_match_data_create_from_pattern(m->re, NULL);
        t->mctx = pcre2_match_context_create(NULL);
        /* The JIT's default 32 KiB machine stack is enough for this pattern's single-character repeats; a private
         * growable stack keeps a pathological input from failing instead. */
        t->jit = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
        if (!t->md || !t->mctx || !t->jit) {
            __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL);
            t->m = NULL;
            dl_tokenizer_free(t);
            return DL_FAIL(DL_ERR_NOMEM, "out of memory creating PCRE2 match data");
        }
        pcre2_jit_stack_assign(t->mctx, NULL, t->jit);
    }
    *out = t;
    return DL_OK;
}

void dl_tokenizer_free(dl_tokenizer *t) {
    if (!t)
        return;
    pcre2_match_data_free(t->md);
    pcre2_match_context_free(t->mctx);
    pcre2_jit_stack_free(t->jit);
    dl_strmap_free(&t->cache);
    free(t->cache_ids);
    free(t->clean);
    free(t->piece);
    free(t->sym_c);
    free(t->sym_prev);
    free(t->sym_next);
    free(t->sym_len);
    free(t->heap);
    free(t->heap_new);
    model_release(t->m);
    free(t);
}

dl_status dl_tokenizer_clone(const dl_tokenizer *tok, dl_tokenizer **out) {
    DL_REQUIRE(tok && out, DL_ERR_INVALID, "dl_tokenizer_clone: NULL argument");
    return handle_new(tok->m, out);
}

dl_status dl_tokenizer_new_bytes(dl_tokenizer **out) {
    DL_REQUIRE(out, DL_ERR_INVALID, "dl_tokenizer_new_bytes: NULL argument");
    tok_model *m = calloc(1, sizeof *m);
    if (!m)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory creating the byte-level tokenizer");
    m->kind = DL_TOKENIZER_BYTES;
    m->vocab_size = 256;
    m->hash = DL_TOKENIZER_BYTES_HASH;
    m->unk_id = -1;
    dl_status s = handle_new(m, out);
    if (s != DL_OK)
        free(m);
    return s;
}

/* ---- accessors --------------------------------------------------------------------------------------------------- */

dl_tokenizer_kind dl_tokenizer_kind_of(const dl_tokenizer *t) { return t ? t->m->kind : DL_TOKENIZER_BYTES; }
const char *dl_tokenizer_kind_name(const dl_tokenizer *t) {
    return t && t->m->kind == DL_TOKENIZER_BPE ? "bpe" : "bytes";
}
int32_t dl_tokenizer_vocab_size(const dl_tokenizer *t) { return t ? t->m->vocab_size : 0; }
size_t dl_tokenizer_num_merges(const dl_tokenizer *t) { return t ? t->m->num_merges : 0; }
size_t dl_tokenizer_num_added(const dl_tokenizer *t) { return t ? t->m->num_added : 0; }
uint64_t dl_tokenizer_hash(const dl_tokenizer *t) { return t ? t->m->hash : 0; }

void dl_tokenizer_hash_hex(uint64_t hash, char out[17]) { snprintf(out, 17, "%016llx", (unsigned long long)hash); }

dl_status dl_tokenizer_parse_hash(const char *hex, uint64_t *hash) {
    DL_REQUIRE(hex && hash, DL_ERR_INVALID, "dl_tokenizer_parse_hash: NULL argument");
    uint64_t v = 0;
    size_t i = 0;
    for (; hex[i]; i++) {
        char c = hex[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0 || i >= 16)
            return DL_FAIL(DL_ERR_FORMAT, "'%s' is not a tokenizer hash (16 hex digits)", hex);
        v = v << 4 | (uint64_t)d;
    }
    if (i != 16)
        return DL_FAIL(DL_ERR_FORMAT, "'%s' is not a tokenizer hash (16 hex digits)", hex);
    *hash = v;
    return DL_OK;
}

int32_t dl_tokenizer_token_id(const dl_tokenizer *t, const char *content) {
    if (!t || !content)
        return -1;
    const tok_model *m = t->m;
    size_t len = strlen(content);
    for (size_t i = 0; i < m->num_added; i++)
        if (m->added[i].len == len && memcmp(m->added[i].content, content, len) == 0)
            return m->added[i].id;
    int found;
    uint64_t v = dl_strmap_get(&m->vocab, content, len, &found);
    return found ? (int32_t)v : -1;
}

int32_t dl_tokenizer_eos_id(const dl_tokenizer *t) { return dl_tokenizer_token_id(t, "<|endoftext|>"); }

dl_status dl_tokenizer_token_bytes(const dl_tokenizer *t, int32_t id, const uint8_t **bytes, size_t *len) {
    DL_REQUIRE(t && bytes && len, DL_ERR_INVALID, "dl_tokenizer_token_bytes: NULL argument");
    const tok_model *m = t->m;
    if (id < 0 || id >= m->vocab_size)
        return DL_FAIL(DL_ERR_INVALID, "token id %d is outside the vocabulary [0, %d)", (int)id, (int)m->vocab_size);
    if (m->kind == DL_TOKENIZER_BYTES) {
        static uint8_t all_bytes[256];
        static int ready;
        if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
            for (int i = 0; i < 256; i++)
                all_bytes[i] = (uint8_t)i;
            __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
        }
        *bytes = all_bytes + id;
        *len = 1;
        return DL_OK;
    }
    if (!(m->id_flags[id] & ID_PRESENT))
        return DL_FAIL(DL_ERR_INVALID, "token id %d is a hole in the vocabulary (no token has it)", (int)id);
    *bytes = m->id_data + m->id_off[id];
    *len = m->id_len[id];
    return DL_OK;
}

int dl_tokenizer_is_special(const dl_tokenizer *t, int32_t id) {
    return t && t->m->kind == DL_TOKENIZER_BPE && id >= 0 && id < t->m->vocab_size &&
           (t->m->id_flags[id] & ID_SPECIAL);
}

/* ---- building ---------------------------------------------------------------------------------------------------- */

typedef struct pending_merge {
    size_t left_off, left_len, right_off, right_len; /* in the builder's text pool */
} pending_merge;

struct dl_tok_builder {
    char *name;
    dl_strmap vocab; /* content -> id */
    int64_t max_id;
    pending_merge *merges;
    size_t num_merges, merges_cap;
    char *text;
    size_t text_len, text_cap;
    tok_added *added;
    size_t num_added, added_cap;
};

dl_status dl_tok_builder_new(dl_tok_builder **out, const char *name) {
    DL_REQUIRE(out, DL_ERR_INVALID, "dl_tok_builder_new: NULL argument");
    dl_tok_builder *b = calloc(1, sizeof *b);
    if (!b)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory starting a tokenizer");
    b->name = strdup(name ? name : "tokenizer");
    b->max_id = -1;
    if (!b->name) {
        free(b);
        return DL_FAIL(DL_ERR_NOMEM, "out of memory starting a tokenizer");
    }
    *out = b;
    return DL_OK;
}

void dl_tok_builder_free(dl_tok_builder *b) {
    if (!b)
        return;
    free(b->name);
    dl_strmap_free(&b->vocab);
    free(b->merges);
    free(b->text);
    for (size_t i = 0; i < b->num_added; i++)
        free(b->added[i].content);
    free(b->added);
    free(b);
}

dl_status dl_tok_builder_vocab(dl_tok_builder *b, const char *content, size_t len, int64_t id) {
    DL_REQUIRE(b && (content || len == 0), DL_ERR_INVALID, "dl_tok_builder_vocab: NULL argument");
    if (id < 0 || id >= DL_TOKENIZER_MAX_VOCAB)
        return DL_FAIL(DL_ERR_FORMAT, "vocabulary entry '%.*s' has id %lld, outside [0, %d)",
                       (int)(len > 40 ? 40 : len), content, (long long)id, DL_TOKENIZER_MAX_VOCAB);
    int found;
    uint64_t old = dl_strmap_get(&b->vocab, content, len, &found);
    if (found)
        return DL_FAIL(DL_ERR_FORMAT, "vocabulary entry '%.*s' appears twice (ids %llu and %lld)",
                       (int)(len > 40 ? 40 : len), content, (unsigned long long)old, (long long)id);
    DL_CHECK(dl_strmap_put(&b->vocab, content, len, (uint64_t)id));
    if (id > b->max_id)
        b->max_id = id;
    return DL_OK;
}

static dl_status builder_text(dl_tok_builder *b, const char *s, size_t n, size_t *off) {
    DL_CHECK(dl_grow((void **)&b->text, &b->text_cap, b->text_len + n + 1, 1, "tokenizer merge text"));
    memcpy(b->text + b->text_len, s, n);
    *off = b->text_len;
    b->text_len += n;
    return DL_OK;
}

dl_status dl_tok_builder_merge(dl_tok_builder *b, const char *left, size_t left_len, const char *right,
                               size_t right_len) {
    DL_REQUIRE(b && left && right, DL_ERR_INVALID, "dl_tok_builder_merge: NULL argument");
    DL_CHECK(dl_grow((void **)&b->merges, &b->merges_cap, b->num_merges + 1, sizeof *b->merges, "tokenizer merges"));
    pending_merge *pm = &b->merges[b->num_merges];
    pm->left_len = left_len;
    pm->right_len = right_len;
    DL_CHECK(builder_text(b, left, left_len, &pm->left_off));
    DL_CHECK(builder_text(b, right, right_len, &pm->right_off));
    b->num_merges++;
    return DL_OK;
}

dl_status dl_tok_builder_added(dl_tok_builder *b, const char *content, size_t len, int64_t id, int special,
                               int lstrip, int rstrip, int single_word, int normalized) {
    DL_REQUIRE(b && content, DL_ERR_INVALID, "dl_tok_builder_added: NULL argument");
    if (len == 0)
        return DL_FAIL(DL_ERR_FORMAT, "added token %lld has empty content", (long long)id);
    if (id < 0 || id >= DL_TOKENIZER_MAX_VOCAB)
        return DL_FAIL(DL_ERR_FORMAT, "added token '%.*s' has id %lld, outside [0, %d)", (int)(len > 40 ? 40 : len),
                       content, (long long)id, DL_TOKENIZER_MAX_VOCAB);
    for (size_t i = 0; i < b->num_added; i++)
        if (b->added[i].len == len && memcmp(b->added[i].content, content, len) == 0)
            return DL_FAIL(DL_ERR_FORMAT, "added token '%.*s' appears twice", (int)(len > 40 ? 40 : len), content);
    DL_CHECK(dl_grow((void **)&b->added, &b->added_cap, b->num_added + 1, sizeof *b->added, "added tokens"));
    tok_added *a = &b->added[b->num_added];
    memset(a, 0, sizeof *a);
    a->content = malloc(len + 1);
    if (!a->content)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory storing an added token");
    memcpy(a->content, content, len);
    a->content[len] = 0;
    a->len = len;
    a->id = (int32_t)id;
    a->special = (uint8_t)!!special;
    a->lstrip = (uint8_t)!!lstrip;
    a->rstrip = (uint8_t)!!rstrip;
    a->single_word = (uint8_t)!!single_word;
    a->normalized = (uint8_t)!!normalized;
    b->num_added++;
    if (id > b->max_id)
        b->max_id = id;
    return DL_OK;
}

/* The bytes a token decodes to: its characters through the inverse byte map when all of them are in it, else its
 * UTF-8 text (the ByteLevel decoder's rule). Writes at most len bytes into out. */
static size_t token_decode_bytes(const char *content, size_t len, uint8_t *out) {
    const uint8_t *s = (const uint8_t *)content;
    size_t i = 0, o = 0;
    while (i < len) {
        uint32_t cp;
        size_t k = dl_utf8_next(s + i, len - i, &cp);
        int b = k ? dl_char_byte(cp) : -1;
        if (b < 0) {
            memcpy(out, content, len);
            return len;
        }
        out[o++] = (uint8_t)b;
        i += k;
    }
    return o;
}

/* Canonical description -> xxHash64 (see tokenizer.h). */
static dl_status compute_hash(tok_model *m) {
    size_t cap = 64 + (size_t)m->vocab_size * 6 + m->num_merges * 8 + m->num_added * 8;
    for (int32_t i = 0; i < m->vocab_size; i++)
        cap += m->id_len[i];
    uint8_t *buf = malloc(cap);
    if (!buf)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory hashing the tokenizer");
    size_t o = 0;
#define PUT32(v)                                  \
    do {                                          \
        uint32_t v32_ = (uint32_t)(v);            \
        memcpy(buf + o, &v32_, 4);                \
        o += 4;                                   \
    } while (0)
    memcpy(buf, "dealer-bpe-v1", 13);
    o = 13;
    buf[o++] = (uint8_t)m->opt.add_prefix_space;
    buf[o++] = (uint8_t)m->opt.use_regex;
    buf[o++] = (uint8_t)m->opt.ignore_merges;
    buf[o++] = (uint8_t)m->opt.fuse_unk;
    PUT32(m->unk_id);
    PUT32(m->vocab_size);
    for (int32_t i = 0; i < m->vocab_size; i++) {
        buf[o++] = m->id_flags[i];
        PUT32(m->id_len[i]);
        memcpy(buf + o, m->id_data + m->id_off[i], m->id_len[i]);
        o += m->id_len[i];
    }
    for (size_t r = 0; r < m->num_merges; r++) {
        uint32_t rank;
        int32_t nid;
        if (!merge_find(m, m->merge_left[r], m->merge_right[r], &rank, &nid) || rank != r)
            continue; /* a duplicate overridden by a later rank */
        PUT32(m->merge_left[r]);
        PUT32(m->merge_right[r]);
    }
    for (size_t i = 0; i < m->num_added; i++) {
        PUT32(m->added[i].id);
        buf[o++] = (uint8_t)(m->added[i].lstrip | m->added[i].rstrip << 1 | m->added[i].single_word << 2 |
                             m->added[i].normalized << 3);
    }
#undef PUT32
    m->hash = dl_hash_bytes(buf, o, 0);
    if (m->hash == DL_TOKENIZER_BYTES_HASH)
        m->hash ^= 1;
    free(buf);
    return DL_OK;
}

static dl_status compile_regexes(tok_model *m) {
    int err;
    PCRE2_SIZE at;
    m->re = pcre2_compile((PCRE2_SPTR)dl_gpt2_pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &at, NULL);
    if (!m->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return DL_FAIL(DL_ERR_RUNTIME, "PCRE2 refused GPT-2's pattern at offset %zu: %s", (size_t)at, (char *)msg);
    }
    /* Without JIT (a build of PCRE2 that lacks it) the interpreter gives the same matches, only slower. */
    (void)pcre2_jit_compile(m->re, PCRE2_JIT_COMPLETE);
    if (m->has_single_word) {
        static const char word_pat[] = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200c}\\x{200d}]";
        m->word_re = pcre2_compile((PCRE2_SPTR)word_pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &at,
                                   NULL);
        if (!m->word_re)
            m->word_re = pcre2_compile((PCRE2_SPTR) "\\w", PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &at,
                                       NULL);
        if (!m->word_re)
            return DL_FAIL(DL_ERR_RUNTIME, "PCRE2 refused the word-character pattern");
    }
    return DL_OK;
}

static dl_status finish_model(dl_tok_builder *b, const dl_tok_options *opt, tok_model *m) {
    if (b->max_id < 0)
        return DL_FAIL(DL_ERR_FORMAT, "%s: the vocabulary is empty", b->name);
    m->vocab_size = (int32_t)(b->max_id + 1);
    size_t n = (size_t)m->vocab_size;
    m->id_off = calloc(n, sizeof *m->id_off);
    m->id_len = calloc(n, sizeof *m->id_len);
    m->id_flags = calloc(n, 1);
    m->model_content = calloc(n, sizeof *m->model_content);
    m->model_content_len = calloc(n, sizeof *m->model_content_len);
    size_t data_cap = b->vocab.pool_len + 16;
    for (size_t i = 0; i < b->num_added; i++)
        data_cap += b->added[i].len;
    m->id_data = malloc(data_cap);
    if (!m->id_off || !m->id_len || !m->id_flags || !m->model_content || !m->model_content_len || !m->id_data)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory building a %zu-entry vocabulary", n);
    size_t data_len = 0;
    for (size_t slot = 0; slot < b->vocab.cap; slot++) {
        if (!b->vocab.hashes[slot])
            continue;
        size_t len;
        const char *content = dl_strmap_key(&b->vocab, slot, &len);
        int32_t id = (int32_t)b->vocab.values[slot];
        if (m->id_flags[id] & ID_MODEL)
            return DL_FAIL(DL_ERR_FORMAT, "%s: id %d is given to two vocabulary entries ('%.*s' and '%.*s')", b->name,
                           (int)id, (int)(len > 40 ? 40 : len), content,
                           (int)(m->model_content_len[id] > 40 ? 40 : m->model_content_len[id]),
                           m->model_content[id]);
        m->model_content[id] = malloc(len + 1);
        if (!m->model_content[id])
            return DL_FAIL(DL_ERR_NOMEM, "out of memory building the vocabulary");
        memcpy(m->model_content[id], content, len);
        m->model_content[id][len] = 0;
        m->model_content_len[id] = (uint32_t)len;
        m->id_flags[id] |= ID_MODEL | ID_PRESENT;
        m->id_off[id] = data_len;
        m->id_len[id] = (uint32_t)token_decode_bytes(content, len, m->id_data + data_len);
        data_len += m->id_len[id];
        DL_CHECK(dl_strmap_put(&m->vocab, content, len, (uint64_t)id));
    }
    /* Added tokens decode to their own content (the added vocabulary wins over the model's for ids it names). */
    for (size_t i = 0; i < b->num_added; i++) {
        tok_added *a = &b->added[i];
        m->id_flags[a->id] |= ID_ADDED | ID_PRESENT | (a->special ? ID_SPECIAL : 0);
        m->id_off[a->id] = data_len;
        m->id_len[a->id] = (uint32_t)token_decode_bytes(a->content, a->len, m->id_data + data_len);
        data_len += m->id_len[a->id];
    }
    /* Byte symbols and the bytes map for ignore_merges. */
    for (int i = 0; i < 256; i++) {
        uint8_t utf8[4];
        size_t k = dl_utf8_put(dl_byte_char[i], utf8);
        int found;
        uint64_t v = dl_strmap_get(&m->vocab, utf8, k, &found);
        m->byte_id[i] = found ? (int32_t)v : -1;
    }
    if (opt->ignore_merges)
        for (int32_t id = 0; id < m->vocab_size; id++)
            if (m->id_flags[id] & ID_MODEL) {
                uint8_t *tmp = malloc(m->model_content_len[id] + 1);
                if (!tmp)
                    return DL_FAIL(DL_ERR_NOMEM, "out of memory building the vocabulary");
                size_t k = token_decode_bytes(m->model_content[id], m->model_content_len[id], tmp);
                dl_status s = dl_strmap_put(&m->vocab_bytes, tmp, k, (uint64_t)id);
                free(tmp);
                DL_CHECK(s);
            }
    /* Merges: both parts and their concatenation must be in the vocabulary, as `tokenizers` demands. */
    m->num_merges = b->num_merges;
    m->mm_cap = 16;
    while (m->mm_cap < b->num_merges * 2 + 2)
        m->mm_cap *= 2;
    m->mm_keys = calloc(m->mm_cap, sizeof *m->mm_keys);
    m->mm_vals = calloc(m->mm_cap, sizeof *m->mm_vals);
    m->merge_left = malloc((b->num_merges + 1) * sizeof *m->merge_left);
    m->merge_right = malloc((b->num_merges + 1) * sizeof *m->merge_right);
    m->merge_new = malloc((b->num_merges + 1) * sizeof *m->merge_new);
    char *joined = NULL;
    size_t joined_cap = 0;
    if (!m->mm_keys || !m->mm_vals || !m->merge_left || !m->merge_right || !m->merge_new)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory building %zu merges", b->num_merges);
    for (size_t r = 0; r < b->num_merges; r++) {
        pending_merge *pm = &b->merges[r];
        const char *l = b->text + pm->left_off, *rt = b->text + pm->right_off;
        int fl, fr, fj;
        uint64_t li = dl_strmap_get(&m->vocab, l, pm->left_len, &fl);
        uint64_t ri = dl_strmap_get(&m->vocab, rt, pm->right_len, &fr);
        if (!fl || !fr) {
            free(joined);
            return DL_FAIL(DL_ERR_FORMAT, "%s: merge %zu ('%.*s' '%.*s'): '%.*s' is not in the vocabulary", b->name,
                           r + 1, (int)pm->left_len, l, (int)pm->right_len, rt,
                           (int)(fl ? pm->right_len : pm->left_len), fl ? rt : l);
        }
        dl_status gs = dl_grow((void **)&joined, &joined_cap, pm->left_len + pm->right_len + 1, 1, "a merge");
        if (gs != DL_OK) {
            free(joined);
            return gs;
        }
        memcpy(joined, l, pm->left_len);
        memcpy(joined + pm->left_len, rt, pm->right_len);
        uint64_t ji = dl_strmap_get(&m->vocab, joined, pm->left_len + pm->right_len, &fj);
        if (!fj) {
            dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s: merge %zu ('%.*s' '%.*s'): the merged token '%.*s' is not in the "
                                                 "vocabulary",
                                  b->name, r + 1, (int)pm->left_len, l, (int)pm->right_len, rt,
                                  (int)(pm->left_len + pm->right_len), joined);
            free(joined);
            return s;
        }
        m->merge_left[r] = (int32_t)li;
        m->merge_right[r] = (int32_t)ri;
        m->merge_new[r] = (int32_t)ji;
        merge_put(m, (int32_t)li, (int32_t)ri, (uint32_t)r, (int32_t)ji);
    }
    free(joined);
    /* Added tokens, in the order `tokenizers` keeps them. */
    m->added = b->added;
    m->num_added = b->num_added;
    b->added = NULL;
    b->num_added = 0;
    for (size_t i = 0; i < m->num_added; i++) {
        m->added_first[(uint8_t)m->added[i].content[0]] = 1;
        if (m->added[i].single_word)
            m->has_single_word = 1;
    }
    m->opt = *opt;
    m->unk_id = -1;
    if (opt->unk_token) {
        m->unk_token = strdup(opt->unk_token);
        if (!m->unk_token)
            return DL_FAIL(DL_ERR_NOMEM, "out of memory");
        int found;
        uint64_t v = dl_strmap_get(&m->vocab, opt->unk_token, strlen(opt->unk_token), &found);
        if (!found)
            return DL_FAIL(DL_ERR_FORMAT, "%s: unk_token '%s' is not in the vocabulary", b->name, opt->unk_token);
        m->unk_id = (int32_t)v;
    }
    m->opt.unk_token = m->unk_token;
    DL_CHECK(compile_regexes(m));
    return compute_hash(m);
}

/* Gives added tokens the ids `tokenizers` gives them when it loads a file: special tokens first, then the others,
 * each in file order; a token the model vocabulary holds takes that id, any other the next free one (one past the
 * largest added id, or the model vocabulary's size when that is larger). A file `tokenizers` wrote always agrees;
 * a hand-edited one that does not gets the ids `tokenizers` would use, with the warning `tokenizers` prints. */
static dl_status assign_added_ids(dl_tok_builder *b) {
    if (b->num_added == 0)
        return DL_OK;
    tok_added *sorted = malloc(b->num_added * sizeof *sorted);
    if (!sorted)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory ordering added tokens");
    size_t n = b->num_added;
    memcpy(sorted, b->added, n * sizeof *sorted);
    int64_t model_size = (int64_t)b->vocab.count, max_added = -1, max_vocab = -1;
    for (size_t slot = 0; slot < b->vocab.cap; slot++)
        if (b->vocab.hashes[slot] && (int64_t)b->vocab.values[slot] > max_vocab)
            max_vocab = (int64_t)b->vocab.values[slot];
    for (size_t i = 0; i < n; i++) {
        int found;
        uint64_t v = dl_strmap_get(&b->vocab, sorted[i].content, sorted[i].len, &found);
        int64_t id;
        if (found)
            id = (int64_t)v;
        else if (max_added < 0)
            id = model_size;
        else
            id = max_added >= model_size || model_size == 0 ? max_added + 1 : model_size;
        if (id != sorted[i].id)
            dl_log(DL_LOG_WARN, "%s: added token '%s' was given id %d but gets %lld (as in Hugging Face tokenizers)",
                   b->name, sorted[i].content, (int)sorted[i].id, (long long)id);
        if (id >= DL_TOKENIZER_MAX_VOCAB) {
            dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s: added token '%s' would get id %lld, beyond %d", b->name,
                                  sorted[i].content, (long long)id, DL_TOKENIZER_MAX_VOCAB);
            free(sorted);
            return s;
        }
        sorted[i].id = (int32_t)id;
        if (id > max_added)
            max_added = id;
    }
    memcpy(b->added, sorted, n * sizeof *sorted);
    free(sorted);
    b->max_id = max_vocab > max_added ? max_vocab : max_added;
    return DL_OK;
}

dl_status dl_tok_builder_finish(dl_tok_builder *b, const dl_tok_options *opt, dl_tokenizer **out) {
    if (!b)
        return DL_FAIL(DL_ERR_INVALID, "dl_tok_builder_finish: NULL builder");
    dl_status s = assign_added_ids(b);
    if (!opt || !out)
        s = DL_FAIL(DL_ERR_INVALID, "dl_tok_builder_finish: NULL argument");
    tok_model *m = NULL;
    if (s == DL_OK) {
        m = calloc(1, sizeof *m);
        if (!m)
            s = DL_FAIL(DL_ERR_NOMEM, "out of memory building a tokenizer");
    }
    if (s == DL_OK) {
        m->kind = DL_TOKENIZER_BPE;
        s = finish_model(b, opt, m);
    }
    if (s == DL_OK) {
        s = handle_new(m, out);
        if (s == DL_OK)
            m = NULL; /* the handle holds the only reference */
    }
    if (s != DL_OK && m) {
        m->refs = 1;
        model_release(m);
    }
    dl_tok_builder_free(b);
    return s;
}

/* ---- loading ----------------------------------------------------------------------------------------------------- */

static int json_flag(const json_t *obj, const char *key, int dflt) {
    const json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* A key that must be null/absent or one of the accepted "type" values. */
static dl_status check_component(const char *name, const json_t *root, const char *key, const char *const *ok,
                                 const char *why) {
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return DL_OK;
    const char *type = json_is_object(v) ? json_string_value(json_object_get(v, "type")) : NULL;
    for (size_t i = 0; ok[i]; i++)
        if (type && strcmp(type, ok[i]) == 0)
            return DL_OK;
    dl_status s = DL_FAIL(DL_ERR_UNSUPPORTED, "%s: \"%s\" of type %s is not supported (%s)", name, key,
                          type ? type : "(none)", why);
    dl_error_hint("dealer runs GPT-2-style byte-level BPE exactly; remove or change \"%s\" to use this file", key);
    return s;
}

/* The ByteLevel pre-tokenizer settings, directly or as the one member of a Sequence. */
static dl_status read_pre_tokenizer(const char *name, const json_t *root, dl_tok_options *opt) {
    const json_t *pt = json_object_get(root, "pre_tokenizer");
    const char *type = json_is_object(pt) ? json_string_value(json_object_get(pt, "type")) : NULL;
    if (type && strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(pt, "pretokenizers");
        if (json_is_array(list) && json_array_size(list) == 1) {
            pt = json_array_get(list, 0);
            type = json_is_object(pt) ? json_string_value(json_object_get(pt, "type")) : NULL;
        }
    }
    if (!type || strcmp(type, "ByteLevel") != 0) {
        dl_status s = DL_FAIL(DL_ERR_UNSUPPORTED, "%s: \"pre_tokenizer\" is %s, not ByteLevel", name,
                              type ? type : "missing");
        dl_error_hint("dealer loads GPT-2-style byte-level BPE (pre_tokenizer {\"type\": \"ByteLevel\"})");
        return s;
    }
    opt->add_prefix_space = json_flag(pt, "add_prefix_space", 1);
    opt->use_regex = json_flag(pt, "use_regex", 1);
    return DL_OK;
}

static dl_status json_member_string(const char *name, const json_t *v, const char *what, const char **s,
                                    size_t *len) {
    if (!json_is_string(v))
        return DL_FAIL(DL_ERR_FORMAT, "%s: %s is not a string", name, what);
    *s = json_string_value(v);
    *len = json_string_length(v);
    return DL_OK;
}

static dl_status load_json_root(const char *name, const json_t *root, dl_tokenizer **out) {
    if (!json_is_object(root))
        return DL_FAIL(DL_ERR_FORMAT, "%s: not a JSON object", name);
    const json_t *model = json_object_get(root, "model");
    if (!json_is_object(model))
        return DL_FAIL(DL_ERR_FORMAT, "%s: no \"model\" object (is this a Hugging Face tokenizer.json?)", name);
    const char *type = json_string_value(json_object_get(model, "type"));
    if (type && strcmp(type, "BPE") != 0) {
        dl_status s = DL_FAIL(DL_ERR_UNSUPPORTED, "%s: model.type is %s; dealer loads BPE models", name, type);
        dl_error_hint("use a byte-level BPE tokenizer.json (GPT-2 family) or train one: dealer tokenizer train");
        return s;
    }
    static const char *const no_types[] = {NULL};
    static const char *const byte_level[] = {"ByteLevel", NULL};
    DL_CHECK(check_component(name, root, "normalizer", no_types, "it rewrites text before tokenizing"));
    DL_CHECK(check_component(name, root, "post_processor", byte_level, "it adds tokens around each text"));
    DL_CHECK(check_component(name, root, "decoder", byte_level, "dealer decodes byte-level tokens"));
    DL_CHECK(check_component(name, root, "truncation", no_types, "it cuts texts"));
    DL_CHECK(check_component(name, root, "padding", no_types, "it pads texts"));
    const json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) && !(json_is_number(dropout) && json_number_value(dropout) == 0.0))
        return DL_FAIL(DL_ERR_UNSUPPORTED, "%s: model.dropout is set; BPE dropout makes encoding random, which "
                                           "dealer does not do (set it to null)", name);
    static const char *const nulls[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const json_t *v = json_object_get(model, nulls[i]);
        if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
            return DL_FAIL(DL_ERR_UNSUPPORTED, "%s: model.%s is set; byte-level BPE has none (set it to null)", name,
                           nulls[i]);
    }
    if (json_flag(model, "byte_fallback", 0))
        return DL_FAIL(DL_ERR_UNSUPPORTED, "%s: model.byte_fallback is true; byte-level BPE needs no fallback "
                                           "(set it to false)", name);
    dl_tok_options opt = {0};
    DL_CHECK(read_pre_tokenizer(name, root, &opt));
    opt.ignore_merges = json_flag(model, "ignore_merges", 0);
    opt.fuse_unk = json_flag(model, "fuse_unk", 0);
    const json_t *unk = json_object_get(model, "unk_token");
    if (unk && !json_is_null(unk)) {
        if (!json_is_string(unk))
            return DL_FAIL(DL_ERR_FORMAT, "%s: model.unk_token is not a string", name);
        opt.unk_token = json_string_value(unk);
    }
    const json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab))
        return DL_FAIL(DL_ERR_FORMAT, "%s: model.vocab is not an object {token: id}", name);
    const json_t *merges = json_object_get(model, "merges");
    if (merges && !json_is_array(merges))
        return DL_FAIL(DL_ERR_FORMAT, "%s: model.merges is not a list", name);

    dl_tok_builder *b;
    DL_CHECK(dl_tok_builder_new(&b, name));
    dl_status s = DL_OK;
    const char *key;
    size_t key_len;
    json_t *val;
    json_object_keylen_foreach((json_t *)vocab, key, key_len, val) {
        if (!json_is_integer(val)) {
            s = DL_FAIL(DL_ERR_FORMAT, "%s: model.vocab[\"%.*s\"] is not an integer id", name,
                        (int)(key_len > 40 ? 40 : key_len), key);
            break;
        }
        s = dl_tok_builder_vocab(b, key, key_len, json_integer_value(val));
        if (s != DL_OK) {
            dl_error_context("%s: model.vocab", name);
            break;
        }
    }
    for (size_t i = 0; s == DL_OK && merges && i < json_array_size(merges); i++) {
        const json_t *e = json_array_get(merges, i);
        const char *l = NULL, *r = NULL;
        size_t ll = 0, rl = 0;
        if (json_is_string(e)) {
            /* "a b": exactly one space, as `tokenizers` requires (byte-level tokens never hold a space). */
            const char *str = json_string_value(e);
            size_t len = json_string_length(e);
            const char *sp = memchr(str, ' ', len);
            if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - str))) {
                s = DL_FAIL(DL_ERR_FORMAT, "%s: model.merges[%zu] \"%.*s\" is not \"left right\"", name, i,
                            (int)(len > 60 ? 60 : len), str);
                break;
            }
            l = str, ll = (size_t)(sp - str), r = sp + 1, rl = len - ll - 1;
        } else if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
                   json_is_string(json_array_get(e, 1))) {
            s = json_member_string(name, json_array_get(e, 0), "a merge", &l, &ll);
            if (s == DL_OK)
                s = json_member_string(name, json_array_get(e, 1), "a merge", &r, &rl);
        } else {
            s = DL_FAIL(DL_ERR_FORMAT, "%s: model.merges[%zu] is neither \"left right\" nor [\"left\", \"right\"]",
                        name, i);
        }
        if (s == DL_OK)
            s = dl_tok_builder_merge(b, l, ll, r, rl);
    }
    const json_t *added = json_object_get(root, "added_tokens");
    if (s == DL_OK && added && !json_is_null(added) && !json_is_array(added))
        s = DL_FAIL(DL_ERR_FORMAT, "%s: added_tokens is not a list", name);
    for (size_t i = 0; s == DL_OK && added && json_is_array(added) && i < json_array_size(added); i++) {
        const json_t *a = json_array_get(added, i);
        const json_t *id = json_object_get(a, "id");
        const json_t *content = json_object_get(a, "content");
        if (!json_is_object(a) || !json_is_integer(id) || !json_is_string(content)) {
            s = DL_FAIL(DL_ERR_FORMAT, "%s: added_tokens[%zu] needs an integer \"id\" and a string \"content\"", name,
                        i);
            break;
        }
        int special = json_flag(a, "special", 0);
        s = dl_tok_builder_added(b, json_string_value(content), json_string_length(content), json_integer_value(id),
                                 special, json_flag(a, "lstrip", 0), json_flag(a, "rstrip", 0),
                                 json_flag(a, "single_word", 0), json_flag(a, "normalized", !special));
        if (s != DL_OK)
            dl_error_context("%s: added_tokens[%zu]", name, i);
    }
    if (s != DL_OK) {
        dl_tok_builder_free(b);
        return s;
    }
    return dl_tok_builder_finish(b, &opt, out);
}

dl_status dl_tokenizer_from_json(const char *text, size_t len, const char *name, dl_tokenizer **out) {
    DL_REQUIRE(out && (text || len == 0), DL_ERR_INVALID, "dl_tokenizer_from_json: NULL argument");
    *out = NULL;
    name = name ? name : "tokenizer.json";
    json_error_t err;
    json_t *root = json_loadb(text ? text : "", len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return DL_FAIL(DL_ERR_FORMAT, "%s:%d:%d: invalid JSON: %s", name, err.line, err.column, err.text);
    dl_status s = load_json_root(name, root, out);
    json_decref(root);
    return s;
}

static dl_status read_input(const char *path, uint8_t **data, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return dl_open_failure(path, errno, "check the tokenizer path");
    fclose(fp);
    return dl_read_file(path, data, len);
}

dl_status dl_tokenizer_load_vocab_merges(const char *vocab_path, const char *merges_path, dl_tokenizer **out) {
    DL_REQUIRE(vocab_path && merges_path && out, DL_ERR_INVALID, "dl_tokenizer_load_vocab_merges: NULL argument");
    *out = NULL;
    uint8_t *vtext = NULL, *mtext = NULL;
    size_t vlen = 0, mlen = 0;
    DL_CHECK(read_input(vocab_path, &vtext, &vlen));
    dl_status s = read_input(merges_path, &mtext, &mlen);
    if (s != DL_OK) {
        free(vtext);
        return s;
    }
    json_error_t err;
    json_t *vocab = json_loadb((const char *)vtext, vlen, JSON_REJECT_DUPLICATES, &err);
    free(vtext);
    dl_tok_builder *b = NULL;
    if (!vocab)
        s = DL_FAIL(DL_ERR_FORMAT, "%s:%d:%d: invalid JSON: %s", vocab_path, err.line, err.column, err.text);
    else if (!json_is_object(vocab))
        s = DL_FAIL(DL_ERR_FORMAT, "%s: not a JSON object {token: id}", vocab_path);
    if (s == DL_OK)
        s = dl_tok_builder_new(&b, vocab_path);
    const char *key;
    size_t key_len;
    json_t *val;
    if (s == DL_OK) {
        json_object_keylen_foreach(vocab, key, key_len, val) {
            if (!json_is_integer(val)) {
                s = DL_FAIL(DL_ERR_FORMAT, "%s: \"%.*s\" has no integer id", vocab_path,
                            (int)(key_len > 40 ? 40 : key_len), key);
                break;
            }
            s = dl_tok_builder_vocab(b, key, key_len, json_integer_value(val));
            if (s != DL_OK) {
                dl_error_context("%s", vocab_path);
                break;
            }
            if (key_len > 4 && memcmp(key, "<|", 2) == 0 && memcmp(key + key_len - 2, "|>", 2) == 0)
                s = dl_tok_builder_added(b, key, key_len, json_integer_value(val), 1, 0, 0, 0, 0);
            if (s != DL_OK)
                break;
        }
    }
    /* merges.txt: lines "a b"; a first line starting "#version" is a comment; a final newline ends the file. */
    size_t line_no = 0, pos = 0;
    while (s == DL_OK && pos < mlen) {
        const char *line = (const char *)mtext + pos;
        const char *nl = memchr(line, '\n', mlen - pos);
        size_t len = nl ? (size_t)(nl - line) : mlen - pos;
        pos += len + (nl ? 1 : 0);
        line_no++;
        if (len && line[len - 1] == '\r')
            len--;
        if (line_no == 1 && len >= 8 && memcmp(line, "#version", 8) == 0)
            continue;
        const char *sp = memchr(line, ' ', len);
        if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - line)) || sp == line || sp + 1 == line + len) {
            s = DL_FAIL(DL_ERR_FORMAT, "%s:%zu: \"%.*s\" is not \"left right\"", merges_path, line_no,
                        (int)(len > 60 ? 60 : len), line);
            break;
        }
        s = dl_tok_builder_merge(b, line, (size_t)(sp - line), sp + 1, len - (size_t)(sp - line) - 1);
    }
    json_decref(vocab);
    free(mtext);
    if (s != DL_OK) {
        dl_tok_builder_free(b);
        return s;
    }
    dl_tok_options opt = {.add_prefix_space = 0, .use_regex = 1};
    return dl_tok_builder_finish(b, &opt, out);
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

dl_status dl_tokenizer_load(const char *path, dl_tokenizer **out) {
    DL_REQUIRE(path && path[0] && out, DL_ERR_INVALID, "no tokenizer path given");
    *out = NULL;
    if (strcmp(path, "bytes") == 0)
        return dl_tokenizer_new_bytes(out);
    size_t n = strlen(path);
    char *a = malloc(n + 32), *b = malloc(n + 32);
    if (!a || !b) {
        free(a);
        free(b);
        return DL_FAIL(DL_ERR_NOMEM, "out of memory");
    }
    dl_status s;
    if (is_dir(path)) {
        snprintf(a, n + 32, "%s/tokenizer.json", path);
        if (exists(a)) {
            s = dl_tokenizer_load(a, out);
        } else {
            snprintf(a, n + 32, "%s/vocab.json", path);
            snprintf(b, n + 32, "%s/merges.txt", path);
            if (exists(a) && exists(b))
                s = dl_tokenizer_load_vocab_merges(a, b, out);
            else {
                s = DL_FAIL(DL_ERR_INVALID, "%s holds neither tokenizer.json nor vocab.json + merges.txt", path);
                dl_error_hint("pass the tokenizer.json itself, or a Hugging Face model directory");
            }
        }
    } else if (n >= 10 && strcmp(path + n - 10, "vocab.json") == 0) {
        memcpy(b, path, n - 10);
        strcpy(b + n - 10, "merges.txt");
        if (!exists(b)) {
            s = DL_FAIL(DL_ERR_INVALID, "%s needs merges.txt beside it (%s is missing)", path, b);
        } else {
            s = dl_tokenizer_load_vocab_merges(path, b, out);
        }
    } else {
        uint8_t *text = NULL;
        size_t len = 0;
        s = read_input(path, &text, &len);
        if (s == DL_OK)
            s = dl_tokenizer_from_json((const char *)text, len, path, out);
        free(text);
    }
    free(a);
    free(b);
    return s;
}

/* ---- encoding ---------------------------------------------------------------------------------------------------- */

/* The per-word BPE merge: `tokenizers`' Word::merge_all (heap ordered by rank, then position). */
static inline int heap_less(uint64_t a, uint64_t b) { return a < b; } /* rank in the high half, position low */

static void heap_push(dl_tokenizer *t, uint32_t rank, uint32_t pos, int32_t new_id) {
    size_t i = t->heap_len++;
    uint64_t key = (uint64_t)rank << 32 | pos;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(key, t->heap[p]))
            break;
        t->heap[i] = t->heap[p];
        t->heap_new[i] = t->heap_new[p];
        i = p;
    }
    t->heap[i] = key;
    t->heap_new[i] = new_id;
}

static void heap_pop(dl_tokenizer *t, uint64_t *key, int32_t *new_id) {
    *key = t->heap[0];
    *new_id = t->heap_new[0];
    uint64_t last = t->heap[--t->heap_len];
    int32_t last_new = t->heap_new[t->heap_len];
    size_t i = 0, n = t->heap_len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap_less(t->heap[c + 1], t->heap[c]))
            c++;
        if (!heap_less(t->heap[c], last))
            break;
        t->heap[i] = t->heap[c];
        t->heap_new[i] = t->heap_new[c];
        i = c;
    }
    if (n) {
        t->heap[i] = last;
        t->heap_new[i] = last_new;
    }
}

/* Grows one more of several parallel arrays that share a capacity: from `factor`·old to `factor`·grown elements
 * (dl_grow doubles from the same start, so every array ends at least as large as the first). */
static dl_status grow_parallel(void **p, size_t elem, size_t old, size_t grown, size_t factor, const char *what) {
    size_t cap = factor * old;
    return dl_grow(p, &cap, factor * grown, elem, what);
}

static dl_status reserve_symbols(dl_tokenizer *t, size_t n) {
    if (n <= t->sym_cap)
        return DL_OK;
    size_t old = t->sym_cap, grown = old;
    DL_CHECK(dl_grow((void **)&t->sym_c, &grown, n, sizeof *t->sym_c, "BPE symbols"));
    DL_CHECK(grow_parallel((void **)&t->sym_prev, sizeof *t->sym_prev, old, grown, 1, "BPE symbols"));
    DL_CHECK(grow_parallel((void **)&t->sym_next, sizeof *t->sym_next, old, grown, 1, "BPE symbols"));
    DL_CHECK(grow_parallel((void **)&t->sym_len, sizeof *t->sym_len, old, grown, 1, "BPE symbols"));
    /* Each merge pushes at most two entries and the start pushes n - 1. */
    DL_CHECK(grow_parallel((void **)&t->heap, sizeof *t->heap, old, grown, 3, "BPE merge heap"));
    DL_CHECK(grow_parallel((void **)&t->heap_new, sizeof *t->heap_new, old, grown, 3, "BPE merge heap"));
    t->sym_cap = grown;
    return DL_OK;
}

/* BPE of one pre-token (raw bytes), appending ids. */
static dl_status bpe_word(dl_tokenizer *t, const uint8_t *w, size_t n, dl_i32_array *ids) {
    const tok_model *m = t->m;
    if (n == 1 && m->byte_id[w[0]] >= 0)
        return dl_i32_array_push(ids, m->byte_id[w[0]]);
    int cacheable = n <= CACHE_MAX_WORD;
    if (cacheable) {
        int found;
        uint64_t v = dl_strmap_get(&t->cache, w, n, &found);
        if (found) {
            size_t off = (size_t)(v >> 20), cnt = (size_t)(v & 0xFFFFF);
            DL_CHECK(dl_i32_array_reserve(ids, ids->len + cnt));
            memcpy(ids->data + ids->len, t->cache_ids + off, cnt * sizeof(int32_t));
            ids->len += cnt;
            return DL_OK;
        }
    }
    size_t first = ids->len;
    int done = 0;
    if (m->opt.ignore_merges) {
        int found;
        uint64_t v = dl_strmap_get(&m->vocab_bytes, w, n, &found);
        if (found) {
            DL_CHECK(dl_i32_array_push(ids, (int32_t)v));
            done = 1;
        }
    }
    if (!done) {
        DL_CHECK(reserve_symbols(t, n));
        size_t ns = 0;
        int32_t unk_pending = 0; /* bytes in the unk symbol being fused */
        for (size_t i = 0; i < n; i++) {
            int32_t id = m->byte_id[w[i]];
            if (id < 0) {
                if (m->unk_id < 0)
                    continue; /* `tokenizers` drops a character it has no token for when there is no unk */
                if (unk_pending && m->opt.fuse_unk) {
                    t->sym_len[ns - 1]++;
                    continue;
                }
                id = m->unk_id;
                unk_pending = 1;
            } else {
                unk_pending = 0;
            }
            t->sym_c[ns] = id;
            t->sym_prev[ns] = (int32_t)ns - 1;
            t->sym_next[ns] = -1;
            if (ns)
                t->sym_next[ns - 1] = (int32_t)ns;
            t->sym_len[ns] = 1;
            ns++;
        }
        t->heap_len = 0;
        for (size_t i = 0; i + 1 < ns; i++) {
            uint32_t rank;
            int32_t nid;
            if (merge_find(m, t->sym_c[i], t->sym_c[i + 1], &rank, &nid))
                heap_push(t, rank, (uint32_t)i, nid);
        }
        while (t->heap_len) {
            uint64_t key;
            int32_t top_new;
            heap_pop(t, &key, &top_new);
            uint32_t pos = (uint32_t)key;
            if (t->sym_len[pos] == 0 || t->sym_next[pos] < 0)
                continue;
            int32_t right = t->sym_next[pos];
            uint32_t rank;
            int32_t nid;
            if (!merge_find(m, t->sym_c[pos], t->sym_c[right], &rank, &nid) || nid != top_new)
                continue; /* an entry for a pair that has changed since */
            t->sym_c[pos] = top_new;
            t->sym_len[pos] += t->sym_len[right];
            t->sym_next[pos] = t->sym_next[right];
            t->sym_len[right] = 0;
            if (t->sym_next[right] >= 0)
                t->sym_prev[t->sym_next[right]] = (int32_t)pos;
            int32_t prev = t->sym_prev[pos];
            if (prev >= 0 && merge_find(m, t->sym_c[prev], t->sym_c[pos], &rank, &nid))
                heap_push(t, rank, (uint32_t)prev, nid);
            int32_t next = t->sym_next[pos];
            if (next >= 0 && merge_find(m, t->sym_c[pos], t->sym_c[next], &rank, &nid))
                heap_push(t, rank, pos, nid);
        }
        DL_CHECK(dl_i32_array_reserve(ids, ids->len + ns));
        for (size_t i = 0; i < ns; i++)
            if (t->sym_len[i])
                ids->data[ids->len++] = t->sym_c[i];
    }
    if (cacheable) {
        size_t cnt = ids->len - first;
        if (t->cache.count >= CACHE_MAX_WORDS || t->cache_ids_len + cnt >= (1ull << 40)) {
            dl_strmap_clear(&t->cache);
            t->cache_ids_len = 0;
        }
        DL_CHECK(dl_grow((void **)&t->cache_ids, &t->cache_ids_cap, t->cache_ids_len + cnt, sizeof(int32_t),
                         "the tokenizer cache"));
        memcpy(t->cache_ids + t->cache_ids_len, ids->data + first, cnt * sizeof(int32_t));
        DL_CHECK(dl_strmap_put(&t->cache, w, n, (uint64_t)t->cache_ids_len << 20 | cnt));
        t->cache_ids_len += cnt;
    }
    return DL_OK;
}

/* Pre-tokenizes one piece of text (no added tokens in it) and BPE-encodes each pre-token. */
static dl_status encode_piece(dl_tokenizer *t, const uint8_t *s, size_t n, dl_i32_array *ids) {
    if (n == 0)
        return DL_OK;
    const tok_model *m = t->m;
    if (m->opt.add_prefix_space && s[0] != ' ') {
        DL_CHECK(dl_grow((void **)&t->piece, &t->piece_cap, n + 1, 1, "a text piece"));
        t->piece[0] = ' ';
        memcpy(t->piece + 1, s, n);
        s = t->piece;
        n++;
    }
    if (!m->opt.use_regex)
        return bpe_word(t, s, n, ids);
    size_t off = 0;
    while (off < n) {
        int rc = pcre2_match(m->re, s, n, off, PCRE2_NO_UTF_CHECK, t->md, t->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) {
            DL_CHECK(bpe_word(t, s + off, n - off, ids));
            break;
        }
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return DL_FAIL(DL_ERR_RUNTIME, "pre-tokenizing at byte %zu: PCRE2: %s", off, (char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
        if (ov[0] > off)
            DL_CHECK(bpe_word(t, s + off, ov[0] - off, ids));
        if (ov[1] == ov[0]) { /* cannot happen with this pattern; step one character to be safe */
            size_t step = 1;
            while (ov[0] + step < n && (s[ov[0] + step] & 0xC0) == 0x80)
                step++;
            DL_CHECK(bpe_word(t, s + ov[0], step, ids));
            off = ov[0] + step;
            continue;
        }
        DL_CHECK(bpe_word(t, s + ov[0], ov[1] - ov[0], ids));
        off = ov[1];
    }
    return DL_OK;
}

static int is_white_space(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* The code point ending at s[end) (text is valid UTF-8 here). */
static size_t prev_char(const uint8_t *s, size_t end, uint32_t *cp) {
    size_t k = end - 1;
    while (k > 0 && (s[k] & 0xC0) == 0x80 && end - k < 4)
        k--;
    if (!dl_utf8_next(s + k, end - k, cp))
        *cp = 0xFFFD;
    return end - k;
}

static int is_word_char(const tok_model *m, dl_tokenizer *t, const uint8_t *s, size_t n) {
    return pcre2_match(m->word_re, s, n, 0, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK, t->md, NULL) >= 0;
}

/* Leftmost-longest added token (of the given normalized class) at or after `from`. */
static int find_added(const tok_model *m, const uint8_t *s, size_t n, size_t from, int normalized, size_t *start,
                      const tok_added **hit) {
    for (size_t i = from; i < n; i++) {
        if (!m->added_first[s[i]])
            continue;
        const tok_added *best = NULL;
        for (size_t k = 0; k < m->num_added; k++) {
            const tok_added *a = &m->added[k];
            if (a->normalized != normalized || a->len > n - i || (uint8_t)a->content[0] != s[i])
                continue;
            if (memcmp(a->content, s + i, a->len) == 0 && (!best || a->len > best->len))
                best = a;
        }
        if (best) {
            *start = i;
            *hit = best;
            return 1;
        }
    }
    return 0;
}

/* Splits on added tokens the way `tokenizers`' AddedVocabulary does: first the tokens matched on raw text
 * (normalized: false), then within what is left the others; without a normalizer the text is the same in both. */
static dl_status split_added(dl_tokenizer *t, const uint8_t *s, size_t n, int pass, dl_i32_array *ids) {
    const tok_model *m = t->m;
    if (pass == 2)
        return encode_piece(t, s, n, ids);
    size_t start_offset = 0, from = 0, ms = 0;
    const tok_added *a = NULL;
    while (from < n && find_added(m, s, n, from, pass == 1, &ms, &a)) {
        size_t me = ms + a->len, start = ms, stop = me;
        from = me;
        if (a->single_word) {
            uint32_t cp;
            int start_space = ms == 0;
            if (!start_space) {
                size_t k = prev_char(s, ms, &cp);
                start_space = !is_word_char(m, t, s + ms - k, k);
            }
            int stop_space = me == n || !is_word_char(m, t, s + me, n - me);
            if (!start_space || !stop_space)
                continue;
        }
        if (a->lstrip) {
            size_t k = ms;
            while (k > 0) {
                uint32_t cp;
                size_t w = prev_char(s, k, &cp);
                if (!is_white_space(cp))
                    break;
                k -= w;
            }
            start = k > start_offset ? k : start_offset;
        }
        if (a->rstrip) {
            while (stop < n) {
                uint32_t cp;
                size_t w = dl_utf8_next(s + stop, n - stop, &cp);
                if (!w || !is_white_space(cp))
                    break;
                stop += w;
            }
        }
        if (start_offset < start)
            DL_CHECK(split_added(t, s + start_offset, start - start_offset, pass + 1, ids));
        DL_CHECK(dl_i32_array_push(ids, a->id));
        start_offset = stop;
    }
    if (start_offset < n)
        DL_CHECK(split_added(t, s + start_offset, n - start_offset, pass + 1, ids));
    return DL_OK;
}

/* Returns valid UTF-8: `text` itself when it is, else a copy in t->clean with each maximal ill-formed subpart
 * replaced by U+FFFD. */
static dl_status sanitize(dl_tokenizer *t, const uint8_t *s, size_t n, const uint8_t **out, size_t *out_len) {
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = dl_utf8_next(s + i, n - i, &cp);
        if (!k)
            break;
        i += k;
    }
    if (i == n) {
        *out = s;
        *out_len = n;
        return DL_OK;
    }
    /* Worst case: every byte becomes three. */
    DL_REQUIRE(n < SIZE_MAX / 3, DL_ERR_INVALID, "text too long");
    DL_CHECK(dl_grow((void **)&t->clean, &t->clean_cap, 3 * n + 1, 1, "cleaned text"));
    memcpy(t->clean, s, i);
    size_t o = i;
    while (i < n) {
        uint32_t cp;
        size_t k = dl_utf8_next(s + i, n - i, &cp);
        if (k) {
            memcpy(t->clean + o, s + i, k);
            o += k;
            i += k;
        } else {
            i += dl_utf8_bad_len(s + i, n - i);
            t->clean[o++] = 0xEF, t->clean[o++] = 0xBF, t->clean[o++] = 0xBD;
        }
    }
    *out = t->clean;
    *out_len = o;
    return DL_OK;
}

dl_status dl_tokenizer_encode_append(dl_tokenizer *t, const void *text, size_t len, dl_i32_array *ids) {
    DL_REQUIRE(t && ids && (text || len == 0), DL_ERR_INVALID, "dl_tokenizer_encode: NULL argument");
    const uint8_t *s = text;
    if (t->m->kind == DL_TOKENIZER_BYTES) {
        DL_CHECK(dl_i32_array_reserve(ids, ids->len + len));
        for (size_t i = 0; i < len; i++)
            ids->data[ids->len + i] = s[i];
        ids->len += len;
        return DL_OK;
    }
    const uint8_t *clean = NULL;
    size_t n = 0;
    DL_CHECK(sanitize(t, s, len, &clean, &n));
    if (t->m->num_added == 0)
        return encode_piece(t, clean, n, ids);
    return split_added(t, clean, n, 0, ids);
}

dl_status dl_tokenizer_encode(dl_tokenizer *t, const void *text, size_t len, dl_i32_array *ids) {
    DL_REQUIRE(ids, DL_ERR_INVALID, "dl_tokenizer_encode: NULL argument");
    ids->len = 0;
    return dl_tokenizer_encode_append(t, text, len, ids);
}

/* ---- decoding ---------------------------------------------------------------------------------------------------- */

dl_status dl_tokenizer_decode(const dl_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len) {
    DL_REQUIRE(t && text && len && (ids || n == 0), DL_ERR_INVALID, "dl_tokenizer_decode: NULL argument");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *b;
        size_t k;
        dl_status s = dl_tokenizer_token_bytes(t, ids[i], &b, &k);
        if (s != DL_OK) {
            dl_error_context("decoding token %zu of %zu", i + 1, n);
            return s;
        }
        total += k;
    }
    char *out = malloc(total + 1);
    if (!out)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory decoding %zu tokens", n);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *b;
        size_t k;
        (void)dl_tokenizer_token_bytes(t, ids[i], &b, &k);
        memcpy(out + o, b, k);
        o += k;
    }
    out[o] = 0;
    *text = out;
    *len = o;
    return DL_OK;
}

void dl_token_stream_init(dl_token_stream *s) { memset(s, 0, sizeof *s); }

void dl_token_stream_free(dl_token_stream *s) {
    if (!s)
        return;
    free(s->out);
    memset(s, 0, sizeof *s);
}

static dl_status stream_put(dl_token_stream *s, const uint8_t *b, size_t k) {
    DL_CHECK(dl_grow((void **)&s->out, &s->out_cap, s->out_len + k + 1, 1, "decoded text"));
    memcpy(s->out + s->out_len, b, k);
    s->out_len += k;
    return DL_OK;
}

/* Feeds bytes through the pending-character state: whole characters out, a possible prefix kept. */
static dl_status stream_bytes(dl_token_stream *s, const uint8_t *b, size_t k) {
    static const uint8_t fffd[3] = {0xEF, 0xBF, 0xBD};
    for (size_t i = 0; i < k; i++) {
        s->pending[s->num_pending++] = b[i];
        while (s->num_pending) {
            uint32_t cp;
            size_t got = dl_utf8_next(s->pending, s->num_pending, &cp);
            if (!got && dl_utf8_is_prefix(s->pending, s->num_pending))
                break; /* the start of a character: wait for the rest */
            size_t used = got ? got : dl_utf8_bad_len(s->pending, s->num_pending);
            DL_CHECK(got ? stream_put(s, s->pending, got) : stream_put(s, fffd, 3));
            memmove(s->pending, s->pending + used, s->num_pending - used);
            s->num_pending -= used;
        }
    }
    return DL_OK;
}

dl_status dl_token_stream_push(dl_token_stream *s, const dl_tokenizer *t, int32_t id, const char **text,
                               size_t *len) {
    DL_REQUIRE(s && t && text && len, DL_ERR_INVALID, "dl_token_stream_push: NULL argument");
    s->out_len = 0;
    const uint8_t *b;
    size_t k;
    DL_CHECK(dl_tokenizer_token_bytes(t, id, &b, &k));
    DL_CHECK(stream_bytes(s, b, k));
    DL_CHECK(stream_put(s, (const uint8_t *)"", 0));
    s->out[s->out_len] = 0;
    *text = s->out;
    *len = s->out_len;
    return DL_OK;
}

dl_status dl_token_stream_finish(dl_token_stream *s, const char **text, size_t *len) {
    DL_REQUIRE(s && text && len, DL_ERR_INVALID, "dl_token_stream_finish: NULL argument");
    static const uint8_t fffd[3] = {0xEF, 0xBF, 0xBD};
    s->out_len = 0;
    DL_CHECK(stream_put(s, (const uint8_t *)"", 0));
    while (s->num_pending) {
        size_t bad = dl_utf8_bad_len(s->pending, s->num_pending);
        DL_CHECK(stream_put(s, fffd, 3));
        memmove(s->pending, s->pending + bad, s->num_pending - bad);
        s->num_pending -= bad;
    }
    s->out[s->out_len] = 0;
    *text = s->out;
    *len = s->out_len;
    return DL_OK;
}

/* ---- saving ------------------------------------------------------------------------------------------------------ */

static json_t *byte_level(int add_prefix_space) {
    return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", add_prefix_space, "trim_offsets",
                     1, "use_regex", 1);
}

dl_status dl_tokenizer_save(const dl_tokenizer *t, const char *path) {
    DL_REQUIRE(t && path && path[0], DL_ERR_INVALID, "dl_tokenizer_save: NULL argument");
    const tok_model *m = t->m;
    if (m->kind != DL_TOKENIZER_BPE)
        return DL_FAIL(DL_ERR_INVALID, "the byte-level tokenizer has no tokenizer.json to write (%s)", path);
    json_t *root = json_object(), *added = json_array(), *model = json_object(), *vocab = json_object(),
           *merges = json_array();
    int ok = root && added && model && vocab && merges;
    for (size_t i = 0; ok && i < m->num_added; i++) {
        const tok_added *a = &m->added[i];
        ok = json_array_append_new(
                 added, json_pack("{s:i, s:s%, s:b, s:b, s:b, s:b, s:b}", "id", (json_int_t)a->id, "content",
                                  a->content, a->len, "single_word", a->single_word, "lstrip", a->lstrip, "rstrip",
                                  a->rstrip, "normalized", a->normalized, "special", a->special)) == 0;
    }
    for (int32_t id = 0; ok && id < m->vocab_size; id++)
        if (m->id_flags[id] & ID_MODEL) {
            json_t *v = json_integer(id);
            ok = v && json_object_setn_new_nocheck(vocab, m->model_content[id], m->model_content_len[id], v) == 0;
        }
    for (size_t r = 0; ok && r < m->num_merges; r++) {
        uint32_t rank;
        int32_t nid;
        if (!merge_find(m, m->merge_left[r], m->merge_right[r], &rank, &nid) || rank != r)
            continue;
        int32_t l = m->merge_left[r], rt = m->merge_right[r];
        ok = json_array_append_new(merges, json_pack("[s%, s%]", m->model_content[l], (size_t)m->model_content_len[l],
                                                     m->model_content[rt], (size_t)m->model_content_len[rt])) == 0;
    }
    if (ok) {
        ok = json_object_set_new(root, "version", json_string("1.0")) == 0 &&
             json_object_set_new(root, "truncation", json_null()) == 0 &&
             json_object_set_new(root, "padding", json_null()) == 0 &&
             json_object_set_new(root, "added_tokens", added) == 0 &&
             json_object_set_new(root, "normalizer", json_null()) == 0 &&
             json_object_set_new(root, "pre_tokenizer", byte_level(m->opt.add_prefix_space)) == 0 &&
             json_object_set_new(root, "post_processor", byte_level(m->opt.add_prefix_space)) == 0 &&
             json_object_set_new(root, "decoder", byte_level(m->opt.add_prefix_space)) == 0;
        added = NULL;
        ok = ok && json_object_set_new(model, "type", json_string("BPE")) == 0 &&
             json_object_set_new(model, "dropout", json_null()) == 0 &&
             json_object_set_new(model, "unk_token", m->unk_token ? json_string(m->unk_token) : json_null()) == 0 &&
             json_object_set_new(model, "continuing_subword_prefix", json_null()) == 0 &&
             json_object_set_new(model, "end_of_word_suffix", json_null()) == 0 &&
             json_object_set_new(model, "fuse_unk", json_boolean(m->opt.fuse_unk)) == 0 &&
             json_object_set_new(model, "byte_fallback", json_false()) == 0 &&
             json_object_set_new(model, "ignore_merges", json_boolean(m->opt.ignore_merges)) == 0 &&
             json_object_set_new(model, "vocab", vocab) == 0 && json_object_set_new(model, "merges", merges) == 0;
        vocab = merges = NULL;
        ok = ok && json_object_set_new(root, "model", model) == 0;
        model = NULL;
    }
    char *text = ok ? json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    json_decref(added);
    json_decref(model);
    json_decref(vocab);
    json_decref(merges);
    if (!text)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory writing %s", path);
    dl_status s = dl_write_file_atomic(path, text, strlen(text));
    free(text);
    return s;
}
