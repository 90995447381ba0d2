/* node_table.c — one shared-memory window per node for a row-sharded table (see node_table.h for the design).
 *
 * Rank 0 allocates the whole window and the others none: the layout (every rank's part, its extra rows, the
 * 64-byte alignment of row 0) is then this file's choice rather than the MPI library's, and each rank still touches
 * its own rows first when it fills them. */
#include "comm/node_table.h"

#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "comm/world.h"
#include "core/hash.h"

enum { ROW_ALIGN = 64 };

/* Every rank calls this with its own verdict; all return the first failing rank's status (or DL_OK), so that no
 * rank goes on into the window's collective allocation while another gave up. */
static dl_status agree_all(dl_status mine, const char *what) {
    int bad = mine != DL_OK, any = 0;
    int code = MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (code != MPI_SUCCESS)
        return dl_comm_mpi_failure(code, "MPI_Allreduce", what);
    if (mine != DL_OK)
        return mine;
    return any ? DL_FAIL(DL_ERR_CONFIG, "%s: another rank could not (its message says why)", what) : DL_OK;
}

/* The ranks of MPI_COMM_WORLD must share one node: a window spans one node's memory. */
static dl_status check_one_node(int world_size) {
    MPI_Comm node = MPI_COMM_NULL;
    int code = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    if (code != MPI_SUCCESS)
        return dl_comm_mpi_failure(code, "MPI_Comm_split_type", "comm.embeddings shared: finding the node's ranks");
    int here = 0;
    MPI_Comm_size(node, &here);
    MPI_Comm_free(&node);
    if (here != world_size) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "comm.embeddings shared keeps the table in one node's shared memory, "
                                             "but this job's %d ranks span several nodes (%d on this one)",
                              world_size, here);
        dl_error_hint("use comm.embeddings: sharded across nodes (rows are exchanged with MPI)");
        return s;
    }
    return DL_OK;
}

/* Open MPI puts the window in a file of its backing directory; a tmpfs too small for it (a container's default
 * 64 MiB /dev/shm) would end the job with SIGBUS when the rows are first touched, so ask first. */
static dl_status check_room(size_t bytes) {
    const char *dir = getenv("OMPI_MCA_osc_sm_backing_directory");
    if (!dir || !*dir)
        dir = "/dev/shm";
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0) /* no such directory: the MPI library decides, and reports its own failure */
        return DL_OK;
    double room = (double)vfs.f_bavail * (double)vfs.f_frsize;
    if (room < (double)bytes) {
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "comm.embeddings shared needs %.0f MiB of shared memory in %s, which "
                                             "has %.0f MiB free", (double)bytes / 1048576.0, dir, room / 1048576.0);
        dl_error_hint("enlarge it (e.g. docker run --shm-size), point OMPI_MCA_osc_sm_backing_directory at a "
                      "larger tmpfs, or use comm.embeddings: sharded");
        return s;
    }
    return DL_OK;
}

/* place[] and each rank's first row: owners' rows in increasing g, each rank's part followed by extra_rows. */
static dl_status lay_out(dl_node_table *t, const dl_sharded_table *shard, int64_t extra_rows, int64_t *first_row) {
    const int W = shard->world_size;
    int64_t *next = calloc((size_t)W, sizeof *next);
    t->place = malloc(((size_t)shard->num_rows + 1) * sizeof *t->place);
    if (!next || !t->place) {
        free(next);
        return DL_FAIL(DL_ERR_NOMEM, "cannot allocate the row map of a %lld-row shared table",
                       (long long)shard->num_rows);
    }
    for (int64_t g = 0; g < shard->num_rows; g++)
        next[dl_hash_owner((uint64_t)g, W)]++;
    int64_t at = 0;
    for (int r = 0; r < W; r++) {
        int64_t rows = next[r];
        first_row[r] = at;
        next[r] = at;
        at += rows + extra_rows;
    }
    t->total_rows = at;
    dl_status s = DL_OK;
    if (at > INT32_MAX)
        s = DL_FAIL(DL_ERR_CONFIG, "a shared table of %lld rows exceeds the kernels' 32-bit row indices",
                    (long long)at);
    for (int64_t g = 0; s == DL_OK && g < shard->num_rows; g++)
        t->place[g] = (int32_t)next[dl_hash_owner((uint64_t)g, W)]++;
    free(next);
    return s;
}

dl_status dl_node_table_create(dl_node_table *t, const dl_sharded_table *shard, size_t extra_floats) {
    DL_REQUIRE(t != NULL && shard != NULL && shard->row_floats >= 1 && shard->world_size >= 1, DL_ERR_INVALID,
               "dl_node_table_create: bad arguments");
    memset(t, 0, sizeof *t);
    int world_size = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    DL_REQUIRE(world_size == shard->world_size, DL_ERR_INVALID,
               "dl_node_table_create: the table is split over %d ranks, MPI_COMM_WORLD has %d", shard->world_size,
               world_size);
    const size_t rb = (size_t)shard->row_floats * sizeof(float);
    const int64_t extra_rows = (int64_t)((extra_floats + (size_t)shard->row_floats - 1) / (size_t)shard->row_floats);
    int64_t *first_row = calloc((size_t)world_size, sizeof *first_row);
    dl_status s = first_row ? check_one_node(world_size)
                            : DL_FAIL(DL_ERR_NOMEM, "cannot allocate a shared table's layout");
    if (s == DL_OK)
        s = lay_out(t, shard, extra_rows, first_row);
    size_t bytes = (size_t)t->total_rows * rb + ROW_ALIGN;
    if (s == DL_OK && shard->rank == 0)
        s = check_room(bytes);
    s = agree_all(s, "comm.embeddings shared: laying out the node's table");
    if (s == DL_OK) {
        float *mine = NULL;
        int code = MPI_Win_allocate_shared(shard->rank == 0 ? (MPI_Aint)bytes : 0, (int)sizeof(float),
                                           MPI_INFO_NULL, MPI_COMM_WORLD, &mine, &t->win);
        if (code != MPI_SUCCESS)
            s = dl_comm_mpi_failure(code, "MPI_Win_allocate_shared", "comm.embeddings shared: the node's table");
        t->created = code == MPI_SUCCESS;
    }
    if (s == DL_OK) {
        MPI_Win_set_errhandler(t->win, MPI_ERRORS_RETURN);
        MPI_Aint size = 0;
        int unit = 0;
        void *row0 = NULL;
        int code = MPI_Win_shared_query(t->win, 0, &size, &unit, &row0);
        if (code != MPI_SUCCESS)
            s = dl_comm_mpi_failure(code, "MPI_Win_shared_query", "comm.embeddings shared: the node's table");
        else if ((size_t)size < bytes)
            s = DL_FAIL(DL_ERR_COMM, "comm.embeddings shared: the window holds %lld bytes, %zu were asked for",
                        (long long)size, bytes);
        if (s == DL_OK) {
            uintptr_t p = ((uintptr_t)row0 + ROW_ALIGN - 1) & ~(uintptr_t)(ROW_ALIGN - 1);
            t->base = (float *)p;
            t->mine = t->base + (size_t)first_row[shard->rank] * (size_t)shard->row_floats;
            code = MPI_Win_lock_all(MPI_MODE_NOCHECK, t->win);
            if (code != MPI_SUCCESS)
                s = dl_comm_mpi_failure(code, "MPI_Win_lock_all", "comm.embeddings shared: the node's table");
            t->epoch_open = code == MPI_SUCCESS;
        }
    }
    free(first_row);
    if (s != DL_OK)
        dl_node_table_destroy(t);
    return s;
}

void dl_node_table_sync(dl_node_table *t) {
    if (t && t->epoch_open)
        MPI_Win_sync(t->win);
}

void dl_node_table_destroy(dl_node_table *t) {
    if (!t)
        return;
    if (t->epoch_open)
        MPI_Win_unlock_all(t->win);
    if (t->created)
        MPI_Win_free(&t->win);
    free(t->place);
    memset(t, 0, sizeof *t);
}
