/* example_rows.h — the plain structs a record's features decode into: growable int32 and float arrays (reused
 * across records), a click row, a preference pair, and the folding of wide feature ids. Both the protobuf-c codec
 * (example.c) and the fast wire-format decoder (example_wire.c) fill them, so they live below both. */
#ifndef DL_DATA_EXAMPLE_ROWS_H
#define DL_DATA_EXAMPLE_ROWS_H

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

void dl_click_row_free(dl_click_row *row);
void dl_pref_pair_free(dl_pref_pair *pair);

#ifdef __cplusplus
}
#endif

#endif
