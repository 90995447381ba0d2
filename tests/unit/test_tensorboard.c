/* test_tensorboard.c — TensorBoard event files: what the writer puts in (file version first, scalar summaries, a
 * session start) comes back from dealer's reader with steps, tags and values; the framing is TFRecord's (checked
 * byte by byte on the first record); damage and truncation are errors naming the record and its offset. */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"
#include "data/record.h"
#include "train/tensorboard.h"

static char test_dir[256];

#define ASSERT_OK(expr)                                                                                          \
    do {                                                                                                         \
        dl_status s_ = (expr);                                                                                   \
        if (s_ != DL_OK)                                                                                         \
            DL_TEST_FAIL("%s failed: %s", #expr, dl_error_message());                                            \
    } while (0)

static int make_dir(void **state) {
    (void)state;
    snprintf(test_dir, sizeof test_dir, "/tmp/dealer_test_tb_XXXXXX");
    return mkdtemp(test_dir) ? 0 : -1;
}

static int remove_dir(void **state) {
    (void)state;
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes a small run: 20 steps of three scalars (one a model metric with a '/' in its tag), a resume marker. */
static void write_run(char *path, size_t cap, double *values) {
    dl_tb_writer *w;
    ASSERT_OK(dl_tb_open(&w, test_dir));
    snprintf(path, cap, "%s", dl_tb_path(w));
    dl_rng rng;
    dl_test_rng(&rng, 1);
    const char *tags[3] = {"loss", "lr", "rewards/accuracy"};
    for (int step = 1; step <= 20; step++) {
        double v[3] = {5.0 * dl_rng_uniform(&rng), 1e-3 * step, dl_rng_uniform(&rng)};
        memcpy(values + 3 * (step - 1), v, sizeof v);
        ASSERT_OK(dl_tb_scalars(w, step, 3, tags, v));
    }
    ASSERT_OK(dl_tb_session_start(w, 21));
    dl_tb_close(w);
}

static void events_round_trip_through_the_reader(void **state) {
    (void)state;
    char path[4400];
    double values[60];
    write_run(path, sizeof path, values);
    /* The name TensorBoard looks for. */
    const char *base = strrchr(path, '/') + 1;
    assert_int_equal(strncmp(base, "events.out.tfevents.", 20), 0);
    dl_tb_event *events = NULL;
    size_t n = 0;
    ASSERT_OK(dl_tb_read(path, &events, &n));
    assert_int_equal(n, 1 + 60 + 1);
    assert_int_equal(events[0].kind, DL_TB_FILE_VERSION);
    assert_string_equal(events[0].tag, "brain.Event:2");
    assert_true(events[0].wall_time > 1.6e9);
    const char *tags[3] = {"loss", "lr", "rewards/accuracy"};
    for (size_t i = 0; i < 60; i++) {
        const dl_tb_event *e = &events[1 + i];
        assert_int_equal(e->kind, DL_TB_SCALAR);
        assert_int_equal(e->step, (int64_t)(i / 3 + 1));
        assert_string_equal(e->tag, tags[i % 3]);
        /* simple_value is a float in the proto. */
        if (e->value != (double)(float)values[i])
            DL_TEST_FAIL("event %zu (%s at step %lld): read %.9g, wrote %.9g", i, e->tag, (long long)e->step, e->value,
                         values[i]);
        assert_true(e->wall_time >= events[0].wall_time);
    }
    assert_int_equal(events[61].kind, DL_TB_SESSION_START);
    assert_int_equal(events[61].step, 21);
    free(events);
}

static void records_use_tfrecord_framing(void **state) {
    (void)state;
    char path[4400];
    double values[60];
    write_run(path, sizeof path, values);
    uint8_t *data = NULL;
    size_t size = 0;
    ASSERT_OK(dl_read_file(path, &data, &size));
    uint64_t len = 0;
    for (int k = 0; k < 8; k++)
        len |= (uint64_t)data[k] << (8 * k);
    assert_true(len > 0 && 16 + len <= size);
    uint32_t len_crc = (uint32_t)data[8] | (uint32_t)data[9] << 8 | (uint32_t)data[10] << 16 | (uint32_t)data[11] << 24;
    assert_int_equal(len_crc, dl_crc32c_mask(dl_crc32c(0, data, 8)));
    const uint8_t *tail = data + 12 + len;
    uint32_t data_crc = (uint32_t)tail[0] | (uint32_t)tail[1] << 8 | (uint32_t)tail[2] << 16 | (uint32_t)tail[3] << 24;
    assert_int_equal(data_crc, dl_crc32c_mask(dl_crc32c(0, data + 12, (size_t)len)));
    /* The payload holds the version string (Event field 3). */
    assert_non_null(memmem(data + 12, (size_t)len, "brain.Event:2", 13));
    free(data);
}

static void damage_and_truncation_are_errors_naming_the_record(void **state) {
    (void)state;
    char path[4400];
    double values[60];
    write_run(path, sizeof path, values);
    uint8_t *data = NULL;
    size_t size = 0;
    ASSERT_OK(dl_read_file(path, &data, &size));
    dl_tb_event *events = NULL;
    size_t n = 0;
    /* A flipped byte in the last record's payload. */
    data[size - 6] ^= 0x01;
    ASSERT_OK(dl_write_file_atomic(path, data, size));
    assert_int_equal(dl_tb_read(path, &events, &n), DL_ERR_FORMAT);
    assert_non_null(strstr(dl_error_message(), "payload CRC mismatch"));
    assert_non_null(strstr(dl_error_message(), "record 21"));
    assert_null(events);
    /* The last record cut short (a process killed inside a write). */
    data[size - 6] ^= 0x01;
    ASSERT_OK(dl_write_file_atomic(path, data, size - 3));
    assert_int_equal(dl_tb_read(path, &events, &n), DL_ERR_FORMAT);
    assert_non_null(strstr(dl_error_message(), "truncated"));
    free(data);
}

static void each_writer_gets_its_own_file(void **state) {
    (void)state;
    dl_tb_writer *a, *b;
    ASSERT_OK(dl_tb_open(&a, test_dir));
    ASSERT_OK(dl_tb_open(&b, test_dir)); /* same second, same process: must not clobber a */
    assert_string_not_equal(dl_tb_path(a), dl_tb_path(b));
    dl_tb_close(a);
    dl_tb_close(b);
    const char *tag = "";
    double v = 1.0;
    ASSERT_OK(dl_tb_open(&a, test_dir));
    assert_int_equal(dl_tb_scalars(a, 1, 1, &tag, &v), DL_ERR_INVALID);
    dl_tb_close(a);
    char missing[400];
    snprintf(missing, sizeof missing, "%s/no/such/dir", test_dir);
    assert_int_equal(dl_tb_open(&a, missing), DL_ERR_IO);
    assert_non_null(strstr(dl_error_message(), missing));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(events_round_trip_through_the_reader, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(records_use_tfrecord_framing, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(damage_and_truncation_are_errors_naming_the_record, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(each_writer_gets_its_own_file, make_dir, remove_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
