/* fuzz_libsvm.c — the libsvm line parser on arbitrary bytes; the first byte picks the field rule (zero or
 * position). A line that parses must round-trip through an Example. */
#include "fuzz_click_common.h"

#include "data/convert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    dl_click_row row = {0};
    if (dl_parse_libsvm_line((const char *)data + 1, size - 1, data[0] & 1, &row) == DL_OK) {
        for (size_t k = 0; k < row.field.len; k++)
            if (row.field.data[k] != ((data[0] & 1) ? (int32_t)k : 0))
                abort();
        check_click_round_trip(&row);
    }
    dl_click_row_free(&row);
    dl_error_clear();
    return 0;
}
