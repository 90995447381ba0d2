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
#include "data/example_rows.h"

#ifdef __cplusplus
extern "C" {
#endif

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
