/* reference.c — the reference log-probs as tables: computing them for `dealer dpo precompute-ref`, and checking a
 * precomputed file against the run that reads it (its checkpoint, datasets and data settings). */
#include "models/dpo/dpo_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fs.h"

/* Record count and file bytes of the dataset a config list names (what a reference table is checked against). */
static dl_status dataset_identity(const dl_str_list *list, const char *key, uint64_t *records, uint64_t *bytes) {
    dl_dataset *ds = NULL;
    DL_CHECK_CTX(dl_dataset_open(&ds, (const char *const *)list->items, (size_t)list->count), "%s", key);
    *records = dl_dataset_count(ds);
    *bytes = 0;
    dl_status s = DL_OK;
    for (size_t f = 0; f < dl_dataset_num_files(ds) && s == DL_OK; f++) {
        uint64_t size = 0;
        s = dl_file_size(dl_dataset_file_path(ds, f), &size);
        *bytes += size;
    }
    dl_dataset_close(ds);
    return s;
}

static dl_status check_table(const dl_dpo_table *t, const dl_str_list *list, const char *key, const char *path) {
    uint64_t records = 0, bytes = 0;
    DL_CHECK(dataset_identity(list, key, &records, &bytes));
    if (t->num_records != records || t->bytes != bytes) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "dpo.reference_file %s was computed over %llu records (%llu bytes) of "
                                             "%s, which now holds %llu records (%llu bytes)",
                              path, (unsigned long long)t->num_records, (unsigned long long)t->bytes, key,
                              (unsigned long long)records, (unsigned long long)bytes);
        dl_error_hint("rerun dealer dpo precompute-ref with this config");
        return s;
    }
    return DL_OK;
}

static const char *overlong_name(int value) {
    const char *name = dl_cfg_rows_enum_text(dl_data_config_keys, "overlong", value);
    return name ? name : "?";
}

dl_status dl_dpo_load_reference_file(dl_dpo *d, const char *init_path, const dl_model_setup *setup) {
    const dl_data_config *data = setup->data;
    const char *path = setup->dpo->reference_file;
    uint32_t crc = 0;
    DL_CHECK(dl_dpo_load_checkpoint(init_path, d->be, d->policy, &crc, NULL));
    dl_dpo_reference_meta meta;
    dl_dpo_table train, valid;
    int has_valid = 0;
    DL_CHECK_CTX(dl_dpo_reference_read(path, &meta, &train, &valid, &has_valid), "dpo.reference_file");
    dl_status s = DL_OK;
    if (meta.params_crc != crc) {
        s = DL_FAIL(DL_ERR_CONFIG, "dpo.reference_file %s was computed from %s, whose parameters differ from "
                                   "model.init_from %s",
                    path, meta.checkpoint, init_path);
        dl_error_hint("rerun dealer dpo precompute-ref, or point model.init_from at the checkpoint the file names");
    } else if (meta.seq_len != data->seq_len || meta.overlong != (int)data->overlong) {
        s = DL_FAIL(DL_ERR_CONFIG, "dpo.reference_file %s was computed with data.seq_len %d and data.overlong %s, this "
                                   "run has %d and %s",
                    path, meta.seq_len, overlong_name(meta.overlong), data->seq_len,
                    overlong_name(data->overlong));
        dl_error_hint("the truncation of long pairs changes their log-probs: rerun dealer dpo precompute-ref");
    }
    if (s == DL_OK)
        s = check_table(&train, &data->train, "data.train", path);
    if (s == DL_OK && data->valid.count > 0) {
        if (!has_valid) {
            s = DL_FAIL(DL_ERR_CONFIG, "dpo.reference_file %s holds no log-probs for data.valid", path);
            dl_error_hint("rerun dealer dpo precompute-ref with data.valid set");
        } else {
            s = check_table(&valid, &data->valid, "data.valid", path);
        }
    }
    if (s == DL_OK)
        s = dl_dpo_set_tables(d, &train, has_valid ? &valid : NULL);
    dl_dpo_table_free(&train);
    dl_dpo_table_free(&valid);
    return s;
}

/* ---- precomputing the reference -------------------------------------------------------------------------------- */

static dl_status table_for(dl_dpo *d, const dl_str_list *list, const char *key, const dl_loader_config *lc,
                           dl_dpo_table *table, dl_loader_stats *stats, dl_dpo_progress_fn progress, void *ctx) {
    dl_dataset *ds = NULL;
    DL_CHECK_CTX(dl_dataset_open(&ds, (const char *const *)list->items, (size_t)list->count), "%s", key);
    dl_doc_source src;
    dl_dataset_source(ds, &src);
    uint64_t records = 0, bytes = 0;
    dl_status s = dataset_identity(list, key, &records, &bytes);
    if (s == DL_OK)
        s = dl_dpo_table_alloc(table, src.num_records);
    if (s == DL_OK) {
        table->bytes = bytes;
        s = dl_dpo_sequence_table(d, &src, lc, table, stats, key, progress, ctx);
        if (s != DL_OK)
            dl_error_context("%s", key);
    }
    dl_dataset_close(ds);
    return s;
}

dl_status dl_dpo_precompute_reference(const dl_model_setup *setup, const dl_backend *be, const char *out_path,
                                      dl_loader_stats *train_stats, dl_loader_stats *valid_stats,
                                      dl_dpo_progress_fn progress, void *progress_ctx) {
    DL_REQUIRE(setup && setup->model && setup->dpo && setup->data && be && out_path, DL_ERR_INVALID,
               "dl_dpo_precompute_reference: NULL argument");
    const dl_data_config *data = setup->data;
    DL_REQUIRE(out_path[0], DL_ERR_CONFIG, "no output file: set dpo.reference_file (or pass --out FILE)");
    DL_REQUIRE(data->train.count > 0, DL_ERR_CONFIG, "data.train names no record files");
    if (data->overlong == DL_OVERLONG_SPLIT) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "data.overlong split does not apply to preference pairs");
        dl_error_hint("use truncate, drop or error");
        return s;
    }
    dl_gpt_config gc = dl_model_gpt_config(setup->model);
    gc.checkpoint_every = 1; /* forward only */
    dl_dpo_settings st = dl_dpo_settings_of(setup->dpo);
    int rows = setup->batch_per_rank < 2 ? 2 : setup->batch_per_rank;
    dl_dpo_reference_meta meta;
    memset(&meta, 0, sizeof meta);
    DL_CHECK(dl_dpo_resolve_checkpoint(setup->model->init_from, meta.checkpoint, sizeof meta.checkpoint));
    dl_dpo *d = NULL;
    DL_CHECK(dl_dpo_create(&d, &gc, &st, be, rows * data->seq_len, 0));
    dl_status s = dl_dpo_load_checkpoint(meta.checkpoint, be, d->policy, &meta.params_crc, &meta.checkpoint_step);
    meta.seq_len = data->seq_len;
    meta.overlong = (int)data->overlong;
    dl_loader_config lc;
    dl_loader_config_default(&lc);
    lc.kind = DL_DATA_PAIRS;
    lc.batch_rows = rows;
    lc.seq_len = data->seq_len;
    lc.packing = data->packing;
    lc.pack_window = data->pack_window;
    lc.seed = (uint64_t)setup->seed;
    lc.prefetch = data->prefetch;
    lc.skip_corrupt = data->skip_corrupt;
    lc.overlong = (int)data->overlong;
    dl_dpo_table train = {0}, valid = {0};
    int with_valid = data->valid.count > 0;
    if (s == DL_OK)
        s = table_for(d, &data->train, "data.train", &lc, &train, train_stats, progress, progress_ctx);
    if (s == DL_OK && with_valid)
        s = table_for(d, &data->valid, "data.valid", &lc, &valid, valid_stats, progress, progress_ctx);
    if (s == DL_OK)
        s = dl_dpo_reference_write(out_path, &meta, &train, with_valid ? &valid : NULL);
    dl_dpo_table_free(&train);
    dl_dpo_table_free(&valid);
    dl_dpo_destroy(d);
    return s;
}
