/* ckpt_listing.c — a checkpoint opened for reading with the serial API: its datasets listed in the order written
 * (dealer ckpt ls, show, diff), each read whole with its CRC32C checked, and found by name with the dtype and shape a
 * caller needs, every failure naming the file and the dataset. */
#include "ckpt/ckpt_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "core/fs.h"

dl_status dl_ckpt_open_serial(const char *path, hid_t *file) {
    dl_ckpt_quiet_hdf5();
    if (access(path, R_OK) != 0) {
        int err = errno;
        return dl_open_failure(path, err, "check the checkpoint path (dealer ckpt ls RUN_DIR lists them)");
    }
    *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*file < 0) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s: not a readable HDF5 checkpoint (truncated or damaged?)", path);
        dl_error_hint("resume from an earlier step file in the same directory");
        return s;
    }
    return DL_OK;
}

size_t dl_ckpt_dtype_size(dl_ckpt_dtype t) { return t == DL_CKPT_U8 ? 1 : 4; }

const char *dl_ckpt_dtype_name(dl_ckpt_dtype t) {
    return t == DL_CKPT_F32 ? "float32" : t == DL_CKPT_I32 ? "int32" : t == DL_CKPT_U8 ? "uint8" : "?";
}

static dl_status describe_dataset(dl_ckpt_file *f, hid_t dset, const char *name) {
    if (f->count == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 64;
        dl_ckpt_dataset *grown = realloc(f->sets, cap * sizeof *grown);
        DL_REQUIRE(grown != NULL, DL_ERR_NOMEM, "cannot allocate the dataset list of %s", f->path);
        f->sets = grown;
        f->cap = cap;
    }
    dl_ckpt_dataset *d = &f->sets[f->count];
    memset(d, 0, sizeof *d);
    int n = snprintf(d->name, sizeof d->name, "/%s", name);
    DL_REQUIRE(n > 0 && (size_t)n < sizeof d->name, DL_ERR_FORMAT, "%s: dataset name '%s' is too long", f->path,
               name);
    hid_t space = H5Dget_space(dset);
    int ndim = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t dims[DL_TENSOR_MAX_DIMS] = {0};
    if (ndim >= 0 && ndim <= DL_TENSOR_MAX_DIMS)
        H5Sget_simple_extent_dims(space, dims, NULL);
    if (space >= 0)
        H5Sclose(space);
    DL_REQUIRE(ndim >= 0 && ndim <= DL_TENSOR_MAX_DIMS, DL_ERR_FORMAT, "%s: dataset %s has %d dimensions (at most %d)",
               f->path, d->name, ndim, DL_TENSOR_MAX_DIMS);
    d->ndim = ndim;
    d->numel = 1;
    for (int i = 0; i < ndim; i++) {
        d->shape[i] = (size_t)dims[i];
        d->numel *= (size_t)dims[i];
    }
    hid_t type = H5Dget_type(dset);
    H5T_class_t cls = H5Tget_class(type);
    size_t size = H5Tget_size(type);
    H5T_sign_t sign = cls == H5T_INTEGER ? H5Tget_sign(type) : H5T_SGN_ERROR;
    H5Tclose(type);
    if (cls == H5T_FLOAT && size == 4)
        d->dtype = DL_CKPT_F32;
    else if (cls == H5T_INTEGER && size == 4 && sign == H5T_SGN_2)
        d->dtype = DL_CKPT_I32;
    else if (cls == H5T_INTEGER && size == 1 && sign == H5T_SGN_NONE)
        d->dtype = DL_CKPT_U8;
    else
        return DL_FAIL(DL_ERR_FORMAT, "%s: dataset %s has a type a checkpoint never holds (class %d, %zu bytes)",
                       f->path, d->name, (int)cls, size);
    if (H5Aexists(dset, "crc32c") > 0) {
        hid_t attr = H5Aopen(dset, "crc32c", H5P_DEFAULT);
        d->has_crc = attr >= 0 && H5Aread(attr, H5T_NATIVE_UINT32, &d->crc) >= 0;
        if (attr >= 0)
            H5Aclose(attr);
    }
    d->storage_bytes = H5Dget_storage_size(dset);
    f->count++;
    return DL_OK;
}

static herr_t visit_link(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    dl_ckpt_file *f = data;
    if (info->type != H5L_TYPE_HARD)
        return 0;
    hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    if (obj < 0)
        return 0;
    if (H5Iget_type(obj) == H5I_DATASET) {
        f->failure = describe_dataset(f, obj, name);
        H5Oclose(obj);
        return f->failure == DL_OK ? 0 : 1;
    }
    H5Oclose(obj);
    return 0;
}

void dl_ckpt_close(dl_ckpt_file *f) {
    if (!f)
        return;
    if (f->file >= 0)
        H5Fclose(f->file);
    free(f->sets);
    free(f);
}

dl_status dl_ckpt_open(dl_ckpt_file **out, const char *path) {
    DL_REQUIRE(out && path, DL_ERR_INVALID, "dl_ckpt_open: NULL argument");
    *out = NULL;
    dl_ckpt_file *f = calloc(1, sizeof *f);
    DL_REQUIRE(f != NULL, DL_ERR_NOMEM, "cannot allocate a checkpoint reader");
    f->file = -1;
    snprintf(f->path, sizeof f->path, "%s", path);
    dl_status s = dl_ckpt_open_serial(path, &f->file);
    if (s == DL_OK) {
        /* Creation order where the writer tracked it (dealer does), name order otherwise. */
        herr_t ok = H5Lvisit(f->file, H5_INDEX_CRT_ORDER, H5_ITER_INC, visit_link, f);
        if (ok < 0 && f->failure == DL_OK) {
            f->count = 0;
            ok = H5Lvisit(f->file, H5_INDEX_NAME, H5_ITER_INC, visit_link, f);
        }
        if (f->failure != DL_OK)
            s = f->failure;
        else if (ok < 0)
            s = DL_FAIL(DL_ERR_FORMAT, "%s: cannot list the datasets (damaged file?)", path);
    }
    if (s != DL_OK) {
        dl_ckpt_close(f);
        return s;
    }
    *out = f;
    return DL_OK;
}

size_t dl_ckpt_count(const dl_ckpt_file *f) { return f ? f->count : 0; }

const dl_ckpt_dataset *dl_ckpt_at(const dl_ckpt_file *f, size_t i) { return f && i < f->count ? &f->sets[i] : NULL; }

const dl_ckpt_dataset *dl_ckpt_find(const dl_ckpt_file *f, const char *name) {
    for (size_t i = 0; f && name && i < f->count; i++)
        if (strcmp(f->sets[i].name, name) == 0)
            return &f->sets[i];
    return NULL;
}

/* Reads a dataset whole; *computed gets the CRC32C of what was read. */
static dl_status read_whole(dl_ckpt_file *f, const dl_ckpt_dataset *d, void *out, uint32_t *computed) {
    size_t bytes = d->numel * dl_ckpt_dtype_size(d->dtype);
    if (d->numel > 0) {
        hid_t dset = H5Dopen2(f->file, d->name, H5P_DEFAULT);
        herr_t ok = dset >= 0 ? H5Dread(dset, dl_ckpt_mem_type(d->dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, out) : -1;
        if (dset >= 0)
            H5Dclose(dset);
        if (ok < 0) {
            dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s: tensor %s cannot be read (truncated or damaged file?)",
                                  f->path, d->name);
            dl_error_hint("resume from an earlier step file in the same directory");
            return s;
        }
    }
    *computed = dl_crc32c(0, out, bytes);
    return DL_OK;
}

dl_status dl_ckpt_read(dl_ckpt_file *f, const dl_ckpt_dataset *d, void *out, int *crc_ok) {
    DL_REQUIRE(f && d && (out || d->numel == 0) && crc_ok, DL_ERR_INVALID, "dl_ckpt_read: NULL argument");
    uint32_t computed = 0;
    DL_CHECK(read_whole(f, d, out, &computed));
    *crc_ok = !d->has_crc ? -1 : computed == d->crc;
    return DL_OK;
}

/* The dataset `name`, which must exist with `dtype`, the given shape and a CRC attribute; every failure names it. */
dl_status dl_ckpt_find_checked(dl_ckpt_file *f, const char *name, dl_ckpt_dtype dtype, int ndim, const size_t *shape,
                               const dl_ckpt_dataset **out) {
    const dl_ckpt_dataset *d = dl_ckpt_find(f, name);
    if (!d) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s: tensor %s is missing", f->path, name);
        dl_error_hint("the checkpoint is incomplete or of another model: check it with dealer ckpt show");
        return s;
    }
    int same = d->dtype == dtype && d->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = d->shape[i] == shape[i];
    if (!same) {
        char want[96] = "", got[96] = "";
        size_t a = 0, b = 0;
        for (int i = 0; i < ndim; i++)
            a += (size_t)snprintf(want + a, sizeof want - a, "%s%zu", i ? ", " : "", shape[i]);
        for (int i = 0; i < d->ndim; i++)
            b += (size_t)snprintf(got + b, sizeof got - b, "%s%zu", i ? ", " : "", d->shape[i]);
        dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s: tensor %s is %s [%s] but the model needs %s [%s]", f->path, name,
                              dl_ckpt_dtype_name(d->dtype), got, dl_ckpt_dtype_name(dtype), want);
        dl_error_hint("the checkpoint is of another model shape: compare model.* with its config (dealer ckpt show)");
        return s;
    }
    if (!d->has_crc)
        return DL_FAIL(DL_ERR_FORMAT, "%s: tensor %s has no crc32c attribute", f->path, name);
    *out = d;
    return DL_OK;
}

dl_status dl_ckpt_crc_mismatch(const char *path, const char *name, uint32_t stored, uint32_t computed) {
    dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s: tensor %s: CRC mismatch (stored 0x%08x, computed 0x%08x)", path, name,
                          stored, computed);
    dl_error_hint("the file is damaged; resume from an earlier step file");
    return s;
}

/* Reads a dataset that must exist with `dtype` and the given shape, checking its CRC; every failure names it. */
dl_status dl_ckpt_read_checked(dl_ckpt_file *f, const char *name, dl_ckpt_dtype dtype, int ndim, const size_t *shape,
                               void *out) {
    const dl_ckpt_dataset *d;
    DL_CHECK(dl_ckpt_find_checked(f, name, dtype, ndim, shape, &d));
    uint32_t computed = 0;
    DL_CHECK(read_whole(f, d, out, &computed));
    if (computed != d->crc)
        return dl_ckpt_crc_mismatch(f->path, name, d->crc, computed);
    return DL_OK;
}
