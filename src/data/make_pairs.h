/* make_pairs.h — a preference set made from plain text (`dealer data make-pairs`), so DPO can be tried and tested
 * on a fresh machine with nothing but the bundled Shakespeare.
 *
 * The text is cut into speeches at blank lines (a speech is "NAME:" on its own line, then the lines spoken). Each
 * long enough speech gives one pair:
 *     prompt    the speaker line and the speech's opening, about prompt_bytes bytes, ending after a whole word
 *     chosen    the speech's true continuation, about response_bytes bytes, ending at a word end
 *     rejected  a corrupted continuation:
 *                 shuffle  the same words in a random order, at least half of them moved (the whitespace runs
 *                          between words stay in their order, so the length and the characters are the same: only
 *                          the order gives it away)
 *                 swap     the continuation of another, randomly drawn speech (fluent, but not this speech's)
 *                 mixed    one or the other, by a coin flip per pair
 * Speeches too short for both parts, or whose continuation has fewer than 4 words, are skipped and counted. The
 * randomness of pair i comes from Philox(seed, i), so the same text and seed give the same pairs; each pair goes to
 * the valid file with probability valid_fraction (dl_convert_is_valid: the same split rule as `data convert`).
 * Strings are byte-level tokens, as in `data convert --format jsonl-pairs`. Both files are written atomically. */
#ifndef DL_DATA_MAKE_PAIRS_H
#define DL_DATA_MAKE_PAIRS_H

#include <stddef.h>
#include <stdint.h>

#include "core/philox.h"
#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dl_reject_mode { DL_REJECT_SHUFFLE = 0, DL_REJECT_SWAP = 1, DL_REJECT_MIXED = 2 } dl_reject_mode;

typedef struct dl_make_pairs_options {
    const char *input;        /* plain text, speeches separated by blank lines */
    const char *output;       /* OUT.tfrecord (pairs not held out) */
    const char *valid_output; /* VALID.tfrecord; required when valid_fraction > 0 */
    double valid_fraction;    /* [0, 1) */
    uint64_t seed;
    int prompt_bytes;         /* target prompt length after the speaker line, >= 8 */
    int response_bytes;       /* target length of the chosen continuation, >= 8 */
    dl_reject_mode rejected;
    const char *tokenizer;    /* a tokenizer.json (tokenizer.h) for the three sides; NULL or "bytes": byte-level */
} dl_make_pairs_options;

typedef struct dl_make_pairs_result {
    uint64_t speeches;    /* blocks of text read */
    uint64_t too_short;   /* speeches skipped: too short, or a continuation of fewer than 4 words */
    uint64_t pairs;       /* written to OUT */
    uint64_t valid_pairs; /* written to VALID */
    uint64_t shuffled;    /* pairs whose rejected side is shuffled words */
    uint64_t swapped;     /* pairs whose rejected side comes from another speech */
    uint64_t tokens;      /* tokens written (both files, all three sides) */
} dl_make_pairs_result;

/* Options with the defaults: prompt 40 and response 64 bytes (a pair's two documents then fit one row of 256 tokens
 * together), shuffle, seed 1, no valid split. */
void dl_make_pairs_defaults(dl_make_pairs_options *options);

/* Builds the pair files (see the top of this file). A missing input is DL_ERR_INVALID; text without a single
 * usable speech, or a split that leaves a file empty, is DL_ERR_INVALID too (nothing is written then). */
dl_status dl_make_pairs(const dl_make_pairs_options *options, dl_make_pairs_result *result);

/* "shuffle" | "swap" | "mixed". */
dl_status dl_reject_mode_parse(const char *name, dl_reject_mode *mode);
const char *dl_reject_mode_name(dl_reject_mode mode);

/* Cuts one speech (its bytes, speaker line included) into prompt [0, *prompt_end) and chosen continuation
 * [*prompt_end, *chosen_end). Returns 0 when the speech is too short or the continuation has fewer than 4 words. */
int dl_speech_split(const uint8_t *speech, size_t len, int prompt_bytes, int response_bytes, size_t *prompt_end,
                    size_t *chosen_end);

/* Writes into out[0..len) the words of text[0..len) (maximal runs of non-whitespace) in a random order drawn from
 * rng; the k-th whitespace run stays the k-th. A draw counts when at least half of the word slots (and two) hold
 * another word than before. Returns 1 on success, 0 when no draw of a few did (too few distinct words); out then
 * holds the text unchanged. */
int dl_shuffle_words(const uint8_t *text, size_t len, uint8_t *out, dl_rng *rng);

#ifdef __cplusplus
}
#endif

#endif
