/* example.h — the tf.train.Example payloads dealer stores, decoded into plain structs.
 *
 * proto/example.proto and proto/feature.proto carry TensorFlow's field numbers; protoc-c generates the codec. These
 * functions hide protobuf-c from the rest of dealer and check that the features a model needs are present and of
 * the right kind. Feature names (DESIGN.md):
 *   text:        tokens   (int64 list)
 *   click rows:  label (float list, 1 value), field (int64 list), feature (int64 list), value (float list)
 *   preferences: prompt, chosen, rejected (int64 lists of tokens) */
#ifndef DL_DATA_EXAMPLE_H
#define DL_DATA_EXAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A growable int32 array; decoding reuses its memory across records. */
typedef struct dl_i32_array {
    int32_t *data;
    size_t len;
    size_t cap;
} dl_i32_array;

typedef struct dl_f32_array {
    float *data;
    size_t len;
    size_t cap;
} dl_f32_array;

void dl_i32_array_free(dl_i32_array *a);
void dl_f32_array_free(dl_f32_array *a);

typedef struct dl_click_row {
    float label;          /* 0 or 1 */
    dl_i32_array field;   /* per entry */
    dl_i32_array feature; /* per entry: raw feature id (hashed later by the model) — int64 ids are folded to 31 bits */
    dl_f32_array value;   /* per entry */
} dl_click_row;

typedef struct dl_pref_pair {
    dl_i32_array prompt;
    dl_i32_array chosen;
    dl_i32_array rejected;
} dl_pref_pair;

/* Encoders write a serialized Example into *out (realloc'd, *cap tracks capacity), length in *len. */
dl_status dl_example_encode_tokens(const int32_t *tokens, size_t n, uint8_t **out, size_t *cap, size_t *len);
dl_status dl_example_encode_click(const dl_click_row *row, uint8_t **out, size_t *cap, size_t *len);
dl_status dl_example_encode_pair(const dl_pref_pair *pair, uint8_t **out, size_t *cap, size_t *len);

/* Decoders fail with DL_ERR_FORMAT naming the missing or mistyped feature. */
dl_status dl_example_decode_tokens(const uint8_t *payload, size_t len, dl_i32_array *tokens);
dl_status dl_example_decode_click(const uint8_t *payload, size_t len, dl_click_row *row);
dl_status dl_example_decode_pair(const uint8_t *payload, size_t len, dl_pref_pair *pair);

void dl_click_row_free(dl_click_row *row);
void dl_pref_pair_free(dl_pref_pair *pair);

#ifdef __cplusplus
}
#endif

#endif
