/* cmd_eval.c — `dealer eval CKPT [--data FILE...] [--batches N]`: the loss of a GPT checkpoint on record files.
 *
 * One process, no MPI: the model is rebuilt from the config stored in the checkpoint, its parameters loaded, and
 * the records read in file order (no shuffle), packed exactly as the trainer packs them (same rows, seq_len, packing
 * and window), then forward only. The loss is the mean cross-entropy over every target token, in nats per token
 * (per byte for the byte-level tokenizer), with its perplexity exp(loss), bits per token and bits per byte (the
 * loss in bits over the UTF-8 bytes the target tokens stand for, by the run's tokenizer), so byte-level and BPE
 * runs compare. The data must have been made with the run's tokenizer (its .tokenizer stamp). Attention never
 * crosses a document and a document's split pieces do not depend on the batch shape, so over a whole file the
 * figure does not depend on how documents were grouped into rows: a 1-rank run with train.eval_steps=0 reports the
 * same val_loss up to float rounding. */
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "train/run_config.h"
#include "core/timer.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "ckpt/checkpoint.h"
#include "models/model.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: dealer eval CKPT [--data FILE...] [--batches N] [--rows B] [--device auto|cpu|cuda]\n"
            "                        [--threads T] [--tokenizer PATH] [--json]\n\n"
            "Validation loss of the GPT in CKPT (run_dir/ckpt/step_NNNNNNNN.h5, run_dir/ckpt/latest, or a run\n"
            "directory for its latest checkpoint) on record files: by default the checkpoint config's data.valid. Reads the files in order,\n"
            "packs them as training did (data.seq_len, data.packing; B = train.batch_per_rank rows unless --rows)\n"
            "and prints the mean loss per target token in nats, its perplexity, bits per token and bits per byte\n"
            "(over the bytes the target tokens decode to, so byte-level and BPE runs compare). The run's\n"
            "tokenizer (run_dir/tokenizer.json, or byte-level) is used; --tokenizer PATH names it when the\n"
            "checkpoint sits elsewhere. Data made with another tokenizer is refused (exit 2).\n"
            "  --batches N   stop after N batches (default: all of the data)\n"
            "  --json        print one JSON object instead of the text line\n\n"
            "Exit codes: 0 ok, 1 runtime failure, 2 bad usage or input.\n");
}

typedef struct options {
    const char *ckpt, *device, *tokenizer;
    char **data;
    int num_data;
    long batches, rows, threads;
    int json;
} options;

enum { OPT_DATA = DL_CLI_LONG_ONLY, OPT_BATCHES, OPT_ROWS, OPT_THREADS, OPT_TOKENIZER, OPT_DEVICE, OPT_JSON };
static const dl_cli_option eval_options[] = {{"data", OPT_DATA, "at least one record file"},
                                             {"batches", OPT_BATCHES, "an integer >= 1"},
                                             {"rows", OPT_ROWS, "an integer in [1, 1048576]"},
                                             {"threads", OPT_THREADS, "an integer in [1, 1024]"},
                                             {"tokenizer", OPT_TOKENIZER, "a path"},
                                             {"device", OPT_DEVICE, "a value (auto, cpu or cuda)"},
                                             {"json", OPT_JSON, NULL},
                                             {NULL, 0, NULL}};

static int parse_args(int argc, char **argv, options *o) {
    *o = (options){NULL, "auto", NULL, NULL, 0, 0, 0, 0, 0};
    o->data = calloc((size_t)argc, sizeof(char *));
    if (!o->data) {
        fprintf(stderr, "dealer eval: out of memory\n");
        return -1;
    }
    dl_cli_args a;
    dl_cli_args_init(&a, "eval", eval_options, argc, argv);
    for (int id; (id = dl_cli_next(&a)) != DL_CLI_END;) {
        uint64_t count = 0;
        if (id == DL_CLI_POSITIONAL) {
            if (o->ckpt) {
                fprintf(stderr, "dealer eval: unexpected argument '%s' (one checkpoint; data files go after --data)\n",
                        a.arg);
                return -1;
            }
            o->ckpt = a.arg;
        } else if (id == OPT_DATA) { /* --data A B C: the files run up to the next option */
            for (const char *file = a.arg; file; file = dl_cli_take_positional(&a))
                o->data[o->num_data++] = (char *)file;
        } else if (id == OPT_JSON) {
            o->json = 1;
        } else if (id == OPT_BATCHES || id == OPT_ROWS || id == OPT_THREADS) {
            uint64_t max = id == OPT_BATCHES ? LONG_MAX : id == OPT_ROWS ? 1 << 20 : 1024;
            if (dl_cli_uint(&a, 1, max, &count))
                return -1;
            *(id == OPT_BATCHES ? &o->batches : id == OPT_ROWS ? &o->rows : &o->threads) = (long)count;
        } else if (id == OPT_TOKENIZER) {
            o->tokenizer = a.arg;
        } else if (id == OPT_DEVICE) {
            o->device = a.arg;
        } else {
            return -1;
        }
    }
    if (!o->ckpt) {
        fprintf(stderr, "dealer eval: missing CKPT (see --help)\n");
        return -1;
    }
    if (strcmp(o->device, "auto") && strcmp(o->device, "cpu") && strcmp(o->device, "cuda")) {
        fprintf(stderr, "dealer eval: --device must be auto, cpu or cuda, got '%s'\n", o->device);
        return -1;
    }
    return 0;
}

typedef struct eval_result {
    dl_step_stats stats;
    double target_bytes; /* UTF-8 bytes the target tokens decode to */
    long batches;
    double seconds;
} eval_result;

/* Everything the evaluation owns, released by eval_close whatever state it reached. */
typedef struct evaluation {
    dl_config cfg;
    int cfg_loaded;
    dl_backend be;
    int be_open;
    dl_model *model;
    dl_dataset *set;
    dl_loader *loader;
    float *host;
    dl_tokenizer *tok;
    char *tokenizer_hash; /* what the checkpoint recorded */
} evaluation;

static void eval_close(evaluation *e) {
    dl_loader_close(e->loader);
    dl_dataset_close(e->set);
    dl_model_destroy(e->model);
    if (e->be_open)
        dl_backend_close(&e->be);
    if (e->cfg_loaded)
        dl_config_free(&e->cfg);
    free(e->host);
    dl_tokenizer_free(e->tok);
    free(e->tokenizer_hash);
}

static dl_status load_config(evaluation *e, const char *path) {
    dl_ckpt_meta meta;
    DL_CHECK(dl_ckpt_read_meta(path, &meta));
    if (strcmp(meta.model_kind, "gpt") != 0) {
        free(meta.config_yaml);
        dl_status s = DL_FAIL(DL_ERR_INVALID, "%s holds a %s model; dealer eval evaluates gpt checkpoints", path,
                              meta.model_kind);
        dl_error_hint("click models: see dealer predict");
        return s;
    }
    DL_REQUIRE(meta.config_yaml != NULL, DL_ERR_FORMAT, "%s stores no config", path);
    e->tokenizer_hash = strdup(meta.tokenizer_hash);
    dl_status s = dl_config_load_string(&e->cfg, meta.config_yaml, strlen(meta.config_yaml), path);
    free(meta.config_yaml);
    e->cfg_loaded = 1;
    DL_CHECK_CTX(s, "reading the config stored in %s", path);
    return DL_OK;
}

static dl_status load_params(evaluation *e, const char *path) {
    size_t numel = dl_tensor_table_numel(e->model->params);
    e->host = malloc(numel * sizeof(float));
    DL_REQUIRE(e->host != NULL, DL_ERR_NOMEM, "cannot allocate %zu floats for the parameters", numel);
    dl_ckpt_tensors t = {e->model->params, e->host, 0, NULL, NULL, 0, 0};
    uint8_t *cursor = NULL;
    size_t cursor_len = 0;
    dl_status s = dl_ckpt_load(path, &t, 0, 0, &cursor, &cursor_len);
    free(cursor);
    DL_CHECK(s);
    return dl_mem_to_device(&e->be, e->model->param_data, e->host, numel * sizeof(float));
}

static dl_status evaluate(const options *o, evaluation *e, char *path, size_t cap, eval_result *r) {
    memset(r, 0, sizeof *r);
    DL_CHECK(dl_ckpt_resolve(o->ckpt, NULL, path, cap));
    DL_CHECK(load_config(e, path));
    const dl_config *c = &e->cfg;
    const dl_str_list *files = &c->data.valid;
    dl_str_list given = {o->num_data, o->data};
    if (o->num_data > 0)
        files = &given;
    if (files->count == 0) {
        dl_status s = DL_FAIL(DL_ERR_INVALID, "no data: the config in %s has an empty data.valid", path);
        dl_error_hint("name record files with --data FILE...");
        return s;
    }
    int rows = o->rows > 0 ? (int)o->rows : c->train.batch_per_rank;
    if (o->threads > 0)
        omp_set_num_threads((int)o->threads);
    DL_CHECK(dl_backend_open(&e->be, o->device, 0));
    e->be_open = 1;
    DL_CHECK(dl_config_create_model(&e->model, c, &e->be, rows, c->data.seq_len));
    DL_CHECK(load_params(e, path));
    char tok_name[4400];
    DL_CHECK(dl_cli_checkpoint_tokenizer(path, e->tokenizer_hash ? e->tokenizer_hash : "", o->tokenizer, &e->tok,
                                         tok_name, sizeof tok_name));
    for (int i = 0; i < files->count; i++)
        DL_CHECK_CTX(dl_tokenizer_check_data(files->items[i], e->tok, tok_name), "%s",
                     o->num_data > 0 ? "--data" : "data.valid");
    DL_CHECK_CTX(dl_dataset_open(&e->set, (const char *const *)files->items, (size_t)files->count),
                 o->num_data > 0 ? "--data" : "data.valid");
    dl_doc_source source;
    dl_dataset_source(e->set, &source);
    dl_loader_config lc; /* as the trainer's evaluation: its training shape, in order, one pass */
    dl_loader_config_default(&lc);
    lc.kind = dl_model_data_kind(&c->model);
    lc.batch_rows = rows;
    lc.seq_len = c->data.seq_len;
    lc.packing = c->data.packing;
    lc.pack_window = c->data.pack_window;
    lc.shuffle = 0;
    lc.seed = (uint64_t)c->run.seed;
    lc.epochs = 1;
    lc.prefetch = 0;
    lc.skip_corrupt = c->data.skip_corrupt;
    DL_CHECK(dl_loader_open(&e->loader, &source, &lc, NULL, 0));
    double t0 = dl_time_seconds();
    while (o->batches == 0 || r->batches < o->batches) {
        const dl_batch *batch;
        DL_CHECK(dl_loader_next(e->loader, &batch));
        if (batch->end_of_data)
            break;
        DL_CHECK_CTX(e->model->eval_batch(e->model, batch, &r->stats), "batch %ld", r->batches + 1);
        const dl_token_batch *tb = &batch->tokens;
        for (size_t i = 0, n = (size_t)tb->rows * (size_t)tb->seq_len; i < n; i++) {
            const uint8_t *bytes;
            size_t k;
            if (tb->targets[i] >= 0 && dl_tokenizer_token_bytes(e->tok, tb->targets[i], &bytes, &k) == DL_OK)
                r->target_bytes += (double)k;
        }
        dl_error_clear();
        r->batches++;
    }
    r->seconds = dl_time_seconds() - t0;
    DL_REQUIRE(r->stats.targets > 0, DL_ERR_INVALID, "the data holds no target token (every document shorter than 2 "
                                                     "tokens?)");
    return DL_OK;
}

static void print_result(const options *o, const char *path, const eval_result *r) {
    double loss = r->stats.loss_sum / r->stats.targets;
    double tokens_per_s = r->seconds > 0 ? r->stats.tokens / r->seconds : 0;
    double bits_per_byte = r->target_bytes > 0 ? r->stats.loss_sum / log(2.0) / r->target_bytes : 0.0;
    if (o->json) {
        printf("{\"checkpoint\": \"%s\", \"loss\": %.6f, \"perplexity\": %.6g, \"bits_per_token\": %.6f, "
               "\"bits_per_byte\": %.6f, \"target_bytes\": %.0f, "
               "\"targets\": %.0f, \"tokens\": %.0f, \"batches\": %ld, \"seconds\": %.3f}\n",
               path, loss, exp(loss), loss / log(2.0), bits_per_byte, r->target_bytes, r->stats.targets,
               r->stats.tokens, r->batches, r->seconds);
    } else {
        printf("%s: loss %.4f nats/token | perplexity %.3f | %.4f bits/token | %.4f bits/byte | %.0f targets in "
               "%ld batch%s (%.0f tokens/s)\n",
               path, loss, exp(loss), loss / log(2.0), bits_per_byte, r->stats.targets, r->batches,
               r->batches == 1 ? "" : "es", tokens_per_s);
    }
}

int dl_cmd_eval(int argc, char **argv) {
    if (dl_cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    options o;
    if (parse_args(argc, argv, &o) != 0) {
        free(o.data);
        return 2;
    }
    evaluation e;
    memset(&e, 0, sizeof e);
    char path[4300];
    eval_result r;
    dl_status s = evaluate(&o, &e, path, sizeof path, &r);
    eval_close(&e);
    free(o.data);
    if (s != DL_OK)
        return dl_cli_report("eval", s);
    print_result(&o, path, &r);
    return 0;
}
