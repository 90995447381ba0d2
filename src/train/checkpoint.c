/* checkpoint.c — writing and reading HDF5 checkpoints (see checkpoint.h and docs/checkpoint-format.md).
 *
 * Writing is all-collective through parallel HDF5 (the MPI-IO driver), even on one rank, so there is one code path:
 * every rank creates the same groups, datasets and attributes (HDF5 requires metadata calls to match on all ranks,
 * so everything that shapes the file — the meta, the config text, the cursor lengths, the slices — is first
 * broadcast from rank 0), and each dataset is written with one collective H5Dwrite in which every rank selects the
 * elements it is responsible for: rank 0 for replicated data, each rank its ZeRO slice of an optimizer state (the
 * lowest-starting rank where slices overlap), each rank the rows it owns of a row-sharded table. An element is
 * written by exactly one rank.
 *
 * CRC of a dataset written in pieces: CRC32C is linear over GF(2), so each rank computes the "raw" CRC register of
 * the whole dataset with its own bytes in place and zeros everywhere else (zero runs cost O(log n) through a
 * precomputed table of shift operators, not a pass over zeros). The XOR of those over ranks is the raw register of
 * the whole contents; one gather, a fold and a broadcast turn it into the ordinary CRC32C every rank writes as the
 * attribute. No rank ever reads the dataset back.
 *
 * Reading is per rank with the serial API, whole datasets at a time: simple, and it is also what makes a checkpoint
 * from any world size load on any other (each rank keeps its slice of what it read). HDF5's own error printing is
 * silenced; every failure becomes one dl_status line naming the file and the object. */
#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/hash.h"
#include "core/log.h"
#include "data/record.h"

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

/* Selects the union of `runs` (non-empty, increasing) in `space`, one block after another. */
static herr_t select_runs_serial(hid_t space, int ndim, const hsize_t *dims, const run *runs, size_t nruns) {
    hsize_t start[DL_TENSOR_MAX_DIMS] = {0};
    int first = 1;
    for (size_t i = 0; i < nruns; i++)
        if (select_flat(space, ndim, dims, start, 0, runs[i].begin, runs[i].end, &first) < 0)
            return -1;
    return first ? H5Sselect_none(space) : 0;
}

/* Runs per leaf of the merge below: HDF5 1.10 adds a block to a selection in time proportional to the blocks already
 * there, so one block at a time is quadratic (50,000 rows of a sharded table took 27 s); merging halves is not. */
enum { SELECT_LEAF = 16 };

/* A new dataspace of shape dims selecting the union of runs[0, nruns) (nruns > 0): halves merged recursively. */
static hid_t runs_space_merged(int ndim, const hsize_t *dims, const run *runs, size_t nruns) {
    if (nruns <= SELECT_LEAF) {
        hid_t space = H5Screate_simple(ndim, dims, NULL);
        if (space >= 0 && select_runs_serial(space, ndim, dims, runs, nruns) < 0) {
            H5Sclose(space);
            return -1;
        }
        return space;
    }
    size_t half = nruns / 2;
    hid_t a = runs_space_merged(ndim, dims, runs, half);
    hid_t b = a >= 0 ? runs_space_merged(ndim, dims, runs + half, nruns - half) : -1;
    hid_t both = b >= 0 ? H5Scombine_select(a, H5S_SELECT_OR, b) : -1;
    if (a >= 0)
        H5Sclose(a);
    if (b >= 0)
        H5Sclose(b);
    return both;
}

/* A new dataspace of shape dims (ndim 0: a scalar) selecting the union of `runs`; -1 on failure. */
static hid_t runs_space(int ndim, const hsize_t *dims, const run *runs, size_t nruns) {
    if (ndim == 0) {
        hid_t space = H5Screate(H5S_SCALAR);
        if (space >= 0 && (nruns ? H5Sselect_all(space) : H5Sselect_none(space)) < 0) {
            H5Sclose(space);
            return -1;
        }
        return space;
    }
    if (nruns == 0) {
        hid_t space = H5Screate_simple(ndim, dims, NULL);
        if (space >= 0 && H5Sselect_none(space) < 0) {
            H5Sclose(space);
            return -1;
        }
        return space;
    }
    return runs_space_merged(ndim, dims, runs, nruns);
}

/* ---- attributes ------------------------------------------------------------------------------------------------ */

static dl_status attr_write(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const void *value,
                            const char *path) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t ok = attr >= 0 ? H5Awrite(attr, mem_type, value) : -1;
    if (attr >= 0)
        H5Aclose(attr);
    H5Sclose(space);
    DL_REQUIRE(ok >= 0, DL_ERR_IO, "%s: cannot write attribute %s", path, name);
    return DL_OK;
}

static dl_status attr_write_i64(hid_t obj, const char *name, int64_t v, const char *path) {
    return attr_write(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v, path);
}

static dl_status attr_write_f64(hid_t obj, const char *name, double v, const char *path) {
    return attr_write(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v, path);
}

static dl_status attr_write_str(hid_t obj, const char *name, const char *text, const char *path) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(text) + 1);
    H5Tset_strpad(type, H5T_STR_NULLTERM);
    dl_status s = attr_write(obj, name, type, type, text, path);
    H5Tclose(type);
    return s;
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
    int packed;          /* the runs' elements lie back to back from base instead (rows of a split tensor) */
    int64_t held_rows;   /* packed: rows in the runs, and Σ of their row_check (coverage check across ranks) */
    int64_t row_check;
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

/* A 31-bit fingerprint of row r: the ranks' sums of these over the rows they hold add up to the sum over all
 * rows only when every row is held exactly once (up to a 2^-31 chance), which int64 sums of 2^31 rows can hold. */
static int64_t row_check(uint64_t r) { return (int64_t)(dl_hash_u64(r ^ 0x526f77436865636bull) >> 33); }

/* Σ row_check over rows [0, rows): what the ranks' held rows must add up to. */
static int64_t all_rows_check(uint64_t rows) {
    int64_t sum = 0;
    for (uint64_t r = 0; r < rows; r++)
        sum += row_check(r);
    return sum;
}

/* Runs of the rows of split tensor `tensor` this rank holds (consecutive rows merged), packed from d->base, with
 * their count and row_check sum. The layout's slots must be 0, 1, 2, ... in row order (shard_layout.h). */
static dl_status planned_set_held_rows(planned *d, const dl_shard_layout *layout, size_t tensor) {
    uint64_t rows = d->ndim > 0 ? d->dims[0] : 1, row_len = rows ? d->numel / rows : 0;
    run *runs = NULL;
    size_t n = 0, cap = 0;
    int64_t held = 0, check = 0;
    d->packed = 1;
    for (uint64_t r = 0; r < rows; r++) {
        int64_t slot = layout->local_row(layout->ctx, tensor, (int64_t)r);
        if (slot < 0)
            continue;
        if (slot != held) {
            free(runs);
            return DL_FAIL(DL_ERR_INVALID, "%s: row %llu is in slot %lld of this rank's buffer, but the rows it holds "
                           "must lie back to back in row order (slot %lld)", d->name, (unsigned long long)r,
                           (long long)slot, (long long)held);
        }
        held++;
        check += row_check(r);
        if (n > 0 && runs[n - 1].end == r * row_len) {
            runs[n - 1].end += row_len;
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            run *grown = realloc(runs, cap * sizeof *grown);
            if (!grown) {
                free(runs);
                return DL_FAIL(DL_ERR_NOMEM, "cannot allocate the row list of %s", d->name);
            }
            runs = grown;
        }
        runs[n++] = (run){r * row_len, (r + 1) * row_len};
    }
    d->runs = n ? runs : &d->single;
    d->nruns = n;
    d->held_rows = held;
    d->row_check = check;
    if (!n)
        free(runs);
    return DL_OK;
}

/* Elements in the runs of d. */
static uint64_t planned_count(const planned *d) {
    uint64_t count = 0;
    for (size_t i = 0; i < d->nruns; i++)
        count += d->runs[i].end - d->runs[i].begin;
    return count;
}

/* The raw CRC register (from 0) of the dataset's bytes with this rank's runs in place and zeros elsewhere. */
static uint32_t planned_raw_crc(const planned *d) {
    size_t es = dl_ckpt_dtype_size(d->dtype);
    uint32_t raw = 0;
    uint64_t pos = 0, at = 0;
    for (size_t i = 0; i < d->nruns; i++) {
        uint64_t len = d->runs[i].end - d->runs[i].begin;
        raw = raw_zeros(raw, (d->runs[i].begin - pos) * es);
        raw = raw_feed(raw, d->base + (d->packed ? at : d->runs[i].begin) * es, (size_t)(len * es));
        pos = d->runs[i].end;
        at += len;
    }
    return raw_zeros(raw, (d->numel - pos) * es);
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

/* Creates the dataset and writes this rank's runs collectively. The dataset stays open in *dset for the CRC. */
static dl_status write_planned(hid_t file, hid_t dxpl, const planned *d, int compress, hid_t *dset,
                               const char *path) {
    size_t es = dl_ckpt_dtype_size(d->dtype);
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
    dl_status s = DL_OK;
    if (*dset < 0)
        s = DL_FAIL(DL_ERR_IO, "%s: cannot create dataset %s", path, d->name);
    /* The memory side is one contiguous buffer: the data itself for one run or rows already back to back, a packed
     * copy for several runs of a whole-layout buffer. */
    uint64_t count = planned_count(d);
    const uint8_t *src = d->packed ? d->base : d->nruns == 1 ? d->base + d->runs[0].begin * es : NULL;
    uint8_t *packed = NULL;
    if (s == DL_OK && d->nruns > 1 && !d->packed) {
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
    if (s == DL_OK && d->numel > 0) {
        hsize_t mdims[1] = {count ? count : 1};
        hid_t mspace = H5Screate_simple(1, mdims, NULL);
        if (count == 0)
            H5Sselect_none(mspace);
        hid_t selected = runs_space(d->ndim, d->dims, d->runs, d->nruns);
        herr_t ok = selected >= 0 ? H5Dwrite(*dset, mem_type_of(d->dtype), mspace, selected, dxpl,
                                             count ? (const void *)src : &count)
                                  : -1;
        if (selected >= 0)
            H5Sclose(selected);
        H5Sclose(mspace);
        if (ok < 0)
            s = DL_FAIL(DL_ERR_IO, "%s: cannot write dataset %s (disk full?)", path, d->name);
    }
    free(packed);
    H5Sclose(fspace);
    return s;
}

/* ---- what every rank must agree on ------------------------------------------------------------------------------ */

/* The fixed-size part of the meta, broadcast from rank 0 so every rank issues identical metadata calls. */
typedef struct meta_wire {
    int64_t step, epoch, optimizer_step, bad_steps, seed, world_size, zero_stage;
    double tokens_seen, samples_seen;
    char model_kind[16];
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

/* Collective: every row of every split dataset is held by exactly one rank, or all ranks fail. */
static dl_status check_coverage(dl_world *w, const plan *p) {
    size_t n = 0;
    for (size_t i = 0; i < p->count; i++)
        n += p->items[i].packed;
    if (n == 0)
        return DL_OK;
    int64_t *sums = calloc(2 * n, sizeof *sums);
    DL_REQUIRE(sums != NULL, DL_ERR_NOMEM, "cannot allocate %zu row counts", n);
    for (size_t i = 0, j = 0; i < p->count; i++)
        if (p->items[i].packed) {
            sums[2 * j] = p->items[i].held_rows;
            sums[2 * j + 1] = p->items[i].row_check;
            j++;
        }
    dl_status s = dl_comm_allreduce_sum_i64(w, sums, 2 * n, "checkpoint row coverage");
    for (size_t i = 0, j = 0; s == DL_OK && i < p->count; i++) {
        const planned *d = &p->items[i];
        if (!d->packed)
            continue;
        uint64_t rows = d->dims[0];
        if (sums[2 * j] != (int64_t)rows || sums[2 * j + 1] != all_rows_check(rows)) {
            s = DL_FAIL(DL_ERR_INVALID, "%s: the %d ranks hold %lld rows between them, but not each of its %llu rows "
                        "exactly once", d->name, w->size, (long long)sums[2 * j], (unsigned long long)rows);
            dl_error_hint("the model's shard layout must give every row to one rank (shard_layout.h)");
        }
        j++;
    }
    free(sums);
    return s;
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

/* Fails when the elements d takes from a layout's buffer reach past its local_numel floats. */
static dl_status check_fits(const planned *d, const dl_shard_layout *l, size_t i) {
    if (!l || d->nruns == 0)
        return DL_OK;
    uint64_t end = d->packed ? planned_count(d) : d->runs[d->nruns - 1].end;
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
        if (l && l->split[i])
            DL_CHECK(planned_set_held_rows(d, l, i));
        else
            planned_set_run(d, 0, w->rank == 0 ? d->numel : 0);
        DL_REQUIRE(d->nruns == 0 || base != NULL, DL_ERR_INVALID,
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
                DL_CHECK(planned_set_held_rows(d, l, i));
            } else {
                uint64_t b = state_begin > v->offset ? state_begin - v->offset : 0;
                uint64_t e = state_end > v->offset ? state_end - v->offset : 0;
                planned_set_run(d, b < d->numel ? b : d->numel, e < d->numel ? e : d->numel);
            }
            DL_REQUIRE(d->nruns == 0 || base != NULL, DL_ERR_INVALID,
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

/* The collective part: the file, its attributes, groups and datasets, then the CRCs. */
static dl_status write_contents(dl_world *w, const char *tmp, const char *path, const meta_wire *m,
                                const char *config, const dl_ckpt_tensors *t, plan *p, int compress) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, w->comm, MPI_INFO_NULL);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST);
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fcpl);
    H5Pclose(fapl);
    if (file < 0) {
        dl_status s = DL_FAIL(DL_ERR_IO, "cannot create checkpoint %s", tmp);
        dl_error_hint("check that the run directory is writable and the disk has room");
        return s;
    }
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
    dl_status s = DL_OK;
#define TRY(expr)     \
    if (s == DL_OK)   \
    s = (expr)
    TRY(attr_write_i64(file, "format_version", DL_CKPT_FORMAT_VERSION, path));
    TRY(attr_write_str(file, "dealer_version", DEALER_VERSION " (git " DEALER_GIT_REV ")", path));
    TRY(attr_write_i64(file, "step", m->step, path));
    TRY(attr_write_i64(file, "epoch", m->epoch, path));
    TRY(attr_write_f64(file, "tokens_seen", m->tokens_seen, path));
    TRY(attr_write_f64(file, "samples_seen", m->samples_seen, path));
    TRY(attr_write_i64(file, "optimizer_step", m->optimizer_step, path));
    TRY(attr_write_i64(file, "bad_steps", m->bad_steps, path));
    TRY(attr_write_i64(file, "seed", m->seed, path));
    TRY(attr_write_str(file, "rng", "philox4x32-10; key = seed, counters derived from the step", path));
    TRY(attr_write_i64(file, "world_size", m->world_size, path));
    TRY(attr_write_i64(file, "zero_stage", m->zero_stage, path));
    TRY(attr_write_str(file, "model_kind", m->model_kind, path));
    TRY(attr_write_str(file, "config", config, path));
    char groups[2 + 16 + 1][192];
    size_t ngroups = 0;
    snprintf(groups[ngroups++], sizeof groups[0], "/model");
    if (t->num_states > 0)
        snprintf(groups[ngroups++], sizeof groups[0], "/optimizer");
    for (int k = 0; k < t->num_states; k++)
        snprintf(groups[ngroups++], sizeof groups[0], "/optimizer/%s", t->state_names[k]);
    snprintf(groups[ngroups++], sizeof groups[0], "/data");
    for (size_t g = 0; g < ngroups && s == DL_OK; g++) {
        hid_t gid = create_group(file, groups[g]);
        if (gid < 0)
            s = DL_FAIL(DL_ERR_IO, "%s: cannot create group %s", path, groups[g]);
        else
            H5Gclose(gid);
    }
    hid_t *dsets = malloc((p->count ? p->count : 1) * sizeof *dsets);
    uint32_t *raw = calloc(p->count ? p->count : 1, sizeof *raw);
    if (s == DL_OK && (!dsets || !raw))
        s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu dataset handles", p->count);
    size_t opened = 0;
    for (size_t i = 0; i < p->count && s == DL_OK; i++) {
        s = write_planned(file, dxpl, &p->items[i], compress, &dsets[i], path);
        opened = i + 1;
        if (s == DL_OK)
            raw[i] = planned_raw_crc(&p->items[i]);
    }
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
    for (size_t i = 0; i < p->count && s == DL_OK; i++) {
        uint32_t x = 0;
        for (int r = 0; r < w->size; r++)
            x ^= all[(size_t)r * p->count + i];
        uint32_t crc = raw_finish(x, p->items[i].numel * dl_ckpt_dtype_size(p->items[i].dtype));
        s = attr_write(dsets[i], "crc32c", H5T_STD_U32LE, H5T_NATIVE_UINT32, &crc, path);
    }
#undef TRY
    free(all);
    for (size_t i = 0; dsets && i < opened; i++)
        if (dsets[i] >= 0)
            H5Dclose(dsets[i]);
    free(dsets);
    free(raw);
    H5Pclose(dxpl);
    if (s == DL_OK && H5Fflush(file, H5F_SCOPE_GLOBAL) < 0)
        s = DL_FAIL(DL_ERR_IO, "%s: flushing the file failed (disk full?)", tmp);
    if (H5Fclose(file) < 0 && s == DL_OK)
        s = DL_FAIL(DL_ERR_IO, "%s: closing the file failed (disk full?)", tmp);
    return s;
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
    if (s == DL_OK)
        s = check_coverage(w, &p);
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (s == DL_OK) {
        s = write_contents(w, tmp, path, &m, config, t, &p, o->compress);
        s = agree(w, s, "checkpoint write");
    }
    if (s == DL_OK)
        maybe_kill(w, "close", m.step);
    if (s == DL_OK && w->rank == 0)
        s = dl_rename_durable(tmp, path);
    if (s != DL_OK && w->rank == 0)
        unlink(tmp);
    s = agree(w, s, "checkpoint commit");
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
 * branched from and are left alone), except multiples of keep_every, and leftover *.h5.tmp files of dead writers. */
static void prune(const char *dir, int64_t current, int keep, int keep_every) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    int64_t *steps = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 7 && strcmp(e->d_name + len - 7, ".h5.tmp") == 0 && strncmp(e->d_name, "step_", 5) == 0) {
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
        dl_error_hint("point latest at an existing step file, or use train.resume=never");
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

/* One split dataset read in part: the CRC its rows give with zeros elsewhere, and the one stored, to be combined
 * over the ranks. */
typedef struct partial_crc {
    char name[384];
    uint32_t stored, raw;
    uint64_t bytes;
} partial_crc;

/* Reads the rows of split tensor `tensor` this rank's layout holds from dataset `name` into `out`, back to back
 * (shard_layout.h); the CRC is left to the ranks together (*crc). */
static dl_status read_held_rows(dl_ckpt_file *f, const char *name, const dl_tensor *v, const dl_shard_layout *l,
                                size_t tensor, float *out, partial_crc *crc) {
    const dl_ckpt_dataset *ds;
    DL_CHECK(find_checked(f, name, DL_CKPT_F32, v->ndim, v->shape, &ds));
    plan one = {0};
    planned *d = NULL;
    dl_status s = plan_add(&one, name, v->ndim, v->shape, DL_CKPT_F32, out, 1, &d);
    if (s == DL_OK)
        s = planned_set_held_rows(d, l, tensor);
    if (s == DL_OK)
        s = check_fits(d, l, tensor);
    uint64_t count = s == DL_OK ? planned_count(d) : 0;
    if (s == DL_OK && count > 0) {
        hsize_t mdims[1] = {count};
        hid_t dset = H5Dopen2(f->file, name, H5P_DEFAULT);
        hid_t fspace = runs_space(d->ndim, d->dims, d->runs, d->nruns);
        hid_t mspace = H5Screate_simple(1, mdims, NULL);
        herr_t ok = dset >= 0 && fspace >= 0 && mspace >= 0
                        ? H5Dread(dset, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, out)
                        : -1;
        if (mspace >= 0)
            H5Sclose(mspace);
        if (fspace >= 0)
            H5Sclose(fspace);
        if (dset >= 0)
            H5Dclose(dset);
        if (ok < 0) {
            s = DL_FAIL(DL_ERR_FORMAT, "%s: the rows of tensor %s cannot be read (truncated or damaged file?)", f->path,
                        name);
            dl_error_hint("resume from an earlier step file in the same directory");
        }
    }
    if (s == DL_OK) {
        snprintf(crc->name, sizeof crc->name, "%s", ds->name);
        crc->stored = ds->crc;
        crc->raw = planned_raw_crc(d);
        crc->bytes = d->numel * sizeof(float);
    }
    plan_free(&one);
    return s;
}

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
                dl_error_hint("resume with the optimizer the checkpoint was written with (optim.name), or use "
                              "train.resume=never");
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

/* Reads tensor i of the table from dataset `name` into buffer `data` (t's layout, or the whole table's): whole, or
 * the rows this rank holds of a split tensor, whose CRC goes to crcs[(*ncrc)++] for the ranks to check together. */
static dl_status load_tensor(dl_ckpt_file *f, const dl_ckpt_tensors *t, const dl_shard_layout *l, size_t i,
                             const char *name, float *data, partial_crc *crcs, size_t *ncrc) {
    const dl_tensor *v = dl_tensor_table_at(t->params, i);
    float *at = data + (l ? l->local_offset[i] : v->offset);
    if (l && l->split[i])
        return read_held_rows(f, name, v, l, i, at, &crcs[(*ncrc)++]);
    return read_checked(f, name, DL_CKPT_F32, v->ndim, v->shape, at);
}

/* The split datasets a load reads in part: one per split tensor and per state. */
static size_t split_datasets(const dl_ckpt_tensors *t, const dl_shard_layout *l) {
    size_t n = 0;
    for (size_t i = 0; l && i < t->params->count && i < l->count; i++)
        n += l->split[i] ? 1u + (size_t)(t->num_states > 0 ? t->num_states : 0) : 0u;
    return n;
}

static dl_status load_from(dl_ckpt_file *f, const dl_ckpt_tensors *t, const dl_shard_layout *l, int rank,
                           int world_size, uint8_t **cursor, size_t *cursor_len, partial_crc *crcs) {
    char name[384];
    size_t ncrc = 0;
    DL_CHECK(check_no_extra(f, "/model/", t, 0));
    for (size_t i = 0; i < t->params->count; i++) {
        snprintf(name, sizeof name, "/model/%s", dl_tensor_table_at(t->params, i)->name);
        DL_CHECK(load_tensor(f, t, l, i, name, t->params_data, crcs, &ncrc));
    }
    if (t->num_states > 0) {
        DL_CHECK(check_no_extra(f, "/optimizer/", t, 1));
        for (int k = 0; k < t->num_states; k++)
            for (size_t i = 0; i < t->params->count; i++) {
                snprintf(name, sizeof name, "/optimizer/%s/%s", t->state_names[k],
                         dl_tensor_table_at(t->params, i)->name);
                DL_CHECK(load_tensor(f, t, l, i, name, t->states_data[k], crcs, &ncrc));
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

/* This rank's part of a collective load: everything it reads, and the partial CRCs of the split datasets. */
static dl_status load_local(const char *path, const dl_ckpt_tensors *t, const dl_shard_layout *l, int rank,
                            int world_size, uint8_t **cursor, size_t *cursor_len, partial_crc *crcs) {
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
        s = load_from(f, t, l, rank, world_size, cursor, cursor_len, crcs);
    dl_ckpt_close(f);
    return s;
}

dl_status dl_ckpt_load_collective(dl_world *w, const char *path, const dl_ckpt_tensors *t,
                                  const dl_shard_layout *layout, uint8_t **cursor, size_t *cursor_len) {
    DL_REQUIRE(w && path && cursor && cursor_len, DL_ERR_INVALID, "dl_ckpt_load_collective: NULL argument");
    quiet_hdf5();
    *cursor = NULL;
    *cursor_len = 0;
    /* Every rank reads on its own, then all exchange one record: whether they failed, and the raw CRC register of
     * each split dataset with their rows in place and zeros elsewhere, whose XOR is the register of the whole. */
    size_t n = t && t->params ? split_datasets(t, layout) : 0;
    partial_crc *crcs = calloc(n + 1, sizeof *crcs);
    uint32_t *mine = calloc(n + 1, sizeof *mine), *all = calloc((n + 1) * (size_t)w->size, sizeof *all);
    dl_status local = crcs && mine && all ? DL_OK : DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu CRC records", n);
    if (local == DL_OK)
        local = load_local(path, t, layout, w->rank, w->size, cursor, cursor_len, crcs);
    mine[0] = local != DL_OK;
    for (size_t j = 0; mine && j < n; j++)
        mine[j + 1] = crcs[j].raw;
    dl_status s = all && mine ? allgather_bytes(w, mine, (n + 1) * sizeof *mine, all, "checkpoint load CRCs")
                              : DL_ERR_NOMEM;
    if (local != DL_OK)
        s = local;
    for (int r = 0; s == DL_OK && r < w->size; r++)
        if (all[(size_t)r * (n + 1)])
            s = DL_FAIL(DL_ERR_FORMAT, "another rank failed to load %s (see its message)", path);
    for (size_t j = 0; s == DL_OK && j < n; j++) {
        uint32_t x = 0;
        for (int r = 0; r < w->size; r++)
            x ^= all[(size_t)r * (n + 1) + j + 1];
        uint32_t computed = raw_finish(x, crcs[j].bytes);
        if (computed != crcs[j].stored)
            s = crc_mismatch(path, crcs[j].name, crcs[j].stored, computed);
    }
    free(crcs);
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
 * The format, written directly: an 8-byte little-endian header length N, N bytes of JSON (padded with spaces to a
 * multiple of 8), then the tensors' bytes back to back in the order of the header, with no gap. */

dl_status dl_ckpt_export_safetensors(const char *path, const char *out, size_t *tensors, uint64_t *data_bytes) {
    DL_REQUIRE(path && out, DL_ERR_INVALID, "dl_ckpt_export_safetensors: NULL argument");
    dl_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    DL_CHECK(dl_ckpt_read_meta(path, &meta));
    dl_ckpt_file *f = NULL;
    dl_status s = dl_ckpt_open(&f, path);
    json_t *header = json_object(), *metadata = json_object();
    if (s == DL_OK && (!header || !metadata))
        s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate the safetensors header");
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)meta.step);
    if (s == DL_OK) {
        json_object_set_new(metadata, "format", json_string("pt"));
        json_object_set_new(metadata, "dealer_model_kind", json_string(meta.model_kind));
        json_object_set_new(metadata, "dealer_step", json_string(step));
        json_object_set_new(metadata, "dealer_config", json_string(meta.config_yaml ? meta.config_yaml : ""));
        json_object_set_new(header, "__metadata__", metadata);
        metadata = NULL;
    }
    /* The header: every /model tensor, offsets in the order of the file. */
    uint64_t offset = 0;
    size_t count = 0;
    for (size_t i = 0; s == DL_OK && i < dl_ckpt_count(f); i++) {
        const dl_ckpt_dataset *d = dl_ckpt_at(f, i);
        if (strncmp(d->name, "/model/", 7) != 0)
            continue;
        if (d->dtype != DL_CKPT_F32) {
            s = DL_FAIL(DL_ERR_FORMAT, "%s: tensor %s is %s, not float32", path, d->name,
                        dl_ckpt_dtype_name(d->dtype));
            break;
        }
        json_t *entry = json_object(), *shape = json_array(), *offsets = json_array();
        for (int k = 0; k < d->ndim; k++)
            json_array_append_new(shape, json_integer((json_int_t)d->shape[k]));
        uint64_t bytes = (uint64_t)d->numel * 4;
        json_array_append_new(offsets, json_integer((json_int_t)offset));
        json_array_append_new(offsets, json_integer((json_int_t)(offset + bytes)));
        json_object_set_new(entry, "dtype", json_string("F32"));
        json_object_set_new(entry, "shape", shape);
        json_object_set_new(entry, "data_offsets", offsets);
        if (json_object_set_new(header, d->name + 7, entry) != 0)
            s = DL_FAIL(DL_ERR_NOMEM, "cannot build the safetensors header");
        offset += bytes;
        count++;
    }
    if (s == DL_OK && count == 0)
        s = DL_FAIL(DL_ERR_FORMAT, "%s holds no /model tensors", path);
    char *text = s == DL_OK ? json_dumps(header, JSON_COMPACT) : NULL;
    if (s == DL_OK && !text)
        s = DL_FAIL(DL_ERR_NOMEM, "cannot serialise the safetensors header");
    dl_atomic_file af;
    memset(&af, 0, sizeof af);
    int opened = 0;
    if (s == DL_OK) {
        s = dl_atomic_open(&af, out);
        opened = s == DL_OK;
    }
    if (s == DL_OK) {
        size_t len = strlen(text), padded = (len + 7) / 8 * 8;
        uint8_t prefix[8];
        uint64_t n = padded;
        for (int k = 0; k < 8; k++)
            prefix[k] = (uint8_t)(n >> (8 * k));
        s = dl_atomic_write(&af, prefix, 8);
        if (s == DL_OK)
            s = dl_atomic_write(&af, text, len);
        for (size_t k = len; s == DL_OK && k < padded; k++)
            s = dl_atomic_write(&af, " ", 1);
    }
    for (size_t i = 0; s == DL_OK && i < dl_ckpt_count(f); i++) {
        const dl_ckpt_dataset *d = dl_ckpt_at(f, i);
        if (strncmp(d->name, "/model/", 7) != 0)
            continue;
        void *data = NULL;
        s = read_tensor_verified(f, d, &data);
        if (s == DL_OK)
            s = dl_atomic_write(&af, data, d->numel * 4); /* float32 little endian: this host's layout */
        free(data);
    }
    if (opened && s == DL_OK)
        s = dl_atomic_commit(&af);
    else if (opened)
        dl_atomic_abort(&af);
    if (s == DL_OK && tensors)
        *tensors = count;
    if (s == DL_OK && data_bytes)
        *data_bytes = offset;
    free(text);
    json_decref(header);
    json_decref(metadata);
    dl_ckpt_close(f);
    free(meta.config_yaml);
    return s;
}

