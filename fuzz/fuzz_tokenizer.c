/* fuzz_tokenizer.c — libFuzzer target for the tokenizer loader and encoder.
 *
 * Input: a tokenizer.json up to the first NUL byte, then text to encode. When the JSON does not load, the text is
 * encoded with the committed fixture vocabulary instead (tests/fixtures/tokenizer/tokenizer.json, loaded once), so
 * every input exercises the encoder. Besides "no crash, no leak" (ASan/UBSan) it checks the promises callers rely
 * on:
 *   - a load failure is a format/unsupported/invalid status with a one-line message;
 *   - every id is inside the vocabulary and decodes;
 *   - for valid UTF-8 text, decode(encode(text)) == text when the vocabulary has all 256 byte symbols and no added
 *     token strips spaces (the fixture has both properties);
 *   - a clone encodes exactly like the original;
 *   - the streaming decoder only ever prints whole UTF-8 characters. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer.h"
#include "data/tokenizer_internal.h"

static dl_tokenizer *fixture_tok;

static void check_failure(dl_status s) {
    const char *msg = dl_error_message();
    if ((s != DL_ERR_FORMAT && s != DL_ERR_UNSUPPORTED && s != DL_ERR_INVALID && s != DL_ERR_NOMEM) || !msg[0] ||
        strchr(msg, '\n')) {
        fprintf(stderr, "bad failure: status %d, message '%s'\n", (int)s, msg);
        abort();
    }
    dl_error_clear();
}

static int valid_utf8(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = dl_utf8_next(s + i, n - i, &cp);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

static void check_encoding(dl_tokenizer *tok, const uint8_t *text, size_t n, int expect_round_trip) {
    dl_i32_array ids = {0}, again = {0};
    if (dl_tokenizer_encode(tok, text, n, &ids) != DL_OK)
        abort();
    int32_t vocab = dl_tokenizer_vocab_size(tok);
    for (size_t i = 0; i < ids.len; i++)
        if (ids.data[i] < 0 || ids.data[i] >= vocab)
            abort();
    dl_tokenizer *copy = NULL;
    if (dl_tokenizer_clone(tok, &copy) != DL_OK || dl_tokenizer_encode(copy, text, n, &again) != DL_OK ||
        again.len != ids.len || (ids.len && memcmp(again.data, ids.data, ids.len * sizeof(int32_t)) != 0))
        abort();
    dl_tokenizer_free(copy);
    char *back = NULL;
    size_t len = 0;
    if (dl_tokenizer_decode(tok, ids.data, ids.len, &back, &len) != DL_OK)
        abort();
    if (expect_round_trip && valid_utf8(text, n) && (len != n || memcmp(back, text, n) != 0))
        abort();
    free(back);
    dl_token_stream st;
    dl_token_stream_init(&st);
    for (size_t i = 0; i < ids.len; i++) {
        const char *p;
        size_t k;
        if (dl_token_stream_push(&st, tok, ids.data[i], &p, &k) != DL_OK || !valid_utf8((const uint8_t *)p, k))
            abort();
    }
    const char *p;
    size_t k;
    if (dl_token_stream_finish(&st, &p, &k) != DL_OK || !valid_utf8((const uint8_t *)p, k))
        abort();
    dl_token_stream_free(&st);
    dl_i32_array_free(&ids);
    dl_i32_array_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fixture_tok) {
        char path[4096];
        snprintf(path, sizeof path, "%s/tests/fixtures/tokenizer/tokenizer.json", DEALER_SOURCE_DIR);
        if (dl_tokenizer_load(path, &fixture_tok) != DL_OK)
            abort();
    }
    const uint8_t *nul = memchr(data, 0, size);
    size_t json_len = nul ? (size_t)(nul - data) : size;
    const uint8_t *text = nul ? nul + 1 : data + size;
    size_t text_len = size - json_len - (nul ? 1 : 0);
    dl_tokenizer *tok = NULL;
    dl_status s = dl_tokenizer_from_json((const char *)data, json_len, "fuzz.json", &tok);
    if (s == DL_OK) {
        check_encoding(tok, text, text_len, 0);
        dl_tokenizer_free(tok);
    } else {
        check_failure(s);
        check_encoding(fixture_tok, text, text_len, 1);
    }
    return 0;
}
