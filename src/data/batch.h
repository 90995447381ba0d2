/* batch.h — what the data pipeline hands the trainer each step: a batch of packed token rows (gpt, dpo) or a CSR
 * batch of click rows (fm, ffm).
 *
 * Token batches use the "rmpad" layout the attention kernels want (ops.h: packed sequences):
 *
 *     tokens, targets, positions  [rows · seq_len] buffers; the first num_tokens entries are real tokens,
 *                                 row 0's documents, then row 1's, ... with no padding in between;
 *                                 entries [num_tokens, rows · seq_len) are padding: token 0, target -1, position 0,
 *                                 outside every document
 *     cu_seqlens [num_seqs + 1]   document boundaries over [0, num_tokens): cu_seqlens[num_seqs] = num_tokens
 *     row_offsets [rows + 1]      row b holds [row_offsets[b], row_offsets[b+1]), at most seq_len tokens, and its
 *                                 boundaries are document boundaries: no document crosses a row
 *
 * so a model calls every op with N = num_tokens and spends nothing on padding; a consumer that wants the classic
 * [rows, seq_len] view scatters row b to b · seq_len. targets[i] is the token after tokens[i] in the same document,
 * or -1 where there is none (a document's last token; for preference pairs, every prompt position): the loss mask.
 * positions restart at 0 with every document.
 *
 * Preference pairs (dpo) are token batches whose documents come in pairs, prompt+chosen and prompt+rejected: seq_pair
 * gives each document's pair, seq_chosen whether it is the chosen one, and pair_chosen / pair_rejected the document
 * index of each side, so the summed log-probs of a document (dl_op_sequence_sum_forward over cu_seqlens) gather
 * straight into the DPO loss. Both documents of a pair are always in the same batch. pair_record names the record
 * each pair came from (the global record index of the dataset), so values computed once per record (precomputed
 * reference log-probs) can be looked up.
 *
 * Click batches are CSR: row r has entries [row_ptr[r], row_ptr[r+1]) of features / fields / values, and labels[r].
 *
 * All buffers are allocated once (dl_batch_alloc) and reused every step; the click entry arrays grow to the largest
 * batch seen and then stay. */
#ifndef DL_DATA_BATCH_H
#define DL_DATA_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a dataset's records hold and what kind of batch they become. Values are stable (stored in cursors). */
typedef enum dl_data_kind {
    DL_DATA_TEXT = 0,   /* `tokens` records -> token batches (gpt) */
    DL_DATA_CLICKS = 1, /* click rows -> CSR batches (fm, ffm) */
    DL_DATA_PAIRS = 2,  /* preference pairs -> token batches with pair indices (dpo) */
} dl_data_kind;

/* The short name of a kind ("text", "clicks", "pairs"). */
const char *dl_data_kind_name(dl_data_kind kind);

typedef struct dl_token_batch {
    int32_t rows;        /* B: capacity in rows */
    int32_t seq_len;     /* T: tokens per row */
    int32_t num_tokens;  /* real tokens, contiguous at [0, num_tokens) */
    int32_t num_seqs;    /* documents */
    int32_t num_rows;    /* rows holding at least one document */
    int32_t num_targets; /* targets != -1: the token count the loss is averaged over */
    int32_t num_pairs;   /* preference pairs (0 for text) */
    int32_t num_truncated; /* pairs: pairs of this batch cut to fit a row (data.overlong truncate) */
    int32_t num_dropped;   /* pairs: pairs left out as too long while this batch was packed (data.overlong drop) */
    int32_t *tokens;     /* [rows · seq_len] */
    int32_t *targets;    /* [rows · seq_len] */
    int32_t *positions;  /* [rows · seq_len] */
    int32_t *cu_seqlens; /* [rows · seq_len + 1] */
    int32_t *row_offsets; /* [rows + 1] */
    /* pairs only (NULL for text) */
    int32_t *seq_pair;      /* [rows · seq_len]: pair index of each document */
    uint8_t *seq_chosen;    /* [rows · seq_len]: 1 for prompt+chosen, 0 for prompt+rejected */
    int32_t *pair_chosen;   /* [rows · seq_len / 2 + 1]: document index of each pair's chosen side */
    int32_t *pair_rejected; /* [rows · seq_len / 2 + 1] */
    uint64_t *pair_record;  /* [rows · seq_len / 2 + 1]: the source's record index each pair was read from */
} dl_token_batch;

typedef struct dl_click_batch {
    int32_t rows;      /* B: capacity in rows */
    int32_t num_rows;  /* rows in this batch */
    int64_t nnz;       /* entries in this batch */
    int64_t nnz_cap;   /* capacity of the entry arrays */
    int32_t *row_ptr;  /* [rows + 1] */
    int32_t *features; /* [nnz]: raw feature ids (hashed by the model) */
    int32_t *fields;   /* [nnz] */
    float *values;     /* [nnz] */
    float *labels;     /* [rows] */
} dl_click_batch;

typedef struct dl_batch {
    dl_data_kind kind;
    uint64_t index;      /* 0-based number of this batch in this rank's stream (continues across a resume) */
    uint64_t epoch;      /* epoch this rank's stream is in after this batch (the next document's epoch) */
    int end_of_data;     /* 1: the configured epochs are exhausted and this batch is empty padding */
    dl_token_batch tokens; /* DL_DATA_TEXT, DL_DATA_PAIRS */
    dl_click_batch clicks; /* DL_DATA_CLICKS */
} dl_batch;

/* Allocates the buffers of a batch of `rows` rows (of `seq_len` tokens for token kinds; seq_len is ignored for
 * clicks) and sets it empty. Free with dl_batch_free, also after a failure. */
dl_status dl_batch_alloc(dl_batch *batch, dl_data_kind kind, int32_t rows, int32_t seq_len);
/* Frees the buffers and zeroes the struct; safe on a zeroed or already freed batch. */
void dl_batch_free(dl_batch *batch);
/* Makes the batch empty (no rows, no tokens; padding everywhere), keeping its buffers. */
void dl_batch_clear(dl_batch *batch);

/* Grows the click entry arrays to hold at least `nnz` entries (keeps the content). */
dl_status dl_click_batch_reserve(dl_click_batch *batch, int64_t nnz);

/* Real tokens over slots: the packing efficiency of one batch, in [0, 1]. */
double dl_token_batch_efficiency(const dl_token_batch *batch);

/* Checks every layout invariant above (boundaries, rows within seq_len, no document crossing a row, positions
 * restarting per document, padding, counts, pair indices) and fails with DL_ERR_RUNTIME naming the first broken
 * one. For tests and debug builds: O(rows · seq_len). */
dl_status dl_token_batch_check(const dl_token_batch *batch, int pairs);

#ifdef __cplusplus
}
#endif

#endif
