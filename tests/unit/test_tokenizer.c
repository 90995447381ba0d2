/* test_tokenizer.c — the BPE tokenizer on its own: the committed fixture vocabulary gives the ids Hugging Face
 * `tokenizers` gives (goldens printed by the tokenizers wheel, see tests/fixtures/tokenizer/make_tokenizer.py),
 * invalid UTF-8 is replaced as tokenizers' str conversion does, decode inverts encode, the streaming decoder never
 * emits half a character, the hash ignores JSON formatting, training and saving round-trip, the stamp beside record
 * files refuses another tokenizer, and bad files fail with clear messages. (Whole-corpus equality with the wheel is
 * tests/e2e/test_tokenizer_hf.sh.) */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fs.h"
#include "data/tokenizer.h"
#include "data/tokenizer_internal.h"

#define ASSERT_OK(expr)                                                                                          \
    do {                                                                                                         \
        dl_status s_ = (expr);                                                                                   \
        if (s_ != DL_OK)                                                                                         \
            DL_TEST_FAIL("%s failed: %s", #expr, dl_error_message());                                            \
    } while (0)

static const char *fixture(void) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/tokenizer/tokenizer.json", DEALER_SOURCE_DIR);
    return path;
}

static void expect_ids(dl_tokenizer *tok, const char *text, size_t len, const int32_t *want, size_t n) {
    dl_i32_array ids = {0};
    ASSERT_OK(dl_tokenizer_encode(tok, text, len, &ids));
    if (ids.len != n)
        DL_TEST_FAIL("'%.*s': %zu ids, want %zu", (int)len, text, ids.len, n);
    for (size_t i = 0; i < n; i++)
        if (ids.data[i] != want[i])
            DL_TEST_FAIL("'%.*s': id %zu is %d, want %d", (int)len, text, i, (int)ids.data[i], (int)want[i]);
    dl_i32_array_free(&ids);
}

static void expect_failure(dl_status got, dl_status want, const char *fragment) {
    if (got != want || !strstr(dl_error_message(), fragment))
        DL_TEST_FAIL("got %s '%s', want %s with '%s'", dl_status_name(got), dl_error_message(), dl_status_name(want),
                     fragment);
    dl_error_clear();
}

static void fixture_ids_equal_tokenizers(void **state) {
    (void)state;
    dl_tokenizer *tok;
    ASSERT_OK(dl_tokenizer_load(fixture(), &tok));
    assert_int_equal(dl_tokenizer_kind_of(tok), DL_TOKENIZER_BPE);
    assert_int_equal(dl_tokenizer_vocab_size(tok), 512);
    assert_int_equal(dl_tokenizer_num_merges(tok), 255);
    assert_int_equal(dl_tokenizer_eos_id(tok), 0);
    assert_true(dl_tokenizer_is_special(tok, 0));
    assert_false(dl_tokenizer_is_special(tok, 1));
    /* goldens from tokenizers.Tokenizer.from_file(fixture).encode(text).ids */
    static const int32_t citizen[] = {38, 314, 296, 421, 275, 73, 90, 280, 26, 199,
                                      34, 69, 70, 370, 332, 290, 371, 309, 316};
    const char *t1 = "First Citizen:\nBefore we proceed";
    expect_ids(tok, t1, strlen(t1), citizen, sizeof citizen / sizeof citizen[0]);
    static const int32_t mixed[] = {72, 128, 103, 274, 79, 221, 173, 254, 240, 236, 0, 221, 221, 88};
    const char *t2 = "h\xc3\xa9llo \xf0\x9f\x91\x8d<|endoftext|>  x";
    expect_ids(tok, t2, strlen(t2), mixed, sizeof mixed / sizeof mixed[0]);
    /* invalid UTF-8: as tokenizers on bytes.decode("utf-8", "replace") */
    static const int32_t replaced[] = {65, 172, 124, 122, 66};
    expect_ids(tok, "a\xff" "b", 3, replaced, 5);
    expect_ids(tok, "a\xef\xbf\xbd" "b", 5, replaced, 5);
    expect_ids(tok, "", 0, NULL, 0);
    dl_tokenizer_free(tok);
}

static void decode_inverts_encode(void **state) {
    (void)state;
    dl_tokenizer *tok, *copy;
    ASSERT_OK(dl_tokenizer_load(fixture(), &tok));
    ASSERT_OK(dl_tokenizer_clone(tok, &copy));
    dl_tokenizer_free(tok); /* the clone keeps the shared vocabulary alive */
    static const char *const texts[] = {
        "To be, or not to be: that is the question.\n",
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e e\xcc\x81 \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7 "
        "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9",
        "     \r\n\t\t  x  ", "<|endoftext|><|endoftext|>a<|endoft", "I'm they'll 123 4567",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        dl_i32_array ids = {0};
        ASSERT_OK(dl_tokenizer_encode(copy, texts[i], strlen(texts[i]), &ids));
        char *back;
        size_t len;
        ASSERT_OK(dl_tokenizer_decode(copy, ids.data, ids.len, &back, &len));
        if (len != strlen(texts[i]) || memcmp(back, texts[i], len) != 0)
            DL_TEST_FAIL("text %zu does not round-trip: '%s'", i, back);
        free(back);
        dl_i32_array_free(&ids);
    }
    /* every byte value survives as raw bytes through a byte-level tokenizer, and bad ids are refused */
    int32_t bad[] = {5, 512};
    char *text;
    size_t len;
    expect_failure(dl_tokenizer_decode(copy, bad, 2, &text, &len), DL_ERR_INVALID, "token id 512 is outside");
    dl_tokenizer_free(copy);
}

/* Pushes ids one by one and concatenates what the stream prints. */
static void stream_all(dl_tokenizer *tok, const int32_t *ids, size_t n, char *out, size_t *len, size_t *max_piece) {
    dl_token_stream s;
    dl_token_stream_init(&s);
    *len = 0;
    *max_piece = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p;
        size_t k;
        ASSERT_OK(dl_token_stream_push(&s, tok, ids[i], &p, &k));
        /* a piece is always whole characters: valid UTF-8 on its own */
        for (size_t j = 0; j < k;) {
            uint32_t cp;
            size_t w = dl_utf8_next((const uint8_t *)p + j, k - j, &cp);
            if (!w)
                DL_TEST_FAIL("push %zu printed a broken character at byte %zu", i, j);
            j += w;
        }
        memcpy(out + *len, p, k);
        *len += k;
        if (k > *max_piece)
            *max_piece = k;
    }
    const char *p;
    size_t k;
    ASSERT_OK(dl_token_stream_finish(&s, &p, &k));
    memcpy(out + *len, p, k);
    *len += k;
    dl_token_stream_free(&s);
}

static void stream_prints_whole_characters(void **state) {
    (void)state;
    dl_tokenizer *bytes;
    ASSERT_OK(dl_tokenizer_new_bytes(&bytes));
    const uint8_t text[] = "a\xc3\xa9\xf0\x9f\x91\x8d" "b";
    int32_t ids[16];
    size_t n = sizeof text - 1;
    for (size_t i = 0; i < n; i++)
        ids[i] = text[i];
    char out[64];
    size_t len, max_piece;
    /* "a", then "é" after its second byte; the emoji's first byte waits, and finish flushes it as U+FFFD */
    stream_all(bytes, ids, 4, out, &len, &max_piece);
    assert_int_equal(len, 6);
    assert_memory_equal(out, "a\xc3\xa9\xef\xbf\xbd", 6);
    /* the whole text: the 4-byte emoji comes out at once, after its 4th byte */
    stream_all(bytes, ids, n, out, &len, &max_piece);
    assert_int_equal(len, n);
    assert_memory_equal(out, text, n);
    assert_int_equal(max_piece, 4);
    /* bytes that can never form a character print as U+FFFD, as tokenizers decodes them */
    int32_t broken[] = {0xff, 'x', 0xe2, 0x82, 'y', 0xc3};
    stream_all(bytes, broken, 6, out, &len, &max_piece);
    const char want[] = "\xef\xbf\xbdx\xef\xbf\xbdy\xef\xbf\xbd";
    assert_int_equal(len, sizeof want - 1);
    assert_memory_equal(out, want, len);
    dl_tokenizer_free(bytes);
}

static void utf8_subparts_follow_unicode(void **state) {
    (void)state;
    /* maximal ill-formed subparts (Unicode 3.9, Table 3-8): what Python and Rust replace with one U+FFFD each */
    assert_int_equal(dl_utf8_bad_len((const uint8_t *)"\xe0\xa0" "A", 3), 2);
    assert_int_equal(dl_utf8_bad_len((const uint8_t *)"\xed\xa0\x80", 3), 1); /* a surrogate: 3 subparts */
    assert_int_equal(dl_utf8_bad_len((const uint8_t *)"\xf4\x90\x80\x80", 4), 1);
    assert_int_equal(dl_utf8_bad_len((const uint8_t *)"\xf0\x9f\x98", 3), 3);
    assert_int_equal(dl_utf8_bad_len((const uint8_t *)"\xc0\xaf", 2), 1);
    assert_true(dl_utf8_is_prefix((const uint8_t *)"\xf0\x9f", 2));
    assert_false(dl_utf8_is_prefix((const uint8_t *)"\xed\xa0", 2));
    for (int b = 0; b < 256; b++)
        assert_int_equal(dl_char_byte(dl_byte_char[b]), b);
}

static char *temp_path(const char *name) {
    static int counter;
    char *p = malloc(256);
    snprintf(p, 256, "/tmp/dealer_test_tok_%d_%d_%s", (int)getpid(), counter++, name);
    return p;
}

static void hash_ignores_formatting_and_save_round_trips(void **state) {
    (void)state;
    dl_tokenizer *tok, *again;
    ASSERT_OK(dl_tokenizer_load(fixture(), &tok));
    char *saved = temp_path("saved.json");
    ASSERT_OK(dl_tokenizer_save(tok, saved));
    ASSERT_OK(dl_tokenizer_load(saved, &again));
    assert_true(dl_tokenizer_hash(tok) == dl_tokenizer_hash(again));
    char hex[17];
    uint64_t parsed;
    dl_tokenizer_hash_hex(dl_tokenizer_hash(tok), hex);
    ASSERT_OK(dl_tokenizer_parse_hash(hex, &parsed));
    assert_true(parsed == dl_tokenizer_hash(tok));
    expect_failure(dl_tokenizer_parse_hash("xyz", &parsed), DL_ERR_FORMAT, "not a tokenizer hash");
    dl_tokenizer *bytes;
    ASSERT_OK(dl_tokenizer_new_bytes(&bytes));
    assert_true(dl_tokenizer_hash(bytes) == DL_TOKENIZER_BYTES_HASH);
    assert_true(dl_tokenizer_hash(tok) != DL_TOKENIZER_BYTES_HASH);
    expect_failure(dl_tokenizer_save(bytes, saved), DL_ERR_INVALID, "byte-level tokenizer has no tokenizer.json");

    /* the stamp: matching passes, another tokenizer names both hashes, no stamp means byte-level */
    char *rec = temp_path("data.tfrecord");
    ASSERT_OK(dl_tokenizer_stamp_write(rec, tok));
    ASSERT_OK(dl_tokenizer_check_data(rec, again, "again.json"));
    expect_failure(dl_tokenizer_check_data(rec, bytes, "bytes"), DL_ERR_INVALID, hex);
    ASSERT_OK(dl_tokenizer_stamp_remove(rec));
    ASSERT_OK(dl_tokenizer_check_data(rec, bytes, "bytes"));
    expect_failure(dl_tokenizer_check_data(rec, tok, "fixture"), DL_ERR_INVALID, "no .tokenizer stamp");
    remove(saved);
    free(saved);
    free(rec);
    dl_tokenizer_free(tok);
    dl_tokenizer_free(again);
    dl_tokenizer_free(bytes);
}

static void bad_files_fail_clearly(void **state) {
    (void)state;
    dl_tokenizer *tok = NULL;
    const char *j;
    expect_failure(dl_tokenizer_from_json("{", 1, "t.json", &tok), DL_ERR_FORMAT, "t.json:1:");
    j = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}, "
        "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}";
    expect_failure(dl_tokenizer_from_json(j, strlen(j), "t.json", &tok), DL_ERR_FORMAT,
                   "the merged token 'ab' is not in the vocabulary");
    j = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}, "
        "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}";
    expect_failure(dl_tokenizer_from_json(j, strlen(j), "t.json", &tok), DL_ERR_FORMAT, "id 0 is given to two");
    j = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a\"]}, "
        "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}";
    expect_failure(dl_tokenizer_from_json(j, strlen(j), "t.json", &tok), DL_ERR_FORMAT, "is not \"left right\"");
    j = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
        "\"pre_tokenizer\": {\"type\": \"Whitespace\"}}";
    expect_failure(dl_tokenizer_from_json(j, strlen(j), "t.json", &tok), DL_ERR_UNSUPPORTED, "not ByteLevel");
    j = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"dropout\": 0.1}, "
        "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}";
    expect_failure(dl_tokenizer_from_json(j, strlen(j), "t.json", &tok), DL_ERR_UNSUPPORTED, "dropout");
    j = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 99999999}, \"merges\": []}, "
        "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}";
    expect_failure(dl_tokenizer_from_json(j, strlen(j), "t.json", &tok), DL_ERR_FORMAT, "outside [0,");
    assert_null(tok);
    expect_failure(dl_tokenizer_load("/nonexistent/tokenizer.json", &tok), DL_ERR_INVALID, "/nonexistent");
    /* vocab.json + merges.txt, and a bad merges line named by its line number */
    char *dir = temp_path("gpt2");
    ASSERT_OK(dl_make_dirs(dir));
    char vocab[512], merges[512];
    snprintf(vocab, sizeof vocab, "%s/vocab.json", dir);
    snprintf(merges, sizeof merges, "%s/merges.txt", dir);
    const char *v = "{\"a\": 0, \"b\": 1, \"ab\": 2, \"<|endoftext|>\": 3}";
    ASSERT_OK(dl_write_file_atomic(vocab, v, strlen(v)));
    ASSERT_OK(dl_write_file_atomic(merges, "#version: 0.2\na b\n", 18));
    ASSERT_OK(dl_tokenizer_load(dir, &tok));
    static const int32_t ab[] = {2, 3, 0};
    expect_ids(tok, "ab<|endoftext|>a", 16, ab, 3);
    dl_tokenizer_free(tok);
    ASSERT_OK(dl_write_file_atomic(merges, "#version: 0.2\na b\nab\n", 21));
    expect_failure(dl_tokenizer_load(vocab, &tok), DL_ERR_FORMAT, "merges.txt:3:");
    remove(vocab);
    remove(merges);
    rmdir(dir);
    free(dir);
}

static void training_learns_and_round_trips(void **state) {
    (void)state;
    char *corpus = temp_path("corpus.txt");
    const char *text = "the cat sat on the mat\nthe cat ate the rat\nthat is that\n";
    ASSERT_OK(dl_write_file_atomic(corpus, text, strlen(text)));
    const char *inputs[] = {corpus};
    const char *special[] = {"<|endoftext|>"};
    dl_tokenizer_train_options o = {.inputs = inputs, .num_inputs = 1, .vocab_size = 270, .special = special,
                                    .num_special = 1};
    dl_tokenizer *tok;
    ASSERT_OK(dl_tokenizer_train(&o, &tok));
    assert_int_equal(dl_tokenizer_vocab_size(tok), 270);
    assert_int_equal(dl_tokenizer_eos_id(tok), 0);
    assert_int_equal(dl_tokenizer_num_merges(tok), 270 - 257);
    /* "the" is the corpus's most frequent word: its pairs are merged first, so it takes fewer than 3 ids */
    dl_i32_array ids = {0};
    ASSERT_OK(dl_tokenizer_encode(tok, "the", 3, &ids));
    assert_true(ids.len < 3);
    char *back;
    size_t len;
    ASSERT_OK(dl_tokenizer_encode(tok, text, strlen(text), &ids));
    ASSERT_OK(dl_tokenizer_decode(tok, ids.data, ids.len, &back, &len));
    assert_int_equal(len, strlen(text));
    assert_memory_equal(back, text, len);
    free(back);
    dl_i32_array_free(&ids);
    dl_tokenizer_free(tok);
    o.vocab_size = 200;
    expect_failure(dl_tokenizer_train(&o, &tok), DL_ERR_INVALID, "too small");
    remove(corpus);
    free(corpus);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixture_ids_equal_tokenizers),
        cmocka_unit_test(decode_inverts_encode),
        cmocka_unit_test(stream_prints_whole_characters),
        cmocka_unit_test(utf8_subparts_follow_unicode),
        cmocka_unit_test(hash_ignores_formatting_and_save_round_trips),
        cmocka_unit_test(bad_files_fail_clearly),
        cmocka_unit_test(training_learns_and_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
