/* test_comm.c — the collective wrappers against serial references (odd sizes, uneven slices) and the watchdog.
 * Runs under mpirun -np 2 and -np 3. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/world.h"

static dl_world world;

/* The value rank r puts at element i: distinct per rank and element, exact in float. */
static float contribution(int rank, size_t i) { return (float)((rank + 1) * 1000 + (int)(i % 997)); }

static float expected_sum(int size, size_t i) {
    float s = 0;
    for (int r = 0; r < size; r++)
        s += contribution(r, i);
    return s;
}

static void allreduce_sums_odd_sizes(void **state) {
    (void)state;
    const size_t sizes[] = {1, 7, 1023, 100003};
    for (size_t t = 0; t < 4; t++) {
        size_t n = sizes[t];
        float *x = malloc(n * sizeof *x);
        for (size_t i = 0; i < n; i++)
            x[i] = contribution(world.rank, i);
        assert_int_equal(dl_comm_allreduce_sum_f32(&world, x, n, "test all-reduce"), DL_OK);
        for (size_t i = 0; i < n; i++)
            if (x[i] != expected_sum(world.size, i))
                DL_TEST_FAIL("n=%zu element %zu: got %g want %g", n, i, (double)x[i], (double)expected_sum(world.size, i));
        free(x);
    }
    int64_t v[2] = {world.rank, -world.rank};
    assert_int_equal(dl_comm_allreduce_max_i64(&world, v, 2, "max"), DL_OK);
    assert_int_equal(v[0], world.size - 1);
    assert_int_equal(v[1], 0);
    double d = 0.5 * world.rank;
    assert_int_equal(dl_comm_allreduce_sum_f64(&world, &d, 1, "f64"), DL_OK);
    assert_true(d == 0.25 * world.size * (world.size - 1));
}

static void broadcast_copies_root_buffer(void **state) {
    (void)state;
    char text[64];
    snprintf(text, sizeof text, "rank %d", world.rank);
    int root = world.size - 1;
    assert_int_equal(dl_comm_broadcast(&world, text, sizeof text, root, "bcast"), DL_OK);
    char want[64];
    snprintf(want, sizeof want, "rank %d", root);
    assert_string_equal(text, want);
    assert_int_equal(dl_comm_broadcast(&world, text, sizeof text, world.size, "bad root"), DL_ERR_INVALID);
}

static void reduce_scatter_then_allgather_equals_allreduce(void **state) {
    (void)state;
    int counts[16];
    size_t total = 0;
    for (int r = 0; r < world.size; r++) {
        counts[r] = 5 + 3 * r; /* uneven slices */
        total += (size_t)counts[r];
    }
    float *send = malloc(total * sizeof *send);
    float *buffer = malloc(total * sizeof *buffer);
    for (size_t i = 0; i < total; i++)
        send[i] = contribution(world.rank, i);
    size_t my_offset = 0;
    for (int r = 0; r < world.rank; r++)
        my_offset += (size_t)counts[r];
    assert_int_equal(dl_comm_reduce_scatter_f32(&world, send, buffer + my_offset, counts, "rs"), DL_OK);
    for (int i = 0; i < counts[world.rank]; i++)
        assert_true(buffer[my_offset + (size_t)i] == expected_sum(world.size, my_offset + (size_t)i));
    assert_int_equal(dl_comm_allgather_f32(&world, buffer, counts, "ag"), DL_OK);
    for (size_t i = 0; i < total; i++)
        assert_true(buffer[i] == expected_sum(world.size, i));
    free(send);
    free(buffer);
}

static void alltoallv_delivers_each_pair(void **state) {
    (void)state;
    int W = world.size, me = world.rank;
    int send_counts[16], send_displs[16], recv_counts[16], recv_displs[16];
    int sc[16] = {0}, rc[16] = {0};
    int offset = 0;
    for (int r = 0; r < W; r++) {
        sc[r] = me + r + 1; /* ints rank me sends to r */
        send_counts[r] = sc[r] * (int)sizeof(int);
        send_displs[r] = offset * (int)sizeof(int);
        offset += sc[r];
    }
    int *send = malloc((size_t)offset * sizeof(int));
    for (int r = 0, k = 0; r < W; r++)
        for (int j = 0; j < sc[r]; j++)
            send[k++] = me * 100 + r * 10 + j;
    assert_int_equal(dl_comm_alltoall_int(&world, sc, rc, "counts"), DL_OK);
    int roff = 0;
    for (int r = 0; r < W; r++) {
        assert_int_equal(rc[r], r + me + 1);
        recv_counts[r] = rc[r] * (int)sizeof(int);
        recv_displs[r] = roff * (int)sizeof(int);
        roff += rc[r];
    }
    int *recv = malloc((size_t)roff * sizeof(int));
    assert_int_equal(dl_comm_alltoallv(&world, send, send_counts, send_displs, recv, recv_counts, recv_displs, "a2a"),
                     DL_OK);
    for (int r = 0, k = 0; r < W; r++)
        for (int j = 0; j < rc[r]; j++)
            assert_int_equal(recv[k++], r * 100 + me * 10 + j);
    free(send);
    free(recv);
}

static void iallreduce_completes_with_test_and_wait(void **state) {
    (void)state;
    float x[33];
    for (int i = 0; i < 33; i++)
        x[i] = contribution(world.rank, (size_t)i);
    dl_comm_request req = {0};
    assert_int_equal(dl_comm_iallreduce_sum_f32(&world, x, 33, "bucket 0", &req), DL_OK);
    int done = 0;
    for (int i = 0; i < 10 && !done; i++)
        assert_int_equal(dl_comm_test(&world, &req, &done), DL_OK);
    assert_int_equal(dl_comm_wait(&world, &req), DL_OK);
    assert_false(req.active);
    for (int i = 0; i < 33; i++)
        assert_true(x[i] == expected_sum(world.size, (size_t)i));
}

/* The last rank joins an all-reduce only after every other rank's watchdog has fired, so the message must name it
 * alone. Nothing here races the clock on a slow machine:
 *   - the late rank is told when to come (a message from each waiting rank after its timeout), not made late by a
 *     sleep, so it cannot arrive before the timeout however slowly the others run;
 *   - the waiting ranks start together after a barrier and report "waiting" to each other a quarter of the timeout
 *     in, so with WAIT_TIMEOUT_S = 4 a waiting rank may reach the all-reduce up to 3 s after another and still count
 *     as arrived. Measured at np 3 with --oversubscribe on 2 cores at load average 19: the waiting ranks timed out
 *     within 0.08 s of each other (12 of 12 runs), so the margin is over 30x.
 * Every path completes the all-reduce before any check fails, so MPI finalises with nothing in flight (a check that
 * failed mid-collective used to leave a request pending, and MPI_Finalize then crashed in NBC progress). */
enum { GO_TAG = 4242 };
#define WAIT_TIMEOUT_S 4.0
#define GO_WAIT_S 120.0

static void watchdog_names_the_late_rank(void **state) {
    (void)state;
    int late = world.size - 1;
    float x = 1.0f;
    dl_comm_request req = {0};
    double saved_timeout = world.timeout_s;
    assert_int_equal(dl_comm_barrier(&world, "before the late all-reduce"), DL_OK);
    char problem[600] = "";
    if (world.rank == late) {
        /* Wait (bounded) for every other rank's "timed out" message, then join. */
        int go = 0, got = 0;
        double start = MPI_Wtime();
        while (got < world.size - 1 && MPI_Wtime() - start < GO_WAIT_S) {
            int flag = 0;
            MPI_Status st;
            assert_int_equal(MPI_Iprobe(MPI_ANY_SOURCE, GO_TAG, world.comm, &flag, &st), MPI_SUCCESS);
            if (flag) {
                assert_int_equal(MPI_Recv(&go, 1, MPI_INT, st.MPI_SOURCE, GO_TAG, world.comm, MPI_STATUS_IGNORE),
                                 MPI_SUCCESS);
                got++;
            } else {
                usleep(1000);
            }
        }
        if (got < world.size - 1)
            snprintf(problem, sizeof problem, "only %d of %d ranks timed out within %.0f s", got, world.size - 1,
                     GO_WAIT_S);
        world.timeout_s = 60;
        assert_int_equal(dl_comm_iallreduce_sum_f32(&world, &x, 1, "late all-reduce", &req), DL_OK);
        assert_int_equal(dl_comm_wait(&world, &req), DL_OK);
    } else {
        world.timeout_s = WAIT_TIMEOUT_S;
        assert_int_equal(dl_comm_iallreduce_sum_f32(&world, &x, 1, "late all-reduce", &req), DL_OK);
        dl_status s = dl_comm_wait(&world, &req);
        char want[64];
        snprintf(want, sizeof want, "rank %d had not arrived", late);
        const char *msg = dl_error_message();
        if (s != DL_ERR_COMM)
            snprintf(problem, sizeof problem, "the wait returned %d, want DL_ERR_COMM (%d)", (int)s, (int)DL_ERR_COMM);
        else if (!strstr(msg, want) || !strstr(msg, "late all-reduce") || !strstr(msg, "timed out"))
            snprintf(problem, sizeof problem, "unexpected watchdog message: %s", msg);
        int go = 1;
        assert_int_equal(MPI_Send(&go, 1, MPI_INT, late, GO_TAG, world.comm), MPI_SUCCESS);
        world.timeout_s = 60;
        if (req.active)
            assert_int_equal(dl_comm_wait(&world, &req), DL_OK);
    }
    world.timeout_s = saved_timeout;
    assert_int_equal(dl_comm_barrier(&world, "after watchdog"), DL_OK);
    if (problem[0])
        DL_TEST_FAIL("rank %d: %s", world.rank, problem);
    assert_true(x == (float)world.size);
}

int main(int argc, char **argv) {
    if (dl_world_init(&world, &argc, &argv, 120.0) != DL_OK) {
        fprintf(stderr, "%s\n", dl_error_message());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(allreduce_sums_odd_sizes),
        cmocka_unit_test(broadcast_copies_root_buffer),
        cmocka_unit_test(reduce_scatter_then_allgather_equals_allreduce),
        cmocka_unit_test(alltoallv_delivers_each_pair),
        cmocka_unit_test(iallreduce_completes_with_test_and_wait),
        cmocka_unit_test(watchdog_names_the_late_rank),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dl_world_finalize(&world);
    return failed;
}
