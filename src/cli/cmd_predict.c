/* cmd_predict.c — `dealer predict CKPT DATA -o OUT`: click probabilities from an FM or FFM checkpoint, as libffm's
 * ffm-predict writes them.
 *
 * The model is rebuilt from the config stored in the checkpoint (on the CPU, one process, the whole table) and its
 * weights are read back; the checkpoint may come from any number of ranks and either table mode, since checkpoints
 * always hold the whole table. DATA is libffm text (`label field:feature:value ...`) or a record file of click rows
 * (*.tfrecord, or any file with an .idx next to it). OUT gets one probability per line, in input order, and appears
 * atomically. Labels are in every row of both formats, so the logloss and AUC over DATA are printed too. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "train/run_config.h"
#include "core/fs.h"
#include "data/batch.h"
#include "data/convert.h"
#include "data/dataset.h"
#include "ckpt/checkpoint.h"
#include "models/click/ffm.h"
#include "models/click/fm.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: dealer predict CKPT DATA -o OUT [--batch N]\n\n"
            "Writes to OUT one click probability per row of DATA (one per line, in order), from the FM or FFM\n"
            "model in CKPT (run_dir/ckpt/step_NNNNNNNN.h5, run_dir/ckpt/latest, or a run directory: its latest\n"
            "checkpoint), and prints the logloss and AUC over DATA. OUT may not be DATA or CKPT.\n\n"
            "DATA is libffm text ('label field:feature:value ...', as ffm-predict reads) or a record file of click\n"
            "rows (*.tfrecord, or a file with an .idx index next to it).\n\n"
            "options:\n"
            "  -o, --output OUT   the predictions file (required); written atomically\n"
            "  --batch N          rows scored at a time (default 4096)\n");
}

typedef struct predictor {
    dl_model model;
    dl_backend be;
    int backend_open, model_ready;
    dl_config cfg;
    int num_fields, field_aware;
    dl_batch batch;
    float *prob, *scores, *labels;
    int64_t count, cap;
    double loss;
    dl_atomic_file out;
} predictor;

/* Rebuilds the checkpoint's model (one process, replicated table) and reads its weights. */
static dl_status load_model(predictor *p, const char *path, int batch_rows) {
    dl_ckpt_meta meta;
    DL_CHECK(dl_ckpt_read_meta(path, &meta));
    dl_status s = dl_config_load_string(&p->cfg, meta.config_yaml, strlen(meta.config_yaml), path);
    free(meta.config_yaml);
    DL_CHECK_CTX(s, "reading the config stored in %s", path);
    const dl_click_kind *kind = p->cfg.model.kind == DL_MODEL_FFM ? &dl_ffm_kind
                                : p->cfg.model.kind == DL_MODEL_FM ? &dl_fm_kind
                                                                   : NULL;
    if (!kind) {
        s = DL_FAIL(DL_ERR_INVALID, "%s holds a %s model; dealer predict scores fm and ffm models", path,
                    meta.model_kind);
        dl_error_hint("use dealer generate for gpt checkpoints");
        return s;
    }
    p->field_aware = kind->field_aware;
    p->num_fields = p->cfg.model.num_fields;
    DL_CHECK(dl_backend_open(&p->be, "cpu", 0));
    p->backend_open = 1;
    dl_model_setup setup = dl_config_model_setup(&p->cfg);
    DL_CHECK(dl_click_model_create(&p->model, kind, &setup, &p->be, batch_rows, 1));
    p->model_ready = 1;
    dl_ckpt_tensors t = {p->model.params, p->model.param_data, 0, NULL, NULL, 0, 0};
    uint8_t *cursor = NULL;
    size_t cursor_len = 0;
    s = dl_ckpt_load(path, &t, 0, 0, &cursor, &cursor_len);
    free(cursor);
    return s;
}

/* Scores the rows gathered in p->batch and writes their probabilities. */
static dl_status flush(predictor *p) {
    dl_click_batch *cb = &p->batch.clicks;
    if (cb->num_rows == 0)
        return DL_OK;
    DL_CHECK(dl_click_model_predict(&p->model, cb, p->prob, &p->loss));
    if (p->count + cb->num_rows > p->cap) {
        int64_t cap = p->cap ? p->cap * 2 : 65536;
        while (cap < p->count + cb->num_rows)
            cap *= 2;
        float *s = realloc(p->scores, (size_t)cap * sizeof(float));
        if (s)
            p->scores = s;
        float *l = s ? realloc(p->labels, (size_t)cap * sizeof(float)) : NULL;
        if (l)
            p->labels = l;
        DL_REQUIRE(s && l, DL_ERR_NOMEM, "cannot keep %" PRId64 " scores for the AUC", cap);
        p->cap = cap;
    }
    char line[32];
    for (int b = 0; b < cb->num_rows; b++) {
        int n = snprintf(line, sizeof line, "%.6g\n", (double)p->prob[b]);
        DL_CHECK(dl_atomic_write(&p->out, line, (size_t)n));
        p->scores[p->count + b] = p->prob[b];
        p->labels[p->count + b] = cb->labels[b];
    }
    p->count += cb->num_rows;
    cb->num_rows = 0;
    cb->nnz = 0;
    cb->row_ptr[0] = 0;
    return DL_OK;
}

/* Appends one row to the batch (checking its fields against the model), flushing a full batch first. */
static dl_status add_row(predictor *p, const dl_click_row *row, const char *where) {
    dl_click_batch *cb = &p->batch.clicks;
    if (cb->num_rows == cb->rows)
        DL_CHECK(flush(p));
    for (size_t e = 0; p->field_aware && e < row->field.len; e++)
        if (row->field.data[e] >= p->num_fields) {
            dl_status s = DL_FAIL(DL_ERR_INVALID, "%s: field %d is outside [0, %d), the fields of the checkpoint's "
                                                  "model (model.num_fields)", where, (int)row->field.data[e],
                                  p->num_fields);
            dl_error_hint("score data with the fields the model was trained on");
            return s;
        }
    size_t n = row->feature.len;
    DL_CHECK(dl_click_batch_reserve(cb, cb->nnz + (int64_t)n));
    memcpy(cb->features + cb->nnz, row->feature.data, n * sizeof(int32_t));
    memcpy(cb->fields + cb->nnz, row->field.data, n * sizeof(int32_t));
    memcpy(cb->values + cb->nnz, row->value.data, n * sizeof(float));
    cb->nnz += (int64_t)n;
    cb->labels[cb->num_rows] = row->label;
    cb->row_ptr[++cb->num_rows] = (int32_t)cb->nnz;
    return DL_OK;
}

static int is_record_file(const char *path) {
    size_t n = strlen(path);
    if (n > 9 && strcmp(path + n - 9, ".tfrecord") == 0)
        return 1;
    char idx[4200];
    snprintf(idx, sizeof idx, "%s.idx", path);
    struct stat st;
    return stat(idx, &st) == 0;
}

static dl_status add_text_row(void *ctx, const dl_click_row *row, const char *where) {
    return add_row((predictor *)ctx, row, where);
}

static dl_status score_text(predictor *p, const char *path) {
    return dl_libffm_for_each_row(path, "give libffm text or a record file", add_text_row, p);
}

static dl_status score_records(predictor *p, const char *path) {
    dl_dataset *set = NULL;
    DL_CHECK(dl_dataset_open_as(&set, &path, 1, "dealer predict's DATA argument"));
    dl_doc_source src;
    dl_dataset_source(set, &src);
    dl_click_row row;
    memset(&row, 0, sizeof row);
    char where[4200];
    dl_status s = src.read_click ? DL_OK : DL_FAIL(DL_ERR_FORMAT, "%s does not hold click rows", path);
    for (uint64_t i = 0; s == DL_OK && i < src.num_records; i++) {
        snprintf(where, sizeof where, "%s: record %" PRIu64, path, i);
        s = src.read_click(src.ctx, i, &row);
        if (s == DL_OK)
            s = add_row(p, &row, where);
    }
    dl_click_row_free(&row);
    dl_dataset_close(set);
    return s;
}

static void predictor_free(predictor *p) {
    if (p->model_ready && p->model.destroy)
        p->model.destroy(&p->model);
    if (p->backend_open)
        dl_backend_close(&p->be);
    dl_batch_free(&p->batch);
    dl_config_free(&p->cfg);
    free(p->prob);
    free(p->scores);
    free(p->labels);
    dl_atomic_abort(&p->out);
}

enum { OPT_BATCH = DL_CLI_LONG_ONLY };
static const dl_cli_option predict_options[] = {{"output", 'o', "a file name"},
                                                {"batch", OPT_BATCH, "an integer in [1, 1048576]"},
                                                {NULL, 0, NULL}};

int dl_cmd_predict(int argc, char **argv) {
    if (dl_cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *ckpt = NULL, *data = NULL, *output = NULL;
    uint64_t batch_rows = 4096;
    dl_cli_args a;
    dl_cli_args_init(&a, "predict", predict_options, argc, argv);
    for (int id; (id = dl_cli_next(&a)) != DL_CLI_END;) {
        if (id == DL_CLI_POSITIONAL) {
            if (!ckpt)
                ckpt = a.arg;
            else if (!data)
                data = a.arg;
            else
                return dl_cli_usage_error("predict", "unexpected argument '%s'", a.arg);
        } else if (id == 'o') {
            output = a.arg;
        } else if (id != OPT_BATCH || dl_cli_uint(&a, 1, 1 << 20, &batch_rows)) {
            return 2;
        }
    }
    if (!ckpt || !data || !output) {
        fprintf(stderr, "dealer predict: need CKPT, DATA and -o OUT (see --help)\n");
        return 2;
    }
    predictor p;
    memset(&p, 0, sizeof p);
    char path[4300];
    dl_status s = dl_check_input_file(data, "give libffm text or a record file");
    if (s == DL_OK)
        s = dl_check_output_not_input(output, data, "-o");
    if (s == DL_OK)
        s = dl_ckpt_resolve(ckpt, NULL, path, sizeof path);
    if (s == DL_OK)
        s = dl_check_output_not_input(output, path, "-o");
    if (s == DL_OK)
        s = load_model(&p, path, (int)batch_rows);
    if (s == DL_OK)
        s = dl_batch_alloc(&p.batch, DL_DATA_CLICKS, (int32_t)batch_rows, 1);
    if (s == DL_OK) {
        p.prob = malloc((size_t)batch_rows * sizeof(float));
        if (!p.prob)
            s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate %d probabilities", (int)batch_rows);
    }
    if (s == DL_OK)
        s = dl_atomic_open(&p.out, output);
    if (s == DL_OK)
        s = is_record_file(data) ? score_records(&p, data) : score_text(&p, data);
    if (s == DL_OK)
        s = flush(&p);
    if (s == DL_OK && p.count == 0) {
        s = DL_FAIL(DL_ERR_INVALID, "%s holds no rows to score", data);
        dl_error_hint("give a libffm text file or a record file of click rows");
    }
    if (s == DL_OK)
        s = dl_atomic_commit(&p.out);
    if (s != DL_OK) {
        int code = dl_cli_report("predict", s);
        predictor_free(&p);
        return code;
    }
    double auc = dl_click_auc(p.scores, p.labels, p.count);
    printf("wrote %" PRId64 " predictions to %s\nlogloss = %.5f\n", p.count, output, p.loss / (double)p.count);
    if (isfinite(auc))
        printf("auc = %.5f\n", auc);
    else
        printf("auc = n/a (the labels hold one class only)\n");
    predictor_free(&p);
    return 0;
}
