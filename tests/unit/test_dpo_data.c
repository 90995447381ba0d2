/* test_dpo_data.c — the data side of DPO: every pair of a batch names the record it was read from (across ranks,
 * shuffles and epochs), data.overlong truncates / drops / rejects long pairs and counts them, and `data make-pairs`
 * cuts speeches, shuffles words and writes reproducible train/valid pair files. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/dataset.h"
#include "data/example.h"
#include "data/loader.h"
#include "data/make_pairs.h"
#include "data/pack.h"

enum { NREC = 40, T = 24 };

/* Record r: prompt of 3 + r % 4 tokens, chosen of 2 + r % 5, rejected of 1 + r % 3; every token encodes its record
 * (r·10 + side), so a batch document can be traced back. With long_every = k, every k-th record gets a 30-token
 * prompt: longer than a row. */
typedef struct mem_pairs {
    int long_every; /* every k-th record is too long for a row (0: none) */
} mem_pairs;

static size_t side_len(const mem_pairs *m, uint64_t r, int side) {
    if (side == 0)
        return m->long_every && r % (uint64_t)m->long_every == 0 ? 30 : 3 + r % 4;
    return side == 1 ? 2 + r % 5 : 1 + r % 3;
}

static dl_status mem_read_pair(void *ctx, uint64_t record, dl_pref_pair *pair) {
    const mem_pairs *m = ctx;
    dl_i32_array *sides[3] = {&pair->prompt, &pair->chosen, &pair->rejected};
    for (int k = 0; k < 3; k++) {
        size_t n = side_len(m, record, k);
        DL_CHECK(dl_i32_array_reserve(sides[k], n));
        for (size_t i = 0; i < n; i++)
            sides[k]->data[i] = (int32_t)(record * 10 + (uint64_t)k);
        sides[k]->len = n;
    }
    return DL_OK;
}

static void source(mem_pairs *m, dl_doc_source *src, int long_every) {
    m->long_every = long_every;
    memset(src, 0, sizeof *src);
    src->ctx = m;
    src->num_records = NREC;
    src->name = "mem-pairs";
    src->read_pair = mem_read_pair;
}

static dl_loader_config pairs_config(uint32_t world, uint32_t rank, int overlong) {
    dl_loader_config c;
    dl_loader_config_default(&c);
    c.kind = DL_DATA_PAIRS;
    c.batch_rows = 4;
    c.seq_len = T;
    c.pack_window = 6;
    c.seed = 11;
    c.world = world;
    c.rank = rank;
    c.epochs = 2;
    c.prefetch = rank % 2;
    c.overlong = overlong;
    return c;
}

/* The record a document's last token was written for (tokens are record·10 + side; the last is a response's). */
static uint64_t doc_record(const dl_token_batch *b, int doc) {
    return (uint64_t)b->tokens[b->cu_seqlens[doc + 1] - 1] / 10;
}

static void pair_records_name_the_records_read(void **state) {
    (void)state;
    mem_pairs m;
    dl_doc_source src;
    source(&m, &src, 0);
    for (uint32_t world = 1; world <= 3; world++) {
        uint32_t seen[NREC] = {0};
        for (uint32_t rank = 0; rank < world; rank++) {
            dl_loader_config c = pairs_config(world, rank, DL_PACK_TRUNCATE);
            dl_loader *l = NULL;
            assert_int_equal(dl_loader_open(&l, &src, &c, NULL, 0), DL_OK);
            for (;;) {
                const dl_batch *batch;
                assert_int_equal(dl_loader_next(l, &batch), DL_OK);
                if (batch->end_of_data)
                    break;
                const dl_token_batch *b = &batch->tokens;
                assert_int_equal(dl_token_batch_check(b, 1), DL_OK);
                assert_int_equal(b->num_truncated, 0);
                for (int p = 0; p < b->num_pairs; p++) {
                    uint64_t r = b->pair_record[p];
                    assert_true(r < NREC);
                    if (doc_record(b, b->pair_chosen[p]) != r || doc_record(b, b->pair_rejected[p]) != r)
                        DL_TEST_FAIL("world %u rank %u: pair %d says record %llu, its documents hold %llu / %llu",
                                     world, rank, p, (unsigned long long)r,
                                     (unsigned long long)doc_record(b, b->pair_chosen[p]),
                                     (unsigned long long)doc_record(b, b->pair_rejected[p]));
                    seen[r]++;
                }
            }
            dl_loader_close(l);
        }
        for (int r = 0; r < NREC; r++)
            if (seen[r] != 2) /* two epochs */
                DL_TEST_FAIL("world %u: record %d seen %u times, want 2", world, r, seen[r]);
    }
}

/* Runs one epoch on one rank; returns the pairs seen and adds the batches' truncated / dropped counts. */
static int run_epoch(const dl_doc_source *src, int overlong, int *truncated, int *dropped, dl_status *status) {
    dl_loader_config c = pairs_config(1, 0, overlong);
    c.epochs = 1;
    dl_loader *l = NULL;
    assert_int_equal(dl_loader_open(&l, src, &c, NULL, 0), DL_OK);
    int pairs = 0;
    *truncated = *dropped = 0;
    *status = DL_OK;
    for (;;) {
        const dl_batch *batch;
        dl_status s = dl_loader_next(l, &batch);
        if (s != DL_OK) {
            *status = s;
            break;
        }
        *truncated += batch->tokens.num_truncated;
        *dropped += batch->tokens.num_dropped;
        if (batch->end_of_data)
            break;
        const dl_token_batch *b = &batch->tokens;
        assert_int_equal(dl_token_batch_check(b, 1), DL_OK);
        for (int p = 0; p < b->num_pairs; p++) {
            int32_t c0 = b->pair_chosen[p];
            int len = b->cu_seqlens[c0 + 1] - b->cu_seqlens[c0];
            assert_true(len <= T);
            if (overlong == DL_PACK_DROP && b->pair_record[p] % 5 == 0)
                DL_TEST_FAIL("record %llu is too long but was not dropped", (unsigned long long)b->pair_record[p]);
        }
        pairs += b->num_pairs;
    }
    if (*status == DL_OK) {
        dl_loader_stats st;
        dl_loader_stats_get(l, &st);
        assert_int_equal(st.truncated, (uint64_t)*truncated);
        assert_int_equal(st.dropped, (uint64_t)*dropped);
    }
    dl_loader_close(l);
    return pairs;
}

static void overlong_pairs_are_truncated_dropped_or_rejected_and_counted(void **state) {
    (void)state;
    mem_pairs m;
    dl_doc_source src;
    source(&m, &src, 5); /* records 0, 5, 10, ...: 8 pairs with a 30-token prompt, longer than a row of 24 */
    int truncated, dropped;
    dl_status s;
    assert_int_equal(run_epoch(&src, DL_PACK_TRUNCATE, &truncated, &dropped, &s), NREC);
    assert_int_equal(s, DL_OK);
    assert_int_equal(truncated, NREC / 5);
    assert_int_equal(dropped, 0);
    assert_int_equal(run_epoch(&src, DL_PACK_DROP, &truncated, &dropped, &s), NREC - NREC / 5);
    assert_int_equal(s, DL_OK);
    assert_int_equal(truncated, 0);
    assert_int_equal(dropped, NREC / 5);
    run_epoch(&src, DL_PACK_ERROR, &truncated, &dropped, &s);
    assert_int_equal(s, DL_ERR_FORMAT);
    const char *msg = dl_error_message();
    if (!strstr(msg, "data.overlong") || !strstr(msg, "exceed data.seq_len 24") || !strstr(msg, "record "))
        DL_TEST_FAIL("message does not name the record, seq_len and key: %s", msg);
    /* A split would change the log-probs the loss compares: not allowed for pairs. */
    dl_loader_config c = pairs_config(1, 0, 3);
    dl_loader *l = NULL;
    assert_int_equal(dl_loader_open(&l, &src, &c, NULL, 0), DL_ERR_INVALID);
    assert_non_null(strstr(dl_error_message(), "data.overlong"));
}

/* ---- make-pairs ---------------------------------------------------------------------------------------------- */

static void speech_split_cuts_at_words(void **state) {
    (void)state;
    const char *speech = "KING RICHARD III:\nNow is the winter of our discontent\nMade glorious summer by this "
                         "sun of York;\nAnd all the clouds that lour'd upon our house";
    size_t len = strlen(speech), pe = 0, ce = 0;
    assert_int_equal(dl_speech_split((const uint8_t *)speech, len, 24, 32, &pe, &ce), 1);
    /* The prompt is the speaker line and whole words of the opening; the continuation starts with a word. */
    const char *prompt = "KING RICHARD III:\nNow is the winter of our ", *chosen = "discontent\nMade glorious summer";
    assert_int_equal(pe, strlen(prompt));
    assert_memory_equal(speech, prompt, pe);
    assert_int_equal(ce - pe, strlen(chosen));
    assert_memory_equal(speech + pe, chosen, ce - pe);
    /* Too short for both parts, or a continuation of fewer than 4 words. */
    const char *short_speech = "ALL:\nSpeak, speak.";
    assert_int_equal(dl_speech_split((const uint8_t *)short_speech, strlen(short_speech), 24, 32, &pe, &ce), 0);
    const char *few_words = "A:\nwordy words in a line here xx supercalifragilisticexpialidocious-ly-long-token";
    assert_int_equal(dl_speech_split((const uint8_t *)few_words, strlen(few_words), 24, 40, &pe, &ce), 0);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Splits into sorted words and the whitespace runs, for comparing multisets. */
static size_t words_of(const char *text, size_t len, char **words, char *ws, size_t *ws_len) {
    size_t n = 0, w = 0;
    for (size_t i = 0; i < len;) {
        if (text[i] == ' ' || text[i] == '\n') {
            ws[w++] = text[i++];
            continue;
        }
        size_t j = i;
        while (j < len && text[j] != ' ' && text[j] != '\n')
            j++;
        words[n] = strndup(text + i, j - i);
        n++;
        ws[w++] = '|'; /* a word slot */
        i = j;
    }
    *ws_len = w;
    qsort(words, n, sizeof *words, cmp_str);
    return n;
}

/* The word in slot k (k-th run of non-whitespace), as a length and a pointer. */
static const char *word_at(const char *text, size_t len, size_t k, size_t *wlen) {
    size_t seen = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ' || text[i] == '\n' || (i > 0 && text[i - 1] != ' ' && text[i - 1] != '\n'))
            continue;
        size_t j = i;
        while (j < len && text[j] != ' ' && text[j] != '\n')
            j++;
        if (seen++ == k) {
            *wlen = j - i;
            return text + i;
        }
    }
    *wlen = 0;
    return NULL;
}

static void shuffled_words_keep_words_whitespace_and_length(void **state) {
    (void)state;
    const char *text = "this fortnight what we intend to do,\nwhich now we'll show 'em in";
    size_t len = strlen(text);
    char out[128];
    dl_rng rng;
    dl_test_rng(&rng, 1);
    for (int trial = 0; trial < 20; trial++) {
        assert_int_equal(dl_shuffle_words((const uint8_t *)text, len, (uint8_t *)out, &rng), 1);
        assert_true(memcmp(out, text, len) != 0);
        char *wa[32], *wb[32], sa[128], sb[128];
        size_t la, lb;
        size_t na = words_of(text, len, wa, sa, &la), nb = words_of(out, len, wb, sb, &lb);
        assert_int_equal(na, nb);
        assert_int_equal(la, lb);
        assert_memory_equal(sa, sb, la); /* whitespace runs in their order, word slots where they were */
        size_t moved = 0;
        for (size_t k = 0; k < na; k++) {
            size_t l1, l2;
            const char *w1 = word_at(text, len, k, &l1), *w2 = word_at(out, len, k, &l2);
            moved += l1 != l2 || memcmp(w1, w2, l1) != 0;
        }
        if (moved < na / 2)
            DL_TEST_FAIL("only %zu of %zu words moved: '%.*s'", moved, na, (int)len, out);
        for (size_t i = 0; i < na; i++) {
            assert_string_equal(wa[i], wb[i]);
            free(wa[i]);
            free(wb[i]);
        }
    }
    /* One distinct word: no order changes it. */
    const char *same = "la la la la";
    assert_int_equal(dl_shuffle_words((const uint8_t *)same, strlen(same), (uint8_t *)out, &rng), 0);
    assert_memory_equal(out, same, strlen(same));
}

static char *temp_path(const char *name) {
    char *path = malloc(512);
    assert_non_null(path);
    snprintf(path, 512, "/tmp/dealer_test_dpo_data_%d_%s", (int)getpid(), name);
    return path;
}

static void remove_records(const char *path) {
    char idx[600];
    snprintf(idx, sizeof idx, "%s.idx", path);
    remove(path);
    remove(idx);
}

/* Writes `speeches` speeches of about 200 bytes and one short one. */
static char *write_text(int speeches) {
    char *path = temp_path("text.txt");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "ALL:\nSpeak, speak.\n\n");
    for (int s = 0; s < speeches; s++) {
        fprintf(f, "SPEAKER %d:\n", s);
        for (int line = 0; line < 4; line++)
            fprintf(f, "word%d of line %d spoken by %d with more words\n", line * 7 + s % 5, line, s);
        fprintf(f, "\n");
    }
    fclose(f);
    return path;
}

static void read_all(const char *path, uint8_t **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc(*len + 1);
    assert_int_equal(fread(*data, 1, *len, f), *len);
    fclose(f);
}

static void make_pairs_writes_reproducible_train_and_valid_files(void **state) {
    (void)state;
    char *text = write_text(60);
    char *train = temp_path("train.tfrecord"), *valid = temp_path("valid.tfrecord");
    dl_make_pairs_options o;
    dl_make_pairs_defaults(&o);
    o.input = text;
    o.output = train;
    o.valid_output = valid;
    o.valid_fraction = 0.25;
    o.seed = 5;
    o.prompt_bytes = 48;
    o.response_bytes = 40;
    o.rejected = DL_REJECT_MIXED;
    dl_make_pairs_result r;
    if (dl_make_pairs(&o, &r) != DL_OK)
        DL_TEST_FAIL("make-pairs: %s", dl_error_message());
    assert_int_equal(r.speeches, 61);
    assert_int_equal(r.too_short, 1);
    assert_int_equal(r.pairs + r.valid_pairs, 60);
    assert_true(r.valid_pairs > 5 && r.valid_pairs < 30);
    assert_true(r.shuffled > 10 && r.swapped > 10);
    assert_int_equal(r.shuffled + r.swapped, 60);
    /* Every record decodes; prompts start with their speaker line; chosen ≠ rejected. */
    const char *files[2] = {train, valid};
    dl_dataset *ds;
    assert_int_equal(dl_dataset_open(&ds, files, 2), DL_OK);
    assert_int_equal(dl_dataset_count(ds), 60);
    dl_doc_source src;
    dl_dataset_source(ds, &src);
    dl_pref_pair pair;
    memset(&pair, 0, sizeof pair);
    for (uint64_t i = 0; i < 60; i++) {
        assert_int_equal(src.read_pair(src.ctx, i, &pair), DL_OK);
        assert_true(pair.prompt.len > 8 && pair.chosen.len >= 20 && pair.chosen.len <= 40 && pair.rejected.len > 0);
        assert_true(pair.prompt.data[0] == 'S');
        int same = pair.chosen.len == pair.rejected.len &&
                   memcmp(pair.chosen.data, pair.rejected.data, pair.chosen.len * sizeof(int32_t)) == 0;
        assert_false(same);
    }
    dl_pref_pair_free(&pair);
    dl_dataset_close(ds);
    /* Same text and seed: the same bytes. */
    uint8_t *first, *second;
    size_t first_len, second_len;
    read_all(train, &first, &first_len);
    assert_int_equal(dl_make_pairs(&o, &r), DL_OK);
    read_all(train, &second, &second_len);
    assert_int_equal(first_len, second_len);
    assert_memory_equal(first, second, first_len);
    free(first);
    free(second);
    remove_records(train);
    remove_records(valid);
    remove(text);
    free(text);
    free(train);
    free(valid);
}

static void make_pairs_bad_input_writes_nothing(void **state) {
    (void)state;
    char *text = write_text(1); /* one usable speech: too few to make pairs from */
    char *train = temp_path("bad.tfrecord");
    dl_make_pairs_options o;
    dl_make_pairs_defaults(&o);
    o.input = text;
    o.output = train;
    assert_int_equal(dl_make_pairs(&o, NULL), DL_ERR_INVALID);
    assert_non_null(strstr(dl_error_message(), "usable speeches"));
    assert_int_equal(access(train, F_OK), -1);
    o.input = "/nonexistent/text.txt";
    assert_int_equal(dl_make_pairs(&o, NULL), DL_ERR_INVALID);
    assert_non_null(strstr(dl_error_message(), "/nonexistent/text.txt"));
    o.input = text;
    o.prompt_bytes = 4;
    assert_int_equal(dl_make_pairs(&o, NULL), DL_ERR_INVALID);
    dl_reject_mode mode;
    assert_int_equal(dl_reject_mode_parse("reverse", &mode), DL_ERR_INVALID);
    assert_int_equal(dl_reject_mode_parse("swap", &mode), DL_OK);
    assert_int_equal(mode, DL_REJECT_SWAP);
    remove(text);
    free(text);
    free(train);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pair_records_name_the_records_read),
        cmocka_unit_test(overlong_pairs_are_truncated_dropped_or_rejected_and_counted),
        cmocka_unit_test(speech_split_cuts_at_words),
        cmocka_unit_test(shuffled_words_keep_words_whitespace_and_length),
        cmocka_unit_test(make_pairs_writes_reproducible_train_and_valid_files),
        cmocka_unit_test(make_pairs_bad_input_writes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
