/* loader.h — the per-rank batch producer: shard, decode, pack, prefetch, and a cursor to resume exactly.
 *
 *     dl_loader_config cfg;
 *     dl_loader_config_default(&cfg);
 *     cfg.kind = DL_DATA_TEXT; cfg.batch_rows = 8; cfg.seq_len = 512;
 *     cfg.seed = run_seed; cfg.world = world; cfg.rank = rank;
 *     dl_doc_source src;
 *     dl_dataset_source(dataset, &src);
 *     DL_CHECK(dl_loader_open(&loader, &src, &cfg, saved_cursor, saved_len));   // NULL, 0: from the start
 *     for (step ...) {
 *         const dl_batch *batch;
 *         DL_CHECK(dl_loader_next(loader, &batch));     // valid until the next call
 *         ... train on batch ...
 *         if (checkpoint) dl_loader_cursor(loader, &bytes, &len);   // state after `batch`
 *     }
 *     dl_loader_close(loader);
 *
 * This rank's documents form one stream: its shard of epoch 0 (shard.h), then its shard of epoch 1, and so on, up to
 * cfg.epochs epochs (0: for ever). Stream position s is position s mod c of epoch s div c, c = this rank's records
 * per epoch.
 *
 * Steps and tails (every rank must run the same number of steps, or one waits in a collective for ever):
 *   - clicks: every epoch has exactly ceil(ceil(n / W) / B) batches on every rank (dl_loader_batches_per_epoch);
 *     a rank with fewer records ends the epoch with a partial batch, or an empty one (num_rows 0). Batches never
 *     mix epochs. Nothing is dropped, nothing repeated.
 *   - text and pairs: packing continues across epoch boundaries (the window is never flushed mid-run), so the number
 *     of batches depends on document lengths. When the stream ends (cfg.epochs reached) the window is drained and
 *     every later call returns an empty batch with end_of_data = 1: zero tokens, zero weight. The trainer takes as
 *     step count the largest batch count over ranks (dl_loader_count_batches on each rank, one MPI max-reduce),
 *     or runs a fixed train.steps with cfg.epochs = 0 (an endless stream never runs dry).
 * Empty batches keep every buffer valid and all-padding, so a rank just contributes zero tokens to the step.
 *
 * Prefetch: with cfg.prefetch = K > 0 a background thread decodes and packs up to K batches ahead into a ring of
 * K + 1 preallocated batches (one is held by the consumer). No allocation per step once running (the click entry
 * arrays and a long document's buffer grow to their high-water marks, then stay). The consumer blocks only when
 * the ring is empty. An error in the thread (a corrupt record, a decode failure) stops it; the batches made before
 * the error are still handed out, then dl_loader_next returns the error with its message (file, record, byte
 * offset). With cfg.skip_corrupt, records that fail with DL_ERR_FORMAT are skipped, logged (the first ten) and
 * counted (dl_loader_stats); a whole epoch of unusable records is still an error.
 *
 * Cursor: a byte string (a few varints, about 2-4 bytes per window document) holding the run's fingerprint (kind,
 * world, rank, record count, seed, shape), the number of batches handed out and, for token batches, the packer's
 * state (pack.h). Opening a loader with it yields exactly the batches an uninterrupted run would have produced
 * next; a cursor from another configuration fails with DL_ERR_INVALID naming the field that differs. */
#ifndef DL_DATA_LOADER_H
#define DL_DATA_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "data/batch.h"
#include "data/dataset.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_loader_config {
    dl_data_kind kind;
    int32_t batch_rows;  /* B: rows per batch (train.batch_per_rank) */
    int32_t seq_len;     /* T: tokens per row (data.seq_len); unused for clicks */
    int packing;         /* data.packing: 0 = one document per row */
    int32_t pack_window; /* data.pack_window: documents considered together when packing */
    int shuffle;         /* 0: read records in order every epoch (evaluation) */
    uint64_t seed;       /* run.seed: the shuffle's Philox key */
    uint32_t world;      /* W */
    uint32_t rank;       /* r */
    uint64_t epochs;     /* epochs in the stream; 0: endless */
    int32_t prefetch;    /* batches prepared ahead by the background thread; 0: none, no thread */
    int skip_corrupt;    /* data.skip_corrupt */
    int overlong;        /* data.overlong for pairs longer than a row: truncate, drop, error (dl_pack_overlong) */
} dl_loader_config;

/* Text, B 8, T 512, packing on, window 256, shuffled, seed 0, world 1, rank 0, endless, prefetch 4, no skipping,
 * overlong pairs truncated. */
void dl_loader_config_default(dl_loader_config *config);

typedef struct dl_loader_stats {
    uint64_t batches;  /* batches handed out (empty end-of-data batches included) */
    uint64_t records;  /* records read from the stream */
    uint64_t skipped;  /* corrupt records skipped (data.skip_corrupt) */
    uint64_t unusable; /* empty documents / pairs with an empty side, left out */
    uint64_t truncated; /* pairs cut to fit a row (data.overlong truncate) */
    uint64_t dropped;   /* pairs too long for a row, left out (data.overlong drop) */
    uint64_t tokens;   /* real tokens handed out (token batches) */
    uint64_t slots;    /* rows · seq_len handed out (token batches): tokens / slots is the packing efficiency */
    uint64_t rows;     /* click rows handed out */
} dl_loader_stats;

typedef struct dl_loader dl_loader;

/* Opens a loader over `source`, which must outlive it. With prefetch the source is called from the loader's thread,
 * so a source shared with other users must be thread-safe (a dataset's is: record reads are). `cursor` (len bytes)
 * resumes where dl_loader_cursor said; NULL starts at the beginning. Fails with DL_ERR_INVALID when the
 * data has fewer records than ranks, or the config or cursor is bad. */
dl_status dl_loader_open(dl_loader **loader, const dl_doc_source *source, const dl_loader_config *config,
                         const uint8_t *cursor, size_t cursor_len);
/* Stops the prefetch thread and frees everything. NULL is allowed. */
void dl_loader_close(dl_loader *loader);

/* The next batch; *batch stays valid until the next call or close. After the stream ends, empty batches with
 * end_of_data = 1. After an error, every call returns that error. */
dl_status dl_loader_next(dl_loader *loader, const dl_batch **batch);

/* The cursor after the last batch dl_loader_next returned (before the first: the starting point). *bytes stays
 * valid until the next dl_loader_next. */
void dl_loader_cursor(const dl_loader *loader, const uint8_t **bytes, size_t *len);

/* Counts as of the last batch handed out. */
void dl_loader_stats_get(const dl_loader *loader, dl_loader_stats *stats);

/* Clicks: batches per epoch, the same on every rank. Token kinds: 0 (it depends on the data; see
 * dl_loader_count_batches). */
uint64_t dl_loader_batches_per_epoch(const dl_loader *loader);

/* The number of non-empty batches this rank's stream holds for config->epochs (> 0) epochs. Clicks: computed,
 * equal on every rank. Token kinds: a dry run of the packer over this rank's shard (reads every record of it once
 * per epoch; no prefetch thread); ranks differ slightly, and the trainer takes the maximum. */
dl_status dl_loader_count_batches(const dl_doc_source *source, const dl_loader_config *config, uint64_t *batches);

/* What a cursor says, without a loader: for a resume on a different world size, or for `dealer ckpt show`. */
typedef struct dl_cursor_info {
    dl_data_kind kind;
    uint32_t world, rank;
    uint64_t num_records;
    uint64_t seed;
    uint64_t batches; /* batches handed out before it */
    uint64_t epoch;   /* epoch the stream is in */
} dl_cursor_info;
dl_status dl_cursor_info_get(const uint8_t *cursor, size_t len, dl_cursor_info *info);

#ifdef __cplusplus
}
#endif

#endif
