/* ckpt_meta.c — the meta of a checkpoint, the attributes on its root group: format_version, dealer_version, step,
 * epoch, tokens and samples seen, optimizer_step, bad_steps, seed, rng, world_size, zero_stage, model_kind, config,
 * tokenizer_hash, and blas_kernel, cpu_variant and threads. Written from the wire form every rank received from rank
 * 0 (HDF5's metadata calls must match on all ranks), read and checked for plausibility. */
#include "ckpt/ckpt_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/h5attr.h"

/* The caller's meta in the form rank 0 broadcasts: fixed size, strings cut to their fields, world_size this run's. */
void dl_ckpt_meta_to_wire(const dl_ckpt_meta *meta, int world_size, dl_ckpt_meta_wire *m) {
    memset(m, 0, sizeof *m);
    m->step = meta->step;
    m->epoch = meta->epoch;
    m->optimizer_step = meta->optimizer_step;
    m->bad_steps = meta->bad_steps;
    m->seed = meta->seed;
    m->world_size = world_size;
    m->zero_stage = meta->zero_stage;
    m->tokens_seen = meta->tokens_seen;
    m->samples_seen = meta->samples_seen;
    memcpy(m->model_kind, meta->model_kind, sizeof m->model_kind);
    memcpy(m->tokenizer_hash, meta->tokenizer_hash, sizeof m->tokenizer_hash);
    m->tokenizer_hash[sizeof m->tokenizer_hash - 1] = '\0';
    memcpy(m->blas_kernel, meta->blas_kernel, sizeof m->blas_kernel);
    memcpy(m->cpu_variant, meta->cpu_variant, sizeof m->cpu_variant);
    m->blas_kernel[sizeof m->blas_kernel - 1] = m->cpu_variant[sizeof m->cpu_variant - 1] = '\0';
    m->threads = meta->threads;
    m->config_len = meta->config_yaml ? strlen(meta->config_yaml) : 0;
}

/* The root attributes, on every rank alike (a collective call); the first failure is returned. */
dl_status dl_ckpt_meta_write(hid_t file, const dl_ckpt_meta_wire *m, const char *config, const char *path) {
    dl_status s = DL_OK;
#define TRY(expr)     \
    if (s == DL_OK)   \
    s = (expr)
    TRY(dl_h5_attr_write_i64(file, "format_version", DL_CKPT_FORMAT_VERSION, path));
    TRY(dl_h5_attr_write_str(file, "dealer_version", DEALER_VERSION " (git " DEALER_GIT_REV ")", path));
    TRY(dl_h5_attr_write_i64(file, "step", m->step, path));
    TRY(dl_h5_attr_write_i64(file, "epoch", m->epoch, path));
    TRY(dl_h5_attr_write_f64(file, "tokens_seen", m->tokens_seen, path));
    TRY(dl_h5_attr_write_f64(file, "samples_seen", m->samples_seen, path));
    TRY(dl_h5_attr_write_i64(file, "optimizer_step", m->optimizer_step, path));
    TRY(dl_h5_attr_write_i64(file, "bad_steps", m->bad_steps, path));
    TRY(dl_h5_attr_write_i64(file, "seed", m->seed, path));
    TRY(dl_h5_attr_write_str(file, "rng", "philox4x32-10; key = seed, counters derived from the step", path));
    TRY(dl_h5_attr_write_i64(file, "world_size", m->world_size, path));
    TRY(dl_h5_attr_write_i64(file, "zero_stage", m->zero_stage, path));
    TRY(dl_h5_attr_write_str(file, "model_kind", m->model_kind, path));
    TRY(dl_h5_attr_write_str(file, "config", config, path));
    if (m->tokenizer_hash[0])
        TRY(dl_h5_attr_write_str(file, "tokenizer_hash", m->tokenizer_hash, path));
    if (m->blas_kernel[0]) {
        TRY(dl_h5_attr_write_str(file, "blas_kernel", m->blas_kernel, path));
        TRY(dl_h5_attr_write_str(file, "cpu_variant", m->cpu_variant, path));
        TRY(dl_h5_attr_write_i64(file, "threads", m->threads, path));
    }
#undef TRY
    return s;
}

dl_status dl_ckpt_attr_read(hid_t file, const char *name, hid_t mem_type, void *out, const char *path) {
    return dl_h5_attr_read(file, name, mem_type, out, path, "a dealer checkpoint");
}

static dl_status attr_read_str(hid_t file, const char *name, char **out, const char *path) {
    return dl_h5_attr_read_str(file, name, out, path, "a dealer checkpoint");
}

dl_status dl_ckpt_read_meta_from(hid_t file, const char *path, dl_ckpt_meta *meta) {
    int64_t version = 0, world = 0, zero = 0;
    char *kind = NULL;
    dl_status s = dl_ckpt_attr_read(file, "format_version", H5T_NATIVE_INT64, &version, path);
    if (s == DL_OK && version != DL_CKPT_FORMAT_VERSION) {
        s = DL_FAIL(DL_ERR_FORMAT, "%s: checkpoint format version %lld, this dealer reads version %d", path,
                    (long long)version, DL_CKPT_FORMAT_VERSION);
        dl_error_hint("use the dealer release that wrote it (dealer ckpt show prints its dealer_version)");
    }
#define READ(name, type, dst) \
    if (s == DL_OK)           \
    s = dl_ckpt_attr_read(file, name, type, dst, path)
    READ("step", H5T_NATIVE_INT64, &meta->step);
    READ("epoch", H5T_NATIVE_INT64, &meta->epoch);
    READ("tokens_seen", H5T_NATIVE_DOUBLE, &meta->tokens_seen);
    READ("samples_seen", H5T_NATIVE_DOUBLE, &meta->samples_seen);
    READ("optimizer_step", H5T_NATIVE_INT64, &meta->optimizer_step);
    READ("bad_steps", H5T_NATIVE_INT64, &meta->bad_steps);
    READ("seed", H5T_NATIVE_INT64, &meta->seed);
    READ("world_size", H5T_NATIVE_INT64, &world);
    READ("zero_stage", H5T_NATIVE_INT64, &zero);
#undef READ
    if (s == DL_OK)
        s = attr_read_str(file, "model_kind", &kind, path);
    if (s == DL_OK)
        s = attr_read_str(file, "config", &meta->config_yaml, path);
    char *version_text = NULL;
    if (s == DL_OK && attr_read_str(file, "dealer_version", &version_text, path) == DL_OK)
        snprintf(meta->dealer_version, sizeof meta->dealer_version, "%s", version_text);
    free(version_text);
    char *tokenizer_text = NULL; /* optional: absent in byte-level runs and older files */
    meta->tokenizer_hash[0] = '\0';
    if (s == DL_OK && H5Aexists(file, "tokenizer_hash") > 0 &&
        attr_read_str(file, "tokenizer_hash", &tokenizer_text, path) == DL_OK)
        snprintf(meta->tokenizer_hash, sizeof meta->tokenizer_hash, "%s", tokenizer_text);
    free(tokenizer_text);
    /* Written since the BLAS kernel, CPU variant and thread count were recorded; older files lack all three. */
    if (s == DL_OK && H5Aexists(file, "blas_kernel") > 0) {
        char *blas = NULL, *variant = NULL;
        int64_t threads = 0;
        s = attr_read_str(file, "blas_kernel", &blas, path);
        if (s == DL_OK)
            s = attr_read_str(file, "cpu_variant", &variant, path);
        if (s == DL_OK)
            s = dl_ckpt_attr_read(file, "threads", H5T_NATIVE_INT64, &threads, path);
        if (s == DL_OK && (threads < 1 || threads > (1 << 20)))
            s = DL_FAIL(DL_ERR_FORMAT, "%s: implausible thread count %lld", path, (long long)threads);
        if (s == DL_OK) {
            snprintf(meta->blas_kernel, sizeof meta->blas_kernel, "%s", blas);
            snprintf(meta->cpu_variant, sizeof meta->cpu_variant, "%s", variant);
            meta->threads = (int)threads;
        }
        free(blas);
        free(variant);
    }
    if (s == DL_OK) {
        snprintf(meta->model_kind, sizeof meta->model_kind, "%s", kind);
        meta->world_size = (int)world;
        meta->zero_stage = (int)zero;
        if (world < 1 || world > (1 << 24) || meta->step < 0)
            s = DL_FAIL(DL_ERR_FORMAT, "%s: implausible world_size %lld or step %lld", path, (long long)world,
                        (long long)meta->step);
    }
    free(kind);
    if (s != DL_OK) {
        free(meta->config_yaml);
        meta->config_yaml = NULL;
    }
    return s;
}

dl_status dl_ckpt_read_meta(const char *path, dl_ckpt_meta *meta) {
    DL_REQUIRE(path && meta, DL_ERR_INVALID, "dl_ckpt_read_meta: NULL argument");
    memset(meta, 0, sizeof *meta);
    hid_t file;
    DL_CHECK(dl_ckpt_open_serial(path, &file));
    dl_status s = dl_ckpt_read_meta_from(file, path, meta);
    H5Fclose(file);
    return s;
}
