/* test_world_nodes.c — dl_world_describe_nodes on a real world (np 2 and 3, all on this host): rank 0 gets one node named
 * after this host holding every rank as local ranks 0..W-1 with each rank's own thread count; the other ranks get
 * ""; a split world describes only its own ranks. Two real nodes: tests/e2e/test_two_nodes.sh. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "comm/nodes.h"
#include "comm/world.h"

static dl_world world;

static void one_host_is_one_node(void **state) {
    (void)state;
    char text[512];
    memset(text, 'x', sizeof text);
    DL_EXPECT_OK(dl_world_describe_nodes(&world, 3, text, sizeof text));
    if (world.rank != 0) {
        assert_string_equal(text, "");
        return;
    }
    char host[MPI_MAX_PROCESSOR_NAME];
    int len = 0;
    assert_int_equal(MPI_Get_processor_name(host, &len), MPI_SUCCESS);
    char want[512];
    snprintf(want, sizeof want, "1 node: %.63s runs ranks 0-%d (local ranks 0-%d, 3 threads each)", host,
             world.size - 1, world.size - 1);
    if (strcmp(text, want) != 0)
        DL_TEST_FAIL("got  '%s'\nwant '%s'", text, want);
}

static void thread_counts_are_each_ranks_own(void **state) {
    (void)state;
    char text[512];
    DL_EXPECT_OK(dl_world_describe_nodes(&world, world.rank == 1 ? 1 : 4, text, sizeof text));
    if (world.rank == 0 && !strstr(text, ", 1-4 threads)"))
        DL_TEST_FAIL("got '%s', want a 1-4 thread range", text);
}

static void a_split_world_describes_its_own_ranks(void **state) {
    (void)state;
    dl_world child;
    /* The last rank alone: a one-rank world whose rank 0 is the parent's last rank. */
    DL_EXPECT_OK(dl_world_split(&world, world.rank == world.size - 1 ? 0 : -1, 0, &child));
    if (child.comm != MPI_COMM_NULL) {
        char text[256];
        DL_EXPECT_OK(dl_world_describe_nodes(&child, 2, text, sizeof text));
        if (strncmp(text, "1 node: ", 8) != 0 || !strstr(text, " runs rank 0 (local rank 0, 2 threads)"))
            DL_TEST_FAIL("got '%s'", text);
    }
    dl_world_finalize(&child);
    DL_EXPECT_OK(dl_comm_barrier(&world, "after the split"));
}

static void bad_arguments_fail_before_any_collective(void **state) {
    (void)state;
    char text[64];
    DL_EXPECT_INVALID(dl_world_describe_nodes(NULL, 1, text, sizeof text));
    DL_EXPECT_INVALID(dl_world_describe_nodes(&world, 0, text, sizeof text));
    DL_EXPECT_INVALID(dl_world_describe_nodes(&world, 1, NULL, sizeof text));
    DL_EXPECT_INVALID(dl_world_describe_nodes(&world, 1, text, 4));
    dl_world unstarted;
    memset(&unstarted, 0, sizeof unstarted);
    unstarted.comm = unstarted.node_comm = MPI_COMM_NULL;
    DL_EXPECT_INVALID(dl_world_describe_nodes(&unstarted, 1, text, sizeof text));
    /* Every rank failed alike and no collective started: the world still works. */
    DL_EXPECT_OK(dl_comm_barrier(&world, "after bad arguments"));
}

int main(int argc, char **argv) {
    if (dl_world_init(&world, &argc, &argv, 120.0) != DL_OK) {
        fprintf(stderr, "%s\n", dl_error_message());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_host_is_one_node),
        cmocka_unit_test(thread_counts_are_each_ranks_own),
        cmocka_unit_test(a_split_world_describes_its_own_ranks),
        cmocka_unit_test(bad_arguments_fail_before_any_collective),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dl_world_finalize(&world);
    return failed;
}
