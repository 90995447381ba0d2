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

static void watchdog_names_the_late_rank(void **state) {
    (void)state;
    int late = world.size - 1;
    float x = 1.0f;
    dl_comm_request req = {0};
    double saved_timeout = world.timeout_s;
    world.timeout_s = 0.5;
    if (world.rank == late) {
        usleep(1500 * 1000);
        world.timeout_s = 60;
        assert_int_equal(dl_comm_iallreduce_sum_f32(&world, &x, 1, "late all-reduce", &req), DL_OK);
        assert_int_equal(dl_comm_wait(&world, &req), DL_OK);
    } else {
        assert_int_equal(dl_comm_iallreduce_sum_f32(&world, &x, 1, "late all-reduce", &req), DL_OK);
        dl_status s = dl_comm_wait(&world, &req);
        assert_int_equal(s, DL_ERR_COMM);
        char want[64];
        snprintf(want, sizeof want, "rank %d had not arrived", late);
        const char *msg = dl_error_message();
        if (!strstr(msg, want) || !strstr(msg, "late all-reduce") || !strstr(msg, "timed out"))
            DL_TEST_FAIL("unexpected watchdog message: %s", msg);
        world.timeout_s = 60;
        assert_int_equal(dl_comm_wait(&world, &req), DL_OK);
    }
    assert_true(x == (float)world.size);
    world.timeout_s = saved_timeout;
    assert_int_equal(dl_comm_barrier(&world, "after watchdog"), DL_OK);
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
