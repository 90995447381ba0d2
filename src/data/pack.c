/* pack.c — streaming best-fit-decreasing packing (see pack.h for the rules).
 *
 * Data structures, all sized at creation:
 *   - a pool of `window` item slots, each with room for its tokens (T, or 2T for a pair);
 *   - buckets by item size (key = tokens the item occupies): doubly linked lists kept in arrival order, plus a
 *     bitmap of non-empty buckets, so "the longest item of size ≤ c, oldest first" is a scan of T/64 words;
 *   - one arrival-ordered list of all items, whose head is the oldest (for the fairness rule);
 *   - per batch: the room left in each row and, per row, the list of documents placed in it.
 * A placed document's tokens are written at once into the batch buffers at row-major staging offsets
 * (row b at b·T); emitting the batch slides the rows together so the real tokens become contiguous. */
#include "data/pack.h"

#include <stdlib.h>
#include <string.h>

typedef struct pack_item {
    uint64_t stream;
    uint32_t piece;
    int32_t ndocs;      /* 1 (text) or 2 (pair: chosen, rejected) */
    int32_t len[2];
    int32_t loss_from;  /* tokens at index ≥ loss_from are predicted with loss (pairs: the kept prompt length) */
    int32_t next_token; /* target of the last token: the next piece's first token, or -1 */
    int32_t key;        /* len[0] + len[1] */
    uint64_t record;    /* pairs: the source record, for the batch's pair_record */
    int truncated;      /* pairs: cut to fit a row */
    int32_t bprev, bnext; /* bucket list */
    int32_t aprev, anext; /* arrival list */
} pack_item;

struct dl_packer {
    dl_pack_config cfg;
    int32_t T, B, M, kmax, slot_cap;
    uint64_t max_age;
    pack_item *items;
    int32_t *slot_tokens; /* [M · slot_cap] */
    int32_t *free_stack;
    int32_t nfree, count;
    int32_t *bucket_head, *bucket_tail; /* [kmax + 1] */
    uint64_t *bitmap;
    int32_t nwords;
    int32_t age_head, age_tail;
    uint64_t next_stream, stream_end;
    /* the text document being cut into pieces */
    int32_t *pend;
    size_t pend_cap, pend_len;
    uint64_t pend_stream;
    uint32_t pend_piece;
    int pend_active;
    uint64_t unusable_run;
    /* batch assembly */
    int32_t *rem, *row_head, *row_tail;
    int32_t *doc_next, *doc_len, *doc_pair;
    uint8_t *doc_chosen;
    int32_t ndocs, npairs, ntargets, ntruncated;
    dl_pack_stats stats;
};

/* ---- varints ----------------------------------------------------------------------------------------------------- */

size_t dl_varint_put(uint8_t *out, size_t cap, uint64_t value) {
    size_t n = 0;
    do {
        if (n >= cap)
            return 0;
        uint8_t byte = value & 0x7f;
        value >>= 7;
        out[n++] = byte | (value ? 0x80 : 0);
    } while (value);
    return n;
}

size_t dl_varint_get(const uint8_t *in, size_t len, uint64_t *value) {
    uint64_t v = 0;
    for (size_t n = 0; n < len && n < 10; n++) {
        uint64_t part = in[n] & 0x7f;
        if (n == 9 && part > 1)
            return 0; /* more than 64 bits */
        v |= part << (7 * n);
        if (!(in[n] & 0x80)) {
            *value = v;
            return n + 1;
        }
    }
    return 0;
}

/* ---- creation ---------------------------------------------------------------------------------------------------- */

void dl_packer_destroy(dl_packer *p) {
    if (!p)
        return;
    free(p->items);
    free(p->slot_tokens);
    free(p->free_stack);
    free(p->bucket_head);
    free(p->bucket_tail);
    free(p->bitmap);
    free(p->pend);
    free(p->rem);
    free(p->row_head);
    free(p->row_tail);
    free(p->doc_next);
    free(p->doc_len);
    free(p->doc_pair);
    free(p->doc_chosen);
    free(p);
}

dl_status dl_packer_create(dl_packer **packer, const dl_pack_config *cfg) {
    DL_REQUIRE(packer != NULL && cfg != NULL, DL_ERR_INVALID, "dl_packer_create: NULL argument");
    *packer = NULL;
    DL_REQUIRE(cfg->kind == DL_DATA_TEXT || cfg->kind == DL_DATA_PAIRS, DL_ERR_INVALID,
               "packing handles text and pairs, not %s", dl_data_kind_name(cfg->kind));
    DL_REQUIRE(cfg->rows > 0, DL_ERR_INVALID, "batch rows must be positive, got %d", (int)cfg->rows);
    DL_REQUIRE(cfg->seq_len > 0, DL_ERR_INVALID, "data.seq_len must be positive, got %d", (int)cfg->seq_len);
    DL_REQUIRE((int64_t)cfg->rows * cfg->seq_len <= INT32_MAX / 2, DL_ERR_INVALID,
               "a batch of %d rows of %d tokens is too large", (int)cfg->rows, (int)cfg->seq_len);
    DL_REQUIRE(!cfg->packing || (cfg->window >= 1 && cfg->window <= (1 << 20)), DL_ERR_INVALID,
               "data.pack_window must be in [1, 1048576], got %d", (int)cfg->window);
    if (cfg->kind == DL_DATA_PAIRS && cfg->rows < 2) {
        /* Two rows always hold a pair (each side is at most a row), so a batch can never be stuck on one. */
        dl_status s = DL_FAIL(DL_ERR_INVALID, "preference pairs need at least 2 rows per batch, got %d",
                              (int)cfg->rows);
        dl_error_hint("set train.batch_per_rank to at least 2");
        return s;
    }
    dl_packer *p = calloc(1, sizeof *p);
    if (!p)
        return DL_FAIL(DL_ERR_NOMEM, "allocating a packer");
    p->cfg = *cfg;
    p->T = cfg->seq_len;
    p->B = cfg->rows;
    p->M = cfg->packing ? cfg->window : 1;
    int ndoc = cfg->kind == DL_DATA_PAIRS ? 2 : 1;
    p->kmax = ndoc * p->T;
    p->slot_cap = ndoc * p->T;
    p->max_age = 4 * (uint64_t)p->M;
    p->nwords = (p->kmax + 1 + 63) / 64;
    size_t slots = (size_t)p->B * (size_t)p->T;
    p->items = calloc((size_t)p->M, sizeof *p->items);
    p->slot_tokens = malloc((size_t)p->M * (size_t)p->slot_cap * sizeof *p->slot_tokens);
    p->free_stack = malloc((size_t)p->M * sizeof *p->free_stack);
    p->bucket_head = malloc(((size_t)p->kmax + 1) * sizeof *p->bucket_head);
    p->bucket_tail = malloc(((size_t)p->kmax + 1) * sizeof *p->bucket_tail);
    p->bitmap = calloc((size_t)p->nwords, sizeof *p->bitmap);
    p->rem = malloc((size_t)p->B * sizeof *p->rem);
    p->row_head = malloc((size_t)p->B * sizeof *p->row_head);
    p->row_tail = malloc((size_t)p->B * sizeof *p->row_tail);
    p->doc_next = malloc(slots * sizeof *p->doc_next);
    p->doc_len = malloc(slots * sizeof *p->doc_len);
    p->doc_pair = malloc(slots * sizeof *p->doc_pair);
    p->doc_chosen = malloc(slots * sizeof *p->doc_chosen);
    if (!p->items || !p->slot_tokens || !p->free_stack || !p->bucket_head || !p->bucket_tail || !p->bitmap ||
        !p->rem || !p->row_head || !p->row_tail || !p->doc_next || !p->doc_len || !p->doc_pair || !p->doc_chosen) {
        dl_packer_destroy(p);
        return DL_FAIL(DL_ERR_NOMEM, "allocating a packer for a window of %d documents of up to %d tokens",
                       (int)cfg->window, (int)p->slot_cap);
    }
    dl_packer_reset(p, 0, UINT64_MAX);
    *packer = p;
    return DL_OK;
}

void dl_packer_reset(dl_packer *p, uint64_t start, uint64_t end) {
    p->nfree = p->M;
    for (int32_t i = 0; i < p->M; i++)
        p->free_stack[i] = p->M - 1 - i; /* pop order 0, 1, 2, ... */
    p->count = 0;
    for (int32_t k = 0; k <= p->kmax; k++)
        p->bucket_head[k] = p->bucket_tail[k] = -1;
    memset(p->bitmap, 0, (size_t)p->nwords * sizeof *p->bitmap);
    p->age_head = p->age_tail = -1;
    p->next_stream = start;
    p->stream_end = end;
    p->pend_active = 0;
    p->pend_len = 0;
    p->unusable_run = 0;
    memset(&p->stats, 0, sizeof p->stats);
}

uint64_t dl_packer_position(const dl_packer *p) { return p->next_stream; }
int32_t dl_packer_window_count(const dl_packer *p) { return p->count; }
const dl_pack_stats *dl_packer_stats(const dl_packer *p) { return &p->stats; }

/* ---- the window ------------------------------------------------------------------------------------------------- */

static int32_t *item_tokens(const dl_packer *p, int32_t slot) {
    return p->slot_tokens + (size_t)slot * (size_t)p->slot_cap;
}

/* Takes a free slot; the caller fills it and calls window_insert. */
static int32_t slot_take(dl_packer *p) { return p->free_stack[--p->nfree]; }

static void window_insert(dl_packer *p, int32_t slot) {
    pack_item *it = &p->items[slot];
    int32_t k = it->key;
    it->bnext = -1;
    it->bprev = p->bucket_tail[k];
    if (it->bprev >= 0)
        p->items[it->bprev].bnext = slot;
    else
        p->bucket_head[k] = slot;
    p->bucket_tail[k] = slot;
    p->bitmap[k >> 6] |= UINT64_C(1) << (k & 63);
    it->anext = -1;
    it->aprev = p->age_tail;
    if (it->aprev >= 0)
        p->items[it->aprev].anext = slot;
    else
        p->age_head = slot;
    p->age_tail = slot;
    p->count++;
}

static void window_remove(dl_packer *p, int32_t slot) {
    pack_item *it = &p->items[slot];
    int32_t k = it->key;
    if (it->bprev >= 0)
        p->items[it->bprev].bnext = it->bnext;
    else
        p->bucket_head[k] = it->bnext;
    if (it->bnext >= 0)
        p->items[it->bnext].bprev = it->bprev;
    else
        p->bucket_tail[k] = it->bprev;
    if (p->bucket_head[k] < 0)
        p->bitmap[k >> 6] &= ~(UINT64_C(1) << (k & 63));
    if (it->aprev >= 0)
        p->items[it->aprev].anext = it->anext;
    else
        p->age_head = it->anext;
    if (it->anext >= 0)
        p->items[it->anext].aprev = it->aprev;
    else
        p->age_tail = it->aprev;
    p->free_stack[p->nfree++] = slot;
    p->count--;
}

/* The largest non-empty bucket ≤ cap, or -1. */
static int32_t bucket_at_most(const dl_packer *p, int32_t cap) {
    if (cap > p->kmax)
        cap = p->kmax;
    if (cap < 1)
        return -1;
    int32_t w = cap >> 6;
    uint64_t bits = p->bitmap[w];
    int shift = cap & 63;
    if (shift < 63)
        bits &= (UINT64_C(1) << (shift + 1)) - 1;
    for (;;) {
        if (bits) {
            int32_t k = (w << 6) + 63 - __builtin_clzll(bits);
            return k >= 1 ? k : -1;
        }
        if (--w < 0)
            return -1;
        bits = p->bitmap[w];
    }
}

/* ---- filling the window from the stream -------------------------------------------------------------------------- */

static dl_status copy_checked(int32_t *dst, const int32_t *src, size_t n, uint64_t stream, const char *what) {
    for (size_t i = 0; i < n; i++) {
        int32_t v = src[i];
        if (v < 0)
            return DL_FAIL(DL_ERR_FORMAT, "document at stream position %llu: %s token %zu is negative (%d)",
                           (unsigned long long)stream, what, i, (int)v);
        dst[i] = v;
    }
    return DL_OK;
}

/* Turns piece `piece` of the pending text document into a window item. */
static dl_status add_piece(dl_packer *p, uint32_t piece) {
    size_t start = (size_t)piece * (size_t)p->T;
    size_t len = p->pend_len - start;
    if (len > (size_t)p->T)
        len = (size_t)p->T;
    int32_t slot = slot_take(p);
    pack_item *it = &p->items[slot];
    it->stream = p->pend_stream;
    it->piece = piece;
    it->ndocs = 1;
    it->len[0] = (int32_t)len;
    it->len[1] = 0;
    it->loss_from = 0;
    it->next_token = start + len < p->pend_len ? p->pend[start + len] : -1;
    it->key = (int32_t)len;
    memcpy(item_tokens(p, slot), p->pend + start, len * sizeof(int32_t));
    window_insert(p, slot);
    p->stats.pieces += p->pend_len > (size_t)p->T;
    return DL_OK;
}

/* Loads a text document into the pending buffer (checked for negative tokens). */
static dl_status load_pending(dl_packer *p, uint64_t stream, const dl_pack_doc *doc) {
    if (doc->len > p->pend_cap) {
        size_t cap = p->pend_cap ? p->pend_cap : 1024;
        while (cap < doc->len)
            cap *= 2;
        int32_t *grown = realloc(p->pend, cap * sizeof *grown);
        if (!grown)
            return DL_FAIL(DL_ERR_NOMEM, "holding a document of %zu tokens", doc->len);
        p->pend = grown;
        p->pend_cap = cap;
    }
    DL_CHECK(copy_checked(p->pend, doc->tokens, doc->len, stream, "text"));
    p->pend_len = doc->len;
    p->pend_stream = stream;
    return DL_OK;
}

/* Builds the window item of a preference pair (truncated to fit a row). *usable: 1 when it went into the window, 0
 * for an unusable pair, -1 for one dropped as too long. */
static dl_status add_pair(dl_packer *p, uint64_t stream, const dl_pack_doc *doc, int *usable) {
    size_t T = (size_t)p->T;
    size_t P = doc->prompt_len, C = doc->chosen_len, R = doc->rejected_len;
    size_t longest = C > R ? C : R;
    size_t keep_prompt = P;
    if (P + longest > T && p->cfg.overlong == DL_PACK_DROP) {
        p->stats.dropped++;
        *usable = -1;
        return DL_OK;
    }
    if (P + longest > T && p->cfg.overlong == DL_PACK_ERROR) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT,
                              "pair at stream position %llu (record %llu): prompt %zu + longer response %zu tokens "
                              "exceed data.seq_len %zu (data.overlong: error)",
                              (unsigned long long)stream, (unsigned long long)doc->record, P, longest, T);
        dl_error_hint("raise data.seq_len, shorten the pairs, or set data.overlong to truncate or drop");
        return s;
    }
    if (P + longest > T) {
        size_t room = T > longest ? T - longest : 0;
        if (room < T / 2)
            room = T / 2;
        keep_prompt = P < room ? P : room;
    }
    size_t keep_c = C < T - keep_prompt ? C : T - keep_prompt;
    size_t keep_r = R < T - keep_prompt ? R : T - keep_prompt;
    if (keep_prompt + keep_c == 0 || keep_prompt + keep_r == 0) {
        *usable = 0;
        return DL_OK;
    }
    *usable = 1;
    if (keep_prompt < P || keep_c < C || keep_r < R)
        p->stats.truncated++;
    int32_t slot = slot_take(p);
    int32_t *dst = item_tokens(p, slot);
    const int32_t *prompt_tail = doc->prompt + (P - keep_prompt);
    dl_status s = copy_checked(dst, prompt_tail, keep_prompt, stream, "prompt");
    if (s == DL_OK)
        s = copy_checked(dst + keep_prompt, doc->chosen, keep_c, stream, "chosen");
    if (s == DL_OK)
        s = copy_checked(dst + T, prompt_tail, keep_prompt, stream, "prompt");
    if (s == DL_OK)
        s = copy_checked(dst + T + keep_prompt, doc->rejected, keep_r, stream, "rejected");
    if (s != DL_OK) {
        p->free_stack[p->nfree++] = slot;
        return s;
    }
    pack_item *it = &p->items[slot];
    it->stream = stream;
    it->piece = 0;
    it->ndocs = 2;
    it->len[0] = (int32_t)(keep_prompt + keep_c);
    it->len[1] = (int32_t)(keep_prompt + keep_r);
    it->loss_from = (int32_t)keep_prompt;
    it->next_token = -1;
    it->key = it->len[0] + it->len[1];
    it->record = doc->record;
    it->truncated = keep_prompt < P || keep_c < C || keep_r < R;
    window_insert(p, slot);
    return DL_OK;
}

/* Counts a stream position without a usable document; a whole epoch of them is an error, not an endless loop. */
static dl_status note_unusable(dl_packer *p) {
    p->unusable_run++;
    if (p->cfg.period && p->unusable_run >= p->cfg.period) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT, "%llu stream positions in a row (a whole epoch) gave no usable document",
                              (unsigned long long)p->unusable_run);
        dl_error_hint("the records are empty, skipped as corrupt, dropped as too long (data.overlong drop), or of "
                      "another kind than the model needs");
        return s;
    }
    return DL_OK;
}

/* Fills the window up to its size from the stream. */
static dl_status refill(dl_packer *p, dl_pack_fetch_fn fetch, void *ctx) {
    while (p->count < p->M) {
        if (p->pend_active) {
            DL_CHECK(add_piece(p, p->pend_piece));
            p->pend_piece++;
            if ((size_t)p->pend_piece * (size_t)p->T >= p->pend_len)
                p->pend_active = 0;
            continue;
        }
        if (p->next_stream >= p->stream_end)
            return DL_OK;
        uint64_t stream = p->next_stream;
        dl_pack_doc doc;
        memset(&doc, 0, sizeof doc);
        DL_CHECK(fetch(ctx, stream, &doc));
        p->next_stream++;
        if (!doc.present) {
            DL_CHECK(note_unusable(p));
            continue;
        }
        if (p->cfg.kind == DL_DATA_PAIRS) {
            int usable = 0;
            DL_CHECK(add_pair(p, stream, &doc, &usable));
            if (usable != 1) {
                p->stats.unusable += usable == 0;
                DL_CHECK(note_unusable(p));
                continue;
            }
        } else {
            if (doc.len == 0) {
                p->stats.unusable++;
                DL_CHECK(note_unusable(p));
                continue;
            }
            DL_CHECK(load_pending(p, stream, &doc));
            p->pend_active = 1;
            p->pend_piece = 0;
        }
        p->stats.documents++;
        p->unusable_run = 0;
    }
    return DL_OK;
}

/* ---- placing into rows ------------------------------------------------------------------------------------------- */

/* The row `len` tokens fit most tightly (least room left), or -1. Without packing only an empty row will do. */
static int32_t best_row(const dl_packer *p, int32_t len) {
    int32_t best = -1, best_rem = INT32_MAX;
    for (int32_t b = 0; b < p->B; b++) {
        int32_t r = p->rem[b];
        if (r < len || r >= best_rem)
            continue;
        if (!p->cfg.packing && r != p->T)
            continue;
        best = b;
        best_rem = r;
    }
    return best;
}

/* Writes one document into row `row` at its staging offset and records it in the row's list. */
static void put_doc(dl_packer *p, dl_token_batch *out, int32_t row, const int32_t *tok, int32_t len,
                    int32_t loss_from, int32_t next_token, int32_t pair, int chosen) {
    size_t at = (size_t)row * (size_t)p->T + (size_t)(p->T - p->rem[row]);
    int32_t *tokens = out->tokens + at, *targets = out->targets + at, *positions = out->positions + at;
    memcpy(tokens, tok, (size_t)len * sizeof *tokens);
    int32_t ntargets = 0;
    for (int32_t i = 0; i + 1 < len; i++) {
        int32_t t = i + 1 >= loss_from ? tok[i + 1] : -1;
        targets[i] = t;
        ntargets += t >= 0;
    }
    targets[len - 1] = next_token;
    ntargets += next_token >= 0;
    for (int32_t i = 0; i < len; i++)
        positions[i] = i;
    p->rem[row] -= len;
    p->ntargets += ntargets;
    int32_t d = p->ndocs++;
    p->doc_len[d] = len;
    p->doc_pair[d] = pair;
    p->doc_chosen[d] = (uint8_t)chosen;
    p->doc_next[d] = -1;
    if (p->row_tail[row] >= 0)
        p->doc_next[p->row_tail[row]] = d;
    else
        p->row_head[row] = d;
    p->row_tail[row] = d;
}

/* Places window item `slot` if it fits; returns 1 when placed (and removed from the window). */
static int try_place(dl_packer *p, dl_token_batch *out, int32_t slot) {
    pack_item *it = &p->items[slot];
    const int32_t *tok = item_tokens(p, slot);
    if (it->ndocs == 1) {
        int32_t row = best_row(p, it->len[0]);
        if (row < 0)
            return 0;
        put_doc(p, out, row, tok, it->len[0], it->loss_from, it->next_token, -1, 0);
    } else {
        /* The longer side first, then the shorter into the room that is left. */
        int big = it->len[1] > it->len[0] ? 1 : 0, small = 1 - big;
        int32_t row_big = best_row(p, it->len[big]);
        if (row_big < 0)
            return 0;
        p->rem[row_big] -= it->len[big];
        int32_t row_small = best_row(p, it->len[small]);
        p->rem[row_big] += it->len[big];
        if (row_small < 0)
            return 0;
        int32_t pair = p->npairs++;
        out->pair_record[pair] = it->record;
        p->ntruncated += it->truncated;
        int32_t rows[2];
        rows[big] = row_big;
        rows[small] = row_small;
        /* Chosen before rejected when they share a row, so document order follows the pair's order. */
        put_doc(p, out, rows[0], tok, it->len[0], it->loss_from, -1, pair, 1);
        put_doc(p, out, rows[1], tok + p->T, it->len[1], it->loss_from, -1, pair, 0);
    }
    window_remove(p, slot);
    return 1;
}

/* Places the oldest item first when it has waited too long; otherwise the longest item that fits. Returns 1 when
 * something was placed. */
static int place_one(dl_packer *p, dl_token_batch *out) {
    if (p->count == 0)
        return 0;
    int32_t oldest = p->age_head;
    if (p->cfg.packing && p->next_stream - p->items[oldest].stream > p->max_age && try_place(p, out, oldest))
        return 1;
    /* Room bound: the largest room (two largest for a pair, whose sides may take two rows). */
    int32_t first = 0, second = 0;
    for (int32_t b = 0; b < p->B; b++) {
        int32_t r = p->rem[b];
        if (!p->cfg.packing && r != p->T)
            continue;
        if (r > first) {
            second = first;
            first = r;
        } else if (r > second) {
            second = r;
        }
    }
    int32_t cap = p->cfg.kind == DL_DATA_PAIRS ? first + second : first;
    for (int32_t k = bucket_at_most(p, cap); k >= 1; k = bucket_at_most(p, k - 1)) {
        for (int32_t slot = p->bucket_head[k]; slot >= 0; slot = p->items[slot].bnext) {
            if (try_place(p, out, slot))
                return 1;
            if (p->cfg.kind == DL_DATA_TEXT)
                break; /* a text item of size ≤ first always fits; this only happens without packing */
        }
    }
    return 0;
}

/* Slides the staged rows together, writes cu_seqlens / row_offsets / pair indices and the padding. */
static void emit(dl_packer *p, dl_token_batch *out) {
    int32_t offset = 0, s = 0, used_rows = 0;
    out->cu_seqlens[0] = 0;
    for (int32_t b = 0; b < p->B; b++) {
        int32_t used = p->T - p->rem[b];
        out->row_offsets[b] = offset;
        if (used > 0) {
            size_t from = (size_t)b * (size_t)p->T;
            if (from != (size_t)offset) {
                memmove(out->tokens + offset, out->tokens + from, (size_t)used * sizeof(int32_t));
                memmove(out->targets + offset, out->targets + from, (size_t)used * sizeof(int32_t));
                memmove(out->positions + offset, out->positions + from, (size_t)used * sizeof(int32_t));
            }
            used_rows++;
        }
        int32_t at = offset;
        for (int32_t d = p->row_head[b]; d >= 0; d = p->doc_next[d]) {
            at += p->doc_len[d];
            out->cu_seqlens[s + 1] = at;
            if (p->cfg.kind == DL_DATA_PAIRS) {
                int32_t pair = p->doc_pair[d];
                out->seq_pair[s] = pair;
                out->seq_chosen[s] = p->doc_chosen[d];
                if (p->doc_chosen[d])
                    out->pair_chosen[pair] = s;
                else
                    out->pair_rejected[pair] = s;
            }
            s++;
        }
        offset += used;
    }
    out->row_offsets[p->B] = offset;
    size_t slots = (size_t)p->B * (size_t)p->T;
    memset(out->tokens + offset, 0, (slots - (size_t)offset) * sizeof(int32_t));
    memset(out->positions + offset, 0, (slots - (size_t)offset) * sizeof(int32_t));
    for (size_t i = (size_t)offset; i < slots; i++)
        out->targets[i] = -1;
    out->num_tokens = offset;
    out->num_seqs = s;
    out->num_rows = used_rows;
    out->num_targets = p->ntargets;
    out->num_pairs = p->npairs;
    out->num_truncated = p->ntruncated;
    p->stats.batches++;
    p->stats.tokens += (uint64_t)offset;
    p->stats.slots += slots;
}

dl_status dl_packer_next(dl_packer *p, dl_token_batch *out, dl_pack_fetch_fn fetch, void *ctx, int *produced) {
    DL_REQUIRE(p && out && fetch && produced, DL_ERR_INVALID, "dl_packer_next: NULL argument");
    DL_REQUIRE(out->rows == p->B && out->seq_len == p->T && out->tokens != NULL &&
                   (p->cfg.kind != DL_DATA_PAIRS || out->seq_pair != NULL),
               DL_ERR_INVALID, "dl_packer_next: the batch holds %d rows of %d tokens, the packer makes %d of %d%s",
               (int)out->rows, (int)out->seq_len, (int)p->B, (int)p->T,
               p->cfg.kind == DL_DATA_PAIRS ? " with pair indices" : "");
    *produced = 0;
    for (int32_t b = 0; b < p->B; b++) {
        p->rem[b] = p->T;
        p->row_head[b] = p->row_tail[b] = -1;
    }
    p->ndocs = p->npairs = p->ntargets = p->ntruncated = 0;
    uint64_t dropped_before = p->stats.dropped;
    for (;;) {
        DL_CHECK(refill(p, fetch, ctx));
        if (!place_one(p, out))
            break;
    }
    out->num_dropped = (int32_t)(p->stats.dropped - dropped_before);
    if (p->ndocs == 0) {
        /* Every window item fits an empty batch, so nothing placed means nothing left. */
        if (p->count > 0 || p->pend_active || p->next_stream < p->stream_end)
            return DL_FAIL(DL_ERR_RUNTIME, "packer: %d window documents fit no empty batch", (int)p->count);
        out->num_tokens = out->num_seqs = out->num_rows = out->num_targets = out->num_pairs = 0;
        out->num_truncated = 0;
        return DL_OK;
    }
    emit(p, out);
    *produced = 1;
    return DL_OK;
}

/* ---- state ------------------------------------------------------------------------------------------------------- */

size_t dl_packer_state_max(const dl_packer *p) { return 4 * 10 + (size_t)p->M * 15; }

dl_status dl_packer_save(const dl_packer *p, uint8_t *out, size_t cap, size_t *len) {
    DL_REQUIRE(p && out && len, DL_ERR_INVALID, "dl_packer_save: NULL argument");
    size_t n = 0, w;
#define PUT(v)                                                                                 \
    do {                                                                                       \
        w = dl_varint_put(out + n, cap - n, (v));                                              \
        if (!w)                                                                                \
            return DL_FAIL(DL_ERR_INVALID, "packer state does not fit in %zu bytes", cap);     \
        n += w;                                                                                \
    } while (0)
    PUT(p->next_stream);
    PUT((uint64_t)p->pend_active);
    if (p->pend_active) {
        PUT(p->pend_stream);
        PUT(p->pend_piece);
    }
    PUT((uint64_t)p->count);
    uint64_t prev = 0;
    for (int32_t slot = p->age_head; slot >= 0; slot = p->items[slot].anext) {
        /* The arrival list is in (stream, piece) order: deltas are small and non-negative. */
        PUT(p->items[slot].stream - prev);
        PUT(p->items[slot].piece);
        prev = p->items[slot].stream;
    }
#undef PUT
    *len = n;
    return DL_OK;
}

dl_status dl_packer_restore(dl_packer *p, const uint8_t *in, size_t len, size_t *used, uint64_t end,
                            dl_pack_fetch_fn fetch, void *ctx) {
    DL_REQUIRE(p && in && used && fetch, DL_ERR_INVALID, "dl_packer_restore: NULL argument");
    size_t n = 0, r;
    uint64_t v;
#define GET(dst)                                                                                      \
    do {                                                                                              \
        r = dl_varint_get(in + n, len - n, &v);                                                       \
        if (!r)                                                                                       \
            return DL_FAIL(DL_ERR_FORMAT, "data cursor: packer state truncated or malformed at byte %zu", n); \
        n += r;                                                                                       \
        (dst) = v;                                                                                    \
    } while (0)
    uint64_t next_stream, pend_active, pend_stream = 0, pend_piece = 0, count;
    GET(next_stream);
    GET(pend_active);
    if (pend_active > 1)
        return DL_FAIL(DL_ERR_FORMAT, "data cursor: bad packer flag %llu", (unsigned long long)pend_active);
    if (pend_active) {
        GET(pend_stream);
        GET(pend_piece);
    }
    GET(count);
    if (count > (uint64_t)p->M)
        return DL_FAIL(DL_ERR_FORMAT, "data cursor: %llu window documents, the window holds %d",
                       (unsigned long long)count, (int)p->M);
    dl_packer_reset(p, next_stream, end);
    uint64_t stream = 0, last_piece = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t delta, piece;
        GET(delta);
        GET(piece);
        stream += delta;
        if (stream < delta || stream >= next_stream || (i > 0 && delta == 0 && piece <= last_piece) ||
            (p->cfg.kind == DL_DATA_PAIRS && piece != 0) || piece > UINT32_MAX)
            return DL_FAIL(DL_ERR_FORMAT, "data cursor: window document %llu (stream %llu, piece %llu) out of order",
                           (unsigned long long)i, (unsigned long long)stream, (unsigned long long)piece);
        last_piece = piece;
        dl_pack_doc doc;
        memset(&doc, 0, sizeof doc);
        DL_CHECK(fetch(ctx, stream, &doc));
        if (!doc.present)
            return DL_FAIL(DL_ERR_FORMAT, "data cursor names the document at stream position %llu, which is gone",
                           (unsigned long long)stream);
        if (p->cfg.kind == DL_DATA_PAIRS) {
            int usable = 0;
            DL_CHECK(add_pair(p, stream, &doc, &usable));
            if (usable != 1)
                return DL_FAIL(DL_ERR_FORMAT, "data cursor names an unusable pair at stream position %llu",
                               (unsigned long long)stream);
        } else {
            if (piece * (uint64_t)p->T >= doc.len)
                return DL_FAIL(DL_ERR_FORMAT,
                               "data cursor names piece %llu of the document at stream position %llu, which has %zu "
                               "tokens",
                               (unsigned long long)piece, (unsigned long long)stream, doc.len);
            DL_CHECK(load_pending(p, stream, &doc));
            DL_CHECK(add_piece(p, (uint32_t)piece));
        }
    }
    p->pend_len = 0;
    if (pend_active) {
        if (pend_stream >= next_stream || pend_piece > UINT32_MAX)
            return DL_FAIL(DL_ERR_FORMAT, "data cursor: document being cut (stream %llu) is past the position %llu",
                           (unsigned long long)pend_stream, (unsigned long long)next_stream);
        dl_pack_doc doc;
        memset(&doc, 0, sizeof doc);
        DL_CHECK(fetch(ctx, pend_stream, &doc));
        if (!doc.present || p->cfg.kind != DL_DATA_TEXT || pend_piece == 0 || pend_piece * (uint64_t)p->T >= doc.len)
            return DL_FAIL(DL_ERR_FORMAT, "data cursor: bad document being cut (stream %llu, piece %llu)",
                           (unsigned long long)pend_stream, (unsigned long long)pend_piece);
        DL_CHECK(load_pending(p, pend_stream, &doc));
        p->pend_active = 1;
        p->pend_piece = (uint32_t)pend_piece;
    }
#undef GET
    memset(&p->stats, 0, sizeof p->stats);
    *used = n;
    return DL_OK;
}
