/* cmd_dpo.c — `dealer dpo precompute-ref CONFIG [overrides] [--out FILE]`: the reference log-probs of every
 * preference pair, computed once so that training (dpo.reference: precomputed) holds only the policy in memory.
 * The work is dl_dpo_precompute_reference (src/models/dpo/dpo.h); this file parses the command line, draws progress and
 * prints a summary. It runs in one process (no MPI): a forward pass over the data is cheap next to training. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "comm/world.h"
#include "core/fs.h"
#include "train/run_config.h"
#include "core/log.h"
#include "core/progress.h"
#include "models/dpo/dpo.h"

void openblas_set_num_threads(int num_threads);

static void usage_dpo(FILE *out) {
    fprintf(out, "usage: dealer dpo <command> [options]\n\n"
                 "  precompute-ref   the reference log-probs of every pair, once (for dpo.reference: precomputed)\n\n"
                 "  dealer dpo <command> --help   options of one command\n");
}

static void usage_precompute(FILE *out) {
    fprintf(out,
            "usage: dealer dpo precompute-ref CONFIG [section.key=value ...] [--out FILE]\n\n"
            "Runs the checkpoint model.init_from names (the DPO reference) forward over every preference pair of\n"
            "data.train and data.valid and writes each pair's summed response log-probs, by record, to an HDF5\n"
            "file: dpo.reference_file, or FILE. Train with dpo.reference: precomputed and that file, and only the\n"
            "policy is held in memory. The file remembers the checkpoint, the data and data.seq_len/overlong it was\n"
            "computed with; training with anything else is an error. Runs in one process (threads: train.threads).\n");
}

typedef struct progress_state {
    dl_progress bar;
    char what[32];
    int open;
} progress_state;

static void on_progress(void *ctx, const char *what, uint64_t done, uint64_t total) {
    progress_state *p = ctx;
    if (!p->open || strcmp(p->what, what) != 0) {
        if (p->open)
            dl_progress_end(&p->bar);
        snprintf(p->what, sizeof p->what, "%s", what);
        dl_progress_begin(&p->bar, p->what, total, 0, NULL);
        p->open = 1;
    }
    dl_progress_update(&p->bar, done, done);
}

static const dl_cli_option precompute_options[] = {{"out", 'o', "a file name"}, {NULL, 0, NULL}};

static int cmd_precompute(int argc, char **argv) {
    const char *config_path = NULL, *out = NULL;
    long ranks = dl_world_launched_size();
    if (ranks > 1) { /* every rank would write the same file */
        fprintf(stderr, "dealer dpo precompute-ref: started as one of %ld MPI ranks; run it as a single process "
                        "(without mpirun)\n", ranks);
        return 2;
    }
    char **overrides = calloc((size_t)argc + 1, sizeof *overrides);
    if (!overrides) {
        fprintf(stderr, "dealer dpo precompute-ref: out of memory\n");
        return 1;
    }
    int n_overrides = 0;
    dl_cli_args a;
    dl_cli_args_init(&a, "dpo precompute-ref", precompute_options, argc, argv);
    for (int id; (id = dl_cli_next(&a)) != DL_CLI_END;) {
        if (id == 'o') {
            out = a.arg;
        } else if (id != DL_CLI_POSITIONAL) {
            free(overrides);
            return 2;
        } else if (!config_path) {
            config_path = a.arg;
        } else {
            overrides[n_overrides++] = (char *)a.arg;
        }
    }
    if (!config_path) {
        fprintf(stderr, "dealer dpo precompute-ref: missing CONFIG (see --help)\n");
        free(overrides);
        return 2;
    }
    dl_config cfg;
    dl_status s = dl_config_load(&cfg, config_path, n_overrides, overrides);
    free(overrides);
    if (s != DL_OK) {
        dl_config_free(&cfg);
        return dl_cli_report("dpo precompute-ref", s);
    }
    dl_log_set_level((dl_log_level)cfg.log.level);
    if (cfg.model.kind != DL_MODEL_DPO) {
        fprintf(stderr, "dealer dpo precompute-ref: %s trains model.kind %s, not dpo\n", config_path,
                dl_config_enum_text("model.kind", cfg.model.kind));
        dl_config_free(&cfg);
        return 2;
    }
    if (!out)
        out = cfg.dpo.reference_file;
    /* The reference file is written from the config, the records and the policy checkpoint: none may be it. */
    char policy[4300] = "";
    s = dl_check_output_not_input(out, config_path, "--out");
    for (int i = 0; s == DL_OK && i < cfg.data.train.count; i++)
        s = dl_check_output_not_input(out, cfg.data.train.items[i], "--out");
    for (int i = 0; s == DL_OK && i < cfg.data.valid.count; i++)
        s = dl_check_output_not_input(out, cfg.data.valid.items[i], "--out");
    if (s == DL_OK && dl_dpo_resolve_checkpoint(cfg.model.init_from, policy, sizeof policy) == DL_OK)
        s = dl_check_output_not_input(out, policy, "--out");
    if (s != DL_OK) {
        dl_config_free(&cfg);
        return dl_cli_report("dpo precompute-ref", s);
    }
    if (cfg.train.threads > 0) {
        omp_set_num_threads(cfg.train.threads);
        openblas_set_num_threads(cfg.train.threads);
    }
    const char *device = dl_config_enum_text("device", (int)cfg.device);
    dl_backend be;
    s = dl_backend_open(&be, device ? device : "auto", 0);
    if (s != DL_OK) {
        dl_config_free(&cfg);
        return dl_cli_report("dpo precompute-ref", s);
    }
    dl_loader_stats train = {0}, valid = {0};
    progress_state progress = {0};
    dl_model_setup setup = dl_config_model_setup(&cfg);
    s = dl_dpo_precompute_reference(&setup, &be, out, &train, &valid, on_progress, &progress);
    if (progress.open)
        dl_progress_end(&progress.bar);
    dl_backend_close(&be);
    if (s != DL_OK) {
        dl_config_free(&cfg);
        return dl_cli_report("dpo precompute-ref", s);
    }
    uint64_t train_pairs = train.records - train.unusable - train.dropped - train.skipped;
    printf("wrote reference log-probs of %llu data.train pairs", (unsigned long long)train_pairs);
    if (cfg.data.valid.count > 0)
        printf(" and %llu data.valid pairs",
               (unsigned long long)(valid.records - valid.unusable - valid.dropped - valid.skipped));
    printf(" to %s\n", out);
    printf("long pairs (data.overlong %s, data.seq_len %d): %llu truncated, %llu dropped; %llu unusable\n",
           dl_config_enum_text("data.overlong", (int)cfg.data.overlong), cfg.data.seq_len,
           (unsigned long long)(train.truncated + valid.truncated), (unsigned long long)(train.dropped + valid.dropped),
           (unsigned long long)(train.unusable + valid.unusable));
    dl_config_free(&cfg);
    return 0;
}

int dl_cmd_dpo(int argc, char **argv) {
    static const dl_cli_subcommand subs[] = {{"precompute-ref", cmd_precompute, usage_precompute}, {NULL, NULL, NULL}};
    return dl_cli_dispatch("dpo", usage_dpo, subs, argc, argv);
}
