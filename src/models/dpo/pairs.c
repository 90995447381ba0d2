/* pairs.c — the DPO computation on pair batches: per-document log-probs of the policy (and of the reference model or
 * table), the pair head, and the backward chain into the policy's weighted token backward (see dpo.h).
 *
 * Per-pair work is tiny next to the GPT (a few floats per pair against a forward over every token), so the pair
 * arrays are gathered on the host: document sums come back from the device, are matched to pairs through the
 * batch's pair_chosen / pair_rejected, and go to the device again only for the loss ops. That keeps one code path
 * for every backend at the cost of a few kilobytes copied per step. */
#include "models/dpo/dpo_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "data/pack.h"

/* ---- the DPO model --------------------------------------------------------------------------------------------- */


dl_status dl_dpo_create(dl_dpo **out, const dl_gpt_config *config, const dl_dpo_settings *settings,
                        const dl_backend *be, int max_tokens, int reference_model) {
    DL_REQUIRE(out && config && settings && be, DL_ERR_INVALID, "dl_dpo_create: NULL argument");
    DL_REQUIRE(max_tokens >= 2, DL_ERR_INVALID, "dl_dpo_create: max_tokens must be at least 2, got %d", max_tokens);
    *out = NULL;
    DL_CHECK(dl_dpo_settings_check(settings));
    dl_dpo *d = calloc(1, sizeof *d);
    DL_REQUIRE(d != NULL, DL_ERR_NOMEM, "cannot allocate the DPO model");
    d->config = *config;
    d->settings = *settings;
    d->be = be;
    d->max_tokens = max_tokens;
    d->max_seqs = max_tokens;
    d->max_pairs = max_tokens / 2 + 1;
    size_t S = (size_t)d->max_seqs, P = (size_t)d->max_pairs, N = (size_t)max_tokens;
    dl_status s = dl_gpt_create(&d->policy, config, be, max_tokens, d->max_seqs);
    if (s == DL_OK && reference_model) {
        /* Forward only: keeping one block's activations at a time is the least memory, at no extra compute. */
        dl_gpt_config rc = *config;
        rc.checkpoint_every = 1;
        s = dl_gpt_create(&d->reference, &rc, be, max_tokens, d->max_seqs);
    }
    if (s == DL_OK)
        s = dl_dpo_head_create(&d->head, settings, be, d->max_pairs);
    if (s == DL_OK)
        s = dl_mem_alloc(be, (void **)&d->cu_dev, (S + 1) * sizeof(int32_t));
    if (s == DL_OK)
        s = dl_mem_alloc(be, (void **)&d->seq_dev, S * sizeof(float));
    if (s == DL_OK)
        s = dl_mem_alloc(be, (void **)&d->dseq_dev, S * sizeof(float));
    if (s == DL_OK)
        s = dl_mem_alloc(be, (void **)&d->dtok_dev, N * sizeof(float));
    if (s == DL_OK) {
        d->seq_host = malloc(S * sizeof(float));
        d->dseq_host = malloc(S * sizeof(float));
        d->pc = malloc(6 * P * sizeof(float));
        if (!d->seq_host || !d->dseq_host || !d->pc)
            s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate the DPO model's pair buffers");
    }
    if (s != DL_OK) {
        dl_dpo_destroy(d);
        return s;
    }
    d->pr = d->pc + P;
    d->rc = d->pc + 2 * P;
    d->rr = d->pc + 3 * P;
    d->dpc = d->pc + 4 * P;
    d->dpr = d->pc + 5 * P;
    *out = d;
    return DL_OK;
}

void dl_dpo_destroy(dl_dpo *d) {
    if (!d)
        return;
    dl_gpt_destroy(d->policy);
    dl_gpt_destroy(d->reference);
    dl_dpo_head_destroy(d->head);
    dl_dpo_table_free(&d->train_table);
    dl_dpo_table_free(&d->valid_table);
    if (d->cu_dev)
        dl_mem_free(d->be, d->cu_dev);
    if (d->seq_dev)
        dl_mem_free(d->be, d->seq_dev);
    if (d->dseq_dev)
        dl_mem_free(d->be, d->dseq_dev);
    if (d->dtok_dev)
        dl_mem_free(d->be, d->dtok_dev);
    free(d->seq_host);
    free(d->dseq_host);
    free(d->pc);
    free(d);
}

dl_gpt *dl_dpo_policy(dl_dpo *d) { return d ? d->policy : NULL; }
dl_gpt *dl_dpo_reference_model(dl_dpo *d) { return d ? d->reference : NULL; }

dl_status dl_dpo_set_tables(dl_dpo *d, dl_dpo_table *train, dl_dpo_table *valid) {
    DL_REQUIRE(d && train && train->chosen, DL_ERR_INVALID, "dl_dpo_set_tables: NULL argument");
    dl_dpo_table_free(&d->train_table);
    dl_dpo_table_free(&d->valid_table);
    d->train_table = *train;
    memset(train, 0, sizeof *train);
    d->have_valid_table = valid != NULL && valid->chosen != NULL;
    if (d->have_valid_table) {
        d->valid_table = *valid;
        memset(valid, 0, sizeof *valid);
    }
    return DL_OK;
}

static dl_status check_pair_batch(const dl_dpo *d, const dl_token_batch *b) {
    DL_REQUIRE(b->seq_pair && b->pair_chosen && b->pair_rejected && b->pair_record, DL_ERR_INVALID,
               "DPO: the batch holds no preference pairs (data.format must be pairs)");
    DL_REQUIRE(b->num_tokens <= d->max_tokens, DL_ERR_INVALID, "DPO: a batch of %d tokens, the model holds %d",
               b->num_tokens, d->max_tokens);
    DL_REQUIRE(b->num_pairs >= 1 && b->num_seqs == 2 * b->num_pairs, DL_ERR_INVALID,
               "DPO: %d documents for %d pairs", b->num_seqs, b->num_pairs);
    for (int p = 0; p < b->num_pairs; p++)
        DL_REQUIRE(b->pair_chosen[p] >= 0 && b->pair_chosen[p] < b->num_seqs && b->pair_rejected[p] >= 0 &&
                       b->pair_rejected[p] < b->num_seqs,
                   DL_ERR_INVALID, "DPO: pair %d names documents %d and %d of %d", p, b->pair_chosen[p],
                   b->pair_rejected[p], b->num_seqs);
    return DL_OK;
}

/* Runs `g` forward on the batch and leaves each document's summed response log-prob in d->seq_host (the batch's
 * cu_seqlens must already be in d->cu_dev). */
static dl_status document_logps(dl_dpo *d, dl_gpt *g, const dl_token_batch *b) {
    dl_gpt_inputs in = {b->tokens, b->targets, b->positions, b->cu_seqlens, b->num_seqs, b->num_tokens};
    double loss;
    int64_t targets;
    DL_CHECK(dl_gpt_forward(g, &in, &loss, &targets));
    DL_CHECK(dl_op_sequence_sum_forward(d->be, d->seq_dev, dl_gpt_token_losses(g), d->cu_dev, b->num_seqs));
    DL_CHECK(dl_mem_to_host(d->be, d->seq_host, d->seq_dev, (size_t)b->num_seqs * sizeof(float)));
    for (int s = 0; s < b->num_seqs; s++)
        d->seq_host[s] = -d->seq_host[s]; /* token losses are −log p */
    return DL_OK;
}

static void gather_pairs(const dl_dpo *d, const dl_token_batch *b, float *chosen, float *rejected) {
    for (int p = 0; p < b->num_pairs; p++) {
        chosen[p] = d->seq_host[b->pair_chosen[p]];
        rejected[p] = d->seq_host[b->pair_rejected[p]];
    }
}

static dl_status lookup_reference(dl_dpo *d, const dl_token_batch *b, int train) {
    const dl_dpo_table *t = train ? &d->train_table : &d->valid_table;
    if (!train && !d->have_valid_table) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "dpo.reference_file holds no reference log-probs for data.valid");
        dl_error_hint("rerun dealer dpo precompute-ref with data.valid set");
        return s;
    }
    DL_REQUIRE(t->chosen != NULL, DL_ERR_INVALID, "DPO: no reference log-probs were loaded");
    for (int p = 0; p < b->num_pairs; p++) {
        uint64_t r = b->pair_record[p];
        int ok = r < t->num_records && isfinite(t->chosen[r]) && isfinite(t->rejected[r]);
        if (!ok) {
            dl_status s = DL_FAIL(DL_ERR_FORMAT, "dpo.reference_file has no reference log-probs for record %llu of "
                                                 "%s (it holds %llu records)",
                                  (unsigned long long)r, train ? "data.train" : "data.valid",
                                  (unsigned long long)t->num_records);
            dl_error_hint("the file was made from other data or data settings: rerun dealer dpo precompute-ref");
            return s;
        }
        d->rc[p] = t->chosen[r];
        d->rr[p] = t->rejected[r];
    }
    return DL_OK;
}

dl_status dl_dpo_batch(dl_dpo *d, const dl_token_batch *b, int train, const dl_backward_hooks *hooks,
                       dl_step_stats *stats) {
    DL_REQUIRE(d && b && stats, DL_ERR_INVALID, "dl_dpo_batch: NULL argument");
    stats->tokens += b->num_tokens;
    stats->slots += (double)b->rows * b->seq_len;
    stats->metrics[DL_DPO_DROPPED] += b->num_dropped;
    if (b->num_tokens == 0) /* an empty end-of-data batch: nothing to add, but gradient buckets still hear of it */
        return train && hooks && hooks->layer_done ? hooks->layer_done(hooks->ctx, -1) : DL_OK;
    DL_CHECK(check_pair_batch(d, b));
    for (int s = 0; s < b->num_seqs; s++) {
        double n = b->cu_seqlens[s + 1] - b->cu_seqlens[s];
        stats->attended += n * (n + 1) / 2;
    }
    const dl_backend *be = d->be;
    int S = b->num_seqs, P = b->num_pairs;
    DL_CHECK(dl_mem_to_device(be, d->cu_dev, b->cu_seqlens, ((size_t)S + 1) * sizeof(int32_t)));
    if (d->reference) {
        DL_CHECK_CTX(document_logps(d, d->reference, b), "reference forward");
        gather_pairs(d, b, d->rc, d->rr);
    } else {
        DL_CHECK(lookup_reference(d, b, train));
    }
    DL_CHECK_CTX(document_logps(d, d->policy, b), "policy forward");
    gather_pairs(d, b, d->pc, d->pr);
    double loss = 0;
    DL_CHECK(dl_dpo_head_run(d->head, P, d->pc, d->pr, d->rc, d->rr, &loss, stats->metrics, train ? d->dpc : NULL,
                             train ? d->dpr : NULL));
    stats->loss_sum += loss;
    stats->targets += P;
    stats->metrics[DL_DPO_TRUNCATED] += b->num_truncated;
    if (!train)
        return DL_OK;
    /* d(loss)/d(document sum of token losses) = −d(loss)/dπ, then the same weight on every token of the document. */
    for (int s = 0; s < S; s++)
        d->dseq_host[s] = 0.0f;
    for (int p = 0; p < P; p++) {
        d->dseq_host[b->pair_chosen[p]] = -d->dpc[p];
        d->dseq_host[b->pair_rejected[p]] = -d->dpr[p];
    }
    DL_CHECK(dl_mem_to_device(be, d->dseq_dev, d->dseq_host, (size_t)S * sizeof(float)));
    DL_CHECK(dl_mem_zero(be, d->dtok_dev, (size_t)b->num_tokens * sizeof(float)));
    DL_CHECK(dl_op_sequence_sum_backward(be, d->dtok_dev, d->dseq_dev, d->cu_dev, S));
    return dl_gpt_backward_weighted(d->policy, d->dtok_dev, hooks);
}

dl_status dl_dpo_sequence_table(dl_dpo *d, const dl_doc_source *source, const dl_loader_config *loader,
                                dl_dpo_table *table, dl_loader_stats *stats, const char *what,
                                dl_dpo_progress_fn progress, void *progress_ctx) {
    DL_REQUIRE(d && source && loader && table && table->chosen, DL_ERR_INVALID, "dl_dpo_sequence_table: NULL argument");
    DL_REQUIRE(table->num_records == source->num_records, DL_ERR_INVALID,
               "dl_dpo_sequence_table: the table holds %llu records, the source %llu",
               (unsigned long long)table->num_records, (unsigned long long)source->num_records);
    dl_loader_config lc = *loader;
    lc.kind = DL_DATA_PAIRS;
    lc.shuffle = 0;
    lc.epochs = 1;
    lc.world = 1;
    lc.rank = 0;
    DL_REQUIRE((int64_t)lc.batch_rows * lc.seq_len <= d->max_tokens, DL_ERR_INVALID,
               "dl_dpo_sequence_table: batches of %d x %d tokens exceed the model's %d", (int)lc.batch_rows,
               (int)lc.seq_len, d->max_tokens);
    dl_loader *l = NULL;
    DL_CHECK(dl_loader_open(&l, source, &lc, NULL, 0));
    dl_status s = DL_OK;
    for (;;) {
        const dl_batch *batch;
        s = dl_loader_next(l, &batch);
        if (s != DL_OK || batch->end_of_data)
            break;
        const dl_token_batch *b = &batch->tokens;
        if (b->num_pairs == 0)
            continue;
        if ((s = check_pair_batch(d, b)) != DL_OK)
            break;
        if ((s = dl_mem_to_device(d->be, d->cu_dev, b->cu_seqlens, ((size_t)b->num_seqs + 1) * sizeof(int32_t))) !=
                DL_OK ||
            (s = document_logps(d, d->policy, b)) != DL_OK)
            break;
        for (int p = 0; p < b->num_pairs; p++) {
            uint64_t r = b->pair_record[p];
            if (r >= table->num_records) {
                s = DL_FAIL(DL_ERR_RUNTIME, "a batch names record %llu of a source of %llu", (unsigned long long)r,
                            (unsigned long long)table->num_records);
                break;
            }
            table->chosen[r] = d->seq_host[b->pair_chosen[p]];
            table->rejected[r] = d->seq_host[b->pair_rejected[p]];
        }
        if (s != DL_OK)
            break;
        if (progress) {
            dl_loader_stats ls;
            dl_loader_stats_get(l, &ls);
            progress(progress_ctx, what, ls.records, source->num_records);
        }
    }
    if (stats)
        dl_loader_stats_get(l, stats);
    dl_loader_close(l);
    return s;
}
