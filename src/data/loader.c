/* loader.c — the per-rank batch producer (see loader.h for the rules it keeps).
 *
 * One function, produce(), makes the next batch into a ring slot together with the cursor and the counts as they
 * stand after that batch. Without prefetch the caller's thread runs it; with prefetch a background thread runs it
 * ahead into the ring. Because every slot carries its own cursor, the consumer's cursor is exactly the state after
 * the batch it was last given, however far ahead the thread has got.
 *
 * Ring protocol (one mutex, two condition variables): slots [head, head + count) are full, in order; the consumer
 * holds slot `head` between two calls to dl_loader_next and releases it at the start of the next call; the producer
 * fills slot (head + count) mod n while count < n. The producer writes only the slot it fills and its own state; the
 * consumer reads only full slots. Errors: the producer stores the status and message text (the error record is
 * per thread) and stops; the consumer raises it once the full slots before it are used up.
 *
 * Cursor layout (varints unless noted):
 *     "DLCURSOR" (8 bytes), version = 2,
 *     kind, world, rank, num_records, seed, seq_len, rows, packing, window, shuffle, overlong   (the fingerprint)
 *     batches handed out,
 *     token kinds: the packer state (pack.h)
 * Fields that do not matter for a kind (seq_len and window for clicks, window without packing) are stored as 0 so
 * that changing them does not invalidate a cursor. Version 1 cursors (no overlong) are still read; their overlong
 * is not checked. */
#include "data/loader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "data/pack.h"
#include "data/shard.h"

#define CURSOR_MAGIC "DLCURSOR"
enum { CURSOR_VERSION = 2, CURSOR_FINGERPRINT = 11, SKIP_LOG_LIMIT = 10, ERROR_TEXT = 2048 };

typedef struct loader_slot {
    dl_batch batch;
    uint8_t *cursor;
    size_t cursor_len;
    dl_loader_stats stats;
} loader_slot;

struct dl_loader {
    dl_loader_config cfg;
    dl_doc_source src;
    dl_shard shard;
    uint64_t per_epoch;         /* this rank's records per epoch: stream positions per epoch */
    uint64_t batches_per_epoch; /* clicks */
    uint64_t stream_end;        /* stream positions (token kinds) or batches (clicks) in the whole stream */
    dl_packer *packer;
    size_t cursor_cap;

    /* producer state (the prefetch thread, or the caller without prefetch) */
    uint64_t next_batch; /* index of the next batch to produce */
    dl_i32_array tokens;
    dl_pref_pair pair;
    dl_click_row click;
    dl_loader_stats pstats;
    uint64_t corrupt_run; /* clicks: records in a row without a usable one */
    int restoring;        /* fetches rebuild a window: not counted as records read */

    /* ring */
    int nslots;
    loader_slot *slots;
    int head, count, held;
    int threaded, thread_started, stop, done;
    pthread_mutex_t mu;
    pthread_cond_t can_consume, can_produce;
    pthread_t thread;
    dl_status error;
    char error_text[ERROR_TEXT];

    /* consumer view */
    uint8_t *cursor; /* after the last batch handed out */
    size_t cursor_len;
    dl_loader_stats stats;
    dl_batch empty;
    uint64_t consumer_next; /* index of the next batch handed out */
};

void dl_loader_config_default(dl_loader_config *c) {
    memset(c, 0, sizeof *c);
    c->kind = DL_DATA_TEXT;
    c->batch_rows = 8;
    c->seq_len = 512;
    c->packing = 1;
    c->pack_window = 256;
    c->shuffle = 1;
    c->seed = 0;
    c->world = 1;
    c->rank = 0;
    c->epochs = 0;
    c->prefetch = 4;
    c->skip_corrupt = 0;
    c->overlong = DL_PACK_TRUNCATE;
}

/* ---- fingerprint and cursor -------------------------------------------------------------------------------------- */

static void fingerprint(const dl_loader_config *c, uint64_t num_records, uint64_t out[CURSOR_FINGERPRINT]) {
    int tokens = c->kind != DL_DATA_CLICKS;
    out[0] = (uint64_t)c->kind;
    out[1] = c->world;
    out[2] = c->rank;
    out[3] = num_records;
    out[4] = c->seed;
    out[5] = tokens ? (uint64_t)c->seq_len : 0;
    out[6] = (uint64_t)c->batch_rows;
    out[7] = tokens ? (uint64_t)(c->packing != 0) : 0;
    out[8] = tokens && c->packing ? (uint64_t)c->pack_window : 0;
    out[9] = (uint64_t)(c->shuffle != 0);
    out[10] = tokens ? (uint64_t)c->overlong : 0;
}

/* A fingerprint field an older cursor version did not record: not checked. */
#define NOT_RECORDED UINT64_MAX

static const char *const fingerprint_names[CURSOR_FINGERPRINT] = {
    "data kind", "world size", "rank", "record count", "run.seed", "data.seq_len", "train.batch_per_rank",
    "data.packing", "data.pack_window", "shuffle", "data.overlong"};

/* Writes the cursor after the current producer state into out (cap bytes). */
static dl_status cursor_encode(const dl_loader *l, uint8_t *out, size_t cap, size_t *len) {
    if (cap < 8)
        return DL_FAIL(DL_ERR_INVALID, "cursor buffer of %zu bytes is too small", cap);
    memcpy(out, CURSOR_MAGIC, 8);
    size_t n = 8, w;
    uint64_t fp[CURSOR_FINGERPRINT];
    fingerprint(&l->cfg, l->src.num_records, fp);
    uint64_t head[CURSOR_FINGERPRINT + 2];
    head[0] = CURSOR_VERSION;
    memcpy(head + 1, fp, sizeof fp);
    head[CURSOR_FINGERPRINT + 1] = l->next_batch;
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++) {
        w = dl_varint_put(out + n, cap - n, head[i]);
        if (!w)
            return DL_FAIL(DL_ERR_INVALID, "cursor buffer of %zu bytes is too small", cap);
        n += w;
    }
    if (l->packer) {
        DL_CHECK(dl_packer_save(l->packer, out + n, cap - n, &w));
        n += w;
    }
    *len = n;
    return DL_OK;
}

/* Parses the cursor header; *rest gets the offset of the kind-specific part. */
static dl_status cursor_header(const uint8_t *in, size_t len, uint64_t fp[CURSOR_FINGERPRINT], uint64_t *batches,
                               size_t *rest) {
    if (len < 8 || memcmp(in, CURSOR_MAGIC, 8) != 0)
        return DL_FAIL(DL_ERR_FORMAT, "data cursor: not a dealer data cursor (%zu bytes, bad magic)", len);
    size_t n = 8, r;
    uint64_t version;
    r = dl_varint_get(in + n, len - n, &version);
    if (!r)
        return DL_FAIL(DL_ERR_FORMAT, "data cursor: truncated at byte %zu", n);
    n += r;
    if (version != 1 && version != CURSOR_VERSION)
        return DL_FAIL(DL_ERR_FORMAT, "data cursor: version %llu, this dealer reads versions 1 and %d",
                       (unsigned long long)version, CURSOR_VERSION);
    int recorded = version == 1 ? CURSOR_FINGERPRINT - 1 : CURSOR_FINGERPRINT;
    for (int i = 0; i < CURSOR_FINGERPRINT; i++)
        fp[i] = NOT_RECORDED;
    for (int i = 0; i < recorded + 1; i++) {
        uint64_t v;
        r = dl_varint_get(in + n, len - n, &v);
        if (!r)
            return DL_FAIL(DL_ERR_FORMAT, "data cursor: truncated at byte %zu", n);
        n += r;
        if (i < recorded)
            fp[i] = v;
        else
            *batches = v;
    }
    if (fp[0] > DL_DATA_PAIRS)
        return DL_FAIL(DL_ERR_FORMAT, "data cursor: unknown data kind %llu", (unsigned long long)fp[0]);
    *rest = n;
    return DL_OK;
}

dl_status dl_cursor_info_get(const uint8_t *cursor, size_t len, dl_cursor_info *info) {
    DL_REQUIRE(cursor && info, DL_ERR_INVALID, "dl_cursor_info_get: NULL argument");
    uint64_t fp[CURSOR_FINGERPRINT], batches = 0;
    size_t rest;
    DL_CHECK(cursor_header(cursor, len, fp, &batches, &rest));
    if (fp[1] == 0 || fp[1] > UINT32_MAX || fp[2] >= fp[1] || fp[3] < fp[1])
        return DL_FAIL(DL_ERR_FORMAT, "data cursor: rank %llu of %llu over %llu records is impossible",
                       (unsigned long long)fp[2], (unsigned long long)fp[1], (unsigned long long)fp[3]);
    memset(info, 0, sizeof *info);
    info->kind = (dl_data_kind)fp[0];
    info->world = (uint32_t)fp[1];
    info->rank = (uint32_t)fp[2];
    info->num_records = fp[3];
    info->seed = fp[4];
    info->batches = batches;
    if (info->kind == DL_DATA_CLICKS) {
        uint64_t most = dl_shard_count_for(fp[3], (uint32_t)fp[1], 0);
        uint64_t per = fp[6] ? (most + fp[6] - 1) / fp[6] : 0;
        info->epoch = per ? batches / per : 0;
    } else {
        uint64_t position;
        if (!dl_varint_get(cursor + rest, len - rest, &position))
            return DL_FAIL(DL_ERR_FORMAT, "data cursor: truncated packer state");
        info->epoch = position / dl_shard_count_for(fp[3], (uint32_t)fp[1], (uint32_t)fp[2]);
    }
    return DL_OK;
}

/* ---- reading documents ------------------------------------------------------------------------------------------- */

/* Handles a failed read of `record`: skipped (DL_OK, *skipped = 1) when it is corrupt and skipping is on, else the
 * error with the rank's position prepended. */
static dl_status read_failed(dl_loader *l, dl_status status, uint64_t epoch, uint64_t position, uint64_t record,
                             int *skipped) {
    if (status == DL_ERR_FORMAT && l->cfg.skip_corrupt > 0 && !l->restoring &&
        l->pstats.skipped < (uint64_t)l->cfg.skip_corrupt) {
        l->pstats.skipped++;
        if (l->pstats.skipped <= SKIP_LOG_LIMIT)
            DL_WARN("skipping corrupt record (data.skip_corrupt): %s%s", dl_error_message(),
                    l->pstats.skipped == SKIP_LOG_LIMIT ? " [further skips are counted, not logged]" : "");
        dl_error_clear();
        *skipped = 1;
        return DL_OK;
    }
    dl_error_context("data rank %u, epoch %llu, position %llu (global record %llu)", l->cfg.rank,
                     (unsigned long long)epoch, (unsigned long long)position, (unsigned long long)record);
    if (status == DL_ERR_FORMAT && l->cfg.skip_corrupt == 0)
        dl_error_hint("fix or regenerate the file, or set data.skip_corrupt to how many damaged records may be "
                      "skipped (e.g. data.skip_corrupt=10)");
    else if (status == DL_ERR_FORMAT && !l->restoring)
        dl_error_hint("this rank already skipped data.skip_corrupt = %d damaged records: fix or regenerate the "
                      "file, or raise data.skip_corrupt", l->cfg.skip_corrupt);
    return status;
}

/* The packer's fetch: stream position → (epoch, position) → record → decoded document. */
static dl_status fetch_doc(void *ctx, uint64_t stream, dl_pack_doc *doc) {
    dl_loader *l = ctx;
    uint64_t epoch = stream / l->per_epoch, position = stream % l->per_epoch;
    uint64_t record = dl_shard_record(&l->shard, epoch, position);
    if (!l->restoring)
        l->pstats.records++;
    dl_status s;
    if (l->cfg.kind == DL_DATA_PAIRS)
        s = l->src.read_pair(l->src.ctx, record, &l->pair);
    else
        s = l->src.read_tokens(l->src.ctx, record, &l->tokens);
    if (s != DL_OK) {
        int skipped = 0;
        DL_CHECK(read_failed(l, s, epoch, position, record, &skipped));
        doc->present = 0;
        return DL_OK;
    }
    doc->present = 1;
    if (l->cfg.kind == DL_DATA_PAIRS) {
        doc->prompt = l->pair.prompt.data;
        doc->prompt_len = l->pair.prompt.len;
        doc->chosen = l->pair.chosen.data;
        doc->chosen_len = l->pair.chosen.len;
        doc->rejected = l->pair.rejected.data;
        doc->rejected_len = l->pair.rejected.len;
        doc->record = record;
    } else {
        doc->tokens = l->tokens.data;
        doc->len = l->tokens.len;
    }
    return DL_OK;
}

/* ---- producing batches ------------------------------------------------------------------------------------------- */

/* Fills batch `index` of the click stream: slice positions [j·B, min((j + 1)·B, count)) of epoch index / S. */
static dl_status produce_clicks(dl_loader *l, dl_batch *batch, uint64_t index) {
    dl_click_batch *c = &batch->clicks;
    uint64_t epoch = index / l->batches_per_epoch, j = index % l->batches_per_epoch;
    uint64_t from = j * (uint64_t)l->cfg.batch_rows, to = from + (uint64_t)l->cfg.batch_rows;
    if (to > l->per_epoch)
        to = l->per_epoch;
    c->num_rows = 0;
    c->nnz = 0;
    c->row_ptr[0] = 0;
    /* In a shuffled order each record (its index entry, then its bytes) is a cache miss: the records AHEAD and
     * 2·AHEAD positions on are asked for while this one decodes (their numbers kept in a ring, computed once). */
    enum { AHEAD = 8, RING = 2 * AHEAD + 1 };
    uint64_t ring[RING];
    const int hint = l->src.prefetch != NULL;
    for (uint64_t q = from; hint && q < to && q < from + 2 * AHEAD; q++) {
        ring[q % RING] = dl_shard_record(&l->shard, epoch, q);
        l->src.prefetch(l->src.ctx, ring[q % RING], 0);
    }
    for (uint64_t p = from; p < to; p++) {
        uint64_t record = hint ? ring[p % RING] : dl_shard_record(&l->shard, epoch, p);
        if (hint && p + 2 * AHEAD < to) {
            uint64_t far = p + 2 * AHEAD;
            ring[far % RING] = dl_shard_record(&l->shard, epoch, far);
            l->src.prefetch(l->src.ctx, ring[far % RING], 0);
        }
        if (hint && p + AHEAD < to)
            l->src.prefetch(l->src.ctx, ring[(p + AHEAD) % RING], 1);
        l->pstats.records++;
        dl_status s = l->src.read_click(l->src.ctx, record, &l->click);
        if (s != DL_OK) {
            int skipped = 0;
            DL_CHECK(read_failed(l, s, epoch, p, record, &skipped));
            if (++l->corrupt_run >= l->per_epoch) {
                s = DL_FAIL(DL_ERR_FORMAT, "rank %u: all %llu records of an epoch in a row were corrupt and skipped",
                            l->cfg.rank, (unsigned long long)l->corrupt_run);
                dl_error_hint("the data is not click rows or is damaged throughout: check it with dealer data stat");
                return s;
            }
            continue;
        }
        l->corrupt_run = 0;
        size_t n = l->click.feature.len;
        DL_CHECK(dl_click_batch_reserve(c, c->nnz + (int64_t)n));
        memcpy(c->features + c->nnz, l->click.feature.data, n * sizeof(int32_t));
        memcpy(c->fields + c->nnz, l->click.field.data, n * sizeof(int32_t));
        memcpy(c->values + c->nnz, l->click.value.data, n * sizeof(float));
        c->nnz += (int64_t)n;
        c->labels[c->num_rows] = l->click.label;
        c->row_ptr[++c->num_rows] = (int32_t)c->nnz;
    }
    l->pstats.rows += (uint64_t)c->num_rows;
    batch->epoch = (index + 1) / l->batches_per_epoch;
    return DL_OK;
}

/* Makes the next batch into `slot` with the cursor after it. *eos = 1 (and nothing made) when the stream is over. */
static dl_status produce(dl_loader *l, loader_slot *slot, int *eos) {
    dl_batch *batch = &slot->batch;
    *eos = 0;
    batch->end_of_data = 0;
    batch->index = l->next_batch;
    if (l->cfg.kind == DL_DATA_CLICKS) {
        if (l->next_batch >= l->stream_end) {
            *eos = 1;
            return DL_OK;
        }
        DL_CHECK(produce_clicks(l, batch, l->next_batch));
    } else {
        int produced = 0;
        dl_status s = dl_packer_next(l->packer, &batch->tokens, fetch_doc, l, &produced);
        if (s != DL_OK)
            return s;
        if (!produced) {
            *eos = 1;
            return DL_OK;
        }
        const dl_pack_stats *ps = dl_packer_stats(l->packer);
        l->pstats.tokens += (uint64_t)batch->tokens.num_tokens;
        l->pstats.slots += (uint64_t)batch->tokens.rows * (uint64_t)batch->tokens.seq_len;
        l->pstats.unusable = ps->unusable;
        l->pstats.truncated = ps->truncated;
        l->pstats.dropped = ps->dropped;
        batch->epoch = dl_packer_position(l->packer) / l->per_epoch;
    }
    l->next_batch++;
    l->pstats.batches = l->next_batch;
    slot->stats = l->pstats;
    return cursor_encode(l, slot->cursor, l->cursor_cap, &slot->cursor_len);
}

static void record_error(dl_loader *l, dl_status status) {
    l->error = status;
    snprintf(l->error_text, sizeof l->error_text, "%s", dl_error_message());
}

static void *producer_main(void *arg) {
    dl_loader *l = arg;
    for (;;) {
        pthread_mutex_lock(&l->mu);
        while (l->count == l->nslots && !l->stop)
            pthread_cond_wait(&l->can_produce, &l->mu);
        if (l->stop) {
            pthread_mutex_unlock(&l->mu);
            return NULL;
        }
        loader_slot *slot = &l->slots[(l->head + l->count) % l->nslots];
        pthread_mutex_unlock(&l->mu);

        int eos = 0;
        dl_status s = produce(l, slot, &eos);

        pthread_mutex_lock(&l->mu);
        if (s != DL_OK)
            record_error(l, s);
        else if (eos)
            l->done = 1;
        else
            l->count++;
        int finished = s != DL_OK || eos;
        pthread_cond_signal(&l->can_consume);
        pthread_mutex_unlock(&l->mu);
        if (finished)
            return NULL;
    }
}

/* ---- the consumer ------------------------------------------------------------------------------------------------ */

static void adopt(dl_loader *l, loader_slot *slot) {
    memcpy(l->cursor, slot->cursor, slot->cursor_len);
    l->cursor_len = slot->cursor_len;
    l->stats = slot->stats;
    l->consumer_next = slot->batch.index + 1;
}

static const dl_batch *end_batch(dl_loader *l) {
    dl_batch_clear(&l->empty);
    l->empty.end_of_data = 1;
    l->empty.index = l->consumer_next++;
    l->empty.epoch = l->cfg.epochs;
    l->stats.batches++;
    return &l->empty;
}

dl_status dl_loader_next(dl_loader *l, const dl_batch **batch) {
    DL_REQUIRE(l && batch, DL_ERR_INVALID, "dl_loader_next: NULL argument");
    *batch = NULL;
    if (!l->threaded) {
        if (l->error != DL_OK)
            return DL_FAIL(l->error, "%s", l->error_text);
        if (l->done) {
            *batch = end_batch(l);
            return DL_OK;
        }
        int eos = 0;
        dl_status s = produce(l, &l->slots[0], &eos);
        if (s != DL_OK) {
            record_error(l, s);
            return s;
        }
        if (eos) {
            l->done = 1;
            *batch = end_batch(l);
            return DL_OK;
        }
        adopt(l, &l->slots[0]);
        *batch = &l->slots[0].batch;
        return DL_OK;
    }
    pthread_mutex_lock(&l->mu);
    if (l->held) {
        l->head = (l->head + 1) % l->nslots;
        l->count--;
        l->held = 0;
        pthread_cond_signal(&l->can_produce);
    }
    while (l->count == 0 && !l->done && l->error == DL_OK)
        pthread_cond_wait(&l->can_consume, &l->mu);
    if (l->count > 0) {
        loader_slot *slot = &l->slots[l->head];
        l->held = 1;
        pthread_mutex_unlock(&l->mu);
        adopt(l, slot);
        *batch = &slot->batch;
        return DL_OK;
    }
    dl_status error = l->error;
    pthread_mutex_unlock(&l->mu);
    if (error != DL_OK)
        return DL_FAIL(error, "%s", l->error_text);
    *batch = end_batch(l);
    return DL_OK;
}

void dl_loader_cursor(const dl_loader *l, const uint8_t **bytes, size_t *len) {
    *bytes = l->cursor;
    *len = l->cursor_len;
}

void dl_loader_stats_get(const dl_loader *l, dl_loader_stats *stats) { *stats = l->stats; }

uint64_t dl_loader_batches_per_epoch(const dl_loader *l) {
    return l && l->cfg.kind == DL_DATA_CLICKS ? l->batches_per_epoch : 0;
}

/* ---- open and close ---------------------------------------------------------------------------------------------- */

void dl_loader_close(dl_loader *l) {
    if (!l)
        return;
    if (l->thread_started) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->can_produce);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
    }
    if (l->threaded) {
        pthread_cond_destroy(&l->can_consume);
        pthread_cond_destroy(&l->can_produce);
        pthread_mutex_destroy(&l->mu);
    }
    for (int i = 0; i < l->nslots && l->slots; i++) {
        dl_batch_free(&l->slots[i].batch);
        free(l->slots[i].cursor);
    }
    free(l->slots);
    dl_batch_free(&l->empty);
    free(l->cursor);
    dl_packer_destroy(l->packer);
    dl_i32_array_free(&l->tokens);
    dl_pref_pair_free(&l->pair);
    dl_click_row_free(&l->click);
    free(l);
}

static dl_status check_config(const dl_doc_source *src, const dl_loader_config *c) {
    DL_REQUIRE(c->kind == DL_DATA_TEXT || c->kind == DL_DATA_CLICKS || c->kind == DL_DATA_PAIRS, DL_ERR_INVALID,
               "unknown data kind %d", (int)c->kind);
    DL_REQUIRE(c->batch_rows > 0, DL_ERR_INVALID, "train.batch_per_rank must be positive, got %d",
               (int)c->batch_rows);
    DL_REQUIRE(c->prefetch >= 0 && c->prefetch <= 1024, DL_ERR_INVALID, "prefetch must be in [0, 1024], got %d",
               (int)c->prefetch);
    int have = c->kind == DL_DATA_TEXT ? src->read_tokens != NULL
               : c->kind == DL_DATA_PAIRS ? src->read_pair != NULL
                                          : src->read_click != NULL;
    DL_REQUIRE(have, DL_ERR_INVALID, "the document source %s cannot read %s records", src->name ? src->name : "",
               dl_data_kind_name(c->kind));
    if (c->kind == DL_DATA_PAIRS && (c->overlong < DL_PACK_TRUNCATE || c->overlong > DL_PACK_ERROR)) {
        dl_status s = DL_FAIL(DL_ERR_INVALID, "data.overlong must be truncate, drop or error for preference pairs");
        dl_error_hint("a pair is never split into pieces: that would change the log-probs the loss compares");
        return s;
    }
    return DL_OK;
}

dl_status dl_loader_open(dl_loader **loader, const dl_doc_source *src, const dl_loader_config *cfg,
                         const uint8_t *cursor, size_t cursor_len) {
    DL_REQUIRE(loader && src && cfg, DL_ERR_INVALID, "dl_loader_open: NULL argument");
    *loader = NULL;
    DL_CHECK(check_config(src, cfg));
    const char *name = src->name && src->name[0] ? src->name : "the data";
    if (src->num_records == 0) {
        dl_status s = DL_FAIL(DL_ERR_INVALID, "dataset %s has no records", name);
        dl_error_hint("convert some data into it first (dealer data convert), or use another record file");
        return s;
    }
    dl_loader *l = calloc(1, sizeof *l);
    if (!l)
        return DL_FAIL(DL_ERR_NOMEM, "allocating a data loader");
    l->cfg = *cfg;
    l->src = *src;
    l->error = DL_OK;
    dl_status s = dl_shard_init(&l->shard, src->num_records, cfg->world, cfg->rank, cfg->seed, cfg->shuffle);
    if (s != DL_OK) {
        dl_error_context("dataset %s", name);
        free(l);
        return s;
    }
    l->per_epoch = l->shard.count;
    if (cfg->kind == DL_DATA_CLICKS) {
        l->batches_per_epoch = dl_shard_batches_per_epoch(&l->shard, (uint32_t)cfg->batch_rows);
        l->stream_end = cfg->epochs && cfg->epochs <= UINT64_MAX / l->batches_per_epoch
                            ? cfg->epochs * l->batches_per_epoch
                            : UINT64_MAX;
        l->cursor_cap = 128;
    } else {
        dl_pack_config pc = {.kind = cfg->kind,
                             .rows = cfg->batch_rows,
                             .seq_len = cfg->seq_len,
                             .window = cfg->pack_window,
                             .packing = cfg->packing,
                             .period = l->per_epoch,
                             .overlong = (dl_pack_overlong)cfg->overlong};
        s = dl_packer_create(&l->packer, &pc);
        if (s != DL_OK) {
            free(l);
            return s;
        }
        l->stream_end = cfg->epochs && cfg->epochs <= UINT64_MAX / l->per_epoch ? cfg->epochs * l->per_epoch
                                                                                 : UINT64_MAX;
        dl_packer_reset(l->packer, 0, l->stream_end);
        l->cursor_cap = 128 + dl_packer_state_max(l->packer);
    }
    l->threaded = cfg->prefetch > 0;
    l->nslots = l->threaded ? cfg->prefetch + 1 : 1;
    l->slots = calloc((size_t)l->nslots, sizeof *l->slots);
    l->cursor = malloc(l->cursor_cap);
    s = l->slots && l->cursor ? DL_OK : DL_FAIL(DL_ERR_NOMEM, "allocating the loader's ring");
    for (int i = 0; s == DL_OK && i < l->nslots; i++) {
        s = dl_batch_alloc(&l->slots[i].batch, cfg->kind, cfg->batch_rows, cfg->seq_len);
        if (s == DL_OK && !(l->slots[i].cursor = malloc(l->cursor_cap)))
            s = DL_FAIL(DL_ERR_NOMEM, "allocating the loader's ring");
    }
    if (s == DL_OK)
        s = dl_batch_alloc(&l->empty, cfg->kind, cfg->batch_rows, cfg->seq_len);
    if (s == DL_OK && l->threaded) {
        pthread_mutex_init(&l->mu, NULL);
        pthread_cond_init(&l->can_consume, NULL);
        pthread_cond_init(&l->can_produce, NULL);
    }
    if (s != DL_OK) {
        l->threaded = 0;
        dl_loader_close(l);
        return s;
    }

    if (cursor) {
        uint64_t fp[CURSOR_FINGERPRINT], want[CURSOR_FINGERPRINT], batches = 0;
        size_t rest = 0;
        s = cursor_header(cursor, cursor_len, fp, &batches, &rest);
        fingerprint(cfg, src->num_records, want);
        for (int i = 0; s == DL_OK && i < CURSOR_FINGERPRINT; i++)
            if (fp[i] != want[i] && fp[i] != NOT_RECORDED) {
                s = DL_FAIL(DL_ERR_INVALID, "the data cursor was saved with %s %llu, this run has %llu",
                            fingerprint_names[i], (unsigned long long)fp[i], (unsigned long long)want[i]);
                dl_error_hint("resume with the settings and data of the saved run, or start the data afresh");
            }
        if (s == DL_OK) {
            l->next_batch = batches;
            if (l->packer) {
                size_t used = 0;
                l->restoring = 1;
                s = dl_packer_restore(l->packer, cursor + rest, cursor_len - rest, &used, l->stream_end, fetch_doc,
                                      l);
                l->restoring = 0;
                rest += used;
            }
            if (s == DL_OK && rest != cursor_len)
                s = DL_FAIL(DL_ERR_FORMAT, "data cursor: %zu stray bytes after its end", cursor_len - rest);
        }
        if (s != DL_OK) {
            dl_error_context("restoring the data cursor of %s", name);
            dl_loader_close(l);
            return s;
        }
    }
    l->consumer_next = l->next_batch;
    l->stats.batches = l->next_batch;
    l->pstats.batches = l->next_batch;
    s = cursor_encode(l, l->cursor, l->cursor_cap, &l->cursor_len);
    if (s == DL_OK && l->threaded) {
        if (pthread_create(&l->thread, NULL, producer_main, l) != 0)
            s = DL_FAIL(DL_ERR_RUNTIME, "cannot start the data prefetch thread");
        else
            l->thread_started = 1;
    }
    if (s != DL_OK) {
        dl_loader_close(l);
        return s;
    }
    *loader = l;
    return DL_OK;
}

dl_status dl_loader_count_batches(const dl_doc_source *src, const dl_loader_config *cfg, uint64_t *batches) {
    DL_REQUIRE(src && cfg && batches, DL_ERR_INVALID, "dl_loader_count_batches: NULL argument");
    DL_REQUIRE(cfg->epochs > 0, DL_ERR_INVALID, "counting batches needs a finite number of epochs");
    *batches = 0;
    dl_loader_config dry = *cfg;
    dry.prefetch = 0;
    dl_loader *l;
    DL_CHECK(dl_loader_open(&l, src, &dry, NULL, 0));
    if (cfg->kind == DL_DATA_CLICKS) {
        *batches = l->stream_end;
        dl_loader_close(l);
        return DL_OK;
    }
    /* Only the packer runs: no batch is kept, but its documents are decoded to learn their lengths. */
    for (;;) {
        const dl_batch *b;
        dl_status s = dl_loader_next(l, &b);
        if (s != DL_OK) {
            dl_loader_close(l);
            return s;
        }
        if (b->end_of_data)
            break;
        (*batches)++;
    }
    dl_loader_close(l);
    return DL_OK;
}
