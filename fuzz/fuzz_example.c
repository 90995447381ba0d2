/* fuzz_example.c — the tf.train.Example decoders on arbitrary payload bytes.
 *   - every decoder, kind detection and the feature description return a status, never crash or leak;
 *   - differential: whenever the wire fast path (example_wire.c) accepts a payload, protobuf-c (the reference)
 *     accepts it too and decodes exactly the same values;
 *   - a payload that decodes as tokens encodes back to something that decodes to the same tokens. */
#include <stdlib.h>
#include <string.h>

#include "data/example.h"
#include "data/example_wire.h"

static int same_i32(const dl_i32_array *a, const dl_i32_array *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len * sizeof(int32_t)) == 0);
}

static int same_row(const dl_click_row *a, const dl_click_row *b) {
    return a->label == b->label && same_i32(&a->field, &b->field) && same_i32(&a->feature, &b->feature) &&
           a->value.len == b->value.len &&
           (a->value.len == 0 || memcmp(a->value.data, b->value.data, a->value.len * sizeof(float)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dl_i32_array tokens = {0}, ref_tokens = {0}, again = {0};
    dl_click_row row = {0}, ref_row = {0};
    dl_pref_pair pair = {0}, ref_pair = {0};
    dl_example_kind kind;
    char text[256];
    (void)dl_example_detect(data, size, &kind);
    (void)dl_example_describe(data, size, text, sizeof text);

    if (dl_wire_decode_tokens(data, size, &tokens) &&
        (dl_example_decode_tokens_reference(data, size, &ref_tokens) != DL_OK || !same_i32(&tokens, &ref_tokens)))
        abort();
    if (dl_wire_decode_click(data, size, &row) &&
        (dl_example_decode_click_reference(data, size, &ref_row) != DL_OK || !same_row(&row, &ref_row)))
        abort();
    if (dl_wire_decode_pair(data, size, &pair) &&
        (dl_example_decode_pair_reference(data, size, &ref_pair) != DL_OK || !same_i32(&pair.prompt, &ref_pair.prompt) ||
         !same_i32(&pair.chosen, &ref_pair.chosen) || !same_i32(&pair.rejected, &ref_pair.rejected)))
        abort();

    (void)dl_example_decode_click(data, size, &row);
    (void)dl_example_decode_pair(data, size, &pair);
    if (dl_example_decode_tokens(data, size, &tokens) == DL_OK) {
        uint8_t *out = NULL;
        size_t cap = 0, len;
        if (dl_example_encode_tokens(tokens.data, tokens.len, &out, &cap, &len) != DL_OK ||
            dl_example_decode_tokens(out, len, &again) != DL_OK || !same_i32(&tokens, &again))
            abort();
        free(out);
    }
    dl_i32_array_free(&tokens);
    dl_i32_array_free(&ref_tokens);
    dl_i32_array_free(&again);
    dl_click_row_free(&row);
    dl_click_row_free(&ref_row);
    dl_pref_pair_free(&pair);
    dl_pref_pair_free(&ref_pair);
    dl_error_clear();
    return 0;
}
