/* test_record.c — CRC32C (both implementations), TFRecord writing and reading, the .idx sidecar (valid, missing,
 * stale, corrupt, lying), damaged and truncated records, and the atomic file helpers underneath. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fs.h"
#include "data/record.h"

/* ---- helpers ------------------------------------------------------------------------------------------------ */

static char test_dir[256];

static int make_dir(void **state) {
    (void)state;
    snprintf(test_dir, sizeof test_dir, "/tmp/dealer_test_record_XXXXXX");
    if (!mkdtemp(test_dir))
        return -1;
    return 0;
}

static int remove_dir(void **state) {
    (void)state;
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_in_dir(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", test_dir, name); }

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

#define ASSERT_OK(expr)                                                                                          \
    do {                                                                                                         \
        dl_status s_ = (expr);                                                                                   \
        if (s_ != DL_OK)                                                                                         \
            DL_TEST_FAIL("%s failed: %s", #expr, dl_error_message());                                            \
    } while (0)

/* Fails unless `expr` returned `status` with a message containing each of the given fragments. */
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

/* Payload i of a test file: length from the rng (0..max_len), bytes a function of (i, position). */
static size_t payload_for(dl_rng *rng, uint64_t i, uint8_t *buf, size_t max_len) {
    size_t len = (size_t)dl_rng_below(rng, max_len + 1);
    for (size_t k = 0; k < len; k++)
        buf[k] = (uint8_t)(i * 131 + k * 7 + (k >> 8));
    return len;
}

/* Writes n records to path; lengths[i] get each payload's length. */
static void write_records(const char *path, uint64_t n, size_t max_len, uint64_t stream, size_t *lengths) {
    dl_rng rng;
    dl_test_rng(&rng, stream);
    uint8_t *buf = malloc(max_len + 1);
    assert_non_null(buf);
    dl_record_writer *w;
    ASSERT_OK(dl_record_writer_open(&w, path));
    for (uint64_t i = 0; i < n; i++) {
        size_t len = payload_for(&rng, i, buf, max_len);
        if (lengths)
            lengths[i] = len;
        ASSERT_OK(dl_record_writer_append(w, buf, len));
    }
    assert_int_equal(dl_record_writer_count(w), n);
    ASSERT_OK(dl_record_writer_close(w));
    free(buf);
}

/* Checks that record i of f holds payload_for(i) for the same stream. */
static void check_all_records(dl_record_file *f, uint64_t n, size_t max_len, uint64_t stream) {
    dl_rng rng;
    dl_test_rng(&rng, stream);
    uint8_t *want = malloc(max_len + 1), *buf = NULL;
    size_t cap = 0, len = 0;
    assert_int_equal(dl_record_file_count(f), n);
    for (uint64_t i = 0; i < n; i++) {
        size_t want_len = payload_for(&rng, i, want, max_len);
        ASSERT_OK(dl_record_file_read(f, i, &buf, &cap, &len));
        if (len != want_len || (len && memcmp(buf, want, len) != 0))
            DL_TEST_FAIL("record %llu: got %zu bytes, want %zu (or contents differ)", (unsigned long long)i, len,
                         want_len);
    }
    free(want);
    free(buf);
}

/* Flips one byte of a file in place. */
static void flip_byte(const char *path, uint64_t offset) {
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, (long)offset, SEEK_SET), 0);
    int c = fgetc(fp);
    assert_true(c != EOF);
    assert_int_equal(fseek(fp, (long)offset, SEEK_SET), 0);
    fputc(c ^ 0x40, fp);
    fclose(fp);
}

static void copy_file(const char *from, const char *to) {
    uint8_t *data;
    size_t len;
    ASSERT_OK(dl_read_file(from, &data, &len));
    ASSERT_OK(dl_write_file_atomic(to, data, len));
    free(data);
}

/* Sets a file's modification time `delta` seconds from now. */
static void set_mtime(const char *path, long delta) {
    struct timespec times[2];
    clock_gettime(CLOCK_REALTIME, &times[0]);
    times[0].tv_sec += delta;
    times[1] = times[0];
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
}

/* ---- CRC32C ------------------------------------------------------------------------------------------------- */

typedef struct crc_vector {
    const char *name;
    uint8_t data[48];
    size_t len;
    uint32_t crc;
} crc_vector;

static void crc32c_matches_known_values_in_both_implementations(void **state) {
    (void)state;
    /* "123456789" is the standard check value; the 32-byte vectors are RFC 3720 (iSCSI) appendix B.4. */
    crc_vector vectors[5] = {{"123456789", "123456789", 9, 0xE3069283u}, {"32 zeros", {0}, 32, 0x8A9136AAu}};
    vectors[2].name = "32 x 0xff";
    memset(vectors[2].data, 0xff, 32);
    vectors[2].len = 32;
    vectors[2].crc = 0x62A8AB43u;
    vectors[3].name = "0..31";
    vectors[4].name = "31..0";
    for (int i = 0; i < 32; i++) {
        vectors[3].data[i] = (uint8_t)i;
        vectors[4].data[i] = (uint8_t)(31 - i);
    }
    vectors[3].len = vectors[4].len = 32;
    vectors[3].crc = 0x46DD794Eu;
    vectors[4].crc = 0x113FDB5Cu;
    for (int v = 0; v < 5; v++) {
        uint32_t hw = dl_crc32c(0, vectors[v].data, vectors[v].len);
        uint32_t sw = dl_crc32c_portable(0, vectors[v].data, vectors[v].len);
        if (hw != vectors[v].crc || sw != vectors[v].crc)
            DL_TEST_FAIL("%s: dl_crc32c 0x%08x, portable 0x%08x, want 0x%08x", vectors[v].name, hw, sw,
                         vectors[v].crc);
    }
    assert_int_equal(dl_crc32c(0, "", 0), 0);
    assert_int_equal(dl_crc32c_portable(0, "", 0), 0);
#if defined(__SSE4_2__)
    assert_int_equal(dl_crc32c_hardware(), 1);
#else
    assert_int_equal(dl_crc32c_hardware(), 0);
#endif
}

static void crc32c_paths_agree_on_random_buffers_and_chain(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 11);
    uint8_t buf[1100];
    for (int trial = 0; trial < 300; trial++) {
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (uint8_t)dl_rng_u32(&rng);
        size_t start = (size_t)dl_rng_below(&rng, 16); /* unaligned starts */
        size_t len = (size_t)dl_rng_below(&rng, sizeof buf - 16);
        uint32_t hw = dl_crc32c(0, buf + start, len);
        uint32_t sw = dl_crc32c_portable(0, buf + start, len);
        if (hw != sw)
            DL_TEST_FAIL("trial %d, %zu bytes at +%zu: hardware 0x%08x, portable 0x%08x", trial, len, start, hw, sw);
        size_t cut = len ? (size_t)dl_rng_below(&rng, len + 1) : 0;
        uint32_t chained = dl_crc32c(dl_crc32c(0, buf + start, cut), buf + start + cut, len - cut);
        uint32_t chained_sw = dl_crc32c_portable(dl_crc32c_portable(0, buf + start, cut), buf + start + cut, len - cut);
        if (chained != hw || chained_sw != hw)
            DL_TEST_FAIL("trial %d: chained CRC 0x%08x / 0x%08x differs from one-shot 0x%08x", trial, chained,
                         chained_sw, hw);
    }
}

static void crc32c_mask_matches_tensorflow_and_inverts(void **state) {
    (void)state;
    /* TensorFlow's mask: rotate right by 15 and add 0xa282ead8. The masked CRC of an 8-byte length 23 appears in the
     * golden record of test_example.c (bytes e7 ce f8 1e). */
    uint8_t header[8] = {23, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(dl_crc32c_mask(dl_crc32c(0, header, 8)), 0x1ef8cee7u);
    dl_rng rng;
    dl_test_rng(&rng, 12);
    for (int i = 0; i < 1000; i++) {
        uint32_t x = dl_rng_u32(&rng);
        assert_int_equal(dl_crc32c_unmask(dl_crc32c_mask(x)), x);
    }
}

/* ---- writing and reading ------------------------------------------------------------------------------------ */

static void records_round_trip_through_the_index(void **state) {
    (void)state;
    char path[320], idx[330];
    path_in_dir(path, sizeof path, "rt.tfrecord");
    snprintf(idx, sizeof idx, "%s.idx", path);
    write_records(path, 500, 300, 21, NULL);
    assert_true(file_exists(path));
    assert_true(file_exists(idx));
    assert_int_equal(dl_test_tmp_count(path), 0);
    dl_record_file *f;
    ASSERT_OK(dl_record_file_open(&f, path));
    assert_int_equal(dl_record_file_indexed(f), 1);
    assert_string_equal(dl_record_file_path(f), path);
    check_all_records(f, 500, 300, 21);
    dl_record_file_close(f);
}

static void random_order_reads_match_sequential_reads(void **state) {
    (void)state;
    char path[320];
    path_in_dir(path, sizeof path, "shuffle.tfrecord");
    const uint64_t n = 400;
    size_t lengths[400];
    write_records(path, n, 200, 22, lengths);
    dl_record_file *f;
    ASSERT_OK(dl_record_file_open(&f, path));
    /* Sequential pass: keep a copy of every payload. */
    uint8_t *seq[400];
    size_t seq_len[400];
    uint8_t *buf = NULL;
    size_t cap = 0, len;
    for (uint64_t i = 0; i < n; i++) {
        ASSERT_OK(dl_record_file_read(f, i, &buf, &cap, &len));
        assert_int_equal(len, lengths[i]);
        seq[i] = malloc(len + 1);
        memcpy(seq[i], buf, len);
        seq_len[i] = len;
    }
    /* A Fisher-Yates permutation, then views (no copy) in that order. */
    uint64_t order[400];
    for (uint64_t i = 0; i < n; i++)
        order[i] = i;
    dl_rng rng;
    dl_test_rng(&rng, 23);
    for (uint64_t i = n - 1; i > 0; i--) {
        uint64_t j = dl_rng_below(&rng, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (uint64_t k = 0; k < n; k++) {
        uint64_t i = order[k];
        const uint8_t *view;
        size_t vlen;
        ASSERT_OK(dl_record_file_view(f, i, &view, &vlen));
        if (vlen != seq_len[i] || (vlen && memcmp(view, seq[i], vlen) != 0))
            DL_TEST_FAIL("record %llu read at position %llu differs from its sequential read", (unsigned long long)i,
                         (unsigned long long)k);
    }
    /* Offsets are increasing and consistent with the lengths. */
    uint64_t expect = 0;
    for (uint64_t i = 0; i < n; i++) {
        assert_int_equal(dl_record_file_offset(f, i), expect);
        expect += seq_len[i] + DL_RECORD_OVERHEAD;
    }
    EXPECT_ERROR(dl_record_file_read(f, n, &buf, &cap, &len), DL_ERR_INVALID, "out of range");
    for (uint64_t i = 0; i < n; i++)
        free(seq[i]);
    free(buf);
    dl_record_file_close(f);
}

static void empty_file_has_no_records(void **state) {
    (void)state;
    char path[320];
    path_in_dir(path, sizeof path, "empty.tfrecord");
    write_records(path, 0, 10, 24, NULL);
    dl_record_file *f;
    ASSERT_OK(dl_record_file_open(&f, path));
    assert_int_equal(dl_record_file_count(f), 0);
    assert_int_equal(dl_record_file_indexed(f), 1);
    dl_record_file_close(f);
    uint64_t count = 99;
    ASSERT_OK(dl_record_index_build(path, &count));
    assert_int_equal(count, 0);
}

/* dl_record_file_prefetch is a hint: on every record, both stages, with and without an index, and past the last
 * record, it reads nothing it should not (ASan sees its index loads) and the records read back unchanged. */
static void prefetch_hints_change_nothing(void **state) {
    (void)state;
    char path[320], idx[330];
    path_in_dir(path, sizeof path, "hint.tfrecord");
    snprintf(idx, sizeof idx, "%s.idx", path);
    write_records(path, 90, 400, 27, NULL);
    for (int indexed = 1; indexed >= 0; indexed--) {
        if (!indexed)
            assert_int_equal(unlink(idx), 0);
        dl_record_file *f;
        ASSERT_OK(dl_record_file_open(&f, path));
        assert_int_equal(dl_record_file_indexed(f), indexed);
        for (uint64_t i = 0; i < 95; i++) /* the last five are past the end */
            for (int stage = 0; stage < 2; stage++)
                dl_record_file_prefetch(f, i, stage);
        dl_record_file_prefetch(NULL, 0, 1);
        check_all_records(f, 90, 400, 27);
        dl_record_file_close(f);
    }
}

static void missing_index_is_scanned_and_rebuilt(void **state) {
    (void)state;
    char path[320], idx[330];
    path_in_dir(path, sizeof path, "noidx.tfrecord");
    snprintf(idx, sizeof idx, "%s.idx", path);
    write_records(path, 120, 500, 25, NULL);
    assert_int_equal(unlink(idx), 0);
    dl_record_file *f;
    ASSERT_OK(dl_record_file_open(&f, path));
    assert_int_equal(dl_record_file_indexed(f), 0);
    check_all_records(f, 120, 500, 25);
    dl_record_file_close(f);
    assert_false(file_exists(idx)); /* readers never write the index */
    uint64_t count = 0;
    ASSERT_OK(dl_record_index_build(path, &count));
    assert_int_equal(count, 120);
    assert_true(file_exists(idx));
    ASSERT_OK(dl_record_file_open(&f, path));
    assert_int_equal(dl_record_file_indexed(f), 1);
    check_all_records(f, 120, 500, 25);
    dl_record_file_close(f);
}

static void stale_or_corrupt_index_is_ignored(void **state) {
    (void)state;
    char a[320], a_idx[330], b[320];
    path_in_dir(a, sizeof a, "stale_a.tfrecord");
    path_in_dir(b, sizeof b, "stale_b.tfrecord");
    snprintf(a_idx, sizeof a_idx, "%s.idx", a);
    write_records(a, 50, 100, 26, NULL);
    write_records(b, 70, 100, 27, NULL);
    /* Replace a's data with b's while keeping a's index: the recorded size no longer matches. */
    uint8_t *saved_idx;
    size_t saved_len;
    ASSERT_OK(dl_read_file(a_idx, &saved_idx, &saved_len));
    copy_file(b, a);
    ASSERT_OK(dl_write_file_atomic(a_idx, saved_idx, saved_len));
    dl_record_file *f;
    ASSERT_OK(dl_record_file_open(&f, a));
    assert_int_equal(dl_record_file_indexed(f), 0);
    check_all_records(f, 70, 100, 27);
    dl_record_file_close(f);

    /* An index older than its data is stale even when it would otherwise fit. */
    ASSERT_OK(dl_record_index_build(a, NULL));
    set_mtime(a_idx, -100);
    ASSERT_OK(dl_record_file_open(&f, a));
    assert_int_equal(dl_record_file_indexed(f), 0);
    dl_record_file_close(f);

    /* A flipped byte in the index fails its CRC. */
    ASSERT_OK(dl_record_index_build(a, NULL));
    flip_byte(a_idx, 40);
    ASSERT_OK(dl_record_file_open(&f, a));
    assert_int_equal(dl_record_file_indexed(f), 0);
    check_all_records(f, 70, 100, 27);
    dl_record_file_close(f);

    /* Garbage in place of the index. */
    ASSERT_OK(dl_write_file_atomic(a_idx, "not an index", 12));
    ASSERT_OK(dl_record_file_open(&f, a));
    assert_int_equal(dl_record_file_indexed(f), 0);
    dl_record_file_close(f);
    free(saved_idx);
}

static void index_that_lies_gives_a_format_error(void **state) {
    (void)state;
    /* Two files of the same size with different record boundaries: x has 4 records of 84 bytes, y 2 of 184. */
    char x[320], y[320], x_idx[330], y_idx[330];
    path_in_dir(x, sizeof x, "lie_x.tfrecord");
    path_in_dir(y, sizeof y, "lie_y.tfrecord");
    snprintf(x_idx, sizeof x_idx, "%s.idx", x);
    snprintf(y_idx, sizeof y_idx, "%s.idx", y);
    uint8_t payload[200];
    memset(payload, 'x', sizeof payload);
    dl_record_writer *w;
    ASSERT_OK(dl_record_writer_open(&w, x));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(dl_record_writer_append(w, payload, 84));
    ASSERT_OK(dl_record_writer_close(w));
    ASSERT_OK(dl_record_writer_open(&w, y));
    for (int i = 0; i < 2; i++)
        ASSERT_OK(dl_record_writer_append(w, payload, 184));
    ASSERT_OK(dl_record_writer_close(w));
    /* Give y the index of x (same data size, valid CRC, newer than the data). */
    copy_file(x_idx, y_idx);
    set_mtime(y_idx, 100);
    dl_record_file *f;
    ASSERT_OK(dl_record_file_open(&f, y));
    assert_int_equal(dl_record_file_indexed(f), 1);
    uint8_t *buf = NULL;
    size_t cap = 0, len;
    /* Record 0 starts at byte 0 in both, but its length disagrees with the index's next offset. */
    EXPECT_ERROR(dl_record_file_read(f, 0, &buf, &cap, &len), DL_ERR_FORMAT, y, "record 0 at byte 0",
                 "does not match the index", "dealer data index");
    /* Record 1 of the index points into the middle of y's first payload. */
    EXPECT_ERROR(dl_record_file_read(f, 1, &buf, &cap, &len), DL_ERR_FORMAT, "record 1 at byte 100",
                 "length CRC mismatch");
    free(buf);
    dl_record_file_close(f);
}

static void flipped_payload_byte_gives_crc_error_naming_record_and_offset(void **state) {
    (void)state;
    char path[320], idx[330];
    path_in_dir(path, sizeof path, "corrupt.tfrecord");
    snprintf(idx, sizeof idx, "%s.idx", path);
    /* Ten records of 50 bytes: record k starts at 66k. */
    uint8_t payload[50];
    memset(payload, 'a', sizeof payload);
    dl_record_writer *w;
    ASSERT_OK(dl_record_writer_open(&w, path));
    for (int i = 0; i < 10; i++)
        ASSERT_OK(dl_record_writer_append(w, payload, sizeof payload));
    ASSERT_OK(dl_record_writer_close(w));
    flip_byte(path, 66 * 3 + 12 + 20); /* inside record 3's payload */
    set_mtime(idx, 100);                /* the index stays valid: the size did not change */
    dl_record_file *f;
    ASSERT_OK(dl_record_file_open(&f, path));
    uint8_t *buf = NULL;
    size_t cap = 0, len;
    ASSERT_OK(dl_record_file_read(f, 2, &buf, &cap, &len));
    EXPECT_ERROR(dl_record_file_read(f, 3, &buf, &cap, &len), DL_ERR_FORMAT, path, "record 3 at byte 198",
                 "payload CRC mismatch");
    ASSERT_OK(dl_record_file_read(f, 4, &buf, &cap, &len));
    dl_record_file_close(f);
    /* Without the index the scan at open meets it. */
    assert_int_equal(unlink(idx), 0);
    EXPECT_ERROR(dl_record_file_open(&f, path), DL_ERR_FORMAT, "record 3 at byte 198", "payload CRC mismatch");
    EXPECT_ERROR(dl_record_index_build(path, NULL), DL_ERR_FORMAT, "record 3 at byte 198");
    assert_false(file_exists(idx));

    /* A flipped length byte breaks the length CRC. */
    ASSERT_OK(dl_record_writer_open(&w, path));
    for (int i = 0; i < 10; i++)
        ASSERT_OK(dl_record_writer_append(w, payload, sizeof payload));
    ASSERT_OK(dl_record_writer_close(w));
    flip_byte(path, 66 * 5 + 1);
    assert_int_equal(unlink(idx), 0);
    EXPECT_ERROR(dl_record_file_open(&f, path), DL_ERR_FORMAT, "record 5 at byte 330", "length CRC mismatch");
    free(buf);
}

static void truncated_file_gives_truncation_error(void **state) {
    (void)state;
    char path[320];
    path_in_dir(path, sizeof path, "trunc.tfrecord");
    uint8_t payload[50];
    memset(payload, 'b', sizeof payload);
    dl_record_writer *w;
    ASSERT_OK(dl_record_writer_open(&w, path));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(dl_record_writer_append(w, payload, sizeof payload));
    ASSERT_OK(dl_record_writer_close(w));
    dl_record_file *f;
    /* Cut inside the last payload (264 bytes -> 240), then inside the last header (-> 205). The index no longer
     * matches the size, so open scans and meets the cut record. */
    assert_int_equal(truncate(path, 240), 0);
    EXPECT_ERROR(dl_record_file_open(&f, path), DL_ERR_FORMAT, path, "record 3 at byte 198", "truncated record");
    assert_int_equal(truncate(path, 205), 0);
    EXPECT_ERROR(dl_record_file_open(&f, path), DL_ERR_FORMAT, "record 3 at byte 198", "truncated record",
                 "header");
    /* Cut exactly at a record boundary: a shorter, valid file. */
    assert_int_equal(truncate(path, 198), 0);
    ASSERT_OK(dl_record_file_open(&f, path));
    assert_int_equal(dl_record_file_count(f), 3);
    dl_record_file_close(f);
}

static void writer_abort_and_bad_paths_leave_nothing(void **state) {
    (void)state;
    char path[320], idx[330];
    path_in_dir(path, sizeof path, "aborted.tfrecord");
    snprintf(idx, sizeof idx, "%s.idx", path);
    dl_record_writer *w;
    ASSERT_OK(dl_record_writer_open(&w, path));
    ASSERT_OK(dl_record_writer_append(w, "abc", 3));
    assert_int_equal(dl_test_tmp_count(path), 1);
    dl_record_writer_abort(w);
    assert_int_equal(dl_test_tmp_count(path), 0);
    assert_false(file_exists(path));
    assert_false(file_exists(idx));
    dl_record_writer_abort(NULL);

    char missing_dir[340];
    path_in_dir(missing_dir, sizeof missing_dir, "no/such/dir/x.tfrecord");
    EXPECT_ERROR(dl_record_writer_open(&w, missing_dir), DL_ERR_IO, "no/such/dir/x.tfrecord.tmp",
                 "No such file or directory");
    dl_record_file *f;
    /* A path that names nothing is bad input (exit 2), not an I/O failure. */
    EXPECT_ERROR(dl_record_file_open(&f, missing_dir), DL_ERR_INVALID, "cannot open", "x.tfrecord");
    /* So is a directory where a record file belongs (README: a bad input path is exit 2 wherever it is found). */
    EXPECT_ERROR(dl_record_file_open(&f, test_dir), DL_ERR_INVALID, "is a directory, not a record file");
}

static void rewriting_a_file_replaces_its_index(void **state) {
    (void)state;
    char path[320];
    path_in_dir(path, sizeof path, "rewrite.tfrecord");
    write_records(path, 30, 64, 28, NULL);
    write_records(path, 45, 64, 29, NULL);
    dl_record_file *f;
    ASSERT_OK(dl_record_file_open(&f, path));
    assert_int_equal(dl_record_file_indexed(f), 1);
    check_all_records(f, 45, 64, 29);
    dl_record_file_close(f);
}

/* ---- atomic files ------------------------------------------------------------------------------------------- */

static void atomic_file_appears_only_on_commit(void **state) {
    (void)state;
    char path[320], tmp[330];
    path_in_dir(path, sizeof path, "atomic.txt");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ASSERT_OK(dl_write_file_atomic(path, "old", 3));
    dl_atomic_file af;
    ASSERT_OK(dl_atomic_open(&af, path));
    ASSERT_OK(dl_atomic_write(&af, "new contents", 12));
    uint8_t *data;
    size_t len;
    ASSERT_OK(dl_read_file(path, &data, &len)); /* the old version is still in place */
    assert_int_equal(len, 3);
    assert_memory_equal(data, "old", 3);
    free(data);
    ASSERT_OK(dl_atomic_commit(&af));
    assert_int_equal(dl_test_tmp_count(path), 0);
    ASSERT_OK(dl_read_file(path, &data, &len));
    assert_int_equal(len, 12);
    assert_memory_equal(data, "new contents", 12);
    assert_int_equal(data[12], 0); /* NUL-terminated for in-place parsing */
    free(data);

    ASSERT_OK(dl_atomic_open(&af, path));
    ASSERT_OK(dl_atomic_write(&af, "discarded", 9));
    dl_atomic_abort(&af);
    dl_atomic_abort(&af); /* twice is harmless */
    assert_int_equal(dl_test_tmp_count(path), 0);
    ASSERT_OK(dl_read_file(path, &data, &len));
    assert_int_equal(len, 12);
    free(data);

    /* Renaming a file written by other means. */
    char other[330];
    path_in_dir(other, sizeof other, "other.bin");
    FILE *fp;
    ASSERT_OK(dl_fopen(&fp, tmp, "wb"));
    ASSERT_OK(dl_fwrite_all(fp, "xyz", 3, tmp));
    fclose(fp);
    ASSERT_OK(dl_rename_durable(tmp, other));
    uint64_t size;
    ASSERT_OK(dl_file_size(other, &size));
    assert_int_equal(size, 3);
    ASSERT_OK(dl_fopen(&fp, other, "rb"));
    char got[8];
    ASSERT_OK(dl_fread_exact(fp, got, 3, other));
    EXPECT_ERROR(dl_fread_exact(fp, got, 1, other), DL_ERR_FORMAT, "truncated", "other.bin");
    fclose(fp);
    ASSERT_OK(dl_remove_if_exists(other));
    ASSERT_OK(dl_remove_if_exists(other));
    EXPECT_ERROR(dl_read_file(other, &data, &len), DL_ERR_INVALID, "other.bin", "No such file");
    EXPECT_ERROR(dl_fopen(&fp, other, "rb"), DL_ERR_INVALID, "other.bin", "No such file");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc32c_matches_known_values_in_both_implementations),
        cmocka_unit_test(crc32c_paths_agree_on_random_buffers_and_chain),
        cmocka_unit_test(crc32c_mask_matches_tensorflow_and_inverts),
        cmocka_unit_test(records_round_trip_through_the_index),
        cmocka_unit_test(random_order_reads_match_sequential_reads),
        cmocka_unit_test(empty_file_has_no_records),
        cmocka_unit_test(missing_index_is_scanned_and_rebuilt),
        cmocka_unit_test(prefetch_hints_change_nothing),
        cmocka_unit_test(stale_or_corrupt_index_is_ignored),
        cmocka_unit_test(index_that_lies_gives_a_format_error),
        cmocka_unit_test(flipped_payload_byte_gives_crc_error_naming_record_and_offset),
        cmocka_unit_test(truncated_file_gives_truncation_error),
        cmocka_unit_test(writer_abort_and_bad_paths_leave_nothing),
        cmocka_unit_test(rewriting_a_file_replaces_its_index),
        cmocka_unit_test(atomic_file_appears_only_on_commit),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
