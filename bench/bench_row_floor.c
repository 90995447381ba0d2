/* bench_row_floor.c — how fast this machine can touch a hashed click table in a shuffled order at all: the floor
 * under any FFM trainer's shuffled epoch, dealer's and libffm's alike.
 *
 *     bench_row_floor [--table-rows R] [--row-bytes S] [--touches N] [--aheads 0,2,4,8,16] [--rounds K]
 *
 * An FFM epoch touches, for every entry of every data row, the entry's table row: its blocks for the other
 * entries' fields, weights and AdaGrad accumulators, read and written back. With ids hashed over a table far
 * larger than the caches and rows visited in a shuffled order, each touch is a run of cache misses to a random
 * place in memory. This program does only that: N touches of a random row of S bytes in a table of R rows, reading
 * and writing every 64-byte line of the row, with software prefetch of the row `ahead` touches later (0: none).
 * No arithmetic worth the name, so the time is the memory system's: the least a shuffled epoch can cost on one core.
 *
 * Defaults are the synthetic epoch of bench/ffm_e2e.sh: 1,000,000 table rows of 18 fields × k=4 (576 bytes: 4
 * weights + 4 accumulators per field) and 17,540,000 touches (the entries of 1M rows of the Criteo sample). An FFM
 * entry touches the blocks of the fields its row holds (all 18, less its own, for those rows), so this is within a
 * line of the real traffic. Prints the best of K rounds per prefetch distance, and the same touches in order
 * (rows 0, 1, 2, ...: streaming, the hardware prefetchers' best case) for scale. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static long parse_long(const char *v, const char *what) {
    char *end = NULL;
    long x = v ? strtol(v, &end, 10) : -1;
    if (!v || *end || x < 0) {
        fprintf(stderr, "bench_row_floor: %s needs a non-negative integer, got '%s'\n", what, v ? v : "");
        exit(2);
    }
    return x;
}

/* splitmix64: a cheap, well-mixed stream for the row order (quality is irrelevant beyond "no locality"). */
static uint64_t mix(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Reads and writes every line of each touched row; returns a sum so the compiler keeps the reads. */
static float touch(float *table, size_t row_floats, const uint32_t *order, long n, int ahead) {
    float acc = 0.0f;
    const size_t row_bytes = row_floats * sizeof(float);
    for (long i = 0; i < n; i++) {
        if (ahead > 0 && i + ahead < n) {
            const char *next = (const char *)(table + (size_t)order[i + ahead] * row_floats);
            for (size_t o = 0; o < row_bytes; o += 64)
                __builtin_prefetch(next + o, 1, 3);
        }
        float *row = table + (size_t)order[i] * row_floats;
        for (size_t f = 0; f < row_floats; f += 16) {
            acc += row[f];
            row[f] += 1.0f;
        }
    }
    return acc;
}

int main(int argc, char **argv) {
    long table_rows = 1000000, row_bytes = 576, touches = 17540000, rounds = 3;
    const char *aheads = "0,2,4,8,16";
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--table-rows") == 0)
            table_rows = parse_long(v, a);
        else if (strcmp(a, "--row-bytes") == 0)
            row_bytes = parse_long(v, a);
        else if (strcmp(a, "--touches") == 0)
            touches = parse_long(v, a);
        else if (strcmp(a, "--rounds") == 0)
            rounds = parse_long(v, a);
        else if (strcmp(a, "--aheads") == 0 && v)
            aheads = v;
        else {
            fprintf(stderr, "usage: bench_row_floor [--table-rows R] [--row-bytes S] [--touches N] "
                            "[--aheads 0,2,4,8,16] [--rounds K]\n");
            return 2;
        }
    }
    if (table_rows < 1 || table_rows > UINT32_MAX || row_bytes < 64 || row_bytes % 64 || rounds < 1) {
        fprintf(stderr, "bench_row_floor: need 1 <= --table-rows < 2^32, --row-bytes a multiple of 64, --rounds >= 1\n");
        return 2;
    }
    const size_t row_floats = (size_t)row_bytes / sizeof(float);
    const size_t bytes = (size_t)table_rows * (size_t)row_bytes;
    float *table = aligned_alloc(64, bytes);
    uint32_t *shuffled = malloc((size_t)touches * sizeof *shuffled), *in_order = malloc((size_t)touches * sizeof *in_order);
    if (!table || !shuffled || !in_order) {
        fprintf(stderr, "bench_row_floor: cannot allocate %.0f MiB\n", (double)bytes / 1048576.0);
        return 1;
    }
    memset(table, 0, bytes); /* first touch outside the timing */
    uint64_t state = 7;
    for (long i = 0; i < touches; i++) {
        shuffled[i] = (uint32_t)(mix(&state) % (uint64_t)table_rows);
        in_order[i] = (uint32_t)(i % table_rows);
    }
    printf("# %ld touches of %ld-byte rows in a %.0f MiB table (%ld rows), best of %ld rounds\n", touches, row_bytes,
           (double)bytes / 1048576.0, table_rows, rounds);
    printf("| order | prefetch ahead | seconds | GB/s read (as much written back) |\n|---|---|---|---|\n");
    float sink = 0.0f;
    char list[256];
    snprintf(list, sizeof list, "%s", aheads);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int ahead = (int)parse_long(tok, "--aheads");
        double best = 1e30;
        for (long r = 0; r < rounds; r++) {
            double t0 = now();
            sink += touch(table, row_floats, shuffled, touches, ahead);
            double t = now() - t0;
            best = t < best ? t : best;
        }
        printf("| shuffled | %d | %.3f | %.2f |\n", ahead, best, (double)touches * (double)row_bytes / best / 1e9);
    }
    double best = 1e30;
    for (long r = 0; r < rounds; r++) {
        double t0 = now();
        sink += touch(table, row_floats, in_order, touches, 0);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    printf("| in order | 0 | %.3f | %.2f |\n", best, (double)touches * (double)row_bytes / best / 1e9);
    fprintf(stderr, "(checksum %g)\n", (double)sink);
    free(table);
    free(shuffled);
    free(in_order);
    return 0;
}
