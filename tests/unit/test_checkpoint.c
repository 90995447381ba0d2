/* test_checkpoint.c — HDF5 checkpoints on one rank: exact round trips (plain and compressed, tensors of 0 to 4 dims,
 * padding between views, a tensor bigger than one chunk), the listing and CRC status, the CRC combination, every
 * damage the loader must name (flipped byte, truncation, missing dataset, another model shape, another optimizer),
 * pruning and `latest`, bad slices, and the safetensors export's layout. (tests/mpi/test_checkpoint_zero.c covers
 * several ranks and slicings; tests/e2e/test_ckpt_*.sh whole runs.) */
#include "testutil.h"

#include <hdf5.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "comm/world.h"
#include "core/fs.h"
#include "data/record.h"
#include "ckpt/checkpoint.h"

static dl_world world;
static char test_dir[256];

#define ASSERT_OK(expr)                                                                                          \
    do {                                                                                                         \
        dl_status s_ = (expr);                                                                                   \
        if (s_ != DL_OK)                                                                                         \
            DL_TEST_FAIL("%s failed: %s", #expr, dl_error_message());                                            \
    } while (0)

static void expect_error(dl_status got, dl_status want, const char *const *fragments, const char *what, int line) {
    if (got != want)
        dl_test_fail(__FILE__, line, "%s: got status %s, want %s (message: %s)", what, dl_status_name(got),
                     dl_status_name(want), dl_error_message());
    for (int i = 0; fragments[i]; i++)
        if (!strstr(dl_error_message(), fragments[i]))
            dl_test_fail(__FILE__, line, "%s: message lacks '%s': %s", what, fragments[i], dl_error_message());
}
#define EXPECT_ERROR(expr, want, ...)                                                                            \
    do {                                                                                                         \
        const char *const frags_[] = {__VA_ARGS__, NULL};                                                        \
        expect_error((expr), (want), frags_, #expr, __LINE__);                                                   \
    } while (0)

static int make_dir(void **state) {
    (void)state;
    snprintf(test_dir, sizeof test_dir, "/tmp/dealer_test_ckpt_XXXXXX");
    return mkdtemp(test_dir) ? 0 : -1;
}

static int remove_dir(void **state) {
    (void)state;
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- a model-like fixture ------------------------------------------------------------------------------------- */

static const char *const adam_names[] = {"adam_m", "adam_v"};

typedef struct fixture {
    dl_tensor_table table;
    float *params;
    float *states[2];
    float *state_ptrs[2];
    dl_ckpt_tensors t;
    uint8_t cursor[40];
} fixture;

/* Tensors of 0..4 dims, views aligned to 16 elements (so there is padding), one bigger than a 1 MiB chunk. `wide`
 * makes "emb" one column wider (another model shape); `extra` adds a tensor; `skip_bias` leaves "bias" out. */
static void fixture_init(fixture *f, uint64_t stream, int wide, int extra, int skip_bias) {
    memset(f, 0, sizeof *f);
    ASSERT_OK(dl_tensor_table_init(&f->table, DL_F32, 16));
    ASSERT_OK(dl_tensor_table_add(&f->table, "emb", 2, DL_SHAPE(37, wide ? 6 : 5), NULL));
    ASSERT_OK(dl_tensor_table_add(&f->table, "w3", 3, DL_SHAPE(3, 4, 6), NULL));
    ASSERT_OK(dl_tensor_table_add(&f->table, "w4", 4, DL_SHAPE(2, 3, 2, 5), NULL));
    if (!skip_bias)
        ASSERT_OK(dl_tensor_table_add(&f->table, "bias", 1, DL_SHAPE(7), NULL));
    ASSERT_OK(dl_tensor_table_add(&f->table, "scale", 0, NULL, NULL));
    ASSERT_OK(dl_tensor_table_add(&f->table, "big", 2, DL_SHAPE(300, 1000), NULL));
    ASSERT_OK(dl_tensor_table_add(&f->table, "zeros", 1, DL_SHAPE(5000), NULL));
    if (extra)
        ASSERT_OK(dl_tensor_table_add(&f->table, "extra", 1, DL_SHAPE(3), NULL));
    size_t n = dl_tensor_table_numel(&f->table);
    f->params = calloc(n, sizeof(float));
    assert_non_null(f->params);
    dl_rng rng;
    dl_test_rng(&rng, stream);
    dl_test_fill_uniform(&rng, f->params, n, -2.0f, 2.0f);
    const dl_tensor *z = dl_tensor_table_find(&f->table, "zeros");
    memset(f->params + z->offset, 0, z->numel * sizeof(float));
    for (int k = 0; k < 2; k++) {
        f->states[k] = calloc(n, sizeof(float));
        assert_non_null(f->states[k]);
        dl_test_fill_uniform(&rng, f->states[k], n, 0.0f, 1.0f);
        f->state_ptrs[k] = f->states[k];
    }
    for (size_t i = 0; i < sizeof f->cursor; i++)
        f->cursor[i] = (uint8_t)(dl_rng_u32(&rng) & 0xff);
    f->t = (dl_ckpt_tensors){&f->table, f->params, 2, adam_names, f->state_ptrs, 0, n};
}

static void fixture_free(fixture *f) {
    dl_tensor_table_free(&f->table);
    free(f->params);
    free(f->states[0]);
    free(f->states[1]);
}

static dl_ckpt_meta sample_meta(int64_t step) {
    dl_ckpt_meta m;
    memset(&m, 0, sizeof m);
    m.step = step;
    m.epoch = 2;
    m.tokens_seen = 123456789.0;
    m.samples_seen = 4321.0;
    m.optimizer_step = step - 1;
    m.bad_steps = 3;
    m.seed = 1337;
    m.world_size = 1;
    m.zero_stage = 0;
    snprintf(m.model_kind, sizeof m.model_kind, "gpt");
    m.config_yaml = (char *)"model:\n  kind: gpt\n";
    return m;
}

static void save(fixture *f, int64_t step, const dl_ckpt_options *o, char *path, size_t cap) {
    dl_ckpt_meta m = sample_meta(step);
    ASSERT_OK(dl_ckpt_save(&world, test_dir, &m, &f->t, f->cursor, sizeof f->cursor, o, path, cap));
}

/* Every view of a and b (padding excluded) holds the same bits. */
static void expect_same_views(const dl_tensor_table *table, const float *a, const float *b, const char *what) {
    for (size_t i = 0; i < table->count; i++) {
        const dl_tensor *v = dl_tensor_table_at(table, i);
        /* Bits hold: a checkpoint round trip copies bytes; no arithmetic. */
        if (memcmp(a + v->offset, b + v->offset, v->numel * sizeof(float)) != 0)
            DL_TEST_FAIL("%s: tensor %s differs after the round trip", what, v->name);
    }
}

static void round_trip(int compress) {
    fixture f, g;
    fixture_init(&f, 1, 0, 0, 0);
    fixture_init(&g, 2, 0, 0, 0); /* other values, overwritten by the load */
    dl_ckpt_options o = {.keep = 0, .compress = compress};
    char path[4400];
    save(&f, 12, &o, path, sizeof path);
    char want[4400];
    snprintf(want, sizeof want, "%s/ckpt/step_00000012.h5", test_dir);
    assert_string_equal(path, want);
    uint8_t *cursor = NULL;
    size_t cursor_len = 0;
    ASSERT_OK(dl_ckpt_load(path, &g.t, 0, 1, &cursor, &cursor_len));
    expect_same_views(&f.table, f.params, g.params, "params");
    expect_same_views(&f.table, f.states[0], g.states[0], "adam_m");
    expect_same_views(&f.table, f.states[1], g.states[1], "adam_v");
    assert_int_equal(cursor_len, sizeof f.cursor);
    assert_memory_equal(cursor, f.cursor, sizeof f.cursor);
    free(cursor);
    /* Another world size gets no cursor (it cannot be split), but the tensors all the same. */
    ASSERT_OK(dl_ckpt_load(path, &g.t, 1, 2, &cursor, &cursor_len));
    assert_null(cursor);
    assert_int_equal(cursor_len, 0);
    dl_ckpt_meta m;
    ASSERT_OK(dl_ckpt_read_meta(path, &m));
    assert_int_equal(m.step, 12);
    assert_int_equal(m.epoch, 2);
    assert_true(m.tokens_seen == 123456789.0 && m.samples_seen == 4321.0);
    assert_int_equal(m.optimizer_step, 11);
    assert_int_equal(m.bad_steps, 3);
    assert_int_equal(m.seed, 1337);
    assert_int_equal(m.world_size, 1);
    assert_string_equal(m.model_kind, "gpt");
    assert_string_equal(m.config_yaml, "model:\n  kind: gpt\n");
    assert_non_null(strstr(m.dealer_version, DEALER_VERSION));
    free(m.config_yaml);
    /* The listing: write order, shapes, CRCs that hold; compression shrinks the all-zero tensor. */
    dl_ckpt_file *file;
    ASSERT_OK(dl_ckpt_open(&file, path));
    assert_int_equal(dl_ckpt_count(file), 3 * f.table.count + 2);
    assert_string_equal(dl_ckpt_at(file, 0)->name, "/model/emb");
    assert_string_equal(dl_ckpt_at(file, f.table.count)->name, "/optimizer/adam_m/emb");
    assert_string_equal(dl_ckpt_at(file, dl_ckpt_count(file) - 1)->name, "/data/cursor_lengths");
    const dl_ckpt_dataset *w4 = dl_ckpt_find(file, "/model/w4");
    assert_non_null(w4);
    assert_int_equal(w4->ndim, 4);
    assert_int_equal(w4->shape[3], 5);
    assert_int_equal(dl_ckpt_find(file, "/model/scale")->ndim, 0);
    const dl_ckpt_dataset *zeros = dl_ckpt_find(file, "/model/zeros");
    if (compress)
        assert_true(zeros->storage_bytes < zeros->numel * 4 / 10);
    else
        assert_true(zeros->storage_bytes == zeros->numel * 4);
    for (size_t i = 0; i < dl_ckpt_count(file); i++) {
        const dl_ckpt_dataset *d = dl_ckpt_at(file, i);
        void *buf = malloc(d->numel * dl_ckpt_dtype_size(d->dtype) + 1);
        int ok = -2;
        ASSERT_OK(dl_ckpt_read(file, d, buf, &ok));
        if (ok != 1)
            DL_TEST_FAIL("%s: crc status %d", d->name, ok);
        free(buf);
    }
    dl_ckpt_close(file);
    fixture_free(&f);
    fixture_free(&g);
}

/* The BLAS kernel, CPU variant and thread count come back as written; a checkpoint written without them (as every
 * one before they were recorded) still loads, with them empty. */
static void numerics_are_recorded_and_optional(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 3, 0, 0, 0);
    dl_ckpt_options o = {.keep = 0};
    char path[4400];
    dl_ckpt_meta m = sample_meta(5);
    snprintf(m.blas_kernel, sizeof m.blas_kernel, "SkylakeX");
    snprintf(m.cpu_variant, sizeof m.cpu_variant, "avx512");
    m.threads = 7;
    ASSERT_OK(dl_ckpt_save(&world, test_dir, &m, &f.t, f.cursor, sizeof f.cursor, &o, path, sizeof path));
    dl_ckpt_meta back;
    ASSERT_OK(dl_ckpt_read_meta(path, &back));
    assert_string_equal(back.blas_kernel, "SkylakeX");
    assert_string_equal(back.cpu_variant, "avx512");
    assert_int_equal(back.threads, 7);
    free(back.config_yaml);

    m = sample_meta(6); /* no numerics: the attributes are not written */
    ASSERT_OK(dl_ckpt_save(&world, test_dir, &m, &f.t, f.cursor, sizeof f.cursor, &o, path, sizeof path));
    memset(&back, 0x5a, sizeof back);
    ASSERT_OK(dl_ckpt_read_meta(path, &back));
    assert_string_equal(back.blas_kernel, "");
    assert_string_equal(back.cpu_variant, "");
    assert_int_equal(back.threads, 0);
    assert_int_equal(back.step, 6);
    free(back.config_yaml);
    uint8_t *cursor = NULL;
    size_t cursor_len = 0;
    ASSERT_OK(dl_ckpt_load(path, &f.t, 0, 1, &cursor, &cursor_len));
    free(cursor);
    fixture_free(&f);
}

static void round_trip_is_exact(void **state) {
    (void)state;
    round_trip(0);
}

static void compressed_round_trip_is_exact(void **state) {
    (void)state;
    round_trip(1);
}

static void crc_combine_matches_the_crc_of_the_concatenation(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 7);
    uint8_t buf[5000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)dl_rng_u32(&rng);
    const size_t splits[] = {0, 1, 7, 8, 1000, 4096, 4999, 5000};
    for (size_t i = 0; i < sizeof splits / sizeof splits[0]; i++) {
        size_t a = splits[i];
        uint32_t whole = dl_crc32c(0, buf, sizeof buf);
        uint32_t combined = dl_ckpt_crc32c_combine(dl_crc32c(0, buf, a), dl_crc32c(0, buf + a, sizeof buf - a),
                                                   sizeof buf - a);
        if (combined != whole)
            DL_TEST_FAIL("split at %zu: combined 0x%08x, direct 0x%08x", a, combined, whole);
    }
}

/* Byte offset of the first occurrence of `needle` in the file, or -1. */
static long find_bytes(const char *path, const void *needle, size_t len) {
    uint8_t *data = NULL;
    size_t size = 0;
    ASSERT_OK(dl_read_file(path, &data, &size));
    long at = -1;
    for (size_t i = 0; i + len <= size && at < 0; i++)
        if (memcmp(data + i, needle, len) == 0)
            at = (long)i;
    free(data);
    return at;
}

static void flip_byte(const char *path, long offset) {
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, offset, SEEK_SET), 0);
    int c = fgetc(fp);
    assert_int_equal(fseek(fp, offset, SEEK_SET), 0);
    fputc(c ^ 0x10, fp);
    fclose(fp);
}

static void flipped_byte_is_a_crc_error_naming_file_and_tensor(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 3, 0, 0, 0);
    char path[4400];
    save(&f, 1, NULL, path, sizeof path);
    const dl_tensor *big = dl_tensor_table_find(&f.table, "big");
    long at = find_bytes(path, f.params + big->offset + 5000, 64);
    assert_true(at > 0);
    flip_byte(path, at + 3);
    uint8_t *cursor = NULL;
    size_t len = 0;
    EXPECT_ERROR(dl_ckpt_load(path, &f.t, 0, 1, &cursor, &len), DL_ERR_FORMAT, path, "tensor /model/big",
                 "CRC mismatch");
    assert_null(cursor);
    dl_ckpt_file *file;
    ASSERT_OK(dl_ckpt_open(&file, path));
    const dl_ckpt_dataset *d = dl_ckpt_find(file, "/model/big");
    float *buf = malloc(d->numel * sizeof(float));
    int ok = -2;
    ASSERT_OK(dl_ckpt_read(file, d, buf, &ok));
    assert_int_equal(ok, 0);
    free(buf);
    dl_ckpt_close(file);
    fixture_free(&f);
}

static void truncated_file_fails_naming_the_file(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 4, 0, 0, 0);
    char path[4400];
    save(&f, 2, NULL, path, sizeof path);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
    uint8_t *cursor = NULL;
    size_t len = 0;
    EXPECT_ERROR(dl_ckpt_load(path, &f.t, 0, 1, &cursor, &len), DL_ERR_FORMAT, path, "truncated or damaged");
    dl_ckpt_meta m;
    EXPECT_ERROR(dl_ckpt_read_meta(path, &m), DL_ERR_FORMAT, path);
    char missing[4400];
    snprintf(missing, sizeof missing, "%s/nothing.h5", test_dir);
    EXPECT_ERROR(dl_ckpt_read_meta(missing, &m), DL_ERR_INVALID, "nothing.h5");
    fixture_free(&f);
}

static void missing_dataset_fails_naming_it(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 5, 0, 0, 0);
    char path[4400];
    save(&f, 3, NULL, path, sizeof path);
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(file >= 0);
    assert_true(H5Ldelete(file, "/optimizer/adam_v/w3", H5P_DEFAULT) >= 0);
    H5Fclose(file);
    uint8_t *cursor = NULL;
    size_t len = 0;
    EXPECT_ERROR(dl_ckpt_load(path, &f.t, 0, 1, &cursor, &len), DL_ERR_FORMAT, path,
                 "tensor /optimizer/adam_v/w3 is missing");
    /* Parameters alone still load (generation, export need no optimizer state). */
    dl_ckpt_tensors params_only = {&f.table, f.params, 0, NULL, NULL, 0, 0};
    ASSERT_OK(dl_ckpt_load(path, &params_only, 0, 0, &cursor, &len));
    free(cursor);
    fixture_free(&f);
}

static void another_model_or_optimizer_fails_naming_the_tensor(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 6, 0, 0, 0);
    char path[4400];
    save(&f, 4, NULL, path, sizeof path);
    uint8_t *cursor = NULL;
    size_t len = 0;
    fixture wide, extra, fewer;
    fixture_init(&wide, 7, 1, 0, 0);
    EXPECT_ERROR(dl_ckpt_load(path, &wide.t, 0, 1, &cursor, &len), DL_ERR_FORMAT, path, "tensor /model/emb",
                 "[37, 5]", "[37, 6]", "another model shape");
    fixture_init(&extra, 8, 0, 1, 0);
    EXPECT_ERROR(dl_ckpt_load(path, &extra.t, 0, 1, &cursor, &len), DL_ERR_FORMAT, "tensor /model/extra is missing");
    fixture_init(&fewer, 9, 0, 0, 1);
    EXPECT_ERROR(dl_ckpt_load(path, &fewer.t, 0, 1, &cursor, &len), DL_ERR_FORMAT,
                 "tensor /model/bias is not a parameter of this model");
    const char *const momentum[] = {"momentum"};
    f.t.num_states = 1;
    f.t.state_names = momentum;
    EXPECT_ERROR(dl_ckpt_load(path, &f.t, 0, 1, &cursor, &len), DL_ERR_FORMAT, "optimizer state 'adam_m'",
                 "keeps momentum");
    assert_null(cursor);
    fixture_free(&f);
    fixture_free(&wide);
    fixture_free(&extra);
    fixture_free(&fewer);
}

static int exists(const char *name) {
    char path[4400];
    snprintf(path, sizeof path, "%s/ckpt/%s", test_dir, name);
    return access(path, F_OK) == 0;
}

static void pruning_keeps_newest_multiples_and_later_steps(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 10, 0, 0, 0);
    dl_ckpt_options o = {.keep = 2, .keep_every = 3};
    char path[4400], latest[4400];
    save(&f, 1, &o, path, sizeof path); /* creates ckpt/ */
    char leftover[4400];
    snprintf(leftover, sizeof leftover, "%s/ckpt/step_00000099.h5.tmp", test_dir);
    ASSERT_OK(dl_write_file_atomic(leftover, "x", 1));
    /* A temporary as writers name them now (core/fs.h), left by a writer on another machine. */
    char leftover_now[4400];
    snprintf(leftover_now, sizeof leftover_now, "%s/ckpt/step_00000098.h5.tmp.otherhost-4242-AbC123", test_dir);
    ASSERT_OK(dl_write_file_atomic(leftover_now, "x", 1));
    for (int step = 2; step <= 7; step++)
        save(&f, step, &o, path, sizeof path);
    const int want[8] = {0, 0, 0, 1, 0, 0, 1, 1}; /* steps 3 and 6 (keep_every), 6 and 7 (newest two) */
    for (int step = 1; step <= 7; step++) {
        char name[64];
        snprintf(name, sizeof name, "step_%08d.h5", step);
        if (exists(name) != want[step])
            DL_TEST_FAIL("after saving 1..7 with keep 2, keep_every 3: %s %s", name, want[step] ? "gone" : "kept");
    }
    assert_false(exists("step_00000099.h5.tmp"));
    assert_false(exists("step_00000098.h5.tmp.otherhost-4242-AbC123"));
    int found = 0;
    ASSERT_OK(dl_ckpt_latest(test_dir, latest, sizeof latest, &found));
    assert_true(found);
    assert_string_equal(latest, path);
    /* A run resumed from an earlier step (train.resume=PATH) saves step 4 again: the later steps are not its to
     * delete, and the file it just wrote is never deleted. */
    o.keep = 1;
    o.keep_every = 0;
    save(&f, 4, &o, path, sizeof path);
    assert_true(exists("step_00000004.h5") && exists("step_00000006.h5") && exists("step_00000007.h5"));
    assert_false(exists("step_00000003.h5"));
    ASSERT_OK(dl_ckpt_latest(test_dir, latest, sizeof latest, &found));
    assert_string_equal(latest, path);
    fixture_free(&f);
}

static void latest_errors_are_clear(void **state) {
    (void)state;
    char dir[512], latest_path[600], path[4400];
    snprintf(dir, sizeof dir, "%s/other", test_dir);
    int found = 1;
    ASSERT_OK(dl_ckpt_latest(dir, path, sizeof path, &found));
    assert_false(found);
    snprintf(latest_path, sizeof latest_path, "%s/ckpt", dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(mkdir(latest_path, 0755), 0);
    snprintf(latest_path, sizeof latest_path, "%s/ckpt/latest", dir);
    ASSERT_OK(dl_write_file_atomic(latest_path, "garbage\n", 8));
    EXPECT_ERROR(dl_ckpt_latest(dir, path, sizeof path, &found), DL_ERR_FORMAT, "latest", "garbage");
    ASSERT_OK(dl_write_file_atomic(latest_path, "step_00000042.h5\n", 17));
    EXPECT_ERROR(dl_ckpt_latest(dir, path, sizeof path, &found), DL_ERR_FORMAT, "step_00000042.h5");
}

static void bad_slices_fail_and_leave_no_file(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 11, 0, 0, 0);
    char path[4400];
    snprintf(path, sizeof path, "%s/gap.h5", test_dir);
    dl_ckpt_meta m = sample_meta(5);
    f.t.state_end = dl_tensor_table_numel(&f.table) - 1;
    EXPECT_ERROR(dl_ckpt_write(&world, path, &m, &f.t, NULL, 0, NULL), DL_ERR_INVALID, "cover");
    f.t.state_end = dl_tensor_table_numel(&f.table) + 1;
    EXPECT_ERROR(dl_ckpt_write(&world, path, &m, &f.t, NULL, 0, NULL), DL_ERR_INVALID, "outside");
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(dl_test_tmp_count(path), 0);
    /* No cursor at all is fine. */
    f.t.state_end = dl_tensor_table_numel(&f.table);
    ASSERT_OK(dl_ckpt_write(&world, path, &m, &f.t, NULL, 0, NULL));
    uint8_t *cursor = NULL;
    size_t len = 7;
    ASSERT_OK(dl_ckpt_load(path, &f.t, 0, 1, &cursor, &len));
    assert_int_equal(len, 0);
    free(cursor);
    fixture_free(&f);
}

/* The exported file follows the safetensors rules: 8-byte little-endian N, N bytes of JSON starting with '{'
 * (padded with spaces), then the data, every tensor's [begin, end) contiguous from 0 to the end of the file. */
static void safetensors_export_has_the_documented_layout(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f, 12, 0, 0, 0);
    char path[4400], out[4400];
    save(&f, 9, NULL, path, sizeof path);
    snprintf(out, sizeof out, "%s/model.safetensors", test_dir);
    size_t count = 0;
    uint64_t bytes = 0;
    ASSERT_OK(dl_ckpt_export_safetensors(path, out, &count, &bytes));
    assert_int_equal(count, f.table.count);
    uint8_t *data = NULL;
    size_t size = 0;
    ASSERT_OK(dl_read_file(out, &data, &size));
    uint64_t n = 0;
    for (int k = 0; k < 8; k++)
        n |= (uint64_t)data[k] << (8 * k);
    assert_true(n % 8 == 0 && 8 + n <= size);
    assert_int_equal(data[8], '{');
    assert_int_equal(size - 8 - n, bytes);
    json_error_t err;
    json_t *header = json_loadb((const char *)data + 8, n, 0, &err);
    if (!header)
        DL_TEST_FAIL("header is not JSON: %s", err.text);
    json_t *meta = json_object_get(header, "__metadata__");
    assert_string_equal(json_string_value(json_object_get(meta, "format")), "pt");
    assert_string_equal(json_string_value(json_object_get(meta, "dealer_step")), "9");
    uint64_t covered = 0;
    for (size_t i = 0; i < f.table.count; i++) {
        const dl_tensor *v = dl_tensor_table_at(&f.table, i);
        json_t *e = json_object_get(header, v->name);
        if (!e)
            DL_TEST_FAIL("tensor %s missing from the header", v->name);
        assert_string_equal(json_string_value(json_object_get(e, "dtype")), "F32");
        json_t *shape = json_object_get(e, "shape"), *offs = json_object_get(e, "data_offsets");
        assert_int_equal(json_array_size(shape), (size_t)v->ndim);
        for (int d = 0; d < v->ndim; d++)
            assert_int_equal(json_integer_value(json_array_get(shape, (size_t)d)), v->shape[d]);
        uint64_t b = (uint64_t)json_integer_value(json_array_get(offs, 0));
        uint64_t e_ = (uint64_t)json_integer_value(json_array_get(offs, 1));
        assert_int_equal(b, covered); /* written in table order, no holes */
        assert_int_equal(e_ - b, v->numel * 4);
        assert_memory_equal(data + 8 + n + b, f.params + v->offset, v->numel * 4);
        covered = e_;
    }
    assert_int_equal(covered, bytes);
    assert_int_equal(json_object_size(header), f.table.count + 1);
    json_decref(header);
    free(data);
    fixture_free(&f);
}

int main(int argc, char **argv) {
    if (dl_world_init(&world, &argc, &argv, 60.0) != DL_OK) {
        fprintf(stderr, "cannot start MPI: %s\n", dl_error_message());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc_combine_matches_the_crc_of_the_concatenation),
        cmocka_unit_test_setup_teardown(round_trip_is_exact, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(numerics_are_recorded_and_optional, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(compressed_round_trip_is_exact, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(flipped_byte_is_a_crc_error_naming_file_and_tensor, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(truncated_file_fails_naming_the_file, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(missing_dataset_fails_naming_it, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(another_model_or_optimizer_fails_naming_the_tensor, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(pruning_keeps_newest_multiples_and_later_steps, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(latest_errors_are_clear, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(bad_slices_fail_and_leave_no_file, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(safetensors_export_has_the_documented_layout, make_dir, remove_dir),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dl_world_finalize(&world);
    return failed;
}
