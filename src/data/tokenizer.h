/* tokenizer.h — text to token ids and back: the byte-level default and GPT-2-style byte-level BPE.
 *
 * Two kinds of tokenizer sit behind one handle:
 *   bytes   the default: token = byte value 0..255, vocabulary 256, nothing to load (dl_tokenizer_new_bytes).
 *   bpe     GPT-2's byte-level BPE exactly as Hugging Face `tokenizers` runs it, loaded from a `tokenizer.json`
 *           (model.type "BPE", ByteLevel pre-tokenizer) or from the older `vocab.json` + `merges.txt` pair, or
 *           trained by dl_tokenizer_train (tokenizer_train.c).
 *
 * Encoding a text with bpe, step by step (each step is what `tokenizers` does, so the ids are the same):
 *   1. Invalid UTF-8 becomes U+FFFD, one per maximal ill-formed subpart (Unicode's recommended practice; what
 *      Python's bytes.decode("utf-8", "replace") and Rust's String::from_utf8_lossy do). `tokenizers` only takes
 *      str, so its ids for bytes B are its ids for B.decode("utf-8", "replace"); UTF-8-encoded surrogates
 *      (ED A0..BF xx) are ill-formed and become U+FFFD too. Valid text is never changed, so decode(encode(x)) == x
 *      for every valid UTF-8 x.
 *   2. Added tokens (`added_tokens`, e.g. <|endoftext|>) are cut out first, leftmost-longest, honouring lstrip,
 *      rstrip and single_word; they map straight to their ids and are never split.
 *   3. Each piece between them is pre-tokenized with GPT-2's regex
 *        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *      run by PCRE2 (UTF + UCP, JIT compiled); add_prefix_space puts a space before a piece not starting with one.
 *   4. Each pre-token's bytes become the byte-level symbols (byte b -> the vocabulary entry of GPT-2's
 *      bytes_to_unicode character for b) and are merged by rank: always the lowest-rank adjacent pair, leftmost
 *      first among equal ranks, with a heap, as `tokenizers`' Word::merge_all. A byte missing from the vocabulary
 *      becomes unk_token when the file names one (fused when fuse_unk) and is dropped otherwise, as in `tokenizers`.
 *   5. Results are cached per pre-token, so a word seen before costs one hash lookup.
 * What a loaded file asks for and this code cannot do exactly (a normalizer, a post-processor that adds tokens,
 * BPE dropout, continuing_subword_prefix, byte_fallback, another pre-tokenizer or model) is refused at load with a
 * message naming the key: never silently ignored.
 *
 * Decoding concatenates each id's bytes: a vocabulary entry made of bytes_to_unicode characters decodes to those
 * bytes, anything else (an added token such as "<|endoftext|>" whose characters are not all in the map) to its
 * UTF-8 text, as `tokenizers`' ByteLevel decoder does. dl_tokenizer_decode returns the raw bytes (so an id sequence
 * that splits a character decodes to the same bytes it came from); `tokenizers` turns such bytes into U+FFFD.
 * dl_token_stream decodes one id at a time for printing and never emits half a UTF-8 character.
 *
 * The hash (dl_tokenizer_hash) is xxHash64 of a canonical description: every id's bytes and flags, the merges in
 * rank order and the pre-tokenizer options; JSON formatting, key order and the file it came from do not change it.
 * Record files and checkpoints store it so data made with one tokenizer is never read with another.
 *
 * Threads: the vocabulary is immutable and shared; the per-word cache and scratch buffers are not. Encode from one
 * thread per handle: dl_tokenizer_clone gives another handle on the same vocabulary cheaply.
 *
 *     dl_tokenizer *tok;
 *     DL_CHECK(dl_tokenizer_load("tokenizer.json", &tok));
 *     dl_i32_array ids = {0};
 *     DL_CHECK(dl_tokenizer_encode(tok, "Hello world", 11, &ids));   // ids.data[0..ids.len)
 *     dl_tokenizer_free(tok);
 */
#ifndef DL_DATA_TOKENIZER_H
#define DL_DATA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "data/example.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_tokenizer dl_tokenizer;

/* Ids are below this (the largest real vocabularies are ~256k; the cap keeps a hostile file from asking for
 * gigabytes). */
#define DL_TOKENIZER_MAX_VOCAB (1 << 24)

typedef enum dl_tokenizer_kind {
    DL_TOKENIZER_BYTES = 0,
    DL_TOKENIZER_BPE = 1,
} dl_tokenizer_kind;

/* The byte-level default tokenizer. */
dl_status dl_tokenizer_new_bytes(dl_tokenizer **out);

/* Loads PATH: a tokenizer.json; a vocab.json (merges.txt beside it); or a directory holding tokenizer.json or
 * vocab.json + merges.txt. "bytes" gives the byte-level tokenizer. A missing path or malformed file is
 * DL_ERR_INVALID / DL_ERR_FORMAT naming the path and the place. */
dl_status dl_tokenizer_load(const char *path, dl_tokenizer **out);

/* Loads the vocab.json + merges.txt pair (GPT-2's original files). merges.txt: an optional "#version" first line,
 * then one "a b" per line in rank order. Vocabulary entries spelled <|...|> (GPT-2's <|endoftext|>) become special
 * added tokens, as the transformers GPT-2 tokenizer treats them. */
dl_status dl_tokenizer_load_vocab_merges(const char *vocab_path, const char *merges_path, dl_tokenizer **out);

/* Parses tokenizer.json text from memory (`name` is used in messages only; may be NULL). */
dl_status dl_tokenizer_from_json(const char *json, size_t len, const char *name, dl_tokenizer **out);

/* Another handle on the same vocabulary with its own cache: one per encoding thread. */
dl_status dl_tokenizer_clone(const dl_tokenizer *tok, dl_tokenizer **out);

/* Frees a handle (NULL is fine); the vocabulary goes with its last handle. */
void dl_tokenizer_free(dl_tokenizer *tok);

dl_tokenizer_kind dl_tokenizer_kind_of(const dl_tokenizer *tok);
/* "bytes" or "bpe". */
const char *dl_tokenizer_kind_name(const dl_tokenizer *tok);

/* One more than the largest id (the size of an embedding table that can hold every id). */
int32_t dl_tokenizer_vocab_size(const dl_tokenizer *tok);
/* Number of merges (0 for bytes). */
size_t dl_tokenizer_num_merges(const dl_tokenizer *tok);
/* Number of added tokens (0 for bytes). */
size_t dl_tokenizer_num_added(const dl_tokenizer *tok);

/* The canonical hash (see the top of this file). The byte-level tokenizer's is DL_TOKENIZER_BYTES_HASH. */
uint64_t dl_tokenizer_hash(const dl_tokenizer *tok);
#define DL_TOKENIZER_BYTES_HASH 0x6279746573000001ull /* "bytes" + version 1: fixed, never a BPE hash in practice */
/* 16 lower-case hex digits and a NUL. */
void dl_tokenizer_hash_hex(uint64_t hash, char out[17]);
/* Parses 16 hex digits back (DL_ERR_FORMAT otherwise). */
dl_status dl_tokenizer_parse_hash(const char *hex, uint64_t *hash);

/* The id of the added or vocabulary token spelled `content` exactly (its JSON string), or -1. */
int32_t dl_tokenizer_token_id(const dl_tokenizer *tok, const char *content);
/* The end-of-text id: <|endoftext|> when the tokenizer has it, else -1 (bytes: -1). */
int32_t dl_tokenizer_eos_id(const dl_tokenizer *tok);
/* The bytes id decodes to (valid until the tokenizer is freed); an id outside the vocabulary or one no token has
 * is DL_ERR_INVALID. */
dl_status dl_tokenizer_token_bytes(const dl_tokenizer *tok, int32_t id, const uint8_t **bytes, size_t *len);
/* 1 when id is a special added token. */
int dl_tokenizer_is_special(const dl_tokenizer *tok, int32_t id);

/* Encodes len bytes of text into *ids (replacing its content). */
dl_status dl_tokenizer_encode(dl_tokenizer *tok, const void *text, size_t len, dl_i32_array *ids);
/* The same, appending to *ids. */
dl_status dl_tokenizer_encode_append(dl_tokenizer *tok, const void *text, size_t len, dl_i32_array *ids);

/* Decodes ids into a fresh malloc'd buffer (*text, NUL-terminated one past *len; freed by the caller). An id
 * outside the vocabulary is DL_ERR_INVALID naming its position. */
dl_status dl_tokenizer_decode(const dl_tokenizer *tok, const int32_t *ids, size_t n, char **text, size_t *len);

/* Streaming decode for printing: push ids one at a time and print what comes back. Only whole UTF-8 characters
 * come out; bytes that can never complete a character come out as U+FFFD (as `tokenizers` decodes them), and
 * finish flushes an incomplete tail the same way. */
typedef struct dl_token_stream {
    uint8_t pending[4]; /* the start of a character still waiting for its continuation bytes */
    size_t num_pending;
    char *out;          /* what the last call returned */
    size_t out_len, out_cap;
} dl_token_stream;

void dl_token_stream_init(dl_token_stream *s);
/* Adds id; text and len (valid until the next call) are the printable text it completes, maybe empty. */
dl_status dl_token_stream_push(dl_token_stream *s, const dl_tokenizer *tok, int32_t id, const char **text,
                               size_t *len);
/* Flushes what is left. */
dl_status dl_token_stream_finish(dl_token_stream *s, const char **text, size_t *len);
void dl_token_stream_free(dl_token_stream *s);

/* Writes a Hugging Face tokenizer.json (atomically) that `tokenizers.Tokenizer.from_file` loads and that encodes
 * like this tokenizer. The byte-level tokenizer has no tokenizer.json: DL_ERR_INVALID. */
dl_status dl_tokenizer_save(const dl_tokenizer *tok, const char *path);

/* ---- which tokenizer made a record file (tokenizer_stamp.c) -------------------------------------------------
 * `dealer data convert` writes PATH.tokenizer beside the record file PATH: one JSON object
 *     {"kind": "bpe", "hash": "ef640f787bb1ee28", "vocab_size": 512}
 * A record file without one was made before tokenizers existed here, i.e. byte-level, and is read as such. */

/* Writes PATH.tokenizer for tok (atomically). */
dl_status dl_tokenizer_stamp_write(const char *record_path, const dl_tokenizer *tok);
/* Reads PATH.tokenizer: *hash and *vocab_size; a missing stamp gives the byte-level hash and 256, *found = 0. */
dl_status dl_tokenizer_stamp_read(const char *record_path, uint64_t *hash, int32_t *vocab_size, int *found);
/* Removes PATH.tokenizer if present. */
dl_status dl_tokenizer_stamp_remove(const char *record_path);
/* DL_ERR_INVALID (exit 2) naming both hashes when the record file was made with another tokenizer than tok;
 * `tok_name` (its path) goes into the message. */
dl_status dl_tokenizer_check_data(const char *record_path, const dl_tokenizer *tok, const char *tok_name);

/* ---- training (tokenizer_train.c) ------------------------------------------------------------------------- */

typedef struct dl_tokenizer_train_options {
    const char *const *inputs;   /* text files; "-" reads standard input */
    size_t num_inputs;
    int32_t vocab_size;          /* total: specials + 256 byte symbols + merges; >= 256 + num_special */
    const char *const *special;  /* special tokens, ids 0.. in this order (e.g. "<|endoftext|>") */
    size_t num_special;
    uint64_t min_frequency;      /* a pair seen fewer times is never merged (0 and 1 mean no limit) */
    int progress;                /* a progress line on a terminal */
} dl_tokenizer_train_options;

/* Learns byte-level BPE merges with `tokenizers`' BpeTrainer rules (ByteLevel pre-tokenizer, the whole byte
 * alphabet as initial alphabet, each input line with its line ending counted as a sequence, most frequent pair
 * first and the smaller (id, id) pair among equals) so that, given the same files and options, the vocabulary and
 * merges are those `tokenizers` learns. */
dl_status dl_tokenizer_train(const dl_tokenizer_train_options *options, dl_tokenizer **out);

#ifdef __cplusplus
}
#endif

#endif
