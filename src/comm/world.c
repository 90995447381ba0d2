/* world.c — MPI start-up, checked collectives and the collective watchdog (see world.h for the design). */
#include "comm/world.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core/fault.h"
#include "core/log.h"
#include "core/timer.h"

enum { WATCH_TAG = 7001, SPIN_TESTS = 16 };
static const double SPIN_SECONDS = 0.002;

dl_status dl_comm_mpi_failure(int code, const char *call, const char *what) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error %d", code);
    return DL_FAIL(DL_ERR_COMM, "%s: %s failed: %s", what, call, text);
}

#define MPI_TRY(call, what)                               \
    do {                                                  \
        int mpi_try_code_ = (call);                       \
        if (mpi_try_code_ != MPI_SUCCESS)                 \
            return dl_comm_mpi_failure(mpi_try_code_, #call, what); \
    } while (0)

int dl_world_launched(void) {
    /* What Open MPI's mpirun, PMIx launchers (srun --mpi=pmix, prterun), PMI-1/2 launchers (srun --mpi=pmi2,
     * MPICH's hydra) put in every rank's environment: without one of them MPI_Init makes a world of one. */
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_FD", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

long dl_world_launched_size(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atol(v) > 1)
            return atol(v);
    }
    return 1;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st, (void)type, (void)ftw;
    remove(path);
    return 0; /* best effort: what cannot go stays, as Open MPI itself would leave it */
}

/* Open MPI removes a session directory at MPI_Finalize, so only a process killed outright (kill -9, a crash)
 * leaves one. Ours are named for their process, so one whose process is gone is swept at the next start: removed
 * only when the name is exactly ours (this host and user) and kill(pid, 0) says no such process. */
static void sweep_dead_singleton_dirs(const char *tmp, const char *prefix) {
    DIR *d = opendir(tmp);
    if (!d)
        return;
    const size_t prefix_len = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, prefix_len) != 0)
            continue;
        char *end = NULL;
        errno = 0;
        long pid = strtol(e->d_name + prefix_len, &end, 10);
        if (errno || end == e->d_name + prefix_len || *end != '\0' || pid <= 0 || pid > INT_MAX ||
            pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char path[PATH_MAX];
        int n = snprintf(path, sizeof path, "%s/%s", tmp, e->d_name);
        if (n > 0 && (size_t)n < sizeof path)
            nftw(path, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    }
    closedir(d);
}

/* Isolated singletons all take the same job name, so Open MPI gives them one session directory
 * (<tmp>/ompi.<host>.<uid>/jf.0/1/0), and the first to finish deletes it under the others: another singleton's
 * MPI-IO open then fails to create its shared-file-pointer file there, and with it an HDF5 checkpoint (seen with two
 * one-rank runs side by side). Each process gets its own directory, which Open MPI creates and removes whole. */
static void give_singleton_own_session_dir(void) {
    if (getenv("OMPI_MCA_orte_jobfam_session_dir") || getenv("OMPI_MCA_orte_top_session_dir"))
        return;
    static const char *const tmp_vars[] = {"OMPI_MCA_orte_tmpdir_base", "TMPDIR", "TEMP", "TMP"};
    const char *tmp = "/tmp";
    for (size_t i = 0; i < sizeof tmp_vars / sizeof tmp_vars[0]; i++) {
        const char *v = getenv(tmp_vars[i]);
        if (v && *v) {
            tmp = v;
            break;
        }
    }
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    char prefix[320];
    snprintf(prefix, sizeof prefix, "ompi.%s.%u.singleton-", host, (unsigned)getuid());
    sweep_dead_singleton_dirs(tmp, prefix);
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof dir, "%s/%s%ld", tmp, prefix, (long)getpid());
    if (n > 0 && (size_t)n < sizeof dir)
        setenv("OMPI_MCA_orte_jobfam_session_dir", dir, 0);
}

/* A process started without a launcher is a world of one, and Open MPI's start-up then costs more than a short
 * click-model epoch's table initialisation: it forks a helper daemon (orted) and probes every network transport
 * (UCX alone ~0.2 s), for a world with nobody to talk to. Measured on a 2-core Xeon guest, MPI_Init + Finalize of
 * a singleton: 0.34 s by default, 0.03 s with the settings below. They are Open MPI's own MCA variables, set only
 * when the user set none of them, and only outside a launcher (where they would cut ranks off from each other);
 * other MPIs ignore them. */
static void tune_singleton_start(void) {
    if (dl_world_launched())
        return;
    static const char *const settings[][2] = {
        {"OMPI_MCA_ess_singleton_isolated", "1"}, /* no orted: a singleton that spawns nothing needs none */
        {"OMPI_MCA_pml", "ob1"},                  /* the plain point-to-point layer, not UCX's probing */
        {"OMPI_MCA_btl", "self"},                 /* a world of one talks only to itself */
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (!getenv(settings[i][0]))
            setenv(settings[i][0], settings[i][1], 0);
    give_singleton_own_session_dir();
}

dl_status dl_world_init(dl_world *world, int *argc, char ***argv, double timeout_s) {
    DL_REQUIRE(world != NULL, DL_ERR_INVALID, "dl_world_init: NULL world");
    memset(world, 0, sizeof *world);
    world->comm = world->node_comm = world->watch_comm = MPI_COMM_NULL;
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        tune_singleton_start();
        int provided = 0;
        MPI_TRY(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "starting MPI");
        world->owns_mpi = 1;
        if (provided < MPI_THREAD_FUNNELED) {
            dl_status s = DL_FAIL(DL_ERR_COMM, "MPI provides thread level %d, dealer needs FUNNELED", provided);
            dl_error_hint("use an MPI built with thread support (Open MPI is)");
            return s;
        }
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_TRY(MPI_Comm_dup(MPI_COMM_WORLD, &world->comm), "creating the world communicator");
    MPI_TRY(MPI_Comm_set_errhandler(world->comm, MPI_ERRORS_RETURN), "setting the error handler");
    MPI_TRY(MPI_Comm_rank(world->comm, &world->rank), "querying the rank");
    MPI_TRY(MPI_Comm_size(world->comm, &world->size), "querying the world size");
    MPI_TRY(MPI_Comm_split_type(world->comm, MPI_COMM_TYPE_SHARED, world->rank, MPI_INFO_NULL, &world->node_comm),
            "splitting the node communicator");
    MPI_TRY(MPI_Comm_rank(world->node_comm, &world->local_rank), "querying the local rank");
    MPI_TRY(MPI_Comm_size(world->node_comm, &world->local_size), "querying the local size");
    MPI_TRY(MPI_Comm_dup(world->comm, &world->watch_comm), "creating the watchdog communicator");
    world->waiting_at = calloc((size_t)world->size, sizeof *world->waiting_at);
    if (!world->waiting_at)
        return DL_FAIL(DL_ERR_NOMEM, "cannot allocate the watchdog table for %d ranks", world->size);
    world->timeout_s = timeout_s;
    world->step = -1;
    dl_log_set_rank(world->rank, 0);
    dl_fault_set_rank(world->rank);
    return DL_OK;
}

void dl_world_finalize(dl_world *world) {
    if (!world)
        return;
    if (world->watch_comm != MPI_COMM_NULL)
        MPI_Comm_free(&world->watch_comm);
    if (world->node_comm != MPI_COMM_NULL)
        MPI_Comm_free(&world->node_comm);
    if (world->comm != MPI_COMM_NULL)
        MPI_Comm_free(&world->comm);
    free(world->waiting_at);
    world->waiting_at = NULL;
    if (world->owns_mpi) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized)
            MPI_Finalize();
    }
    world->owns_mpi = 0;
}

void dl_world_abort(dl_world *world, int exit_code) {
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(world && world->comm != MPI_COMM_NULL ? world->comm : MPI_COMM_WORLD, exit_code ? exit_code : 1);
}

void dl_world_set_step(dl_world *world, int64_t step) {
    if (world)
        world->step = step;
}

dl_status dl_world_split(dl_world *parent, int color, int key, dl_world *child) {
    DL_REQUIRE(parent != NULL && parent->comm != MPI_COMM_NULL && child != NULL, DL_ERR_INVALID,
               "dl_world_split: NULL or unstarted world");
    memset(child, 0, sizeof *child);
    child->comm = child->node_comm = child->watch_comm = MPI_COMM_NULL;
    child->timeout_s = parent->timeout_s;
    child->step = -1;
    MPI_TRY(MPI_Comm_split(parent->comm, color < 0 ? MPI_UNDEFINED : color, key, &child->comm),
            "splitting the world");
    if (child->comm == MPI_COMM_NULL)
        return DL_OK;
    MPI_TRY(MPI_Comm_set_errhandler(child->comm, MPI_ERRORS_RETURN), "setting the error handler");
    MPI_TRY(MPI_Comm_rank(child->comm, &child->rank), "querying the rank");
    MPI_TRY(MPI_Comm_size(child->comm, &child->size), "querying the world size");
    MPI_TRY(MPI_Comm_split_type(child->comm, MPI_COMM_TYPE_SHARED, child->rank, MPI_INFO_NULL, &child->node_comm),
            "splitting the node communicator");
    MPI_TRY(MPI_Comm_rank(child->node_comm, &child->local_rank), "querying the local rank");
    MPI_TRY(MPI_Comm_size(child->node_comm, &child->local_size), "querying the local size");
    MPI_TRY(MPI_Comm_dup(child->comm, &child->watch_comm), "creating the watchdog communicator");
    child->waiting_at = calloc((size_t)child->size, sizeof *child->waiting_at);
    if (!child->waiting_at)
        return DL_FAIL(DL_ERR_NOMEM, "cannot allocate the watchdog table for %d ranks", child->size);
    return DL_OK;
}

/* Reads every "waiting in #k" report that has arrived. */
static void drain_reports(dl_world *world) {
    for (;;) {
        int flag = 0;
        MPI_Status status;
        if (MPI_Iprobe(MPI_ANY_SOURCE, WATCH_TAG, world->watch_comm, &flag, &status) != MPI_SUCCESS || !flag)
            return;
        uint64_t sequence = 0;
        if (MPI_Recv(&sequence, 1, MPI_UINT64_T, status.MPI_SOURCE, WATCH_TAG, world->watch_comm,
                     MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return;
        if (sequence > world->waiting_at[status.MPI_SOURCE])
            world->waiting_at[status.MPI_SOURCE] = sequence;
    }
}

static void report_waiting(dl_world *world, uint64_t sequence) {
    world->waiting_at[world->rank] = sequence;
    for (int r = 0; r < world->size; r++)
        if (r != world->rank)
            MPI_Send(&sequence, 1, MPI_UINT64_T, r, WATCH_TAG, world->watch_comm); /* 8 bytes: sent eagerly */
}

/* Ranks that reported an earlier collective (or none) had not arrived. Ranks that reported a later one already got
 * past this one (a point-to-point exchange lets a rank finish its own part before the others) and are only named. */
static dl_status timeout_failure(dl_world *world, uint64_t sequence, const char *what, double waited) {
    char missing[512] = "", ahead[512] = "";
    size_t used = 0, used_ahead = 0;
    int n_missing = 0, n_ahead = 0;
    drain_reports(world);
    for (int r = 0; r < world->size; r++) {
        if (world->waiting_at[r] == sequence)
            continue;
        if (world->waiting_at[r] > sequence) {
            if (used_ahead < sizeof ahead - 40)
                used_ahead += (size_t)snprintf(ahead + used_ahead, sizeof ahead - used_ahead, "%s%d (in #%llu)",
                                               n_ahead ? ", " : "", r, (unsigned long long)world->waiting_at[r]);
            n_ahead++;
        } else {
            if (used < sizeof missing - 16)
                used += (size_t)snprintf(missing + used, sizeof missing - used, "%s%d", n_missing ? ", " : "", r);
            n_missing++;
        }
    }
    char step[48] = "", moved[600] = "";
    if (world->step >= 0)
        snprintf(step, sizeof step, ", step %lld", (long long)world->step);
    if (n_ahead)
        snprintf(moved, sizeof moved, " (already past it: rank%s %s)", n_ahead == 1 ? "" : "s", ahead);
    dl_status s;
    if (n_missing)
        s = DL_FAIL(DL_ERR_COMM, "collective '%s' (#%llu%s) timed out after %.0f s on rank %d: rank%s %s had not "
                                 "arrived%s",
                    what, (unsigned long long)sequence, step, waited, world->rank, n_missing == 1 ? "" : "s",
                    missing, moved);
    else
        s = DL_FAIL(DL_ERR_COMM,
                    "collective '%s' (#%llu%s) timed out after %.0f s on rank %d although every rank arrived%s", what,
                    (unsigned long long)sequence, step, waited, world->rank, moved);
    dl_error_hint("a rank is stuck, slow or dead: read its log; raise comm.timeout_s if steps are legitimately slow");
    return s;
}

void dl_comm_watch_start(dl_world *world, dl_comm_watch *watch, const char *what) {
    memset(watch, 0, sizeof *watch);
    watch->sequence = world ? ++world->sequence : 0;
    watch->what = what ? what : "collective";
    watch->started = dl_time_seconds();
}

dl_status dl_comm_watch_idle(dl_world *world, dl_comm_watch *watch) {
    DL_REQUIRE(world != NULL && watch != NULL, DL_ERR_INVALID, "dl_comm_watch_idle: NULL argument");
    /* The first turns only spin: most waits end within microseconds. After them the clock is read every turn (a
     * vDSO call, cheaper than the MPI_Test around it): oversubscribed, Open MPI yields the core in every test, so a
     * fixed count of turns can last many seconds under load, and this rank's report and timeout would come so late
     * that the other ranks' watchdogs name it as not arrived. */
    if (watch->idle_turns++ < SPIN_TESTS)
        return DL_OK;
    double report_after = world->timeout_s > 0 ? world->timeout_s / 4 : 2.0;
    if (report_after > 2.0)
        report_after = 2.0;
    double waited = dl_time_seconds() - watch->started;
    /* Keep spinning through the first milliseconds: a nap's wake-up on a busy machine can take longer than a whole
     * small collective, while a rank that waits for long should leave the core to ranks sharing it. */
    if (waited < SPIN_SECONDS)
        return DL_OK;
    drain_reports(world);
    if (!watch->reported && waited > report_after) {
        report_waiting(world, watch->sequence);
        watch->reported = 1;
    }
    if (world->timeout_s > 0 && waited > world->timeout_s)
        return timeout_failure(world, watch->sequence, watch->what, waited);
    struct timespec nap = {0, 20000}; /* 20 µs: leave the core to ranks sharing it */
    nanosleep(&nap, NULL);
    return DL_OK;
}

/* Waits for `request` under the watchdog, driving MPI progress. */
static dl_status watched_wait(dl_world *world, MPI_Request *request, uint64_t sequence, const char *what,
                              double started) {
    dl_comm_watch watch = {.sequence = sequence, .what = what, .started = started};
    for (;;) {
        int done = 0;
        MPI_TRY(MPI_Test(request, &done, MPI_STATUS_IGNORE), what);
        if (done)
            return DL_OK;
        DL_CHECK(dl_comm_watch_idle(world, &watch));
    }
}

#define REQUIRE_WORLD(world, what)                                                                          \
    DL_REQUIRE((world) != NULL && (world)->comm != MPI_COMM_NULL, DL_ERR_INVALID, "%s: MPI world not started", \
               (what) ? (what) : "collective")

/* Runs one non-blocking collective started by `start` to completion under the watchdog. */
#define RUN_COLLECTIVE(world, what, start_call)                                   \
    do {                                                                          \
        MPI_Request request_;                                                     \
        uint64_t sequence_ = ++(world)->sequence;                                 \
        double started_ = dl_time_seconds();                                      \
        MPI_TRY(start_call, what);                                                \
        return watched_wait((world), &request_, sequence_, (what), started_);     \
    } while (0)

dl_status dl_comm_barrier(dl_world *world, const char *what) {
    REQUIRE_WORLD(world, what);
    RUN_COLLECTIVE(world, what, MPI_Ibarrier(world->comm, &request_));
}

static dl_status require_int_count(size_t count, const char *what) {
    if (count > (size_t)INT_MAX)
        return DL_FAIL(DL_ERR_INVALID, "%s: %zu elements exceed MPI's int count limit", what, count);
    return DL_OK;
}

dl_status dl_comm_broadcast(dl_world *world, void *buffer, size_t bytes, int root, const char *what) {
    REQUIRE_WORLD(world, what);
    DL_REQUIRE(root >= 0 && root < world->size, DL_ERR_INVALID, "%s: root %d outside 0..%d", what, root,
               world->size - 1);
    DL_REQUIRE(buffer != NULL || bytes == 0, DL_ERR_INVALID, "%s: NULL buffer", what);
    /* Large buffers go in 1 GiB pieces so counts stay within int. */
    const size_t piece = (size_t)1 << 30;
    for (size_t off = 0; off < bytes; off += piece) {
        size_t n = bytes - off < piece ? bytes - off : piece;
        MPI_Request request;
        uint64_t sequence = ++world->sequence;
        double started = dl_time_seconds();
        MPI_TRY(MPI_Ibcast((char *)buffer + off, (int)n, MPI_BYTE, root, world->comm, &request), what);
        DL_CHECK(watched_wait(world, &request, sequence, what, started));
    }
    return DL_OK;
}

static dl_status allreduce(dl_world *world, void *buffer, size_t count, MPI_Datatype type, size_t elem_size,
                           MPI_Op op, const char *what) {
    REQUIRE_WORLD(world, what);
    DL_REQUIRE(buffer != NULL || count == 0, DL_ERR_INVALID, "%s: NULL buffer", what);
    const size_t piece = (size_t)1 << 28;
    for (size_t off = 0; off < count; off += piece) {
        size_t n = count - off < piece ? count - off : piece;
        MPI_Request request;
        uint64_t sequence = ++world->sequence;
        double started = dl_time_seconds();
        MPI_TRY(MPI_Iallreduce(MPI_IN_PLACE, (char *)buffer + off * elem_size, (int)n, type, op, world->comm,
                               &request),
                what);
        DL_CHECK(watched_wait(world, &request, sequence, what, started));
    }
    return DL_OK;
}

dl_status dl_comm_allreduce_sum_f32(dl_world *world, float *buffer, size_t count, const char *what) {
    return allreduce(world, buffer, count, MPI_FLOAT, sizeof(float), MPI_SUM, what);
}

dl_status dl_comm_allreduce_sum_f64(dl_world *world, double *buffer, size_t count, const char *what) {
    return allreduce(world, buffer, count, MPI_DOUBLE, sizeof(double), MPI_SUM, what);
}

dl_status dl_comm_allreduce_sum_i64(dl_world *world, int64_t *buffer, size_t count, const char *what) {
    return allreduce(world, buffer, count, MPI_INT64_T, sizeof(int64_t), MPI_SUM, what);
}

dl_status dl_comm_allreduce_max_i64(dl_world *world, int64_t *buffer, size_t count, const char *what) {
    return allreduce(world, buffer, count, MPI_INT64_T, sizeof(int64_t), MPI_MAX, what);
}

dl_status dl_comm_allreduce_min_i64(dl_world *world, int64_t *buffer, size_t count, const char *what) {
    return allreduce(world, buffer, count, MPI_INT64_T, sizeof(int64_t), MPI_MIN, what);
}

static dl_status check_slices(dl_world *world, const int *counts, const char *what) {
    DL_REQUIRE(counts != NULL, DL_ERR_INVALID, "%s: NULL slice counts", what);
    long long total = 0;
    for (int r = 0; r < world->size; r++) {
        DL_REQUIRE(counts[r] >= 0, DL_ERR_INVALID, "%s: negative slice count %d for rank %d", what, counts[r], r);
        total += counts[r];
    }
    DL_REQUIRE(total <= INT_MAX, DL_ERR_INVALID, "%s: %lld elements exceed MPI's int count limit", what, total);
    return DL_OK;
}

dl_status dl_comm_reduce_scatter_f32(dl_world *world, const float *send, float *recv, const int *counts,
                                     const char *what) {
    REQUIRE_WORLD(world, what);
    DL_CHECK(check_slices(world, counts, what));
    DL_REQUIRE(send != NULL && (recv != NULL || counts[world->rank] == 0), DL_ERR_INVALID, "%s: NULL buffer", what);
    RUN_COLLECTIVE(world, what, MPI_Ireduce_scatter(send, recv, counts, MPI_FLOAT, MPI_SUM, world->comm, &request_));
}

dl_status dl_comm_allgather_f32(dl_world *world, float *buffer, const int *counts, const char *what) {
    REQUIRE_WORLD(world, what);
    DL_CHECK(check_slices(world, counts, what));
    DL_REQUIRE(buffer != NULL, DL_ERR_INVALID, "%s: NULL buffer", what);
    int displs[world->size];
    int offset = 0;
    for (int r = 0; r < world->size; r++) {
        displs[r] = offset;
        offset += counts[r];
    }
    RUN_COLLECTIVE(world, what,
                   MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buffer, counts, displs, MPI_FLOAT, world->comm,
                                   &request_));
}

dl_status dl_comm_alltoallv(dl_world *world, const void *send, const int *send_counts, const int *send_displs,
                            void *recv, const int *recv_counts, const int *recv_displs, const char *what) {
    REQUIRE_WORLD(world, what);
    DL_REQUIRE(send_counts && send_displs && recv_counts && recv_displs, DL_ERR_INVALID, "%s: NULL counts", what);
    RUN_COLLECTIVE(world, what,
                   MPI_Ialltoallv(send, send_counts, send_displs, MPI_BYTE, recv, recv_counts, recv_displs, MPI_BYTE,
                                  world->comm, &request_));
}

dl_status dl_comm_alltoall_int(dl_world *world, const int *send, int *recv, const char *what) {
    REQUIRE_WORLD(world, what);
    DL_REQUIRE(send != NULL && recv != NULL, DL_ERR_INVALID, "%s: NULL buffer", what);
    RUN_COLLECTIVE(world, what, MPI_Ialltoall(send, 1, MPI_INT, recv, 1, MPI_INT, world->comm, &request_));
}

dl_status dl_comm_iallreduce_sum_f32(dl_world *world, float *buffer, size_t count, const char *what,
                                     dl_comm_request *request) {
    REQUIRE_WORLD(world, what);
    DL_REQUIRE(request != NULL, DL_ERR_INVALID, "%s: NULL request", what);
    DL_REQUIRE(!request->active, DL_ERR_INVALID, "%s: request is still in flight", what);
    DL_REQUIRE(buffer != NULL || count == 0, DL_ERR_INVALID, "%s: NULL buffer", what);
    DL_CHECK(require_int_count(count, what));
    request->sequence = ++world->sequence;
    request->what = what;
    request->started = dl_time_seconds();
    MPI_TRY(MPI_Iallreduce(MPI_IN_PLACE, buffer, (int)count, MPI_FLOAT, MPI_SUM, world->comm, &request->request),
            what);
    request->active = 1;
    return DL_OK;
}

dl_status dl_comm_test(dl_world *world, dl_comm_request *request, int *done) {
    REQUIRE_WORLD(world, "test");
    DL_REQUIRE(request != NULL && done != NULL, DL_ERR_INVALID, "dl_comm_test: NULL argument");
    *done = !request->active;
    if (!request->active)
        return DL_OK;
    MPI_TRY(MPI_Test(&request->request, done, MPI_STATUS_IGNORE), request->what);
    if (*done)
        request->active = 0;
    return DL_OK;
}

dl_status dl_comm_wait(dl_world *world, dl_comm_request *request) {
    REQUIRE_WORLD(world, "wait");
    DL_REQUIRE(request != NULL, DL_ERR_INVALID, "dl_comm_wait: NULL request");
    if (!request->active)
        return DL_OK;
    DL_CHECK(watched_wait(world, &request->request, request->sequence, request->what, request->started));
    request->active = 0;
    return DL_OK;
}

dl_status dl_comm_gather_bytes(dl_world *world, const void *data, int bytes, int root, void **out, int *lengths,
                               const char *what) {
    REQUIRE_WORLD(world, what);
    DL_REQUIRE(out != NULL && lengths != NULL && bytes >= 0 && (data != NULL || bytes == 0), DL_ERR_INVALID,
               "%s: bad arguments", what);
    DL_REQUIRE(root >= 0 && root < world->size, DL_ERR_INVALID, "%s: root %d outside 0..%d", what, root,
               world->size - 1);
    *out = NULL;
    {
        MPI_Request request;
        uint64_t sequence = ++world->sequence;
        double started = dl_time_seconds();
        MPI_TRY(MPI_Igather(&bytes, 1, MPI_INT, lengths, 1, MPI_INT, root, world->comm, &request), what);
        DL_CHECK(watched_wait(world, &request, sequence, what, started));
    }
    int *displs = NULL;
    char *buffer = NULL;
    if (world->rank == root) {
        long long total = 0;
        displs = malloc((size_t)world->size * sizeof(int));
        DL_REQUIRE(displs != NULL, DL_ERR_NOMEM, "%s: cannot allocate %d displacements", what, world->size);
        for (int r = 0; r < world->size; r++) {
            displs[r] = (int)total;
            total += lengths[r];
        }
        if (total > INT_MAX) {
            free(displs);
            return DL_FAIL(DL_ERR_INVALID, "%s: %lld bytes exceed MPI's int count limit", what, total);
        }
        buffer = malloc(total > 0 ? (size_t)total : 1);
        if (!buffer) {
            free(displs);
            return DL_FAIL(DL_ERR_NOMEM, "%s: cannot allocate %lld bytes", what, total);
        }
    }
    MPI_Request request;
    uint64_t sequence = ++world->sequence;
    double started = dl_time_seconds();
    int code = MPI_Igatherv(data, bytes, MPI_BYTE, buffer, lengths, displs, MPI_BYTE, root, world->comm, &request);
    dl_status s = code == MPI_SUCCESS ? watched_wait(world, &request, sequence, what, started)
                                      : dl_comm_mpi_failure(code, "MPI_Igatherv", what);
    free(displs);
    if (s != DL_OK) {
        free(buffer);
        return s;
    }
    *out = buffer;
    return DL_OK;
}

/* ---- the guard over library collectives ---------------------------------------------------------------------------
 * One helper thread per process, started at the first guard, sleeping on a condition variable while nothing is
 * guarded. `generation` changes at every begin and end, so a deadline that passes just as its call ends fires
 * nothing. The fired path writes with write(2) and leaves with _exit: the main thread is stuck inside MPI and holds
 * whatever locks it holds. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int started, armed, rank;
    unsigned long generation;
    struct timespec deadline;
    double timeout_s;
    char what[160];
    char cleanup[4400];
} guard = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static void *guard_main(void *unused) {
    (void)unused;
    pthread_mutex_lock(&guard.lock);
    for (;;) {
        while (!guard.armed)
            pthread_cond_wait(&guard.wake, &guard.lock);
        unsigned long generation = guard.generation;
        int r = pthread_cond_timedwait(&guard.wake, &guard.lock, &guard.deadline);
        if (r == ETIMEDOUT && guard.armed && guard.generation == generation) {
            /* The likeliest cause of a write stuck inside MPI-IO, when it is so: a full file system. */
            char space[96] = "";
            char dir[sizeof guard.cleanup];
            memcpy(dir, guard.cleanup, sizeof dir);
            char *slash = strrchr(dir, '/');
            struct statvfs fs;
            if (slash && slash != dir) {
                *slash = '\0';
                if (statvfs(dir, &fs) == 0 && (uint64_t)fs.f_bavail * fs.f_frsize < ((uint64_t)1 << 20))
                    snprintf(space, sizeof space, "; its file system has %llu KiB free",
                             (unsigned long long)((uint64_t)fs.f_bavail * fs.f_frsize >> 10));
            }
            char line[900];
            int n = snprintf(line, sizeof line,
                             "dealer: error (rank %d): %s did not finish within comm.timeout_s = %.0f s (another rank "
                             "failed or is stuck inside it%s); ending this rank (hint: read the other ranks' messages "
                             "above)\n",
                             guard.rank, guard.what, guard.timeout_s, space);
            if (n > 0)
                (void)!write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
            if (guard.cleanup[0])
                unlink(guard.cleanup);
            _exit(1);
        }
    }
    return NULL;
}

void dl_comm_guard_begin(dl_world *world, const char *what, const char *cleanup_path) {
    if (!world || world->timeout_s <= 0)
        return;
    pthread_mutex_lock(&guard.lock);
    if (!guard.started) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        guard.started = pthread_create(&thread, &attr, guard_main, NULL) == 0;
        pthread_attr_destroy(&attr);
        if (!guard.started) {
            pthread_mutex_unlock(&guard.lock);
            DL_WARN("cannot start the watchdog thread for %s: it runs unguarded", what ? what : "a collective call");
            return;
        }
    }
    clock_gettime(CLOCK_REALTIME, &guard.deadline);
    /* Ranks other than 0 wait 5 s longer: when all are stuck, rank 0 speaks first and its exit makes the launcher
     * end the others, so the job prints one line rather than one per rank. */
    double wait = world->timeout_s + (world->rank > 0 ? 5.0 : 0.0);
    double whole = (double)(long long)wait;
    guard.deadline.tv_sec += (time_t)whole;
    guard.deadline.tv_nsec += (long)((wait - whole) * 1e9);
    if (guard.deadline.tv_nsec >= 1000000000L) {
        guard.deadline.tv_sec++;
        guard.deadline.tv_nsec -= 1000000000L;
    }
    guard.timeout_s = world->timeout_s;
    guard.rank = world->rank;
    snprintf(guard.what, sizeof guard.what, "%s", what ? what : "a collective call");
    snprintf(guard.cleanup, sizeof guard.cleanup, "%s", cleanup_path ? cleanup_path : "");
    guard.armed = 1;
    guard.generation++;
    pthread_cond_signal(&guard.wake);
    pthread_mutex_unlock(&guard.lock);
}

void dl_comm_guard_end(dl_world *world) {
    (void)world;
    pthread_mutex_lock(&guard.lock);
    if (guard.armed) {
        guard.armed = 0;
        guard.generation++;
        pthread_cond_signal(&guard.wake);
    }
    pthread_mutex_unlock(&guard.lock);
}
