/* checkpoint.h — HDF5 checkpoints that resume exactly, on the same or another world size (docs/checkpoint-format.md).
 *
 *     run_dir/ckpt/step_00000100.h5     one file per saved step
 *     run_dir/ckpt/latest               the file name of the newest complete checkpoint, one line
 *
 * Inside a file: /model/<param> float32 datasets with the parameters' true shapes, /optimizer/<state>/<param> in the
 * same shapes, /data/cursors (every rank's data cursor, back to back, uint8) with /data/cursor_lengths (int32 per
 * rank), and attributes on / : format_version, dealer_version, step, epoch, tokens_seen, samples_seen,
 * optimizer_step, bad_steps, seed, rng, world_size, zero_stage, model_kind, config (the resolved YAML), and
 * blas_kernel, cpu_variant, threads (what bit-exact resume depends on besides the data). Every dataset
 * carries a crc32c attribute: the CRC32C of its whole contents as little-endian bytes, checked on load.
 *
 * Writing is collective and parallel (MPI-IO through parallel HDF5): every rank writes the parts it holds into the
 * whole datasets — rank 0 the replicated parameters, each rank its ZeRO slice of the optimizer state, each rank a
 * 1/W share of a row-sharded table, sent to it in bounded slabs by the ranks that hold the rows — so the file does
 * not depend on the world size, and any world size can resume from it. Writes are atomic: the file is written as
 * step_N.h5.tmp.HOST-PID-XXXXXX (a name rank 0 makes with mkstemp), flushed, fsynced and renamed, the
 * directory fsynced, and only then `latest` is replaced (atomically too). A crash at any moment leaves `latest`
 * naming a complete file.
 *
 * Reading is per rank, with the serial API: every rank reads whole datasets and keeps the part it needs, which is
 * also how a different world size re-slices the optimizer state. Row-sharded tables are the exception: each rank
 * reads a 1/W share in slabs and sends each row to the rank that holds it, so each receives only its own rows
 * (dl_ckpt_load_collective), and the ranks check the CRC together. */
#ifndef DL_CKPT_CHECKPOINT_H
#define DL_CKPT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "comm/world.h"
#include "core/tensor.h"
#include "comm/shard_layout.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { DL_CKPT_FORMAT_VERSION = 1 };

typedef struct dl_ckpt_meta {
    int64_t step;           /* optimizer steps completed */
    int64_t epoch;
    double tokens_seen;
    double samples_seen;
    int64_t optimizer_step;
    int64_t bad_steps;      /* non-finite steps skipped so far */
    int64_t seed;           /* run.seed: the Philox key of every random stream; with step it is the RNG state */
    int world_size;
    int zero_stage;
    char model_kind[16];
    char dealer_version[64]; /* on load: the release that wrote the file (ignored on save: always this one) */
    /* What bit-exact resume also depends on: OpenBLAS's kernel ("SkylakeX"), the CPU kernel variant ("avx512") and
     * the thread count of the run that wrote the file. Written when blas_kernel is set; on load empty and 0 when
     * the file predates them. */
    char blas_kernel[64];
    char cpu_variant[32];
    int threads;
    char *config_yaml;      /* malloc'd on load; the caller frees */
    char tokenizer_hash[17]; /* gpt/dpo: hex hash of the run's tokenizer (data/tokenizer.h); "" = byte-level or a
                              * checkpoint written before tokenizers were recorded */
} dl_ckpt_meta;

/* What a checkpoint holds besides the meta: the parameter table and host copies of parameters and optimizer
 * states (each in the parameter layout), and this rank's data cursor. */
typedef struct dl_ckpt_tensors {
    const dl_tensor_table *params;
    float *params_data;            /* host, numel(params) floats (a shard layout's local_numel with one) */
    int num_states;
    const char *const *state_names;
    float **states_data;           /* host, like params_data; only [state_begin, state_end) is this rank's */
    size_t state_begin, state_end; /* the elements whose optimizer state this rank holds (all of them without ZeRO),
                                    * in the whole table's element numbering */
} dl_ckpt_tensors;

/* How a checkpoint is saved. */
typedef struct dl_ckpt_options {
    int keep;        /* ckpt.keep: newest checkpoints kept (0: all) */
    int keep_every;  /* ckpt.keep_every: also keep steps that are multiples of this (0: none) */
    int compress;    /* ckpt.compress: byte-shuffle + deflate every chunked dataset */
    /* ckpt.fsync false: the file is renamed into place without being flushed to the disk first. A process that
     * dies (kill -9) still leaves a complete file, since the page cache keeps it; a machine that dies may leave
     * `latest` naming a file whose data never reached the disk (its CRCs then refuse it at load). As torch.save,
     * libffm and most trainers write; the point is not to wait for a slow disk at the end of a short run. */
    int skip_fsync;
    /* NULL: the buffers of dl_ckpt_tensors hold the whole table in its own layout (tensor i at its offset).
     * Otherwise they hold this rank's share, laid out as shard_layout.h says: unsplit tensors whole at
     * layout->local_offset[i], split ones only the rows this rank holds, back to back. Each rank sends the rows it
     * holds of a split tensor (and of its states) straight from its buffer to the ranks writing them, a 1/W share
     * each; rank 0 writes the unsplit parameters, the slice owners their states. */
    const dl_shard_layout *layout;
    /* Split tensors move in rounds through slabs of about this many bytes per rank (0: 4 MiB): with the rows in
     * transit, what a checkpoint of a split table takes beyond the buffers, whatever the table size. */
    size_t slab_bytes;
} dl_ckpt_options;

/* Writes a checkpoint file at `path` atomically (a temporary, fsync, rename, fsync of the directory). Collective:
 * every rank calls it with the same meta and table. The state slices [state_begin, state_end) of all ranks must
 * together cover every element (overlaps are allowed: the lowest-starting rank writes an element); with a shard
 * layout (options->layout) the ranks' rows of each split tensor must cover its rows once each; each rank's
 * `cursor` is stored under its rank. On failure every rank returns an error and `path` is untouched: the ranks
 * agree on success after every phase, so a failure on one rank never leaves another inside a collective call (and
 * HDF5's own collective calls run under dl_comm_guard_begin); the file is closed on every rank and its temporary
 * removed; the failing rank's message names the rank, the file and the cause. A file system without room for the
 * (uncompressed) checkpoint is refused before anything is written. Failures can be injected: core/fault.h.
 * For tests, DEALER_TEST_KILL_CKPT=PHASE:STEP makes rank 0 kill itself with SIGKILL while writing step STEP:
 * PHASE is `data` (datasets written, file still open), `close` (file closed, not yet renamed), `rename` (renamed,
 * `latest` not yet updated; only through dl_ckpt_save). */
dl_status dl_ckpt_write(dl_world *world, const char *path, const dl_ckpt_meta *meta, const dl_ckpt_tensors *t,
                        const uint8_t *cursor, size_t cursor_len, const dl_ckpt_options *options);

/* Saves a checkpoint of `meta->step` as run_dir/ckpt/step_%08d.h5 (dl_ckpt_write), then rank 0 points `latest` at
 * it and deletes older checkpoints beyond options->keep (never the one just written, never a later step, always
 * multiples of keep_every) and leftover step_*.h5.tmp* files. The path written goes to path_out (may be NULL). */
dl_status dl_ckpt_save(dl_world *world, const char *run_dir, const dl_ckpt_meta *meta, const dl_ckpt_tensors *t,
                       const uint8_t *cursor, size_t cursor_len, const dl_ckpt_options *options, char *path_out,
                       size_t path_cap);

/* The checkpoint file a user's argument names, the same way for every command that takes one: a step file
 * (run/ckpt/step_00000100.h5), a `latest` file (run/ckpt/latest), a run directory or its ckpt/ directory (their
 * latest). Everything else is DL_ERR_INVALID (exit 2) saying what the path is instead: missing, a directory without
 * checkpoints, a record file, or a file that is not an HDF5 checkpoint. `what` prefixes messages (e.g. "CKPT",
 * "train.resume"; NULL: none). A step file is not opened here: its damage is reported by whoever reads it. */
dl_status dl_ckpt_resolve(const char *arg, const char *what, char *path, size_t cap);

/* The path of the checkpoint `latest` names in run_dir/ckpt; *found = 0 when there is none. A `latest` that names a
 * missing file is an error (DL_ERR_FORMAT). */
dl_status dl_ckpt_latest(const char *run_dir, char *path, size_t cap, int *found);

/* Reads the meta of a checkpoint (config_yaml malloc'd). */
dl_status dl_ckpt_read_meta(const char *path, dl_ckpt_meta *meta);

/* Loads parameters and optimizer states into t, and this rank's cursor (malloc'd into *cursor, length *cursor_len;
 * NULL/0 when world_size differs from the checkpoint's). The file must hold exactly the table's tensors in the
 * table's shapes under /model, and, when t->num_states > 0, exactly the named states under /optimizer; every
 * dataset's CRC is checked. States are read whole, so any [state_begin, state_end) works. With num_states 0 only
 * the parameters are read (generation, export). Failures are DL_ERR_FORMAT naming the file and the tensor.
 * The buffers hold the whole table (a shard layout loads with dl_ckpt_load_collective). */
dl_status dl_ckpt_load(const char *path, const dl_ckpt_tensors *t, int rank, int world_size, uint8_t **cursor,
                       size_t *cursor_len);

/* dl_ckpt_load on every rank of `world` together (collective: every rank calls it, with the same options, and all
 * fail when one does). With a shard layout (options->layout; NULL options or layout: the whole table) t's buffers
 * are laid out as it says: each rank reads unsplit tensors whole and, of each split one, a 1/W share of the file in
 * slabs (options->slab_bytes), sending every row to the rank that holds it, so a checkpoint of any world size
 * loads on this one, each rank receives exactly its own rows (straight into its buffer) and none ever holds a
 * whole split table. The CRC of a split dataset is checked by the ranks together. keep, keep_every and compress
 * are ignored. */
dl_status dl_ckpt_load_collective(dl_world *world, const char *path, const dl_ckpt_tensors *t,
                                  const dl_ckpt_options *options, uint8_t **cursor, size_t *cursor_len);

/* ---- inspection (dealer ckpt) ---------------------------------------------------------------------------------- */

typedef enum dl_ckpt_dtype { DL_CKPT_F32 = 0, DL_CKPT_I32 = 1, DL_CKPT_U8 = 2 } dl_ckpt_dtype;

/* One dataset of a checkpoint file. */
typedef struct dl_ckpt_dataset {
    char name[384];                   /* full HDF5 path: "/model/wte", "/optimizer/adam_m/wte", "/data/cursors" */
    int ndim;                         /* 0 for a scalar */
    size_t shape[DL_TENSOR_MAX_DIMS];
    size_t numel;
    dl_ckpt_dtype dtype;
    int has_crc;                      /* the crc32c attribute is present */
    uint32_t crc;                     /* its value */
    uint64_t storage_bytes;           /* bytes in the file (after compression) */
} dl_ckpt_dataset;

typedef struct dl_ckpt_file dl_ckpt_file;

/* Opens a checkpoint read-only and lists its datasets (in the order they were written). A file that is not HDF5,
 * is truncated, or holds a dataset of another type or rank than a checkpoint can is DL_ERR_FORMAT. */
dl_status dl_ckpt_open(dl_ckpt_file **file, const char *path);
/* Closes the file and frees the listing; NULL is allowed. */
void dl_ckpt_close(dl_ckpt_file *file);
/* The number of datasets, and the i-th in write order (NULL when i >= count). */
size_t dl_ckpt_count(const dl_ckpt_file *file);
const dl_ckpt_dataset *dl_ckpt_at(const dl_ckpt_file *file, size_t i);
/* The dataset with full path `name`, NULL when there is none. */
const dl_ckpt_dataset *dl_ckpt_find(const dl_ckpt_file *file, const char *name);
/* Reads a dataset whole into out (numel elements of its dtype) and checks its CRC: *crc_ok is 1 when it matches,
 * 0 when it does not, -1 when the dataset has no crc32c attribute. Only an unreadable dataset is a failure. */
dl_status dl_ckpt_read(dl_ckpt_file *file, const dl_ckpt_dataset *d, void *out, int *crc_ok);
/* Bytes per element of a dtype; its name ("float32", "int32", "uint8"). */
size_t dl_ckpt_dtype_size(dl_ckpt_dtype dtype);
const char *dl_ckpt_dtype_name(dl_ckpt_dtype dtype);

/* Writes the /model tensors of the checkpoint at `path` as a safetensors file `out` (atomically): F32 tensors under
 * their dealer names, in the checkpoint's order, with __metadata__ {format: pt, dealer_model_kind, dealer_step,
 * dealer_config}. Every tensor's CRC is checked first. *tensors and *data_bytes (may be NULL) get the count and the
 * bytes of tensor data. */
dl_status dl_ckpt_export_safetensors(const char *path, const char *out, size_t *tensors, uint64_t *data_bytes);

/* CRC32C of the concatenation A‖B from crc(A), crc(B) and the length of B (zlib's crc32_combine for CRC32C). */
uint32_t dl_ckpt_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

#ifdef __cplusplus
}
#endif

#endif
