/* batch.c — allocation and invariant checks of the batch structs (see batch.h for the layout). */
#include "data/batch.h"

#include <stdlib.h>
#include <string.h>

const char *dl_data_kind_name(dl_data_kind kind) {
    switch (kind) {
    case DL_DATA_TEXT: return "text";
    case DL_DATA_CLICKS: return "clicks";
    case DL_DATA_PAIRS: return "pairs";
    }
    return "unknown";
}

static void *alloc_array(size_t count, size_t size) { return calloc(count ? count : 1, size); }

dl_status dl_batch_alloc(dl_batch *batch, dl_data_kind kind, int32_t rows, int32_t seq_len) {
    DL_REQUIRE(batch != NULL, DL_ERR_INVALID, "dl_batch_alloc: batch is NULL");
    memset(batch, 0, sizeof *batch);
    DL_REQUIRE(kind == DL_DATA_TEXT || kind == DL_DATA_CLICKS || kind == DL_DATA_PAIRS, DL_ERR_INVALID,
               "dl_batch_alloc: unknown data kind %d", (int)kind);
    DL_REQUIRE(rows > 0, DL_ERR_INVALID, "batch rows must be positive, got %d", (int)rows);
    batch->kind = kind;
    if (kind == DL_DATA_CLICKS) {
        dl_click_batch *c = &batch->clicks;
        c->rows = rows;
        c->row_ptr = alloc_array((size_t)rows + 1, sizeof *c->row_ptr);
        c->labels = alloc_array((size_t)rows, sizeof *c->labels);
        /* Entry arrays start at 16 per row (grown on demand), so they are never NULL. */
        if (!c->row_ptr || !c->labels || dl_click_batch_reserve(c, 16 * (int64_t)rows) != DL_OK) {
            dl_batch_free(batch);
            return DL_FAIL(DL_ERR_NOMEM, "allocating a click batch of %d rows", (int)rows);
        }
        dl_batch_clear(batch);
        return DL_OK;
    }
    DL_REQUIRE(seq_len > 0, DL_ERR_INVALID, "seq_len must be positive, got %d", (int)seq_len);
    DL_REQUIRE((int64_t)rows * seq_len <= INT32_MAX / 2, DL_ERR_INVALID,
               "a batch of %d rows of %d tokens is too large (at most 2^30 tokens)", (int)rows, (int)seq_len);
    dl_token_batch *t = &batch->tokens;
    size_t slots = (size_t)rows * (size_t)seq_len;
    t->rows = rows;
    t->seq_len = seq_len;
    t->tokens = alloc_array(slots, sizeof *t->tokens);
    t->targets = alloc_array(slots, sizeof *t->targets);
    t->positions = alloc_array(slots, sizeof *t->positions);
    t->cu_seqlens = alloc_array(slots + 1, sizeof *t->cu_seqlens);
    t->row_offsets = alloc_array((size_t)rows + 1, sizeof *t->row_offsets);
    int ok = t->tokens && t->targets && t->positions && t->cu_seqlens && t->row_offsets;
    if (ok && kind == DL_DATA_PAIRS) {
        t->seq_pair = alloc_array(slots, sizeof *t->seq_pair);
        t->seq_chosen = alloc_array(slots, sizeof *t->seq_chosen);
        t->pair_chosen = alloc_array(slots / 2 + 1, sizeof *t->pair_chosen);
        t->pair_rejected = alloc_array(slots / 2 + 1, sizeof *t->pair_rejected);
        t->pair_record = alloc_array(slots / 2 + 1, sizeof *t->pair_record);
        ok = t->seq_pair && t->seq_chosen && t->pair_chosen && t->pair_rejected && t->pair_record;
    }
    if (!ok) {
        dl_batch_free(batch);
        return DL_FAIL(DL_ERR_NOMEM, "allocating a token batch of %d rows of %d tokens", (int)rows, (int)seq_len);
    }
    dl_batch_clear(batch);
    return DL_OK;
}

void dl_batch_free(dl_batch *batch) {
    if (!batch)
        return;
    dl_token_batch *t = &batch->tokens;
    free(t->tokens);
    free(t->targets);
    free(t->positions);
    free(t->cu_seqlens);
    free(t->row_offsets);
    free(t->seq_pair);
    free(t->seq_chosen);
    free(t->pair_chosen);
    free(t->pair_rejected);
    free(t->pair_record);
    dl_click_batch *c = &batch->clicks;
    free(c->row_ptr);
    free(c->features);
    free(c->fields);
    free(c->values);
    free(c->labels);
    memset(batch, 0, sizeof *batch);
}

void dl_batch_clear(dl_batch *batch) {
    if (!batch)
        return;
    batch->end_of_data = 0;
    if (batch->kind == DL_DATA_CLICKS) {
        dl_click_batch *c = &batch->clicks;
        c->num_rows = 0;
        c->nnz = 0;
        if (c->row_ptr)
            c->row_ptr[0] = 0;
        return;
    }
    dl_token_batch *t = &batch->tokens;
    size_t slots = (size_t)t->rows * (size_t)t->seq_len;
    t->num_tokens = t->num_seqs = t->num_rows = t->num_targets = t->num_pairs = 0;
    t->num_truncated = t->num_dropped = 0;
    if (!t->tokens)
        return;
    memset(t->tokens, 0, slots * sizeof *t->tokens);
    memset(t->positions, 0, slots * sizeof *t->positions);
    for (size_t i = 0; i < slots; i++)
        t->targets[i] = -1;
    t->cu_seqlens[0] = 0;
    for (int32_t b = 0; b <= t->rows; b++)
        t->row_offsets[b] = 0;
}

dl_status dl_click_batch_reserve(dl_click_batch *batch, int64_t nnz) {
    DL_REQUIRE(batch != NULL && nnz >= 0, DL_ERR_INVALID, "dl_click_batch_reserve: bad arguments");
    DL_REQUIRE(nnz <= INT32_MAX, DL_ERR_INVALID,
               "a click batch of %lld entries overflows its int32 row pointers (use fewer rows per batch)",
               (long long)nnz);
    if (nnz <= batch->nnz_cap)
        return DL_OK;
    int64_t cap = batch->nnz_cap ? batch->nnz_cap : 1024;
    while (cap < nnz)
        cap *= 2;
    if (cap > INT32_MAX)
        cap = INT32_MAX;
    int32_t *features = realloc(batch->features, (size_t)cap * sizeof *features);
    if (features)
        batch->features = features;
    int32_t *fields = realloc(batch->fields, (size_t)cap * sizeof *fields);
    if (fields)
        batch->fields = fields;
    float *values = realloc(batch->values, (size_t)cap * sizeof *values);
    if (values)
        batch->values = values;
    if (!features || !fields || !values)
        return DL_FAIL(DL_ERR_NOMEM, "growing a click batch to %lld entries", (long long)cap);
    batch->nnz_cap = cap;
    return DL_OK;
}

double dl_token_batch_efficiency(const dl_token_batch *batch) {
    if (!batch || batch->rows <= 0 || batch->seq_len <= 0)
        return 0.0;
    return (double)batch->num_tokens / ((double)batch->rows * (double)batch->seq_len);
}

#define CHECK(cond, ...)                                       \
    do {                                                       \
        if (!(cond))                                           \
            return DL_FAIL(DL_ERR_RUNTIME, __VA_ARGS__);       \
    } while (0)

dl_status dl_token_batch_check(const dl_token_batch *t, int pairs) {
    DL_REQUIRE(t != NULL, DL_ERR_INVALID, "dl_token_batch_check: batch is NULL");
    const int32_t slots = t->rows * t->seq_len;
    CHECK(t->num_tokens >= 0 && t->num_tokens <= slots, "num_tokens %d outside [0, %d]", t->num_tokens, slots);
    CHECK(t->num_seqs >= 0 && t->num_seqs <= t->num_tokens, "num_seqs %d with %d tokens", t->num_seqs,
          t->num_tokens);
    CHECK(t->cu_seqlens[0] == 0, "cu_seqlens[0] = %d, want 0", t->cu_seqlens[0]);
    CHECK(t->cu_seqlens[t->num_seqs] == t->num_tokens, "cu_seqlens[num_seqs] = %d, want num_tokens %d",
          t->cu_seqlens[t->num_seqs], t->num_tokens);
    for (int32_t s = 0; s < t->num_seqs; s++)
        CHECK(t->cu_seqlens[s + 1] > t->cu_seqlens[s], "document %d is empty or reversed ([%d, %d))", s,
              t->cu_seqlens[s], t->cu_seqlens[s + 1]);
    /* Rows: in range, monotone, at most seq_len, their boundaries are document boundaries. */
    CHECK(t->row_offsets[0] == 0 && t->row_offsets[t->rows] == t->num_tokens,
          "row_offsets span [%d, %d), want [0, %d)", t->row_offsets[0], t->row_offsets[t->rows], t->num_tokens);
    int32_t used_rows = 0, s = 0;
    for (int32_t b = 0; b < t->rows; b++) {
        int32_t lo = t->row_offsets[b], hi = t->row_offsets[b + 1];
        CHECK(hi >= lo && hi - lo <= t->seq_len, "row %d holds [%d, %d): more than seq_len %d or reversed", b, lo,
              hi, t->seq_len);
        if (hi > lo)
            used_rows++;
        while (s < t->num_seqs && t->cu_seqlens[s] < lo)
            s++;
        CHECK(lo == t->num_tokens || t->cu_seqlens[s] == lo,
              "row %d starts at token %d, inside a document (no document may cross a row)", b, lo);
    }
    CHECK(used_rows == t->num_rows, "num_rows %d, but %d rows hold tokens", t->num_rows, used_rows);
    /* Positions restart per document; targets are the next token of the same document or -1. */
    int32_t targets = 0;
    for (int32_t d = 0; d < t->num_seqs; d++) {
        for (int32_t i = t->cu_seqlens[d]; i < t->cu_seqlens[d + 1]; i++) {
            CHECK(t->positions[i] == i - t->cu_seqlens[d], "token %d of document %d has position %d, want %d", i,
                  d, t->positions[i], i - t->cu_seqlens[d]);
            CHECK(t->tokens[i] >= 0, "token %d is negative (%d)", i, t->tokens[i]);
            if (t->targets[i] != -1) {
                targets++;
                CHECK(t->targets[i] >= 0, "target %d is %d (only -1 may be negative)", i, t->targets[i]);
                if (i + 1 < t->cu_seqlens[d + 1])
                    CHECK(t->targets[i] == t->tokens[i + 1],
                          "target %d is %d but the next token of its document is %d", i, t->targets[i],
                          t->tokens[i + 1]);
                else
                    CHECK(!pairs, "pairs: the last token %d of document %d has target %d, want -1", i, d,
                          t->targets[i]);
            }
        }
    }
    CHECK(targets == t->num_targets, "num_targets %d, but %d targets are set", t->num_targets, targets);
    for (int32_t i = t->num_tokens; i < slots; i++)
        CHECK(t->tokens[i] == 0 && t->targets[i] == -1 && t->positions[i] == 0,
              "padding slot %d holds token %d target %d position %d", i, t->tokens[i], t->targets[i],
              t->positions[i]);
    if (!pairs) {
        CHECK(t->num_pairs == 0, "a text batch with %d pairs", t->num_pairs);
        return DL_OK;
    }
    CHECK(t->num_seqs == 2 * t->num_pairs, "%d documents for %d pairs", t->num_seqs, t->num_pairs);
    for (int32_t p = 0; p < t->num_pairs; p++) {
        int32_t c = t->pair_chosen[p], r = t->pair_rejected[p];
        CHECK(c >= 0 && c < t->num_seqs && r >= 0 && r < t->num_seqs && c != r, "pair %d: documents %d and %d", p,
              c, r);
        CHECK(t->seq_pair[c] == p && t->seq_pair[r] == p && t->seq_chosen[c] == 1 && t->seq_chosen[r] == 0,
              "pair %d: its documents %d/%d point to pairs %d/%d (chosen flags %d/%d)", p, c, r, t->seq_pair[c],
              t->seq_pair[r], t->seq_chosen[c], t->seq_chosen[r]);
    }
    return DL_OK;
}
