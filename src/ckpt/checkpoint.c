/* checkpoint.c — writing and reading HDF5 checkpoints (see checkpoint.h and docs/checkpoint-format.md).
 *
 * Writing is all-collective through parallel HDF5 (the MPI-IO driver), even on one rank, so there is one code path:
 * every rank creates the same groups, datasets and attributes (HDF5 requires metadata calls to match on all ranks,
 * so everything that shapes the file — the meta, the config text, the cursor lengths, the slices — is first
 * broadcast from rank 0), and each dataset is written with one collective H5Dwrite in which every rank selects the
 * elements it is responsible for: rank 0 for replicated data, each rank its ZeRO slice of an optimizer state (the
 * lowest-starting rank where slices overlap). An element is written by exactly one rank. Row-split tables (each
 * rank holding its own rows, shard_layout.h) go through bounded slabs instead, so that no rank ever holds a whole
 * table and no selection has a piece per row (the section "split tensors" below).
 *
 * CRC of a dataset written in pieces: CRC32C is linear over GF(2), so each rank computes the "raw" CRC register of
 * the whole dataset with its own bytes in place and zeros everywhere else (zero runs cost O(log n) through a
 * precomputed table of shift operators, not a pass over zeros). The XOR of those over ranks is the raw register of
 * the whole contents; one gather, a fold and a broadcast turn it into the ordinary CRC32C every rank writes as the
 * attribute. No rank ever reads the dataset back.
 *
 * Reading is per rank with the serial API, whole datasets at a time: simple, and it is also what makes a checkpoint
 * from any world size load on any other (each rank keeps its slice of what it read). Split tables are read in slabs,
 * a 1/W share per rank, each row then sent to the rank that holds it (dl_ckpt_load_collective). HDF5's own error
 * printing is silenced; every failure becomes one dl_status line naming the file and the object. */
#include "ckpt/checkpoint.h"
#include "ckpt/h5attr.h"
#include "ckpt/safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <jansson.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fault.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/crc32c.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint CRCs are defined over little-endian bytes; this file assumes a little-endian host"
#endif

static void quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* ---- CRC32C of data held in pieces ------------------------------------------------------------------------------
 * The raw register R(s, M) of the reflected CRC-32C (no pre/post inversion) satisfies R(s, M) = Lⁿ(s) ⊕ R(0, M) for
 * |M| = n bytes, where L is the linear map of feeding one zero byte; dl_crc32c(c, M) = ~R(~c, M). zero_op[k] holds
 * the 32x32 bit matrix of L^(2^k) (as 32 column words). */
static uint32_t zero_op[64][32];
static pthread_once_t zero_op_once = PTHREAD_ONCE_INIT;

static uint32_t gf2_apply(const uint32_t *mat, uint32_t vec) {
    uint32_t sum = 0;
    for (int i = 0; vec; i++, vec >>= 1)
        if (vec & 1u)
            sum ^= mat[i];
    return sum;
}

static void zero_op_init(void) {
    uint32_t bit[32], sq[32];
    bit[0] = 0x82F63B78u; /* one zero bit: s -> (s >> 1) ^ (s & 1 ? poly : 0) */
    for (int i = 1; i < 32; i++)
        bit[i] = 1u << (i - 1);
    for (int step = 0; step < 3; step++) { /* 2, 4, 8 bits */
        for (int i = 0; i < 32; i++)
            sq[i] = gf2_apply(bit, bit[i]);
        memcpy(bit, sq, sizeof bit);
    }
    memcpy(zero_op[0], bit, sizeof bit);
    for (int k = 1; k < 64; k++)
        for (int i = 0; i < 32; i++)
            zero_op[k][i] = gf2_apply(zero_op[k - 1], zero_op[k - 1][i]);
}

/* Lⁿ(raw): the register after n more zero bytes. */
static uint32_t raw_zeros(uint32_t raw, uint64_t n) {
    pthread_once(&zero_op_once, zero_op_init);
    for (int k = 0; n && raw; k++, n >>= 1)
        if (n & 1u)
            raw = gf2_apply(zero_op[k], raw);
    return raw;
}

static uint32_t raw_feed(uint32_t raw, const void *data, size_t len) { return ~dl_crc32c(~raw, data, len); }

/* The ordinary CRC32C of `total` bytes whose raw register from 0 is `raw`. */
static uint32_t raw_finish(uint32_t raw, uint64_t total) { return ~(raw_zeros(0xFFFFFFFFu, total) ^ raw); }

uint32_t dl_ckpt_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
    return raw_zeros(crc_a, len_b) ^ crc_b;
}

/* ---- element runs and HDF5 selections -------------------------------------------------------------------------- */

/* A half-open run [begin, end) of elements of a dataset, in row-major (flat) order. */
typedef struct run {
    uint64_t begin, end;
} run;

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
static herr_t select_runs(hid_t space, int ndim, const hsize_t *dims, const run *runs, size_t nruns) {
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

/* ---- the write plan ---------------------------------------------------------------------------------------------
 * Every dataset of the file, in the order written, with the runs of elements this rank writes and where they are. */
typedef struct planned {
    char name[384];
    int ndim;
    hsize_t dims[DL_TENSOR_MAX_DIMS];
    uint64_t numel;
    dl_ckpt_dtype dtype;
    const uint8_t *base; /* element k of the dataset is at base + k * element size (when this rank holds it) */
    run *runs;
    size_t nruns;
    run single;          /* storage for the common one-run case */
    int chunked;
    const dl_shard_layout *split; /* set for a split tensor: base is this rank's rows of it, moved in slabs */
    size_t tensor;                /* its index in the layout */
} planned;

typedef struct plan {
    planned *items;
    size_t count, cap;
} plan;

static void plan_free(plan *p) {
    for (size_t i = 0; i < p->count; i++)
        if (p->items[i].runs != &p->items[i].single)
            free(p->items[i].runs);
    free(p->items);
    memset(p, 0, sizeof *p);
}

static dl_status plan_add(plan *p, const char *name, int ndim, const size_t *shape, dl_ckpt_dtype dtype,
                          const void *base, int chunked, planned **out) {
    if (p->count == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        planned *grown = realloc(p->items, cap * sizeof *grown);
        DL_REQUIRE(grown != NULL, DL_ERR_NOMEM, "cannot allocate the checkpoint plan");
        /* Items pointing at their own `single` must follow the move. */
        for (size_t i = 0; i < p->count; i++)
            if (grown[i].runs == &p->items[i].single)
                grown[i].runs = &grown[i].single;
        p->items = grown;
        p->cap = cap;
    }
    planned *d = &p->items[p->count++];
    memset(d, 0, sizeof *d);
    int n = snprintf(d->name, sizeof d->name, "%s", name);
    DL_REQUIRE(n > 0 && (size_t)n < sizeof d->name, DL_ERR_INVALID, "dataset name '%s' is too long", name);
    d->ndim = ndim;
    d->numel = 1;
    for (int i = 0; i < ndim; i++) {
        d->dims[i] = shape[i];
        d->numel *= shape[i];
    }
    d->dtype = dtype;
    d->base = base;
    d->runs = &d->single;
    d->chunked = chunked && ndim > 0 && d->numel > 0;
    *out = d;
    return DL_OK;
}

static void planned_set_run(planned *d, uint64_t begin, uint64_t end) {
    d->single = (run){begin, end};
    d->runs = &d->single;
    d->nruns = begin < end ? 1 : 0;
}

/* The raw CRC register (from 0) of the dataset's bytes with this rank's runs in place and zeros elsewhere. */
static uint32_t planned_raw_crc(const planned *d) {
    size_t es = dl_ckpt_dtype_size(d->dtype);
    uint32_t raw = 0;
    uint64_t pos = 0;
    for (size_t i = 0; i < d->nruns; i++) {
        raw = raw_zeros(raw, (d->runs[i].begin - pos) * es);
        raw = raw_feed(raw, d->base + d->runs[i].begin * es, (size_t)((d->runs[i].end - d->runs[i].begin) * es));
        pos = d->runs[i].end;
    }
    return raw_zeros(raw, (d->numel - pos) * es);
}

/* The raw CRC register (from 0) of a dataset of `total` bytes holding `bytes` bytes of data at byte `at` and zeros
 * elsewhere: the part one slab contributes (XOR the parts for the whole). */
static uint32_t raw_piece(const void *data, size_t bytes, uint64_t at, uint64_t total) {
    return raw_zeros(raw_feed(0, data, bytes), total - at - bytes);
}

static hid_t file_type_of(dl_ckpt_dtype t) {
    return t == DL_CKPT_F32 ? H5T_IEEE_F32LE : t == DL_CKPT_I32 ? H5T_STD_I32LE : H5T_STD_U8LE;
}

static hid_t mem_type_of(dl_ckpt_dtype t) {
    return t == DL_CKPT_F32 ? H5T_NATIVE_FLOAT : t == DL_CKPT_I32 ? H5T_NATIVE_INT32 : H5T_NATIVE_UINT8;
}

/* Chunks of about 1 MiB: whole trailing dims while they fit, then a slice of the next one. */
static void chunk_dims(const planned *d, hsize_t *chunk) {
    const uint64_t target = (1u << 20) / dl_ckpt_dtype_size(d->dtype);
    uint64_t product = 1;
    int d0 = d->ndim - 1;
    for (; d0 >= 0; d0--) {
        if (product * d->dims[d0] > target)
            break;
        chunk[d0] = d->dims[d0];
        product *= d->dims[d0];
    }
    if (d0 >= 0) {
        uint64_t c = target / product;
        chunk[d0] = c < 1 ? 1 : c > d->dims[d0] ? d->dims[d0] : c;
        for (int i = 0; i < d0; i++)
            chunk[i] = 1;
    }
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

static dl_status write_failure(const char *path, int injected, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static dl_status write_failure(const char *path, int injected, const char *fmt, ...) {
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
static dl_status create_dataset(hid_t file, const planned *d, int compress, hid_t *dset, const char *path) {
    hid_t fspace = d->ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(d->ndim, d->dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    if (d->chunked) {
        hsize_t chunk[DL_TENSOR_MAX_DIMS];
        chunk_dims(d, chunk);
        H5Pset_chunk(dcpl, d->ndim, chunk);
        if (compress) {
            H5Pset_shuffle(dcpl);
            H5Pset_deflate(dcpl, 4);
        }
    }
    *dset = H5Dcreate2(file, d->name, file_type_of(d->dtype), fspace, H5P_DEFAULT, dcpl, H5P_DEFAULT);
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
static dl_status write_planned(hid_t file, hid_t dxpl, int collective, const planned *d, int compress, hid_t *dset,
                               const char *path) {
    size_t es = dl_ckpt_dtype_size(d->dtype);
    dl_status s = create_dataset(file, d, compress, dset, path);
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
            ok = H5Dwrite(*dset, mem_type_of(d->dtype), mspace, fspace, dxpl, count ? (const void *)src : &count);
        H5Sclose(mspace);
        H5Sclose(fspace);
        if (ok < 0 || injected)
            s = write_failure(path, injected, "cannot write dataset %s", d->name);
    }
    free(packed);
    return s;
}

/* ---- split tensors: rows through contiguous slabs ----------------------------------------------------------------
 * A split tensor's rows lie scattered over the ranks (by hash, so neighbours mostly live on different ranks), and
 * this rank's rows are back to back in its own buffer. Writing them where they are would hand HDF5 and MPI-IO one
 * selection piece per row, and both keep hundreds of bytes of bookkeeping per piece: measured, 33 MiB more heap on
 * each of 2 ranks to write a 34 MiB table (85 MiB on 3), as much as gathering the table (and HDF5 1.10 builds such
 * selections in quadratic time). So split tensors move in rounds over windows of rows: in each window rank r owns
 * the contiguous slab of rows [a + r·per, a + (r+1)·per); to write, the ranks holding that slab's rows send them to
 * it (their ids, then the rows straight from their buffers, where a window's rows are back to back) and it writes
 * one contiguous block; to load, each rank reads its slab and sends every row to the rank asking for it, which
 * receives them straight into its buffer. Per round and rank that is one slab (options->slab_bytes, 4 MiB unless
 * set, rounded up to whole chunks when it holds one, so that a compressed chunk is written whole by one rank) plus
 * the rows in transit, whatever the table size.
 *
 * The slab owners also check the layout: every row of their slab must arrive (be asked for) exactly once. A failed
 * check, like a failed read, does not stop the rounds (the other ranks are waiting in them): it is reported when
 * they are done, and the checkpoint is not committed (or the load fails) on every rank. */
enum { DEFAULT_SLAB_BYTES = 4 << 20 };

typedef struct slab_plan {
    uint64_t rows, row_len; /* the tensor's rows, floats per row */
    uint64_t per;           /* rows per slab */
    uint64_t window;        /* rows per round: per · world size */
} slab_plan;

/* The rounds of split tensor d on `world` ranks with slabs of about slab_bytes (0: the default). */
static slab_plan slab_plan_of(const planned *d, int world, size_t slab_bytes) {
    slab_plan g;
    g.rows = d->dims[0];
    g.row_len = g.rows ? d->numel / g.rows : 1;
    hsize_t chunk[DL_TENSOR_MAX_DIMS];
    chunk_dims(d, chunk);
    uint64_t chunk_rows = chunk[0] ? chunk[0] : 1;
    uint64_t per = (slab_bytes ? slab_bytes : DEFAULT_SLAB_BYTES) / (g.row_len * sizeof(float));
    per = per < 1 ? 1 : per;
    g.per = per >= chunk_rows ? (per + chunk_rows - 1) / chunk_rows * chunk_rows : per;
    g.window = g.per * (uint64_t)world;
    return g;
}

/* Buffers of the rounds, reused across rounds and tensors (they grow to the largest, then stay). */
typedef struct slab_route {
    int *to, *from;      /* [W]: rows this rank sends to / receives from each rank in a round */
    int *bytes[4];       /* [W] each: send counts, send displacements, receive counts, receive displacements */
    int64_t *ids_out, *ids_in;
    float *slab, *transit;
    uint8_t *seen;       /* per row of the slab: arrived (asked for) */
    size_t cap_out, cap_in, cap_slab, cap_transit, cap_seen;
} slab_route;

static void slab_route_free(slab_route *r) {
    free(r->to);
    free(r->from);
    for (int k = 0; k < 4; k++)
        free(r->bytes[k]);
    free(r->ids_out);
    free(r->ids_in);
    free(r->slab);
    free(r->transit);
    free(r->seen);
    memset(r, 0, sizeof *r);
}

static dl_status slab_route_init(slab_route *r, int world) {
    memset(r, 0, sizeof *r);
    int ok = (r->to = calloc((size_t)world, sizeof(int))) && (r->from = calloc((size_t)world, sizeof(int)));
    for (int k = 0; k < 4 && ok; k++)
        ok = (r->bytes[k] = calloc((size_t)world, sizeof(int))) != NULL;
    if (!ok) {
        slab_route_free(r);
        return DL_FAIL(DL_ERR_NOMEM, "cannot allocate the checkpoint's row routes for %d ranks", world);
    }
    return DL_OK;
}

/* Makes *p hold at least `need` elements (growing by half again at least, so a buffer filled element by element
 * is reallocated a logarithmic number of times). */
static dl_status grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return DL_OK;
    size_t n = need > *cap + *cap / 2 ? need : *cap + *cap / 2;
    void *q = realloc(*p, (n ? n : 1) * elem);
    DL_REQUIRE(q != NULL, DL_ERR_NOMEM, "cannot allocate %zu bytes to move checkpoint rows", n * elem);
    *p = q;
    *cap = n;
    return DL_OK;
}

/* Sizes the buffers for the rounds of a tensor with slabs of g->per rows up front: a balanced round then never
 * reallocates (a reallocation briefly holds both copies). */
static dl_status slab_route_reserve(slab_route *r, const slab_plan *g) {
    size_t per = (size_t)g->per, floats = per * (size_t)g->row_len;
    DL_CHECK(grow((void **)&r->ids_out, &r->cap_out, per + per / 4, sizeof(int64_t)));
    DL_CHECK(grow((void **)&r->ids_in, &r->cap_in, per, sizeof(int64_t)));
    DL_CHECK(grow((void **)&r->slab, &r->cap_slab, floats, sizeof(float)));
    DL_CHECK(grow((void **)&r->transit, &r->cap_transit, floats, sizeof(float)));
    return grow((void **)&r->seen, &r->cap_seen, per, 1);
}

/* Byte counts and displacements of per-rank item counts (MPI's int counts; a round stays far below 2 GiB). */
static dl_status layout_bytes(const int *items, int world, size_t item_bytes, int *counts, int *displs) {
    uint64_t at = 0;
    for (int q = 0; q < world; q++) {
        uint64_t bytes = (uint64_t)items[q] * item_bytes;
        DL_REQUIRE(bytes <= INT32_MAX && at <= INT32_MAX, DL_ERR_INVALID,
                   "a round of checkpoint rows exceeds MPI's 2 GiB message limit");
        counts[q] = (int)bytes;
        displs[q] = (int)at;
        at += bytes;
    }
    DL_REQUIRE(at <= INT32_MAX, DL_ERR_INVALID, "a round of checkpoint rows exceeds MPI's 2 GiB message limit");
    return DL_OK;
}

/* Checks a split tensor's layout on this rank before any row moves: the rows it holds are in slots 0, 1, 2, ...
 * in row order and inside its buffer (shard_layout.h). */
static dl_status check_split_rows(const planned *d) {
    const dl_shard_layout *l = d->split;
    uint64_t rows = d->dims[0], row_len = rows ? d->numel / rows : 1;
    int64_t next = 0;
    for (uint64_t row = 0; row < rows; row++) {
        int64_t slot = l->local_row(l->ctx, d->tensor, (int64_t)row);
        if (slot < 0)
            continue;
        if (slot != next) {
            dl_status s = DL_FAIL(DL_ERR_INVALID, "%s: row %llu is in slot %lld of this rank's buffer, but the rows "
                                  "it holds must lie back to back in row order (slot %lld)", d->name,
                                  (unsigned long long)row, (long long)slot, (long long)next);
            dl_error_hint("a model's shard layout numbers its rows in increasing order (comm/shard_layout.h)");
            return s;
        }
        next++;
    }
    if (l->local_offset[d->tensor] + (uint64_t)next * row_len > l->local_numel)
        return DL_FAIL(DL_ERR_INVALID, "%s: this rank's %lld rows end past its %zu-float buffer", d->name,
                       (long long)next, l->local_numel);
    return DL_OK;
}

/* The rows of window [a, b) this rank holds (a checked layout) into r->ids_out, increasing, with, in r->to, how many
 * fall in each rank's slab; *first is the slot of the first, *next the slot after this window's. */
static dl_status held_rows(slab_route *r, const planned *d, const slab_plan *g, int world, uint64_t a, uint64_t b,
                           int64_t *next, int64_t *first, int64_t *held) {
    const dl_shard_layout *l = d->split;
    memset(r->to, 0, (size_t)world * sizeof(int));
    *first = *next;
    *held = 0;
    for (uint64_t row = a; row < b; row++) {
        if (l->local_row(l->ctx, d->tensor, (int64_t)row) < 0)
            continue;
        DL_CHECK(grow((void **)&r->ids_out, &r->cap_out, (size_t)*held + 1, sizeof(int64_t)));
        r->ids_out[(*held)++] = (int64_t)row;
        r->to[(row - a) / g->per]++;
        (*next)++;
    }
    return DL_OK;
}

/* The slab this rank owns in window [a, b): rows [*lo, *hi). */
static void slab_of(const slab_plan *g, int rank, uint64_t a, uint64_t b, uint64_t *lo, uint64_t *hi) {
    uint64_t start = a + (uint64_t)rank * g->per;
    *lo = start < b ? start : b;
    *hi = start + g->per < b ? start + g->per : b;
    if (*hi < *lo)
        *hi = *lo;
}

/* Collective: every rank tells every slab owner which of its rows it holds (ids into r->ids_in, r->from[q] from
 * rank q), and sizes r->transit for the rows of the round. */
static dl_status exchange_ids(dl_world *w, slab_route *r, const slab_plan *g, uint64_t *arriving) {
    DL_CHECK(dl_comm_alltoall_int(w, r->to, r->from, "checkpoint rows: counts"));
    DL_CHECK(layout_bytes(r->to, w->size, sizeof(int64_t), r->bytes[0], r->bytes[1]));
    DL_CHECK(layout_bytes(r->from, w->size, sizeof(int64_t), r->bytes[2], r->bytes[3]));
    uint64_t n = 0;
    for (int q = 0; q < w->size; q++)
        n += (uint64_t)r->from[q];
    DL_CHECK(grow((void **)&r->ids_in, &r->cap_in, (size_t)n, sizeof(int64_t)));
    DL_CHECK(grow((void **)&r->transit, &r->cap_transit, (size_t)(n * g->row_len), sizeof(float)));
    *arriving = n;
    return dl_comm_alltoallv(w, r->ids_out, r->bytes[0], r->bytes[1], r->ids_in, r->bytes[2], r->bytes[3],
                             "checkpoint rows: ids");
}

/* Checks that the ids that arrived are each row of slab [lo, hi) once (marking r->seen); the first fault names
 * the row. */
static dl_status check_slab_ids(slab_route *r, const planned *d, uint64_t n, uint64_t lo, uint64_t hi) {
    memset(r->seen, 0, (size_t)(hi - lo));
    dl_status s = DL_OK;
    for (uint64_t j = 0; j < n && s == DL_OK; j++) {
        int64_t id = r->ids_in[j];
        if (id < (int64_t)lo || id >= (int64_t)hi)
            s = DL_FAIL(DL_ERR_INVALID, "%s: row %lld was routed to the slab of rows [%llu, %llu)", d->name,
                        (long long)id, (unsigned long long)lo, (unsigned long long)hi);
        else if (r->seen[id - (int64_t)lo]++)
            s = DL_FAIL(DL_ERR_INVALID, "%s: row %lld is held by two ranks", d->name, (long long)id);
    }
    for (uint64_t i = 0; i < hi - lo && s == DL_OK; i++)
        if (!r->seen[i])
            s = DL_FAIL(DL_ERR_INVALID, "%s: row %llu is held by no rank", d->name, (unsigned long long)(lo + i));
    if (s != DL_OK)
        dl_error_hint("the model's shard layout must give every row to exactly one rank (comm/shard_layout.h)");
    return s;
}

/* This rank's rows of window [a, b) (none once *local failed: it still takes part in the rounds). */
static void held_or_none(slab_route *r, const planned *d, const slab_plan *g, int world, uint64_t a, uint64_t b,
                         int64_t *next, int64_t *first, int64_t *held, dl_status *local) {
    if (*local == DL_OK)
        *local = held_rows(r, d, g, world, a, b, next, first, held);
    if (*local != DL_OK) {
        memset(r->to, 0, (size_t)world * sizeof(int));
        *first = 0;
        *held = 0;
    }
}

/* Collective: writes split dataset d (created, open in dset) in rounds; *raw gets this rank's share of its CRC
 * register. Coverage and write failures go to *local (the first one; later rounds then check nothing) and the
 * rounds go on; a failed exchange is returned. */
static dl_status write_split(dl_world *w, hid_t dset, hid_t dxpl, int collective, const planned *d,
                             size_t slab_bytes, slab_route *r, uint32_t *raw, dl_status *local, const char *path) {
    const slab_plan g = slab_plan_of(d, w->size, slab_bytes);
    const size_t row_bytes = (size_t)g.row_len * sizeof(float);
    int64_t next = 0;
    *raw = 0;
    DL_CHECK(slab_route_reserve(r, &g));
    for (uint64_t a = 0; a < g.rows; a += g.window) {
        uint64_t b = a + g.window < g.rows ? a + g.window : g.rows, lo, hi, n;
        int64_t first = 0, held = 0;
        held_or_none(r, d, &g, w->size, a, b, &next, &first, &held, local);
        slab_of(&g, w->rank, a, b, &lo, &hi);
        DL_CHECK(exchange_ids(w, r, &g, &n));
        DL_CHECK(layout_bytes(r->to, w->size, row_bytes, r->bytes[0], r->bytes[1]));
        DL_CHECK(layout_bytes(r->from, w->size, row_bytes, r->bytes[2], r->bytes[3]));
        DL_CHECK(dl_comm_alltoallv(w, d->base + (size_t)first * row_bytes, r->bytes[0], r->bytes[1], r->transit,
                                   r->bytes[2], r->bytes[3], "checkpoint rows: data"));
        if (*local == DL_OK)
            *local = check_slab_ids(r, d, n, lo, hi);
        for (uint64_t j = 0; *local == DL_OK && j < n; j++)
            memcpy(r->slab + (size_t)((uint64_t)r->ids_in[j] - lo) * g.row_len, r->transit + (size_t)j * g.row_len,
                   row_bytes);
        /* One contiguous block of rows per rank (possibly none), written collectively. */
        hsize_t start[DL_TENSOR_MAX_DIMS] = {lo}, count[DL_TENSOR_MAX_DIMS];
        for (int k = 0; k < d->ndim; k++)
            count[k] = k == 0 ? (hi > lo ? hi - lo : 1) : d->dims[k];
        hid_t fspace = H5Screate_simple(d->ndim, d->dims, NULL);
        hid_t mspace = H5Screate_simple(d->ndim, count, NULL); /* the block's shape: HDF5's fast path */
        herr_t ok = hi > lo ? H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL)
                            : H5Sselect_none(fspace);
        if (ok >= 0 && hi == lo)
            ok = H5Sselect_none(mspace);
        int injected = hi > lo ? dl_fault_hit(DL_FAULT_WRITE) : 0;
        if (ok >= 0 && (!injected || collective))
            ok = H5Dwrite(dset, H5T_NATIVE_FLOAT, mspace, fspace, dxpl, r->slab);
        H5Sclose(mspace);
        H5Sclose(fspace);
        if ((ok < 0 || injected) && *local == DL_OK)
            *local = write_failure(path, injected, "cannot write rows [%llu, %llu) of %s", (unsigned long long)lo,
                                   (unsigned long long)hi, d->name);
        if (hi > lo)
            *raw ^= raw_piece(r->slab, (size_t)(hi - lo) * row_bytes, lo * row_bytes, d->numel * sizeof(float));
    }
    return DL_OK;
}

/* Collective: reads split dataset `d` (open in dset, or -1 when this rank could not open it) in rounds, each rank
 * its slab, into the rows this rank holds at `out`; *raw gets this rank's share of its CRC register (the slabs
 * cover every row once). Read and coverage failures go to *local (the first one) and the rounds go on; a failed
 * exchange is returned. */
static dl_status read_split(dl_world *w, hid_t dset, const planned *d, size_t slab_bytes, float *out,
                            slab_route *r, uint32_t *raw, dl_status *local, const char *path) {
    const slab_plan g = slab_plan_of(d, w->size, slab_bytes);
    const size_t row_bytes = (size_t)g.row_len * sizeof(float);
    int64_t next = 0;
    if (dset < 0 && *local == DL_OK)
        *local = DL_FAIL(DL_ERR_FORMAT, "%s: cannot open %s", path, d->name);
    *raw = 0;
    DL_CHECK(slab_route_reserve(r, &g));
    for (uint64_t a = 0; a < g.rows; a += g.window) {
        uint64_t b = a + g.window < g.rows ? a + g.window : g.rows, lo, hi, n;
        int64_t first = 0, held = 0;
        held_or_none(r, d, &g, w->size, a, b, &next, &first, &held, local);
        slab_of(&g, w->rank, a, b, &lo, &hi);
        DL_CHECK(exchange_ids(w, r, &g, &n));
        if (hi > lo) { /* this rank's slab, one contiguous block */
            herr_t ok = -1;
            if (dset >= 0) {
                hsize_t start[DL_TENSOR_MAX_DIMS] = {lo}, count[DL_TENSOR_MAX_DIMS];
                for (int k = 0; k < d->ndim; k++)
                    count[k] = k == 0 ? hi - lo : d->dims[k];
                hid_t fspace = H5Dget_space(dset);
                hid_t mspace = H5Screate_simple(d->ndim, count, NULL); /* the block's shape: HDF5's fast path */
                ok = fspace >= 0 ? H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) : -1;
                if (ok >= 0)
                    ok = H5Dread(dset, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, r->slab);
                H5Sclose(mspace);
                if (fspace >= 0)
                    H5Sclose(fspace);
            }
            if (ok < 0) {
                memset(r->slab, 0, (size_t)(hi - lo) * row_bytes);
                if (*local == DL_OK) {
                    *local = DL_FAIL(DL_ERR_FORMAT, "%s: rows [%llu, %llu) of tensor %s cannot be read (truncated "
                                     "or damaged file?)", path, (unsigned long long)lo, (unsigned long long)hi, d->name);
                    dl_error_hint("resume from an earlier step file in the same directory");
                }
            }
            *raw ^= raw_piece(r->slab, (size_t)(hi - lo) * row_bytes, lo * row_bytes, d->numel * sizeof(float));
        }
        if (*local == DL_OK)
            *local = check_slab_ids(r, d, n, lo, hi);
        for (uint64_t j = 0; j < n; j++) { /* the answers, in the order asked (a row outside the slab: zeros) */
            int64_t id = r->ids_in[j];
            float *dst = r->transit + (size_t)j * g.row_len;
            if (id >= (int64_t)lo && id < (int64_t)hi)
                memcpy(dst, r->slab + (size_t)((uint64_t)id - lo) * g.row_len, row_bytes);
            else
                memset(dst, 0, row_bytes);
        }
        DL_CHECK(layout_bytes(r->from, w->size, row_bytes, r->bytes[0], r->bytes[1]));
        DL_CHECK(layout_bytes(r->to, w->size, row_bytes, r->bytes[2], r->bytes[3]));
        DL_CHECK(dl_comm_alltoallv(w, r->transit, r->bytes[0], r->bytes[1], out + (size_t)first * g.row_len,
                                   r->bytes[2], r->bytes[3], "checkpoint rows: data"));
    }
    return DL_OK;
}

/* ---- what every rank must agree on ------------------------------------------------------------------------------ */

/* The fixed-size part of the meta, broadcast from rank 0 so every rank issues identical metadata calls. */
typedef struct meta_wire {
    int64_t step, epoch, optimizer_step, bad_steps, seed, world_size, zero_stage;
    double tokens_seen, samples_seen;
    char model_kind[16];
    char tokenizer_hash[17];
    char blas_kernel[64], cpu_variant[32]; /* rank 0's: ranks on different CPUs may differ */
    int64_t threads;
    uint64_t config_len;
} meta_wire;

/* Gathers `bytes` bytes from every rank onto every rank (rank order): a gather then a broadcast. */
static dl_status allgather_bytes(dl_world *w, const void *mine, size_t bytes, void *all, const char *what) {
    int lengths_stack[64];
    int *lengths = w->size <= 64 ? lengths_stack : malloc((size_t)w->size * sizeof(int));
    DL_REQUIRE(lengths != NULL, DL_ERR_NOMEM, "cannot allocate %d lengths", w->size);
    void *gathered = NULL;
    dl_status s = dl_comm_gather_bytes(w, mine, (int)bytes, 0, &gathered, lengths, what);
    if (s == DL_OK && w->rank == 0)
        memcpy(all, gathered, bytes * (size_t)w->size);
    free(gathered);
    if (lengths != lengths_stack)
        free(lengths);
    DL_CHECK(s);
    return dl_comm_broadcast(w, all, bytes * (size_t)w->size, 0, what);
}

/* A fingerprint of the layout (tensor names and shapes, state names): every rank must pass the same. */
static uint64_t layout_hash(const dl_ckpt_tensors *t, const dl_shard_layout *l) {
    uint64_t h = dl_hash_u64((uint64_t)t->params->count) ^ dl_hash_u64((uint64_t)t->num_states << 32);
    for (size_t i = 0; i < t->params->count; i++) {
        const dl_tensor *v = dl_tensor_table_at(t->params, i);
        h = dl_hash_pair(h, dl_hash_str(v->name));
        for (int d = 0; d < v->ndim; d++)
            h = dl_hash_pair(h, v->shape[d]);
        h = dl_hash_pair(h, v->offset);
    }
    for (int k = 0; k < t->num_states; k++)
        h = dl_hash_pair(h, dl_hash_str(t->state_names[k]));
    for (size_t i = 0; l && i < t->params->count; i++) /* which tensors are split (offsets are per rank) */
        h = dl_hash_pair(h, 0x5370 + (uint64_t)i * 2 + (l->split[i] != 0));
    return h;
}

/* A layout's own consistency with the table (shard_layout.h): one entry per tensor, unsplit tensors inside the
 * buffer. Split tensors are checked row by row when the plan is built. */
static dl_status check_layout(const dl_ckpt_tensors *t, const dl_shard_layout *l) {
    if (!l)
        return DL_OK;
    DL_REQUIRE(l->local_offset && l->split && l->local_row, DL_ERR_INVALID, "checkpoint layout: NULL member");
    DL_REQUIRE(l->count == t->params->count, DL_ERR_INVALID,
               "checkpoint layout: it describes %zu tensors, the table has %zu", l->count, t->params->count);
    for (size_t i = 0; i < l->count; i++) {
        const dl_tensor *v = dl_tensor_table_at(t->params, i);
        if (!l->split[i] && l->local_offset[i] + v->numel > l->local_numel)
            return DL_FAIL(DL_ERR_INVALID, "checkpoint layout: tensor %s at float %zu of a %zu-float buffer does not "
                           "fit", v->name, l->local_offset[i], l->local_numel);
        if (l->split[i] && v->ndim < 1)
            return DL_FAIL(DL_ERR_INVALID, "checkpoint layout: the scalar %s cannot be split by rows", v->name);
    }
    return DL_OK;
}

/* The element range each rank writes of the optimizer states: slices sorted by start, each rank taking what it
 * holds beyond what earlier ones covered. Fails (the same way on every rank) when the slices leave a gap. */
static dl_status resolve_slices(const uint64_t *slices, int world, uint64_t numel, int rank, uint64_t *begin,
                                uint64_t *end) {
    int *order = malloc((size_t)world * sizeof(int));
    DL_REQUIRE(order != NULL, DL_ERR_NOMEM, "cannot allocate %d slice indices", world);
    for (int r = 0; r < world; r++)
        order[r] = r;
    for (int i = 1; i < world; i++) /* insertion sort by (begin, rank): world sizes are small */
        for (int j = i; j > 0 && slices[2 * order[j]] < slices[2 * order[j - 1]]; j--) {
            int tmp = order[j];
            order[j] = order[j - 1];
            order[j - 1] = tmp;
        }
    uint64_t covered = 0;
    dl_status s = DL_OK;
    *begin = *end = 0;
    for (int i = 0; i < world; i++) {
        int r = order[i];
        uint64_t b = slices[2 * r], e = slices[2 * r + 1];
        if (e > b && b > covered) {
            s = DL_FAIL(DL_ERR_INVALID, "optimizer state slices leave elements [%llu, %llu) to no rank",
                        (unsigned long long)covered, (unsigned long long)b);
            break;
        }
        uint64_t eb = covered > b ? covered : b, ee = e > eb ? e : eb;
        if (r == rank) {
            *begin = eb;
            *end = ee;
        }
        if (e > covered)
            covered = e;
    }
    if (s == DL_OK && covered < numel)
        s = DL_FAIL(DL_ERR_INVALID, "optimizer state slices cover [0, %llu) of %llu elements",
                    (unsigned long long)covered, (unsigned long long)numel);
    free(order);
    return s;
}

/* Every rank learns whether any failed; the failing ones keep their message. */
static dl_status agree(dl_world *w, dl_status local, const char *what) {
    int64_t failed = local != DL_OK;
    dl_status c = dl_comm_allreduce_max_i64(w, &failed, 1, what);
    if (local != DL_OK)
        return local;
    DL_CHECK(c);
    if (failed)
        return DL_FAIL(DL_ERR_IO, "another rank failed during %s (see its message)", what);
    return DL_OK;
}

/* DEALER_TEST_KILL_CKPT=PHASE:STEP: rank 0 dies here (tests of crash safety). */
static void maybe_kill(const dl_world *w, const char *phase, int64_t step) {
    const char *spec = getenv("DEALER_TEST_KILL_CKPT");
    if (!spec || w->rank != 0)
        return;
    const char *colon = strchr(spec, ':');
    if (!colon || (size_t)(colon - spec) != strlen(phase) || strncmp(spec, phase, strlen(phase)) != 0)
        return;
    if (strtoll(colon + 1, NULL, 10) == step)
        raise(SIGKILL);
}

/* ---- writing ---------------------------------------------------------------------------------------------------- */

/* A split tensor of the plan: its rows move in slabs (write_split), from this rank's rows at d->base. */
static void planned_set_split(planned *d, const dl_shard_layout *l, size_t tensor) {
    d->split = l;
    d->tensor = tensor;
    d->nruns = 0;
}

/* Fails when the elements d takes from a layout's buffer reach past its local_numel floats (split tensors are
 * checked row by row as they move). */
static dl_status check_fits(const planned *d, const dl_shard_layout *l, size_t i) {
    if (!l || d->nruns == 0)
        return DL_OK;
    uint64_t end = d->runs[d->nruns - 1].end;
    if (l->local_offset[i] + end > l->local_numel)
        return DL_FAIL(DL_ERR_INVALID, "%s: this rank's part ends at float %llu of its buffer, which holds %zu",
                       d->name, (unsigned long long)(l->local_offset[i] + end), l->local_numel);
    return DL_OK;
}

/* Builds the plan of every dataset and which elements this rank writes. */
static dl_status build_plan(plan *p, const dl_world *w, const dl_ckpt_tensors *t, const dl_shard_layout *l,
                            uint64_t state_begin, uint64_t state_end, const uint8_t *cursors, const int *lengths,
                            size_t cursor_total) {
    for (size_t i = 0; i < t->params->count; i++) {
        const dl_tensor *v = dl_tensor_table_at(t->params, i);
        char name[384];
        snprintf(name, sizeof name, "/model/%s", v->name);
        const float *base = t->params_data ? t->params_data + (l ? l->local_offset[i] : v->offset) : NULL;
        planned *d = NULL;
        DL_CHECK(plan_add(p, name, v->ndim, v->shape, DL_CKPT_F32, base, 1, &d));
        if (l && l->split[i]) {
            planned_set_split(d, l, i);
            DL_CHECK(check_split_rows(d));
        } else {
            planned_set_run(d, 0, w->rank == 0 ? d->numel : 0);
        }
        DL_REQUIRE((d->nruns == 0 && !d->split) || base != NULL, DL_ERR_INVALID,
                   "dl_ckpt_write: rank %d holds part of %s but passed no parameters", w->rank, name);
        DL_CHECK(check_fits(d, l, i));
    }
    for (int k = 0; k < t->num_states; k++) {
        for (size_t i = 0; i < t->params->count; i++) {
            const dl_tensor *v = dl_tensor_table_at(t->params, i);
            char name[384];
            snprintf(name, sizeof name, "/optimizer/%s/%s", t->state_names[k], v->name);
            const float *base = t->states_data && t->states_data[k]
                                    ? t->states_data[k] + (l ? l->local_offset[i] : v->offset)
                                    : NULL;
            planned *d = NULL;
            DL_CHECK(plan_add(p, name, v->ndim, v->shape, DL_CKPT_F32, base, 1, &d));
            if (l && l->split[i]) {
                planned_set_split(d, l, i);
                DL_CHECK(check_split_rows(d));
            } else {
                uint64_t b = state_begin > v->offset ? state_begin - v->offset : 0;
                uint64_t e = state_end > v->offset ? state_end - v->offset : 0;
                planned_set_run(d, b < d->numel ? b : d->numel, e < d->numel ? e : d->numel);
            }
            DL_REQUIRE((d->nruns == 0 && !d->split) || base != NULL, DL_ERR_INVALID,
                       "dl_ckpt_write: rank %d holds part of %s but passed no state buffer", w->rank, name);
            DL_CHECK(check_fits(d, l, i));
        }
    }
    planned *d = NULL;
    size_t shape[1] = {cursor_total};
    DL_CHECK(plan_add(p, "/data/cursors", 1, shape, DL_CKPT_U8, cursors, 0, &d));
    planned_set_run(d, 0, w->rank == 0 ? cursor_total : 0);
    shape[0] = (size_t)w->size;
    DL_CHECK(plan_add(p, "/data/cursor_lengths", 1, shape, DL_CKPT_I32, lengths, 0, &d));
    planned_set_run(d, 0, w->rank == 0 ? (uint64_t)w->size : 0);
    return DL_OK;
}

static hid_t create_group(hid_t file, const char *name) {
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    hid_t g = H5Gcreate2(file, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    return g;
}

/* Closes a file that failed on some rank, on every rank together (they agreed on the failure first), so that HDF5
 * keeps nothing open: HDF5 flushes its metadata at close, and on a full disk that flush fails again and leaves the
 * file open inside the library, which then crashes in MPI_Finalize trying once more. So the file is first cut to
 * nothing (MPI_File_set_size, collective), which gives the space of its data back and leaves room for the few
 * metadata bytes of the close; the file itself is deleted afterwards. Returns whether HDF5 let go of it. */
static int close_failed(dl_world *w, hid_t file, const char *tmp) {
    char what[4500];
    snprintf(what, sizeof what, "closing the failed checkpoint %s", tmp);
    dl_comm_guard_begin(w, what, tmp);
    void *handle = NULL;
    hid_t fapl = H5Fget_access_plist(file);
    if (fapl >= 0 && H5Fget_vfd_handle(file, fapl, &handle) >= 0 && handle)
        MPI_File_set_size(*(MPI_File *)handle, 0);
    if (fapl >= 0)
        H5Pclose(fapl);
    herr_t closed = H5Fclose(file);
    dl_comm_guard_end(w);
    return closed >= 0 || H5Iis_valid(file) <= 0;
}

/* The collective part: the file, its attributes, groups and datasets, then the CRCs. After each phase the ranks
 * agree on its outcome (an all-reduce under the watchdog), so a rank that failed never leaves the others inside one
 * of HDF5's collective calls; those calls themselves run under a guard (dl_comm_guard_begin), in case one fails
 * inside HDF5. Raw data is written with independent transfers (compressed datasets excepted: parallel HDF5 writes
 * those only collectively). On failure every rank closes what it opened and the file is closed together. */
static dl_status write_contents(dl_world *w, const char *tmp, const char *path, const meta_wire *m,
                                const char *config, const dl_ckpt_tensors *t, plan *p, const dl_ckpt_options *o) {
    const int compress = o->compress;
    char what[4600];
#define GUARD(...)                                         \
    do {                                                   \
        snprintf(what, sizeof what, __VA_ARGS__);          \
        dl_comm_guard_begin(w, what, tmp);                 \
    } while (0)
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, w->comm, MPI_INFO_NULL);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST);
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    GUARD("creating checkpoint %s", tmp);
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
    dl_comm_guard_end(w);
    H5Pclose(fcpl);
    H5Pclose(fapl);
    dl_status s = DL_OK;
    if (file < 0) {
        s = DL_FAIL(DL_ERR_IO, "rank %d: cannot create checkpoint %s", w->rank, tmp);
        dl_error_hint("check that the run directory is writable and the disk has room");
    }
    s = agree(w, s, "checkpoint create");
    if (s != DL_OK) {
        if (file >= 0) /* created here but not on another rank: this close cannot be collective, so it is guarded */
            close_failed(w, file, tmp);
        return s;
    }
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(dxpl, compress ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT);
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
    char groups[2 + 16 + 1][192];
    size_t ngroups = 0;
    snprintf(groups[ngroups++], sizeof groups[0], "/model");
    if (t->num_states > 0)
        snprintf(groups[ngroups++], sizeof groups[0], "/optimizer");
    for (int k = 0; k < t->num_states; k++)
        snprintf(groups[ngroups++], sizeof groups[0], "/optimizer/%s", t->state_names[k]);
    snprintf(groups[ngroups++], sizeof groups[0], "/data");
    GUARD("writing the metadata of checkpoint %s", tmp);
    for (size_t g = 0; g < ngroups && s == DL_OK; g++) {
        hid_t gid = create_group(file, groups[g]);
        if (gid < 0)
            s = DL_FAIL(DL_ERR_IO, "%s: cannot create group %s", path, groups[g]);
        else
            H5Gclose(gid);
    }
    dl_comm_guard_end(w);
    hid_t *dsets = malloc((p->count ? p->count : 1) * sizeof *dsets);
    uint32_t *raw = calloc(p->count ? p->count : 1, sizeof *raw);
    if (s == DL_OK && (!dsets || !raw))
        s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu dataset handles", p->count);
    for (size_t i = 0; dsets && i < p->count; i++)
        dsets[i] = -1;
    s = agree(w, s, "checkpoint metadata");
    slab_route route;
    memset(&route, 0, sizeof route);
    int routed = 0;
    for (size_t i = 0; i < p->count && s == DL_OK; i++) {
        const planned *d = &p->items[i];
        GUARD("writing %s of checkpoint %s", d->name, tmp);
        if (d->split) {
            dl_status deferred = DL_OK; /* a layout or write failure: the rounds go on, all ranks agree after */
            if (!routed) {
                s = slab_route_init(&route, w->size);
                routed = s == DL_OK;
            }
            if (s == DL_OK)
                s = create_dataset(file, d, compress, &dsets[i], path);
            if (s == DL_OK)
                s = write_split(w, dsets[i], dxpl, compress, d, o->slab_bytes, &route, &raw[i], &deferred, path);
            if (s == DL_OK)
                s = deferred;
        } else {
            s = write_planned(file, dxpl, compress, d, compress, &dsets[i], path);
            if (s == DL_OK)
                raw[i] = planned_raw_crc(d);
        }
        dl_comm_guard_end(w);
        s = agree(w, s, "checkpoint write");
    }
    slab_route_free(&route);
    if (s == DL_OK)
        maybe_kill(w, "data", m->step);
    /* The CRCs: XOR of the ranks' raw registers, finished on rank 0, broadcast, written by all. */
    uint32_t *all = NULL;
    if (s == DL_OK) {
        size_t bytes = p->count * sizeof(uint32_t);
        all = malloc(bytes * (size_t)w->size + 4);
        s = all ? allgather_bytes(w, raw, bytes, all, "checkpoint CRCs")
                : DL_FAIL(DL_ERR_NOMEM, "cannot allocate CRC table");
    }
    if (s == DL_OK)
        GUARD("writing the CRCs of checkpoint %s", tmp);
    for (size_t i = 0; i < p->count && s == DL_OK; i++) {
        uint32_t x = 0;
        for (int r = 0; r < w->size; r++)
            x ^= all[(size_t)r * p->count + i];
        uint32_t crc = raw_finish(x, p->items[i].numel * dl_ckpt_dtype_size(p->items[i].dtype));
        s = dl_h5_attr_write_u32(dsets[i], "crc32c", crc, path);
    }
    dl_comm_guard_end(w);
#undef TRY
    free(all);
    for (size_t i = 0; dsets && i < p->count; i++)
        if (dsets[i] >= 0)
            H5Dclose(dsets[i]);
    free(dsets);
    free(raw);
    H5Pclose(dxpl);
    s = agree(w, s, "checkpoint CRCs");
    if (s == DL_OK) {
        GUARD("flushing checkpoint %s", tmp);
        int injected = dl_fault_hit(DL_FAULT_FSYNC); /* the flush is collective: it runs all the same */
        if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0 || injected)
            s = write_failure(path, injected, "flushing the file failed");
        dl_comm_guard_end(w);
        s = agree(w, s, "checkpoint flush");
    }
    if (s != DL_OK) {
        if (!close_failed(w, file, tmp))
            DL_WARN("rank %d: HDF5 could not close the failed checkpoint %s", w->rank, tmp);
        return s;
    }
    GUARD("closing checkpoint %s", tmp);
    int still_open = 0;
    if (H5Fclose(file) < 0) {
        s = write_failure(path, 0, "closing the file failed");
        still_open = H5Iis_valid(file) > 0;
    }
    dl_comm_guard_end(w);
    dl_status agreed = agree(w, s, "checkpoint close");
    /* A close that failed on one rank only: every rank is past its own close, so only that rank cuts and closes
     * again (MPI_File_set_size is collective: it would wait for the others; the guard bounds it). */
    if (still_open && !close_failed(w, file, tmp))
        DL_WARN("rank %d: HDF5 could not close the failed checkpoint %s", w->rank, tmp);
    return agreed;
#undef GUARD
}

/* Rank 0 names the temporary file (unique to this writer, next to `path`) and every rank learns the name; rank 0
 * also refuses to start when the file system has less room than the checkpoint needs (uncompressed: a compressed
 * file's size is not known before it is written). */
static dl_status prepare_tmp(dl_world *w, const char *path, const plan *p, size_t config_len, int compress,
                             char *tmp, size_t cap) {
    dl_status s = DL_OK;
    memset(tmp, 0, cap);
    if (w->rank == 0) {
        uint64_t need = 64 * 1024 + config_len;
        for (size_t i = 0; i < p->count; i++) /* data, plus chunk indexes and headers: a few KiB per dataset */
            need += p->items[i].numel * dl_ckpt_dtype_size(p->items[i].dtype) + 4096;
        char *dir = dl_path_join_suffix(path, "");
        uint64_t free_bytes = 0;
        s = dir ? dl_free_space(dirname(dir), &free_bytes) : DL_FAIL(DL_ERR_NOMEM, "out of memory");
        free(dir);
        if (s == DL_OK && !compress && free_bytes < need) {
            s = DL_FAIL(DL_ERR_IO, "%s: the checkpoint needs %.1f MiB and its file system has %.1f MiB free; "
                        "nothing was written", path, (double)need / 1048576.0, (double)free_bytes / 1048576.0);
            dl_error_hint("free space (or lower ckpt.keep, or set ckpt.compress: true); latest still names the last "
                          "good checkpoint");
        }
        char *name = NULL;
        int fd = -1;
        if (s == DL_OK)
            s = dl_tmp_create(path, &name, &fd);
        if (s == DL_OK) {
            close(fd);
            if (strlen(name) >= cap) {
                unlink(name);
                s = DL_FAIL(DL_ERR_INVALID, "checkpoint path %s is too long", name);
            } else {
                snprintf(tmp, cap, "%s", name);
            }
        }
        free(name);
    }
    DL_CHECK(agree(w, s, "checkpoint space"));
    return dl_comm_broadcast(w, tmp, cap, 0, "checkpoint file name");
}

dl_status dl_ckpt_write(dl_world *w, const char *path, const dl_ckpt_meta *meta, const dl_ckpt_tensors *t,
                        const uint8_t *cursor, size_t cursor_len, const dl_ckpt_options *options) {
    DL_REQUIRE(w && path && meta && t && t->params, DL_ERR_INVALID, "dl_ckpt_write: NULL argument");
    quiet_hdf5();
    dl_ckpt_options none = {0};
    const dl_ckpt_options *o = options ? options : &none;
    uint64_t numel = dl_tensor_table_numel(t->params);
    /* Local checks first, agreed by all, so no rank enters HDF5's collective calls alone. */
    dl_status local = DL_OK;
    if (w->rank == 0 && !t->params_data)
        local = DL_FAIL(DL_ERR_INVALID, "dl_ckpt_write: rank 0 passed no parameters");
    else if (t->num_states < 0 || t->num_states > 16 || (t->num_states > 0 && !t->state_names))
        local = DL_FAIL(DL_ERR_INVALID, "dl_ckpt_write: bad optimizer state list (%d states)", t->num_states);
    else if (t->state_begin > t->state_end || t->state_end > numel)
        local = DL_FAIL(DL_ERR_INVALID, "dl_ckpt_write: state slice [%zu, %zu) outside the %llu elements",
                        t->state_begin, t->state_end, (unsigned long long)numel);
    else if (cursor_len > 0x7fffffff || (cursor_len && !cursor))
        local = DL_FAIL(DL_ERR_INVALID, "dl_ckpt_write: bad cursor (%zu bytes)", cursor_len);
    else if (!meta->model_kind[0] || memchr(meta->model_kind, 0, sizeof meta->model_kind) == NULL)
        local = DL_FAIL(DL_ERR_INVALID, "dl_ckpt_write: no model kind");
    if (local == DL_OK)
        local = check_layout(t, o->layout);
    DL_CHECK(agree(w, local, "checkpoint arguments"));
    uint64_t fingerprint = layout_hash(t, o->layout);
    int64_t fp[2] = {(int64_t)(fingerprint >> 1), -(int64_t)(fingerprint >> 1)};
    DL_CHECK(dl_comm_allreduce_max_i64(w, fp, 2, "checkpoint layout"));
    if (fp[0] != -fp[1])
        return DL_FAIL(DL_ERR_INVALID, "dl_ckpt_write: ranks passed different tensor layouts for %s", path);

    /* What shapes the file comes from rank 0. */
    meta_wire m;
    memset(&m, 0, sizeof m);
    m.step = meta->step;
    m.epoch = meta->epoch;
    m.optimizer_step = meta->optimizer_step;
    m.bad_steps = meta->bad_steps;
    m.seed = meta->seed;
    m.world_size = w->size;
    m.zero_stage = meta->zero_stage;
    m.tokens_seen = meta->tokens_seen;
    m.samples_seen = meta->samples_seen;
    memcpy(m.model_kind, meta->model_kind, sizeof m.model_kind);
    memcpy(m.tokenizer_hash, meta->tokenizer_hash, sizeof m.tokenizer_hash);
    m.tokenizer_hash[sizeof m.tokenizer_hash - 1] = '\0';
    memcpy(m.blas_kernel, meta->blas_kernel, sizeof m.blas_kernel);
    memcpy(m.cpu_variant, meta->cpu_variant, sizeof m.cpu_variant);
    m.blas_kernel[sizeof m.blas_kernel - 1] = m.cpu_variant[sizeof m.cpu_variant - 1] = '\0';
    m.threads = meta->threads;
    m.config_len = meta->config_yaml ? strlen(meta->config_yaml) : 0;
    DL_CHECK(dl_comm_broadcast(w, &m, sizeof m, 0, "checkpoint meta"));
    char *config = malloc(m.config_len + 1);
    DL_REQUIRE(config != NULL, DL_ERR_NOMEM, "cannot allocate %llu bytes of config", (unsigned long long)m.config_len);
    if (w->rank == 0 && m.config_len)
        memcpy(config, meta->config_yaml, m.config_len);
    config[m.config_len] = '\0';
    dl_status s = dl_comm_broadcast(w, config, m.config_len, 0, "checkpoint config");

    /* Cursors: gathered on rank 0, their lengths known to all (they shape /data). */
    int *lengths = calloc((size_t)w->size, sizeof(int));
    uint64_t *slices = calloc((size_t)w->size * 2, sizeof(uint64_t));
    void *cursors = NULL;
    if (s == DL_OK && (!lengths || !slices))
        s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate per-rank tables");
    if (s == DL_OK)
        s = dl_comm_gather_bytes(w, cursor, (int)cursor_len, 0, &cursors, lengths, "checkpoint cursors");
    if (s == DL_OK)
        s = dl_comm_broadcast(w, lengths, (size_t)w->size * sizeof(int), 0, "cursor lengths");
    uint64_t mine[2] = {t->state_begin, t->state_end}, state_begin = 0, state_end = 0;
    if (s == DL_OK)
        s = allgather_bytes(w, mine, sizeof mine, slices, "optimizer state slices");
    if (s == DL_OK && t->num_states > 0)
        s = resolve_slices(slices, w->size, numel, w->rank, &state_begin, &state_end);
    size_t cursor_total = 0;
    for (int r = 0; s == DL_OK && r < w->size; r++)
        cursor_total += (size_t)lengths[r];

    plan p = {0};
    if (s == DL_OK)
        s = build_plan(&p, w, t, o->layout, state_begin, state_end, cursors, lengths, cursor_total);
    s = agree(w, s, "checkpoint plan");
    char tmp[4400] = "";
    if (s == DL_OK)
        s = prepare_tmp(w, path, &p, m.config_len, o->compress, tmp, sizeof tmp);
    int created = s == DL_OK;
    if (s == DL_OK)
        s = write_contents(w, tmp, path, &m, config, t, &p, o);
    if (s == DL_OK)
        maybe_kill(w, "close", m.step);
    if (s == DL_OK && w->rank == 0)
        s = dl_rename_durable(tmp, path);
    if (s != DL_OK && created && w->rank == 0)
        unlink(tmp);
    s = agree(w, s, "checkpoint rename");
    plan_free(&p);
    free(cursors);
    free(lengths);
    free(slices);
    free(config);
    return s;
}

static int parse_step_name(const char *name, int64_t *step) {
    long long v;
    int used = 0;
    if (strncmp(name, "step_", 5) != 0)
        return 0;
    if (sscanf(name, "step_%8lld.h5%n", &v, &used) == 1 && used > 0 && name[used] == '\0' && v >= 0) {
        *step = v;
        return 1;
    }
    return 0;
}

/* Deletes complete checkpoints older than the newest `keep` up to `current` (later steps belong to a run this one
 * branched from and are left alone), except multiples of keep_every, and leftover step_*.h5.tmp[.*] files of dead
 * writers (this run's own temporary is renamed by now, and a run directory has one run at a time). */
static void prune(const char *dir, int64_t current, int keep, int keep_every) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    int64_t *steps = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *tmp_mark = strstr(e->d_name, ".h5.tmp");
        if (tmp_mark && strncmp(e->d_name, "step_", 5) == 0 && (tmp_mark[7] == '\0' || tmp_mark[7] == '.')) {
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (unlink(path) != 0 && errno != ENOENT)
                DL_WARN("could not delete leftover %s: %s", path, strerror(errno));
            continue;
        }
        int64_t step;
        if (keep > 0 && parse_step_name(e->d_name, &step) && step <= current) {
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                int64_t *grown = realloc(steps, cap * sizeof *grown);
                if (!grown)
                    break;
                steps = grown;
            }
            steps[n++] = step;
        }
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        size_t newer = 0;
        for (size_t j = 0; j < n; j++)
            newer += steps[j] > steps[i];
        if (steps[i] == current || newer < (size_t)keep || (keep_every > 0 && steps[i] % keep_every == 0))
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/step_%08lld.h5", dir, (long long)steps[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            DL_WARN("could not delete old checkpoint %s: %s", path, strerror(errno));
    }
    free(steps);
}

dl_status dl_ckpt_save(dl_world *world, const char *run_dir, const dl_ckpt_meta *meta, const dl_ckpt_tensors *t,
                       const uint8_t *cursor, size_t cursor_len, const dl_ckpt_options *options, char *path_out,
                       size_t path_cap) {
    DL_REQUIRE(world && run_dir && meta && t, DL_ERR_INVALID, "dl_ckpt_save: NULL argument");
    DL_REQUIRE(meta->step >= 0 && meta->step <= 99999999, DL_ERR_INVALID,
               "checkpoint step %lld does not fit the 8-digit file name", (long long)meta->step);
    char dir[4096], path[4200];
    int n = snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
    DL_REQUIRE(n > 0 && (size_t)n < sizeof dir, DL_ERR_INVALID, "run directory path '%s' is too long", run_dir);
    snprintf(path, sizeof path, "%s/step_%08lld.h5", dir, (long long)meta->step);
    dl_status s = world->rank == 0 ? dl_make_dirs(dir) : DL_OK;
    DL_CHECK(agree(world, s, "checkpoint directory"));
    DL_CHECK(dl_ckpt_write(world, path, meta, t, cursor, cursor_len, options));
    if (world->rank == 0) {
        maybe_kill(world, "rename", meta->step);
        char latest[4200], line[64];
        snprintf(latest, sizeof latest, "%s/latest", dir);
        int len = snprintf(line, sizeof line, "step_%08lld.h5\n", (long long)meta->step);
        s = dl_write_file_atomic(latest, line, (size_t)len);
        if (s == DL_OK)
            prune(dir, meta->step, options ? options->keep : 0, options ? options->keep_every : 0);
        if (s == DL_OK && path_out)
            snprintf(path_out, path_cap, "%s", path);
    }
    return agree(world, s, "checkpoint latest");
}

/* ---- reading ---------------------------------------------------------------------------------------------------- */

dl_status dl_ckpt_latest(const char *run_dir, char *path, size_t cap, int *found) {
    DL_REQUIRE(run_dir && path && found, DL_ERR_INVALID, "dl_ckpt_latest: NULL argument");
    *found = 0;
    char latest[4200];
    snprintf(latest, sizeof latest, "%s/ckpt/latest", run_dir);
    FILE *f = fopen(latest, "r");
    if (!f)
        return errno == ENOENT ? DL_OK : DL_FAIL(DL_ERR_IO, "cannot read %s: %s", latest, strerror(errno));
    char name[256] = "";
    int ok = fgets(name, sizeof name, f) != NULL;
    fclose(f);
    name[strcspn(name, "\r\n")] = '\0';
    int64_t step;
    if (!ok || !parse_step_name(name, &step)) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s: expected a line 'step_NNNNNNNN.h5', got '%s'", latest, name);
        dl_error_hint("delete it to start afresh, or write the name of a checkpoint in it");
        return s;
    }
    int n = snprintf(path, cap, "%s/ckpt/%s", run_dir, name);
    DL_REQUIRE(n > 0 && (size_t)n < cap, DL_ERR_INVALID, "checkpoint path under '%s' is too long", run_dir);
    if (access(path, R_OK) != 0) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s names %s, which cannot be read: %s", latest, path, strerror(errno));
        dl_error_hint("point latest at an existing step file, or start over with train.resume=never "
                      "run.overwrite=true");
        return s;
    }
    *found = 1;
    return DL_OK;
}

static dl_status open_serial(const char *path, hid_t *file) {
    quiet_hdf5();
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

static dl_status attr_read(hid_t file, const char *name, hid_t mem_type, void *out, const char *path) {
    hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
    DL_REQUIRE(attr >= 0, DL_ERR_FORMAT, "%s: attribute /%s is missing (not a dealer checkpoint?)", path, name);
    herr_t ok = H5Aread(attr, mem_type, out);
    H5Aclose(attr);
    DL_REQUIRE(ok >= 0, DL_ERR_FORMAT, "%s: attribute /%s cannot be read as the expected type", path, name);
    return DL_OK;
}

static dl_status attr_read_str(hid_t file, const char *name, char **out, const char *path) {
    hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
    DL_REQUIRE(attr >= 0, DL_ERR_FORMAT, "%s: attribute /%s is missing (not a dealer checkpoint?)", path, name);
    hid_t type = H5Aget_type(attr);
    size_t size = H5Tget_size(type);
    char *text = H5Tget_class(type) == H5T_STRING && !H5Tis_variable_str(type) ? calloc(size + 1, 1) : NULL;
    herr_t ok = text ? H5Aread(attr, type, text) : -1;
    H5Tclose(type);
    H5Aclose(attr);
    if (ok < 0) {
        free(text);
        return DL_FAIL(DL_ERR_FORMAT, "%s: attribute /%s is not a fixed-length string", path, name);
    }
    *out = text;
    return DL_OK;
}

static dl_status read_meta_from(hid_t file, const char *path, dl_ckpt_meta *meta) {
    int64_t version = 0, world = 0, zero = 0;
    char *kind = NULL;
    dl_status s = attr_read(file, "format_version", H5T_NATIVE_INT64, &version, path);
    if (s == DL_OK && version != DL_CKPT_FORMAT_VERSION) {
        s = DL_FAIL(DL_ERR_FORMAT, "%s: checkpoint format version %lld, this dealer reads version %d", path,
                    (long long)version, DL_CKPT_FORMAT_VERSION);
        dl_error_hint("use the dealer release that wrote it (dealer ckpt show prints its dealer_version)");
    }
#define READ(name, type, dst) \
    if (s == DL_OK)           \
    s = attr_read(file, name, type, dst, path)
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
            s = attr_read(file, "threads", H5T_NATIVE_INT64, &threads, path);
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
    DL_CHECK(open_serial(path, &file));
    dl_status s = read_meta_from(file, path, meta);
    H5Fclose(file);
    return s;
}

/* ---- the dataset listing ---------------------------------------------------------------------------------------- */

struct dl_ckpt_file {
    hid_t file;
    char path[4200];
    dl_ckpt_dataset *sets;
    size_t count, cap;
    dl_status failure; /* of the visit */
};

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
    dl_status s = open_serial(path, &f->file);
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
        herr_t ok = dset >= 0 ? H5Dread(dset, mem_type_of(d->dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, out) : -1;
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
static dl_status find_checked(dl_ckpt_file *f, const char *name, dl_ckpt_dtype dtype, int ndim, const size_t *shape,
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

static dl_status crc_mismatch(const char *path, const char *name, uint32_t stored, uint32_t computed) {
    dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s: tensor %s: CRC mismatch (stored 0x%08x, computed 0x%08x)", path, name,
                          stored, computed);
    dl_error_hint("the file is damaged; resume from an earlier step file");
    return s;
}

/* Reads a dataset that must exist with `dtype` and the given shape, checking its CRC; every failure names it. */
static dl_status read_checked(dl_ckpt_file *f, const char *name, dl_ckpt_dtype dtype, int ndim, const size_t *shape,
                              void *out) {
    const dl_ckpt_dataset *d;
    DL_CHECK(find_checked(f, name, dtype, ndim, shape, &d));
    uint32_t computed = 0;
    DL_CHECK(read_whole(f, d, out, &computed));
    if (computed != d->crc)
        return crc_mismatch(f->path, name, d->crc, computed);
    return DL_OK;
}

/* A split dataset to load in rounds (read_split): found and checked, with the CRC its slabs must add up to. */
typedef struct split_load {
    char name[384];
    size_t tensor;
    float *out; /* where this rank's rows of it go */
    uint32_t stored, raw;
} split_load;

/* Fails when a dataset under `prefix` is not one `expect` accepts. */
static dl_status check_no_extra(dl_ckpt_file *f, const char *prefix, const dl_ckpt_tensors *t, int states) {
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < f->count; i++) {
        const char *n = f->sets[i].name;
        if (strncmp(n, prefix, plen) != 0)
            continue;
        const char *rest = n + plen;
        if (states) {
            const char *slash = strchr(rest, '/');
            size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
            int known = 0;
            for (int k = 0; k < t->num_states && !known; k++)
                known = strlen(t->state_names[k]) == len && strncmp(t->state_names[k], rest, len) == 0;
            if (!known) {
                char names[256] = "";
                size_t at = 0;
                for (int k = 0; k < t->num_states && at < sizeof names; k++)
                    at += (size_t)snprintf(names + at, sizeof names - at, "%s%s", k ? ", " : "", t->state_names[k]);
                dl_status s = DL_FAIL(DL_ERR_FORMAT,
                                      "%s: tensor %s is optimizer state '%.*s', but this run's optimizer keeps %s",
                                      f->path, n, (int)len, rest, t->num_states ? names : "none");
                dl_error_hint("resume with the optimizer the checkpoint was written with (optim.name), or start "
                              "over with train.resume=never run.overwrite=true");
                return s;
            }
            rest = slash ? slash + 1 : rest;
        }
        if (!dl_tensor_table_find(t->params, rest)) {
            dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s: tensor %s is not a parameter of this model", f->path, n);
            dl_error_hint("the checkpoint is of another model shape: compare model.* with its config (dealer ckpt "
                          "show)");
            return s;
        }
    }
    return DL_OK;
}

/* Reads tensor i of the table from dataset `name` into buffer `data` (laid out as l says, or as the whole table):
 * whole, or for a split tensor only checked and noted in splits[(*nsplit)++], to be read in rounds by all ranks. */
static dl_status load_tensor(dl_ckpt_file *f, const dl_ckpt_tensors *t, const dl_shard_layout *l, size_t i,
                             const char *name, float *data, split_load *splits, size_t *nsplit) {
    const dl_tensor *v = dl_tensor_table_at(t->params, i);
    float *at = data + (l ? l->local_offset[i] : v->offset);
    if (!(l && l->split[i]))
        return read_checked(f, name, DL_CKPT_F32, v->ndim, v->shape, at);
    const dl_ckpt_dataset *d;
    DL_CHECK(find_checked(f, name, DL_CKPT_F32, v->ndim, v->shape, &d));
    plan one = {0};
    planned *p = NULL;
    dl_status s = plan_add(&one, name, v->ndim, v->shape, DL_CKPT_F32, NULL, 1, &p);
    if (s == DL_OK) {
        planned_set_split(p, l, i);
        s = check_split_rows(p);
    }
    plan_free(&one);
    DL_CHECK(s);
    split_load *sl = &splits[(*nsplit)++];
    snprintf(sl->name, sizeof sl->name, "%s", name);
    sl->tensor = i;
    sl->out = at;
    sl->stored = d->crc;
    return DL_OK;
}

/* The split datasets of a load: one per split tensor and per state. */
static size_t split_datasets(const dl_ckpt_tensors *t, const dl_shard_layout *l) {
    size_t n = 0;
    for (size_t i = 0; l && i < t->params->count && i < l->count; i++)
        n += l->split[i] ? 1u + (size_t)(t->num_states > 0 ? t->num_states : 0) : 0u;
    return n;
}

static dl_status load_from(dl_ckpt_file *f, const dl_ckpt_tensors *t, const dl_shard_layout *l, int rank,
                           int world_size, uint8_t **cursor, size_t *cursor_len, split_load *splits) {
    char name[384];
    size_t nsplit = 0;
    DL_CHECK(check_no_extra(f, "/model/", t, 0));
    for (size_t i = 0; i < t->params->count; i++) {
        snprintf(name, sizeof name, "/model/%s", dl_tensor_table_at(t->params, i)->name);
        DL_CHECK(load_tensor(f, t, l, i, name, t->params_data, splits, &nsplit));
    }
    if (t->num_states > 0) {
        DL_CHECK(check_no_extra(f, "/optimizer/", t, 1));
        for (int k = 0; k < t->num_states; k++)
            for (size_t i = 0; i < t->params->count; i++) {
                snprintf(name, sizeof name, "/optimizer/%s/%s", t->state_names[k],
                         dl_tensor_table_at(t->params, i)->name);
                DL_CHECK(load_tensor(f, t, l, i, name, t->states_data[k], splits, &nsplit));
            }
    }
    int64_t saved_world = 0;
    DL_CHECK(attr_read(f->file, "world_size", H5T_NATIVE_INT64, &saved_world, f->path));
    if (saved_world != world_size || world_size <= 0 || rank < 0 || rank >= world_size)
        return DL_OK;
    int *lengths = malloc((size_t)world_size * sizeof(int));
    DL_REQUIRE(lengths != NULL, DL_ERR_NOMEM, "cannot allocate cursor lengths");
    size_t dims[1] = {(size_t)world_size};
    dl_status s = read_checked(f, "/data/cursor_lengths", DL_CKPT_I32, 1, dims, lengths);
    size_t total = 0, offset = 0;
    for (int r = 0; s == DL_OK && r < world_size; r++) {
        if (lengths[r] < 0) {
            s = DL_FAIL(DL_ERR_FORMAT, "%s: negative cursor length for rank %d", f->path, r);
            break;
        }
        if (r < rank)
            offset += (size_t)lengths[r];
        total += (size_t)lengths[r];
    }
    uint8_t *all = s == DL_OK ? malloc(total ? total : 1) : NULL;
    if (s == DL_OK && !all)
        s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu cursor bytes", total);
    dims[0] = total;
    if (s == DL_OK)
        s = read_checked(f, "/data/cursors", DL_CKPT_U8, 1, dims, all);
    if (s == DL_OK) {
        *cursor_len = (size_t)lengths[rank];
        *cursor = malloc(*cursor_len ? *cursor_len : 1);
        if (!*cursor)
            s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate a cursor");
        else
            memcpy(*cursor, all + offset, *cursor_len);
    }
    free(all);
    free(lengths);
    return s;
}

dl_status dl_ckpt_load(const char *path, const dl_ckpt_tensors *t, int rank, int world_size, uint8_t **cursor,
                       size_t *cursor_len) {
    DL_REQUIRE(path && t && t->params && t->params_data && cursor && cursor_len, DL_ERR_INVALID,
               "dl_ckpt_load: NULL argument");
    DL_REQUIRE(t->num_states == 0 || (t->state_names && t->states_data), DL_ERR_INVALID,
               "dl_ckpt_load: %d states without buffers", t->num_states);
    *cursor = NULL;
    *cursor_len = 0;
    dl_ckpt_file *f;
    DL_CHECK(dl_ckpt_open(&f, path));
    dl_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    dl_status s = read_meta_from(f->file, path, &meta);
    free(meta.config_yaml);
    if (s == DL_OK)
        s = load_from(f, t, NULL, rank, world_size, cursor, cursor_len, NULL);
    dl_ckpt_close(f);
    if (s != DL_OK) {
        free(*cursor);
        *cursor = NULL;
        *cursor_len = 0;
    }
    return s;
}

/* This rank's own part of a collective load: the meta, the unsplit tensors, the cursor, and the split datasets
 * found and checked (splits). The file stays open in *out for the rounds. */
static dl_status load_local(const char *path, const dl_ckpt_tensors *t, const dl_shard_layout *l, int rank,
                            int world_size, uint8_t **cursor, size_t *cursor_len, split_load *splits,
                            dl_ckpt_file **out) {
    DL_REQUIRE(t && t->params && t->params_data && cursor && cursor_len, DL_ERR_INVALID,
               "dl_ckpt_load_collective: NULL argument");
    DL_REQUIRE(t->num_states == 0 || (t->state_names && t->states_data), DL_ERR_INVALID,
               "dl_ckpt_load_collective: %d states without buffers", t->num_states);
    DL_CHECK(check_layout(t, l));
    dl_ckpt_file *f;
    DL_CHECK(dl_ckpt_open(&f, path));
    dl_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    dl_status s = read_meta_from(f->file, path, &meta);
    free(meta.config_yaml);
    if (s == DL_OK)
        s = load_from(f, t, l, rank, world_size, cursor, cursor_len, splits);
    if (s != DL_OK) {
        dl_ckpt_close(f);
        return s;
    }
    *out = f;
    return DL_OK;
}

/* Collective: every split dataset in rounds, each rank reading its slabs and receiving its rows; read and layout
 * failures go to *local. */
static dl_status load_splits(dl_world *w, dl_ckpt_file *f, const dl_ckpt_tensors *t, const dl_shard_layout *l,
                             size_t slab_bytes, split_load *splits, size_t n, dl_status *local) {
    slab_route route;
    DL_CHECK(slab_route_init(&route, w->size));
    dl_status s = DL_OK;
    for (size_t j = 0; j < n && s == DL_OK; j++) {
        const dl_tensor *v = dl_tensor_table_at(t->params, splits[j].tensor);
        plan one = {0};
        planned *d = NULL;
        s = plan_add(&one, splits[j].name, v->ndim, v->shape, DL_CKPT_F32, NULL, 1, &d);
        if (s == DL_OK) {
            planned_set_split(d, l, splits[j].tensor);
            hid_t dset = H5Dopen2(f->file, splits[j].name, H5P_DEFAULT);
            s = read_split(w, dset, d, slab_bytes, splits[j].out, &route, &splits[j].raw, local, f->path);
            if (dset >= 0)
                H5Dclose(dset);
        }
        plan_free(&one);
    }
    slab_route_free(&route);
    return s;
}

dl_status dl_ckpt_load_collective(dl_world *w, const char *path, const dl_ckpt_tensors *t,
                                  const dl_ckpt_options *options, uint8_t **cursor, size_t *cursor_len) {
    DL_REQUIRE(w && path && cursor && cursor_len, DL_ERR_INVALID, "dl_ckpt_load_collective: NULL argument");
    const dl_shard_layout *layout = options ? options->layout : NULL;
    const size_t slab_bytes = options ? options->slab_bytes : 0;
    quiet_hdf5();
    *cursor = NULL;
    *cursor_len = 0;
    /* Each rank reads what it reads whole; then, when all did, the split datasets in rounds; then all exchange
     * one record: whether they failed, and their share of each split dataset's CRC register (the XOR of the
     * shares is the register of the whole dataset). */
    size_t n = t && t->params ? split_datasets(t, layout) : 0;
    split_load *splits = calloc(n + 1, sizeof *splits);
    uint32_t *mine = calloc(n + 1, sizeof *mine), *all = calloc((n + 1) * (size_t)w->size, sizeof *all);
    dl_ckpt_file *f = NULL;
    dl_status local = splits && mine && all ? DL_OK : DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu CRC records", n);
    if (local == DL_OK)
        local = load_local(path, t, layout, w->rank, w->size, cursor, cursor_len, splits, &f);
    dl_status s = agree(w, local, "checkpoint load");
    if (s == DL_OK && n > 0)
        s = load_splits(w, f, t, layout, slab_bytes, splits, n, &local);
    dl_ckpt_close(f);
    if (s == DL_OK) {
        mine[0] = local != DL_OK;
        for (size_t j = 0; j < n; j++)
            mine[j + 1] = splits[j].raw;
        s = allgather_bytes(w, mine, (n + 1) * sizeof *mine, all, "checkpoint load CRCs");
    }
    if (s == DL_OK && local != DL_OK)
        s = local;
    for (int r = 0; s == DL_OK && r < w->size; r++)
        if (all[(size_t)r * (n + 1)])
            s = DL_FAIL(DL_ERR_FORMAT, "another rank failed to load %s (see its message)", path);
    for (size_t j = 0; s == DL_OK && j < n; j++) {
        uint32_t x = 0;
        for (int r = 0; r < w->size; r++)
            x ^= all[(size_t)r * (n + 1) + j + 1];
        const dl_tensor *v = dl_tensor_table_at(t->params, splits[j].tensor);
        uint32_t computed = raw_finish(x, v->numel * sizeof(float));
        if (computed != splits[j].stored)
            s = crc_mismatch(path, splits[j].name, splits[j].stored, computed);
    }
    free(splits);
    free(mine);
    free(all);
    if (s != DL_OK) {
        free(*cursor);
        *cursor = NULL;
        *cursor_len = 0;
    }
    return s;
}

/* A dataset read whole with its CRC checked (a mismatch is a failure naming it). */
static dl_status read_tensor_verified(dl_ckpt_file *f, const dl_ckpt_dataset *d, void **out) {
    size_t bytes = d->numel * dl_ckpt_dtype_size(d->dtype);
    *out = malloc(bytes ? bytes : 1);
    DL_REQUIRE(*out != NULL, DL_ERR_NOMEM, "cannot allocate %zu bytes for %s", bytes, d->name);
    dl_status s = read_checked(f, d->name, d->dtype, d->ndim, d->shape, *out);
    if (s != DL_OK) {
        free(*out);
        *out = NULL;
    }
    return s;
}

/* ---- safetensors export ----------------------------------------------------------------------------------------
 * The layout is ckpt/safetensors.c's; this picks the /model tensors and streams them one at a time. */

dl_status dl_ckpt_export_safetensors(const char *path, const char *out, size_t *tensors, uint64_t *data_bytes) {
    DL_REQUIRE(path && out, DL_ERR_INVALID, "dl_ckpt_export_safetensors: NULL argument");
    dl_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    DL_CHECK(dl_ckpt_read_meta(path, &meta));
    dl_ckpt_file *f = NULL;
    dl_status s = dl_ckpt_open(&f, path);
    size_t count = 0, n = s == DL_OK ? dl_ckpt_count(f) : 0;
    dl_st_entry *entries = calloc(n ? n : 1, sizeof *entries);
    if (s == DL_OK && !entries)
        s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate the safetensors header");
    for (size_t i = 0; s == DL_OK && i < n; i++) {
        const dl_ckpt_dataset *d = dl_ckpt_at(f, i);
        if (strncmp(d->name, "/model/", 7) != 0)
            continue;
        if (d->dtype != DL_CKPT_F32) {
            s = DL_FAIL(DL_ERR_FORMAT, "%s: tensor %s is %s, not float32", path, d->name,
                        dl_ckpt_dtype_name(d->dtype));
            break;
        }
        entries[count].name = d->name + 7;
        entries[count].ndim = d->ndim;
        for (int k = 0; k < d->ndim; k++)
            entries[count].shape[k] = d->shape[k];
        count++;
    }
    if (s == DL_OK && count == 0)
        s = DL_FAIL(DL_ERR_FORMAT, "%s holds no /model tensors", path);
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)meta.step);
    const char *keys[] = {"format", "dealer_model_kind", "dealer_step", "dealer_config"};
    const char *values[] = {"pt", meta.model_kind, step, meta.config_yaml ? meta.config_yaml : ""};
    dl_st_writer w;
    memset(&w, 0, sizeof w);
    if (s == DL_OK)
        s = dl_st_write_begin(&w, out, entries, count, keys, values, 4);
    for (size_t i = 0; s == DL_OK && i < n; i++) {
        const dl_ckpt_dataset *d = dl_ckpt_at(f, i);
        if (strncmp(d->name, "/model/", 7) != 0)
            continue;
        void *data = NULL;
        s = read_tensor_verified(f, d, &data);
        if (s == DL_OK)
            s = dl_st_write_tensor(&w, data, d->numel);
        free(data);
    }
    if (s == DL_OK)
        s = dl_st_write_commit(&w);
    else
        dl_st_write_abort(&w);
    if (s == DL_OK && tensors)
        *tensors = count;
    if (s == DL_OK && data_bytes)
        *data_bytes = w.data_bytes;
    free(entries);
    dl_ckpt_close(f);
    free(meta.config_yaml);
    return s;
}

