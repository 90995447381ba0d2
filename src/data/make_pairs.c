/* make_pairs.c — preference pairs from plain text (see make_pairs.h for the rules).
 *
 * Two passes over the speeches, all in memory (the bundled text is 1 MB): the first cuts every speech into prompt
 * and continuation and keeps the usable ones, the second draws each rejected side (a "swap" needs the other
 * speeches' continuations, hence the first pass) and writes the records. */
#include "data/make_pairs.h"

#include "core/names.h"

#include <stdlib.h>
#include <string.h>

#include "core/fs.h"
#include "data/convert.h"
#include "data/example.h"
#include "data/record.h"
#include "data/tokenizer.h"

static const char *const mode_names[] = {"shuffle", "swap", "mixed"};

void dl_make_pairs_defaults(dl_make_pairs_options *o) {
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->prompt_bytes = 40;
    o->response_bytes = 64;
    o->rejected = DL_REJECT_SHUFFLE;
}

dl_status dl_reject_mode_parse(const char *name, dl_reject_mode *mode) {
    DL_REQUIRE(name && mode, DL_ERR_INVALID, "dl_reject_mode_parse: NULL argument");
    int i;
    DL_CHECK(dl_name_lookup(name, mode_names, 3, "rejected mode", &i));
    *mode = (dl_reject_mode)i;
    return DL_OK;
}

const char *dl_reject_mode_name(dl_reject_mode mode) {
    return (unsigned)mode < 3 ? mode_names[mode] : "unknown";
}

static int is_space(uint8_t c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

static size_t count_words(const uint8_t *t, size_t len) {
    size_t words = 0;
    for (size_t i = 0; i < len; i++)
        words += !is_space(t[i]) && (i == 0 || is_space(t[i - 1]));
    return words;
}

int dl_speech_split(const uint8_t *speech, size_t len, int prompt_bytes, int response_bytes, size_t *prompt_end,
                    size_t *chosen_end) {
    if (!speech || !prompt_end || !chosen_end || prompt_bytes < 2 || response_bytes < 2)
        return 0;
    /* The speaker line ("NAME:") belongs to the prompt whole. */
    size_t body = 0;
    const uint8_t *nl = memchr(speech, '\n', len);
    if (nl && nl > speech && nl[-1] == ':')
        body = (size_t)(nl - speech) + 1;
    /* The prompt ends just after the last whitespace within prompt_bytes of the body, but not before half of it. */
    size_t lo = body + (size_t)prompt_bytes / 2, hi = body + (size_t)prompt_bytes;
    if (hi >= len)
        return 0;
    size_t p = hi;
    while (p > lo && !is_space(speech[p]))
        p--;
    if (!is_space(speech[p]))
        return 0;
    size_t start = p + 1;
    while (start < len && is_space(speech[start]))
        start++;
    /* The continuation ends at a word end within response_bytes, or at the end of the speech. */
    size_t limit = start + (size_t)response_bytes, end;
    if (limit >= len) {
        end = len;
    } else {
        end = limit;
        while (end > start && !is_space(speech[end]))
            end--;
    }
    while (end > start && is_space(speech[end - 1]))
        end--;
    if (end - start < (size_t)response_bytes / 2 || count_words(speech + start, end - start) < 4)
        return 0;
    *prompt_end = start;
    *chosen_end = end;
    return 1;
}

int dl_shuffle_words(const uint8_t *text, size_t len, uint8_t *out, dl_rng *rng) {
    if (!text || !out || !rng)
        return 0;
    size_t words = count_words(text, len);
    memcpy(out, text, len);
    if (words < 2)
        return 0;
    size_t *begin = malloc(words * sizeof *begin), *wlen = malloc(words * sizeof *wlen);
    size_t *order = malloc(words * sizeof *order);
    int changed = 0;
    if (begin && wlen && order) {
        size_t w = 0;
        for (size_t i = 0; i < len; i++) {
            if (is_space(text[i]) || (i > 0 && !is_space(text[i - 1])))
                continue;
            size_t j = i;
            while (j < len && !is_space(text[j]))
                j++;
            begin[w] = i;
            wlen[w] = j - i;
            w++;
        }
        /* A draw must move at least half of the words (and two), or the rejected side is nearly the chosen one and
         * the pair teaches little; a few draws, since repeated words can make a permutation spell the same text. */
        size_t need = words / 2 > 2 ? words / 2 : 2;
        for (int attempt = 0; attempt < 16 && !changed; attempt++) {
            for (size_t i = 0; i < words; i++)
                order[i] = i;
            for (size_t i = words - 1; i > 0; i--) { /* Fisher-Yates */
                size_t k = (size_t)dl_rng_below(rng, (uint64_t)i + 1);
                size_t t = order[i];
                order[i] = order[k];
                order[k] = t;
            }
            /* The k-th word slot gets word order[k]; whitespace runs are copied between slots as they were. */
            size_t at = 0, slot = 0;
            for (size_t i = 0; i < len;) {
                if (is_space(text[i])) {
                    out[at++] = text[i++];
                    continue;
                }
                size_t src = order[slot++];
                memcpy(out + at, text + begin[src], wlen[src]);
                at += wlen[src];
                while (i < len && !is_space(text[i]))
                    i++;
            }
            size_t moved = 0;
            for (size_t k = 0; k < words; k++)
                moved += wlen[order[k]] != wlen[k] || memcmp(text + begin[order[k]], text + begin[k], wlen[k]) != 0;
            changed = moved >= need;
        }
        if (!changed)
            memcpy(out, text, len);
    }
    free(begin);
    free(wlen);
    free(order);
    return changed;
}

/* ---- the whole job ------------------------------------------------------------------------------------------ */

typedef struct speech {
    size_t offset, len;         /* in the speech buffer */
    size_t prompt_end, chosen_end; /* relative to the speech */
} speech;

typedef struct maker {
    uint8_t *buf;
    size_t len, cap;
    speech *speeches;
    size_t count, speech_cap;
    uint64_t seen;
} maker;

static dl_status collect(void *ctx, const uint8_t *doc, size_t len, uint64_t first_line) {
    (void)first_line;
    maker *m = ctx;
    m->seen++;
    if (m->len + len > m->cap) {
        size_t cap = m->cap ? m->cap : 1 << 16;
        while (cap < m->len + len)
            cap *= 2;
        uint8_t *grown = realloc(m->buf, cap);
        DL_REQUIRE(grown != NULL, DL_ERR_NOMEM, "cannot hold %zu bytes of speeches", cap);
        m->buf = grown;
        m->cap = cap;
    }
    if (m->count == m->speech_cap) {
        size_t cap = m->speech_cap ? 2 * m->speech_cap : 1024;
        speech *grown = realloc(m->speeches, cap * sizeof *grown);
        DL_REQUIRE(grown != NULL, DL_ERR_NOMEM, "cannot hold %zu speeches", cap);
        m->speeches = grown;
        m->speech_cap = cap;
    }
    memcpy(m->buf + m->len, doc, len);
    m->speeches[m->count++] = (speech){m->len, len, 0, 0};
    m->len += len;
    return DL_OK;
}

static dl_status check_options(const dl_make_pairs_options *o) {
    DL_REQUIRE(o != NULL, DL_ERR_INVALID, "dl_make_pairs: no options");
    DL_REQUIRE(o->input && o->input[0], DL_ERR_INVALID, "no input text given");
    DL_REQUIRE(o->output && o->output[0], DL_ERR_INVALID, "no output file given (-o OUT.tfrecord)");
    DL_REQUIRE(o->valid_fraction >= 0.0 && o->valid_fraction < 1.0, DL_ERR_INVALID,
               "the valid fraction must be in [0, 1), got %g", o->valid_fraction);
    if (o->valid_fraction > 0.0) {
        DL_REQUIRE(o->valid_output && o->valid_output[0], DL_ERR_INVALID,
                   "a valid fraction needs a valid file to write (--valid-out VALID.tfrecord)");
        DL_REQUIRE(strcmp(o->valid_output, o->output) != 0, DL_ERR_INVALID,
                   "the valid file and the output file are the same (%s)", o->output);
    }
    DL_CHECK(dl_check_input_file(o->input, "check the input path"));
    DL_CHECK(dl_check_output_not_input(o->output, o->input, "-o"));
    if (o->valid_fraction > 0.0)
        DL_CHECK(dl_check_output_not_input(o->valid_output, o->input, "--valid-out"));
    DL_REQUIRE(o->prompt_bytes >= 8 && o->prompt_bytes <= 1 << 20, DL_ERR_INVALID,
               "--prompt-bytes must be in [8, 1048576], got %d", o->prompt_bytes);
    DL_REQUIRE(o->response_bytes >= 8 && o->response_bytes <= 1 << 20, DL_ERR_INVALID,
               "--response-bytes must be in [8, 1048576], got %d", o->response_bytes);
    DL_REQUIRE((unsigned)o->rejected <= DL_REJECT_MIXED, DL_ERR_INVALID, "unknown rejected mode %d",
               (int)o->rejected);
    return DL_OK;
}

/* Reads the speeches of the input and keeps those that split into prompt and continuation. */
static dl_status read_speeches(const dl_make_pairs_options *o, maker *m, dl_make_pairs_result *r) {
    uint8_t *text = NULL;
    size_t len = 0;
    DL_CHECK(dl_read_file(o->input, &text, &len));
    dl_text_splitter sp;
    dl_text_splitter_init(&sp, DL_DOC_SPLIT_BLANK);
    dl_status s = DL_OK;
    for (size_t i = 0; i < len && s == DL_OK;) {
        const uint8_t *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) + 1 : len;
        s = dl_text_splitter_feed(&sp, (const char *)text + i, end - i, collect, m);
        i = end;
    }
    if (s == DL_OK)
        s = dl_text_splitter_finish(&sp, collect, m);
    dl_text_splitter_free(&sp);
    free(text);
    DL_CHECK(s);
    r->speeches = m->seen;
    size_t kept = 0;
    for (size_t i = 0; i < m->count; i++) {
        speech sp_i = m->speeches[i];
        if (!dl_speech_split(m->buf + sp_i.offset, sp_i.len, o->prompt_bytes, o->response_bytes, &sp_i.prompt_end,
                             &sp_i.chosen_end)) {
            r->too_short++;
            continue;
        }
        m->speeches[kept++] = sp_i;
    }
    m->count = kept;
    if (kept < 2) {
        dl_status e = DL_FAIL(DL_ERR_INVALID, "%s: %zu usable speeches (blocks of lines separated by blank lines, "
                                              "at least --prompt-bytes + --response-bytes long); need at least 2",
                              o->input, kept);
        dl_error_hint("use a longer text, or lower --prompt-bytes / --response-bytes");
        return e;
    }
    return DL_OK;
}

static dl_status tokens_of(dl_tokenizer *tok, const uint8_t *bytes, size_t len, dl_i32_array *out) {
    return dl_tokenizer_encode(tok, bytes, len, out);
}

dl_status dl_make_pairs(const dl_make_pairs_options *o, dl_make_pairs_result *result) {
    DL_CHECK(check_options(o));
    dl_make_pairs_result r;
    memset(&r, 0, sizeof r);
    maker m;
    memset(&m, 0, sizeof m);
    dl_record_writer *train = NULL, *valid = NULL;
    dl_pref_pair pair;
    memset(&pair, 0, sizeof pair);
    uint8_t *payload = NULL, *scratch = NULL;
    size_t payload_cap = 0;
    dl_tokenizer *tok = NULL;
    dl_status s = o->tokenizer ? dl_tokenizer_load(o->tokenizer, &tok) : dl_tokenizer_new_bytes(&tok);
    if (s != DL_OK)
        dl_error_context("--tokenizer");
    if (s == DL_OK)
        s = dl_tokenizer_stamp_remove(o->output);
    if (s == DL_OK && o->valid_fraction > 0.0)
        s = dl_tokenizer_stamp_remove(o->valid_output);
    if (s == DL_OK)
        s = read_speeches(o, &m, &r);
    if (s == DL_OK) {
        size_t longest = 0;
        for (size_t i = 0; i < m.count; i++)
            if (m.speeches[i].len > longest)
                longest = m.speeches[i].len;
        scratch = malloc(longest + 1);
        if (!scratch)
            s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu bytes", longest + 1);
    }
    if (s == DL_OK)
        s = dl_record_writer_open(&train, o->output);
    if (s == DL_OK && o->valid_fraction > 0.0)
        s = dl_record_writer_open(&valid, o->valid_output);
    for (size_t i = 0; i < m.count && s == DL_OK; i++) {
        const speech *sp = &m.speeches[i];
        const uint8_t *base = m.buf + sp->offset;
        const uint8_t *chosen = base + sp->prompt_end;
        size_t chosen_len = sp->chosen_end - sp->prompt_end;
        dl_rng rng;
        dl_rng_init(&rng, o->seed, ((uint64_t)DL_STREAM_DATA << 32) | (uint64_t)i);
        int swap = o->rejected == DL_REJECT_SWAP || (o->rejected == DL_REJECT_MIXED && (dl_rng_u32(&rng) & 1));
        const uint8_t *rejected = scratch;
        size_t rejected_len = chosen_len;
        if (!swap && !dl_shuffle_words(chosen, chosen_len, scratch, &rng))
            swap = 1; /* words that no order changes (all the same): another speech's continuation instead */
        if (swap) {
            /* Any other speech with a different continuation; the draw skips this one. */
            const speech *other = NULL;
            for (int attempt = 0; attempt < 16 && !other; attempt++) {
                size_t j = (size_t)dl_rng_below(&rng, (uint64_t)m.count - 1);
                if (j >= i)
                    j++;
                const speech *c = &m.speeches[j];
                size_t clen = c->chosen_end - c->prompt_end;
                if (clen != chosen_len || memcmp(m.buf + c->offset + c->prompt_end, chosen, clen) != 0)
                    other = c;
            }
            if (!other) {
                r.too_short++;
                continue;
            }
            rejected = m.buf + other->offset + other->prompt_end;
            rejected_len = other->chosen_end - other->prompt_end;
            r.swapped++;
        } else {
            r.shuffled++;
        }
        s = tokens_of(tok, base, sp->prompt_end, &pair.prompt);
        if (s == DL_OK)
            s = tokens_of(tok, chosen, chosen_len, &pair.chosen);
        if (s == DL_OK)
            s = tokens_of(tok, rejected, rejected_len, &pair.rejected);
        size_t n = 0;
        if (s == DL_OK)
            s = dl_example_encode_pair(&pair, &payload, &payload_cap, &n);
        if (s != DL_OK)
            break;
        uint64_t k = r.pairs + r.valid_pairs;
        int to_valid = valid && dl_convert_is_valid(o->seed, k, o->valid_fraction);
        s = dl_record_writer_append(to_valid ? valid : train, payload, n);
        if (to_valid)
            r.valid_pairs++;
        else
            r.pairs++;
        r.tokens += pair.prompt.len + pair.chosen.len + pair.rejected.len;
    }
    if (s == DL_OK && (r.pairs == 0 || (valid && r.valid_pairs == 0))) {
        s = DL_FAIL(DL_ERR_INVALID, "%s: the split left %llu pairs for %s and %llu for %s", o->input,
                    (unsigned long long)r.pairs, o->output, (unsigned long long)r.valid_pairs,
                    o->valid_output ? o->valid_output : "the valid file");
        dl_error_hint("use a longer text or another --valid-fraction");
    }
    if (s == DL_OK) {
        s = dl_record_writer_close(train);
        train = NULL;
    }
    if (s == DL_OK && valid) {
        s = dl_record_writer_close(valid);
        valid = NULL;
        if (s != DL_OK) { /* no train file without its valid file */
            remove(o->output);
            char *idx = dl_path_join_suffix(o->output, ".idx");
            if (idx)
                remove(idx);
            free(idx);
        }
    }
    if (s == DL_OK) {
        s = dl_tokenizer_stamp_write(o->output, tok);
        if (s == DL_OK && o->valid_fraction > 0.0)
            s = dl_tokenizer_stamp_write(o->valid_output, tok);
        if (s != DL_OK) { /* pairs without their stamp would read as byte-level */
            const char *outs[2] = {o->output, o->valid_fraction > 0.0 ? o->valid_output : NULL};
            for (int k = 0; k < 2 && outs[k]; k++) {
                remove(outs[k]);
                char *idx = dl_path_join_suffix(outs[k], ".idx");
                if (idx)
                    remove(idx);
                free(idx);
                (void)dl_tokenizer_stamp_remove(outs[k]);
            }
        }
    }
    dl_tokenizer_free(tok);
    dl_record_writer_abort(train);
    dl_record_writer_abort(valid);
    dl_pref_pair_free(&pair);
    free(payload);
    free(scratch);
    free(m.buf);
    free(m.speeches);
    if (s == DL_OK && result)
        *result = r;
    return s;
}
