/* fuzz_click_common.h — shared by the libffm and libsvm fuzzers: a parsed row must survive an Example round trip. */
#ifndef DL_FUZZ_CLICK_COMMON_H
#define DL_FUZZ_CLICK_COMMON_H

#include <stdlib.h>
#include <string.h>

#include "data/example.h"

static void check_click_round_trip(const dl_click_row *row) {
    uint8_t *out = NULL;
    size_t cap = 0, len;
    dl_click_row back = {0};
    if (dl_example_encode_click(row, &out, &cap, &len) != DL_OK || dl_example_decode_click(out, len, &back) != DL_OK)
        abort();
    size_t n = row->feature.len;
    if (back.label != row->label || back.feature.len != n || back.field.len != n || back.value.len != n)
        abort();
    if (n && (memcmp(back.field.data, row->field.data, n * sizeof(int32_t)) != 0 ||
              memcmp(back.feature.data, row->feature.data, n * sizeof(int32_t)) != 0 ||
              memcmp(back.value.data, row->value.data, n * sizeof(float)) != 0))
        abort();
    free(out);
    dl_click_row_free(&back);
}

#endif
