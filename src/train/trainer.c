/* trainer.c — the training loop (see trainer.h). */
#include "train/trainer.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/log.h"
#include "core/memstat.h"
#include "core/signals.h"
#include "core/timer.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "ops/blas_runtime.h"
#include "ckpt/checkpoint.h"
#include "comm/nodes.h"
#include "train/grad_sync.h"
#include "models/model.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "train/run_records.h"


/* Scalars every rank contributes to a step, summed in one all-reduce. */
enum { S_LOSS, S_TARGETS, S_TOKENS, S_SLOTS, S_ATTENDED, S_FAILED, S_STOP, S_RECORDS, S_METRICS,
       S_COUNT = S_METRICS + DL_MAX_MODEL_METRICS };

typedef struct trainer {
    const dl_config *cfg;
    dl_world *world;
    dl_backend be;
    int backend_open;
    dl_dataset *train_set, *valid_set;
    dl_doc_source train_source, valid_source;
    dl_loader *loader;
    dl_loader_config loader_cfg;
    dl_model *model;
    dl_grad_sync *sync;
    dl_optimizer *opt;       /* owned by sync: the state of the elements this rank updates */
    dl_schedule schedule;
    size_t numel;
    int64_t step, total_steps, eval_batches;
    int64_t bad_steps;
    double tokens_seen, samples_seen;
    double peak_gflops;
    int rows_data;           /* click models (fm, ffm): the log speaks rows, with no MFU, packing or gradient norm */
    double startup_seconds[4]; /* set-up (data, model), parameter initialisation, loader, records (click start-up line) */
    /* metrics.jsonl, TensorBoard events and the step log (rank 0): a failed write rides on the next step's
     * all-reduce, then every rank checkpoints and the run stops with its message (run_records.h). */
    dl_run_records rec;
    char *config_yaml;
    dl_tokenizer *tokenizer; /* gpt/dpo: data.tokenizer */
    /* train.early_stop: a host copy of the parameters after the best epoch so far (param_data's floats) */
    float *best;
    double best_loss;
    int64_t best_epoch;
    /* ... and where the run stood after that epoch, so the kept checkpoint is named and resumes for its step */
    int64_t best_step;
    double best_tokens_seen, best_samples_seen;
    uint8_t *best_cursor;
    size_t best_cursor_len;
    int restored_best;       /* the best epoch's parameters are back in param_data: checkpoint them as that step */
} trainer;

static int rank0(const trainer *t) { return t->world->rank == 0; }

/* Every rank reports its status; all learn the worst. The failing rank keeps its own message. */
static dl_status agree(trainer *t, dl_status local, const char *phase) {
    int64_t code = local == DL_OK ? 0 : -(int64_t)local;
    int64_t worst = code;
    dl_status s = dl_comm_allreduce_max_i64(t->world, &worst, 1, phase);
    if (local != DL_OK)
        return local;
    DL_CHECK(s);
    if (worst != 0)
        return DL_FAIL((dl_status)(-worst), "another rank failed during %s (see its message above)", phase);
    return DL_OK;
}

static dl_status open_dataset(const dl_str_list *list, dl_dataset **set, const char *key) {
    DL_REQUIRE(list->count > 0, DL_ERR_CONFIG, "%s names no record files", key);
    DL_CHECK_CTX(dl_dataset_open_as(set, (const char *const *)list->items, (size_t)list->count, key), "%s", key);
    return DL_OK;
}

/* gpt/dpo: loads data.tokenizer, and refuses (exit 2, before any step) a model whose vocabulary cannot hold its
 * ids and record files another tokenizer made. */
static dl_status setup_tokenizer(trainer *t) {
    const dl_config *c = t->cfg;
    if (c->model.kind != DL_MODEL_GPT && c->model.kind != DL_MODEL_DPO)
        return DL_OK;
    DL_CHECK_CTX(dl_tokenizer_load(c->data.tokenizer, &t->tokenizer), "data.tokenizer");
    int32_t need = dl_tokenizer_vocab_size(t->tokenizer);
    /* Byte-level runs keep their old freedom (tests train tiny vocabularies on small synthetic ids). */
    if (dl_tokenizer_kind_of(t->tokenizer) == DL_TOKENIZER_BPE && c->model.vocab_size < need) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "model.vocab_size %d is smaller than the vocabulary of data.tokenizer "
                                             "%s (%d ids)", c->model.vocab_size, c->data.tokenizer, (int)need);
        dl_error_hint("set model.vocab_size=%d (or more, e.g. a multiple of 64)", (int)need);
        return s;
    }
    const dl_str_list *lists[2] = {&c->data.train, &c->data.valid};
    static const char *const keys[2] = {"data.train", "data.valid"};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < lists[k]->count; i++)
            DL_CHECK_CTX(dl_tokenizer_check_data(lists[k]->items[i], t->tokenizer, c->data.tokenizer), "%s",
                         keys[k]);
    return DL_OK;
}

static dl_status setup_data(trainer *t) {
    const dl_config *c = t->cfg;
    DL_CHECK(setup_tokenizer(t));
    DL_CHECK(open_dataset(&c->data.train, &t->train_set, "data.train"));
    dl_dataset_source(t->train_set, &t->train_source);
    if (c->data.valid.count > 0) {
        DL_CHECK(open_dataset(&c->data.valid, &t->valid_set, "data.valid"));
        dl_dataset_source(t->valid_set, &t->valid_source);
    }
    dl_loader_config *lc = &t->loader_cfg;
    dl_loader_config_default(lc);
    lc->kind = dl_model_data_kind(&c->model);
    lc->batch_rows = c->train.batch_per_rank;
    lc->seq_len = c->data.seq_len;
    lc->packing = c->data.packing;
    lc->pack_window = c->data.pack_window;
    lc->shuffle = c->data.shuffle;
    lc->seed = (uint64_t)c->run.seed;
    lc->world = (uint32_t)t->world->size;
    lc->rank = (uint32_t)t->world->rank;
    lc->epochs = (uint64_t)(c->train.epochs > 0 ? c->train.epochs : 0);
    lc->prefetch = c->data.prefetch;
    lc->skip_corrupt = c->data.skip_corrupt;
    lc->overlong = (int)c->data.overlong; /* pairs: truncate | drop | error (text is always split) */
    return DL_OK;
}

/* Steps: train.steps, or fewer when train.epochs bounds the data (all ranks agree on the largest count). */
static dl_status count_steps(trainer *t) {
    t->total_steps = t->cfg->train.steps;
    if (t->loader_cfg.epochs == 0)
        return DL_OK;
    uint64_t batches = 0;
    dl_status s = dl_loader_count_batches(&t->train_source, &t->loader_cfg, &batches);
    DL_CHECK(agree(t, s, "counting batches"));
    int64_t most = (int64_t)batches;
    DL_CHECK(dl_comm_allreduce_max_i64(t->world, &most, 1, "batch count"));
    int64_t by_data = (most + t->cfg->train.grad_accum - 1) / t->cfg->train.grad_accum;
    if (by_data < t->total_steps)
        t->total_steps = by_data;
    DL_REQUIRE(t->total_steps > 0, DL_ERR_INVALID, "data.train holds no batch for %d ranks", t->world->size);
    return DL_OK;
}

static dl_status count_eval_batches(trainer *t) {
    if (!t->valid_set)
        return DL_OK;
    if (t->cfg->train.eval_steps > 0) {
        t->eval_batches = t->cfg->train.eval_steps;
        return DL_OK;
    }
    dl_loader_config lc = t->loader_cfg;
    lc.shuffle = 0;
    lc.epochs = 1;
    lc.prefetch = 0;
    uint64_t batches = 0;
    dl_status s = dl_loader_count_batches(&t->valid_source, &lc, &batches);
    DL_CHECK(agree(t, s, "counting validation batches"));
    int64_t most = (int64_t)batches;
    DL_CHECK(dl_comm_allreduce_max_i64(t->world, &most, 1, "validation batch count"));
    t->eval_batches = most;
    return DL_OK;
}

static dl_status broadcast_params(trainer *t) {
    if (t->model->shard_layout || t->world->size == 1) /* each rank holds and initialised its own share */
        return DL_OK;
    DL_CHECK(dl_model_params_ready(t->model));
    size_t bytes = t->numel * sizeof(float);
    if (t->be.kind == DL_DEVICE_CPU)
        return dl_comm_broadcast(t->world, t->model->param_data, bytes, 0, "parameter broadcast");
    float *host = malloc(bytes);
    DL_REQUIRE(host != NULL, DL_ERR_NOMEM, "cannot allocate %zu bytes", bytes);
    dl_status s = dl_mem_to_host(&t->be, host, t->model->param_data, bytes);
    if (s == DL_OK)
        s = dl_comm_broadcast(t->world, host, bytes, 0, "parameter broadcast");
    if (s == DL_OK)
        s = dl_mem_to_device(&t->be, t->model->param_data, host, bytes);
    free(host);
    return s;
}

/* Host copies of parameters and optimizer states for a checkpoint (or to receive one). */
typedef struct host_state {
    float *params;
    float *states[DL_OPTIMIZER_MAX_STATES];
    dl_ckpt_tensors tensors;
} host_state;

static void host_state_free(host_state *h) {
    free(h->params);
    for (int k = 0; k < DL_OPTIMIZER_MAX_STATES; k++)
        free(h->states[k]);
    memset(h, 0, sizeof *h);
}

/* With `params` given (the CPU backend's own param_data, for a checkpoint write) only the optimizer states get
 * host copies: copying a large table first would cost as much memory traffic and page faults as writing it. */
static dl_status host_state_alloc(trainer *t, host_state *h, float *params) {
    memset(h, 0, sizeof *h);
    size_t bytes = t->numel * sizeof(float);
    h->params = params ? NULL : calloc(t->numel, sizeof(float));
    int ok = params || h->params != NULL;
    for (int k = 0; k < t->opt->num_states; k++)
        ok = ok && (h->states[k] = calloc(t->numel, sizeof(float))) != NULL;
    if (!ok) {
        host_state_free(h);
        return DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu bytes for a checkpoint copy", bytes);
    }
    h->tensors = (dl_ckpt_tensors){t->model->params, params ? params : h->params, t->opt->num_states, t->opt->state_names,
                                   h->states,        t->opt->begin, t->opt->end};
    return DL_OK;
}

/* A model whose parameters are split over the ranks (model->shard_layout) checkpoints its own share, straight from
 * param_data on the CPU, through a host copy of that share otherwise; it keeps no optimizer state of its own. */
static dl_status shard_host_params(trainer *t, float **host) {
    *host = t->model->param_data;
    DL_REQUIRE(t->opt->num_states == 0, DL_ERR_INVALID,
               "a %s model with split parameters cannot keep optimizer state outside them", t->model->kind);
    if (t->be.kind == DL_DEVICE_CPU)
        return DL_OK;
    size_t bytes = t->model->local_numel * sizeof(float);
    *host = malloc(bytes ? bytes : 1);
    DL_REQUIRE(*host != NULL, DL_ERR_NOMEM, "cannot allocate %zu bytes for this rank's share of the parameters",
               bytes);
    return DL_OK;
}

static void shard_host_free(trainer *t, float *host) {
    if (host != t->model->param_data)
        free(host);
}

/* What a run's floating-point results depend on besides its data and config: OpenBLAS's kernel, the CPU kernel
 * variant ("cuda" on a GPU) and the thread count. Checkpoints record them so a resume can say when bit-exactness
 * is lost. */
static void record_numerics(const trainer *t, char *blas, size_t blas_cap, char *variant, size_t variant_cap,
                            int *threads) {
    snprintf(blas, blas_cap, "%s", dl_blas_corename());
    snprintf(variant, variant_cap, "%s", t->be.cpu_variant ? t->be.cpu_variant : t->be.name);
    *threads = t->be.num_threads;
}

static dl_status save_checkpoint(trainer *t) {
    DL_CHECK(dl_model_params_ready(t->model));
    const dl_shard_layout *layout = t->model->shard_layout;
    host_state h;
    memset(&h, 0, sizeof h);
    float *share = NULL;
    dl_status s = DL_OK;
    if (layout) {
        s = shard_host_params(t, &share);
        if (s == DL_OK && share != t->model->param_data)
            s = dl_mem_to_host(&t->be, share, t->model->param_data, t->model->local_numel * sizeof(float));
        h.tensors = (dl_ckpt_tensors){t->model->params, share, 0, NULL, NULL, 0, 0};
    } else if (t->be.kind == DL_DEVICE_CPU) {
        DL_CHECK(host_state_alloc(t, &h, t->model->param_data));
    } else {
        DL_CHECK(host_state_alloc(t, &h, NULL));
        s = dl_mem_to_host(&t->be, h.params, t->model->param_data, t->numel * sizeof(float));
    }
    size_t span = t->opt->end - t->opt->begin;
    for (int k = 0; k < t->opt->num_states && s == DL_OK; k++)
        s = dl_mem_to_host(&t->be, h.states[k] + t->opt->begin, t->opt->states[k], span * sizeof(float));
    const uint8_t *cursor = NULL;
    size_t cursor_len = 0;
    dl_loader_cursor(t->loader, &cursor, &cursor_len);
    dl_ckpt_meta meta = {
        .step = t->step,
        .epoch = 0,
        .tokens_seen = t->tokens_seen,
        .samples_seen = t->samples_seen,
        .optimizer_step = t->opt->step,
        .bad_steps = t->bad_steps,
        .seed = t->cfg->run.seed,
        .world_size = t->world->size,
        .zero_stage = t->cfg->comm.zero,
        .config_yaml = t->config_yaml,
    };
    if (t->restored_best) { /* early stopping kept an earlier epoch: the file is that epoch's step, as it stood */
        meta.step = t->best_step;
        meta.tokens_seen = t->best_tokens_seen;
        meta.samples_seen = t->best_samples_seen;
        cursor = t->best_cursor;
        cursor_len = t->best_cursor_len;
    }
    snprintf(meta.model_kind, sizeof meta.model_kind, "%s", t->model->kind);
    if (t->tokenizer && dl_tokenizer_kind_of(t->tokenizer) == DL_TOKENIZER_BPE)
        dl_tokenizer_hash_hex(dl_tokenizer_hash(t->tokenizer), meta.tokenizer_hash);
    record_numerics(t, meta.blas_kernel, sizeof meta.blas_kernel, meta.cpu_variant, sizeof meta.cpu_variant,
                    &meta.threads);
    dl_cursor_info info;
    if (cursor_len && dl_cursor_info_get(cursor, cursor_len, &info) == DL_OK)
        meta.epoch = (int64_t)info.epoch;
    char path[4300] = "";
    dl_ckpt_options options = {.keep = t->cfg->ckpt.keep, .keep_every = t->cfg->ckpt.keep_every,
                               .compress = t->cfg->ckpt.compress, .skip_fsync = !t->cfg->ckpt.fsync,
                               .layout = layout};
    dl_status agreed = agree(t, s, "checkpoint copy");
    double began = dl_time_seconds();
    if (agreed == DL_OK)
        agreed = dl_ckpt_save(t->world, t->cfg->run.dir, &meta, &h.tensors, cursor, cursor_len, &options, path,
                              sizeof path);
    double took = dl_time_seconds() - began;
    host_state_free(&h);
    if (share)
        shard_host_free(t, share);
    DL_CHECK(agreed);
    uint64_t size = 0;
    if (rank0(t) && dl_file_size(path, &size) == DL_OK && took > 0)
        DL_INFO("checkpoint %s (%.1f MB in %.2f s, %.0f MB/s %s)", path, (double)size / 1e6, took,
                (double)size / 1e6 / took, t->cfg->ckpt.fsync ? "including fsync" : "without fsync: ckpt.fsync false");
    else if (rank0(t))
        DL_INFO("checkpoint %s", path);
    return DL_OK;
}

/* A resume on another BLAS kernel, CPU variant or thread count continues correctly, but rounds differently from
 * the run that wrote the checkpoint: one warning line says so, naming both. */
static void warn_if_numerics_differ(const trainer *t, const char *path, const dl_ckpt_meta *meta) {
    if (!meta->blas_kernel[0]) {
        DL_INFO("%s predates the record of BLAS kernel, CPU variant and threads: bit-exact resume is not checked",
                path);
        return;
    }
    char blas[64], variant[32];
    int threads;
    record_numerics(t, blas, sizeof blas, variant, sizeof variant, &threads);
    if (strcmp(blas, meta->blas_kernel) == 0 && strcmp(variant, meta->cpu_variant) == 0 && threads == meta->threads)
        return;
    DL_WARN("%s was written with BLAS kernel %s, CPU variant %s, %d thread%s; this run has %s, %s, %d thread%s: "
            "training continues correctly, but not bit-identically to an uninterrupted run",
            path, meta->blas_kernel, meta->cpu_variant, meta->threads, meta->threads == 1 ? "" : "s", blas, variant,
            threads, threads == 1 ? "" : "s");
}

/* train.resume: auto (latest when there is one), never, or a path. Fills the cursor to open the loader with. */
static dl_status maybe_resume(trainer *t, uint8_t **cursor, size_t *cursor_len, int *resumed) {
    *resumed = 0;
    const dl_config *c = t->cfg;
    char path[4300];
    int found = 0;
    if (c->train.resume == DL_RESUME_NEVER)
        return DL_OK;
    if (c->train.resume == DL_RESUME_PATH) {
        DL_CHECK(dl_ckpt_resolve(c->train.resume_path, "train.resume", path, sizeof path));
        found = 1;
    } else {
        DL_CHECK(dl_ckpt_latest(c->run.dir, path, sizeof path, &found));
    }
    if (!found)
        return DL_OK;
    dl_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    dl_status s = dl_ckpt_read_meta(path, &meta);
    free(meta.config_yaml);
    if (s == DL_OK && strcmp(meta.model_kind, t->model->kind) != 0) {
        s = DL_FAIL(DL_ERR_FORMAT, "%s holds a %s model, the config trains %s", path, meta.model_kind,
                    t->model->kind);
        dl_error_hint("use another run.dir, or start over there with train.resume=never run.overwrite=true");
    }
    if (s == DL_OK && t->tokenizer) {
        /* a checkpoint's ids mean nothing under another vocabulary ("" = byte-level) */
        char mine[17] = "";
        if (dl_tokenizer_kind_of(t->tokenizer) == DL_TOKENIZER_BPE)
            dl_tokenizer_hash_hex(dl_tokenizer_hash(t->tokenizer), mine);
        if (strcmp(mine, meta.tokenizer_hash) != 0) {
            s = DL_FAIL(DL_ERR_INVALID, "%s was trained with tokenizer %s but data.tokenizer %s is %s", path,
                        meta.tokenizer_hash[0] ? meta.tokenizer_hash : "bytes", t->cfg->data.tokenizer,
                        mine[0] ? mine : "bytes");
            dl_error_hint("resume with the tokenizer the run used (run_dir/tokenizer.json), or use another run.dir");
        }
    }
    host_state h;
    memset(&h, 0, sizeof h);
    const dl_shard_layout *layout = t->model->shard_layout;
    if (layout) {
        /* Collective: every rank reads the rows it holds now, whatever world size wrote the file; so all ranks
         * enter the load or none does. */
        float *share = NULL;
        if (s == DL_OK)
            s = shard_host_params(t, &share);
        s = agree(t, s, "resume");
        if (s == DL_OK) {
            dl_ckpt_tensors tensors = {t->model->params, share, 0, NULL, NULL, 0, 0};
            dl_ckpt_options how = {.layout = layout};
            s = dl_ckpt_load_collective(t->world, path, &tensors, &how, cursor, cursor_len);
        }
        if (s == DL_OK && share != t->model->param_data)
            s = dl_mem_to_device(&t->be, t->model->param_data, share, t->model->local_numel * sizeof(float));
        if (share)
            shard_host_free(t, share);
        /* Rows of a shared table that another rank loaded in place: visible here after the model's sync and a
         * collective (comm/shard_layout.h). */
        if (layout->shared_row) {
            if (s == DL_OK)
                s = dl_model_params_ready(t->model);
            s = agree(t, s, "shared rows after the resume");
        }
    } else {
        DL_CHECK(s);
        DL_CHECK(host_state_alloc(t, &h, NULL));
        s = dl_ckpt_load(path, &h.tensors, t->world->rank, t->world->size, cursor, cursor_len);
        if (s == DL_OK)
            s = dl_mem_to_device(&t->be, t->model->param_data, h.params, t->numel * sizeof(float));
    }
    size_t span = t->opt->end - t->opt->begin;
    for (int k = 0; k < t->opt->num_states && s == DL_OK; k++)
        s = dl_mem_to_device(&t->be, t->opt->states[k], h.states[k] + t->opt->begin, span * sizeof(float));
    host_state_free(&h);
    DL_CHECK(s);
    if (rank0(t))
        warn_if_numerics_differ(t, path, &meta);
    if (meta.world_size != t->world->size && rank0(t))
        DL_WARN("%s was written by %d ranks, this run has %d: parameters and optimizer state continue, but the data "
                "cursor cannot be split differently, so the data order restarts from the beginning",
                path, meta.world_size, t->world->size);
    t->step = meta.step;
    t->opt->step = meta.optimizer_step;
    t->bad_steps = meta.bad_steps;
    t->tokens_seen = meta.tokens_seen;
    t->samples_seen = meta.samples_seen;
    *resumed = 1;
    if (rank0(t))
        DL_INFO("resumed from %s at step %lld", path, (long long)meta.step);
    return DL_OK;
}

static dl_status evaluate(trainer *t, dl_eval_result *result) {
    dl_loader_config lc = t->loader_cfg;
    lc.shuffle = 0;
    lc.epochs = 1;
    lc.prefetch = 0;
    memset(result, 0, sizeof *result);
    if (t->model->evaluate)
        return t->model->evaluate(t->model, t->world, &t->valid_source, &lc, t->eval_batches, result);
    dl_loader *loader = NULL;
    dl_step_stats stats = {0};
    dl_status s = dl_loader_open(&loader, &t->valid_source, &lc, NULL, 0);
    for (int64_t i = 0; i < t->eval_batches && s == DL_OK; i++) {
        const dl_batch *batch;
        s = dl_loader_next(loader, &batch);
        if (s == DL_OK)
            s = t->model->eval_batch(t->model, batch, &stats);
    }
    dl_loader_close(loader);
    double sums[3 + DL_MAX_MODEL_METRICS] = {stats.loss_sum, stats.targets, s != DL_OK};
    memcpy(sums + 3, stats.metrics, sizeof stats.metrics);
    dl_status c = dl_comm_allreduce_sum_f64(t->world, sums, 3 + DL_MAX_MODEL_METRICS, "validation sums");
    DL_CHECK_CTX(s, "evaluating on data.valid");
    DL_CHECK(c);
    if (sums[2] > 0)
        return DL_FAIL(DL_ERR_RUNTIME, "another rank failed during evaluation (see its message above)");
    result->targets = sums[1];
    result->loss = sums[1] > 0 ? sums[0] / sums[1] : NAN;
    for (int i = 0; i < DL_MAX_MODEL_METRICS && t->model->metric_names[i]; i++) {
        result->names[i] = t->model->metric_names[i];
        result->values[i] = sums[1] > 0 ? sums[3 + i] / sums[1] : NAN;
        result->count = i + 1;
    }
    return DL_OK;
}

static void format_duration(char *buf, size_t cap, double seconds) {
    if (!isfinite(seconds) || seconds < 0)
        snprintf(buf, cap, "?");
    else if (seconds < 60)
        snprintf(buf, cap, "%.0fs", seconds);
    else if (seconds < 3600)
        snprintf(buf, cap, "%dm%02ds", (int)seconds / 60, (int)seconds % 60);
    else if (seconds < 100 * 3600)
        snprintf(buf, cap, "%dh%02dm", (int)seconds / 3600, ((int)seconds % 3600) / 60);
    else if (seconds < 99999.0 * 86400)
        snprintf(buf, cap, "%lldd%02dh", (long long)(seconds / 86400), (int)(fmod(seconds, 86400) / 3600));
    else
        snprintf(buf, cap, ">99999d"); /* train.steps far beyond what the data or the machine will see */
}

/* One optimizer step: micro-batches, the step all-reduces, clipping, the update. A non-finite step is skipped. */
static dl_status train_step(trainer *t, double *step_seconds, double sums_out[S_COUNT], double *grad_norm,
                            double *lr, int *skipped) {
    const dl_config *c = t->cfg;
    double t0 = dl_time_seconds();
    dl_step_stats stats = {0};
    int dense = !t->model->self_updating && t->numel > 0;
    dl_status local = dense ? dl_mem_zero(&t->be, t->model->grad_data, t->numel * sizeof(float)) : DL_OK;
    dl_step_context ctx = {t->world, t->step + 1, dl_schedule_lr(&t->schedule, t->step + 1),
                           dense ? dl_grad_sync_hooks(t->sync) : NULL};
    for (int micro = 0; micro < c->train.grad_accum && local == DL_OK; micro++) {
        const dl_batch *batch;
        local = dl_loader_next(t->loader, &batch);
        if (local == DL_OK && dense)
            local = dl_grad_sync_begin(t->sync, micro == c->train.grad_accum - 1);
        if (local == DL_OK)
            local = t->model->train_batch(t->model, batch, &ctx, &stats);
    }
    /* A stop request (SIGUSR1/SIGTERM) rides on the step's all-reduce, so every rank sees it at the same step. */
    double sums[S_COUNT] = {stats.loss_sum, stats.targets,   stats.tokens,
                            stats.slots,    stats.attended, local != DL_OK,
                            dl_signals_stop_requested() ? 1.0 : 0.0, t->rec.failed ? 1.0 : 0.0};
    memcpy(sums + S_METRICS, stats.metrics, sizeof stats.metrics);
    dl_status s = dl_comm_allreduce_sum_f64(t->world, sums, S_COUNT, "step statistics");
    /* Every rank now knows whether the step failed somewhere. Buckets that left during backward must complete on
     * all ranks before anyone returns, or messages stay in flight (not after a communication failure: that ends
     * the job). */
    if (dense && s == DL_OK && (local != DL_OK || sums[S_FAILED] > 0) && local != DL_ERR_COMM) {
        dl_status drained = dl_grad_sync_abandon(t->sync);
        if (local == DL_OK && drained != DL_OK)
            return drained;
    }
    DL_CHECK(local);
    DL_CHECK(s);
    if (sums[S_FAILED] > 0)
        return DL_FAIL(DL_ERR_RUNTIME, "another rank failed at step %lld (see its message above)",
                       (long long)t->step + 1);
    t->step++;
    dl_world_set_step(t->world, t->step);
    *lr = dl_schedule_lr(&t->schedule, t->step);
    double targets = sums[S_TARGETS];
    double scale = targets > 0 ? 1.0 / targets : 0.0;
    double sumsq = 0;
    if (dense)
        DL_CHECK(dl_grad_sync_reduce(t->sync, &sumsq));
    double norm = sqrt(sumsq) * scale;
    *grad_norm = norm;
    double loss = targets > 0 ? sums[S_LOSS] / targets : NAN;
    *skipped = 0;
    if (!isfinite(norm) || !isfinite(loss) || targets <= 0) {
        *skipped = 1;
        if (targets > 0) {
            t->bad_steps++;
            if (rank0(t))
                DL_WARN("step %lld: non-finite %s; step skipped (%lld so far, train.max_bad_steps %d)",
                        (long long)t->step, isfinite(loss) ? "gradient norm" : "loss", (long long)t->bad_steps,
                        c->train.max_bad_steps);
            if (t->bad_steps > c->train.max_bad_steps) {
                dl_status e = DL_FAIL(DL_ERR_RUNTIME, "%lld steps had a non-finite loss or gradient (more than "
                                                      "train.max_bad_steps = %d); the run has diverged",
                                      (long long)t->bad_steps, c->train.max_bad_steps);
                dl_error_hint("lower optim.lr, raise optim.warmup_steps or set optim.grad_clip");
                return e;
            }
        }
    } else {
        double clip = c->optim.grad_clip > 0 && norm > c->optim.grad_clip ? c->optim.grad_clip / norm : 1.0;
        if (dense)
            DL_CHECK(dl_grad_sync_update(t->sync, *lr, scale * clip));
    }
    t->tokens_seen += sums[S_TOKENS];
    t->samples_seen += sums[S_TARGETS];
    memcpy(sums_out, sums, sizeof sums);
    *step_seconds = dl_time_seconds() - t0;
    return DL_OK;
}

static void log_step(trainer *t, double dt, const double sums[S_COUNT], double norm, double lr, int skipped,
                     double elapsed, int64_t first_step) {
    double loss = sums[S_TARGETS] > 0 ? sums[S_LOSS] / sums[S_TARGETS] : NAN;
    double tokens_per_s = sums[S_TOKENS] / dt;
    dl_step_stats g = {.loss_sum = sums[S_LOSS], .targets = sums[S_TARGETS], .tokens = sums[S_TOKENS],
                       .slots = sums[S_SLOTS], .attended = sums[S_ATTENDED]};
    double flops = t->model->step_flops ? t->model->step_flops(t->model, &g) : 0;
    double mfu = t->peak_gflops > 0 ? flops / dt / (t->peak_gflops * 1e9 * t->world->size) : 0;
    double packing = sums[S_SLOTS] > 0 ? sums[S_TOKENS] / sums[S_SLOTS] : 0;
    double per_step = elapsed / (double)(t->step - first_step);
    char eta[32];
    format_duration(eta, sizeof eta, per_step * (double)(t->total_steps - t->step));
    int log_now = t->step == first_step + 1 || t->step == t->total_steps || t->step % t->cfg->log.every == 0;
    /* The model's own metrics, as "name value" pairs for the line and "name": value for JSON. */
    char extra_line[512] = "", extra_json[1024] = "";
    size_t el = 0, ej = 0;
    dl_json_figures figures = {.used = 0};
    for (int i = 0; i < DL_MAX_MODEL_METRICS && t->model->metric_names[i]; i++) {
        double v = sums[S_TARGETS] > 0 ? sums[S_METRICS + i] / sums[S_TARGETS] : NAN;
        if (el < sizeof extra_line - 64)
            el += (size_t)snprintf(extra_line + el, sizeof extra_line - el, " | %s %.4f", t->model->metric_names[i], v);
        if (ej < sizeof extra_json - 96)
            ej += (size_t)snprintf(extra_json + ej, sizeof extra_json - ej, ", \"%s\": %s", t->model->metric_names[i],
                                   dl_json_figure(&figures, t->model->metric_names[i], v));
    }
    /* Gradient communication of this step: its time and the share hidden behind the backward pass. */
    dl_grad_sync_stats cs = {0};
    dl_grad_sync_stats_get(t->sync, &cs);
    if (t->world->size > 1 && cs.comm_seconds > 0) {
        double hidden = 1.0 - cs.exposed_seconds / cs.comm_seconds;
        if (el < sizeof extra_line - 64)
            el += (size_t)snprintf(extra_line + el, sizeof extra_line - el, " | comm %.0f ms (%.0f%% hidden)",
                                   cs.comm_seconds * 1e3, hidden * 100);
        if (ej < sizeof extra_json - 96)
            ej += (size_t)snprintf(extra_json + ej, sizeof extra_json - ej, ", \"comm_ms\": %.6g, \"comm_hidden\": %.4g",
                                   cs.comm_seconds * 1e3, hidden);
    }
    /* On a terminal a progress bar runs between the logged lines, on the line the next log line overwrites. */
    int tty = dl_run_records_terminal();
    if (log_now && t->rows_data)
        printf("%sstep %6lld/%lld | loss %.4f | lr %.2e | %7.1f ms | %8.0f rows/s%s | ETA %s%s\n", tty ? "\r\033[K" : "",
               (long long)t->step, (long long)t->total_steps, loss, lr, dt * 1e3, tokens_per_s, extra_line, eta,
               skipped ? " | skipped" : "");
    else if (log_now)
        printf("%sstep %6lld/%lld | loss %.4f | grad %.3f | lr %.2e | %7.1f ms | %8.0f tok/s | MFU %5.1f%% | "
               "pack %5.1f%%%s | ETA %s%s\n",
               tty ? "\r\033[K" : "", (long long)t->step, (long long)t->total_steps, loss, norm, lr, dt * 1e3,
               tokens_per_s, mfu * 100, packing * 100, extra_line, eta, skipped ? " | skipped" : "");
    else if (tty) {
        enum { WIDTH = 30 };
        int filled = (int)((double)WIDTH * (double)t->step / (double)(t->total_steps > 0 ? t->total_steps : 1));
        char bar[WIDTH + 1];
        for (int i = 0; i < WIDTH; i++)
            bar[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
        bar[WIDTH] = '\0';
        printf("\r\033[K[%s] %lld/%lld | loss %.4f | %.0f %s/s | ETA %s", bar, (long long)t->step,
               (long long)t->total_steps, loss, tokens_per_s, t->rows_data ? "rows" : "tok", eta);
    }
    if (log_now || tty)
        dl_run_records_flush_stdout(&t->rec, t->step);
    if (t->rec.tb) {
        const char *tags[5 + DL_MAX_MODEL_METRICS] = {"loss", "lr", "grad_norm", "tokens_per_s", "mfu"};
        double values[5 + DL_MAX_MODEL_METRICS] = {loss, lr, norm, tokens_per_s, mfu};
        int n = 5;
        if (t->rows_data) { /* click models: loss, lr, rows_per_s (docs/ffm.md) */
            tags[2] = "rows_per_s";
            values[2] = tokens_per_s;
            n = 3;
        }
        for (int i = 0; i < DL_MAX_MODEL_METRICS && t->model->metric_names[i]; i++, n++) {
            tags[n] = t->model->metric_names[i];
            values[n] = sums[S_TARGETS] > 0 ? sums[S_METRICS + i] / sums[S_TARGETS] : NAN;
        }
        dl_run_records_scalars(&t->rec, t->step, n, tags, values);
    }
    if (t->rec.metrics_fd >= 0) {
        const char *loss_text = dl_json_figure(&figures, "loss", loss);
        const char *norm_text = dl_json_figure(&figures, "grad_norm", norm);
        char reason[320], line[2048];
        dl_json_reason(&figures, reason, sizeof reason);
        int n = t->rows_data
                    ? snprintf(line, sizeof line,
                               "{\"step\": %lld, \"loss\": %s, \"lr\": %.6g, \"rows_per_s\": %.6g, \"ms\": %.6g, "
                               "\"rows_seen\": %.0f%s%s%s}\n",
                               (long long)t->step, loss_text, lr, tokens_per_s, dt * 1e3, t->tokens_seen, extra_json,
                               skipped ? ", \"skipped\": true" : "", reason)
                    : snprintf(line, sizeof line,
                               "{\"step\": %lld, \"loss\": %s, \"lr\": %.6g, \"grad_norm\": %s, \"tokens_per_s\": %.6g, "
                               "\"mfu\": %.6g, \"packing_efficiency\": %.6g, \"ms\": %.6g, \"tokens_seen\": %.0f%s%s%s}\n",
                               (long long)t->step, loss_text, lr, norm_text, tokens_per_s, mfu, packing, dt * 1e3,
                               t->tokens_seen, extra_json, skipped ? ", \"skipped\": true" : "", reason);
        dl_run_records_line(&t->rec, t->step, line, n > 0 && (size_t)n < sizeof line ? (size_t)n : 0);
    }
}

/* The status a run stops with after a failed record write (rank 0's message names the file and the cause), given
 * how the checkpoint that followed went. */
static dl_status records_stop_status(trainer *t, dl_status checkpoint) {
    if (!rank0(t))
        return checkpoint != DL_OK ? checkpoint
                                   : DL_FAIL(DL_ERR_IO, "another rank failed writing the run records (see its "
                                                        "message)");
    char latest[4400] = "";
    int found = 0;
    if (checkpoint != DL_OK && dl_ckpt_latest(t->cfg->run.dir, latest, sizeof latest, &found) != DL_OK)
        found = 0;
    return DL_FAIL(DL_ERR_IO, "the run stopped at step %lld (%s%s): %s", (long long)t->step,
                   checkpoint == DL_OK ? "after a checkpoint of this step"
                                       : "its checkpoint failed too; the last good one is ",
                   checkpoint == DL_OK ? "" : found ? latest : "none", t->rec.error);
}

static dl_status run_eval(trainer *t, dl_eval_result *out) {
    dl_eval_result r;
    DL_CHECK(evaluate(t, &r));
    *out = r;
    if (!rank0(t))
        return DL_OK;
    char line[1024], json[2048];
    size_t l = (size_t)snprintf(line, sizeof line, "step %6lld/%lld | val_loss %.4f (%.0f targets)",
                                (long long)t->step, (long long)t->total_steps, r.loss, r.targets);
    dl_json_figures figures = {.used = 0};
    size_t j = (size_t)snprintf(json, sizeof json, "{\"step\": %lld, \"val_loss\": %s, \"val_targets\": %.0f",
                                (long long)t->step, dl_json_figure(&figures, "val_loss", r.loss), r.targets);
    for (int i = 0; i < r.count; i++) {
        if (l < sizeof line - 96)
            l += (size_t)snprintf(line + l, sizeof line - l, " | %s%s %.4f", strncmp(r.names[i], "val", 3) ? "val/" : "",
                                  r.names[i], r.values[i]);
        if (j < sizeof json - 128)
            j += (size_t)snprintf(json + j, sizeof json - j, ", \"%s%s\": %s",
                                  strncmp(r.names[i], "val", 3) ? "eval/" : "", r.names[i],
                                  dl_json_figure(&figures, r.names[i], r.values[i]));
    }
    printf("%s%s\n", dl_run_records_terminal() ? "\r\033[K" : "", line); /* over a progress bar */
    dl_run_records_flush_stdout(&t->rec, t->step);
    if (t->rec.tb) {
        /* The same names as in metrics.jsonl. */
        char names[DL_MAX_MODEL_METRICS][96];
        const char *tags[1 + DL_MAX_MODEL_METRICS] = {"val_loss"};
        double values[1 + DL_MAX_MODEL_METRICS] = {r.loss};
        for (int i = 0; i < r.count && i < DL_MAX_MODEL_METRICS; i++) {
            snprintf(names[i], sizeof names[i], "%s%s", strncmp(r.names[i], "val", 3) ? "eval/" : "", r.names[i]);
            tags[1 + i] = names[i];
            values[1 + i] = r.values[i];
        }
        dl_run_records_scalars(&t->rec, t->step, 1 + (r.count < DL_MAX_MODEL_METRICS ? r.count : DL_MAX_MODEL_METRICS), tags, values);
    }
    if (t->rec.metrics_fd >= 0) {
        char reason[320];
        dl_json_reason(&figures, reason, sizeof reason);
        size_t rl = strlen(reason);
        if (j + rl + 2 < sizeof json) {
            memcpy(json + j, reason, rl);
            memcpy(json + j + rl, "}\n", 3);
            dl_run_records_line(&t->rec, t->step, json, j + rl + 2);
        }
    }
    return DL_OK;
}

static dl_status setup(trainer *t) {
    const dl_config *c = t->cfg;
    if (c->train.threads > 0) {
        omp_set_num_threads(c->train.threads);
    }
    const char *device = dl_config_enum_text("device", (int)c->device);
    DL_CHECK(dl_backend_open(&t->be, device ? device : "auto", t->world->local_rank));
    t->backend_open = 1;
    DL_CHECK(setup_data(t));
    DL_CHECK(dl_config_create_model(&t->model, c, &t->be, c->train.batch_per_rank, c->data.seq_len));
    t->numel = dl_tensor_table_numel(t->model->params);
    dl_optimizer_settings os = {
        .kind = c->optim.name == DL_OPTIM_ADAGRAD ? DL_OPT_ADAGRAD : c->optim.name == DL_OPTIM_SGD ? DL_OPT_SGD
                                                                                                   : DL_OPT_ADAMW,
        .beta1 = c->optim.beta1,
        .beta2 = c->optim.beta2,
        .eps = c->optim.eps,
        .weight_decay = c->optim.weight_decay,
        .momentum = c->optim.momentum,
        .adagrad_init = c->optim.adagrad_init,
    };
    DL_CHECK(dl_grad_sync_create(&t->sync, t->world, &t->be, t->model, c, &os));
    t->opt = dl_grad_sync_optimizer(t->sync);
    DL_CHECK(dl_config_to_yaml(c, 0, &t->config_yaml));
    return DL_OK;
}

static dl_status open_run_records(trainer *t) {
    if (!rank0(t))
        return DL_OK;
    DL_CHECK_CTX(dl_make_dirs(t->cfg->run.dir), "run.dir");
    char path[4200];
    snprintf(path, sizeof path, "%s/config.yaml", t->cfg->run.dir);
    DL_CHECK(dl_write_file_atomic(path, t->config_yaml, strlen(t->config_yaml)));
    /* The run keeps its tokenizer, so generate and eval find it without being told. */
    snprintf(path, sizeof path, "%s/tokenizer.json", t->cfg->run.dir);
    if (t->tokenizer && dl_tokenizer_kind_of(t->tokenizer) == DL_TOKENIZER_BPE)
        DL_CHECK_CTX(dl_tokenizer_save(t->tokenizer, path), "keeping the run's tokenizer");
    else
        DL_CHECK(dl_remove_if_exists(path)); /* byte-level: a stale copy from another run must not be picked up */
    return dl_run_records_open(&t->rec, t->cfg->run.dir, t->cfg->log.jsonl, t->cfg->log.tensorboard, t->step);
}

static void teardown(trainer *t) {
    dl_run_records_close(&t->rec);
    dl_loader_close(t->loader);
    dl_grad_sync_destroy(t->sync);
    dl_model_destroy(t->model);
    dl_dataset_close(t->train_set);
    dl_dataset_close(t->valid_set);
    free(t->config_yaml);
    dl_tokenizer_free(t->tokenizer);
    free(t->best);
    free(t->best_cursor);
    if (t->backend_open)
        dl_backend_close(&t->be);
}

/* Click models: what the table costs and where start-up time went, in rows (no BLAS, activations or MFU: they do
 * no dense math). */
static void print_startup_rows(trainer *t, const char *nodes) {
    const dl_config *c = t->cfg;
    const double *st = t->startup_seconds;
    DL_INFO("%s model: %zu parameters (%.1f MiB); %d rank%s on %s (%d thread%s each)", t->model->kind, t->numel,
            (double)t->numel * sizeof(float) / 1048576.0, t->world->size, t->world->size == 1 ? "" : "s", t->be.name,
            t->be.num_threads, t->be.num_threads == 1 ? "" : "s");
    DL_INFO("%s", nodes);
    if (t->world->size > 1) {
        static const char *const table_kept[] = {
            [DL_EMBEDDINGS_REPLICATED] = "a whole copy on every rank, their changes added up each step",
            [DL_EMBEDDINGS_SHARDED] = "rows sharded over the ranks, exchanged each step (exact)",
            [DL_EMBEDDINGS_SHARED] = ("one copy in the node's shared memory, trained in place by every rank "
                                      "(lock-free, as libffm's threads: not bit-reproducible)"),
        };
        DL_INFO("table: %s (comm.embeddings %s)", table_kept[c->comm.embeddings],
                dl_config_enum_text("comm.embeddings", (int)c->comm.embeddings));
    }
    DL_INFO("%lld steps of %d rank%s × %d rows", (long long)t->total_steps, t->world->size,
            t->world->size == 1 ? "" : "s", c->train.batch_per_rank * c->train.grad_accum);
    DL_INFO("start-up %.2f s: data and model %.2f s, parameters %.2f s, loader %.2f s, run records %.2f s",
            st[0] + st[1] + st[2] + st[3], st[0], st[1], st[2], st[3]);
}

static void print_startup(trainer *t, const char *nodes) {
    if (!rank0(t))
        return;
    if (t->rows_data) {
        print_startup_rows(t, nodes);
        return;
    }
    const dl_config *c = t->cfg;
    DL_INFO("%s model: %zu parameters; %d rank%s on %s (%d thread%s each); BLAS %s", t->model->kind, t->numel,
            t->world->size, t->world->size == 1 ? "" : "s", t->be.name, t->be.num_threads,
            t->be.num_threads == 1 ? "" : "s", dl_blas_describe());
    DL_INFO("%s", nodes);
    DL_INFO("activation memory per rank: %.1f MiB with model.checkpoint=%s, %.1f MiB without checkpointing",
            (double)t->model->activation_bytes / 1048576.0, dl_config_enum_text("model.checkpoint", c->model.checkpoint),
            (double)t->model->activation_bytes_without_checkpointing / 1048576.0);
    if (c->model.precision == DL_PRECISION_BF16)
        DL_INFO("model.precision bf16: matmuls on bf16 operands with fp32 accumulation; weights, gradients, "
                "optimizer state and checkpoints in fp32");
    DL_INFO("%lld steps of %d rank%s × %d micro-batch%s × %d rows × %d tokens; peak sgemm %.1f GFLOP/s per rank",
            (long long)t->total_steps, t->world->size, t->world->size == 1 ? "" : "s", c->train.grad_accum,
            c->train.grad_accum == 1 ? "" : "es", c->train.batch_per_rank, c->data.seq_len, t->peak_gflops);
}

/* Epochs completed after the current step (click data, whose epochs have a fixed batch count); 0 for token data. */
static int64_t epochs_done(const trainer *t, int64_t step) {
    uint64_t per_epoch = dl_loader_batches_per_epoch(t->loader);
    return per_epoch ? step * t->cfg->train.grad_accum / (int64_t)per_epoch : 0;
}

/* train.early_stop after an epoch's evaluation: keep a copy of the parameters while the validation loss does not
 * rise; at the first rise, put the best epoch's parameters back and set *stop (libffm's --auto-stop). */
static dl_status early_stop_check(trainer *t, const dl_eval_result *r, int *stop) {
    size_t bytes = (t->model->local_numel ? t->model->local_numel : t->numel) * sizeof(float);
    int64_t epoch = epochs_done(t, t->step);
    DL_CHECK(dl_model_params_ready(t->model));
    if (t->best && r->loss > t->best_loss) {
        DL_CHECK(dl_mem_to_device(&t->be, t->model->param_data, t->best, bytes));
        *stop = 1;
        t->restored_best = 1;
        if (rank0(t))
            DL_INFO("early stop: validation loss rose from %.5f (epoch %lld) to %.5f (epoch %lld); keeping epoch "
                    "%lld's parameters (step %lld)", t->best_loss, (long long)t->best_epoch, r->loss,
                    (long long)epoch, (long long)t->best_epoch, (long long)t->best_step);
        if (rank0(t) && t->rec.metrics_fd >= 0) {
            /* A click model's evaluation loss is its validation logloss (click_model.h). */
            char logloss[64] = "", line[512];
            if (t->rows_data)
                snprintf(logloss, sizeof logloss, ", \"best_val_logloss\": %.6g", t->best_loss);
            int n = snprintf(line, sizeof line,
                             "{\"step\": %lld, \"early_stop\": true, \"best_epoch\": %lld, \"best_step\": %lld, "
                             "\"best_val_loss\": %.6g%s}\n",
                             (long long)t->step, (long long)t->best_epoch, (long long)t->best_step, t->best_loss, logloss);
            dl_run_records_line(&t->rec, t->step, line, n > 0 && (size_t)n < sizeof line ? (size_t)n : 0);
        }
        return DL_OK;
    }
    if (!t->best) {
        t->best = malloc(bytes ? bytes : 1);
        DL_REQUIRE(t->best != NULL, DL_ERR_NOMEM, "cannot allocate %zu bytes for the best epoch's parameters", bytes);
    }
    DL_CHECK(dl_mem_to_host(&t->be, t->best, t->model->param_data, bytes));
    t->best_loss = r->loss;
    t->best_epoch = epoch;
    t->best_step = t->step;
    t->best_tokens_seen = t->tokens_seen;
    t->best_samples_seen = t->samples_seen;
    const uint8_t *cursor = NULL;
    size_t cursor_len = 0;
    dl_loader_cursor(t->loader, &cursor, &cursor_len);
    if (cursor_len > t->best_cursor_len || !t->best_cursor) {
        uint8_t *grown = realloc(t->best_cursor, cursor_len ? cursor_len : 1);
        DL_REQUIRE(grown != NULL, DL_ERR_NOMEM, "cannot keep the best epoch's data cursor (%zu bytes)", cursor_len);
        t->best_cursor = grown;
    }
    if (cursor_len)
        memcpy(t->best_cursor, cursor, cursor_len);
    t->best_cursor_len = cursor_len;
    return DL_OK;
}

dl_status dl_train(const dl_config *cfg, dl_world *world) {
    DL_REQUIRE(cfg != NULL && world != NULL, DL_ERR_INVALID, "dl_train: NULL argument");
    trainer t;
    memset(&t, 0, sizeof t);
    t.cfg = cfg;
    t.world = world;
    dl_run_records_init(&t.rec);
    uint8_t *cursor = NULL;
    size_t cursor_len = 0;
    int resumed = 0;
    double phase = dl_time_seconds();
    dl_status s = setup(&t);
    s = agree(&t, s, "start-up");
    t.rows_data = t.loader_cfg.kind == DL_DATA_CLICKS;
    t.startup_seconds[0] = dl_time_seconds() - phase;
    phase = dl_time_seconds();
    if (s == DL_OK)
        s = agree(&t, maybe_resume(&t, &cursor, &cursor_len, &resumed), "resume");
    if (s == DL_OK && !resumed) {
        /* In the background where the model can (a click table): the trainer's own reads of param_data below
         * (broadcast, checkpoints, early stopping) wait for it through dl_model_params_ready. */
        s = dl_model_init_params(t.model, (uint64_t)cfg->run.seed, 1);
        s = agree(&t, s, "parameter initialisation");
        if (s == DL_OK)
            s = broadcast_params(&t);
    }
    t.startup_seconds[1] = dl_time_seconds() - phase;
    phase = dl_time_seconds();
    if (s == DL_OK)
        s = agree(&t, dl_loader_open(&t.loader, &t.train_source, &t.loader_cfg, cursor, cursor_len), "data loader");
    free(cursor);
    if (s == DL_OK)
        s = count_steps(&t);
    if (s == DL_OK)
        s = count_eval_batches(&t);
    if (s == DL_OK) {
        t.schedule = (dl_schedule){.kind = (dl_schedule_kind)cfg->optim.schedule, .peak_lr = cfg->optim.lr,
                                   .warmup_steps = cfg->optim.warmup_steps, .total_steps = t.total_steps,
                                   .min_lr_ratio = cfg->optim.min_lr_ratio};
        /* A short run (train.steps=20 on a config made for 300) keeps a sensible curve instead of failing. */
        if (t.schedule.warmup_steps >= t.total_steps && t.schedule.kind != DL_LR_INVERSE_SQRT) {
            int64_t warmup = t.total_steps / 10;
            if (rank0(&t))
                DL_WARN("optim.warmup_steps (%lld) is not below the run's %lld steps: warming up over %lld steps "
                        "instead", (long long)t.schedule.warmup_steps, (long long)t.total_steps, (long long)warmup);
            t.schedule.warmup_steps = warmup;
        }
        s = agree(&t, dl_schedule_check(&t.schedule), "schedule");
    }
    t.startup_seconds[2] = dl_time_seconds() - phase;
    phase = dl_time_seconds();
    if (s == DL_OK)
        s = agree(&t, open_run_records(&t), "run directory");
    char nodes[1024] = "";
    if (s == DL_OK)
        s = agree(&t, dl_world_describe_nodes(world, t.be.num_threads, nodes, sizeof nodes), "node summary");
    if (s == DL_OK) {
        /* The sgemm reference only matters to models that report MFU (they do dense math): click models skip it. */
        if (t.model->step_flops)
            t.peak_gflops = dl_blas_gemm_gflops(1024, 3, t.be.num_threads);
        t.startup_seconds[3] = dl_time_seconds() - phase;
        print_startup(&t, nodes);
    }
    int64_t first_step = t.step;
    double started = dl_time_seconds();
    while (s == DL_OK && t.step < t.total_steps) {
        double dt = 0, sums[S_COUNT] = {0}, norm = 0, lr = 0;
        int skipped = 0;
        s = train_step(&t, &dt, sums, &norm, &lr, &skipped);
        if (s != DL_OK)
            break;
        if (rank0(&t))
            log_step(&t, dt, sums, norm, lr, skipped, dl_time_seconds() - started, first_step);
        int last = t.step == t.total_steps;
        int epoch_end = epochs_done(&t, t.step) > epochs_done(&t, t.step - 1);
        int eval_now = (cfg->train.eval_every > 0 && t.step % cfg->train.eval_every == 0) || last ||
                       (epoch_end && (cfg->train.eval_every == 0 || cfg->train.early_stop));
        dl_eval_result r;
        int early = 0;
        if (t.valid_set && t.eval_batches > 0 && eval_now) {
            s = run_eval(&t, &r);
            if (s == DL_OK && epoch_end && cfg->train.early_stop)
                s = early_stop_check(&t, &r, &early);
        }
        int stop = sums[S_STOP] > 0;
        int records_stop = sums[S_RECORDS] > 0;
        if (s == DL_OK && (last || stop || early || records_stop ||
                           (cfg->ckpt.every > 0 && t.step % cfg->ckpt.every == 0)))
            s = save_checkpoint(&t);
        if (records_stop) {
            s = records_stop_status(&t, s);
            break;
        }
        if (s == DL_OK && early)
            break;
        if (s == DL_OK && stop && !last) {
            if (rank0(&t))
                DL_INFO("stopping on %s at step %lld after a checkpoint; requeue or rerun to continue",
                        dl_signals_which() ? dl_signals_which_name() : "a signal on another rank", (long long)t.step);
            s = DL_FAIL(DL_ERR_INTERRUPTED, "stopped on %s at step %lld (checkpoint written)",
                        dl_signals_which() ? dl_signals_which_name() : "a signal on another rank", (long long)t.step);
        }
    }
    /* A record that failed at the last step: the final checkpoint is written, the run still fails. */
    if (s == DL_OK)
        s = agree(&t, t.rec.failed ? records_stop_status(&t, DL_OK) : DL_OK, "writing the run records");
    /* Click runs also say the most memory any rank held (tables are the memory question there), and how much of it
     * is file pages: the record files are mapped, so a large data set's pages count in the resident size although
     * they are the page cache's, shared and reclaimable (10M Criteo-shaped rows: 4 GB of a 5.1 GB peak). */
    int64_t peak_kib[2] = {0, 0};
    if (s == DL_OK && t.rows_data) {
        struct rusage usage;
        peak_kib[0] = getrusage(RUSAGE_SELF, &usage) == 0 ? (int64_t)usage.ru_maxrss : 0;
        peak_kib[1] = dl_memstat_kib("RssFile:");
        peak_kib[1] = peak_kib[1] > 0 ? peak_kib[1] : 0; /* none outside Linux: said as 0 */
        s = dl_comm_allreduce_max_i64(t.world, peak_kib, 2, "peak memory");
    }
    if (s == DL_OK && rank0(&t)) {
        char took[32];
        format_duration(took, sizeof took, dl_time_seconds() - started);
        if (t.rows_data)
            DL_INFO("finished %lld steps in %s (%.3g rows seen; peak resident memory %.0f MiB per rank at most, "
                    "%.0f MiB of it file pages: mapped records and code)",
                    (long long)t.step, took, t.tokens_seen, (double)peak_kib[0] / 1024.0, (double)peak_kib[1] / 1024.0);
        else
            DL_INFO("finished %lld steps in %s (%.3g tokens seen)", (long long)t.step, took, t.tokens_seen);
    }
    teardown(&t);
    return s;
}
