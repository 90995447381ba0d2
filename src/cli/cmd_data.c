/* cmd_data.c — `dealer data {convert,index,stat,synth-clicks,make-pairs}`: make record files from text, rebuild their indexes,
 * show what they hold, and replicate a click sample for benchmarks. The work lives in src/data (convert.h, record.h,
 * stat.h, synth_clicks.h); this file parses options, prints summaries and turns failures into one line and an exit
 * code (0 ok, 1 runtime/IO failure, 2 bad usage or input). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/status.h"
#include "data/convert.h"
#include "data/make_pairs.h"
#include "data/record.h"
#include "data/stat.h"
#include "data/synth_clicks.h"
#include "data/tokenizer.h"

static void usage_data(FILE *out) {
    fprintf(out, "usage: dealer data <command> [options]\n\n"
                 "  convert   turn text, libffm, libsvm or JSONL pair files into a record file (.tfrecord + .idx)\n"
                 "  index     rebuild the .idx of record files by scanning them\n"
                 "  stat      count and describe the records of a file\n"
                 "  synth-clicks  replicate a libffm sample into a large Criteo-like click file (benchmarks)\n"
                 "  make-pairs  build preference pairs (DPO) from plain text such as the bundled Shakespeare\n\n"
                 "  dealer data <command> --help   options of one command\n");
}

static void usage_convert(FILE *out) {
    fprintf(out,
            "usage: dealer data convert --format FORMAT IN... -o OUT.tfrecord [options]\n\n"
            "Writes OUT.tfrecord (TFRecord framing around tf.train.Example) and its index OUT.tfrecord.idx.\n"
            "Nothing appears under OUT unless the whole conversion succeeds. IN may be '-' for standard input.\n\n"
            "formats:\n"
            "  text          token documents, feature 'tokens' (byte-level: token = byte value 0..255, or\n"
            "                the BPE ids of --tokenizer)\n"
            "  libffm        'label field:feature:value ...' lines -> click rows (label, field, feature, value)\n"
            "  libsvm        'label feature:value ...' lines -> click rows (field 0, or see --libsvm-fields)\n"
            "                (click rows: feature ids >= 2^31 are stored hashed, and counted in the summary;\n"
            "                an input without a row is an error, exit 2)\n"
            "  jsonl-pairs   {\"prompt\": ..., \"chosen\": ..., \"rejected\": ...} lines -> preference pairs; or the\n"
            "                conversational form: \"chosen\"/\"rejected\" message lists [{\"role\", \"content\"}, ...]\n"
            "                whose shared prefix is the prompt (or an explicit \"prompt\"), each message rendered\n"
            "                as 'ROLE: CONTENT<|endoftext|>' (docs/data-format.md)\n\n"
            "options:\n"
            "  -o, --output OUT          the record file to write (required)\n"
            "  --doc-split blank|line|file\n"
            "                            text: a document is a block of non-blank lines (blank, the default),\n"
            "                            one line (line) or one whole input file (file)\n"
            "  --libsvm-fields zero|position\n"
            "                            libsvm: every entry in field 0 (zero, the default) or field = the\n"
            "                            entry's position in its line, 0, 1, ... (position)\n"
            "  --valid-fraction F        send each record to the valid file with probability F (0 <= F < 1)\n"
            "  --valid-out VALID         the valid record file (required with --valid-fraction > 0)\n"
            "  --seed N                  seed of the train/valid split (default 1); same seed, same split\n"
            "  --tokenizer PATH          text, jsonl-pairs: tokenise with this tokenizer.json (or vocab.json,\n"
            "                            or a directory holding one; 'bytes' = the byte-level default). Its hash\n"
            "                            is stamped in OUT.tokenizer; training refuses data of another tokenizer\n"
            "  --skip-bad                jsonl-pairs: count and skip malformed lines (the first 10 are named)\n"
            "                            instead of stopping at the first (exit 2)\n"
            "  --threads N               tokenising threads (default: OMP_NUM_THREADS or all cores); the output\n"
            "                            is the same for any N\n"
            "  --no-progress             no progress bar (it is only drawn on a terminal anyway)\n\n"
            "Labels must be 0, 1 or -1 (stored as 0). A malformed line stops the conversion with its file, line\n"
            "and column (exit 2). See docs/data-format.md.\n");
}

static void usage_index(FILE *out) {
    fprintf(out, "usage: dealer data index FILE...\n\n"
                 "Scans each record file, checking every record's CRCs, and writes FILE.idx (the byte offset of each\n"
                 "record) atomically. Readers use the index for random access; without a valid one they scan.\n");
}

static void usage_stat(FILE *out) {
    fprintf(out, "usage: dealer data stat FILE...\n\n"
                 "Reads every record (checking CRCs) and prints the record count and, by kind:\n"
                 "  text    tokens, document length min/median/p90/max and a log2 histogram\n"
                 "  clicks  rows, label balance, fields, distinct features, entries per row\n"
                 "  pairs   pairs and prompt/chosen/rejected length figures\n");
}

/* "1234567" -> "1,234,567". */
static const char *grouped(char *buf, size_t cap, unsigned long long v) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%llu", v);
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

enum {
    OPT_VALID_OUT = DL_CLI_LONG_ONLY, OPT_VALID_FRACTION, OPT_SEED, OPT_TOKENIZER, OPT_FORMAT, OPT_DOC_SPLIT,
    OPT_LIBSVM_FIELDS, OPT_SKIP_BAD, OPT_THREADS, OPT_NO_PROGRESS, OPT_ROWS, OPT_ID_SPACE, OPT_TEXT, OPT_PROMPT_BYTES,
    OPT_RESPONSE_BYTES, OPT_REJECTED
};

/* The options of a record file split into train and valid, which convert and make-pairs share. */
#define SPLIT_OPTIONS                                                                                                  \
    {"output", 'o', "a file name"}, {"valid-out", OPT_VALID_OUT, "a file name"},                                      \
        {"valid-fraction", OPT_VALID_FRACTION, "a number in [0, 1)"}, {"seed", OPT_SEED, "a non-negative integer"},    \
        {"tokenizer", OPT_TOKENIZER, "a path"}

typedef struct split_fields {
    const char **output, **valid_output, **tokenizer;
    double *valid_fraction;
    uint64_t *seed;
} split_fields;

/* Reads the option `id` when it is one of SPLIT_OPTIONS: 0 (read), 2 (a bad value, printed) or -1 (not one). */
static int read_split_option(const dl_cli_args *a, int id, split_fields f) {
    if (id == 'o')
        *f.output = a->arg;
    else if (id == OPT_VALID_OUT)
        *f.valid_output = a->arg;
    else if (id == OPT_TOKENIZER)
        *f.tokenizer = a->arg;
    else if (id == OPT_VALID_FRACTION)
        return dl_cli_number(a, 0.0, 1.0, 1, f.valid_fraction);
    else if (id == OPT_SEED)
        return dl_cli_uint(a, 0, UINT64_MAX, f.seed);
    else
        return -1;
    return 0;
}

/* The split's options agree: an output, and a valid file exactly when a fraction goes to it. 0 or 2 (printed). */
static int check_split(const char *command, const char *output, const char *valid_output, double valid_fraction) {
    if (!output)
        return dl_cli_usage_error(command, "no output file given (-o OUT.tfrecord)");
    if (valid_fraction > 0.0 && !valid_output)
        return dl_cli_usage_error(command, "--valid-fraction needs --valid-out VALID.tfrecord");
    if (valid_output && valid_fraction == 0.0)
        return dl_cli_usage_error(command, "--valid-out needs --valid-fraction F > 0");
    return 0;
}

static const dl_cli_option convert_options[] = {SPLIT_OPTIONS,
                                                {"format", OPT_FORMAT, "a format (text, libffm, libsvm, jsonl-pairs)"},
                                                {"doc-split", OPT_DOC_SPLIT, "a value (blank, line or file)"},
                                                {"libsvm-fields", OPT_LIBSVM_FIELDS, "a value (zero or position)"},
                                                {"skip-bad", OPT_SKIP_BAD, NULL},
                                                {"threads", OPT_THREADS, "an integer in [1, 1024]"},
                                                {"no-progress", OPT_NO_PROGRESS, NULL},
                                                {NULL, 0, NULL}};

static int cmd_convert(int argc, char **argv) {
    dl_convert_options opt;
    memset(&opt, 0, sizeof opt);
    opt.seed = 1;
    opt.progress = 1;
    const char *format = NULL, *doc_split = NULL, *libsvm_fields = NULL;
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    if (!inputs) {
        fprintf(stderr, "dealer data convert: out of memory\n");
        return 1;
    }
    size_t n_inputs = 0;
    int rc = 0, threads_given = 0;
    split_fields split = {&opt.output, &opt.valid_output, &opt.tokenizer, &opt.valid_fraction, &opt.seed};
    uint64_t threads = 0;
    dl_cli_args args;
    dl_cli_args_init(&args, "data convert", convert_options, argc, argv);
    for (int id; rc == 0 && (id = dl_cli_next(&args)) != DL_CLI_END;) {
        if (id == DL_CLI_POSITIONAL)
            inputs[n_inputs++] = args.arg;
        else if (id == OPT_NO_PROGRESS)
            opt.progress = 0;
        else if (id == OPT_SKIP_BAD)
            opt.skip_bad = 1;
        else if (id == OPT_THREADS) {
            rc = dl_cli_uint(&args, 1, 1024, &threads);
            opt.threads = (int)threads;
            threads_given = 1;
        } else if (id == OPT_FORMAT)
            format = args.arg;
        else if (id == OPT_DOC_SPLIT)
            doc_split = args.arg;
        else if (id == OPT_LIBSVM_FIELDS)
            libsvm_fields = args.arg;
        else if (id == DL_CLI_BAD || (rc = read_split_option(&args, id, split)) < 0)
            rc = 2;
    }
    const char *command = "data convert";
    if (rc == 0 && !format)
        rc = dl_cli_usage_error(command, "--format is required (text, libffm, libsvm or jsonl-pairs)");
    if (rc == 0 && dl_convert_parse_format(format, &opt.format) != DL_OK)
        rc = dl_cli_usage_error(command, "unknown --format '%s' (known: text, libffm, libsvm, jsonl-pairs)", format);
    if (rc == 0 && doc_split && opt.format != DL_CONVERT_TEXT)
        rc = dl_cli_usage_error(command, "--doc-split applies to --format text only");
    if (rc == 0 && doc_split && dl_convert_parse_doc_split(doc_split, &opt.doc_split) != DL_OK)
        rc = dl_cli_usage_error(command, "unknown --doc-split '%s' (known: blank, line, file)", doc_split);
    if (rc == 0 && libsvm_fields && opt.format != DL_CONVERT_LIBSVM)
        rc = dl_cli_usage_error(command, "--libsvm-fields applies to --format libsvm only");
    if (rc == 0 && libsvm_fields) {
        if (strcmp(libsvm_fields, "position") == 0)
            opt.libsvm_field_by_position = 1;
        else if (strcmp(libsvm_fields, "zero") != 0)
            rc = dl_cli_usage_error(command, "unknown --libsvm-fields '%s' (known: zero, position)", libsvm_fields);
    }
    int tokenised = opt.format == DL_CONVERT_TEXT || opt.format == DL_CONVERT_JSONL_PAIRS;
    if (rc == 0 && opt.tokenizer && !tokenised)
        rc = dl_cli_usage_error(command, "--tokenizer applies to --format text and jsonl-pairs only");
    if (rc == 0 && opt.skip_bad && opt.format != DL_CONVERT_JSONL_PAIRS)
        rc = dl_cli_usage_error(command, "--skip-bad applies to --format jsonl-pairs only");
    if (rc == 0 && threads_given && !tokenised)
        rc = dl_cli_usage_error(command, "--threads applies to --format text and jsonl-pairs only");
    if (rc == 0 && n_inputs == 0)
        rc = dl_cli_usage_error(command, "no input files given");
    if (rc == 0)
        rc = check_split(command, opt.output, opt.valid_output, opt.valid_fraction);
    if (rc != 0) {
        free(inputs);
        return rc;
    }
    opt.inputs = inputs;
    opt.num_inputs = n_inputs;
    dl_convert_result res;
    dl_status s = dl_convert(&opt, &res);
    free(inputs);
    if (s != DL_OK)
        return dl_cli_report("data convert", s);
    char a[32], b[32], c[32];
    printf("wrote %s records to %s (%s bytes)", grouped(a, sizeof a, res.records), opt.output,
           grouped(b, sizeof b, res.output_bytes));
    if (opt.valid_output)
        printf(" and %s to %s (%s bytes)", grouped(a, sizeof a, res.valid_records), opt.valid_output,
               grouped(c, sizeof c, res.valid_bytes));
    printf("\nread %s lines (%s blank), %s bytes", grouped(a, sizeof a, res.lines),
           grouped(b, sizeof b, res.blank_lines), grouped(c, sizeof c, res.input_bytes));
    if (opt.format == DL_CONVERT_TEXT || opt.format == DL_CONVERT_JSONL_PAIRS) {
        char hex[17];
        dl_tokenizer_hash_hex(res.tokenizer_hash, hex);
        printf("; %s tokens (tokenizer %s)", grouped(a, sizeof a, res.tokens), hex);
    }
    if (opt.format == DL_CONVERT_LIBFFM || opt.format == DL_CONVERT_LIBSVM)
        printf("; %s feature ids at or above 2^31 hashed", grouped(a, sizeof a, res.hashed_ids));
    printf("\n");
    if (res.skipped)
        fprintf(stderr, "dealer data convert: warning: skipped %s malformed line%s (--skip-bad)\n",
                grouped(a, sizeof a, res.skipped), res.skipped == 1 ? "" : "s");
    if (res.records + res.valid_records == 0)
        fprintf(stderr, "dealer data convert: warning: the inputs held no records\n");
    return 0;
}

static int cmd_index(int argc, char **argv) {
    int files = 0, rc = 0;
    if (dl_cli_positionals_only("data index", &argc, argv))
        return 2;
    for (int i = 1; i < argc; i++) {
        files++;
        uint64_t count = 0;
        dl_status s = dl_record_index_build(argv[i], &count);
        if (s != DL_OK) {
            int code = dl_cli_report("data index", s);
            if (rc == 0)
                rc = code;
            continue;
        }
        char a[32];
        printf("%s: %s records, index %s.idx\n", argv[i], grouped(a, sizeof a, count), argv[i]);
    }
    if (files == 0)
        return dl_cli_usage_error("data index", "no record files given");
    return rc;
}

static int cmd_stat(int argc, char **argv) {
    int files = 0, rc = 0;
    if (dl_cli_positionals_only("data stat", &argc, argv))
        return 2;
    for (int i = 1; i < argc; i++) {
        dl_data_stats st;
        dl_status s = dl_data_stat(argv[i], &st);
        if (s != DL_OK) {
            int code = dl_cli_report("data stat", s);
            if (rc == 0)
                rc = code;
            continue;
        }
        if (files++)
            printf("\n");
        dl_data_stats_print(&st, argv[i], stdout);
    }
    if (files == 0 && rc == 0)
        return dl_cli_usage_error("data stat", "no record files given");
    return rc;
}

static void usage_synth(FILE *out) {
    fprintf(out,
            "usage: dealer data synth-clicks SAMPLE -o OUT --rows N [options]\n\n"
            "Replicates SAMPLE (libffm text: 'label field:feature:value ...') until OUT holds N rows. Copy c of a\n"
            "sample row keeps its label, fields and values; every feature id is re-hashed per copy\n"
            "(id' = hash(c, id) mod the id space), so each copy brings fresh features, as a big hashed Criteo file\n"
            "does. For throughput benchmarks. The same inputs give the same bytes.\n\n"
            "options:\n"
            "  -o, --output OUT     the file to write (a record file with its .idx, or libffm text with --text)\n"
            "  --rows N             rows to write (required)\n"
            "  --id-space M         feature ids of the copies are in [0, M) (default 1000000)\n"
            "  --text               write libffm text (for libffm or xLearn) instead of records\n"
            "  --no-progress        no progress bar\n");
}

/* A row count: an integer, also written as 1e6. 0 or 2 (printed). */
static int read_count(const dl_cli_args *a, uint64_t max, uint64_t *out) {
    char *end;
    errno = 0;
    double v = strtod(a->arg, &end);
    if (errno || *end || end == a->arg || !(v >= 1 && v <= (double)max) || v != (double)(uint64_t)v)
        return dl_cli_bad_value(a);
    *out = (uint64_t)v;
    return 0;
}

static const dl_cli_option synth_options[] = {{"output", 'o', "a file name"},
                                              {"rows", OPT_ROWS, "a positive integer"},
                                              {"id-space", OPT_ID_SPACE, "an integer in [1, 2^31]"},
                                              {"text", OPT_TEXT, NULL},
                                              {"no-progress", OPT_NO_PROGRESS, NULL},
                                              {NULL, 0, NULL}};

static int cmd_synth(int argc, char **argv) {
    dl_synth_clicks_options opt = {.id_space = 1000000, .progress = 1};
    const char *command = "data synth-clicks";
    int rc = 0;
    dl_cli_args args;
    dl_cli_args_init(&args, command, synth_options, argc, argv);
    for (int id; rc == 0 && (id = dl_cli_next(&args)) != DL_CLI_END;) {
        if (id == DL_CLI_POSITIONAL) {
            if (opt.sample)
                rc = dl_cli_usage_error(command, "one SAMPLE only, got a second: '%s'", args.arg);
            opt.sample = args.arg;
        } else if (id == OPT_TEXT) {
            opt.text = 1;
        } else if (id == OPT_NO_PROGRESS) {
            opt.progress = 0;
        } else if (id == 'o') {
            opt.output = args.arg;
        } else if (id == OPT_ROWS) {
            rc = read_count(&args, (uint64_t)1e18, &opt.rows);
        } else if (id == OPT_ID_SPACE) {
            rc = read_count(&args, (uint64_t)1 << 31, &opt.id_space);
        } else {
            rc = 2;
        }
    }
    if (rc == 0 && !opt.sample)
        rc = dl_cli_usage_error(command, "no SAMPLE file given");
    if (rc == 0 && !opt.output)
        rc = dl_cli_usage_error(command, "no output file given (-o OUT)");
    if (rc == 0 && opt.rows == 0)
        rc = dl_cli_usage_error(command, "--rows N is required");
    if (rc != 0)
        return rc;
    dl_synth_clicks_result res;
    dl_status s = dl_synth_clicks(&opt, &res);
    if (s != DL_OK)
        return dl_cli_report("data synth-clicks", s);
    char a[32], b[32], c[32], d[32];
    printf("wrote %s rows (%s entries) to %s (%s bytes) from %s sample rows\n", grouped(a, sizeof a, res.rows),
           grouped(b, sizeof b, res.entries), opt.output, grouped(c, sizeof c, res.bytes),
           grouped(d, sizeof d, res.sample_rows));
    return 0;
}

static void usage_make_pairs(FILE *out) {
    fprintf(out,
            "usage: dealer data make-pairs TEXT -o OUT.tfrecord [--valid-out VALID.tfrecord --valid-fraction F]\n"
            "                              [--prompt-bytes N] [--response-bytes N] [--rejected MODE] [--seed N]\n"
            "                              [--tokenizer PATH]\n\n"
            "Cuts TEXT (e.g. data/tinyshakespeare.txt) into speeches at blank lines and makes one preference pair of\n"
            "each long enough speech: prompt = the speaker line and the speech's opening (about N bytes, default\n"
            "40), chosen = its true continuation (about N bytes, default 64), rejected = a corrupted continuation:\n"
            "  shuffle   the same words in a random order, at least half of them moved (the default)\n"
            "  swap      the continuation of another speech\n"
            "  mixed     one or the other per pair\n"
            "Records are pairs (prompt, chosen, rejected) as `data convert --format jsonl-pairs` writes: byte-level,\n"
            "or tokenised with --tokenizer PATH (a tokenizer.json; its hash goes to OUT.tokenizer).\n"
            "--valid-fraction F holds out each pair with probability F (seeded, reproducible). See docs/dpo.md.\n");
}

static const dl_cli_option make_pairs_options[] = {SPLIT_OPTIONS,
                                                   {"prompt-bytes", OPT_PROMPT_BYTES, "an integer in [8, 1048576]"},
                                                   {"response-bytes", OPT_RESPONSE_BYTES, "an integer in [8, 1048576]"},
                                                   {"rejected", OPT_REJECTED, "a mode (shuffle, swap or mixed)"},
                                                   {NULL, 0, NULL}};

static int cmd_make_pairs(int argc, char **argv) {
    dl_make_pairs_options opt;
    dl_make_pairs_defaults(&opt);
    const char *command = "data make-pairs";
    split_fields split = {&opt.output, &opt.valid_output, &opt.tokenizer, &opt.valid_fraction, &opt.seed};
    int rc = 0;
    dl_cli_args args;
    dl_cli_args_init(&args, command, make_pairs_options, argc, argv);
    for (int id; rc == 0 && (id = dl_cli_next(&args)) != DL_CLI_END;) {
        uint64_t bytes = 0;
        if (id == DL_CLI_POSITIONAL) {
            if (opt.input)
                rc = dl_cli_usage_error(command, "one input text only, got '%s' too", args.arg);
            opt.input = args.arg;
        } else if (id == OPT_PROMPT_BYTES || id == OPT_RESPONSE_BYTES) {
            rc = dl_cli_uint(&args, 8, 1 << 20, &bytes);
            *(id == OPT_PROMPT_BYTES ? &opt.prompt_bytes : &opt.response_bytes) = (int)bytes;
        } else if (id == OPT_REJECTED) {
            if (dl_reject_mode_parse(args.arg, &opt.rejected) != DL_OK)
                rc = dl_cli_usage_error(command, "unknown --rejected '%s' (known: shuffle, swap, mixed)", args.arg);
        } else if (id == DL_CLI_BAD || (rc = read_split_option(&args, id, split)) < 0) {
            rc = 2;
        }
    }
    if (rc == 0 && !opt.input)
        rc = dl_cli_usage_error(command, "no input text given (e.g. data/tinyshakespeare.txt)");
    if (rc == 0)
        rc = check_split(command, opt.output, opt.valid_output, opt.valid_fraction);
    if (rc != 0)
        return rc;
    dl_make_pairs_result res;
    dl_status s = dl_make_pairs(&opt, &res);
    if (s != DL_OK)
        return dl_cli_report("data make-pairs", s);
    char a[32], b[32], c[32], d[32];
    printf("wrote %s pairs to %s", grouped(a, sizeof a, res.pairs), opt.output);
    if (opt.valid_output)
        printf(" and %s to %s", grouped(b, sizeof b, res.valid_pairs), opt.valid_output);
    printf("\nread %s speeches (%s too short); rejected sides: %s shuffled, %s from another speech\n",
           grouped(a, sizeof a, res.speeches), grouped(b, sizeof b, res.too_short),
           grouped(c, sizeof c, res.shuffled), grouped(d, sizeof d, res.swapped));
    return 0;
}

int dl_cmd_data(int argc, char **argv) {
    static const dl_cli_subcommand subs[] = {{"convert", cmd_convert, usage_convert}, {"index", cmd_index, usage_index},
                                             {"stat", cmd_stat, usage_stat}, {"synth-clicks", cmd_synth, usage_synth},
                                             {"make-pairs", cmd_make_pairs, usage_make_pairs}, {NULL, NULL, NULL}};
    return dl_cli_dispatch("data", usage_data, subs, argc, argv);
}
