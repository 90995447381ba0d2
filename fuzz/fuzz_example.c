/* fuzz_example.c — the tf.train.Example decoders on arbitrary payload bytes: every decoder, kind detection and the
 * feature description must return a status, never crash or leak; a payload that decodes as tokens must encode
 * back to something that decodes to the same tokens. */
#include <stdlib.h>
#include <string.h>

#include "data/example.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dl_i32_array tokens = {0}, again = {0};
    dl_click_row row = {0};
    dl_pref_pair pair = {0};
    dl_example_kind kind;
    char text[256];
    (void)dl_example_detect(data, size, &kind);
    (void)dl_example_describe(data, size, text, sizeof text);
    (void)dl_example_decode_click(data, size, &row);
    (void)dl_example_decode_pair(data, size, &pair);
    if (dl_example_decode_tokens(data, size, &tokens) == DL_OK) {
        uint8_t *out = NULL;
        size_t cap = 0, len;
        if (dl_example_encode_tokens(tokens.data, tokens.len, &out, &cap, &len) != DL_OK ||
            dl_example_decode_tokens(out, len, &again) != DL_OK || again.len != tokens.len ||
            (tokens.len && memcmp(again.data, tokens.data, tokens.len * sizeof(int32_t)) != 0))
            abort();
        free(out);
    }
    dl_i32_array_free(&tokens);
    dl_i32_array_free(&again);
    dl_click_row_free(&row);
    dl_pref_pair_free(&pair);
    dl_error_clear();
    return 0;
}
