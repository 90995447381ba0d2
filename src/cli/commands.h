/* commands.h — the `dealer` subcommands. Each takes argc/argv with argv[0] the command's own name, prints its own
 * --help, and returns a process exit code (0 ok, 1 runtime failure, 2 bad usage or input). */
#ifndef DL_CLI_COMMANDS_H
#define DL_CLI_COMMANDS_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

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
/* True when argv[1..] holds -h or --help before any `--`. */
int dl_cli_wants_help(int argc, char **argv);
/* One subcommand of a command group (`dealer data convert`): run gets argv[0] = its name; usage, when set, is what
 * `--help` anywhere among its arguments prints instead of running it. */
typedef struct dl_cli_subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    void (*usage)(FILE *out);
} dl_cli_subcommand;
/* `dealer GROUP SUB ...` (argv[0] = GROUP): runs the row of subs (ended by a NULL name) named argv[1]. No word or
 * an unknown one prints one line and returns 2; -h, --help or help prints the group's usage. */
int dl_cli_dispatch(const char *group, void (*usage)(FILE *out), const dl_cli_subcommand *subs, int argc,
                    char **argv);
/* Prints "dealer COMMAND: MESSAGE (see dealer COMMAND --help)" as one line and returns 2, the exit code of bad usage. */
int dl_cli_usage_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- options ---------------------------------------------------------------------------------------------------
 * Every command reads its arguments through getopt_long with one table of options, so every command accepts
 * `--name VALUE`, `--name=VALUE`, its short aliases (`-o OUT`, `-oOUT`), and `--` to end the options; options and
 * positional words may come in any order and reach the command in the order given:
 *
 *     static const dl_cli_option options[] = {{"output", 'o', "a file name"}, {"json", OPT_JSON, NULL}, {NULL}};
 *     dl_cli_args a;
 *     dl_cli_args_init(&a, "eval", options, argc, argv);
 *     for (int id; (id = dl_cli_next(&a)) != DL_CLI_END;) {
 *         if (id == DL_CLI_BAD) return 2;                       // the one-line error is printed
 *         if (id == DL_CLI_POSITIONAL) ...a.arg is the word...
 *         else if (id == 'o') out = a.arg;
 *     }
 *
 * Errors are one line each, exit code 2: an unknown option (with the nearest known one when it is close), an
 * abbreviated one (names are matched whole), a missing value, a flag given a value, and a value given as a word of
 * its own that is `--` or one of the command's own long options (`-o --json` is refused as a forgotten value;
 * `--output=--json` names such a file). Words that do not start with '-' (files, `section.key=value` overrides, "-"
 * for standard input) are positional, and so is every word after `--`. */
enum {
    DL_CLI_END = -1,       /* no words left */
    DL_CLI_BAD = -2,       /* a usage error, printed */
    DL_CLI_POSITIONAL = 1, /* a word that is not an option: dl_cli_args.arg */
    DL_CLI_LONG_ONLY = 256 /* the first id of an option without a short alias */
};
enum { DL_CLI_MAX_OPTIONS = 32 };

typedef struct dl_cli_option {
    const char *name;  /* the long name without its dashes: "output" is --output */
    int id;            /* its short alias ('o' for -o), or DL_CLI_LONG_ONLY + n for a long-only option */
    const char *value; /* what its value is, as errors say it ("a file name", "an integer in [1, 1024]"); NULL: a flag */
} dl_cli_option;

typedef struct dl_cli_args {
    const char *command;           /* "data convert": errors read "dealer data convert: ..." */
    const dl_cli_option *options;  /* ends with a row whose name is NULL */
    int argc;
    char **argv;                   /* argv[0] is the command's own name */
    const dl_cli_option *option;   /* the option dl_cli_next returned last, NULL for a positional word */
    const char *arg;               /* its value (NULL for a flag), or the positional word */
    int count;                     /* rows in options; -1 when there are more than DL_CLI_MAX_OPTIONS */
    int options_over;              /* getopt_long has stopped (end or `--`): the rest is positional */
    struct option getopt_table[DL_CLI_MAX_OPTIONS + 1];
    char getopt_shorts[3 + 2 * DL_CLI_MAX_OPTIONS];
} dl_cli_args;

/* Starts reading argv[1..argc) against `options` (resets getopt's global state). */
void dl_cli_args_init(dl_cli_args *a, const char *command, const dl_cli_option *options, int argc, char **argv);
/* The next word: an option's id (value in a->arg), DL_CLI_POSITIONAL, DL_CLI_END, or DL_CLI_BAD (error printed). */
int dl_cli_next(dl_cli_args *a);
/* The next word when it is positional (does not start with '-'), taken; else NULL. For options such as
 * `--data FILE...` whose value runs over several words. */
const char *dl_cli_take_positional(dl_cli_args *a);
/* The current option's value as an integer in [min, max] (decimal digits only), or as a number in [min, max]
 * (finite; max itself excluded when max_open). On a bad value: "dealer CMD: --NAME needs VALUE, got 'TEXT'" and 2;
 * else 0. */
int dl_cli_uint(const dl_cli_args *a, uint64_t min, uint64_t max, uint64_t *out);
int dl_cli_number(const dl_cli_args *a, double min, double max, int max_open, double *out);
/* Prints "dealer CMD: --NAME needs VALUE, got 'TEXT'" for the current option and returns 2 (for checks of its own). */
int dl_cli_bad_value(const dl_cli_args *a);
/* For a command that takes no options: checks that argv[1..*argc) holds none (else the one-line error, and 2) and
 * leaves in argv[1..*argc) its positional words, in order, without the `--` (if any) that ended the options. */
int dl_cli_positionals_only(const char *command, int *argc, char **argv);

/* The tokenizer a checkpoint was trained with: `override` (--tokenizer) when given, else run_dir/tokenizer.json
 * (run_dir: the folder above the checkpoint's ckpt/), else byte-level. It must have the hash the checkpoint
 * recorded (`recorded_hash`, "" = byte-level): DL_ERR_INVALID naming both otherwise. `name` gets what was loaded. */
struct dl_tokenizer;
dl_status dl_cli_checkpoint_tokenizer(const char *ckpt_path, const char *recorded_hash, const char *override,
                                      struct dl_tokenizer **out, char *name, size_t name_cap);

#endif
