/* ckpt_write_dataset.c — one planned dataset made in the file (chunked, compressed when asked) and this rank's runs
 * of elements written into it, each run an HDF5 selection of at most a few blocks; and the one line that says why a
 * write failed (the injected fault, the MPI-IO error, a full disk). */
#include "ckpt/ckpt_internal.h"

#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fault.h"
#include "core/fs.h"

/* Adds to `space` the elements [a, b) of the row-major array dims[depth..ndim) whose leading indices are fixed at
 * start[0..depth): at most 2·(ndim-depth)-1 blocks. *first says whether the next block replaces the selection. */
static herr_t select_flat(hid_t space, int ndim, const hsize_t *dims, hsize_t *start, int depth, uint64_t a,
                          uint64_t b, int *first) {
    if (a >= b)
        return 0;
    hsize_t count[DL_TENSOR_MAX_DIMS];
    if (depth == ndim - 1) {
        for (int d = 0; d < ndim; d++)
            count[d] = 1;
        start[depth] = a;
        count[depth] = b - a;
        herr_t e = H5Sselect_hyperslab(space, *first ? H5S_SELECT_SET : H5S_SELECT_OR, start, NULL, count, NULL);
        *first = 0;
        return e;
    }
    uint64_t inner = 1;
    for (int d = depth + 1; d < ndim; d++)
        inner *= dims[d];
    uint64_t r0 = a / inner, r1 = (b - 1) / inner;
    if (r0 == r1) {
        start[depth] = r0;
        return select_flat(space, ndim, dims, start, depth + 1, a - r0 * inner, b - r0 * inner, first);
    }
    if (a % inner) {
        start[depth] = r0;
        if (select_flat(space, ndim, dims, start, depth + 1, a % inner, inner, first) < 0)
            return -1;
        r0++;
    }
    uint64_t full_end = b / inner;
    if (full_end > r0) {
        for (int d = 0; d < ndim; d++)
            count[d] = d < depth ? 1 : dims[d];
        start[depth] = r0;
        count[depth] = full_end - r0;
        for (int d = depth + 1; d < ndim; d++)
            start[d] = 0;
        herr_t e = H5Sselect_hyperslab(space, *first ? H5S_SELECT_SET : H5S_SELECT_OR, start, NULL, count, NULL);
        *first = 0;
        if (e < 0)
            return -1;
    }
    if (b % inner) {
        start[depth] = full_end;
        return select_flat(space, ndim, dims, start, depth + 1, 0, b % inner, first);
    }
    return 0;
}

/* Selects the union of `runs` in a dataspace of shape dims (ndim 0: a scalar). */
static herr_t select_runs(hid_t space, int ndim, const hsize_t *dims, const dl_ckpt_run *runs, size_t nruns) {
    if (nruns == 0)
        return H5Sselect_none(space);
    if (ndim == 0)
        return H5Sselect_all(space);
    hsize_t start[DL_TENSOR_MAX_DIMS] = {0};
    int first = 1;
    for (size_t i = 0; i < nruns; i++)
        if (select_flat(space, ndim, dims, start, 0, runs[i].begin, runs[i].end, &first) < 0)
            return -1;
    return first ? H5Sselect_none(space) : 0;
}

/* What made an HDF5 write fail: the injected errno, else the MPI-IO error HDF5 recorded on its error stack, and
 * the free space when the disk is (nearly) full. */
static herr_t find_mpi_error(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    char *out = data;
    if (!out[0] && e->desc && (strstr(e->desc, "MPI_ERR") || strstr(e->desc, "errno")))
        snprintf(out, 256, "%s", e->desc);
    return 0;
}

dl_status dl_ckpt_write_failure(const char *path, int injected, const char *fmt, ...) {
    char what[512], cause[256] = "", space[96] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (injected)
        snprintf(cause, sizeof cause, "%s (injected by DEALER_FAULT)", strerror(injected));
    else
        H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, find_mpi_error, cause);
    char *dir = dl_path_join_suffix(path, "");
    uint64_t free_bytes = 0;
    int full = 0;
    if (dir && dl_free_space(dirname(dir), &free_bytes) == DL_OK && free_bytes < ((uint64_t)1 << 20)) {
        full = 1;
        snprintf(space, sizeof space, "; %llu KiB free on its file system", (unsigned long long)(free_bytes >> 10));
    }
    free(dir);
    dl_status s = DL_FAIL(DL_ERR_IO, "%s: %s: %s%s", path, what,
                          cause[0] ? cause : full ? "no space left on device" : "the file system refused the write",
                          space);
    if (full || injected == ENOSPC)
        dl_error_hint("free space on the checkpoint's file system (or lower ckpt.keep); latest still names the last "
                      "good checkpoint");
    return s;
}

/* Creates the dataset (chunked, and compressed when asked, as planned) on every rank: a collective call. */
dl_status dl_ckpt_create_dataset(hid_t file, const dl_ckpt_planned *d, int compress, hid_t *dset, const char *path) {
    hid_t fspace = d->ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(d->ndim, d->dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    if (d->chunked) {
        hsize_t chunk[DL_TENSOR_MAX_DIMS];
        dl_ckpt_chunk_dims(d, chunk);
        H5Pset_chunk(dcpl, d->ndim, chunk);
        if (compress) {
            H5Pset_shuffle(dcpl);
            H5Pset_deflate(dcpl, 4);
        }
    }
    *dset = H5Dcreate2(file, d->name, dl_ckpt_file_type(d->dtype), fspace, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(fspace);
    if (*dset < 0)
        return DL_FAIL(DL_ERR_IO, "%s: cannot create dataset %s", path, d->name);
    return DL_OK;
}

/* Creates the dataset (a collective call) and writes this rank's runs with transfer list dxpl: independent (each
 * rank writes its own bytes, so one that fails leaves no other inside HDF5; the caller agrees on the outcome after)
 * unless `collective` (compressed datasets, which parallel HDF5 writes only collectively). The dataset stays open
 * in *dset for the CRC. */
dl_status dl_ckpt_write_planned(hid_t file, hid_t dxpl, int collective, const dl_ckpt_planned *d, int compress,
                                hid_t *dset, const char *path) {
    size_t es = dl_ckpt_dtype_size(d->dtype);
    dl_status s = dl_ckpt_create_dataset(file, d, compress, dset, path);
    /* The memory side is one contiguous buffer: the data itself for one run, a packed copy for several. */
    uint64_t count = 0;
    for (size_t i = 0; i < d->nruns; i++)
        count += d->runs[i].end - d->runs[i].begin;
    const uint8_t *src = d->nruns == 1 ? d->base + d->runs[0].begin * es : NULL;
    uint8_t *packed = NULL;
    if (s == DL_OK && d->nruns > 1) {
        packed = malloc((size_t)(count * es));
        if (!packed)
            s = DL_FAIL(DL_ERR_NOMEM, "cannot pack %llu elements of %s", (unsigned long long)count, d->name);
        for (size_t i = 0, at = 0; packed && i < d->nruns; i++) {
            size_t bytes = (size_t)((d->runs[i].end - d->runs[i].begin) * es);
            memcpy(packed + at, d->base + d->runs[i].begin * es, bytes);
            at += bytes;
        }
        src = packed;
    }
    if (s == DL_OK && d->numel > 0 && (collective || count > 0)) {
        hsize_t mdims[1] = {count ? count : 1};
        hid_t fspace = d->ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(d->ndim, d->dims, NULL);
        /* A whole dataset goes in its own shape, which HDF5 copies straight through (a flat memory space against an
         * N-d file space takes its general selection path: several times slower for a large table). */
        int whole = d->ndim > 0 && count == d->numel;
        hid_t mspace = whole ? H5Screate_simple(d->ndim, d->dims, NULL) : H5Screate_simple(1, mdims, NULL);
        if (count == 0)
            H5Sselect_none(mspace);
        herr_t ok = select_runs(fspace, d->ndim, d->dims, d->runs, d->nruns);
        /* An injected failure skips an independent write; a collective one still takes part (the others wait). */
        int injected = count ? dl_fault_hit(DL_FAULT_WRITE) : 0;
        if (ok >= 0 && (!injected || collective))
            ok = H5Dwrite(*dset, dl_ckpt_mem_type(d->dtype), mspace, fspace, dxpl, count ? (const void *)src : &count);
        H5Sclose(mspace);
        H5Sclose(fspace);
        if (ok < 0 || injected)
            s = dl_ckpt_write_failure(path, injected, "cannot write dataset %s", d->name);
    }
    free(packed);
    return s;
}
