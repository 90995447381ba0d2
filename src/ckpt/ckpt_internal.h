/* ckpt_internal.h — what the files of src/ckpt share to write and read a checkpoint, private to src/ckpt
 * (scripts/check-layout refuses an include of it from anywhere else; checkpoint.h is the API).
 *
 * One file a job (see src/ckpt/README.md): ckpt_plan.c (the datasets and who writes which elements), ckpt_crc.c (the
 * CRC32C of a dataset held in pieces), ckpt_write_dataset.c (one dataset written), ckpt_slabs.c (row-split tables
 * through slabs), ckpt_agree.c (what the ranks agree on), ckpt_meta.c (the root attributes), ckpt_write.c (the
 * file), ckpt_dir.c (a run's ckpt/ directory), ckpt_listing.c (a file opened for reading), ckpt_load.c (loading
 * into a tensor table). Every function here is shared by two or more of them; the rest stays static. */
#ifndef DL_CKPT_CKPT_INTERNAL_H
#define DL_CKPT_CKPT_INTERNAL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "ckpt/checkpoint.h"
#include "comm/shard_layout.h"
#include "comm/world.h"
#include "core/status.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint CRCs are defined over little-endian bytes; this file assumes a little-endian host"
#endif

/* HDF5's own error printing off: every failure becomes one dl_status line naming the file and the object. Every
 * entry point that calls HDF5 (write, read, load) calls it first. */
static inline void dl_ckpt_quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* ---- the write plan (ckpt_plan.c) ------------------------------------------------------------------------------- */

/* A half-open run [begin, end) of elements of a dataset, in row-major (flat) order. */
typedef struct dl_ckpt_run {
    uint64_t begin, end;
} dl_ckpt_run;

/* Every dataset of the file, in the order written, with the runs of elements this rank writes and where they are. */
typedef struct dl_ckpt_planned {
    char name[384];
    int ndim;
    hsize_t dims[DL_TENSOR_MAX_DIMS];
    uint64_t numel;
    dl_ckpt_dtype dtype;
    const uint8_t *base; /* element k of the dataset is at base + k * element size (when this rank holds it) */
    dl_ckpt_run *runs;
    size_t nruns;
    dl_ckpt_run single;  /* storage for the common one-run case */
    int chunked;
    const dl_shard_layout *split; /* set for a split tensor: base is this rank's rows of it, moved in slabs */
    size_t tensor;                /* its index in the layout */
    int shared_rows;              /* parameters whose every row this rank reads in place (split->shared_row) */
} dl_ckpt_planned;

typedef struct dl_ckpt_plan {
    dl_ckpt_planned *items;
    size_t count, cap;
} dl_ckpt_plan;

/* Shared: the writer plans the whole file, the loader one entry per split dataset it reads in rounds. */
void dl_ckpt_plan_free(dl_ckpt_plan *p);
dl_status dl_ckpt_plan_add(dl_ckpt_plan *p, const char *name, int ndim, const size_t *shape, dl_ckpt_dtype dtype,
                           const void *base, int chunked, dl_ckpt_planned **out);
/* Marks d as split tensor `tensor` of layout l; `params` says it is the parameters (not an optimizer state), whose
 * rows a layout's shared_row may place. */
void dl_ckpt_planned_set_split(dl_ckpt_planned *d, const dl_shard_layout *l, size_t tensor, int params);
/* Shared: ckpt_write.c builds the plan of the whole file and folds the CRC share of each unsplit dataset. */
dl_status dl_ckpt_build_plan(dl_ckpt_plan *p, const dl_world *w, const dl_ckpt_tensors *t, const dl_shard_layout *l,
                             uint64_t state_begin, uint64_t state_end, const uint8_t *cursors, const int *lengths,
                             size_t cursor_total);
uint32_t dl_ckpt_planned_raw_crc(const dl_ckpt_planned *d);
/* Shared: how a dataset is stored (file type, chunks) and read into memory, for writers, slabs and the listing. */
hid_t dl_ckpt_file_type(dl_ckpt_dtype t);
hid_t dl_ckpt_mem_type(dl_ckpt_dtype t);
void dl_ckpt_chunk_dims(const dl_ckpt_planned *d, hsize_t *chunk);

/* ---- CRC32C of data held in pieces (ckpt_crc.c) ----------------------------------------------------------------- */

/* Shared: the plan, the slabs, the writer and the collective load each add or finish a share of a raw register. */
uint32_t dl_ckpt_raw_zeros(uint32_t raw, uint64_t n);
uint32_t dl_ckpt_raw_feed(uint32_t raw, const void *data, size_t len);
uint32_t dl_ckpt_raw_finish(uint32_t raw, uint64_t total);
uint32_t dl_ckpt_raw_piece(const void *data, size_t bytes, uint64_t at, uint64_t total);

/* ---- one dataset written (ckpt_write_dataset.c) ----------------------------------------------------------------- */

/* Shared: the writer names every failed write, flush and close this way, the slabs a failed slab. */
dl_status dl_ckpt_write_failure(const char *path, int injected, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Shared: the writer creates split datasets itself (their rows then go through ckpt_slabs.c). */
dl_status dl_ckpt_create_dataset(hid_t file, const dl_ckpt_planned *d, int compress, hid_t *dset, const char *path);
dl_status dl_ckpt_write_planned(hid_t file, hid_t dxpl, int collective, const dl_ckpt_planned *d, int compress,
                                hid_t *dset, const char *path);

/* ---- split tensors through slabs (ckpt_slabs.c) ----------------------------------------------------------------- */

/* Buffers of the rounds, reused across rounds and tensors (they grow to the largest, then stay). */
typedef struct dl_ckpt_slab_route {
    int *to, *from;      /* [W]: rows this rank sends to / receives from each rank in a round */
    int *bytes[4];       /* [W] each: send counts, send displacements, receive counts, receive displacements */
    int64_t *ids_out, *ids_in;
    float *slab, *transit;
    uint8_t *seen;       /* per row of the slab: arrived (asked for) */
    size_t cap_out, cap_in, cap_slab, cap_transit, cap_seen;
} dl_ckpt_slab_route;

/* Shared: the writer and the collective load each move every split tensor of a file through one route. */
dl_status dl_ckpt_slab_route_init(dl_ckpt_slab_route *r, int world);
void dl_ckpt_slab_route_free(dl_ckpt_slab_route *r);
/* Shared: the plan checks a split tensor's rows before writing, the load before reading. */
dl_status dl_ckpt_check_split_rows(const dl_ckpt_planned *d);
dl_status dl_ckpt_write_split(dl_world *w, hid_t dset, hid_t dxpl, int collective, const dl_ckpt_planned *d,
                              size_t slab_bytes, dl_ckpt_slab_route *r, uint32_t *raw, dl_status *local,
                              const char *path);
dl_status dl_ckpt_read_split(dl_world *w, hid_t dset, const dl_ckpt_planned *d, size_t slab_bytes, float *out,
                             dl_ckpt_slab_route *r, uint32_t *raw, dl_status *local, const char *path);

/* ---- what every rank must agree on (ckpt_agree.c) --------------------------------------------------------------- */

/* Shared: the writer, the run directory and the collective load agree after every phase. */
dl_status dl_ckpt_agree(dl_world *w, dl_status local, const char *what);
dl_status dl_ckpt_allgather_bytes(dl_world *w, const void *mine, size_t bytes, void *all, const char *what);
/* Shared: both the writer and the collective load refuse an inconsistent shard layout. */
dl_status dl_ckpt_check_layout(const dl_ckpt_tensors *t, const dl_shard_layout *l);
/* Shared with the writer, which alone needs them, to keep the rank checks in one file. */
uint64_t dl_ckpt_layout_hash(const dl_ckpt_tensors *t, const dl_shard_layout *l);
dl_status dl_ckpt_resolve_slices(const uint64_t *slices, int world, uint64_t numel, int rank, uint64_t *begin,
                                 uint64_t *end);

/* ---- the meta (ckpt_meta.c) ------------------------------------------------------------------------------------- */

/* The fixed-size part of the meta, broadcast from rank 0 so every rank issues identical metadata calls. */
typedef struct dl_ckpt_meta_wire {
    int64_t step, epoch, optimizer_step, bad_steps, seed, world_size, zero_stage;
    double tokens_seen, samples_seen;
    char model_kind[16];
    char tokenizer_hash[17];
    char blas_kernel[64], cpu_variant[32]; /* rank 0's: ranks on different CPUs may differ */
    int64_t threads;
    uint64_t config_len;
} dl_ckpt_meta_wire;

/* Shared: the writer packs the caller's meta, broadcasts it and writes it as the root attributes. */
void dl_ckpt_meta_to_wire(const dl_ckpt_meta *meta, int world_size, dl_ckpt_meta_wire *m);
dl_status dl_ckpt_meta_write(hid_t file, const dl_ckpt_meta_wire *m, const char *config, const char *path);
/* Shared: dl_ckpt_read_meta and both loads read and check the meta; the load also reads world_size alone. */
dl_status dl_ckpt_read_meta_from(hid_t file, const char *path, dl_ckpt_meta *meta);
dl_status dl_ckpt_attr_read(hid_t file, const char *name, hid_t mem_type, void *out, const char *path);

/* ---- a file opened for reading (ckpt_listing.c) ----------------------------------------------------------------- */

/* Shared: the loads read the meta and the split datasets through the open file and its listing. */
struct dl_ckpt_file {
    hid_t file;
    char path[4200];
    dl_ckpt_dataset *sets;
    size_t count, cap;
    dl_status failure; /* of the visit */
};

/* Shared: dl_ckpt_read_meta opens a file the same way as the listing. */
dl_status dl_ckpt_open_serial(const char *path, hid_t *file);
/* Shared: the loads and the safetensors export read datasets that must exist in a given shape, CRC checked. */
dl_status dl_ckpt_find_checked(dl_ckpt_file *f, const char *name, dl_ckpt_dtype dtype, int ndim,
                               const size_t *shape, const dl_ckpt_dataset **out);
dl_status dl_ckpt_read_checked(dl_ckpt_file *f, const char *name, dl_ckpt_dtype dtype, int ndim,
                               const size_t *shape, void *out);
dl_status dl_ckpt_crc_mismatch(const char *path, const char *name, uint32_t stored, uint32_t computed);

/* ---- test hooks (ckpt_write.c) ---------------------------------------------------------------------------------- */

/* Shared: DEALER_TEST_KILL_CKPT's phases `data` and `close` are the writer's, `rename` the run directory's. */
void dl_ckpt_maybe_kill(const dl_world *w, const char *phase, int64_t step);

#endif
