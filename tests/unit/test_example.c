/* test_example.c — the tf.train.Example codec: golden bytes derived independently of the encoder (both the payload
 * and the whole framed record), map entries in any order, unpacked lists, duplicates, wrong kinds, and random round
 * trips of every kind.
 *
 * The golden bytes come from this stand-alone Python snippet (standard library only), which hand-encodes the
 * protobuf wire format and the TFRecord framing:
 *
 *   import struct
 *   def varint(n):
 *       n &= (1 << 64) - 1
 *       out = b''
 *       while True:
 *           b = n & 0x7f; n >>= 7
 *           if n: out += bytes([b | 0x80])
 *           else: return out + bytes([b])
 *   def ld(field, payload): return varint(field << 3 | 2) + varint(len(payload)) + payload
 *   def feature_int64(vals): return ld(3, ld(1, b''.join(varint(v) for v in vals)))        # packed
 *   def feature_float(vals): return ld(2, ld(1, b''.join(struct.pack('<f', v) for v in vals)))
 *   def entry(key, feat): return ld(1, ld(1, key.encode()) + ld(2, feat))                 # map entry {1: key, 2: value}
 *   def example(entries): return ld(1, b''.join(entries))                                 # Example.features = 1
 *   def crc32c(data):
 *       c = 0xffffffff
 *       for b in data:
 *           c ^= b
 *           for _ in range(8): c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
 *       return c ^ 0xffffffff
 *   def mask(c): return ((((c >> 15) | (c << 17)) & 0xffffffff) + 0xa282ead8) & 0xffffffff
 *   def frame(p):
 *       h = struct.pack('<Q', len(p))
 *       return h + struct.pack('<I', mask(crc32c(h))) + p + struct.pack('<I', mask(crc32c(p)))
 *   tokens = example([entry('tokens', feature_int64([72, 105, 10, 300]))])
 *   click = [entry('feature', feature_int64([7, 123456])), entry('field', feature_int64([0, 2])),
 *            entry('label', feature_float([1.0])), entry('value', feature_float([1.0, 0.5]))]
 *   pair = example([entry('chosen', feature_int64([89])), entry('prompt', feature_int64([63])),
 *                   entry('rejected', feature_int64([78, 111]))])
 *   unpacked = example([entry('tokens', ld(3, b'\x08\x48\x08\x69'))])    # Int64List [72, 105] not packed
 *   dup = example([entry('tokens', feature_int64([1])), entry('tokens', feature_int64([2, 3]))])
 *   neg = example([entry('tokens', feature_int64([5, -1]))])
 *   flt = example([entry('tokens', feature_float([1.0]))])
 *   # printed: tokens, frame(tokens), example(click), example(click[::-1]), pair, unpacked, dup, neg, flt
 */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fs.h"
#include "data/example.h"
#include "data/example_wire.h"
#include "data/record.h"

#define ASSERT_OK(expr)                                                                                          \
    do {                                                                                                         \
        dl_status s_ = (expr);                                                                                   \
        if (s_ != DL_OK)                                                                                         \
            DL_TEST_FAIL("%s failed: %s", #expr, dl_error_message());                                            \
    } while (0)

#define EXPECT_FORMAT_ERROR(expr, fragment)                                                                      \
    do {                                                                                                         \
        dl_status s_ = (expr);                                                                                   \
        if (s_ != DL_ERR_FORMAT || !strstr(dl_error_message(), (fragment)))                                      \
            DL_TEST_FAIL("%s: got %s '%s', want a format error mentioning '%s'", #expr, dl_status_name(s_),      \
                         dl_error_message(), (fragment));                                                        \
    } while (0)

static const uint8_t golden_tokens[] = {0x0a, 0x15, 0x0a, 0x13, 0x0a, 0x06, 0x74, 0x6f, 0x6b, 0x65, 0x6e, 0x73,
                                        0x12, 0x09, 0x1a, 0x07, 0x0a, 0x05, 0x48, 0x69, 0x0a, 0xac, 0x02};
static const uint8_t golden_tokens_framed[] = {
    0x17, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe7, 0xce, 0xf8, 0x1e, 0x0a, 0x15, 0x0a, 0x13, 0x0a, 0x06, 0x74,
    0x6f, 0x6b, 0x65, 0x6e, 0x73, 0x12, 0x09, 0x1a, 0x07, 0x0a, 0x05, 0x48, 0x69, 0x0a, 0xac, 0x02, 0x15, 0xbb, 0xab,
    0x76};
static const uint8_t golden_click[] = {
    0x0a, 0x50, 0x0a, 0x13, 0x0a, 0x07, 0x66, 0x65, 0x61, 0x74, 0x75, 0x72, 0x65, 0x12, 0x08, 0x1a, 0x06, 0x0a,
    0x04, 0x07, 0xc0, 0xc4, 0x07, 0x0a, 0x0f, 0x0a, 0x05, 0x66, 0x69, 0x65, 0x6c, 0x64, 0x12, 0x06, 0x1a, 0x04,
    0x0a, 0x02, 0x00, 0x02, 0x0a, 0x11, 0x0a, 0x05, 0x6c, 0x61, 0x62, 0x65, 0x6c, 0x12, 0x08, 0x12, 0x06, 0x0a,
    0x04, 0x00, 0x00, 0x80, 0x3f, 0x0a, 0x15, 0x0a, 0x05, 0x76, 0x61, 0x6c, 0x75, 0x65, 0x12, 0x0c, 0x12, 0x0a,
    0x0a, 0x08, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x3f};
static const uint8_t golden_click_reversed[] = {
    0x0a, 0x50, 0x0a, 0x15, 0x0a, 0x05, 0x76, 0x61, 0x6c, 0x75, 0x65, 0x12, 0x0c, 0x12, 0x0a, 0x0a, 0x08, 0x00,
    0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x3f, 0x0a, 0x11, 0x0a, 0x05, 0x6c, 0x61, 0x62, 0x65, 0x6c, 0x12, 0x08,
    0x12, 0x06, 0x0a, 0x04, 0x00, 0x00, 0x80, 0x3f, 0x0a, 0x0f, 0x0a, 0x05, 0x66, 0x69, 0x65, 0x6c, 0x64, 0x12,
    0x06, 0x1a, 0x04, 0x0a, 0x02, 0x00, 0x02, 0x0a, 0x13, 0x0a, 0x07, 0x66, 0x65, 0x61, 0x74, 0x75, 0x72, 0x65,
    0x12, 0x08, 0x1a, 0x06, 0x0a, 0x04, 0x07, 0xc0, 0xc4, 0x07};
static const uint8_t golden_pair[] = {
    0x0a, 0x36, 0x0a, 0x0f, 0x0a, 0x06, 0x63, 0x68, 0x6f, 0x73, 0x65, 0x6e, 0x12, 0x05, 0x1a, 0x03, 0x0a, 0x01, 0x59,
    0x0a, 0x0f, 0x0a, 0x06, 0x70, 0x72, 0x6f, 0x6d, 0x70, 0x74, 0x12, 0x05, 0x1a, 0x03, 0x0a, 0x01, 0x3f, 0x0a, 0x12,
    0x0a, 0x08, 0x72, 0x65, 0x6a, 0x65, 0x63, 0x74, 0x65, 0x64, 0x12, 0x06, 0x1a, 0x04, 0x0a, 0x02, 0x4e, 0x6f};
static const uint8_t golden_unpacked[] = {0x0a, 0x12, 0x0a, 0x10, 0x0a, 0x06, 0x74, 0x6f, 0x6b, 0x65,
                                          0x6e, 0x73, 0x12, 0x06, 0x1a, 0x04, 0x08, 0x48, 0x08, 0x69};
static const uint8_t golden_dup[] = {0x0a, 0x23, 0x0a, 0x0f, 0x0a, 0x06, 0x74, 0x6f, 0x6b, 0x65, 0x6e, 0x73,
                                     0x12, 0x05, 0x1a, 0x03, 0x0a, 0x01, 0x01, 0x0a, 0x10, 0x0a, 0x06, 0x74,
                                     0x6f, 0x6b, 0x65, 0x6e, 0x73, 0x12, 0x06, 0x1a, 0x04, 0x0a, 0x02, 0x02, 0x03};
static const uint8_t golden_negative[] = {0x0a, 0x1b, 0x0a, 0x19, 0x0a, 0x06, 0x74, 0x6f, 0x6b, 0x65,
                                          0x6e, 0x73, 0x12, 0x0f, 0x1a, 0x0d, 0x0a, 0x0b, 0x05, 0xff,
                                          0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
static const uint8_t golden_float_tokens[] = {0x0a, 0x14, 0x0a, 0x12, 0x0a, 0x06, 0x74, 0x6f, 0x6b, 0x65, 0x6e,
                                              0x73, 0x12, 0x08, 0x12, 0x06, 0x0a, 0x04, 0x00, 0x00, 0x80, 0x3f};

static void expect_bytes(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len, const char *what) {
    if (got_len != want_len)
        DL_TEST_FAIL("%s: %zu bytes, want %zu", what, got_len, want_len);
    for (size_t i = 0; i < want_len; i++)
        if (got[i] != want[i])
            DL_TEST_FAIL("%s: byte %zu is 0x%02x, want 0x%02x", what, i, got[i], want[i]);
}

static void expect_i32(const dl_i32_array *a, const int32_t *want, size_t n, const char *what) {
    if (a->len != n)
        DL_TEST_FAIL("%s: %zu values, want %zu", what, a->len, n);
    for (size_t i = 0; i < n; i++)
        if (a->data[i] != want[i])
            DL_TEST_FAIL("%s[%zu] = %d, want %d", what, i, a->data[i], want[i]);
}

/* ---- golden bytes ------------------------------------------------------------------------------------------- */

static void tokens_encode_to_golden_bytes_and_decode_back(void **state) {
    (void)state;
    const int32_t tokens[] = {72, 105, 10, 300};
    uint8_t *out = NULL;
    size_t cap = 0, len = 0;
    ASSERT_OK(dl_example_encode_tokens(tokens, 4, &out, &cap, &len));
    expect_bytes(out, len, golden_tokens, sizeof golden_tokens, "encoded tokens");
    dl_i32_array got = {0};
    ASSERT_OK(dl_example_decode_tokens(golden_tokens, sizeof golden_tokens, &got));
    expect_i32(&got, tokens, 4, "decoded tokens");
    dl_example_kind kind;
    ASSERT_OK(dl_example_detect(golden_tokens, sizeof golden_tokens, &kind));
    assert_int_equal(kind, DL_EXAMPLE_TOKENS);
    free(out);
    dl_i32_array_free(&got);
}

static void framed_record_matches_golden_bytes(void **state) {
    (void)state;
    char dir[] = "/tmp/dealer_test_example_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[96], idx[112];
    snprintf(path, sizeof path, "%s/golden.tfrecord", dir);
    snprintf(idx, sizeof idx, "%s.idx", path);
    const int32_t tokens[] = {72, 105, 10, 300};
    uint8_t *payload = NULL;
    size_t cap = 0, len = 0;
    ASSERT_OK(dl_example_encode_tokens(tokens, 4, &payload, &cap, &len));
    dl_record_writer *w;
    ASSERT_OK(dl_record_writer_open(&w, path));
    ASSERT_OK(dl_record_writer_append(w, payload, len));
    ASSERT_OK(dl_record_writer_close(w));
    uint8_t *file;
    size_t file_len;
    ASSERT_OK(dl_read_file(path, &file, &file_len));
    expect_bytes(file, file_len, golden_tokens_framed, sizeof golden_tokens_framed, "framed record");
    free(file);
    /* And the other way: the golden file, written byte for byte, reads back (scanned: no index). */
    ASSERT_OK(dl_write_file_atomic(path, golden_tokens_framed, sizeof golden_tokens_framed));
    unlink(idx);
    dl_record_file *f;
    ASSERT_OK(dl_record_file_open(&f, path));
    assert_int_equal(dl_record_file_count(f), 1);
    const uint8_t *view;
    size_t view_len;
    ASSERT_OK(dl_record_file_view(f, 0, &view, &view_len));
    dl_i32_array got = {0};
    ASSERT_OK(dl_example_decode_tokens(view, view_len, &got));
    expect_i32(&got, tokens, 4, "tokens from the golden file");
    dl_record_file_close(f);
    dl_i32_array_free(&got);
    free(payload);
    unlink(path);
    rmdir(dir);
}

static void click_row_matches_golden_bytes_in_either_entry_order(void **state) {
    (void)state;
    dl_click_row row = {0};
    row.label = 1.0f;
    ASSERT_OK(dl_i32_array_push(&row.field, 0));
    ASSERT_OK(dl_i32_array_push(&row.field, 2));
    ASSERT_OK(dl_i32_array_push(&row.feature, 7));
    ASSERT_OK(dl_i32_array_push(&row.feature, 123456));
    ASSERT_OK(dl_f32_array_push(&row.value, 1.0f));
    ASSERT_OK(dl_f32_array_push(&row.value, 0.5f));
    uint8_t *out = NULL;
    size_t cap = 0, len = 0;
    ASSERT_OK(dl_example_encode_click(&row, &out, &cap, &len));
    expect_bytes(out, len, golden_click, sizeof golden_click, "encoded click row");
    const uint8_t *inputs[2] = {golden_click, golden_click_reversed};
    size_t sizes[2] = {sizeof golden_click, sizeof golden_click_reversed};
    for (int k = 0; k < 2; k++) {
        dl_click_row got = {0};
        ASSERT_OK(dl_example_decode_click(inputs[k], sizes[k], &got));
        assert_true(got.label == 1.0f);
        const int32_t fields[] = {0, 2}, features[] = {7, 123456};
        expect_i32(&got.field, fields, 2, "field");
        expect_i32(&got.feature, features, 2, "feature");
        assert_int_equal(got.value.len, 2);
        assert_true(got.value.data[0] == 1.0f && got.value.data[1] == 0.5f);
        dl_example_kind kind;
        ASSERT_OK(dl_example_detect(inputs[k], sizes[k], &kind));
        assert_int_equal(kind, DL_EXAMPLE_CLICK);
        dl_click_row_free(&got);
    }
    char text[256];
    ASSERT_OK(dl_example_describe(golden_click_reversed, sizeof golden_click_reversed, text, sizeof text));
    assert_string_equal(text, "feature: int64_list[2], field: int64_list[2], label: float_list[1], value: float_list[2]");
    free(out);
    dl_click_row_free(&row);
}

static void pair_matches_golden_bytes(void **state) {
    (void)state;
    dl_pref_pair pair = {0};
    ASSERT_OK(dl_i32_array_push(&pair.prompt, '?'));
    ASSERT_OK(dl_i32_array_push(&pair.chosen, 'Y'));
    ASSERT_OK(dl_i32_array_push(&pair.rejected, 'N'));
    ASSERT_OK(dl_i32_array_push(&pair.rejected, 'o'));
    uint8_t *out = NULL;
    size_t cap = 0, len = 0;
    ASSERT_OK(dl_example_encode_pair(&pair, &out, &cap, &len));
    expect_bytes(out, len, golden_pair, sizeof golden_pair, "encoded pair");
    dl_pref_pair got = {0};
    ASSERT_OK(dl_example_decode_pair(golden_pair, sizeof golden_pair, &got));
    const int32_t prompt[] = {'?'}, chosen[] = {'Y'}, rejected[] = {'N', 'o'};
    expect_i32(&got.prompt, prompt, 1, "prompt");
    expect_i32(&got.chosen, chosen, 1, "chosen");
    expect_i32(&got.rejected, rejected, 2, "rejected");
    dl_example_kind kind;
    ASSERT_OK(dl_example_detect(golden_pair, sizeof golden_pair, &kind));
    assert_int_equal(kind, DL_EXAMPLE_PAIR);
    free(out);
    dl_pref_pair_free(&pair);
    dl_pref_pair_free(&got);
}

static void decoder_accepts_unpacked_lists_and_takes_the_last_duplicate(void **state) {
    (void)state;
    dl_i32_array got = {0};
    ASSERT_OK(dl_example_decode_tokens(golden_unpacked, sizeof golden_unpacked, &got));
    const int32_t unpacked[] = {72, 105};
    expect_i32(&got, unpacked, 2, "unpacked tokens");
    ASSERT_OK(dl_example_decode_tokens(golden_dup, sizeof golden_dup, &got));
    const int32_t last[] = {2, 3};
    expect_i32(&got, last, 2, "duplicate key");
    dl_i32_array_free(&got);
}

/* ---- errors ------------------------------------------------------------------------------------------------- */

static void decoder_names_missing_mistyped_and_out_of_range_features(void **state) {
    (void)state;
    dl_i32_array tokens = {0};
    EXPECT_FORMAT_ERROR(dl_example_decode_tokens(golden_negative, sizeof golden_negative, &tokens),
                        "token id -1 is outside");
    EXPECT_FORMAT_ERROR(dl_example_decode_tokens(golden_float_tokens, sizeof golden_float_tokens, &tokens),
                        "feature 'tokens' is a float_list, expected an int64_list");
    EXPECT_FORMAT_ERROR(dl_example_decode_tokens(golden_click, sizeof golden_click, &tokens),
                        "missing feature 'tokens'");
    /* The message lists what the record does have. */
    assert_non_null(strstr(dl_error_message(), "'feature', 'field', 'label', 'value'"));
    dl_click_row row = {0};
    EXPECT_FORMAT_ERROR(dl_example_decode_click(golden_tokens, sizeof golden_tokens, &row), "missing feature 'label'");
    dl_pref_pair pair = {0};
    EXPECT_FORMAT_ERROR(dl_example_decode_pair(golden_tokens, sizeof golden_tokens, &pair), "missing feature 'prompt'");
    /* Not protobuf at all: a length-delimited field running past the end. */
    const uint8_t junk[] = {0x0a, 0x7f, 0x01};
    EXPECT_FORMAT_ERROR(dl_example_decode_tokens(junk, sizeof junk, &tokens), "not a valid tf.train.Example");
    dl_example_kind kind;
    EXPECT_FORMAT_ERROR(dl_example_detect(junk, sizeof junk, &kind), "not a valid tf.train.Example");
    /* An empty payload is a valid, empty Example: no features. */
    EXPECT_FORMAT_ERROR(dl_example_decode_tokens(NULL, 0, &tokens), "the record has no features");
    ASSERT_OK(dl_example_detect(NULL, 0, &kind));
    assert_int_equal(kind, DL_EXAMPLE_UNKNOWN);
    /* Encoders refuse what decoders would refuse. */
    const int32_t negative[] = {1, -5};
    uint8_t *out = NULL;
    size_t cap = 0, len;
    assert_int_equal(dl_example_encode_tokens(negative, 2, &out, &cap, &len), DL_ERR_INVALID);
    dl_click_row uneven = {0};
    ASSERT_OK(dl_i32_array_push(&uneven.feature, 1));
    assert_int_equal(dl_example_encode_click(&uneven, &out, &cap, &len), DL_ERR_INVALID);
    dl_click_row_free(&uneven);
    free(out);
    dl_i32_array_free(&tokens);
}

static void click_labels_and_wide_feature_ids(void **state) {
    (void)state;
    /* Labels: -1 reads as 0, values in [0,1] stay, others are refused. */
    const float labels[] = {-1.0f, 0.0f, 0.25f, 1.0f, 2.0f, NAN};
    const float expect[] = {0.0f, 0.0f, 0.25f, 1.0f, -1, -1};
    dl_click_row row = {0}, got = {0};
    ASSERT_OK(dl_i32_array_push(&row.field, 1));
    ASSERT_OK(dl_i32_array_push(&row.feature, 9));
    ASSERT_OK(dl_f32_array_push(&row.value, 1.0f));
    uint8_t *out = NULL;
    size_t cap = 0, len;
    for (int i = 0; i < 5; i++) {
        row.label = labels[i];
        ASSERT_OK(dl_example_encode_click(&row, &out, &cap, &len));
        if (expect[i] >= 0) {
            ASSERT_OK(dl_example_decode_click(out, len, &got));
            assert_true(got.label == expect[i]);
        } else {
            EXPECT_FORMAT_ERROR(dl_example_decode_click(out, len, &got), "feature 'label' is 2");
        }
    }
    row.label = labels[5];
    assert_int_equal(dl_example_encode_click(&row, &out, &cap, &len), DL_ERR_INVALID);
    /* Feature ids: identity on [0, 2^31); wider ids hash to negative values, which no real id has, and a value
     * already in [-2^31, 0) stays (folding twice changes nothing). */
    assert_int_equal(dl_feature_id_fold(0), 0);
    assert_int_equal(dl_feature_id_fold(INT32_MAX), INT32_MAX);
    assert_int_equal(dl_feature_id_fold(-1), -1);
    assert_int_equal(dl_feature_id_fold(INT32_MIN), INT32_MIN);
    const int64_t wide[] = {(int64_t)INT32_MAX + 1, INT64_MAX, (int64_t)INT32_MIN - 1, INT64_MIN, 1ll << 40};
    for (int i = 0; i < 5; i++) {
        int32_t f = dl_feature_id_fold(wide[i]);
        assert_true(f < 0);
        assert_int_equal(f, dl_feature_id_fold(wide[i]));
        assert_int_equal(f, dl_feature_id_fold(f));
    }
    assert_true(dl_feature_id_fold(1ll << 40) != dl_feature_id_fold(1ll << 41));
    /* 2^31 + 5 used to fold onto a real id; now it lands apart from every id below 2^31 */
    assert_true(dl_feature_id_fold((1ll << 31) + 5) < 0);
    free(out);
    dl_click_row_free(&row);
    dl_click_row_free(&got);
}

/* ---- the wire fast path against protobuf-c ------------------------------------------------------------------ */

static void fast_path_takes_canonical_payloads_and_agrees_with_protobuf_c(void **state) {
    (void)state;
    dl_i32_array fast = {0}, ref = {0};
    const uint8_t *token_inputs[3] = {golden_tokens, golden_unpacked, golden_dup};
    size_t token_sizes[3] = {sizeof golden_tokens, sizeof golden_unpacked, sizeof golden_dup};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(dl_wire_decode_tokens(token_inputs[k], token_sizes[k], &fast), 1);
        ASSERT_OK(dl_example_decode_tokens_reference(token_inputs[k], token_sizes[k], &ref));
        expect_i32(&fast, ref.data, ref.len, "fast path tokens");
    }
    dl_click_row row = {0}, ref_row = {0};
    assert_int_equal(dl_wire_decode_click(golden_click_reversed, sizeof golden_click_reversed, &row), 1);
    ASSERT_OK(dl_example_decode_click_reference(golden_click_reversed, sizeof golden_click_reversed, &ref_row));
    assert_true(row.label == ref_row.label);
    expect_i32(&row.feature, ref_row.feature.data, ref_row.feature.len, "fast path features");
    expect_i32(&row.field, ref_row.field.data, ref_row.field.len, "fast path fields");
    assert_memory_equal(row.value.data, ref_row.value.data, 2 * sizeof(float));
    dl_pref_pair pair = {0};
    assert_int_equal(dl_wire_decode_pair(golden_pair, sizeof golden_pair, &pair), 1);
    assert_int_equal(pair.rejected.len, 2);

    /* Errors and oddities go to protobuf-c: a negative token, a float list, a missing feature. */
    assert_int_equal(dl_wire_decode_tokens(golden_negative, sizeof golden_negative, &fast), 0);
    assert_int_equal(dl_wire_decode_tokens(golden_float_tokens, sizeof golden_float_tokens, &fast), 0);
    assert_int_equal(dl_wire_decode_tokens(golden_click, sizeof golden_click, &fast), 0);
    assert_int_equal(dl_wire_decode_click(golden_tokens, sizeof golden_tokens, &row), 0);

    /* An unknown field after the features (field 7, varint 1): valid protobuf, not canonical. The public decoder
     * still reads it, through protobuf-c. */
    uint8_t extended[sizeof golden_tokens + 2];
    memcpy(extended, golden_tokens, sizeof golden_tokens);
    extended[sizeof golden_tokens] = 0x38;
    extended[sizeof golden_tokens + 1] = 0x01;
    assert_int_equal(dl_wire_decode_tokens(extended, sizeof extended, &fast), 0);
    ASSERT_OK(dl_example_decode_tokens(extended, sizeof extended, &ref));
    const int32_t want[] = {72, 105, 10, 300};
    expect_i32(&ref, want, 4, "tokens after an unknown field");
    /* The empty Example is canonical and has no tokens: the fast path passes, protobuf-c reports. */
    assert_int_equal(dl_wire_decode_tokens(NULL, 0, &fast), 0);
    dl_i32_array_free(&fast);
    dl_i32_array_free(&ref);
    dl_click_row_free(&row);
    dl_click_row_free(&ref_row);
    dl_pref_pair_free(&pair);
}

/* ---- random round trips ------------------------------------------------------------------------------------- */

static void random_examples_round_trip(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 31);
    uint8_t *out = NULL;
    size_t cap = 0, len;
    dl_i32_array tokens = {0}, decoded = {0};
    dl_click_row row = {0}, got_row = {0};
    dl_pref_pair pair = {0}, got_pair = {0};
    for (int trial = 0; trial < 300; trial++) {
        /* Tokens: lengths 0..2000, ids across all varint sizes. */
        tokens.len = 0;
        size_t n = (size_t)dl_rng_below(&rng, 2001);
        for (size_t i = 0; i < n; i++)
            ASSERT_OK(dl_i32_array_push(&tokens, (int32_t)(dl_rng_u32(&rng) >> (dl_rng_below(&rng, 31) + 1))));
        ASSERT_OK(dl_example_encode_tokens(tokens.data, tokens.len, &out, &cap, &len));
        assert_int_equal(dl_wire_decode_tokens(out, len, &decoded), 1); /* what dealer writes is canonical */
        expect_i32(&decoded, tokens.data, tokens.len, "random tokens, fast path");
        ASSERT_OK(dl_example_decode_tokens_reference(out, len, &decoded));
        expect_i32(&decoded, tokens.data, tokens.len, "random tokens, protobuf-c");

        /* Click rows: 0..60 entries. */
        dl_click_row_free(&row);
        row.label = (float)dl_rng_below(&rng, 2);
        size_t m = (size_t)dl_rng_below(&rng, 61);
        for (size_t i = 0; i < m; i++) {
            ASSERT_OK(dl_i32_array_push(&row.field, (int32_t)dl_rng_below(&rng, 40)));
            ASSERT_OK(dl_i32_array_push(&row.feature, (int32_t)(dl_rng_u32(&rng) >> 1)));
            ASSERT_OK(dl_f32_array_push(&row.value, dl_rng_uniform(&rng) * 4 - 2));
        }
        ASSERT_OK(dl_example_encode_click(&row, &out, &cap, &len));
        if (trial % 2)
            assert_int_equal(dl_wire_decode_click(out, len, &got_row), 1);
        else
            ASSERT_OK(dl_example_decode_click_reference(out, len, &got_row));
        assert_true(got_row.label == row.label);
        expect_i32(&got_row.field, row.field.data, m, "field");
        expect_i32(&got_row.feature, row.feature.data, m, "feature");
        assert_int_equal(got_row.value.len, m);
        if (m)
            assert_memory_equal(got_row.value.data, row.value.data, m * sizeof(float));

        /* Pairs, with an empty prompt now and then. */
        dl_pref_pair_free(&pair);
        dl_i32_array *parts[3] = {&pair.prompt, &pair.chosen, &pair.rejected};
        for (int k = 0; k < 3; k++) {
            size_t plen = (size_t)dl_rng_below(&rng, 300);
            for (size_t i = 0; i < plen; i++)
                ASSERT_OK(dl_i32_array_push(parts[k], (int32_t)dl_rng_below(&rng, 256)));
        }
        ASSERT_OK(dl_example_encode_pair(&pair, &out, &cap, &len));
        if (trial % 2)
            assert_int_equal(dl_wire_decode_pair(out, len, &got_pair), 1);
        else
            ASSERT_OK(dl_example_decode_pair_reference(out, len, &got_pair));
        expect_i32(&got_pair.prompt, pair.prompt.data, pair.prompt.len, "prompt");
        expect_i32(&got_pair.chosen, pair.chosen.data, pair.chosen.len, "chosen");
        expect_i32(&got_pair.rejected, pair.rejected.data, pair.rejected.len, "rejected");
    }
    free(out);
    dl_i32_array_free(&tokens);
    dl_i32_array_free(&decoded);
    dl_click_row_free(&row);
    dl_click_row_free(&got_row);
    dl_pref_pair_free(&pair);
    dl_pref_pair_free(&got_pair);
}

static void large_record_spills_the_arena(void **state) {
    (void)state;
    /* 300k tokens: well past the 8 KiB stack arena and the first 64 KiB chunk. */
    size_t n = 300000;
    int32_t *tokens = malloc(n * sizeof *tokens);
    for (size_t i = 0; i < n; i++)
        tokens[i] = (int32_t)((uint32_t)(i * 2654435761u) >> 1);
    uint8_t *out = NULL;
    size_t cap = 0, len;
    ASSERT_OK(dl_example_encode_tokens(tokens, n, &out, &cap, &len));
    dl_i32_array got = {0};
    ASSERT_OK(dl_example_decode_tokens(out, len, &got));
    expect_i32(&got, tokens, n, "large record");
    free(tokens);
    free(out);
    dl_i32_array_free(&got);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tokens_encode_to_golden_bytes_and_decode_back),
        cmocka_unit_test(framed_record_matches_golden_bytes),
        cmocka_unit_test(click_row_matches_golden_bytes_in_either_entry_order),
        cmocka_unit_test(pair_matches_golden_bytes),
        cmocka_unit_test(decoder_accepts_unpacked_lists_and_takes_the_last_duplicate),
        cmocka_unit_test(decoder_names_missing_mistyped_and_out_of_range_features),
        cmocka_unit_test(click_labels_and_wide_feature_ids),
        cmocka_unit_test(fast_path_takes_canonical_payloads_and_agrees_with_protobuf_c),
        cmocka_unit_test(random_examples_round_trip),
        cmocka_unit_test(large_record_spills_the_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
