/* fuzz_jsonl.c — the JSONL preference-pair parser on arbitrary bytes (one line). A line that parses must
 * round-trip through an Example, every token a byte. */
#include <stdlib.h>
#include <string.h>

#include "data/convert.h"
#include "data/example.h"

static int same(const dl_i32_array *a, const dl_i32_array *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len * sizeof(int32_t)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dl_pref_pair pair = {0}, back = {0};
    if (dl_parse_pair_json((const char *)data, size, &pair) == DL_OK) {
        if (pair.chosen.len == 0 || pair.rejected.len == 0)
            abort();
        uint8_t *out = NULL;
        size_t cap = 0, len;
        if (dl_example_encode_pair(&pair, &out, &cap, &len) != DL_OK ||
            dl_example_decode_pair(out, len, &back) != DL_OK || !same(&pair.prompt, &back.prompt) ||
            !same(&pair.chosen, &back.chosen) || !same(&pair.rejected, &back.rejected))
            abort();
        for (size_t i = 0; i < back.chosen.len; i++)
            if (back.chosen.data[i] < 0 || back.chosen.data[i] > 255)
                abort();
        free(out);
    }
    dl_pref_pair_free(&pair);
    dl_pref_pair_free(&back);
    dl_error_clear();
    return 0;
}
