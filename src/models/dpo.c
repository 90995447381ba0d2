/* dpo.c — the DPO model: per-document log-probs, the pair head, the backward chain, reference tables and their
 * HDF5 file, and the model.kind dpo factory (see dpo.h for the design).
 *
 * Per-pair work is tiny next to the GPT (a few floats per pair against a forward over every token), so the pair
 * arrays are gathered on the host: document sums come back from the device, are matched to pairs through the
 * batch's pair_chosen / pair_rejected, and go to the device again only for the loss ops. That keeps one code path
 * for every backend at the cost of a few kilobytes copied per step. */
#include "models/dpo.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/log.h"
#include "data/pack.h"
#include "core/crc32c.h"
#include "ckpt/checkpoint.h"
#include "ckpt/h5attr.h"
#include "models/gpt_init.h"

const char *const dl_dpo_metric_names[DL_DPO_NUM_METRICS] = {
    "rewards/chosen", "rewards/rejected", "rewards/accuracy", "rewards/margin",
    "logps/chosen",   "logps/rejected",   "data/truncated",   "data/dropped",
};

dl_status dl_dpo_settings_check(const dl_dpo_settings *s) {
    DL_REQUIRE(s != NULL, DL_ERR_INVALID, "dl_dpo_settings_check: NULL settings");
    DL_REQUIRE(s->loss_kind == DL_DPO_SIGMOID || s->loss_kind == DL_DPO_IPO || s->loss_kind == DL_DPO_HINGE,
               DL_ERR_CONFIG, "dpo.loss: unknown loss kind %d (sigmoid, ipo or hinge)", s->loss_kind);
    DL_REQUIRE(isfinite(s->beta) && s->beta > 0, DL_ERR_CONFIG, "dpo.beta must be a finite number > 0, got %g",
               (double)s->beta);
    DL_REQUIRE(s->label_smoothing >= 0 && s->label_smoothing < 0.5f, DL_ERR_CONFIG,
               "dpo.label_smoothing must be in [0, 0.5), got %g", (double)s->label_smoothing);
    if (s->label_smoothing > 0 && s->loss_kind != DL_DPO_SIGMOID) {
        dl_status st = DL_FAIL(DL_ERR_CONFIG, "dpo.label_smoothing (%g) applies only to dpo.loss sigmoid, not %s",
                               (double)s->label_smoothing, s->loss_kind == DL_DPO_IPO ? "ipo" : "hinge");
        dl_error_hint("set dpo.label_smoothing: 0, or use dpo.loss: sigmoid");
        return st;
    }
    return DL_OK;
}

/* ---- the pair head --------------------------------------------------------------------------------------------- */

struct dl_dpo_head {
    dl_dpo_settings settings;
    const dl_backend *be;
    int max_pairs;
    float *dev;  /* one device block: pc, pr, rc, rr, losses, reward_c, reward_r, dpc, dpr, ones */
    float *host; /* losses, reward_c, reward_r */
};

enum { H_PC, H_PR, H_RC, H_RR, H_LOSS, H_REWC, H_REWR, H_DPC, H_DPR, H_ONES, H_COUNT };

dl_status dl_dpo_head_create(dl_dpo_head **out, const dl_dpo_settings *settings, const dl_backend *be,
                             int max_pairs) {
    DL_REQUIRE(out && settings && be, DL_ERR_INVALID, "dl_dpo_head_create: NULL argument");
    DL_REQUIRE(max_pairs >= 1, DL_ERR_INVALID, "dl_dpo_head_create: max_pairs must be positive, got %d", max_pairs);
    *out = NULL;
    DL_CHECK(dl_dpo_settings_check(settings));
    dl_dpo_head *h = calloc(1, sizeof *h);
    DL_REQUIRE(h != NULL, DL_ERR_NOMEM, "cannot allocate the DPO head");
    h->settings = *settings;
    h->be = be;
    h->max_pairs = max_pairs;
    size_t n = (size_t)max_pairs;
    h->host = malloc(3 * n * sizeof(float));
    float *ones = malloc(n * sizeof(float));
    dl_status s = h->host && ones ? dl_mem_alloc(be, (void **)&h->dev, H_COUNT * n * sizeof(float))
                                  : DL_FAIL(DL_ERR_NOMEM, "cannot allocate the DPO head's buffers");
    if (s == DL_OK) {
        for (size_t i = 0; i < n; i++)
            ones[i] = 1.0f;
        s = dl_mem_to_device(be, h->dev + H_ONES * n, ones, n * sizeof(float));
    }
    free(ones);
    if (s != DL_OK) {
        dl_dpo_head_destroy(h);
        return s;
    }
    *out = h;
    return DL_OK;
}

void dl_dpo_head_destroy(dl_dpo_head *h) {
    if (!h)
        return;
    if (h->dev)
        dl_mem_free(h->be, h->dev);
    free(h->host);
    free(h);
}

dl_status dl_dpo_head_run(dl_dpo_head *h, int n, const float *pc, const float *pr, const float *rc, const float *rr,
                          double *loss_sum, double *metrics, float *dchosen, float *drejected) {
    DL_REQUIRE(h && loss_sum && metrics, DL_ERR_INVALID, "dl_dpo_head_run: NULL argument");
    DL_REQUIRE(n >= 0 && n <= h->max_pairs, DL_ERR_INVALID, "dl_dpo_head_run: %d pairs, the head holds 0..%d", n,
               h->max_pairs);
    DL_REQUIRE((dchosen == NULL) == (drejected == NULL), DL_ERR_INVALID,
               "dl_dpo_head_run: dchosen and drejected must both be given or both be NULL");
    if (n == 0)
        return DL_OK;
    DL_REQUIRE(pc && pr && rc && rr, DL_ERR_INVALID, "dl_dpo_head_run: NULL log-prob array");
    const dl_backend *be = h->be;
    size_t cap = (size_t)h->max_pairs, bytes = (size_t)n * sizeof(float);
    float *d = h->dev;
#define DEV(k) (d + (size_t)(k) * cap)
    DL_CHECK(dl_mem_to_device(be, DEV(H_PC), pc, bytes));
    DL_CHECK(dl_mem_to_device(be, DEV(H_PR), pr, bytes));
    DL_CHECK(dl_mem_to_device(be, DEV(H_RC), rc, bytes));
    DL_CHECK(dl_mem_to_device(be, DEV(H_RR), rr, bytes));
    const dl_dpo_settings *st = &h->settings;
    DL_CHECK(dl_op_dpo_loss_forward(be, DEV(H_LOSS), DEV(H_REWC), DEV(H_REWR), DEV(H_PC), DEV(H_PR), DEV(H_RC),
                                    DEV(H_RR), n, st->loss_kind, st->beta, st->label_smoothing));
    float *loss = h->host, *rew_c = h->host + cap, *rew_r = h->host + 2 * cap;
    DL_CHECK(dl_mem_to_host(be, loss, DEV(H_LOSS), bytes));
    DL_CHECK(dl_mem_to_host(be, rew_c, DEV(H_REWC), bytes));
    DL_CHECK(dl_mem_to_host(be, rew_r, DEV(H_REWR), bytes));
    for (int i = 0; i < n; i++) {
        *loss_sum += loss[i];
        metrics[DL_DPO_REWARD_CHOSEN] += rew_c[i];
        metrics[DL_DPO_REWARD_REJECTED] += rew_r[i];
        /* A tie is a coin flip: the policy has not learnt this pair either way. */
        metrics[DL_DPO_ACCURACY] += rew_c[i] > rew_r[i] ? 1.0 : rew_c[i] == rew_r[i] ? 0.5 : 0.0;
        metrics[DL_DPO_MARGIN] += (double)rew_c[i] - (double)rew_r[i];
        metrics[DL_DPO_LOGP_CHOSEN] += pc[i];
        metrics[DL_DPO_LOGP_REJECTED] += pr[i];
    }
    if (dchosen) {
        DL_CHECK(dl_mem_zero(be, DEV(H_DPC), bytes));
        DL_CHECK(dl_mem_zero(be, DEV(H_DPR), bytes));
        DL_CHECK(dl_op_dpo_loss_backward(be, DEV(H_DPC), DEV(H_DPR), DEV(H_ONES), DEV(H_PC), DEV(H_PR), DEV(H_RC),
                                         DEV(H_RR), n, st->loss_kind, st->beta, st->label_smoothing));
        DL_CHECK(dl_mem_to_host(be, dchosen, DEV(H_DPC), bytes));
        DL_CHECK(dl_mem_to_host(be, drejected, DEV(H_DPR), bytes));
    }
#undef DEV
    return DL_OK;
}

/* ---- tables ---------------------------------------------------------------------------------------------------- */

dl_status dl_dpo_table_alloc(dl_dpo_table *t, uint64_t num_records) {
    DL_REQUIRE(t != NULL, DL_ERR_INVALID, "dl_dpo_table_alloc: NULL table");
    memset(t, 0, sizeof *t);
    DL_REQUIRE(num_records <= SIZE_MAX / sizeof(float), DL_ERR_INVALID, "a table of %llu records is too large",
               (unsigned long long)num_records);
    size_t n = num_records ? (size_t)num_records : 1;
    t->chosen = malloc(n * sizeof(float));
    t->rejected = malloc(n * sizeof(float));
    if (!t->chosen || !t->rejected) {
        dl_dpo_table_free(t);
        return DL_FAIL(DL_ERR_NOMEM, "cannot allocate reference log-probs for %llu records",
                       (unsigned long long)num_records);
    }
    for (size_t i = 0; i < n; i++)
        t->chosen[i] = t->rejected[i] = NAN;
    t->num_records = num_records;
    return DL_OK;
}

void dl_dpo_table_free(dl_dpo_table *t) {
    if (!t)
        return;
    free(t->chosen);
    free(t->rejected);
    memset(t, 0, sizeof *t);
}

/* ---- the reference file (HDF5) -------------------------------------------------------------------------------- */

static const char REF_FORMAT[] = "dealer dpo reference log-probs";
enum { REF_VERSION = 1 };

static dl_status h5_attr_read_i64(hid_t obj, const char *name, int64_t *v, const char *path) {
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    DL_REQUIRE(attr >= 0, DL_ERR_FORMAT, "%s: attribute %s is missing", path, name);
    herr_t ok = H5Aread(attr, H5T_NATIVE_INT64, v);
    H5Aclose(attr);
    DL_REQUIRE(ok >= 0, DL_ERR_FORMAT, "%s: attribute %s is not an integer", path, name);
    return DL_OK;
}

/* Reads a string attribute into buf (cut to cap - 1 bytes). */
static dl_status h5_attr_read_str(hid_t obj, const char *name, char *buf, size_t cap, const char *path) {
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    DL_REQUIRE(attr >= 0, DL_ERR_FORMAT, "%s: attribute %s is missing", path, name);
    hid_t type = H5Aget_type(attr);
    dl_status s = DL_OK;
    if (type < 0 || H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) > 0) {
        s = DL_FAIL(DL_ERR_FORMAT, "%s: attribute %s is not a fixed-length string", path, name);
    } else {
        size_t size = H5Tget_size(type);
        char *text = calloc(size + 1, 1);
        if (!text)
            s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu bytes", size + 1);
        else if (H5Aread(attr, type, text) < 0)
            s = DL_FAIL(DL_ERR_FORMAT, "%s: attribute %s cannot be read", path, name);
        else
            snprintf(buf, cap, "%s", text);
        free(text);
    }
    if (type >= 0)
        H5Tclose(type);
    H5Aclose(attr);
    return s;
}

static dl_status write_floats(hid_t group, const char *name, const float *data, uint64_t n, const char *path) {
    hsize_t dims[1] = {(hsize_t)n};
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t dset = H5Dcreate2(group, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t ok = dset >= 0 && (n == 0 || H5Dwrite(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    dl_status s = ok ? DL_OK : DL_FAIL(DL_ERR_IO, "%s: cannot write dataset %s", path, name);
    if (s == DL_OK) {
        uint32_t crc = dl_crc32c(0, data, (size_t)n * sizeof(float));
        s = dl_h5_attr_write_u32(dset, "crc32c", crc, path);
    }
    if (dset >= 0)
        H5Dclose(dset);
    H5Sclose(space);
    return s;
}

static dl_status read_floats(hid_t group, const char *gname, const char *name, float *out, uint64_t n,
                             const char *path) {
    hid_t dset = H5Dopen2(group, name, H5P_DEFAULT);
    DL_REQUIRE(dset >= 0, DL_ERR_FORMAT, "%s: dataset /%s/%s is missing", path, gname, name);
    hid_t space = H5Dget_space(dset);
    hsize_t dims[1] = {0};
    int ndim = H5Sget_simple_extent_ndims(space);
    if (ndim == 1)
        H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    dl_status s = DL_OK;
    if (ndim != 1 || dims[0] != n)
        s = DL_FAIL(DL_ERR_FORMAT, "%s: dataset /%s/%s holds %llu values, its group says %llu records", path, gname,
                    name, (unsigned long long)(ndim == 1 ? dims[0] : 0), (unsigned long long)n);
    if (s == DL_OK && n > 0 && H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        s = DL_FAIL(DL_ERR_FORMAT, "%s: dataset /%s/%s cannot be read (damaged file?)", path, gname, name);
    uint32_t stored = 0;
    hid_t attr = s == DL_OK ? H5Aopen(dset, "crc32c", H5P_DEFAULT) : -1;
    if (s == DL_OK && (attr < 0 || H5Aread(attr, H5T_NATIVE_UINT32, &stored) < 0))
        s = DL_FAIL(DL_ERR_FORMAT, "%s: dataset /%s/%s has no crc32c attribute", path, gname, name);
    if (attr >= 0)
        H5Aclose(attr);
    H5Dclose(dset);
    if (s == DL_OK && dl_crc32c(0, out, (size_t)n * sizeof(float)) != stored) {
        s = DL_FAIL(DL_ERR_FORMAT, "%s: dataset /%s/%s: CRC mismatch (the file is damaged)", path, gname, name);
        dl_error_hint("make it again with dealer dpo precompute-ref");
    }
    return s;
}

static dl_status write_table(hid_t file, const char *gname, const dl_dpo_table *t, const char *path) {
    hid_t g = H5Gcreate2(file, gname, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    DL_REQUIRE(g >= 0, DL_ERR_IO, "%s: cannot create group /%s", path, gname);
    dl_status s = dl_h5_attr_write_i64(g, "num_records", (int64_t)t->num_records, path);
    if (s == DL_OK)
        s = dl_h5_attr_write_i64(g, "bytes", (int64_t)t->bytes, path);
    if (s == DL_OK)
        s = write_floats(g, "chosen", t->chosen, t->num_records, path);
    if (s == DL_OK)
        s = write_floats(g, "rejected", t->rejected, t->num_records, path);
    H5Gclose(g);
    return s;
}

static dl_status read_table(hid_t file, const char *gname, dl_dpo_table *t, const char *path) {
    hid_t g = H5Gopen2(file, gname, H5P_DEFAULT);
    DL_REQUIRE(g >= 0, DL_ERR_FORMAT, "%s: group /%s is missing", path, gname);
    int64_t records = 0, bytes = 0;
    dl_status s = h5_attr_read_i64(g, "num_records", &records, path);
    if (s == DL_OK)
        s = h5_attr_read_i64(g, "bytes", &bytes, path);
    if (s == DL_OK && (records < 0 || bytes < 0))
        s = DL_FAIL(DL_ERR_FORMAT, "%s: /%s has negative counts", path, gname);
    if (s == DL_OK)
        s = dl_dpo_table_alloc(t, (uint64_t)records);
    if (s == DL_OK) {
        t->bytes = (uint64_t)bytes;
        s = read_floats(g, gname, "chosen", t->chosen, t->num_records, path);
    }
    if (s == DL_OK)
        s = read_floats(g, gname, "rejected", t->rejected, t->num_records, path);
    H5Gclose(g);
    if (s != DL_OK)
        dl_dpo_table_free(t);
    return s;
}

static dl_status make_parent_dirs(const char *path) {
    char buffer[4096];
    size_t len = strlen(path);
    DL_REQUIRE(len > 0 && len < sizeof buffer, DL_ERR_INVALID, "bad output path '%s'", path);
    memcpy(buffer, path, len + 1);
    for (size_t i = 1; i < len; i++) {
        if (buffer[i] != '/')
            continue;
        buffer[i] = '\0';
        if (mkdir(buffer, 0755) != 0 && errno != EEXIST)
            return DL_FAIL(DL_ERR_IO, "cannot create directory %s: %s", buffer, strerror(errno));
        buffer[i] = '/';
    }
    return DL_OK;
}

dl_status dl_dpo_reference_write(const char *path, const dl_dpo_reference_meta *meta, const dl_dpo_table *train,
                                 const dl_dpo_table *valid) {
    DL_REQUIRE(path && meta && train && train->chosen, DL_ERR_INVALID, "dl_dpo_reference_write: NULL argument");
    DL_CHECK(make_parent_dirs(path));
    /* A temporary of this writer's own (core/fs.h), which HDF5 then truncates and fills. */
    char *tmp = NULL;
    int fd = -1;
    DL_CHECK(dl_tmp_create(path, &tmp, &fd));
    close(fd);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    dl_status s = file >= 0 ? DL_OK : DL_FAIL(DL_ERR_IO, "cannot create %s", tmp);
    if (s == DL_OK)
        s = dl_h5_attr_write_str(file, "format", REF_FORMAT, path);
    if (s == DL_OK)
        s = dl_h5_attr_write_i64(file, "version", REF_VERSION, path);
    if (s == DL_OK)
        s = dl_h5_attr_write_i64(file, "seq_len", meta->seq_len, path);
    if (s == DL_OK)
        s = dl_h5_attr_write_i64(file, "overlong", meta->overlong, path);
    if (s == DL_OK)
        s = dl_h5_attr_write_i64(file, "params_crc32c", (int64_t)meta->params_crc, path);
    if (s == DL_OK)
        s = dl_h5_attr_write_i64(file, "checkpoint_step", meta->checkpoint_step, path);
    if (s == DL_OK)
        s = dl_h5_attr_write_str(file, "checkpoint", meta->checkpoint, path);
    if (s == DL_OK)
        s = write_table(file, "train", train, path);
    if (s == DL_OK && valid)
        s = write_table(file, "valid", valid, path);
    if (file >= 0 && H5Fclose(file) < 0 && s == DL_OK)
        s = DL_FAIL(DL_ERR_IO, "cannot finish writing %s", tmp);
    if (s == DL_OK)
        s = dl_rename_durable(tmp, path);
    if (s != DL_OK)
        remove(tmp);
    free(tmp);
    return s;
}

dl_status dl_dpo_reference_read(const char *path, dl_dpo_reference_meta *meta, dl_dpo_table *train,
                                dl_dpo_table *valid, int *has_valid) {
    DL_REQUIRE(path && meta && train && has_valid, DL_ERR_INVALID, "dl_dpo_reference_read: NULL argument");
    memset(meta, 0, sizeof *meta);
    memset(train, 0, sizeof *train);
    if (valid)
        memset(valid, 0, sizeof *valid);
    *has_valid = 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (access(path, R_OK) != 0) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "dpo.reference_file %s cannot be read: %s", path, strerror(errno));
        dl_error_hint("make it first: dealer dpo precompute-ref CONFIG");
        return s;
    }
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    DL_REQUIRE(file >= 0, DL_ERR_FORMAT, "%s: not a readable HDF5 file (truncated or damaged?)", path);
    char format[64] = "";
    int64_t version = 0, seq_len = 0, overlong = 0, crc = 0, step = 0;
    dl_status s = DL_OK;
    if (H5Aexists(file, "format") <= 0)
        s = DL_FAIL(DL_ERR_FORMAT, "%s is not a DPO reference file (no format attribute)", path);
    if (s == DL_OK)
        s = h5_attr_read_str(file, "format", format, sizeof format, path);
    if (s == DL_OK && strcmp(format, REF_FORMAT) != 0)
        s = DL_FAIL(DL_ERR_FORMAT, "%s is not a DPO reference file (format '%s')", path, format);
    if (s == DL_OK)
        s = h5_attr_read_i64(file, "version", &version, path);
    if (s == DL_OK && version != REF_VERSION)
        s = DL_FAIL(DL_ERR_FORMAT, "%s: reference file version %lld, this dealer reads version %d", path,
                    (long long)version, REF_VERSION);
    if (s == DL_OK)
        s = h5_attr_read_i64(file, "seq_len", &seq_len, path);
    if (s == DL_OK)
        s = h5_attr_read_i64(file, "overlong", &overlong, path);
    if (s == DL_OK)
        s = h5_attr_read_i64(file, "params_crc32c", &crc, path);
    if (s == DL_OK)
        s = h5_attr_read_i64(file, "checkpoint_step", &step, path);
    if (s == DL_OK)
        s = h5_attr_read_str(file, "checkpoint", meta->checkpoint, sizeof meta->checkpoint, path);
    if (s == DL_OK) {
        meta->seq_len = (int)seq_len;
        meta->overlong = (int)overlong;
        meta->params_crc = (uint32_t)crc;
        meta->checkpoint_step = step;
        s = read_table(file, "train", train, path);
    }
    if (s == DL_OK && H5Lexists(file, "valid", H5P_DEFAULT) > 0) {
        *has_valid = 1;
        if (valid)
            s = read_table(file, "valid", valid, path);
    }
    H5Fclose(file);
    if (s != DL_OK) {
        dl_dpo_table_free(train);
        if (valid)
            dl_dpo_table_free(valid);
    }
    return s;
}

/* ---- the DPO model --------------------------------------------------------------------------------------------- */

struct dl_dpo {
    dl_gpt_config config;
    dl_dpo_settings settings;
    const dl_backend *be;
    int max_tokens, max_seqs, max_pairs;
    dl_gpt *policy, *reference;
    dl_dpo_head *head;
    dl_dpo_table train_table, valid_table;
    int have_valid_table;
    /* device */
    int32_t *cu_dev;
    float *seq_dev, *dseq_dev, *dtok_dev;
    /* host */
    float *seq_host, *dseq_host, *pc, *pr, *rc, *rr, *dpc, *dpr;
};

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

/* ---- checkpoints ----------------------------------------------------------------------------------------------- */

dl_status dl_dpo_resolve_checkpoint(const char *spec, char *path, size_t cap) {
    DL_REQUIRE(spec && path && cap > 0, DL_ERR_INVALID, "dl_dpo_resolve_checkpoint: NULL argument");
    path[0] = '\0';
    DL_REQUIRE(spec[0] != '\0', DL_ERR_CONFIG, "model.init_from is empty: DPO starts from a gpt checkpoint");
    dl_weights_source src;
    DL_CHECK(dl_weights_resolve(spec, "model.init_from", &src));
    /* A Hugging Face directory is named by the directory (its config.json is part of it); the rest by the file. */
    const char *name = src.kind == DL_WEIGHTS_HF_DIR ? spec : src.path;
    DL_REQUIRE(strlen(name) < cap, DL_ERR_CONFIG, "model.init_from: the path %s is too long", name);
    memcpy(path, name, strlen(name) + 1);
    return DL_OK;
}

dl_status dl_dpo_load_checkpoint(const char *path, const dl_backend *be, dl_gpt *gpt, uint32_t *params_crc,
                                 int64_t *step) {
    DL_REQUIRE(path && be && gpt, DL_ERR_INVALID, "dl_dpo_load_checkpoint: NULL argument");
    dl_weights_source src;
    DL_CHECK(dl_gpt_init_resolve(path, dl_gpt_get_config(gpt), &src));
    int64_t from_step = 0;
    if (src.kind == DL_WEIGHTS_DEALER) {
        dl_ckpt_meta meta;
        memset(&meta, 0, sizeof meta);
        DL_CHECK_CTX(dl_ckpt_read_meta(src.path, &meta), "model.init_from");
        free(meta.config_yaml);
        from_step = meta.step;
    }
    DL_CHECK(dl_gpt_init_load(&src, be, gpt, params_crc));
    if (step)
        *step = from_step;
    return DL_OK;
}

/* ---- the model interface --------------------------------------------------------------------------------------- */

typedef struct dpo_model {
    dl_dpo *dpo;
    const dl_backend *be;
    char init_path[4300];
    int reference_model;
} dpo_model;

static dl_status dpo_train_batch(dl_model *model, const dl_batch *batch, const dl_step_context *ctx,
                                 dl_step_stats *stats) {
    dpo_model *m = model->impl;
    return dl_dpo_batch(m->dpo, &batch->tokens, 1, ctx ? ctx->hooks : NULL, stats);
}

static dl_status dpo_eval_batch(dl_model *model, const dl_batch *batch, dl_step_stats *stats) {
    dpo_model *m = model->impl;
    return dl_dpo_batch(m->dpo, &batch->tokens, 0, NULL, stats);
}

/* The starting point is the checkpoint, not a random draw: the seed is not used. */
static dl_status dpo_init_params(dl_model *model, uint64_t seed) {
    (void)seed;
    dpo_model *m = model->impl;
    return dl_dpo_load_checkpoint(m->init_path, m->be, m->dpo->policy, NULL, NULL);
}

/* The policy's forward and backward, plus the reference's forward (a third of it) when a model is the reference. */
static double dpo_step_flops(const dl_model *model, const dl_step_stats *stats) {
    const dpo_model *m = model->impl;
    if (stats->tokens <= 0)
        return 0.0;
    double context = stats->attended / stats->tokens;
    double policy = dl_gpt_flops_per_token(&m->dpo->config, context) * stats->tokens;
    return m->reference_model ? policy * 4.0 / 3.0 : policy;
}

static void dpo_destroy(dl_model *model) {
    dpo_model *m = model->impl;
    if (!m)
        return;
    dl_dpo_destroy(m->dpo);
    free(m);
    model->impl = NULL;
}

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

/* dpo.reference precomputed: the file must fit this run's checkpoint, data and data settings. */
static dl_status load_reference_file(dpo_model *m, const dl_model_setup *setup) {
    const dl_data_config *data = setup->data;
    const char *path = setup->dpo->reference_file;
    uint32_t crc = 0;
    DL_CHECK(dl_dpo_load_checkpoint(m->init_path, m->be, m->dpo->policy, &crc, NULL));
    dl_dpo_reference_meta meta;
    dl_dpo_table train, valid;
    int has_valid = 0;
    DL_CHECK_CTX(dl_dpo_reference_read(path, &meta, &train, &valid, &has_valid), "dpo.reference_file");
    dl_status s = DL_OK;
    if (meta.params_crc != crc) {
        s = DL_FAIL(DL_ERR_CONFIG, "dpo.reference_file %s was computed from %s, whose parameters differ from "
                                   "model.init_from %s",
                    path, meta.checkpoint, m->init_path);
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
        s = dl_dpo_set_tables(m->dpo, &train, has_valid ? &valid : NULL);
    dl_dpo_table_free(&train);
    dl_dpo_table_free(&valid);
    return s;
}

static dl_dpo_settings settings_of(const dl_dpo_config *dpo) {
    return (dl_dpo_settings){
        .loss_kind = dpo->loss, .beta = (float)dpo->beta, .label_smoothing = (float)dpo->label_smoothing};
}

dl_status dl_dpo_model_create(dl_model *model, const dl_model_setup *setup, const dl_backend *be, int rows,
                              int seq_len) {
    DL_REQUIRE(model && setup && setup->model && setup->dpo && setup->data && be, DL_ERR_INVALID,
               "dl_dpo_model_create: NULL argument");
    const dl_data_config *data = setup->data;
    DL_REQUIRE(rows >= 2, DL_ERR_CONFIG, "train.batch_per_rank must be at least 2 for DPO (a pair's two documents "
                                         "may take two rows), got %d", rows);
    if (data->overlong == DL_OVERLONG_SPLIT) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "data.overlong split does not apply to preference pairs");
        dl_error_hint("use truncate, drop or error: a split would change the log-probs the loss compares");
        return s;
    }
    dl_gpt_config gc = dl_model_gpt_config(setup->model);
    if (!gc.rope && seq_len > gc.max_seq_len) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "data.seq_len (%d) exceeds model.max_seq_len (%d)", seq_len,
                              gc.max_seq_len);
        dl_error_hint("lower data.seq_len");
        return s;
    }
    dl_dpo_settings st = settings_of(setup->dpo);
    DL_CHECK(dl_dpo_settings_check(&st));
    dpo_model *m = calloc(1, sizeof *m);
    DL_REQUIRE(m != NULL, DL_ERR_NOMEM, "cannot allocate the DPO model");
    m->be = be;
    m->reference_model = setup->dpo->reference == DL_DPO_REF_MODEL;
    int max_tokens = rows * seq_len;
    dl_status s = dl_dpo_resolve_checkpoint(setup->model->init_from, m->init_path, sizeof m->init_path);
    if (s == DL_OK)
        s = dl_dpo_create(&m->dpo, &gc, &st, be, max_tokens, m->reference_model);
    if (s == DL_OK && m->reference_model)
        s = dl_dpo_load_checkpoint(m->init_path, be, m->dpo->reference, NULL, NULL);
    if (s == DL_OK && !m->reference_model)
        s = load_reference_file(m, setup);
    if (s != DL_OK) {
        if (m->dpo)
            dl_dpo_destroy(m->dpo);
        free(m);
        return s;
    }
    dl_gpt *policy = m->dpo->policy;
    model->kind = "dpo";
    model->impl = m;
    model->params = dl_gpt_params(policy);
    model->param_data = dl_gpt_param_data(policy);
    model->grad_data = dl_gpt_grad_data(policy);
    model->train_batch = dpo_train_batch;
    model->eval_batch = dpo_eval_batch;
    model->init_params = dpo_init_params;
    model->step_flops = dpo_step_flops;
    model->destroy = dpo_destroy;
    for (int i = 0; i < DL_DPO_NUM_METRICS && i < DL_MAX_MODEL_METRICS; i++)
        model->metric_names[i] = dl_dpo_metric_names[i];
    dl_gpt_config none = gc, ref = gc;
    none.checkpoint_every = 0;
    ref.checkpoint_every = 1;
    size_t ref_bytes = m->reference_model ? dl_gpt_activation_bytes(&ref, max_tokens, max_tokens) : 0;
    model->activation_bytes = dl_gpt_activation_bytes(&gc, max_tokens, max_tokens) + ref_bytes;
    model->activation_bytes_without_checkpointing = dl_gpt_activation_bytes(&none, max_tokens, max_tokens) + ref_bytes;
    return DL_OK;
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
    dl_dpo_settings st = settings_of(setup->dpo);
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
