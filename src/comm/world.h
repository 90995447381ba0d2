/* world.h — the MPI world as dealer sees it, and every collective it runs.
 *
 * Models never call MPI: they go through these functions, which (1) return a dl_status with MPI's own error text
 * instead of aborting (the communicator uses MPI_ERRORS_RETURN), and (2) run under a watchdog. Every blocking
 * collective here is a non-blocking one plus a wait loop that drives progress with MPI_Test; a wait that exceeds
 * comm.timeout_s fails with DL_ERR_COMM and a message naming the collective, its sequence number, the step, and the
 * ranks that had not arrived. The caller (the CLI) then calls dl_world_abort, because the other ranks are blocked
 * in MPI and only MPI_Abort frees them.
 *
 * How the watchdog knows who is missing: a rank whose wait passes a short threshold tells every other rank "I am
 * waiting in collective #k" on a side communicator (a few bytes, only on slow waits, so a healthy job pays nothing).
 * At the timeout a rank lists the ranks that reported #k; the others never arrived.
 *
 *     dl_world world;
 *     DL_CHECK(dl_world_init(&world, &argc, &argv, 300.0));
 *     DL_CHECK(dl_comm_allreduce_sum_f32(&world, grads, n, "grad all-reduce"));
 *     dl_world_finalize(&world);
 */
#ifndef DL_COMM_WORLD_H
#define DL_COMM_WORLD_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_world {
    MPI_Comm comm;        /* all ranks, errors returned */
    MPI_Comm node_comm;   /* ranks sharing this node (local rank, GPU choice) */
    MPI_Comm watch_comm;  /* the watchdog's side channel */
    int rank, size;
    int local_rank, local_size;
    double timeout_s;     /* comm.timeout_s; <= 0 waits forever */
    uint64_t sequence;    /* collectives started so far: the same number on every rank */
    int64_t step;         /* the training step, for messages */
    uint64_t *waiting_at; /* [size]: latest collective each rank reported waiting in */
    int owns_mpi;         /* dl_world_init called MPI_Init */
} dl_world;

/* Whether a launcher (mpirun, srun, hydra) started this process as a rank of a job; 0 for a plain process, which
 * MPI makes a world of one. */
int dl_world_launched(void);
/* The size of the job a launcher started this process in, from the environment it set (1 outside one). */
long dl_world_launched_size(void);
/* Starts MPI (thread level FUNNELED: only the main thread calls MPI) unless it is already running, splits the node
 * communicator, and sets the log's rank prefix. Outside a launcher it first asks Open MPI for a light singleton
 * start (no daemon, no network transports, a session directory of its own; world.c says why), leaving any
 * OMPI_MCA_* the user set as it is. */
dl_status dl_world_init(dl_world *world, int *argc, char ***argv, double timeout_s);
/* Frees the communicators and finalises MPI when dl_world_init started it. */
void dl_world_finalize(dl_world *world);
/* Ends every rank of the job with `exit_code` (after a failure that leaves other ranks blocked in MPI). */
void dl_world_abort(dl_world *world, int exit_code);
/* Records the step shown in watchdog messages. */
void dl_world_set_step(dl_world *world, int64_t step);
/* A world over a subset of `parent`'s ranks (MPI_Comm_split: ranks passing the same color form one world, ordered
 * by key; color < 0 gives an empty world with comm = MPI_COMM_NULL). Collective over parent. For tests and tools
 * that compare a run on fewer ranks inside one job; free it with dl_world_finalize (MPI keeps running). */
dl_status dl_world_split(dl_world *parent, int color, int key, dl_world *child);

/* ---- blocking collectives (watchdog-guarded); `what` names the collective in messages ------------------------ */
dl_status dl_comm_barrier(dl_world *world, const char *what);
dl_status dl_comm_broadcast(dl_world *world, void *buffer, size_t bytes, int root, const char *what);
/* In place: buffer = Σ over ranks. */
dl_status dl_comm_allreduce_sum_f32(dl_world *world, float *buffer, size_t count, const char *what);
dl_status dl_comm_allreduce_sum_f64(dl_world *world, double *buffer, size_t count, const char *what);
dl_status dl_comm_allreduce_sum_i64(dl_world *world, int64_t *buffer, size_t count, const char *what);
dl_status dl_comm_allreduce_max_i64(dl_world *world, int64_t *buffer, size_t count, const char *what);
dl_status dl_comm_allreduce_min_i64(dl_world *world, int64_t *buffer, size_t count, const char *what);
/* ZeRO slices: a contiguous buffer split into `size` consecutive slices of counts[r] floats (rank r owns slice r).
 * reduce_scatter: recv (counts[rank] floats) = Σ over ranks of their slice `rank` of send.
 * allgather: each rank contributes slice `rank` of buffer (in place); afterwards every rank holds all slices. */
dl_status dl_comm_reduce_scatter_f32(dl_world *world, const float *send, float *recv, const int *counts,
                                     const char *what);
dl_status dl_comm_allgather_f32(dl_world *world, float *buffer, const int *counts, const char *what);
/* All-to-all of bytes with per-rank counts and displacements (sparse embedding exchange). */
dl_status dl_comm_alltoallv(dl_world *world, const void *send, const int *send_counts, const int *send_displs,
                            void *recv, const int *recv_counts, const int *recv_displs, const char *what);
/* Each rank sends one int to every rank (counts before an alltoallv). */
dl_status dl_comm_alltoall_int(dl_world *world, const int *send, int *recv, const char *what);

/* Gathers each rank's `bytes` bytes at `root`: on root, *out (malloc'd, caller frees) holds them back to back in
 * rank order and lengths[r] each rank's count (lengths has `size` entries); other ranks get *out = NULL. */
dl_status dl_comm_gather_bytes(dl_world *world, const void *data, int bytes, int root, void **out, int *lengths,
                               const char *what);

/* ---- the watchdog, for wait loops over several requests (comm/exchange.c) -------------------------------------- */
typedef struct dl_comm_watch {
    uint64_t sequence; /* the collective's number, the same on every rank */
    const char *what;
    double started;
    long idle_turns;
    int reported;
} dl_comm_watch;

/* Starts watching one collective: takes the next sequence number. Every rank must call it at the same point. */
void dl_comm_watch_start(dl_world *world, dl_comm_watch *watch, const char *what);
/* One turn of a wait loop that found nothing complete: after 2 ms of quick turns it naps 20 µs per turn, reports a
 * slow wait to the other ranks (once, after a quarter of comm.timeout_s, at most 2 s), and fails with the watchdog's
 * message (the collective, its number, the step, the ranks that had not arrived) once comm.timeout_s has passed. */
dl_status dl_comm_watch_idle(dl_world *world, dl_comm_watch *watch);
/* MPI's error text for `code` as a DL_ERR_COMM failure: "<what>: <call> failed: <text>". */
dl_status dl_comm_mpi_failure(int code, const char *call, const char *what);

/* ---- a deadline over collective calls made inside a library ------------------------------------------------------
 * HDF5's parallel calls (file create and close, collective writes, metadata flushes) communicate inside the library,
 * where the wait loop above cannot see them: a rank that fails inside one and leaves would leave the others there
 * for ever. A guard bounds such a call from outside: a helper thread that, once comm.timeout_s passes before
 * dl_comm_guard_end, prints one line naming this rank and the call, removes `cleanup_path` (may be NULL: a
 * half-written file) and ends the process with exit 1, because MPI may only be called from the main thread (so no
 * MPI_Abort here); the launcher then ends the other ranks (which wait 5 s longer than rank 0, so that when all are
 * stuck one line is printed, not one per rank). With timeout_s <= 0 a guard does nothing. One guard at a
 * time per process; begin again to move it to the next call (the clock restarts). */
void dl_comm_guard_begin(dl_world *world, const char *what, const char *cleanup_path);
void dl_comm_guard_end(dl_world *world);

/* ---- non-blocking all-reduce for gradient buckets ------------------------------------------------------------ */
typedef struct dl_comm_request {
    MPI_Request request;
    uint64_t sequence;
    const char *what;
    double started;
    int active;
} dl_comm_request;

/* Starts an in-place sum all-reduce of `count` floats (count ≤ INT_MAX). */
dl_status dl_comm_iallreduce_sum_f32(dl_world *world, float *buffer, size_t count, const char *what,
                                     dl_comm_request *request);
/* Drives progress; *done = 1 once complete (then the request is inactive). */
dl_status dl_comm_test(dl_world *world, dl_comm_request *request, int *done);
/* Waits for completion under the watchdog. */
dl_status dl_comm_wait(dl_world *world, dl_comm_request *request);

#ifdef __cplusplus
}
#endif

#endif
