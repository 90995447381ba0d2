/* convert.h — turning users' text files into record files (`dealer data convert`).
 *
 * Four input formats, each producing one kind of Example (example.h):
 *   text          token documents, one record per document, documents split by --doc-split:
 *                   blank  a maximal run of non-blank lines (blank = empty or only spaces, tabs, CR), the lines
 *                          joined by '\n' without the newline that ends the run; blank lines are separators;
 *                   line   each non-blank line without its '\n';
 *                   file   each input file whole, every byte kept.
 *                 Documents never span input files.
 *   libffm        `label field:feature:value ...`            -> click rows
 *   libsvm        `label feature:value ...`                  -> click rows, field 0 for every entry, or the entry's
 *                                                               position in its line (0, 1, ...) with
 *                                                               field_by_position
 *   jsonl-pairs   {"prompt": "...", "chosen": "...", "rejected": "..."} per line, or the conversational form with
 *                 message lists (convert_pairs.c) -> preference pairs; other keys are ignored.
 * Text and pairs are tokenised with the options' tokenizer: byte-level (token = byte value 0..255) by default, or
 * a BPE tokenizer.json (tokenizer.h). The tokenizer's hash is stamped beside each record file it made
 * (PATH.tokenizer, tokenizer.h), so training and evaluation refuse data made with another tokenizer.
 * Tokenising runs on `threads` threads over batches of documents or lines; records come out in input order, so
 * the output is byte-identical to a one-thread run.
 * Labels must be 0, 1 or -1 (-1 is stored as 0; "+1" and "1.0" are fine). Ids are non-negative decimal integers
 * (fields < 2^31, features < 2^63, folded to 31 bits above 2^31-1), values finite decimal numbers. Blank lines are
 * skipped in the line formats.
 *
 * The line parsers work on one line in memory (no newline, not necessarily NUL-terminated) so fuzzers and tests
 * can call them directly. Their errors are DL_ERR_FORMAT naming the 1-based column and the token
 * ("column 9: token '3:x:1': feature 'x' is not a non-negative integer"); the converter prepends "FILE:LINE: ".
 *
 * A conversion writes OUT (and VALID when a valid fraction is given) atomically: on any error both .tmp files are
 * removed and nothing appears under the final names. */
#ifndef DL_DATA_CONVERT_H
#define DL_DATA_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "data/example.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dl_convert_format {
    DL_CONVERT_TEXT = 0,
    DL_CONVERT_LIBFFM = 1,
    DL_CONVERT_LIBSVM = 2,
    DL_CONVERT_JSONL_PAIRS = 3,
} dl_convert_format;

typedef enum dl_doc_split {
    DL_DOC_SPLIT_BLANK = 0,
    DL_DOC_SPLIT_LINE = 1,
    DL_DOC_SPLIT_FILE = 2,
} dl_doc_split;

/* The longest text document accepted (bytes): beyond it --doc-split line or smaller files are the answer. */
#define DL_CONVERT_MAX_DOCUMENT (256u << 20)

typedef struct dl_convert_options {
    dl_convert_format format;
    const char *const *inputs; /* paths; "-" reads standard input */
    size_t num_inputs;
    const char *output;        /* OUT.tfrecord */
    const char *valid_output;  /* required when valid_fraction > 0, else ignored */
    double valid_fraction;     /* in [0, 1): each record goes to VALID with this probability */
    uint64_t seed;             /* the split's Philox seed */
    dl_doc_split doc_split;    /* text only */
    int libsvm_field_by_position;
    int progress;              /* draw a progress bar (only ever on a terminal) */
    const char *tokenizer;     /* text and jsonl-pairs: a tokenizer.json (see tokenizer.h); NULL or "bytes" for
                                * the byte-level default */
    int skip_bad;              /* jsonl-pairs: count and skip malformed lines instead of stopping at the first */
    int threads;               /* tokenising threads (0: OpenMP's default, OMP_NUM_THREADS); output is the same */
} dl_convert_options;

typedef struct dl_convert_result {
    uint64_t records;       /* written to OUT */
    uint64_t valid_records; /* written to VALID */
    uint64_t lines;         /* input lines read */
    uint64_t blank_lines;   /* of which blank (skipped or separators) */
    uint64_t input_bytes;
    uint64_t output_bytes;  /* size of OUT */
    uint64_t valid_bytes;   /* size of VALID */
    uint64_t tokens;        /* text and pairs: tokens written (both files) */
    uint64_t hashed_ids;    /* libffm, libsvm: feature ids >= 2^31 stored hashed (dl_feature_id_fold) */
    uint64_t skipped;       /* jsonl-pairs with skip_bad: malformed lines skipped */
    uint64_t tokenizer_hash;/* text and pairs: the hash stamped beside the records (PATH.tokenizer) */
} dl_convert_result;

/* Runs a conversion (see the top of this file). `result` may be NULL. */
dl_status dl_convert(const dl_convert_options *options, dl_convert_result *result);

/* "text" | "libffm" | "libsvm" | "jsonl-pairs". */
dl_status dl_convert_parse_format(const char *name, dl_convert_format *format);
const char *dl_convert_format_name(dl_convert_format format);
/* "blank" | "line" | "file". */
dl_status dl_convert_parse_doc_split(const char *name, dl_doc_split *split);

/* Whether record number `k` of a conversion goes to the valid file: Philox word k of the split stream for `seed`,
 * as a uniform in [0, 1), below `fraction`. Pure, so the split is reproducible and independent of the input format. */
int dl_convert_is_valid(uint64_t seed, uint64_t k, double fraction);

/* ---- line parsers (from memory) ---------------------------------------------------------------------------- */

/* 1 when the line holds only spaces, tabs and CR (or nothing). */
int dl_line_is_blank(const char *line, size_t len);
/* `label field:feature:value ...` into row (arrays reused; cleared first). */
dl_status dl_parse_libffm_line(const char *line, size_t len, dl_click_row *row);
/* Reads the libffm text file `path` line by line (blank lines skipped) and hands each parsed row to on_row with
 * its "PATH:LINE" for messages; stops at the first failure, a parse error getting PATH:LINE as context. A file that
 * cannot be opened is dl_open_failure's error with `hint`. */
dl_status dl_libffm_for_each_row(const char *path, const char *hint,
                                 dl_status (*on_row)(void *ctx, const dl_click_row *row, const char *where),
                                 void *ctx);
/* `label feature:value ...`; field = 0, or the entry's position when field_by_position. */
dl_status dl_parse_libsvm_line(const char *line, size_t len, int field_by_position, dl_click_row *row);
/* One JSON object with string members prompt, chosen, rejected (chosen and rejected non-empty), or the
 * conversational form (chosen/rejected message lists; see convert_pairs.c), tokenised byte-level. */
dl_status dl_parse_pair_json(const char *line, size_t len, dl_pref_pair *pair);
/* The same with a tokenizer (NULL: byte-level). */
struct dl_tokenizer;
dl_status dl_parse_pair_json_tok(const char *line, size_t len, struct dl_tokenizer *tok, dl_pref_pair *pair);
/* Byte-level tokens: one token per byte, its value 0..255. */
dl_status dl_tokenize_bytes(const void *bytes, size_t len, dl_i32_array *tokens);

/* ---- text documents ------------------------------------------------------------------------------------------ */

/* Called with each finished document (bytes valid only during the call). */
typedef dl_status (*dl_doc_sink)(void *ctx, const uint8_t *doc, size_t len, uint64_t first_line);

/* Splits text into documents incrementally: feed lines (each with its '\n', the last maybe without), then finish
 * at the end of every input file. */
typedef struct dl_text_splitter {
    dl_doc_split mode;
    uint8_t *doc;
    size_t len, cap;
    int open;             /* a document is being collected */
    uint64_t line;        /* lines fed so far */
    uint64_t doc_line;    /* 1-based line where the open document started */
} dl_text_splitter;

void dl_text_splitter_init(dl_text_splitter *s, dl_doc_split mode);
dl_status dl_text_splitter_feed(dl_text_splitter *s, const char *line, size_t len, dl_doc_sink sink, void *ctx);
/* Emits the open document, if any, and restarts line numbering (a new file follows). */
dl_status dl_text_splitter_finish(dl_text_splitter *s, dl_doc_sink sink, void *ctx);
void dl_text_splitter_free(dl_text_splitter *s);

#ifdef __cplusplus
}
#endif

#endif
