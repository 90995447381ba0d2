/* node_table.h — a row-sharded table kept in one shared-memory window on a node, so that every rank reads and
 * writes every row in place (comm.embeddings: shared).
 *
 * Rows keep their owners (dl_hash_owner, as in sharded_table.h): rank r's rows lie back to back in increasing
 * global row, as its checkpoint share needs, followed by `extra_floats` of its own (the click models keep their
 * replicated bias there), rounded up to whole rows. The ranks' parts follow each other in rank order inside one
 * window, 64-byte aligned, so the whole node's table is a single array of `total_rows` rows and `place[g]` is
 * where global row g sits in it. A kernel that trains any row of that array is what libffm's threads do on one
 * table: without locks, so two ranks updating one row at the same moment may lose one of the updates (Hogwild),
 * and a run is not repeated bit for bit. That is the price of training without an exchange; sharded tables
 * (sharded_table.h) repeat exactly.
 *
 *     dl_node_table nt;
 *     DL_CHECK(dl_node_table_create(&nt, &shard, extra_floats));   // collective over MPI_COMM_WORLD
 *     ... fill nt.mine (this rank's rows), dl_node_table_sync(&nt), a collective, then train rows of nt.base ...
 *     dl_node_table_destroy(&nt);                                    // collective
 *
 * Memory model: ranks see each other's writes after both called dl_node_table_sync with a collective in between
 * (MPI's "separate synchronisation" pattern for shared windows: MPI_Win_sync inside a lock_all epoch). The window
 * lives in Open MPI's backing directory (/dev/shm unless osc_sm_backing_directory says otherwise), whose free space
 * is checked first: a full tmpfs would otherwise kill the job with SIGBUS at first touch. */
#ifndef DL_COMM_NODE_TABLE_H
#define DL_COMM_NODE_TABLE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "comm/sharded_table.h"
#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_node_table {
    MPI_Win win;
    int created;          /* win exists (a zeroed table has none) */
    int epoch_open;       /* inside MPI_Win_lock_all */
    float *base;          /* row 0 of the node's table (64-byte aligned) */
    float *mine;          /* this rank's rows, then its extra floats */
    int64_t total_rows;   /* rows from base, every rank's extra rows included */
    int32_t *place;       /* [num_rows]: the row of base that holds global row g */
} dl_node_table;

/* Collective over MPI_COMM_WORLD: the window for `shard`'s table (num_rows rows of row_floats floats over
 * shard->world_size ranks), with extra_floats >= 0 floats after each rank's rows. Fails with DL_ERR_CONFIG, naming
 * the fix, when the ranks are not all on one node or the backing directory lacks the room; every rank gets the
 * same outcome. The rows are not initialised. */
dl_status dl_node_table_create(dl_node_table *table, const dl_sharded_table *shard, size_t extra_floats);
/* Makes this rank's writes visible to, and the others' visible to, this rank (with a collective in between). */
void dl_node_table_sync(dl_node_table *table);
/* Collective: frees the window. Safe on a zeroed or destroyed table. */
void dl_node_table_destroy(dl_node_table *table);

#ifdef __cplusplus
}
#endif

#endif
