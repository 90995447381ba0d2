/* cli_common.c — helpers every subcommand shares: reading options (getopt_long behind one table per command),
 * reporting a failure as one line and the exit code, and finding the tokenizer a checkpoint was trained with.
 *
 * getopt_long runs in glibc's "return in order" mode (optstring "-:..."): positional words come back one by one in
 * the order given, between the options, so a command sees its words exactly as typed, whatever POSIXLY_CORRECT says;
 * the leading ':' and opterr = 0 keep glibc silent so that every error is dealer's own line. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "cli/commands.h"
#include "core/log.h"
#include "core/names.h"
#include "core/status.h"
#include "data/tokenizer.h"

int dl_cli_report(const char *command, int status) {
    fprintf(stderr, "dealer %s: error: %s\n", command, dl_error_message());
    return dl_status_exit_code((dl_status)status);
}

int dl_cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

int dl_cli_dispatch(const char *group, void (*usage)(FILE *out), const dl_cli_subcommand *subs, int argc,
                    char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        usage(stdout);
        return 0;
    }
    char known[256] = "";
    size_t used = 0;
    for (const dl_cli_subcommand *s = subs; s->name; s++) {
        if (strcmp(sub, s->name) == 0) {
            if (s->usage && dl_cli_wants_help(argc - 1, argv + 1)) {
                s->usage(stdout);
                return 0;
            }
            return s->run(argc - 1, argv + 1);
        }
        if (used < sizeof known)
            used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", used ? ", " : "", s->name);
    }
    fprintf(stderr, "dealer %s: unknown command '%s' (known: %s; see dealer %s --help)\n", group, sub, known, group);
    return 2;
}

int dl_cli_usage_error(const char *command, const char *fmt, ...) {
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    fprintf(stderr, "dealer %s: %s (see dealer %s --help)\n", command, message, command);
    return 2;
}

/* ---- options ----------------------------------------------------------------------------------------------------- */

void dl_cli_args_init(dl_cli_args *a, const char *command, const dl_cli_option *options, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->command = command;
    a->options = options;
    a->argc = argc;
    a->argv = argv;
    size_t shorts = 0;
    a->getopt_shorts[shorts++] = '-'; /* positional words come back in order, as option 1 */
    a->getopt_shorts[shorts++] = ':'; /* a missing value comes back as ':', not '?' */
    while (options[a->count].name) {
        if (a->count == DL_CLI_MAX_OPTIONS) {
            a->count = -1;
            return;
        }
        const dl_cli_option *o = &options[a->count];
        a->getopt_table[a->count] = (struct option){o->name, o->value ? required_argument : no_argument, NULL, o->id};
        if (o->id < DL_CLI_LONG_ONLY) {
            a->getopt_shorts[shorts++] = (char)o->id;
            if (o->value)
                a->getopt_shorts[shorts++] = ':';
        }
        a->count++;
    }
    a->getopt_table[a->count] = (struct option){NULL, 0, NULL, 0};
    a->getopt_shorts[shorts] = '\0';
    optind = 0; /* 0, not 1: glibc then also forgets the state of the last scan (another command's argv) */
    opterr = 0;
}

static const dl_cli_option *option_with_id(const dl_cli_args *a, int id) {
    for (int i = 0; i < a->count; i++)
        if (a->options[i].id == id)
            return &a->options[i];
    return NULL;
}

/* "--name" of a word "--name=value", into buf. */
static const char *option_word(const char *word, char *buf, size_t cap) {
    snprintf(buf, cap, "%.*s", (int)strcspn(word, "="), word);
    return buf;
}

/* The option `o` as the user wrote it in `word`: "--name" for a long one, "-c" for a short one (maybe in a cluster). */
static const char *option_as_written(const dl_cli_option *o, const char *word, char *buf, size_t cap) {
    if (word[0] == '-' && word[1] == '-')
        return option_word(word, buf, cap);
    snprintf(buf, cap, "-%c", o->id);
    return buf;
}

static int unknown_option(const dl_cli_args *a, const char *word, const char *meant) {
    char name[128];
    option_word(word, name, sizeof name);
    if (!meant && name[0] == '-' && name[1] == '-') {
        const char *names[DL_CLI_MAX_OPTIONS];
        for (int i = 0; i < a->count; i++)
            names[i] = a->options[i].name;
        meant = dl_name_nearest(name + 2, names, a->count);
    }
    if (meant)
        fprintf(stderr, "dealer %s: unknown option '%s'; did you mean '--%s'? (see dealer %s --help)\n", a->command,
                name, meant, a->command);
    else
        fprintf(stderr, "dealer %s: unknown option '%s' (see dealer %s --help)\n", a->command, name, a->command);
    return DL_CLI_BAD;
}

/* getopt_long's '?' and ':' answers, as one line each. */
static int getopt_error(dl_cli_args *a, int c) {
    const char *word = optind > 0 && optind <= a->argc ? a->argv[optind - 1] : "";
    const dl_cli_option *o = optopt ? option_with_id(a, optopt) : NULL;
    char name[128];
    if (c == ':' && o) { /* the option was the last word */
        fprintf(stderr, "dealer %s: %s needs %s (see dealer %s --help)\n", a->command,
                option_as_written(o, word, name, sizeof name), o->value, a->command);
        return DL_CLI_BAD;
    }
    if (o && word[0] == '-' && word[1] == '-') { /* a flag given a value: --json=1 */
        fprintf(stderr, "dealer %s: --%s takes no value, got '%s' (see dealer %s --help)\n", a->command, o->name, word,
                a->command);
        return DL_CLI_BAD;
    }
    if (optopt) { /* an unknown short option, maybe one letter of a cluster such as -xv */
        snprintf(name, sizeof name, "-%c", optopt);
        return unknown_option(a, name, NULL);
    }
    return unknown_option(a, word, NULL); /* an unknown or ambiguous long option */
}

/* True when word is `--`, --help or one of the command's long options (with or without "=value"): given as the value
 * of the option before it, it is far more likely a forgotten value than a file named so (--name=WORD passes it). */
static int is_own_option(const dl_cli_args *a, const char *word) {
    if (word[0] != '-' || word[1] != '-')
        return 0;
    size_t n = strcspn(word + 2, "=");
    if (n == 0 || (n == 4 && strncmp(word + 2, "help", 4) == 0))
        return 1;
    for (int i = 0; i < a->count; i++)
        if (strlen(a->options[i].name) == n && strncmp(word + 2, a->options[i].name, n) == 0)
            return 1;
    return 0;
}

int dl_cli_next(dl_cli_args *a) {
    a->option = NULL;
    a->arg = NULL;
    if (a->count < 0) {
        fprintf(stderr, "dealer %s: internal error: more than %d options in its table\n", a->command,
                DL_CLI_MAX_OPTIONS);
        return DL_CLI_BAD;
    }
    if (a->options_over) {
        if (optind >= a->argc)
            return DL_CLI_END;
        a->arg = a->argv[optind++];
        return DL_CLI_POSITIONAL;
    }
    int long_index = -1;
    int c = getopt_long(a->argc, a->argv, a->getopt_shorts, a->getopt_table, &long_index);
    if (c == -1) { /* the end, or `--`: glibc leaves optind at the first word after it */
        a->options_over = 1;
        return dl_cli_next(a);
    }
    if (c == 1) {
        a->arg = optarg;
        return DL_CLI_POSITIONAL;
    }
    if (c == '?' || c == ':')
        return getopt_error(a, c);
    const dl_cli_option *o = option_with_id(a, c);
    if (!o)
        return unknown_option(a, a->argv[optind - 1], NULL);
    /* The value came as a word of its own when optarg is that word (after '=' it points into the option's word). */
    int separate_value = o->value && optarg == a->argv[optind - 1];
    if (long_index >= 0) { /* glibc takes any unambiguous prefix; dealer wants whole names, which stay unambiguous */
        const char *word = a->argv[optind - 1 - separate_value];
        size_t n = strcspn(word + 2, "=");
        if (strlen(o->name) != n || strncmp(word + 2, o->name, n) != 0)
            return unknown_option(a, word, o->name);
    }
    if (separate_value && is_own_option(a, optarg)) {
        const char *word = a->argv[optind - 2];
        char name[128];
        fprintf(stderr, "dealer %s: %s needs %s, got the option '%s' (see dealer %s --help)\n", a->command,
                option_as_written(o, word, name, sizeof name), o->value, optarg, a->command);
        return DL_CLI_BAD;
    }
    a->option = o;
    a->arg = optarg;
    return c;
}

const char *dl_cli_take_positional(dl_cli_args *a) {
    if (a->options_over || optind >= a->argc || a->argv[optind][0] == '-')
        return NULL;
    return a->argv[optind++]; /* in-order mode: glibc moves nothing, so the next scan starts after it */
}

int dl_cli_positionals_only(const char *command, int *argc, char **argv) {
    static const dl_cli_option none[] = {{NULL, 0, NULL}};
    dl_cli_args a;
    dl_cli_args_init(&a, command, none, *argc, argv);
    int kept = 1;
    for (int id; (id = dl_cli_next(&a)) != DL_CLI_END;) {
        if (id != DL_CLI_POSITIONAL)
            return 2;
        argv[kept++] = (char *)a.arg; /* never ahead of the scan: only `--` is dropped */
    }
    *argc = kept;
    return 0;
}

int dl_cli_bad_value(const dl_cli_args *a) {
    const char *name = a->option ? a->option->name : "?";
    const char *value = a->option && a->option->value ? a->option->value : "a value";
    fprintf(stderr, "dealer %s: --%s needs %s, got '%s' (see dealer %s --help)\n", a->command, name, value,
            a->arg ? a->arg : "", a->command);
    return 2;
}

int dl_cli_uint(const dl_cli_args *a, uint64_t min, uint64_t max, uint64_t *out) {
    const char *text = a->arg ? a->arg : "";
    char *end = NULL;
    errno = 0;
    unsigned long long v = isdigit((unsigned char)text[0]) ? strtoull(text, &end, 10) : 0;
    if (!isdigit((unsigned char)text[0]) || errno || *end || v < min || v > max)
        return dl_cli_bad_value(a);
    *out = v;
    return 0;
}

int dl_cli_number(const dl_cli_args *a, double min, double max, int max_open, double *out) {
    const char *text = a->arg ? a->arg : "";
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || errno || *end || !isfinite(v) || v < min || v > max || (max_open && v == max))
        return dl_cli_bad_value(a);
    *out = v;
    return 0;
}

/* The run directory of a checkpoint file: the parent of its ckpt/ folder, or the folder holding it. */
static void run_dir_of(const char *ckpt_path, char *dir, size_t cap) {
    snprintf(dir, cap, "%s", ckpt_path);
    char *slash = strrchr(dir, '/');
    if (!slash) {
        snprintf(dir, cap, ".");
        return;
    }
    *slash = '\0';
    const char *base = strrchr(dir, '/');
    base = base ? base + 1 : dir;
    if (strcmp(base, "ckpt") == 0) {
        if (base == dir)
            snprintf(dir, cap, ".");
        else
            dir[base - dir - 1] = '\0';
    }
}

dl_status dl_cli_checkpoint_tokenizer(const char *ckpt_path, const char *recorded_hash, const char *override,
                                      dl_tokenizer **out, char *name, size_t name_cap) {
    DL_REQUIRE(ckpt_path && out && name && name_cap, DL_ERR_INVALID, "dl_cli_checkpoint_tokenizer: NULL argument");
    char dir[4300], path[4400];
    run_dir_of(ckpt_path, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    struct stat st;
    const char *use = override ? override : stat(path, &st) == 0 ? path : "bytes";
    snprintf(name, name_cap, "%s", use);
    DL_CHECK_CTX(dl_tokenizer_load(use, out), "%s", override ? "--tokenizer" : "the run's tokenizer");
    uint64_t want = DL_TOKENIZER_BYTES_HASH;
    if (recorded_hash && recorded_hash[0])
        DL_CHECK_CTX(dl_tokenizer_parse_hash(recorded_hash, &want), "%s: tokenizer_hash", ckpt_path);
    uint64_t have = dl_tokenizer_hash(*out);
    if (have == want)
        return DL_OK;
    if (!(recorded_hash && recorded_hash[0]) && override) {
        /* a checkpoint that recorded none (imported, or older than tokenizers): the user's word stands */
        dl_log(DL_LOG_WARN, "%s records no tokenizer; using %s as told", ckpt_path, override);
        return DL_OK;
    }
    char a[17], b[17];
    dl_tokenizer_hash_hex(want, a);
    dl_tokenizer_hash_hex(have, b);
    dl_tokenizer_free(*out);
    *out = NULL;
    dl_status s = DL_FAIL(DL_ERR_INVALID, "%s was trained with tokenizer %s%s but %s is tokenizer %s", ckpt_path, a,
                          want == DL_TOKENIZER_BYTES_HASH ? " (byte-level)" : "", use, b);
    dl_error_hint("pass the tokenizer the run used (--tokenizer PATH); the run directory keeps it as tokenizer.json");
    return s;
}
