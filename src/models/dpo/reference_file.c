/* reference_file.c — reference log-prob tables and the HDF5 file that stores them (`dealer dpo precompute-ref`
 * writes it, dpo.reference precomputed reads it): one value per record of data.train and data.valid, and what they
 * were computed from, so that a file that does not fit the run is refused. */
#include "models/dpo/dpo_internal.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/h5attr.h"
#include "core/crc32c.h"
#include "core/fs.h"

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
    return dl_h5_attr_read(obj, name, H5T_NATIVE_INT64, v, path, NULL);
}

/* Reads a string attribute into buf (cut to cap - 1 bytes). */
static dl_status h5_attr_read_str(hid_t obj, const char *name, char *buf, size_t cap, const char *path) {
    char *text = NULL;
    DL_CHECK(dl_h5_attr_read_str(obj, name, &text, path, NULL));
    snprintf(buf, cap, "%s", text);
    free(text);
    return DL_OK;
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
