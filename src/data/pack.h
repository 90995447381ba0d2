/* pack.h — packing documents into batches of fixed-length rows, streaming, in bounded memory.
 *
 * The packer pulls documents one stream position at a time (the loader maps positions to records of this rank's
 * shard, epoch after epoch) and keeps up to `window` of them in a window. A batch is B rows of T slots; it is filled
 * by best-fit decreasing over the window: repeatedly take the longest window document that still fits some row and
 * put it in the row it fills most tightly (least room left), refilling the window after every placement so a new
 * short document can plug a gap. When no window document fits any row the batch is emitted (see batch.h for the
 * layout: real tokens contiguous, cu_seqlens over them, padding only after them).
 *
 * Fairness: always taking the longest could leave a mid-sized document waiting for ever. A document older than
 * 4 × window stream positions goes first, before the longest, so every document leaves within a bounded delay.
 * Ties (same length) go to the oldest document, which makes the packing a pure function of the window's contents.
 *
 * Long documents: a text document longer than T is cut into pieces of T tokens (the last one shorter); each piece is
 * a document of its own for attention (positions restart, no token attends into another piece) and is packed like
 * any other. The last token of a piece that is not the document's end keeps its real target, the first token of
 * the next piece: that prediction is still a correct next-token example, only with a context cut at the piece
 * start. Only the document's true last token gets target -1.
 *
 * Preference pairs: a pair is one unit of the window; its two documents, prompt+chosen and prompt+rejected, go into
 * the same batch (possibly different rows), so the DPO loss always sees both sides. Targets are -1 wherever the
 * predicted token is a prompt token: the loss counts only response tokens. A pair whose prompt plus longer response
 * exceeds a row is never split (a split would change the log-probs the loss compares); `overlong` decides: truncate
 * (the prompt keeps its last min(P, max(T − max(C, R), T / 2)) tokens and each response its first T − kept-prompt
 * tokens), drop (the pair is skipped), or error (packing fails naming the record). Truncated and dropped pairs are
 * counted (stats, and per batch in num_truncated / num_dropped). Each pair's record index (dl_pack_doc.record) goes
 * to the batch's pair_record.
 *
 * Without packing (`packing: false`) the window is one document and every document (or piece) gets a row of its
 * own, padded: the baseline that packing is measured against.
 *
 * State: everything that decides the next batches is the stream position, the long document being cut (stream
 * position and next piece) and the set of window documents (stream position, piece). dl_packer_save writes those
 * as a few varints per document; dl_packer_restore refetches the documents and rebuilds an identical window. */
#ifndef DL_DATA_PACK_H
#define DL_DATA_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "data/batch.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What happens to a preference pair longer than a row (the numbering of data.overlong). Text documents are always
 * cut into pieces. */
typedef enum dl_pack_overlong { DL_PACK_TRUNCATE = 0, DL_PACK_DROP = 1, DL_PACK_ERROR = 2 } dl_pack_overlong;

typedef struct dl_pack_config {
    dl_data_kind kind; /* DL_DATA_TEXT or DL_DATA_PAIRS */
    int32_t rows;      /* B */
    int32_t seq_len;   /* T */
    int32_t window;    /* documents considered together (forced to 1 without packing) */
    int packing;       /* 0: one document per row */
    /* Stream positions per epoch: a whole epoch without one usable document is an error instead of an endless
     * search. 0 turns the check off. */
    uint64_t period;
    dl_pack_overlong overlong; /* pairs only */
} dl_pack_config;

/* One document, as the fetch callback hands it over. The packer copies what it keeps before the next fetch. */
typedef struct dl_pack_doc {
    int present; /* 0: nothing at this position (a skipped corrupt record); the packer moves on */
    const int32_t *tokens; /* text */
    size_t len;
    const int32_t *prompt, *chosen, *rejected; /* pairs */
    size_t prompt_len, chosen_len, rejected_len;
    uint64_t record; /* pairs: where the pair was read from (the loader's global record index) */
} dl_pack_doc;

/* Fills `doc` with the document at stream position `stream`. Called in increasing order while packing and in any
 * order while restoring. */
typedef dl_status (*dl_pack_fetch_fn)(void *ctx, uint64_t stream, dl_pack_doc *doc);

typedef struct dl_pack_stats {
    uint64_t documents;  /* usable documents (text) or pairs taken from the stream */
    uint64_t pieces;     /* pieces of text documents longer than a row (counting every piece) */
    uint64_t truncated;  /* pairs cut to fit a row */
    uint64_t dropped;    /* pairs too long for a row, left out (overlong drop) */
    uint64_t unusable;   /* empty documents and pairs with an empty side, skipped */
    uint64_t batches;
    uint64_t tokens;     /* real tokens emitted */
    uint64_t slots;      /* rows · seq_len emitted */
} dl_pack_stats;

typedef struct dl_packer dl_packer;

/* Creates a packer. Memory: window · T tokens (2T for pairs) plus per-batch bookkeeping; nothing grows later
 * except the buffer of the longest text document being cut. */
dl_status dl_packer_create(dl_packer **packer, const dl_pack_config *config);
/* Frees the packer; NULL is allowed. */
void dl_packer_destroy(dl_packer *packer);

/* Empties the window and starts at stream position `start`; positions ≥ `end` do not exist (UINT64_MAX: endless). */
void dl_packer_reset(dl_packer *packer, uint64_t start, uint64_t end);

/* Packs the next batch into `batch` (allocated with the packer's kind, rows and seq_len). *produced is 0 when the
 * stream is over and the window empty (the batch is then left empty). Errors from fetch come back unchanged. */
dl_status dl_packer_next(dl_packer *packer, dl_token_batch *batch, dl_pack_fetch_fn fetch, void *ctx,
                         int *produced);

/* The next stream position the packer will fetch. */
uint64_t dl_packer_position(const dl_packer *packer);
/* Documents in the window (pieces count one each). */
int32_t dl_packer_window_count(const dl_packer *packer);
/* Counts since the last reset or restore. */
const dl_pack_stats *dl_packer_stats(const dl_packer *packer);

/* Largest byte size dl_packer_save can write for this configuration. */
size_t dl_packer_state_max(const dl_packer *packer);
/* Writes the state (position, document being cut, window) to out[0..cap); *len gets the size. */
dl_status dl_packer_save(const dl_packer *packer, uint8_t *out, size_t cap, size_t *len);
/* Rebuilds the state written by dl_packer_save, fetching the window's documents again; `end` as in reset.
 * A malformed state fails with DL_ERR_FORMAT. *used gets the bytes consumed. */
dl_status dl_packer_restore(dl_packer *packer, const uint8_t *in, size_t len, size_t *used, uint64_t end,
                            dl_pack_fetch_fn fetch, void *ctx);

/* Varints (LEB128) shared with the loader's cursor. put returns bytes written (0 when cap is too small); get
 * returns bytes read (0 when malformed or truncated). */
size_t dl_varint_put(uint8_t *out, size_t cap, uint64_t value);
size_t dl_varint_get(const uint8_t *in, size_t len, uint64_t *value);

#ifdef __cplusplus
}
#endif

#endif
