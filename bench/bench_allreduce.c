/* bench_allreduce.c — dealer's gradient all-reduce (comm/exchange.h: rank-order sums on point-to-point messages)
 * against a raw MPI_Allreduce on the same buffer, in the same run, interleaved so that machine load hits both alike.
 *
 *     mpirun -np 2 --bind-to none build/bench_allreduce [--sizes-mb 1,16,64,256] [--reps 7] [--bucket-mb 25]
 *
 * For each size it times, rep after rep: MPI_Allreduce (in place, MPI_SUM), dl_comm_allreduce_sum_f32 (the same
 * MPI call under the watchdog), dealer's exchange as one bucket, and as buckets of --bucket-mb, in an order that
 * rotates from rep to rep. A time is the slowest rank's, after a barrier; the figure is the median over reps. Algorithm bandwidth = bytes / time (the
 * convention of nccl-tests' algbw). Prints a markdown table and the load average before and after. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/exchange.h"
#include "comm/world.h"
#include "core/timer.h"

enum { MAX_SIZES = 16, MAX_REPS = 101, KINDS = 4 };
static const char *const kind_names[KINDS] = {"MPI_Allreduce", "dl_comm_allreduce (watchdog)", "dealer, 1 bucket",
                                              "dealer, buckets"};

static void load_average(char *buf, size_t cap) {
    FILE *f = fopen("/proc/loadavg", "r");
    buf[0] = '\0';
    if (f) {
        if (!fgets(buf, (int)cap, f))
            buf[0] = '\0';
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void fill(float *x, size_t n, int rank) {
    for (size_t i = 0; i < n; i++)
        x[i] = 1e-3f * (float)((i + (size_t)rank) % 7);
}

int main(int argc, char **argv) {
    dl_world world;
    if (dl_world_init(&world, &argc, &argv, 600.0) != DL_OK) {
        fprintf(stderr, "%s\n", dl_error_message());
        return 1;
    }
    double sizes_mb[MAX_SIZES] = {1, 16, 64, 256};
    int n_sizes = 4, reps = 7;
    double bucket_mb = 25;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--bucket-mb") && i + 1 < argc) {
            bucket_mb = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--sizes-mb") && i + 1 < argc) {
            n_sizes = 0;
            for (char *tok = strtok(argv[++i], ","); tok && n_sizes < MAX_SIZES; tok = strtok(NULL, ","))
                sizes_mb[n_sizes++] = atof(tok);
        } else {
            if (world.rank == 0)
                fprintf(stderr, "usage: bench_allreduce [--sizes-mb 1,16,64,256] [--reps 7] [--bucket-mb 25]\n");
            dl_world_finalize(&world);
            return 2;
        }
    }
    if (reps < 1 || reps > MAX_REPS || bucket_mb <= 0 || n_sizes < 1) {
        if (world.rank == 0)
            fprintf(stderr, "bench_allreduce: reps must be 1..%d, sizes and bucket size positive\n", MAX_REPS);
        dl_world_finalize(&world);
        return 2;
    }
    char load_before[128], load_after[128];
    load_average(load_before, sizeof load_before);
    if (world.rank == 0) {
        printf("| size | %s | %s | %s | %s | dealer/MPI (1 bucket) | dealer/MPI (buckets) |\n", kind_names[0],
               kind_names[1], kind_names[2], kind_names[3]);
        printf("|---:|---:|---:|---:|---:|---:|---:|\n");
    }
    int status = 0;
    for (int si = 0; si < n_sizes && status == 0; si++) {
        size_t n = (size_t)(sizes_mb[si] * 1048576.0 / sizeof(float));
        float *x = malloc(n * sizeof *x);
        size_t bucket = (size_t)(bucket_mb * 1048576.0 / sizeof(float));
        int nb = (int)((n + bucket - 1) / bucket);
        size_t *bounds = malloc(((size_t)nb + 1) * sizeof *bounds);
        size_t one[2] = {0, n};
        if (!x || !bounds) {
            fprintf(stderr, "out of memory at %g MiB\n", sizes_mb[si]);
            status = 1;
            break;
        }
        for (int b = 0; b <= nb; b++)
            bounds[b] = (size_t)b * bucket < n ? (size_t)b * bucket : n;
        dl_exchange_layout single = {n, 1, one, NULL, 1}, bucketed = {n, nb, bounds, NULL, 1};
        dl_exchange *ex1 = NULL, *exb = NULL;
        if (dl_exchange_create(&ex1, &world, x, &single) != DL_OK ||
            dl_exchange_create(&exb, &world, x, &bucketed) != DL_OK) {
            fprintf(stderr, "%s\n", dl_error_message());
            status = 1;
        }
        double times[KINDS][MAX_REPS];
        for (int r = 0; r < reps + 1 && status == 0; r++) /* rep 0 warms up (page faults, connections) */
            for (int j = 0; j < KINDS && status == 0; j++) {
                int k = (j + r) % KINDS; /* rotate the order: no kind always follows the same one */
                fill(x, n, world.rank);
                MPI_Barrier(world.comm);
                double t0 = dl_time_seconds();
                dl_status s = DL_OK;
                switch (k) {
                case 0:
                    s = MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, world.comm) == MPI_SUCCESS
                            ? DL_OK
                            : DL_ERR_COMM;
                    break;
                case 1: s = dl_comm_allreduce_sum_f32(&world, x, n, "bench all-reduce"); break;
                case 2: s = dl_exchange_finish(ex1, "bench exchange"); break;
                default: s = dl_exchange_finish(exb, "bench exchange"); break;
                }
                double dt = dl_time_seconds() - t0;
                if (s != DL_OK) {
                    fprintf(stderr, "%s failed: %s\n", kind_names[k], dl_error_message());
                    status = 1;
                }
                MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, world.comm);
                if (r > 0)
                    times[k][r - 1] = dt;
            }
        if (status == 0 && world.rank == 0) {
            double med[KINDS];
            for (int k = 0; k < KINDS; k++) {
                qsort(times[k], (size_t)reps, sizeof(double), cmp_double);
                med[k] = times[k][reps / 2];
            }
            double bytes = (double)n * sizeof(float);
            printf("| %g MiB |", sizes_mb[si]);
            for (int k = 0; k < KINDS; k++)
                printf(" %.2f GB/s (%.1f ms) |", bytes / med[k] / 1e9, med[k] * 1e3);
            printf(" %.0f%% | %.0f%% |\n", 100 * med[0] / med[2], 100 * med[0] / med[3]);
            fflush(stdout);
        }
        dl_exchange_destroy(ex1);
        dl_exchange_destroy(exb);
        free(bounds);
        free(x);
    }
    load_average(load_after, sizeof load_after);
    if (world.rank == 0)
        printf("\n%d ranks, %d reps (median), buckets of %g MiB; load average before: %s; after: %s\n", world.size,
               reps, bucket_mb, load_before, load_after);
    dl_world_finalize(&world);
    return status;
}
