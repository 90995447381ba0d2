/* nodes.h — where the ranks of a job run: which node holds which ranks, their local ranks and threads.
 *
 * A node is what MPI calls one (MPI_COMM_TYPE_SHARED: the ranks that can share memory); its name is the processor
 * name (host name) of its lowest rank. The local rank is a rank's place among its node's ranks in world-rank order
 * (world.h); it picks the rank's GPU. The trainer prints the summary once at start-up, so a multi-node job shows
 * at a glance whether the launcher placed the ranks and threads as intended:
 *
 *     1 node: vm runs ranks 0-1 (local ranks 0-1, 1 thread each)
 *     2 nodes: node1 runs rank 0 (local rank 0, 2 threads); node2 runs rank 1 (local rank 0, 2 threads)
 *
 * Rank lists are compressed into ranges ("0-3,8-11"); after DL_NODES_LISTED nodes the rest are only counted. */
#ifndef DL_COMM_NODES_H
#define DL_COMM_NODES_H

#include <stddef.h>
#include <stdint.h>

#include "comm/world.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { DL_NODES_LISTED = 8, DL_NODE_NAME_CAP = 64 };

/* One rank's place, as every rank reports it. */
typedef struct dl_rank_place {
    int32_t node;        /* the world rank of the lowest rank on this rank's node: the node's identity */
    int32_t local_rank;
    int32_t threads;     /* CPU threads the rank's kernels use */
    char host[DL_NODE_NAME_CAP]; /* NUL-terminated, truncated when longer */
} dl_rank_place;

/* Formats the summary of places[0..size) (indexed by world rank) into text (always NUL-terminated; cut short with
 * "..." when cap is too small). Fails on size < 1, a NULL pointer, cap < 16, or a place naming a node outside
 * 0..size-1 or a node whose own rank places it elsewhere. */
dl_status dl_nodes_format(const dl_rank_place *places, int size, char *text, size_t cap);

/* Collective: gathers every rank's place at rank 0 (under the watchdog) and formats the summary there; other ranks
 * get "". `threads` is this rank's thread count (>= 1). */
dl_status dl_world_describe_nodes(dl_world *world, int threads, char *text, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
