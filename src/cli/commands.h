/* commands.h — the `dealer` subcommands. Each takes argc/argv with argv[0] the command's own name, prints its own
 * --help, and returns a process exit code (0 ok, 1 runtime failure, 2 bad usage or input). */
#ifndef DL_CLI_COMMANDS_H
#define DL_CLI_COMMANDS_H

#include <stddef.h>

#include "core/status.h"

int dl_cmd_train(int argc, char **argv);
int dl_cmd_eval(int argc, char **argv);
int dl_cmd_generate(int argc, char **argv);
int dl_cmd_predict(int argc, char **argv);
int dl_cmd_data(int argc, char **argv);
int dl_cmd_ckpt(int argc, char **argv);
int dl_cmd_config(int argc, char **argv);
int dl_cmd_bench(int argc, char **argv);
int dl_cmd_dpo(int argc, char **argv);
int dl_cmd_tokenizer(int argc, char **argv);

/* Prints the one-line error of the recorded failure as "dealer CMD: error: ..." and returns its exit code. */
int dl_cli_report(const char *command, int status);
/* True when argv[1..] holds -h or --help. */
int dl_cli_wants_help(int argc, char **argv);

/* The tokenizer a checkpoint was trained with: `override` (--tokenizer) when given, else run_dir/tokenizer.json
 * (run_dir: the folder above the checkpoint's ckpt/), else byte-level. It must have the hash the checkpoint
 * recorded (`recorded_hash`, "" = byte-level): DL_ERR_INVALID naming both otherwise. `name` gets what was loaded. */
struct dl_tokenizer;
dl_status dl_cli_checkpoint_tokenizer(const char *ckpt_path, const char *recorded_hash, const char *override,
                                      struct dl_tokenizer **out, char *name, size_t name_cap);

#endif
