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
/* Makes room for at least n elements (len unchanged). */
dl_status dl_i32_array_reserve(dl_i32_array *a, size_t n);
dl_status dl_f32_array_reserve(dl_f32_array *a, size_t n);
/* Appends one element, growing geometrically. */
dl_status dl_i32_array_push(dl_i32_array *a, int32_t v);
dl_status dl_f32_array_push(dl_f32_array *a, float v);

typedef struct dl_click_row {
    float label;          /* 0 or 1 (a stored label in [0,1] is kept as is; -1 reads as 0) */
    dl_i32_array field;   /* per entry, >= 0 */
    dl_i32_array feature; /* per entry: feature id (>= 0), or a hashed wide id (< 0; dl_feature_id_fold) */
    dl_f32_array value;   /* per entry */
} dl_click_row;

/* A feature id as batches carry it (int32): ids in [0, 2^31) are themselves; wider ids (>= 2^31, or below -2^31)
 * become -1 - h, h a 31-bit mix of all their bits, so they never meet a real id; a value in [-2^31, -1] is taken
 * as hashed already (what the converters write for wide ids), so folding twice changes nothing. The model puts a
 * hashed id on its own hashed table row (dl_click_feature_row), never on the row of the real id h. */
int32_t dl_feature_id_fold(int64_t id);

typedef struct dl_pref_pair {
    dl_i32_array prompt;
    dl_i32_array chosen;
    dl_i32_array rejected;
} dl_pref_pair;

/* Encoders write a serialized Example into *out (realloc'd, *cap tracks capacity), length in *len. */
dl_status dl_example_encode_tokens(const int32_t *tokens, size_t n, uint8_t **out, size_t *cap, size_t *len);
dl_status dl_example_encode_click(const dl_click_row *row, uint8_t **out, size_t *cap, size_t *len);
dl_status dl_example_encode_pair(const dl_pref_pair *pair, uint8_t **out, size_t *cap, size_t *len);

/* Decoders fail with DL_ERR_FORMAT naming the missing or mistyped feature. They accept map entries in any order
 * (the last of duplicate keys wins, as in protobuf) and ignore features they do not need. Token ids must lie in
 * [0, 2^31). Decoding allocates only to grow the output arrays: canonical payloads (what TensorFlow and dealer
 * write) are read straight from the wire format, anything else goes through protobuf-c in a per-call arena, with
 * the same results. Thread-safe. */
dl_status dl_example_decode_tokens(const uint8_t *payload, size_t len, dl_i32_array *tokens);
dl_status dl_example_decode_click(const uint8_t *payload, size_t len, dl_click_row *row);
dl_status dl_example_decode_pair(const uint8_t *payload, size_t len, dl_pref_pair *pair);

void dl_click_row_free(dl_click_row *row);
void dl_pref_pair_free(dl_pref_pair *pair);

/* What a record holds, judged by its feature names: "tokens" -> tokens; "chosen" and "rejected" -> pair; "label"
 * and "feature" -> click; anything else unknown. Fails only when the payload is not an Example. */
typedef enum dl_example_kind {
    DL_EXAMPLE_UNKNOWN = 0,
    DL_EXAMPLE_TOKENS = 1,
    DL_EXAMPLE_CLICK = 2,
    DL_EXAMPLE_PAIR = 3,
} dl_example_kind;
dl_status dl_example_detect(const uint8_t *payload, size_t len, dl_example_kind *kind);
/* "tokens", "click", "pair" or "unknown". */
const char *dl_example_kind_name(dl_example_kind kind);
/* Writes "name: int64_list[12], ..." for every feature into buf (cut to cap, NUL-terminated), sorted by name: for
 * messages and `dealer data stat` on files dealer did not write. */
dl_status dl_example_describe(const uint8_t *payload, size_t len, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
