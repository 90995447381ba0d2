/* test_fault_io.c — injected I/O failures (core/fault.h) and what the atomic files of core/fs.h do with them: a
 * failed write, fsync or rename leaves the old file whole and no temporary behind. Also the per-writer temporaries:
 * two writers of one path never share one, and leftovers of dead writers are removed while live ones are not. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "comm/world.h"
#include "core/fault.h"
#include "core/fs.h"

static char test_dir[256];

static int make_dir(void **state) {
    (void)state;
    snprintf(test_dir, sizeof test_dir, "/tmp/dealer_test_fault_io_XXXXXX");
    return mkdtemp(test_dir) ? 0 : -1;
}

static int remove_dir(void **state) {
    (void)state;
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_dir);
    unsetenv("DEALER_FAULT");
    dl_fault_reset();
    return system(cmd) == 0 ? 0 : -1;
}

static void path_in_dir(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", test_dir, name); }

#define ASSERT_OK(expr)                                                                                          \
    do {                                                                                                         \
        dl_status s_ = (expr);                                                                                   \
        if (s_ != DL_OK)                                                                                         \
            DL_TEST_FAIL("%s failed: %s", #expr, dl_error_message());                                            \
    } while (0)

/* expr fails with DL_ERR_IO and a message holding `fragment`. */
#define EXPECT_IO_ERROR(expr, fragment)                                                                          \
    do {                                                                                                         \
        dl_status s_ = (expr);                                                                                   \
        if (s_ != DL_ERR_IO || !strstr(dl_error_message(), (fragment)))                                         \
            DL_TEST_FAIL("%s: got %s '%s', want io with '%s'", #expr, dl_status_name(s_), dl_error_message(),    \
                         (fragment));                                                                            \
    } while (0)

static void set_faults(const char *spec) {
    setenv("DEALER_FAULT", spec, 1);
    dl_fault_reset();
}

static void expect_file(const char *path, const char *contents) {
    uint8_t *data = NULL;
    size_t len = 0;
    ASSERT_OK(dl_read_file(path, &data, &len));
    if (len != strlen(contents) || memcmp(data, contents, len) != 0)
        DL_TEST_FAIL("%s holds '%.*s', want '%s'", path, (int)len, (const char *)data, contents);
    free(data);
}

static void fault_spec_picks_the_rank_and_the_call(void **state) {
    (void)state;
    set_faults("write:0:2,fsync:*:1+,rename:3:1");
    dl_fault_set_rank(0);
    assert_int_equal(dl_fault_hit(DL_FAULT_WRITE), 0);
    assert_int_equal(dl_fault_hit(DL_FAULT_WRITE), ENOSPC);
    assert_int_equal(dl_fault_hit(DL_FAULT_WRITE), 0); /* only the 2nd */
    for (int i = 0; i < 3; i++)
        assert_int_equal(dl_fault_hit(DL_FAULT_FSYNC), EIO); /* 1+: from the first on */
    assert_int_equal(dl_fault_hit(DL_FAULT_RENAME), 0);    /* another rank's */
    set_faults("rename:3:1");
    dl_fault_set_rank(3);
    assert_int_equal(dl_fault_hit(DL_FAULT_RENAME), EIO);
    dl_fault_set_rank(0);
    set_faults("");
    assert_int_equal(dl_fault_hit(DL_FAULT_WRITE), 0);
}

/* A malformed spec stops the process with exit 2 and a line naming the variable, at the first check. */
static void malformed_fault_spec_exits_2(void **state) {
    (void)state;
    const char *bad[] = {"write", "write:0", "erase:0:1", "write:x:1", "write:0:0", "write:0:2-", NULL};
    for (int i = 0; bad[i]; i++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (!freopen("/dev/null", "w", stderr))
                _exit(3);
            set_faults(bad[i]);
            dl_fault_hit(DL_FAULT_WRITE);
            _exit(0);
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 2)
            DL_TEST_FAIL("DEALER_FAULT='%s' did not exit 2 (status %d)", bad[i], status);
    }
}

static void injected_failures_keep_the_old_file_and_leave_no_temporary(void **state) {
    (void)state;
    char path[320];
    path_in_dir(path, sizeof path, "kept.txt");
    set_faults("");
    ASSERT_OK(dl_write_file_atomic(path, "old", 3));
    const struct {
        const char *spec, *fragment;
    } cases[] = {
        {"write:0:1", "No space left on device"},
        {"fsync:0:1", "fsync"},
        {"rename:0:1", "renaming"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_faults(cases[i].spec);
        EXPECT_IO_ERROR(dl_write_file_atomic(path, "new", 3), cases[i].fragment);
        expect_file(path, "old");
        assert_int_equal(dl_test_tmp_count(path), 0);
    }
    /* dl_rename_durable (how HDF5 files are committed) too. */
    char from[330];
    path_in_dir(from, sizeof from, "other.bin");
    set_faults("");
    ASSERT_OK(dl_write_file_atomic(from, "xyz", 3));
    set_faults("fsync:0:1");
    EXPECT_IO_ERROR(dl_rename_durable(from, path), "fsync");
    set_faults("rename:0:1");
    EXPECT_IO_ERROR(dl_rename_durable(from, path), "renaming");
    expect_file(path, "old");
    set_faults("");
    ASSERT_OK(dl_rename_durable(from, path));
    expect_file(path, "xyz");
}

/* Two writers of one path at once: each has its own temporary, neither sees the other's bytes, the last commit
 * wins with a whole file. */
static void two_writers_of_one_path_never_share_a_temporary(void **state) {
    (void)state;
    set_faults("");
    char path[320];
    path_in_dir(path, sizeof path, "shared.out");
    dl_atomic_file a, b;
    ASSERT_OK(dl_atomic_open(&a, path));
    ASSERT_OK(dl_atomic_open(&b, path));
    assert_string_not_equal(a.tmp_path, b.tmp_path);
    assert_int_equal(dl_test_tmp_count(path), 2);
    ASSERT_OK(dl_atomic_write(&a, "first writer", 12));
    ASSERT_OK(dl_atomic_write(&b, "second", 6));
    ASSERT_OK(dl_atomic_commit(&a));
    expect_file(path, "first writer");
    ASSERT_OK(dl_atomic_commit(&b));
    expect_file(path, "second");
    assert_int_equal(dl_test_tmp_count(path), 0);
}

static void touch(const char *path) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
}

/* Leftovers of writers that died (on this host) go when the next writer of the path opens; a live writer's and
 * another host's stay (nothing here can tell whether that one lives). */
static void leftovers_of_dead_writers_are_removed_live_ones_kept(void **state) {
    (void)state;
    set_faults("");
    char path[320];
    path_in_dir(path, sizeof path, "data.tfrecord");
    /* This host's name as the temporaries spell it: from a real one. */
    dl_atomic_file probe;
    ASSERT_OK(dl_atomic_open(&probe, path));
    const char *fields = probe.tmp_path + strlen(path) + strlen(".tmp.");
    const char *dash = strchr(fields, '-');
    assert_non_null(dash);
    char host[200];
    snprintf(host, sizeof host, "%.*s", (int)(dash - fields), fields);
    dl_atomic_abort(&probe);

    pid_t dead = fork();
    assert_true(dead >= 0);
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    char legacy[400], dead_tmp[400], live_tmp[400], other_host[400], unrelated[400];
    snprintf(legacy, sizeof legacy, "%s.tmp", path);
    snprintf(dead_tmp, sizeof dead_tmp, "%s.tmp.%s-%ld-AbC123", path, host, (long)dead);
    snprintf(live_tmp, sizeof live_tmp, "%s.tmp.%s-%ld-XyZ789", path, host, (long)getppid());
    snprintf(other_host, sizeof other_host, "%s.tmp.elsewhere%s-%ld-QqQ111", path, host, (long)dead);
    snprintf(unrelated, sizeof unrelated, "%s.tmpx", path);
    touch(legacy);
    touch(dead_tmp);
    touch(live_tmp);
    touch(other_host);
    touch(unrelated);
    ASSERT_OK(dl_write_file_atomic(path, "x", 1));
    assert_int_equal(access(legacy, F_OK), -1);
    assert_int_equal(access(dead_tmp, F_OK), -1);
    assert_int_equal(access(live_tmp, F_OK), 0);
    assert_int_equal(access(other_host, F_OK), 0);
    assert_int_equal(access(unrelated, F_OK), 0);
    assert_true(dl_tmp_name_is_stale(strrchr(dead_tmp, '/') + 1, "data.tfrecord"));
    assert_false(dl_tmp_name_is_stale(strrchr(live_tmp, '/') + 1, "data.tfrecord"));
    assert_false(dl_tmp_name_is_stale("data.tfrecord.idx", "data.tfrecord"));
    unlink(live_tmp);
    unlink(other_host);
    unlink(unrelated);
}

/* Runs `body` in a child process with stderr going to `err_path`; returns its wait status. */
static int in_child(void (*body)(const char *), const char *arg, const char *err_path) {
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen(err_path, "w", stderr))
            _exit(3);
        body(arg);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void stuck_under_guard(const char *cleanup) {
    dl_world w;
    memset(&w, 0, sizeof w);
    w.timeout_s = 0.3;
    dl_comm_guard_begin(&w, "a library call in the test", cleanup);
    sleep(20); /* a call that never returns: the guard must end the process long before */
}

static void guarded_in_time(const char *cleanup) {
    dl_world w;
    memset(&w, 0, sizeof w);
    w.timeout_s = 1.5; /* 15x each call's 100 ms: room for a slow, loaded machine's wake-ups */
    for (int i = 0; i < 3; i++) { /* moved from call to call, each well within its time */
        dl_comm_guard_begin(&w, "a quick call", cleanup);
        usleep(100 * 1000);
    }
    dl_comm_guard_end(&w);
    usleep(2000 * 1000); /* past where an ended guard would have fired */
}

/* The guard over collective calls made inside a library (comm/world.h): a call that does not return within
 * comm.timeout_s ends the process with exit 1 and one line naming the rank and the call, and removes the
 * half-written file; calls that return in time, and a guard that was ended, fire nothing. */
static void guard_ends_a_stuck_call_and_only_a_stuck_one(void **state) {
    (void)state;
    char file[320], err[320];
    path_in_dir(file, sizeof file, "half-written.h5");
    path_in_dir(err, sizeof err, "guard.err");
    touch(file);
    int status = in_child(stuck_under_guard, file, err);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 1)
        DL_TEST_FAIL("a stuck guarded call: wait status %d, want exit 1", status);
    uint8_t *text = NULL;
    size_t len = 0;
    ASSERT_OK(dl_read_file(err, &text, &len));
    if (!strstr((const char *)text, "error (rank 0): a library call in the test did not finish within"))
        DL_TEST_FAIL("the guard printed '%s'", (const char *)text);
    free(text);
    assert_int_equal(access(file, F_OK), -1);
    touch(file);
    status = in_child(guarded_in_time, file, err);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        DL_TEST_FAIL("calls that returned in time: wait status %d, want exit 0", status);
    assert_int_equal(access(file, F_OK), 0);
    unlink(file);
}

static void free_space_is_reported(void **state) {
    (void)state;
    uint64_t bytes = 0;
    ASSERT_OK(dl_free_space(test_dir, &bytes));
    assert_true(bytes > 0);
    char missing[320];
    path_in_dir(missing, sizeof missing, "no/such/dir");
    EXPECT_IO_ERROR(dl_free_space(missing, &bytes), "no/such/dir");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fault_spec_picks_the_rank_and_the_call),
        cmocka_unit_test(malformed_fault_spec_exits_2),
        cmocka_unit_test(injected_failures_keep_the_old_file_and_leave_no_temporary),
        cmocka_unit_test(two_writers_of_one_path_never_share_a_temporary),
        cmocka_unit_test(leftovers_of_dead_writers_are_removed_live_ones_kept),
        cmocka_unit_test(free_space_is_reported),
        cmocka_unit_test(guard_ends_a_stuck_call_and_only_a_stuck_one),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
