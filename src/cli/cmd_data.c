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

static int usage_error(const char *command, const char *fmt, const char *arg) {
    fprintf(stderr, "dealer data %s: ", command);
    fprintf(stderr, fmt, arg ? arg : "");
    fprintf(stderr, " (see dealer data %s --help)\n", command);
    return 2;
}

static int cmd_convert(int argc, char **argv) {
    dl_convert_options opt;
    memset(&opt, 0, sizeof opt);
    opt.seed = 1;
    opt.progress = 1;
    const char *format = NULL, *doc_split = NULL, *libsvm_fields = NULL, *threads = NULL;
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    if (!inputs) {
        fprintf(stderr, "dealer data convert: out of memory\n");
        return 1;
    }
    size_t n_inputs = 0;
    int rc = 0, options_done = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        int takes_value = 1;
        if (options_done || a[0] != '-' || strcmp(a, "-") == 0) {
            inputs[n_inputs++] = a;
            takes_value = 0;
        } else if (strcmp(a, "--") == 0) {
            options_done = 1;
            takes_value = 0;
        } else if (strcmp(a, "--no-progress") == 0) {
            opt.progress = 0;
            takes_value = 0;
        } else if (strcmp(a, "--skip-bad") == 0) {
            opt.skip_bad = 1;
            takes_value = 0;
        } else if (!next) {
            rc = usage_error("convert", "%s needs a value", a);
        } else if (strcmp(a, "--tokenizer") == 0) {
            opt.tokenizer = next;
        } else if (strcmp(a, "--threads") == 0) {
            char *end;
            errno = 0;
            long t = strtol(next, &end, 10);
            if (errno || *end || end == next || t < 1 || t > 1024)
                rc = usage_error("convert", "--threads needs an integer in [1, 1024], got '%s'", next);
            opt.threads = (int)t;
            threads = next;
        } else if (strcmp(a, "--format") == 0) {
            format = next;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            opt.output = next;
        } else if (strcmp(a, "--doc-split") == 0) {
            doc_split = next;
        } else if (strcmp(a, "--libsvm-fields") == 0) {
            libsvm_fields = next;
        } else if (strcmp(a, "--valid-out") == 0) {
            opt.valid_output = next;
        } else if (strcmp(a, "--valid-fraction") == 0) {
            char *end;
            errno = 0;
            opt.valid_fraction = strtod(next, &end);
            if (errno || *end || end == next || !(opt.valid_fraction >= 0.0 && opt.valid_fraction < 1.0))
                rc = usage_error("convert", "--valid-fraction needs a number in [0, 1), got '%s'", next);
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            errno = 0;
            opt.seed = strtoull(next, &end, 10);
            if (errno || *end || end == next || next[0] == '-')
                rc = usage_error("convert", "--seed needs a non-negative integer, got '%s'", next);
        } else {
            rc = usage_error("convert", "unknown option '%s'", a);
        }
        if (takes_value)
            i++;
    }
    if (rc == 0 && !format)
        rc = usage_error("convert", "--format is required (text, libffm, libsvm or jsonl-pairs)%s", NULL);
    if (rc == 0 && dl_convert_parse_format(format, &opt.format) != DL_OK)
        rc = usage_error("convert", "unknown --format '%s' (known: text, libffm, libsvm, jsonl-pairs)", format);
    if (rc == 0 && doc_split && opt.format != DL_CONVERT_TEXT)
        rc = usage_error("convert", "--doc-split applies to --format text only%s", NULL);
    if (rc == 0 && doc_split && dl_convert_parse_doc_split(doc_split, &opt.doc_split) != DL_OK)
        rc = usage_error("convert", "unknown --doc-split '%s' (known: blank, line, file)", doc_split);
    if (rc == 0 && libsvm_fields && opt.format != DL_CONVERT_LIBSVM)
        rc = usage_error("convert", "--libsvm-fields applies to --format libsvm only%s", NULL);
    if (rc == 0 && libsvm_fields) {
        if (strcmp(libsvm_fields, "position") == 0)
            opt.libsvm_field_by_position = 1;
        else if (strcmp(libsvm_fields, "zero") != 0)
            rc = usage_error("convert", "unknown --libsvm-fields '%s' (known: zero, position)", libsvm_fields);
    }
    if (rc == 0 && opt.tokenizer && opt.format != DL_CONVERT_TEXT && opt.format != DL_CONVERT_JSONL_PAIRS)
        rc = usage_error("convert", "--tokenizer applies to --format text and jsonl-pairs only%s", NULL);
    if (rc == 0 && opt.skip_bad && opt.format != DL_CONVERT_JSONL_PAIRS)
        rc = usage_error("convert", "--skip-bad applies to --format jsonl-pairs only%s", NULL);
    if (rc == 0 && threads && opt.format != DL_CONVERT_TEXT && opt.format != DL_CONVERT_JSONL_PAIRS)
        rc = usage_error("convert", "--threads applies to --format text and jsonl-pairs only%s", NULL);
    if (rc == 0 && n_inputs == 0)
        rc = usage_error("convert", "no input files given%s", NULL);
    if (rc == 0 && !opt.output)
        rc = usage_error("convert", "no output file given (-o OUT.tfrecord)%s", NULL);
    if (rc == 0 && opt.valid_fraction > 0.0 && !opt.valid_output)
        rc = usage_error("convert", "--valid-fraction needs --valid-out VALID.tfrecord%s", NULL);
    if (rc == 0 && opt.valid_output && opt.valid_fraction == 0.0)
        rc = usage_error("convert", "--valid-out needs --valid-fraction F > 0%s", NULL);
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
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1]) {
            return usage_error("index", "unknown option '%s'", argv[i]);
        }
    }
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
        return usage_error("index", "no record files given%s", NULL);
    return rc;
}

static int cmd_stat(int argc, char **argv) {
    int files = 0, rc = 0;
    for (int i = 1; i < argc; i++)
        if (argv[i][0] == '-' && argv[i][1])
            return usage_error("stat", "unknown option '%s'", argv[i]);
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
        return usage_error("stat", "no record files given%s", NULL);
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

static int parse_count(const char *text, uint64_t *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end); /* accepts 1000000 and 1e6 */
    if (errno || *end || end == text || !(v >= 1 && v <= 1e18) || v != (double)(uint64_t)v)
        return 0;
    *out = (uint64_t)v;
    return 1;
}

static int cmd_synth(int argc, char **argv) {
    dl_synth_clicks_options opt = {.id_space = 1000000, .progress = 1};
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            if (opt.sample)
                rc = usage_error("synth-clicks", "one SAMPLE only, got a second: '%s'", a);
            opt.sample = a;
        } else if (strcmp(a, "--text") == 0) {
            opt.text = 1;
        } else if (strcmp(a, "--no-progress") == 0) {
            opt.progress = 0;
        } else if (!next) {
            rc = usage_error("synth-clicks", "%s needs a value", a);
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            opt.output = argv[++i];
        } else if (strcmp(a, "--rows") == 0) {
            if (!parse_count(argv[++i], &opt.rows))
                rc = usage_error("synth-clicks", "--rows needs a positive integer, got '%s'", argv[i]);
        } else if (strcmp(a, "--id-space") == 0) {
            if (!parse_count(argv[++i], &opt.id_space) || opt.id_space > ((uint64_t)1 << 31))
                rc = usage_error("synth-clicks", "--id-space needs an integer in [1, 2^31], got '%s'", argv[i]);
        } else {
            rc = usage_error("synth-clicks", "unknown option '%s'", a);
        }
    }
    if (rc == 0 && !opt.sample)
        rc = usage_error("synth-clicks", "no SAMPLE file given%s", NULL);
    if (rc == 0 && !opt.output)
        rc = usage_error("synth-clicks", "no output file given (-o OUT)%s", NULL);
    if (rc == 0 && opt.rows == 0)
        rc = usage_error("synth-clicks", "--rows N is required%s", NULL);
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

static int parse_int_option(const char *name, const char *v, int *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < 8 || x > (1 << 20)) {
        fprintf(stderr, "dealer data make-pairs: %s needs an integer in [8, 1048576], got '%s'\n", name, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int cmd_make_pairs(int argc, char **argv) {
    dl_make_pairs_options opt;
    dl_make_pairs_defaults(&opt);
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            if (opt.input)
                rc = usage_error("make-pairs", "one input text only, got '%s' too", a);
            opt.input = a;
            continue;
        }
        if (!next) {
            rc = usage_error("make-pairs", "%s needs a value", a);
            break;
        }
        i++;
        if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            opt.output = next;
        } else if (strcmp(a, "--valid-out") == 0) {
            opt.valid_output = next;
        } else if (strcmp(a, "--valid-fraction") == 0) {
            char *end;
            errno = 0;
            opt.valid_fraction = strtod(next, &end);
            if (errno || *end || end == next || !(opt.valid_fraction >= 0.0 && opt.valid_fraction < 1.0))
                rc = usage_error("make-pairs", "--valid-fraction needs a number in [0, 1), got '%s'", next);
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            errno = 0;
            opt.seed = strtoull(next, &end, 10);
            if (errno || *end || end == next || next[0] == '-')
                rc = usage_error("make-pairs", "--seed needs a non-negative integer, got '%s'", next);
        } else if (strcmp(a, "--prompt-bytes") == 0) {
            rc = parse_int_option(a, next, &opt.prompt_bytes) ? 2 : 0;
        } else if (strcmp(a, "--response-bytes") == 0) {
            rc = parse_int_option(a, next, &opt.response_bytes) ? 2 : 0;
        } else if (strcmp(a, "--tokenizer") == 0) {
            opt.tokenizer = next;
        } else if (strcmp(a, "--rejected") == 0) {
            if (dl_reject_mode_parse(next, &opt.rejected) != DL_OK)
                rc = usage_error("make-pairs", "unknown --rejected '%s' (known: shuffle, swap, mixed)", next);
        } else {
            rc = usage_error("make-pairs", "unknown option '%s'", a);
        }
    }
    if (rc == 0 && !opt.input)
        rc = usage_error("make-pairs", "no input text given (e.g. data/tinyshakespeare.txt)%s", NULL);
    if (rc == 0 && !opt.output)
        rc = usage_error("make-pairs", "no output file given (-o OUT.tfrecord)%s", NULL);
    if (rc == 0 && opt.valid_fraction > 0.0 && !opt.valid_output)
        rc = usage_error("make-pairs", "--valid-fraction needs --valid-out VALID.tfrecord%s", NULL);
    if (rc == 0 && opt.valid_output && opt.valid_fraction == 0.0)
        rc = usage_error("make-pairs", "--valid-out needs --valid-fraction F > 0%s", NULL);
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
    if (argc < 2) {
        usage_data(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        usage_data(stdout);
        return 0;
    }
    struct {
        const char *name;
        int (*run)(int, char **);
        void (*usage)(FILE *);
    } subs[] = {{"convert", cmd_convert, usage_convert}, {"index", cmd_index, usage_index},
                {"stat", cmd_stat, usage_stat}, {"synth-clicks", cmd_synth, usage_synth},
                {"make-pairs", cmd_make_pairs, usage_make_pairs}};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(sub, subs[i].name) != 0)
            continue;
        if (dl_cli_wants_help(argc - 1, argv + 1)) {
            subs[i].usage(stdout);
            return 0;
        }
        return subs[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "dealer data: unknown command '%s' (known: convert, index, stat, synth-clicks, make-pairs)\n", sub);
    return 2;
}
