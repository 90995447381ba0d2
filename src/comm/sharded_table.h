/* sharded_table.h — embedding tables split by rows across ranks, and the sparse exchanges that train them.
 *
 * A sharded table has num_rows global rows of row_floats floats; global row g lives on rank dl_hash_owner(g, W)
 * (core/hash.h), which stores its rows back to back in increasing g ("local" indices). Each rank so holds about
 * 1/W of the table, whatever the ids look like. A training step runs three collectives on it:
 *
 *     dl_sharded_plan_build(t, &plan, rows, n);   // this rank's distinct global rows go to their owners
 *     dl_sharded_fetch(t, &plan, compact);        // owners send those rows back: compact[i] = row rows[i]
 *     ... train on the compact rows, compute what changed ...
 *     dl_sharded_push_add(t, &plan, deltas);      // owners add every rank's change to their rows
 *
 * Ranks that touched the same row both send a change; the owner adds them in rank order, so the result is the same
 * on every run. Replicated tables (every rank holds every row) use dl_sparse_sum instead: the union of the rows the
 * ranks touched and the sum of their changes, identical on every rank, so the copies stay equal.
 *
 * No rank ever assembles the whole table: checkpoints are written and read by every rank for its own rows
 * (comm/shard_layout.h; the model hands the checkpoint dl_sharded_table_local as the row map).
 *
 * Ids travel as int64, rows as raw floats, all through dl_comm_alltoallv (watchdog-guarded); a single message is
 * limited to 2 GiB by MPI's int counts, which a step's rows never approach. */
#ifndef DL_COMM_SHARDED_TABLE_H
#define DL_COMM_SHARDED_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "comm/world.h"
#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_sharded_table {
    int rank, world_size;
    int64_t num_rows;    /* global rows */
    int row_floats;
    int64_t local_rows;  /* rows this rank owns */
    float *data;         /* [local_rows, row_floats], 64-byte aligned; the caller fills it */
    /* Local index of g: base[g / 64] + the owned rows before g within its 64-row block (mask bits). */
    uint64_t *mask;
    int64_t *base;
} dl_sharded_table;

/* The rank and size of MPI_COMM_WORLD, or 0 and 1 when MPI is not running: for sizing a sharded table before the
 * dl_world reaches the model (dl_world_init duplicates MPI_COMM_WORLD, so the numbers agree). */
void dl_comm_world_shape(int *rank, int *size);

/* Builds this rank's part of a table of num_rows rows of row_floats floats split over world_size ranks (data
 * uninitialised). O(num_rows) hashes; 16 bytes of index per 64 global rows. */
dl_status dl_sharded_table_create(dl_sharded_table *table, int rank, int world_size, int64_t num_rows, int row_floats);
void dl_sharded_table_destroy(dl_sharded_table *table);

/* The local index of global row g on its owner, or -1 when this rank does not own it (or g is out of range). */
int64_t dl_sharded_table_local(const dl_sharded_table *table, int64_t g);

/* Rows global row ranges [0, num_rows) hold on `rank` (without building an index): for sizing and reports. */
int64_t dl_sharded_owned_count(int64_t num_rows, int rank, int world_size);

/* One step's routing: who asks whom for which rows. Reused across steps (buffers grow, then stay). */
typedef struct dl_sharded_plan {
    int world_size;
    int *send_counts, *send_displs, *recv_counts, *recv_displs; /* in rows, per rank */
    int *byte_counts[4];      /* scratch: byte counts and displacements for alltoallv */
    int64_t requested;        /* n: rows this rank asked for */
    int64_t *slot;            /* [n]: position of rows[i] in the grouped send order; -1 for a row this rank owns */
    /* Rows this rank owns itself skip the exchange (no copies through MPI): request positions and local rows. */
    int64_t own, *own_pos, *own_local;
    size_t cap_own_pos, cap_own_local;
    int64_t served;           /* rows asked of this rank (all ranks together) */
    int64_t *served_local;    /* [served]: their local indices, in receive order */
    int64_t *ids_out, *ids_in;
    float *rows_out, *rows_in;
    size_t cap_slot, cap_ids_out, cap_rows_out, cap_ids_in, cap_local, cap_rows_in; /* capacities in elements */
} dl_sharded_plan;

void dl_sharded_plan_free(dl_sharded_plan *plan);

/* Collective: routes this rank's n distinct global rows (each < num_rows) to their owners. Every rank calls it,
 * with n = 0 when it needs nothing. */
dl_status dl_sharded_plan_build(dl_sharded_table *table, dl_sharded_plan *plan, const int64_t *rows, int64_t n,
                                dl_world *world);
/* Collective: out[i·row_floats ...] = global row rows[i] of the last plan_build. */
dl_status dl_sharded_fetch(dl_sharded_table *table, dl_sharded_plan *plan, float *out, dl_world *world);
/* Collective: each owner adds deltas[i·row_floats ...] of every rank to row rows[i] (in rank order; its own
 * deltas in their rank's place, straight from `deltas`). */
dl_status dl_sharded_push_add(dl_sharded_table *table, dl_sharded_plan *plan, const float *deltas, dl_world *world);

/* The union of the rows several ranks changed, with the sum of their changes (replicated tables). */
typedef struct dl_sparse_sum {
    int64_t count;      /* rows in the union */
    int64_t *rows;      /* [count], increasing */
    float *sums;        /* [count, row_floats] */
    int64_t *mine;      /* [n]: position in `rows` of this rank's i-th row */
    int64_t *all_ids;
    int *counts, *displs, *byte_counts[4];
    size_t cap_rows, cap_sums, cap_all, cap_mine; /* capacities in elements */
} dl_sparse_sum;

void dl_sparse_sum_free(dl_sparse_sum *sum);

/* Collective: every rank passes its n distinct rows (increasing) and their changes deltas [n, row_floats]; all get
 * the same union (sum->rows) and sums (sum->sums: Σ over ranks of the change of each row, 0 where a rank did not
 * touch it). */
dl_status dl_sparse_sum_rows(dl_sparse_sum *sum, const int64_t *rows, int64_t n, const float *deltas, int row_floats,
                             dl_world *world);

#ifdef __cplusplus
}
#endif

#endif
