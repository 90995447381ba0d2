/* cmd_train.c — `dealer train CONFIG [section.key=value ...]`: start MPI, resolve the config, train.
 *
 * Failures that every rank meets the same way (a bad config, a missing data file) are printed once, by rank 0, and
 * every rank exits with the same code. A failure on one rank is printed by that rank; the others learn of it at the
 * next step boundary and exit too. Only a communication failure (a watchdog timeout, a dead rank) needs MPI_Abort,
 * because the other ranks may be blocked inside MPI. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "comm/world.h"
#include "train/run_config.h"
#include "core/log.h"
#include "core/signals.h"
#include "train/run_guard.h"
#include "train/trainer.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: dealer train CONFIG [section.key=value ...]\n\n"
            "Trains the model CONFIG describes; run it under mpirun (launch/mpirun.sh) for several ranks.\n"
            "Overrides change single keys (optim.lr=3e-4 train.steps=100); `dealer config keys` lists them.\n"
            "Writes run.dir/config.yaml, run.dir/metrics.jsonl and run.dir/ckpt/step_NNNNNNNN.h5; with\n"
            "train.resume=auto (the default) a run continues from run.dir/ckpt/latest.\n\n"
            "Refused before anything is written (exit 2): ranks whose resolved configs differ (the error lists\n"
            "the keys and both values), a run.dir another run holds (run.dir/run.lock names it), and\n"
            "train.resume=never over an old run's checkpoints unless run.overwrite=true (which deletes them).\n"
            "SIGUSR1, SIGTERM and Ctrl-C stop the run at the next step after a checkpoint.\n\n"
            "Exit codes: 0 done, 1 runtime failure, 2 bad config or input, 75 stopped by a signal after a\n"
            "checkpoint (requeue to continue), 76 forced stop.\n");
}

int dl_cmd_train(int argc, char **argv) {
    if (dl_cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    if (dl_cli_positionals_only("train", &argc, argv))
        return 2;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    dl_world world;
    if (dl_world_init(&world, &argc, &argv, 300.0) != DL_OK)
        return dl_cli_report("train", dl_error_status());
    /* Right after MPI starts: a stop signal before this would kill the process. The grace period bounds a stop
     * that cannot finish (a rank stuck in a collective): Slurm's --signal=B:USR1@120 leaves 120 s. */
    dl_signals_install();
    dl_signals_set_grace(100);
    dl_config cfg;
    dl_status loaded = dl_config_load(&cfg, argv[1], argc - 2, argv + 2);
    /* Every rank resolves its own config (mpirun's `A : B` lines and per-rank overrides can differ), so before
     * anything else the ranks agree that all loaded and that all are the same. A failure every rank shares (a bad
     * config file) prints once, from rank 0; a rank with news of its own prints it too. */
    int report = world.rank == 0;
    dl_status s = world.size > 1 ? dl_run_agree_config(&world, loaded == DL_OK, &cfg, &report) : loaded;
    dl_dir_lock lock = {.fd = -1, .path = NULL};
    if (s == DL_OK) {
        dl_log_set_level((dl_log_level)cfg.log.level);
        world.timeout_s = cfg.comm.timeout_s;
        s = dl_run_claim_dir(&world, &cfg, &lock);
        report = world.rank == 0;
    }
    if (s != DL_OK) {
        if (report && world.size > 1)
            fprintf(stderr, "dealer train: error (rank %d): %s\n", world.rank, dl_error_message());
        else if (report)
            dl_cli_report("train", s);
        dl_config_free(&cfg);
        /* A communication failure may leave other ranks inside a collective: only MPI_Abort frees them. */
        if (s == DL_ERR_COMM && world.size > 1)
            dl_world_abort(&world, dl_status_exit_code(s));
        dl_world_finalize(&world);
        return dl_status_exit_code(s);
    }
    s = dl_train(&cfg, &world);
    dl_dir_lock_release(&lock);
    int code = 0;
    if (s == DL_ERR_INTERRUPTED) {
        code = dl_status_exit_code(s);
        dl_comm_barrier(&world, "stop");
    } else if (s != DL_OK) {
        const char *message = dl_error_message();
        int echo = strncmp(message, "another rank failed", 19) != 0;
        if (echo)
            fprintf(stderr, "dealer train: error (rank %d): %s\n", world.rank, message);
        code = dl_status_exit_code(s);
        if (s == DL_ERR_COMM && world.size > 1)
            dl_world_abort(&world, code);
    }
    dl_config_free(&cfg);
    dl_world_finalize(&world);
    return code;
}
