/* shard_layout.h — how a model's parameter buffer holds only this rank's share of a row-split table, so the
 * trainer and the checkpoint move exactly that share and no rank ever holds the whole table.
 *
 * A model with row-sharded tables (fm/ffm with comm.embeddings: sharded) still describes its parameters with the
 * whole tensor table, as checkpoints hold them, but its buffer is laid out per rank:
 *
 *     tensor i starts at local_offset[i] of the buffer (local_numel floats in all);
 *     an unsplit tensor (split[i] == 0) is whole there;
 *     a split tensor holds only the global rows `local_row` gives a slot, row by row: global row g (of the
 *     tensor's first dimension) is at local_offset[i] + local_row(ctx, i, g) · (numel / rows), and -1 means
 *     another rank holds g.
 *
 * The model answers local_row from the structure that really places its rows (for fm/ffm the sharded table's own
 * index, comm/sharded_table.h), so the model, the trainer and the checkpoint cannot disagree about who holds what.
 * The checkpoint relies on two properties and checks both: the slots of the rows a rank holds are 0, 1, 2, ... in
 * increasing order of the global row (rows back to back, so the rows of any range of the table are one contiguous
 * piece of the buffer, sent and received in place), and across the ranks every row is held by exactly one rank.
 * Nothing here depends on the world size: a checkpoint holds whole tensors, and a resume on another world size asks
 * its own model which rows it needs.
 *
 * Optimizer states follow the same layout (a model whose state lives in its rows, like the fused fm/ffm table with
 * its AdaGrad accumulators, has none apart from them). */
#ifndef DL_COMM_SHARD_LAYOUT_H
#define DL_COMM_SHARD_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_shard_layout {
    size_t count;                      /* tensors in the model's table */
    size_t local_numel;                /* floats in this rank's buffer */
    const size_t *local_offset;        /* [count]: where tensor i starts in it */
    const unsigned char *split;        /* [count]: 1 for a tensor split by rows over the ranks */
    /* The slot of global row `row` of split tensor `tensor` in this rank's buffer, or -1 when another rank holds
     * it. Called once per row by every rank when a checkpoint is written or read. */
    int64_t (*local_row)(const void *ctx, size_t tensor, int64_t row);
    /* Optional (NULL: rows travel through MPI between the rank that holds them and the one that writes or reads
     * their slab): the address of any global row of split tensor `tensor` in memory every rank of the job maps
     * and may write (comm.embeddings: shared), or NULL when it has none. With it each rank saves its slabs of the
     * parameters straight from those rows and loads them straight into them, with no exchange; after a load the
     * rows another rank wrote are visible once the model's params_ready and a collective have run. */
    float *(*shared_row)(const void *ctx, size_t tensor, int64_t row);
    const void *ctx;
} dl_shard_layout;

#ifdef __cplusplus
}
#endif

#endif
