/* test_pack.c — the packer: layout invariants, every token exactly once with its right target, long documents
 * split into row-sized pieces, preference pairs kept together with the loss only on responses, efficiency on the
 * Shakespeare speeches against the padded mode, fairness, exact save/restore, and bad input. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/pack.h"

/* ---- documents in memory ----------------------------------------------------------------------------------------- */

/* Text documents whose tokens say where they come from: token = doc · STRIDE + offset, so any token in a batch
 * names its document and position, and the true next token is known. */
enum { STRIDE = 1 << 12 };

typedef struct corpus {
    size_t ndocs;
    int32_t **docs;
    size_t *lens;
    /* pairs */
    int32_t **prompt, **chosen, **rejected;
    size_t *plen, *clen, *rlen;
    uint64_t fetches;
    int32_t bad_at; /* document whose fetch hands a negative token, or -1 */
} corpus;

static void corpus_free(corpus *c) {
    for (size_t i = 0; i < c->ndocs; i++) {
        if (c->docs)
            free(c->docs[i]);
        if (c->prompt) {
            free(c->prompt[i]);
            free(c->chosen[i]);
            free(c->rejected[i]);
        }
    }
    free(c->docs);
    free(c->lens);
    free(c->prompt);
    free(c->chosen);
    free(c->rejected);
    free(c->plen);
    free(c->clen);
    free(c->rlen);
    memset(c, 0, sizeof *c);
}

static int32_t *tagged(size_t doc, size_t len, int32_t base) {
    int32_t *t = malloc((len ? len : 1) * sizeof *t);
    assert_non_null(t);
    for (size_t i = 0; i < len; i++)
        t[i] = (int32_t)(doc * STRIDE) + base + (int32_t)i;
    return t;
}

/* ndocs text documents with lengths drawn from [1, max_len]. */
static void text_corpus(corpus *c, size_t ndocs, size_t max_len, uint64_t stream) {
    memset(c, 0, sizeof *c);
    c->bad_at = -1;
    c->ndocs = ndocs;
    c->docs = calloc(ndocs, sizeof *c->docs);
    c->lens = calloc(ndocs, sizeof *c->lens);
    assert_true(c->docs && c->lens && max_len < STRIDE);
    dl_rng rng;
    dl_test_rng(&rng, stream);
    for (size_t i = 0; i < ndocs; i++) {
        c->lens[i] = 1 + dl_rng_below(&rng, max_len);
        c->docs[i] = tagged(i, c->lens[i], 0);
    }
}

/* Pairs: prompt tokens at offsets [0, P), chosen at [1000, ...), rejected at [2000, ...) of the pair's block. */
static void pair_corpus(corpus *c, size_t npairs, size_t max_prompt, size_t max_resp, uint64_t stream) {
    memset(c, 0, sizeof *c);
    c->bad_at = -1;
    c->ndocs = npairs;
    c->prompt = calloc(npairs, sizeof *c->prompt);
    c->chosen = calloc(npairs, sizeof *c->chosen);
    c->rejected = calloc(npairs, sizeof *c->rejected);
    c->plen = calloc(npairs, sizeof *c->plen);
    c->clen = calloc(npairs, sizeof *c->clen);
    c->rlen = calloc(npairs, sizeof *c->rlen);
    assert_true(c->prompt && c->chosen && c->rejected && c->plen && c->clen && c->rlen);
    assert_true(max_prompt < 1000 && max_resp < 1000);
    dl_rng rng;
    dl_test_rng(&rng, stream);
    for (size_t i = 0; i < npairs; i++) {
        c->plen[i] = dl_rng_below(&rng, max_prompt + 1);
        c->clen[i] = 1 + dl_rng_below(&rng, max_resp);
        c->rlen[i] = 1 + dl_rng_below(&rng, max_resp);
        c->prompt[i] = tagged(i, c->plen[i], 0);
        c->chosen[i] = tagged(i, c->clen[i], 1000);
        c->rejected[i] = tagged(i, c->rlen[i], 2000);
    }
}

static int32_t negative_token = -7;

/* Stream position s is document s mod ndocs (so a stream can run several "epochs"). */
static dl_status corpus_fetch(void *ctx, uint64_t stream, dl_pack_doc *doc) {
    corpus *c = ctx;
    size_t i = (size_t)(stream % c->ndocs);
    c->fetches++;
    doc->present = 1;
    if (c->docs) {
        doc->tokens = c->docs[i];
        doc->len = c->lens[i];
        if ((int32_t)i == c->bad_at) {
            doc->tokens = &negative_token;
            doc->len = 1;
        }
    } else {
        doc->prompt = c->prompt[i];
        doc->prompt_len = c->plen[i];
        doc->chosen = c->chosen[i];
        doc->chosen_len = c->clen[i];
        doc->rejected = c->rejected[i];
        doc->rejected_len = c->rlen[i];
    }
    return DL_OK;
}

static dl_packer *make_packer(dl_data_kind kind, int32_t rows, int32_t seq_len, int32_t window, int packing) {
    dl_pack_config cfg = {.kind = kind, .rows = rows, .seq_len = seq_len, .window = window, .packing = packing};
    dl_packer *p = NULL;
    dl_status s = dl_packer_create(&p, &cfg);
    if (s != DL_OK)
        DL_TEST_FAIL("dl_packer_create: %s", dl_error_message());
    return p;
}

static void check_layout(const dl_batch *b, int pairs) {
    if (dl_token_batch_check(&b->tokens, pairs) != DL_OK)
        DL_TEST_FAIL("layout: %s", dl_error_message());
}

/* ---- text ---------------------------------------------------------------------------------------------------------- */

/* Packs a whole corpus (documents up to 3 rows long) and checks, token by token, that every document token appears
 * exactly once, in order within its piece, pieces starting at multiples of T, with the true next token as target
 * (also across a piece boundary) and -1 only at the document's end. */
static void every_text_token_once_with_its_next_token_as_target(int packing, int32_t window) {
    const int32_t B = 4, T = 64;
    corpus c;
    text_corpus(&c, 400, 3 * T, packing ? 11 : 12);
    dl_packer *p = make_packer(DL_DATA_TEXT, B, T, window, packing);
    dl_packer_reset(p, 0, c.ndocs);
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_TEXT, B, T), DL_OK);
    size_t total = 0;
    for (size_t i = 0; i < c.ndocs; i++)
        total += c.lens[i];
    uint8_t *seen = calloc(c.ndocs * STRIDE, 1);
    assert_non_null(seen);
    size_t tokens = 0, batches = 0;
    for (;;) {
        int produced = 0;
        if (dl_packer_next(p, &batch.tokens, corpus_fetch, &c, &produced) != DL_OK)
            DL_TEST_FAIL("dl_packer_next: %s", dl_error_message());
        if (!produced)
            break;
        batches++;
        check_layout(&batch, 0);
        const dl_token_batch *t = &batch.tokens;
        if (!packing)
            assert_int_equal(t->num_seqs, t->num_rows); /* one document per row */
        for (int32_t s = 0; s < t->num_seqs; s++) {
            int32_t lo = t->cu_seqlens[s], hi = t->cu_seqlens[s + 1];
            int32_t doc = t->tokens[lo] / STRIDE, first = t->tokens[lo] % STRIDE;
            if (first % T != 0)
                DL_TEST_FAIL("a document starts at offset %d of document %d, not at a piece boundary", first, doc);
            if (hi - lo != T && first + (hi - lo) != (int32_t)c.lens[doc])
                DL_TEST_FAIL("a piece of document %d ends at %d: neither a full row nor the document's end (%zu)",
                             doc, first + (hi - lo), c.lens[doc]);
            for (int32_t i = lo; i < hi; i++) {
                int32_t off = first + (i - lo);
                if (t->tokens[i] != doc * STRIDE + off)
                    DL_TEST_FAIL("token %d of a piece of document %d is %d, want %d", i - lo, doc, t->tokens[i],
                                 doc * STRIDE + off);
                if (seen[(size_t)t->tokens[i]]++)
                    DL_TEST_FAIL("token %d of document %d appears twice", off, doc);
                int32_t want = off + 1 < (int32_t)c.lens[doc] ? t->tokens[i] + 1 : -1;
                if (t->targets[i] != want)
                    DL_TEST_FAIL("document %d offset %d: target %d, want %d", doc, off, t->targets[i], want);
            }
            tokens += (size_t)(hi - lo);
        }
    }
    assert_int_equal(tokens, total);
    assert_true(batches > 0);
    const dl_pack_stats *st = dl_packer_stats(p);
    assert_int_equal(st->documents, c.ndocs);
    assert_int_equal(st->tokens, total);
    assert_int_equal(st->batches, batches);
    free(seen);
    dl_batch_free(&batch);
    dl_packer_destroy(p);
    corpus_free(&c);
}

static void packed_text_keeps_every_token_once(void **state) {
    (void)state;
    every_text_token_once_with_its_next_token_as_target(1, 16);
    every_text_token_once_with_its_next_token_as_target(1, 1);
    every_text_token_once_with_its_next_token_as_target(1, 500);
}

static void padded_text_keeps_every_token_once(void **state) {
    (void)state;
    every_text_token_once_with_its_next_token_as_target(0, 64);
}

/* Documents of exactly T, one token, and one longer than several rows. */
static void edge_lengths_split_into_row_sized_pieces(void **state) {
    (void)state;
    const int32_t B = 2, T = 8;
    corpus c;
    text_corpus(&c, 4, 1, 13);
    size_t lens[4] = {8, 1, 29, 16};
    for (int i = 0; i < 4; i++) {
        free(c.docs[i]);
        c.lens[i] = lens[i];
        c.docs[i] = tagged((size_t)i, lens[i], 0);
    }
    dl_packer *p = make_packer(DL_DATA_TEXT, B, T, 8, 1);
    dl_packer_reset(p, 0, 4);
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_TEXT, B, T), DL_OK);
    int32_t pieces = 0, tokens = 0;
    for (;;) {
        int produced = 0;
        assert_int_equal(dl_packer_next(p, &batch.tokens, corpus_fetch, &c, &produced), DL_OK);
        if (!produced)
            break;
        check_layout(&batch, 0);
        for (int32_t s = 0; s < batch.tokens.num_seqs; s++)
            assert_true(batch.tokens.cu_seqlens[s + 1] - batch.tokens.cu_seqlens[s] <= T);
        pieces += batch.tokens.num_seqs;
        tokens += batch.tokens.num_tokens;
    }
    /* 8 → 1 piece, 1 → 1, 29 → 4 (8, 8, 8, 5), 16 → 2. */
    assert_int_equal(pieces, 8);
    assert_int_equal(tokens, 54);
    assert_int_equal(dl_packer_stats(p)->pieces, 6);
    dl_batch_free(&batch);
    dl_packer_destroy(p);
    corpus_free(&c);
}

/* The worked example of docs/data-pipeline.md, exactly. */
static int32_t doc_a[5] = {10, 11, 12, 13, 14}, doc_b[3] = {20, 21, 22}, doc_c[6] = {30, 31, 32, 33, 34, 35};

static dl_status abc_fetch(void *ctx, uint64_t stream, dl_pack_doc *doc) {
    (void)ctx;
    doc->present = 1;
    doc->tokens = stream == 0 ? doc_a : stream == 1 ? doc_b : doc_c;
    doc->len = stream == 0 ? 5 : stream == 1 ? 3 : 6;
    return DL_OK;
}

static void documented_example_layout(void **state) {
    (void)state;
    dl_packer *p = make_packer(DL_DATA_TEXT, 2, 8, 8, 1);
    dl_packer_reset(p, 0, 3);
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_TEXT, 2, 8), DL_OK);
    int produced = 0;
    assert_int_equal(dl_packer_next(p, &batch.tokens, abc_fetch, NULL, &produced), DL_OK);
    assert_int_equal(produced, 1);
    const int32_t tokens[16] = {30, 31, 32, 33, 34, 35, 10, 11, 12, 13, 14, 20, 21, 22, 0, 0};
    const int32_t targets[16] = {31, 32, 33, 34, 35, -1, 11, 12, 13, 14, -1, 21, 22, -1, -1, -1};
    const int32_t positions[16] = {0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 0, 1, 2, 0, 0};
    const int32_t cu[4] = {0, 6, 11, 14}, rows[3] = {0, 6, 14};
    const dl_token_batch *t = &batch.tokens;
    assert_memory_equal(t->tokens, tokens, sizeof tokens);
    assert_memory_equal(t->targets, targets, sizeof targets);
    assert_memory_equal(t->positions, positions, sizeof positions);
    assert_int_equal(t->num_seqs, 3);
    assert_memory_equal(t->cu_seqlens, cu, sizeof cu);
    assert_memory_equal(t->row_offsets, rows, sizeof rows);
    assert_int_equal(t->num_tokens, 14);
    assert_int_equal(t->num_targets, 11);
    assert_int_equal(t->num_rows, 2);
    assert_int_equal(dl_packer_next(p, &batch.tokens, abc_fetch, NULL, &produced), DL_OK);
    assert_int_equal(produced, 0);
    dl_batch_free(&batch);
    dl_packer_destroy(p);
}

/* ---- Shakespeare: efficiency ----------------------------------------------------------------------------------------- */

static char *read_shakespeare(size_t *len) {
    /* The copy bundled in the repository first; the shared data folder beside the checkout otherwise. */
    const char *dirs[] = {getenv("DEALER_SHARED_DATA"), DEALER_SOURCE_DIR "/data", DEALER_SOURCE_DIR "/../shared/data"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (!dirs[i])
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/tinyshakespeare.txt", dirs[i]);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *text = malloc((size_t)n + 1);
        assert_non_null(text);
        assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
        fclose(f);
        text[n] = '\0';
        *len = (size_t)n;
        return text;
    }
    DL_TEST_FAIL("tinyshakespeare.txt not found (set DEALER_SHARED_DATA to the folder holding it)");
    return NULL;
}

/* The speeches (split on blank lines), byte tokens. */
static void shakespeare_corpus(corpus *c) {
    size_t n;
    char *text = read_shakespeare(&n);
    memset(c, 0, sizeof *c);
    c->bad_at = -1;
    size_t cap = 8192;
    c->docs = malloc(cap * sizeof *c->docs);
    c->lens = malloc(cap * sizeof *c->lens);
    assert_true(c->docs && c->lens);
    size_t start = 0;
    while (start < n) {
        const char *blank = strstr(text + start, "\n\n");
        size_t end = blank ? (size_t)(blank - text) + 1 : n; /* keep the speech's last newline */
        if (end > start) {
            if (c->ndocs == cap) {
                cap *= 2;
                c->docs = realloc(c->docs, cap * sizeof *c->docs);
                c->lens = realloc(c->lens, cap * sizeof *c->lens);
                assert_true(c->docs && c->lens);
            }
            size_t len = end - start;
            int32_t *t = malloc(len * sizeof *t);
            assert_non_null(t);
            for (size_t i = 0; i < len; i++)
                t[i] = (unsigned char)text[start + i];
            c->docs[c->ndocs] = t;
            c->lens[c->ndocs++] = len;
        }
        start = blank ? (size_t)(blank - text) + 2 : n;
    }
    free(text);
}

static double pack_efficiency(corpus *c, int32_t B, int32_t T, int32_t window, int packing, uint64_t *tokens_out) {
    dl_packer *p = make_packer(DL_DATA_TEXT, B, T, window, packing);
    dl_packer_reset(p, 0, c->ndocs);
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_TEXT, B, T), DL_OK);
    for (;;) {
        int produced = 0;
        assert_int_equal(dl_packer_next(p, &batch.tokens, corpus_fetch, c, &produced), DL_OK);
        if (!produced)
            break;
    }
    const dl_pack_stats *st = dl_packer_stats(p);
    double eff = (double)st->tokens / (double)st->slots;
    *tokens_out = st->tokens;
    dl_batch_free(&batch);
    dl_packer_destroy(p);
    return eff;
}

static void shakespeare_packs_at_least_98_percent_full(void **state) {
    (void)state;
    corpus c;
    shakespeare_corpus(&c);
    assert_true(c.ndocs > 7000);
    size_t total = 0;
    for (size_t i = 0; i < c.ndocs; i++)
        total += c.lens[i];
    uint64_t packed_tokens, padded_tokens;
    double packed = pack_efficiency(&c, 8, 512, 256, 1, &packed_tokens);
    double padded = pack_efficiency(&c, 8, 512, 1, 0, &padded_tokens);
    print_message("shakespeare: %zu speeches, %zu tokens; seq_len 512, 8 rows, window 256: packed %.2f%%, "
                  "padded %.2f%%\n",
                  c.ndocs, total, 100 * packed, 100 * padded);
    assert_int_equal(packed_tokens, total);
    assert_int_equal(padded_tokens, total);
    if (packed < 0.98)
        DL_TEST_FAIL("packing efficiency %.4f, want >= 0.98", packed);
    if (padded < 0.25 || padded > 0.35)
        DL_TEST_FAIL("padded efficiency %.4f, expected about 0.30", padded);
    corpus_free(&c);
}

/* ---- fairness -------------------------------------------------------------------------------------------------------- */

/* A stream where long documents keep arriving: a mid-sized one would never be the longest, and the gaps left are
 * too small for it. The age rule must still place every document within a bounded delay. */
static dl_status starving_fetch(void *ctx, uint64_t stream, dl_pack_doc *doc) {
    static int32_t tokens[512];
    (void)ctx;
    doc->present = 1;
    doc->tokens = tokens;
    doc->len = stream % 50 == 0 ? 300 : stream % 2 ? 400 : 100;
    for (size_t i = 0; i < doc->len; i++)
        tokens[i] = (int32_t)(stream % 1000000);
    return DL_OK;
}

static void no_document_waits_for_ever(void **state) {
    (void)state;
    const int32_t B = 4, T = 512, W = 32;
    dl_packer *p = make_packer(DL_DATA_TEXT, B, T, W, 1);
    dl_packer_reset(p, 0, 5000);
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_TEXT, B, T), DL_OK);
    uint64_t worst = 0;
    for (;;) {
        int produced = 0;
        assert_int_equal(dl_packer_next(p, &batch.tokens, starving_fetch, NULL, &produced), DL_OK);
        if (!produced)
            break;
        uint64_t now = dl_packer_position(p);
        for (int32_t s = 0; s < batch.tokens.num_seqs; s++) {
            uint64_t stream = (uint64_t)batch.tokens.tokens[batch.tokens.cu_seqlens[s]];
            if (now - stream > worst)
                worst = now - stream;
        }
    }
    /* A document older than 4 · window goes first in the next placement, or first in the next batch when no row
     * has room: the delay is bounded by 4 · window plus the documents two batches can pull (at most B·T/100 each,
     * documents here being ≥ 100 tokens). Without the rule this stream makes a 300-token document wait ~1500. */
    if (worst > 4 * W + 2 * (B * T / 100))
        DL_TEST_FAIL("a document waited %llu stream positions (window %d)", (unsigned long long)worst, W);
    assert_int_equal(dl_packer_stats(p)->documents, 5000);
    dl_batch_free(&batch);
    dl_packer_destroy(p);
}

/* ---- pairs ----------------------------------------------------------------------------------------------------------- */

static void check_pairs(int packing) {
    const int32_t B = 4, T = 48;
    corpus c;
    pair_corpus(&c, 300, 40, 30, packing ? 21 : 22);
    dl_packer *p = make_packer(DL_DATA_PAIRS, B, T, 24, packing);
    dl_packer_reset(p, 0, c.ndocs);
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_PAIRS, B, T), DL_OK);
    uint8_t *seen = calloc(c.ndocs, 1);
    assert_non_null(seen);
    size_t truncated = 0;
    for (size_t i = 0; i < c.ndocs; i++) {
        size_t longest = c.clen[i] > c.rlen[i] ? c.clen[i] : c.rlen[i];
        truncated += c.plen[i] + longest > (size_t)T;
    }
    for (;;) {
        int produced = 0;
        assert_int_equal(dl_packer_next(p, &batch.tokens, corpus_fetch, &c, &produced), DL_OK);
        if (!produced)
            break;
        check_layout(&batch, 1);
        const dl_token_batch *t = &batch.tokens;
        if (!packing)
            assert_int_equal(t->num_seqs, t->num_rows);
        for (int32_t q = 0; q < t->num_pairs; q++) {
            int32_t sides[2] = {t->pair_chosen[q], t->pair_rejected[q]};
            int32_t pair = t->tokens[t->cu_seqlens[sides[0]]] / STRIDE;
            if (seen[pair]++)
                DL_TEST_FAIL("pair %d appears twice", pair);
            size_t P = c.plen[pair], longest = c.clen[pair] > c.rlen[pair] ? c.clen[pair] : c.rlen[pair];
            size_t keep = P;
            if (P + longest > (size_t)T) {
                size_t room = (size_t)T > longest ? (size_t)T - longest : 0;
                if (room < (size_t)T / 2)
                    room = (size_t)T / 2;
                keep = P < room ? P : room;
            }
            for (int side = 0; side < 2; side++) {
                int32_t lo = t->cu_seqlens[sides[side]], hi = t->cu_seqlens[sides[side] + 1];
                size_t resp = side == 0 ? c.clen[pair] : c.rlen[pair];
                size_t want_len = keep + (resp < (size_t)T - keep ? resp : (size_t)T - keep);
                if ((size_t)(hi - lo) != want_len)
                    DL_TEST_FAIL("pair %d side %d: %d tokens, want %zu (prompt %zu kept %zu, response %zu)", pair,
                                 side, hi - lo, want_len, P, keep, resp);
                for (int32_t i = lo; i < hi; i++) {
                    size_t at = (size_t)(i - lo);
                    int32_t want = at < keep ? pair * STRIDE + (int32_t)(P - keep + at)
                                             : pair * STRIDE + (side ? 2000 : 1000) + (int32_t)(at - keep);
                    if (t->tokens[i] != want)
                        DL_TEST_FAIL("pair %d side %d token %zu is %d, want %d", pair, side, at, t->tokens[i], want);
                    /* Loss only where the predicted token is a response token. */
                    int32_t target = at + 1 < (size_t)(hi - lo) && at + 1 >= keep ? t->tokens[i + 1] : -1;
                    if (t->targets[i] != target)
                        DL_TEST_FAIL("pair %d side %d: target at %zu is %d, want %d", pair, side, at, t->targets[i],
                                     target);
                }
            }
        }
    }
    for (size_t i = 0; i < c.ndocs; i++)
        if (!seen[i])
            DL_TEST_FAIL("pair %zu never appeared", i);
    assert_int_equal(dl_packer_stats(p)->truncated, truncated);
    assert_true(truncated > 0);
    free(seen);
    dl_batch_free(&batch);
    dl_packer_destroy(p);
    corpus_free(&c);
}

static void pairs_stay_together_with_loss_on_responses_only(void **state) {
    (void)state;
    check_pairs(1);
    check_pairs(0);
}

static void pair_with_an_empty_side_is_left_out(void **state) {
    (void)state;
    corpus c;
    pair_corpus(&c, 3, 5, 5, 23);
    c.plen[1] = 0;
    c.clen[1] = 0; /* prompt+chosen would be empty */
    dl_packer *p = make_packer(DL_DATA_PAIRS, 2, 32, 4, 1);
    dl_packer_reset(p, 0, 3);
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_PAIRS, 2, 32), DL_OK);
    int32_t pairs = 0;
    for (;;) {
        int produced = 0;
        assert_int_equal(dl_packer_next(p, &batch.tokens, corpus_fetch, &c, &produced), DL_OK);
        if (!produced)
            break;
        check_layout(&batch, 1);
        pairs += batch.tokens.num_pairs;
    }
    assert_int_equal(pairs, 2);
    assert_int_equal(dl_packer_stats(p)->unusable, 1);
    dl_batch_free(&batch);
    dl_packer_destroy(p);
    corpus_free(&c);
}

/* ---- state ----------------------------------------------------------------------------------------------------------- */

static void same_batch(const dl_token_batch *a, const dl_token_batch *b, int pairs, int k) {
    size_t slots = (size_t)a->rows * (size_t)a->seq_len;
    if (a->num_tokens != b->num_tokens || a->num_seqs != b->num_seqs || a->num_targets != b->num_targets ||
        memcmp(a->tokens, b->tokens, slots * 4) || memcmp(a->targets, b->targets, slots * 4) ||
        memcmp(a->positions, b->positions, slots * 4) ||
        memcmp(a->cu_seqlens, b->cu_seqlens, ((size_t)a->num_seqs + 1) * 4) ||
        memcmp(a->row_offsets, b->row_offsets, ((size_t)a->rows + 1) * 4))
        DL_TEST_FAIL("batch %d after the restore differs from the uninterrupted run", k);
    if (pairs && (memcmp(a->seq_pair, b->seq_pair, (size_t)a->num_seqs * 4) ||
                  memcmp(a->pair_chosen, b->pair_chosen, (size_t)a->num_pairs * 4) ||
                  memcmp(a->pair_rejected, b->pair_rejected, (size_t)a->num_pairs * 4)))
        DL_TEST_FAIL("batch %d after the restore has different pair indices", k);
}

/* Saves after every batch of a reference run, restores a fresh packer from each state and compares the next
 * batches. The stream runs two passes over the corpus, with long documents cut mid-state. */
static void check_restore(dl_data_kind kind) {
    const int32_t B = 3, T = 32;
    const int pairs = kind == DL_DATA_PAIRS;
    corpus c;
    if (pairs)
        pair_corpus(&c, 60, 30, 30, 31);
    else
        text_corpus(&c, 60, 3 * T, 32);
    const uint64_t end = 2 * c.ndocs;
    enum { MAXB = 400, FOLLOW = 4 };
    dl_packer *ref = make_packer(kind, B, T, 12, 1);
    dl_packer_reset(ref, 0, end);
    dl_batch *run = calloc(MAXB, sizeof *run);
    uint8_t **states = calloc(MAXB, sizeof *states);
    size_t *lens = calloc(MAXB, sizeof *lens);
    assert_true(run && states && lens);
    int nb = 0;
    size_t cap = dl_packer_state_max(ref);
    int pending_seen = 0;
    for (;;) {
        assert_true(nb < MAXB);
        states[nb] = malloc(cap);
        assert_int_equal(dl_packer_save(ref, states[nb], cap, &lens[nb]), DL_OK);
        assert_int_equal(dl_batch_alloc(&run[nb], kind, B, T), DL_OK);
        int produced = 0;
        assert_int_equal(dl_packer_next(ref, &run[nb].tokens, corpus_fetch, &c, &produced), DL_OK);
        nb++;
        if (!produced)
            break;
        /* states with a document being cut: byte 1 of the state is the flag after a 1-byte position or later */
        pending_seen |= dl_packer_window_count(ref) > 0;
    }
    assert_true(pending_seen);
    dl_packer *again = make_packer(kind, B, T, 12, 1);
    dl_batch out;
    assert_int_equal(dl_batch_alloc(&out, kind, B, T), DL_OK);
    for (int k = 0; k < nb; k++) {
        size_t used = 0;
        if (dl_packer_restore(again, states[k], lens[k], &used, end, corpus_fetch, &c) != DL_OK)
            DL_TEST_FAIL("restore at batch %d: %s", k, dl_error_message());
        assert_int_equal(used, lens[k]);
        for (int j = k; j < nb && j < k + FOLLOW; j++) {
            int produced = 0;
            assert_int_equal(dl_packer_next(again, &out.tokens, corpus_fetch, &c, &produced), DL_OK);
            assert_int_equal(produced, j < nb - 1);
            if (produced)
                same_batch(&run[j].tokens, &out.tokens, pairs, j);
        }
    }
    for (int k = 0; k < nb; k++) {
        free(states[k]);
        dl_batch_free(&run[k]);
    }
    free(states);
    free(lens);
    free(run);
    dl_batch_free(&out);
    dl_packer_destroy(ref);
    dl_packer_destroy(again);
    corpus_free(&c);
}

static void restored_state_gives_the_same_following_batches(void **state) {
    (void)state;
    check_restore(DL_DATA_TEXT);
    check_restore(DL_DATA_PAIRS);
}

static void malformed_state_is_a_format_error(void **state) {
    (void)state;
    corpus c;
    text_corpus(&c, 10, 20, 41);
    dl_packer *p = make_packer(DL_DATA_TEXT, 2, 16, 4, 1);
    size_t used;
    const uint8_t truncated[] = {0x85};
    assert_int_equal(dl_packer_restore(p, truncated, 1, &used, 100, corpus_fetch, &c), DL_ERR_FORMAT);
    /* position 5, nothing pending, 9 window documents: more than the window holds */
    const uint8_t too_many[] = {5, 0, 9};
    assert_int_equal(dl_packer_restore(p, too_many, 3, &used, 100, corpus_fetch, &c), DL_ERR_FORMAT);
    /* position 5, nothing pending, 2 documents out of order (stream 3 then stream 3 again with the same piece) */
    const uint8_t repeated[] = {5, 0, 2, 3, 0, 0, 0};
    assert_int_equal(dl_packer_restore(p, repeated, sizeof repeated, &used, 100, corpus_fetch, &c), DL_ERR_FORMAT);
    /* a document at or past the position */
    const uint8_t ahead[] = {5, 0, 1, 5, 0};
    assert_int_equal(dl_packer_restore(p, ahead, sizeof ahead, &used, 100, corpus_fetch, &c), DL_ERR_FORMAT);
    /* a piece the document does not have (documents here have at most 20 tokens: pieces 0 and 1) */
    const uint8_t piece[] = {5, 0, 1, 2, 7};
    assert_int_equal(dl_packer_restore(p, piece, sizeof piece, &used, 100, corpus_fetch, &c), DL_ERR_FORMAT);
    dl_error_clear();
    dl_packer_destroy(p);
    corpus_free(&c);
}

static void varints_round_trip(void **state) {
    (void)state;
    const uint64_t values[] = {0, 1, 127, 128, 300, 16383, 16384, UINT32_MAX, (uint64_t)1 << 63, UINT64_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        uint8_t buf[10];
        size_t n = dl_varint_put(buf, sizeof buf, values[i]);
        assert_true(n > 0);
        uint64_t back = 0;
        assert_int_equal(dl_varint_get(buf, n, &back), n);
        assert_true(back == values[i]);
        assert_int_equal(dl_varint_get(buf, n - 1, &back), 0);
    }
    uint8_t small[1];
    assert_int_equal(dl_varint_put(small, 1, 300), 0);
    const uint8_t overlong[11] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0};
    uint64_t v;
    assert_int_equal(dl_varint_get(overlong, sizeof overlong, &v), 0);
}

/* ---- bad input ------------------------------------------------------------------------------------------------------- */

static void negative_token_is_a_format_error(void **state) {
    (void)state;
    corpus c;
    text_corpus(&c, 10, 20, 51);
    c.bad_at = 6;
    dl_packer *p = make_packer(DL_DATA_TEXT, 2, 16, 4, 1);
    dl_packer_reset(p, 0, 10);
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_TEXT, 2, 16), DL_OK);
    dl_status s = DL_OK;
    for (int k = 0; k < 100 && s == DL_OK; k++) {
        int produced = 0;
        s = dl_packer_next(p, &batch.tokens, corpus_fetch, &c, &produced);
        if (s == DL_OK && !produced)
            break;
    }
    assert_int_equal(s, DL_ERR_FORMAT);
    assert_non_null(strstr(dl_error_message(), "stream position 6"));
    assert_non_null(strstr(dl_error_message(), "negative"));
    dl_error_clear();
    dl_batch_free(&batch);
    dl_packer_destroy(p);
    corpus_free(&c);
}

static dl_status empty_fetch(void *ctx, uint64_t stream, dl_pack_doc *doc) {
    (void)ctx;
    (void)stream;
    doc->present = 1;
    doc->tokens = NULL;
    doc->len = 0;
    return DL_OK;
}

/* An endless stream of empty documents must end in an error after one epoch, not spin. */
static void an_epoch_without_usable_documents_is_an_error(void **state) {
    (void)state;
    dl_pack_config cfg = {.kind = DL_DATA_TEXT, .rows = 2, .seq_len = 16, .window = 4, .packing = 1, .period = 50};
    dl_packer *p = NULL;
    assert_int_equal(dl_packer_create(&p, &cfg), DL_OK);
    dl_packer_reset(p, 0, UINT64_MAX);
    dl_batch batch;
    assert_int_equal(dl_batch_alloc(&batch, DL_DATA_TEXT, 2, 16), DL_OK);
    int produced = 0;
    assert_int_equal(dl_packer_next(p, &batch.tokens, empty_fetch, NULL, &produced), DL_ERR_FORMAT);
    assert_non_null(strstr(dl_error_message(), "no usable document"));
    assert_int_equal(dl_packer_position(p), 50);
    dl_error_clear();
    dl_batch_free(&batch);
    dl_packer_destroy(p);
}

static void bad_configs_are_rejected(void **state) {
    (void)state;
    dl_packer *p = NULL;
    dl_pack_config cfg = {.kind = DL_DATA_TEXT, .rows = 2, .seq_len = 16, .window = 0, .packing = 1};
    assert_int_equal(dl_packer_create(&p, &cfg), DL_ERR_INVALID);
    cfg.window = 4;
    cfg.seq_len = 0;
    assert_int_equal(dl_packer_create(&p, &cfg), DL_ERR_INVALID);
    cfg.seq_len = 16;
    cfg.kind = DL_DATA_CLICKS;
    assert_int_equal(dl_packer_create(&p, &cfg), DL_ERR_INVALID);
    cfg.kind = DL_DATA_PAIRS;
    cfg.rows = 1;
    assert_int_equal(dl_packer_create(&p, &cfg), DL_ERR_INVALID);
    assert_non_null(strstr(dl_error_message(), "at least 2 rows"));
    assert_null(p);
    dl_error_clear();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(packed_text_keeps_every_token_once),
        cmocka_unit_test(padded_text_keeps_every_token_once),
        cmocka_unit_test(edge_lengths_split_into_row_sized_pieces),
        cmocka_unit_test(documented_example_layout),
        cmocka_unit_test(shakespeare_packs_at_least_98_percent_full),
        cmocka_unit_test(no_document_waits_for_ever),
        cmocka_unit_test(pairs_stay_together_with_loss_on_responses_only),
        cmocka_unit_test(pair_with_an_empty_side_is_left_out),
        cmocka_unit_test(restored_state_gives_the_same_following_batches),
        cmocka_unit_test(malformed_state_is_a_format_error),
        cmocka_unit_test(varints_round_trip),
        cmocka_unit_test(negative_token_is_a_format_error),
        cmocka_unit_test(an_epoch_without_usable_documents_is_an_error),
        cmocka_unit_test(bad_configs_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
