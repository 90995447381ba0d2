/* main.c — the `dealer` command: picks the BLAS kernel, then dispatches to a subcommand.
 *
 * Before anything else runs (and before MPI starts), dl_blas_select_kernel may re-execute the process with
 * OPENBLAS_CORETYPE set, because OpenBLAS reads that variable once when it loads. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "core/log.h"
#include "ops/blas_runtime.h"
#include "ops/ops.h"

typedef struct dl_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} dl_command;

static const dl_command commands[] = {
    {"train", dl_cmd_train, "train a model from a YAML config: dealer train CONFIG [section.key=value ...]"},
    {"eval", dl_cmd_eval, "evaluate a checkpoint on a dataset"},
    {"generate", dl_cmd_generate, "sample text from a GPT checkpoint"},
    {"predict", dl_cmd_predict, "write click probabilities of an FM/FFM checkpoint for a dataset"},
    {"data", dl_cmd_data, "convert, index and inspect record files"},
    {"ckpt", dl_cmd_ckpt, "list, show, diff, export and import checkpoints"},
    {"config", dl_cmd_config, "show a resolved config or list every key"},
    {"bench", dl_cmd_bench, "measure this machine (gemm: the peak every MFU figure is measured against)"},
    {"dpo", dl_cmd_dpo, "DPO helpers (precompute-ref)"},
    {"tokenizer", dl_cmd_tokenizer, "train, inspect and run byte-level BPE tokenizers (tokenizer.json)"},
};
enum { NUM_COMMANDS = sizeof commands / sizeof commands[0] };

static void print_usage(FILE *out) {
    fprintf(out, "usage: dealer <command> [options]\n\n"
                 "dealer trains GPT, FM/FFM and DPO models across MPI ranks. Commands:\n");
    for (int i = 0; i < NUM_COMMANDS; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n  dealer <command> --help   options of one command (--opt VALUE or --opt=VALUE; -- ends them)\n"
                 "  dealer --version          version, git revision, CUDA, BLAS kernel and CPU kernel variant\n\n"
                 "Exit codes: 0 ok, 1 runtime failure, 2 bad usage or input, 75 stopped by a signal after a\n"
                 "checkpoint (requeue to continue), 76 forced stop.\n");
}

static void print_version(void) {
    int gpus = 0;
    dl_status probe = dl_cuda_device_count(&gpus);
    printf("dealer %s (git %s)\n", DEALER_VERSION, DEALER_GIT_REV);
    printf("cuda: %s", dl_cuda_built() ? "built in" : "not built");
    if (probe != DL_OK)
        printf(", GPU unusable: %s", dl_error_message());
    else if (dl_cuda_built())
        printf(", %d GPU%s found", gpus, gpus == 1 ? "" : "s");
    printf("\nblas: OpenBLAS %s\n", dl_blas_describe());
    printf("cpu kernels: %s (%s; built in:", dl_cpu_variant_name(), dl_cpu_variant_reason());
    for (int i = 0; i < dl_cpu_variant_count(); i++)
        printf(" %s", dl_cpu_variant_at(i));
    printf(")\n");
}

int main(int argc, char **argv) {
    dl_blas_select_kernel(argv);
    if (dl_log_init_from_env() != 0)
        fprintf(stderr, "dealer: warning: DEALER_LOG must be debug, info, warn or error; using info\n");
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    /* The CPU kernel variant is chosen once, here, so a bad DEALER_CPU_VARIANT stops every command up front. */
    dl_status variant = dl_cpu_variant_select();
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        if (variant != DL_OK)
            return dl_cli_report("--version", variant);
        print_version();
        return 0;
    }
    for (int i = 0; i < NUM_COMMANDS; i++)
        if (strcmp(name, commands[i].name) == 0)
            return variant != DL_OK ? dl_cli_report(name, variant) : commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "dealer: unknown command '%s' (run 'dealer --help' for the list)\n", name);
    return 2;
}
