/* cmd_tokenizer.c — `dealer tokenizer {train,encode,decode,stat}`: learn a byte-level BPE vocabulary, and look at
 * what a tokenizer does to a text. The work lives in src/data/tokenizer.h; this file parses options and prints. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/fs.h"
#include "core/status.h"
#include "data/tokenizer.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: dealer tokenizer <command> [options]\n\n"
            "  train    learn byte-level BPE merges from text files and write a Hugging Face tokenizer.json\n"
            "  encode   print the token ids of a text (one line, space-separated)\n"
            "  decode   print the text of token ids\n"
            "  stat     describe a tokenizer (kind, vocabulary, merges, added tokens, hash) and, given text,\n"
            "           how many tokens and bytes per token it makes\n\n"
            "TOKENIZER is a tokenizer.json, a vocab.json (merges.txt beside it), a directory holding either, or\n"
            "'bytes' (the byte-level default). Ids equal Hugging Face `tokenizers`' for the same file.\n"
            "See docs/tokenizer.md.\n\n"
            "  dealer tokenizer <command> --help   options of one command\n");
}

static void usage_train(FILE *out) {
    fprintf(out,
            "usage: dealer tokenizer train FILE... -o tokenizer.json --vocab-size N [options]\n\n"
            "Learns byte-level BPE (GPT-2 pre-tokenizer, all 256 bytes as the initial alphabet) with the rules of\n"
            "Hugging Face `tokenizers`' BpeTrainer: each line (with its line ending) is a sequence, the most\n"
            "frequent adjacent pair is merged first (the smaller id pair among equals). The output loads in\n"
            "`tokenizers.Tokenizer.from_file` and gives the same ids there as in dealer. FILE may be '-'.\n\n"
            "options:\n"
            "  -o, --output PATH       the tokenizer.json to write (atomically)\n"
            "  --vocab-size N          total vocabulary: special tokens + 256 bytes + merges (required)\n"
            "  --special TOKEN         a special token, ids 0.. in the order given (repeatable; e.g.\n"
            "                          --special '<|endoftext|>')\n"
            "  --min-frequency N       never merge a pair seen fewer than N times (default 0: no limit)\n"
            "  --no-progress           no progress line\n");
}

static void usage_encode(FILE *out) {
    fprintf(out, "usage: dealer tokenizer encode TOKENIZER [TEXT | --file PATH]\n\n"
                 "Prints the ids of TEXT (or of the bytes of PATH, '-' for standard input) on one line.\n"
                 "  --tokens    print each id with its bytes as id:'text' instead\n");
}

static void usage_decode(FILE *out) {
    fprintf(out, "usage: dealer tokenizer decode TOKENIZER [ID...]\n\n"
                 "Writes the bytes of the ids (from the arguments, or whitespace-separated on standard input when\n"
                 "none are given) to standard output, exactly, without adding a newline.\n");
}

static void usage_stat(FILE *out) {
    fprintf(out, "usage: dealer tokenizer stat TOKENIZER [FILE...]\n\n"
                 "Prints the tokenizer's kind, vocabulary size, merges, added tokens and hash; with FILEs, the tokens\n"
                 "they encode to and the bytes per token.\n");
}

static int fail(const char *cmd, dl_status s) {
    char name[64];
    snprintf(name, sizeof name, "tokenizer %s", cmd);
    return dl_cli_report(name, s);
}


/* Reads PATH ("-" = stdin) whole. */
static dl_status slurp(const char *path, uint8_t **data, size_t *len) {
    if (strcmp(path, "-") != 0) {
        FILE *fp = fopen(path, "rb");
        if (!fp)
            return dl_open_failure(path, errno, "check the input path");
        fclose(fp);
        return dl_read_file(path, data, len);
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap + 1);
    if (!buf)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory reading standard input");
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, stdin)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *grown = realloc(buf, cap * 2 + 1);
            if (!grown) {
                free(buf);
                return DL_FAIL(DL_ERR_NOMEM, "out of memory reading standard input");
            }
            buf = grown;
            cap *= 2;
        }
    }
    if (ferror(stdin)) {
        free(buf);
        return DL_FAIL(DL_ERR_IO, "reading standard input: %s", strerror(errno));
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return DL_OK;
}

static int parse_long(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

enum { OPT_VOCAB_SIZE = DL_CLI_LONG_ONLY, OPT_SPECIAL, OPT_MIN_FREQUENCY, OPT_NO_PROGRESS, OPT_FILE, OPT_TOKENS };
static const dl_cli_option train_options[] = {{"output", 'o', "a file name"},
                                              {"vocab-size", OPT_VOCAB_SIZE, "an integer in [1, 16777216]"},
                                              {"special", OPT_SPECIAL, "a non-empty token"},
                                              {"min-frequency", OPT_MIN_FREQUENCY, "a non-negative integer"},
                                              {"no-progress", OPT_NO_PROGRESS, NULL},
                                              {NULL, 0, NULL}};
static const dl_cli_option encode_options[] = {{"file", OPT_FILE, "a path"}, {"tokens", OPT_TOKENS, NULL}, {NULL, 0, NULL}};

static int cmd_train(int argc, char **argv) {
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    const char **special = calloc((size_t)argc + 1, sizeof *special);
    if (!inputs || !special) {
        free(inputs);
        free(special);
        fprintf(stderr, "dealer tokenizer train: out of memory\n");
        return 1;
    }
    dl_tokenizer_train_options opt = {0};
    opt.progress = 1;
    const char *output = NULL;
    uint64_t v;
    int rc = 0, have_vocab = 0;
    dl_cli_args a;
    dl_cli_args_init(&a, "tokenizer train", train_options, argc, argv);
    for (int id; rc == 0 && (id = dl_cli_next(&a)) != DL_CLI_END;) {
        if (id == DL_CLI_POSITIONAL) {
            inputs[opt.num_inputs++] = a.arg;
        } else if (id == OPT_NO_PROGRESS) {
            opt.progress = 0;
        } else if (id == 'o') {
            output = a.arg;
        } else if (id == OPT_VOCAB_SIZE) {
            rc = dl_cli_uint(&a, 1, DL_TOKENIZER_MAX_VOCAB, &v);
            opt.vocab_size = (int32_t)v;
            have_vocab = 1;
        } else if (id == OPT_SPECIAL) {
            rc = a.arg[0] ? 0 : dl_cli_bad_value(&a);
            special[opt.num_special++] = a.arg;
        } else if (id == OPT_MIN_FREQUENCY) {
            rc = dl_cli_uint(&a, 0, (uint64_t)1 << 62, &v);
            opt.min_frequency = v;
        } else {
            rc = 2;
        }
    }
    if (rc == 0 && opt.num_inputs == 0)
        rc = dl_cli_usage_error("tokenizer train", "no input files given");
    if (rc == 0 && !output)
        rc = dl_cli_usage_error("tokenizer train", "no output given (-o tokenizer.json)");
    if (rc == 0 && !have_vocab)
        rc = dl_cli_usage_error("tokenizer train", "--vocab-size is required");
    if (rc == 0) {
        opt.inputs = inputs;
        opt.special = special;
        dl_tokenizer *tok = NULL;
        dl_status s = dl_tokenizer_train(&opt, &tok);
        if (s == DL_OK)
            s = dl_tokenizer_save(tok, output);
        if (s == DL_OK) {
            char hex[17];
            dl_tokenizer_hash_hex(dl_tokenizer_hash(tok), hex);
            printf("wrote %s: vocabulary %d (%zu special, 256 bytes, %zu merges), hash %s\n", output,
                   (int)dl_tokenizer_vocab_size(tok), opt.num_special, dl_tokenizer_num_merges(tok), hex);
        } else {
            rc = fail("train", s);
        }
        dl_tokenizer_free(tok);
    }
    free(inputs);
    free(special);
    return rc;
}

static int cmd_encode(int argc, char **argv) {
    const char *tok_path = NULL, *text = NULL, *file = NULL;
    int show_tokens = 0;
    dl_cli_args a;
    dl_cli_args_init(&a, "tokenizer encode", encode_options, argc, argv);
    for (int id; (id = dl_cli_next(&a)) != DL_CLI_END;) {
        if (id == OPT_FILE)
            file = a.arg;
        else if (id == OPT_TOKENS)
            show_tokens = 1;
        else if (id != DL_CLI_POSITIONAL)
            return 2;
        else if (!tok_path)
            tok_path = a.arg;
        else if (!text)
            text = a.arg;
        else
            return dl_cli_usage_error("tokenizer encode", "unexpected argument '%s'", a.arg);
    }
    if (!tok_path)
        return dl_cli_usage_error("tokenizer encode", "no tokenizer given");
    if (!!text == !!file)
        return dl_cli_usage_error("tokenizer encode", "give either TEXT or --file PATH");
    dl_tokenizer *tok = NULL;
    dl_status s = dl_tokenizer_load(tok_path, &tok);
    if (s != DL_OK)
        return fail("encode", s);
    uint8_t *data = NULL;
    size_t len = 0;
    if (file)
        s = slurp(file, &data, &len);
    dl_i32_array ids = {0};
    if (s == DL_OK)
        s = dl_tokenizer_encode(tok, file ? (const void *)data : text, file ? len : strlen(text), &ids);
    for (size_t i = 0; s == DL_OK && i < ids.len; i++) {
        if (show_tokens) {
            const uint8_t *b;
            size_t k;
            s = dl_tokenizer_token_bytes(tok, ids.data[i], &b, &k);
            printf("%s%d:'", i ? " " : "", (int)ids.data[i]);
            for (size_t j = 0; s == DL_OK && j < k; j++)
                if (b[j] >= 0x20 && b[j] < 0x7F && b[j] != '\'' && b[j] != '\\')
                    putchar(b[j]);
                else
                    printf("\\x%02x", b[j]);
            putchar('\'');
        } else {
            printf(i ? " %d" : "%d", (int)ids.data[i]);
        }
    }
    if (s == DL_OK)
        putchar('\n');
    if (s == DL_OK && fflush(stdout) != 0)
        s = DL_FAIL(DL_ERR_IO, "writing standard output: %s", strerror(errno));
    int rc = s == DL_OK ? 0 : fail("encode", s);
    dl_i32_array_free(&ids);
    free(data);
    dl_tokenizer_free(tok);
    return rc;
}

static int cmd_decode(int argc, char **argv) {
    if (dl_cli_positionals_only("tokenizer decode", &argc, argv))
        return 2;
    if (argc < 2)
        return dl_cli_usage_error("tokenizer decode", "no tokenizer given");
    dl_i32_array ids = {0};
    dl_status s = DL_OK;
    long long v;
    for (int i = 2; i < argc && s == DL_OK; i++) {
        if (!parse_long(argv[i], 0, INT32_MAX, &v)) {
            dl_i32_array_free(&ids);
            return dl_cli_usage_error("tokenizer decode", "'%s' is not a token id (a non-negative integer)", argv[i]);
        }
        s = dl_i32_array_push(&ids, (int32_t)v);
    }
    if (argc == 2) {
        char word[64];
        int got;
        size_t n = 0;
        while (s == DL_OK && (got = scanf("%63s", word)) == 1) {
            n++;
            if (!parse_long(word, 0, INT32_MAX, &v)) {
                dl_i32_array_free(&ids);
                fprintf(stderr, "dealer tokenizer decode: <stdin>: item %zu '%s' is not a token id\n", n, word);
                return 2;
            }
            s = dl_i32_array_push(&ids, (int32_t)v);
        }
    }
    dl_tokenizer *tok = NULL;
    if (s == DL_OK)
        s = dl_tokenizer_load(argv[1], &tok);
    char *text = NULL;
    size_t len = 0;
    if (s == DL_OK)
        s = dl_tokenizer_decode(tok, ids.data, ids.len, &text, &len);
    if (s == DL_OK && (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0))
        s = DL_FAIL(DL_ERR_IO, "writing standard output: %s", strerror(errno));
    int rc = s == DL_OK ? 0 : fail("decode", s);
    free(text);
    dl_i32_array_free(&ids);
    dl_tokenizer_free(tok);
    return rc;
}

static int cmd_stat(int argc, char **argv) {
    if (dl_cli_positionals_only("tokenizer stat", &argc, argv))
        return 2;
    if (argc < 2)
        return dl_cli_usage_error("tokenizer stat", "no tokenizer given");
    dl_tokenizer *tok = NULL;
    dl_status s = dl_tokenizer_load(argv[1], &tok);
    if (s != DL_OK)
        return fail("stat", s);
    char hex[17];
    dl_tokenizer_hash_hex(dl_tokenizer_hash(tok), hex);
    printf("tokenizer  %s\nkind       %s\nvocab      %d\nmerges     %zu\nadded      %zu\nhash       %s\n", argv[1],
           dl_tokenizer_kind_name(tok), (int)dl_tokenizer_vocab_size(tok), dl_tokenizer_num_merges(tok),
           dl_tokenizer_num_added(tok), hex);
    int32_t eos = dl_tokenizer_eos_id(tok);
    if (eos >= 0)
        printf("eos        <|endoftext|> = %d\n", (int)eos);
    dl_i32_array ids = {0};
    for (int i = 2; i < argc && s == DL_OK; i++) {
        uint8_t *data = NULL;
        size_t len = 0;
        s = slurp(argv[i], &data, &len);
        if (s == DL_OK)
            s = dl_tokenizer_encode(tok, data, len, &ids);
        if (s == DL_OK)
            printf("%s: %zu bytes -> %zu tokens (%.3f bytes/token)\n", argv[i], len, ids.len,
                   ids.len ? (double)len / (double)ids.len : 0.0);
        free(data);
    }
    int rc = s == DL_OK ? 0 : fail("stat", s);
    dl_i32_array_free(&ids);
    dl_tokenizer_free(tok);
    return rc;
}

int dl_cmd_tokenizer(int argc, char **argv) {
    static const dl_cli_subcommand subs[] = {{"train", cmd_train, usage_train}, {"encode", cmd_encode, usage_encode},
                                             {"decode", cmd_decode, usage_decode}, {"stat", cmd_stat, usage_stat},
                                             {NULL, NULL, NULL}};
    return dl_cli_dispatch("tokenizer", usage, subs, argc, argv);
}
