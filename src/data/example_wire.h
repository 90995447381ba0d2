/* example_wire.h — the fast decoding path for tf.train.Example (internal to src/data, tests and fuzzers).
 *
 * protobuf-c's generic unpacker is exact but slow for training input (it allocates every sub-message and string and
 * walks each message twice): about 1 µs per 18-field click row. These functions read the protobuf wire format of
 * the layout TensorFlow and dealer write directly into the caller's arrays, with no allocation beyond growing them.
 *
 * They accept only "canonical" payloads: Example { features } once, Features holding only map entries, each entry
 * exactly {key, value} in that order with a key free of NUL bytes, each Feature exactly one list, lists made of
 * their value field alone (packed or not), varints of at most 10 bytes. Every entry is checked, not just the ones
 * asked for. Anything else (unknown or repeated fields, groups, a missing or mistyped feature, an out-of-range
 * value) returns 0 and the caller decodes with protobuf-c, which then decides, so results and error messages are
 * always protobuf-c's. Whenever these return 1, protobuf-c accepts the same bytes with the same result: the
 * tests and fuzz/fuzz_example.c check that. */
#ifndef DL_DATA_EXAMPLE_WIRE_H
#define DL_DATA_EXAMPLE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "data/example_rows.h"

/* 1: decoded (outputs filled); 0: use the protobuf-c path (outputs unspecified). */
int dl_wire_decode_tokens(const uint8_t *payload, size_t len, dl_i32_array *tokens);
int dl_wire_decode_click(const uint8_t *payload, size_t len, dl_click_row *row);
int dl_wire_decode_pair(const uint8_t *payload, size_t len, dl_pref_pair *pair);

/* The protobuf-c decoders alone, bypassing the fast path: the reference the fast path is checked against. */
dl_status dl_example_decode_tokens_reference(const uint8_t *payload, size_t len, dl_i32_array *tokens);
dl_status dl_example_decode_click_reference(const uint8_t *payload, size_t len, dl_click_row *row);
dl_status dl_example_decode_pair_reference(const uint8_t *payload, size_t len, dl_pref_pair *pair);

#endif
