/* example_rows.c — growable arrays, click rows and preference pairs (example_rows.h). */
#include "data/example_rows.h"

#include <stdlib.h>
#include <string.h>

#include "core/grow.h"

/* ---- growable arrays ---------------------------------------------------------------------------------------- */

void dl_i32_array_free(dl_i32_array *a) {
    if (!a)
        return;
    free(a->data);
    a->data = NULL;
    a->len = a->cap = 0;
}

void dl_f32_array_free(dl_f32_array *a) {
    if (!a)
        return;
    free(a->data);
    a->data = NULL;
    a->len = a->cap = 0;
}

dl_status dl_i32_array_reserve(dl_i32_array *a, size_t n) {
    DL_REQUIRE(a, DL_ERR_INVALID, "dl_i32_array_reserve: NULL array");
    void *p = a->data;
    dl_status s = dl_grow(&p, &a->cap, n, sizeof(int32_t), "an int32 array");
    a->data = p;
    return s;
}

dl_status dl_f32_array_reserve(dl_f32_array *a, size_t n) {
    DL_REQUIRE(a, DL_ERR_INVALID, "dl_f32_array_reserve: NULL array");
    void *p = a->data;
    dl_status s = dl_grow(&p, &a->cap, n, sizeof(float), "a float array");
    a->data = p;
    return s;
}

dl_status dl_i32_array_push(dl_i32_array *a, int32_t v) {
    DL_REQUIRE(a, DL_ERR_INVALID, "dl_i32_array_push: NULL array");
    if (a->len == a->cap)
        DL_CHECK(dl_i32_array_reserve(a, a->len + 1));
    a->data[a->len++] = v;
    return DL_OK;
}

dl_status dl_f32_array_push(dl_f32_array *a, float v) {
    DL_REQUIRE(a, DL_ERR_INVALID, "dl_f32_array_push: NULL array");
    if (a->len == a->cap)
        DL_CHECK(dl_f32_array_reserve(a, a->len + 1));
    a->data[a->len++] = v;
    return DL_OK;
}

void dl_click_row_free(dl_click_row *row) {
    if (!row)
        return;
    dl_i32_array_free(&row->field);
    dl_i32_array_free(&row->feature);
    dl_f32_array_free(&row->value);
    row->label = 0;
}

void dl_pref_pair_free(dl_pref_pair *pair) {
    if (!pair)
        return;
    dl_i32_array_free(&pair->prompt);
    dl_i32_array_free(&pair->chosen);
    dl_i32_array_free(&pair->rejected);
}

int32_t dl_feature_id_fold(int64_t id) {
    if (id >= INT32_MIN && id <= INT32_MAX) /* a real id, or one hashed already (negative) */
        return (int32_t)id;
    uint64_t u = (uint64_t)id;
    u ^= u >> 31;
    u *= 0x9E3779B97F4A7C15ull; /* spread the high bits into the low ones before masking */
    u ^= u >> 29;
    return (int32_t)(-1 - (int64_t)(u & 0x7fffffffu));
}
