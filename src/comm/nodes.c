/* nodes.c — the start-up summary of where the ranks run (see nodes.h). */
#include "comm/nodes.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends to a fixed buffer; remembers when something did not fit (the buffer is then full), so the text can end
 * in "..." instead. */
typedef struct appender {
    char *text;
    size_t cap, used;
    int cut;
} appender;

__attribute__((format(printf, 2, 3))) static void append(appender *a, const char *fmt, ...) {
    if (a->cut)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(a->text + a->used, a->cap - a->used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= a->cap - a->used) {
        a->cut = 1;
        if (n < 0)
            a->text[a->used] = '\0';
        a->used = a->cap - 1; /* vsnprintf kept what fits, NUL-terminated */
        return;
    }
    a->used += (size_t)n;
}

/* "0-3,8,10-11": runs of consecutive values as ranges. */
static void append_ranges(appender *a, const int *values, int n) {
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && values[j + 1] == values[j] + 1)
            j++;
        if (j == i)
            append(a, "%s%d", i ? "," : "", values[i]);
        else
            append(a, "%s%d-%d", i ? "," : "", values[i], values[j]);
        i = j + 1;
    }
}

dl_status dl_nodes_format(const dl_rank_place *places, int size, char *text, size_t cap) {
    DL_REQUIRE(text != NULL && cap >= 16, DL_ERR_INVALID, "dl_nodes_format: NULL text or capacity below 16");
    text[0] = '\0';
    DL_REQUIRE(places != NULL && size >= 1, DL_ERR_INVALID, "dl_nodes_format: no places (size %d)", size);
    int nodes = 0;
    for (int r = 0; r < size; r++) {
        int node = places[r].node;
        DL_REQUIRE(node >= 0 && node <= r && places[node].node == node, DL_ERR_INVALID,
                   "dl_nodes_format: rank %d names node %d, which is not the lowest rank of a node", r, node);
        DL_REQUIRE(places[r].local_rank >= 0 && places[r].threads >= 1, DL_ERR_INVALID,
                   "dl_nodes_format: rank %d has local rank %d and %d threads", r, (int)places[r].local_rank,
                   (int)places[r].threads);
        nodes += node == r;
    }
    int *ranks = malloc((size_t)size * sizeof *ranks), *locals = malloc((size_t)size * sizeof *locals);
    if (!ranks || !locals) {
        free(ranks);
        free(locals);
        return DL_FAIL(DL_ERR_NOMEM, "dl_nodes_format: cannot allocate rank lists for %d ranks", size);
    }
    appender a = {.text = text, .cap = cap};
    append(&a, "%d node%s: ", nodes, nodes == 1 ? "" : "s");
    int listed = 0;
    for (int node = 0; node < size && listed < DL_NODES_LISTED; node++) {
        if (places[node].node != node)
            continue;
        int n = 0, fewest = places[node].threads, most = fewest;
        for (int r = node; r < size; r++) {
            if (places[r].node != node)
                continue;
            ranks[n] = r;
            locals[n] = places[r].local_rank;
            n++;
            fewest = places[r].threads < fewest ? places[r].threads : fewest;
            most = places[r].threads > most ? places[r].threads : most;
        }
        char host[DL_NODE_NAME_CAP];
        memcpy(host, places[node].host, sizeof host);
        host[sizeof host - 1] = '\0';
        append(&a, "%s%s runs rank%s ", listed ? "; " : "", host[0] ? host : "?", n == 1 ? "" : "s");
        append_ranges(&a, ranks, n);
        append(&a, " (local rank%s ", n == 1 ? "" : "s");
        append_ranges(&a, locals, n);
        if (fewest == most)
            append(&a, ", %d thread%s%s)", most, most == 1 ? "" : "s", n == 1 ? "" : " each");
        else
            append(&a, ", %d-%d threads)", fewest, most);
        listed++;
    }
    if (nodes > listed)
        append(&a, "; and %d more node%s", nodes - listed, nodes - listed == 1 ? "" : "s");
    free(ranks);
    free(locals);
    if (a.cut)
        memcpy(text + (strlen(text) < cap - 4 ? strlen(text) : cap - 4), "...", 4);
    return DL_OK;
}

/* The lowest world rank on this rank's node, under the watchdog like every collective. */
static dl_status node_leader(dl_world *world, int *leader) {
    MPI_Request request;
    dl_comm_watch watch;
    dl_comm_watch_start(world, &watch, "node summary: finding each node's first rank");
    int code = MPI_Iallreduce(&world->rank, leader, 1, MPI_INT, MPI_MIN, world->node_comm, &request);
    if (code != MPI_SUCCESS)
        return dl_comm_mpi_failure(code, "MPI_Iallreduce", watch.what);
    for (;;) {
        int done = 0;
        code = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
        if (code != MPI_SUCCESS)
            return dl_comm_mpi_failure(code, "MPI_Test", watch.what);
        if (done)
            return DL_OK;
        DL_CHECK(dl_comm_watch_idle(world, &watch));
    }
}

dl_status dl_world_describe_nodes(dl_world *world, int threads, char *text, size_t cap) {
    DL_REQUIRE(world != NULL && world->comm != MPI_COMM_NULL && world->node_comm != MPI_COMM_NULL, DL_ERR_INVALID,
               "dl_world_describe_nodes: MPI world not started");
    DL_REQUIRE(text != NULL && cap >= 16, DL_ERR_INVALID, "dl_world_describe_nodes: NULL text or capacity below 16");
    DL_REQUIRE(threads >= 1, DL_ERR_INVALID, "dl_world_describe_nodes: %d threads", threads);
    text[0] = '\0';
    dl_rank_place place;
    memset(&place, 0, sizeof place);
    int leader = 0;
    DL_CHECK(node_leader(world, &leader));
    place.node = leader;
    place.local_rank = world->local_rank;
    place.threads = threads;
    char name[MPI_MAX_PROCESSOR_NAME] = "";
    int name_len = 0;
    if (MPI_Get_processor_name(name, &name_len) != MPI_SUCCESS)
        snprintf(name, sizeof name, "?");
    snprintf(place.host, sizeof place.host, "%s", name);
    int *lengths = malloc((size_t)world->size * sizeof *lengths);
    DL_REQUIRE(lengths != NULL, DL_ERR_NOMEM, "node summary: cannot allocate %d lengths", world->size);
    void *gathered = NULL;
    dl_status s = dl_comm_gather_bytes(world, &place, (int)sizeof place, 0, &gathered, lengths, "node summary");
    if (s == DL_OK && world->rank == 0) {
        for (int r = 0; r < world->size && s == DL_OK; r++)
            if (lengths[r] != (int)sizeof place)
                s = DL_FAIL(DL_ERR_COMM, "node summary: rank %d sent %d bytes, want %zu (a different dealer build?)",
                            r, lengths[r], sizeof place);
        if (s == DL_OK)
            s = dl_nodes_format(gathered, world->size, text, cap);
    }
    free(gathered);
    free(lengths);
    return s;
}
