/* test_nodes.c — the start-up summary of where ranks run (comm/nodes.h), from hand-made places: one node, two
 * nodes of one rank, ranks interleaved over nodes, mixed thread counts, more nodes than are listed, a buffer too
 * small, and places that contradict each other. The MPI side (gathering real places) is tests/mpi/test_world_nodes.c;
 * two real nodes are tests/e2e/test_two_nodes.sh. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "comm/nodes.h"

static dl_rank_place place(int node, int local_rank, int threads, const char *host) {
    dl_rank_place p;
    memset(&p, 0, sizeof p);
    p.node = node;
    p.local_rank = local_rank;
    p.threads = threads;
    snprintf(p.host, sizeof p.host, "%s", host);
    return p;
}

static void expect_text(const dl_rank_place *places, int size, const char *want) {
    char text[512];
    DL_EXPECT_OK(dl_nodes_format(places, size, text, sizeof text));
    if (strcmp(text, want) != 0)
        DL_TEST_FAIL("got  '%s'\nwant '%s'", text, want);
}

static void one_node_lists_ranks_as_ranges(void **state) {
    (void)state;
    dl_rank_place one[] = {place(0, 0, 1, "vm")};
    expect_text(one, 1, "1 node: vm runs rank 0 (local rank 0, 1 thread)");
    dl_rank_place four[] = {place(0, 0, 2, "vm"), place(0, 1, 2, "vm"), place(0, 2, 2, "vm"), place(0, 3, 2, "vm")};
    expect_text(four, 4, "1 node: vm runs ranks 0-3 (local ranks 0-3, 2 threads each)");
}

static void two_nodes_of_one_rank_each(void **state) {
    (void)state;
    dl_rank_place p[] = {place(0, 0, 2, "node1"), place(1, 0, 2, "node2")};
    expect_text(p, 2, "2 nodes: node1 runs rank 0 (local rank 0, 2 threads); node2 runs rank 1 (local rank 0, 2 threads)");
}

static void interleaved_ranks_and_mixed_threads(void **state) {
    (void)state;
    /* --map-by node on two nodes: even ranks on a, odd on b; one rank of b was given fewer threads. */
    dl_rank_place p[] = {place(0, 0, 4, "a"), place(1, 0, 4, "b"), place(0, 1, 4, "a"), place(1, 1, 2, "b"),
                         place(0, 2, 4, "a")};
    expect_text(p, 5, "2 nodes: a runs ranks 0,2,4 (local ranks 0-2, 4 threads each); b runs ranks 1,3 (local ranks 0-1, "
                      "2-4 threads)");
}

static void many_nodes_are_counted_after_the_first_few(void **state) {
    (void)state;
    enum { NODES = DL_NODES_LISTED + 3 };
    dl_rank_place p[NODES];
    for (int r = 0; r < NODES; r++) {
        char host[16];
        snprintf(host, sizeof host, "n%d", r);
        p[r] = place(r, 0, 1, host);
    }
    char text[1024];
    DL_EXPECT_OK(dl_nodes_format(p, NODES, text, sizeof text));
    char want_head[64], want_tail[64], last_listed[32], first_unlisted[32];
    snprintf(want_head, sizeof want_head, "%d nodes: n0 runs rank 0 (local rank 0, 1 thread); n1 ", NODES);
    snprintf(want_tail, sizeof want_tail, "; and 3 more nodes");
    snprintf(last_listed, sizeof last_listed, "n%d runs", DL_NODES_LISTED - 1);
    snprintf(first_unlisted, sizeof first_unlisted, "n%d runs", DL_NODES_LISTED);
    size_t len = strlen(text), tail = strlen(want_tail);
    if (strncmp(text, want_head, strlen(want_head)) != 0 || len < tail || strcmp(text + len - tail, want_tail) != 0 ||
        !strstr(text, last_listed) || strstr(text, first_unlisted))
        DL_TEST_FAIL("got '%s'", text);
}

static void a_small_buffer_ends_in_dots(void **state) {
    (void)state;
    dl_rank_place p[] = {place(0, 0, 2, "node1"), place(1, 0, 2, "node2")};
    char text[24];
    memset(text, 'x', sizeof text);
    DL_EXPECT_OK(dl_nodes_format(p, 2, text, sizeof text));
    if (strlen(text) >= sizeof text || strcmp(text + strlen(text) - 3, "...") != 0 || strncmp(text, "2 nodes: node1", 14))
        DL_TEST_FAIL("got '%s'", text);
    /* A host name that fills its field is cut, not read past. */
    dl_rank_place long_name = place(0, 0, 1, "");
    memset(long_name.host, 'h', sizeof long_name.host);
    char wide[256];
    DL_EXPECT_OK(dl_nodes_format(&long_name, 1, wide, sizeof wide));
    if (strlen(wide) != strlen("1 node:  runs rank 0 (local rank 0, 1 thread)") + DL_NODE_NAME_CAP - 1)
        DL_TEST_FAIL("got '%s'", wide);
}

static void contradictory_places_are_rejected(void **state) {
    (void)state;
    char text[128];
    dl_rank_place ok[] = {place(0, 0, 1, "a"), place(0, 1, 1, "a")};
    DL_EXPECT_INVALID(dl_nodes_format(NULL, 2, text, sizeof text));
    DL_EXPECT_INVALID(dl_nodes_format(ok, 0, text, sizeof text));
    DL_EXPECT_INVALID(dl_nodes_format(ok, 2, NULL, sizeof text));
    DL_EXPECT_INVALID(dl_nodes_format(ok, 2, text, 8));
    dl_rank_place beyond[] = {place(0, 0, 1, "a"), place(2, 0, 1, "b")};
    DL_EXPECT_INVALID(dl_nodes_format(beyond, 2, text, sizeof text));
    /* Rank 1 names rank 0's node, but rank 0 says it belongs to node 1. */
    dl_rank_place cycle[] = {place(1, 0, 1, "a"), place(0, 0, 1, "b")};
    DL_EXPECT_INVALID(dl_nodes_format(cycle, 2, text, sizeof text));
    dl_rank_place no_threads[] = {place(0, 0, 0, "a")};
    DL_EXPECT_INVALID(dl_nodes_format(no_threads, 1, text, sizeof text));
    if (!strstr(dl_error_message(), "rank 0 has local rank 0 and 0 threads"))
        DL_TEST_FAIL("message: %s", dl_error_message());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_node_lists_ranks_as_ranges),
        cmocka_unit_test(two_nodes_of_one_rank_each),
        cmocka_unit_test(interleaved_ranks_and_mixed_threads),
        cmocka_unit_test(many_nodes_are_counted_after_the_first_few),
        cmocka_unit_test(a_small_buffer_ends_in_dots),
        cmocka_unit_test(contradictory_places_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
