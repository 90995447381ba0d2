/* convert.c — the conversion driver: reads input files line by line, parses them with the format's parser, encodes
 * Examples and routes each record to the train or the valid writer.
 *
 * Streaming by lines (getline) keeps memory flat whatever the input size: a line, a document, one encoded record.
 * Records are numbered in output order across all inputs; record k goes to the valid file when Philox word k of a
 * stream of its own, seeded with --seed, falls below the valid fraction. The split therefore depends only on the
 * seed and the record's position: rerunning a conversion gives the same two files, and changing the fraction moves
 * records only one way (a record valid at 5% is valid at 10%).
 *
 * Every failure aborts both writers, which removes their .tmp files: a bad line 10 million lines in leaves no
 * output at all, never a file that looks complete. */
#include "data/convert.h"

#include "core/names.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/fs.h"
#include "core/grow.h"
#include "core/log.h"
#include "core/philox.h"
#include "core/progress.h"
#include "data/record.h"
#include "data/tokenizer.h"

/* The split's stream: DL_STREAM_DATA with sub-stream 1 ("train/valid split"). */
#define DL_CONVERT_SPLIT_STREAM (((uint64_t)DL_STREAM_DATA << 32) | 1u)

int dl_convert_is_valid(uint64_t seed, uint64_t k, double fraction) {
    if (!(fraction > 0.0))
        return 0;
    uint32_t word = dl_philox_word(seed, DL_CONVERT_SPLIT_STREAM, k);
    return (double)word * (1.0 / 4294967296.0) < fraction;
}

static const char *const format_names[] = {"text", "libffm", "libsvm", "jsonl-pairs"};

dl_status dl_convert_parse_format(const char *name, dl_convert_format *format) {
    DL_REQUIRE(format != NULL, DL_ERR_INVALID, "dl_convert_parse_format: NULL argument");
    int i;
    DL_CHECK(dl_name_lookup(name, format_names, 4, "format", &i));
    *format = (dl_convert_format)i;
    return DL_OK;
}

const char *dl_convert_format_name(dl_convert_format format) {
    return (unsigned)format < 4 ? format_names[format] : "unknown";
}

dl_status dl_convert_parse_doc_split(const char *name, dl_doc_split *split) {
    DL_REQUIRE(name && split, DL_ERR_INVALID, "no document split given");
    if (strcmp(name, "blank") == 0)
        *split = DL_DOC_SPLIT_BLANK;
    else if (strcmp(name, "line") == 0)
        *split = DL_DOC_SPLIT_LINE;
    else if (strcmp(name, "file") == 0)
        *split = DL_DOC_SPLIT_FILE;
    else
        return DL_FAIL(DL_ERR_INVALID, "unknown --doc-split '%s' (known: blank, line, file)", name);
    return DL_OK;
}

/* Documents (text) or lines (pairs) wait in a batch until it holds this many items or bytes; then they are
 * tokenised in parallel and written out in order. Big enough to keep threads busy, small enough to stay in cache. */
#define BATCH_ITEMS 2048
#define BATCH_BYTES (8u << 20)
/* With --skip-bad, the first this many skipped lines are named in warnings; the rest only counted. */
#define SKIP_WARNINGS 10

typedef struct batch {
    uint8_t *bytes;       /* the items back to back */
    size_t len, cap;
    size_t *off;          /* item i is bytes[off[i], off[i+1]) */
    uint64_t *line;       /* its first input line */
    size_t n, off_cap, line_cap;
    dl_i32_array *tokens; /* text: per item */
    dl_pref_pair *pairs;  /* pairs: per item */
    dl_status *status;
    char **error;         /* the message of a failed item */
    size_t out_cap;
} batch;

typedef struct converter {
    const dl_convert_options *opt;
    dl_record_writer *train, *valid;
    uint64_t k; /* records so far, both files */
    uint8_t *payload;
    size_t payload_cap;
    dl_i32_array tokens;
    dl_click_row row;
    dl_pref_pair pair;
    dl_convert_result res;
    dl_progress progress;
    dl_tokenizer **toks; /* one per thread; NULL entries: byte-level */
    int threads;
    batch b;
    const char *input_name;
    int batch_failed; /* the failure came from a batch, whose message already names file:line */
} converter;

/* Sends one encoded record to the train or valid file. */
static dl_status emit(converter *c, size_t len) {
    int to_valid = c->valid && dl_convert_is_valid(c->opt->seed, c->k, c->opt->valid_fraction);
    c->k++;
    if (to_valid) {
        c->res.valid_records++;
        return dl_record_writer_append(c->valid, c->payload, len);
    }
    c->res.records++;
    return dl_record_writer_append(c->train, c->payload, len);
}

static void batch_free(batch *b) {
    free(b->bytes);
    free(b->off);
    free(b->line);
    for (size_t i = 0; i < b->out_cap; i++) {
        if (b->tokens)
            dl_i32_array_free(&b->tokens[i]);
        if (b->pairs)
            dl_pref_pair_free(&b->pairs[i]);
        if (b->error)
            free(b->error[i]);
    }
    free(b->tokens);
    free(b->pairs);
    free(b->status);
    free(b->error);
    memset(b, 0, sizeof *b);
}

static dl_status batch_add(batch *b, const uint8_t *item, size_t len, uint64_t line) {
    DL_CHECK(dl_grow((void **)&b->bytes, &b->cap, b->len + len + 1, 1, "a conversion batch"));
    DL_CHECK(dl_grow((void **)&b->off, &b->off_cap, b->n + 2, sizeof *b->off, "a conversion batch"));
    DL_CHECK(dl_grow((void **)&b->line, &b->line_cap, b->n + 1, sizeof *b->line, "a conversion batch"));
    if (len)
        memcpy(b->bytes + b->len, item, len);
    b->off[b->n] = b->len;
    b->line[b->n] = line;
    b->len += len;
    b->n++;
    b->off[b->n] = b->len;
    return DL_OK;
}

/* Makes room for per-item results (zeroed, so arrays grow on first use and are reused after). */
static dl_status batch_outputs(batch *b) {
    if (b->out_cap >= b->n)
        return DL_OK;
    /* Four parallel arrays share out_cap: each grows from it to the first one's new capacity. */
    size_t old = b->out_cap, grown = old, cap;
    DL_CHECK(dl_grow((void **)&b->tokens, &grown, b->n, sizeof *b->tokens, "a conversion batch"));
    cap = old;
    DL_CHECK(dl_grow((void **)&b->pairs, &cap, grown, sizeof *b->pairs, "a conversion batch"));
    cap = old;
    DL_CHECK(dl_grow((void **)&b->status, &cap, grown, sizeof *b->status, "a conversion batch"));
    cap = old;
    DL_CHECK(dl_grow((void **)&b->error, &cap, grown, sizeof *b->error, "a conversion batch"));
    memset(b->tokens + old, 0, (grown - old) * sizeof *b->tokens);
    memset(b->pairs + old, 0, (grown - old) * sizeof *b->pairs);
    memset(b->error + old, 0, (grown - old) * sizeof *b->error);
    b->out_cap = grown;
    return DL_OK;
}

/* Tokenises (text) or parses and tokenises (pairs) every item of the batch, in parallel, keeping each item's
 * status and message (the error context is per thread). */
static void batch_work(converter *c) {
    batch *b = &c->b;
    int pairs = c->opt->format == DL_CONVERT_JSONL_PAIRS;
    long n = (long)b->n;
#pragma omp parallel for schedule(dynamic, 16) num_threads(c->threads) if (n > 1 && c->threads > 1)
    for (long i = 0; i < n; i++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        const uint8_t *item = b->bytes + b->off[i];
        size_t len = b->off[i + 1] - b->off[i];
        dl_status s;
        if (pairs)
            s = dl_parse_pair_json_tok((const char *)item, len, c->toks[tid], &b->pairs[i]);
        else
            s = c->toks[tid] ? dl_tokenizer_encode(c->toks[tid], item, len, &b->tokens[i])
                             : dl_tokenize_bytes(item, len, &b->tokens[i]);
        b->status[i] = s;
        free(b->error[i]);
        b->error[i] = s == DL_OK ? NULL : strdup(dl_error_message());
        if (s != DL_OK)
            dl_error_clear();
    }
}

/* Works the batch and writes its records in input order. */
static dl_status batch_flush(converter *c) {
    batch *b = &c->b;
    if (b->n == 0)
        return DL_OK;
    DL_CHECK(batch_outputs(b));
    batch_work(c);
    dl_status s = DL_OK;
    for (size_t i = 0; i < b->n && s == DL_OK; i++) {
        size_t n;
        if (b->status[i] != DL_OK) {
            const char *msg = b->error[i] ? b->error[i] : "out of memory";
            if (c->opt->format == DL_CONVERT_JSONL_PAIRS && c->opt->skip_bad && b->status[i] == DL_ERR_FORMAT) {
                if (c->res.skipped++ < SKIP_WARNINGS)
                    dl_log(DL_LOG_WARN, "skipping %s:%llu: %s", c->input_name, (unsigned long long)b->line[i], msg);
                continue;
            }
            s = dl_error_set(b->status[i], __FILE__, __LINE__, "%s:%llu: %s", c->input_name,
                             (unsigned long long)b->line[i], msg);
            c->batch_failed = 1;
            if (c->opt->format == DL_CONVERT_JSONL_PAIRS && b->status[i] == DL_ERR_FORMAT)
                dl_error_hint("fix the line, or pass --skip-bad to count and skip malformed lines");
            break;
        }
        if (c->opt->format == DL_CONVERT_JSONL_PAIRS) {
            const dl_pref_pair *p = &b->pairs[i];
            s = dl_example_encode_pair(p, &c->payload, &c->payload_cap, &n);
            c->res.tokens += p->prompt.len + p->chosen.len + p->rejected.len;
        } else {
            s = dl_example_encode_tokens(b->tokens[i].data, b->tokens[i].len, &c->payload, &c->payload_cap, &n);
            c->res.tokens += b->tokens[i].len;
        }
        if (s == DL_OK)
            s = emit(c, n);
    }
    b->n = 0;
    b->len = 0;
    return s;
}

static dl_status batch_push(converter *c, const uint8_t *item, size_t len, uint64_t line) {
    DL_CHECK(batch_add(&c->b, item, len, line));
    if (c->b.n >= BATCH_ITEMS || c->b.len >= BATCH_BYTES)
        return batch_flush(c);
    return DL_OK;
}

static dl_status text_sink(void *ctx, const uint8_t *doc, size_t len, uint64_t first_line) {
    return batch_push(ctx, doc, len, first_line);
}

static void count_hashed_ids(converter *c) {
    for (size_t i = 0; i < c->row.feature.len; i++)
        c->res.hashed_ids += c->row.feature.data[i] < 0; /* parsed ids are >= 0: negative means hashed */
}

/* Parses and writes one non-blank line of a line format. */
static dl_status convert_line(converter *c, const char *line, size_t len, uint64_t line_no) {
    size_t n;
    switch (c->opt->format) {
    case DL_CONVERT_LIBFFM:
        DL_CHECK(dl_parse_libffm_line(line, len, &c->row));
        DL_CHECK(dl_example_encode_click(&c->row, &c->payload, &c->payload_cap, &n));
        count_hashed_ids(c);
        break;
    case DL_CONVERT_LIBSVM:
        DL_CHECK(dl_parse_libsvm_line(line, len, c->opt->libsvm_field_by_position, &c->row));
        DL_CHECK(dl_example_encode_click(&c->row, &c->payload, &c->payload_cap, &n));
        count_hashed_ids(c);
        break;
    case DL_CONVERT_JSONL_PAIRS:
        return batch_push(c, (const uint8_t *)line, len, line_no);
    default:
        return DL_FAIL(DL_ERR_INVALID, "convert_line: not a line format");
    }
    return emit(c, n);
}

/* Converts one input file (or standard input for "-"). */
static dl_status convert_input(converter *c, const char *path, dl_text_splitter *splitter) {
    int is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? "<stdin>" : path;
    c->input_name = name;
    FILE *fp = is_stdin ? stdin : fopen(path, "rb");
    if (!fp) {
        return dl_open_failure(path, errno, "check the input path");
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    uint64_t line_no = 0;
    dl_status s = DL_OK;
    while (s == DL_OK && (got = getline(&line, &cap, fp)) >= 0) {
        size_t len = (size_t)got;
        line_no++;
        c->res.lines++;
        c->res.input_bytes += len;
        if (c->opt->format == DL_CONVERT_TEXT) {
            size_t body = len && line[len - 1] == '\n' ? len - 1 : len;
            if (dl_line_is_blank(line, body))
                c->res.blank_lines++;
            s = dl_text_splitter_feed(splitter, line, len, text_sink, c);
            if (s != DL_OK && !c->batch_failed)
                dl_error_context("%s:%llu", name, (unsigned long long)line_no);
        } else {
            size_t body = len;
            while (body && (line[body - 1] == '\n' || line[body - 1] == '\r'))
                body--;
            if (dl_line_is_blank(line, body)) {
                c->res.blank_lines++;
            } else {
                s = convert_line(c, line, body, line_no);
                if (s != DL_OK && !c->batch_failed)
                    dl_error_context("%s:%llu", name, (unsigned long long)line_no);
            }
        }
        dl_progress_update(&c->progress, c->res.input_bytes, c->k);
    }
    if (s == DL_OK && ferror(fp)) {
        s = DL_FAIL(DL_ERR_IO, "reading %s after line %llu: %s", name, (unsigned long long)line_no,
                    strerror(errno));
    }
    if (s == DL_OK && c->opt->format == DL_CONVERT_TEXT) {
        s = dl_text_splitter_finish(splitter, text_sink, c);
        if (s != DL_OK && !c->batch_failed)
            dl_error_context("%s", name);
    }
    if (s == DL_OK) /* batches never span files, so messages name the right one */
        s = batch_flush(c);
    free(line);
    if (!is_stdin)
        fclose(fp);
    return s;
}

/* Removes a committed record file and its index (best effort: already failing). */
static void remove_record_file(const char *path) {
    char *idx = dl_path_join_suffix(path, ".idx");
    remove(path);
    if (idx)
        remove(idx);
    free(idx);
}

static dl_status check_options(const dl_convert_options *o) {
    DL_REQUIRE(o, DL_ERR_INVALID, "dl_convert: no options");
    DL_REQUIRE((unsigned)o->format < 4, DL_ERR_INVALID, "dl_convert: unknown format %d", (int)o->format);
    DL_REQUIRE(o->num_inputs > 0 && o->inputs, DL_ERR_INVALID, "no input files given");
    for (size_t i = 0; i < o->num_inputs; i++)
        DL_REQUIRE(o->inputs[i] && o->inputs[i][0], DL_ERR_INVALID, "input %zu is an empty path", i + 1);
    DL_REQUIRE(o->output && o->output[0], DL_ERR_INVALID, "no output file given (-o OUT.tfrecord)");
    DL_REQUIRE(o->valid_fraction >= 0.0 && o->valid_fraction < 1.0, DL_ERR_INVALID,
               "the valid fraction must be in [0, 1), got %g", o->valid_fraction);
    if (o->valid_fraction > 0.0) {
        DL_REQUIRE(o->valid_output && o->valid_output[0], DL_ERR_INVALID,
                   "a valid fraction needs a valid file to write (--valid-out VALID.tfrecord)");
        DL_REQUIRE(strcmp(o->valid_output, o->output) != 0, DL_ERR_INVALID,
                   "the valid file and the output file are the same (%s)", o->output);
    }
    for (size_t i = 0; i < o->num_inputs; i++) {
        if (strcmp(o->inputs[i], "-") == 0)
            continue;
        DL_CHECK(dl_check_input_file(o->inputs[i], "check the input path"));
        DL_CHECK(dl_check_output_not_input(o->output, o->inputs[i], "-o"));
        if (o->valid_fraction > 0.0)
            DL_CHECK(dl_check_output_not_input(o->valid_output, o->inputs[i], "--valid-out"));
    }
    DL_REQUIRE((unsigned)o->doc_split <= DL_DOC_SPLIT_FILE, DL_ERR_INVALID, "unknown document split %d",
               (int)o->doc_split);
    return DL_OK;
}

dl_status dl_convert(const dl_convert_options *opt, dl_convert_result *result) {
    DL_CHECK(check_options(opt));
    converter c;
    memset(&c, 0, sizeof c);
    c.opt = opt;
    uint64_t total = 0;
    for (size_t i = 0; i < opt->num_inputs; i++) {
        struct stat st;
        if (strcmp(opt->inputs[i], "-") == 0 || stat(opt->inputs[i], &st) != 0 || !S_ISREG(st.st_mode)) {
            total = 0; /* unknown: the bar shows amounts and rates only */
            break;
        }
        total += (uint64_t)st.st_size;
    }
    int tokens_out = opt->format == DL_CONVERT_TEXT || opt->format == DL_CONVERT_JSONL_PAIRS;
    c.threads = opt->threads > 0 ? opt->threads : 1;
#ifdef _OPENMP
    if (opt->threads <= 0)
        c.threads = omp_get_max_threads();
#endif
    dl_status s = DL_OK;
    c.toks = calloc((size_t)c.threads, sizeof *c.toks);
    if (!c.toks)
        s = DL_FAIL(DL_ERR_NOMEM, "out of memory");
    dl_tokenizer *bytes = NULL;
    if (s == DL_OK && tokens_out && opt->tokenizer && strcmp(opt->tokenizer, "bytes") != 0) {
        s = dl_tokenizer_load(opt->tokenizer, &c.toks[0]);
        for (int i = 1; s == DL_OK && i < c.threads; i++)
            s = dl_tokenizer_clone(c.toks[0], &c.toks[i]);
    }
    if (s == DL_OK && tokens_out) {
        s = dl_tokenizer_new_bytes(&bytes); /* for the stamp of byte-level output */
        c.res.tokenizer_hash = dl_tokenizer_hash(c.toks[0] ? c.toks[0] : bytes);
    }
    /* An old stamp must not outlive the file it described, even if this conversion dies half way. */
    if (s == DL_OK && tokens_out)
        s = dl_tokenizer_stamp_remove(opt->output);
    if (s == DL_OK && tokens_out && opt->valid_fraction > 0.0)
        s = dl_tokenizer_stamp_remove(opt->valid_output);
    if (s == DL_OK)
        s = dl_record_writer_open(&c.train, opt->output);
    if (s == DL_OK && opt->valid_fraction > 0.0)
        s = dl_record_writer_open(&c.valid, opt->valid_output);
    dl_text_splitter splitter;
    dl_text_splitter_init(&splitter, opt->doc_split);
    if (opt->progress)
        dl_progress_begin(&c.progress, "convert", total, 1, "records");
    for (size_t i = 0; i < opt->num_inputs && s == DL_OK; i++)
        s = convert_input(&c, opt->inputs[i], &splitter);
    dl_progress_update(&c.progress, c.res.input_bytes, c.k); /* documents finished at end of file count too */
    dl_progress_end(&c.progress);
    c.res.output_bytes = dl_record_writer_bytes(c.train);
    c.res.valid_bytes = dl_record_writer_bytes(c.valid);
    /* Click rows: a file without one is a mistake (a wrong path, a failed export), better said now than when a
     * training run finds an empty data set. Nothing is written (the writers are aborted below). */
    if (s == DL_OK && (opt->format == DL_CONVERT_LIBFFM || opt->format == DL_CONVERT_LIBSVM) &&
        c.res.records + c.res.valid_records == 0) {
        const int ffm = opt->format == DL_CONVERT_LIBFFM;
        char lines[64] = "no lines";
        if (c.res.lines)
            snprintf(lines, sizeof lines, "%llu lines, all blank", (unsigned long long)c.res.lines);
        s = DL_FAIL(DL_ERR_FORMAT, "%s%s hold%s no %s rows (%s)", opt->inputs[0],
                    opt->num_inputs > 1 ? " and the other inputs" : "", opt->num_inputs > 1 ? "" : "s",
                    ffm ? "libffm" : "libsvm", lines);
        dl_error_hint("check the input path; a %s line is '%s'", ffm ? "libffm" : "libsvm",
                      ffm ? "label field:feature:value ..." : "label feature:value ...");
    }
    if (s == DL_OK) {
        s = dl_record_writer_close(c.train);
        c.train = NULL;
    }
    if (s == DL_OK && c.valid) {
        s = dl_record_writer_close(c.valid);
        c.valid = NULL;
        if (s != DL_OK)
            remove_record_file(opt->output); /* no train file without its valid file */
    }
    if (s == DL_OK && tokens_out) {
        const dl_tokenizer *used = c.toks[0] ? c.toks[0] : bytes;
        s = dl_tokenizer_stamp_write(opt->output, used);
        if (s == DL_OK && opt->valid_fraction > 0.0)
            s = dl_tokenizer_stamp_write(opt->valid_output, used);
        if (s != DL_OK) { /* records without their stamp would be read as byte-level: take them away */
            remove_record_file(opt->output);
            if (opt->valid_fraction > 0.0)
                remove_record_file(opt->valid_output);
            (void)dl_tokenizer_stamp_remove(opt->output);
        }
    }
    dl_record_writer_abort(c.train);
    dl_record_writer_abort(c.valid);
    dl_text_splitter_free(&splitter);
    free(c.payload);
    dl_i32_array_free(&c.tokens);
    dl_click_row_free(&c.row);
    dl_pref_pair_free(&c.pair);
    batch_free(&c.b);
    for (int i = 0; c.toks && i < c.threads; i++)
        dl_tokenizer_free(c.toks[i]);
    free(c.toks);
    dl_tokenizer_free(bytes);
    if (s == DL_OK && result)
        *result = c.res;
    return s;
}
