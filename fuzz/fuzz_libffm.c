/* fuzz_libffm.c — the libffm line parser on arbitrary bytes (one line, not NUL-terminated: the fuzzer's buffer is
 * exactly `size` bytes, so any read past it is caught). A line that parses must round-trip through an Example. */
#include "fuzz_click_common.h"

#include "data/convert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dl_click_row row = {0};
    if (dl_parse_libffm_line((const char *)data, size, &row) == DL_OK)
        check_click_round_trip(&row);
    dl_click_row_free(&row);
    dl_error_clear();
    return 0;
}
