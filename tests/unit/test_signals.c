/* test_signals.c — stop signals: the flag, the count, the first signal, and the two forced exits.
 *
 * Anything that may end the process runs in a forked child; the parent waits with a bound (never hangs) and checks
 * the exit code and the line the child wrote to stderr. Time checks are one-sided or generous: the machine is
 * shared and the suite also runs under ASan. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/signals.h"
#include "core/status.h"
#include "core/timer.h"

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int setup(void **state) {
    (void)state;
    assert_int_equal(dl_signals_install(), DL_OK);
    dl_signals_reset();
    return 0;
}

/* A child's end: how it exited, what it wrote to stderr, how long it took. */
typedef struct child_result {
    int exited;      /* 1 when it called exit/_exit */
    int code;        /* its exit code, or the signal that killed it */
    double seconds;  /* from fork to exit */
    char err[1024];  /* its stderr */
} child_result;

/* Runs body() in a child whose stderr is captured; the child exits 0 if body returns. Waits at most limit_s, then
 * kills the child and fails the test. */
static void run_child(void (*body)(void), double limit_s, child_result *r) {
    memset(r, 0, sizeof *r);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    double t0 = dl_time_seconds();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        body();
        _exit(0);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    size_t used = 0;
    int status = 0;
    for (;;) {
        ssize_t n = read(fds[0], r->err + used, sizeof r->err - 1 - used);
        if (n > 0)
            used += (size_t)n;
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (dl_time_seconds() - t0 > limit_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            close(fds[0]);
            DL_TEST_FAIL("child still running after %.1f s (stderr so far: %s)", limit_s, r->err);
        }
        sleep_s(0.005);
    }
    r->seconds = dl_time_seconds() - t0;
    ssize_t n;
    while ((n = read(fds[0], r->err + used, sizeof r->err - 1 - used)) > 0)
        used += (size_t)n;
    close(fds[0]);
    r->err[used] = '\0';
    r->exited = WIFEXITED(status);
    r->code = r->exited ? WEXITSTATUS(status) : WTERMSIG(status);
}

static void expect_exit(const child_result *r, int code) {
    if (!r->exited || r->code != code)
        DL_TEST_FAIL("child %s %d, want exit %d (stderr: %s)", r->exited ? "exited" : "killed by signal", r->code,
                     code, r->err);
}

static void first_signal_sets_flag_and_is_remembered(void **state) {
    (void)state;
    assert_false(dl_signals_stop_requested());
    assert_int_equal(dl_signals_count(), 0);
    assert_int_equal(dl_signals_which(), 0);
    assert_string_equal(dl_signals_which_name(), "");

    assert_int_equal(raise(SIGUSR1), 0);
    assert_true(dl_signals_stop_requested());
    assert_int_equal(dl_signals_count(), 1);
    assert_int_equal(dl_signals_which(), SIGUSR1);
    assert_string_equal(dl_signals_which_name(), "SIGUSR1");

    /* A SIGTERM right after is the same request (inside the default window): counted, the first one kept. */
    assert_int_equal(raise(SIGTERM), 0);
    assert_int_equal(dl_signals_count(), 2);
    assert_int_equal(dl_signals_which(), SIGUSR1);

    dl_signals_reset();
    assert_false(dl_signals_stop_requested());
    assert_int_equal(dl_signals_count(), 0);
    assert_int_equal(dl_signals_which(), 0);

    assert_int_equal(raise(SIGTERM), 0);
    assert_true(dl_signals_stop_requested());
    assert_string_equal(dl_signals_which_name(), "SIGTERM");
    dl_signals_reset();
}

static void handlers_restart_system_calls(void **state) {
    (void)state;
    const int sigs[] = {SIGUSR1, SIGTERM};
    for (int i = 0; i < 2; i++) {
        struct sigaction sa;
        assert_int_equal(sigaction(sigs[i], NULL, &sa), 0);
        assert_true(sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
        assert_true(sa.sa_flags & SA_RESTART);
    }
    /* Installing twice keeps what was recorded. */
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(dl_signals_install(), DL_OK);
    assert_int_equal(dl_signals_count(), 1);
    dl_signals_reset();
}

static void *raise_in_thread(void *arg) {
    (void)arg;
    /* Process-directed, so any thread may run the handler; the main thread must see it. */
    kill(getpid(), SIGUSR1);
    return NULL;
}

static void signal_on_another_thread_is_seen(void **state) {
    (void)state;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, raise_in_thread, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    /* Delivered before pthread_join returns in practice; 10 s only bounds a broken handler. */
    for (double t0 = dl_time_seconds(); dl_time_seconds() - t0 < 10.0 && !dl_signals_stop_requested();)
        sleep_s(0.001);
    assert_true(dl_signals_stop_requested());
    assert_int_equal(dl_signals_which(), SIGUSR1);
    dl_signals_reset();
}

static void second_signal_body(void) {
    dl_signals_reset();
    if (dl_signals_set_repeat_window(0) != DL_OK)
        _exit(90);
    raise(SIGUSR1);
    if (!dl_signals_stop_requested())
        _exit(91);
    raise(SIGTERM);
    _exit(92); /* the second signal must not return */
}

static void second_signal_forces_exit(void **state) {
    (void)state;
    child_result r;
    run_child(second_signal_body, 10, &r);
    expect_exit(&r, DL_EXIT_FORCED);
    assert_non_null(strstr(r.err, "SIGTERM arrived while the stop asked by SIGUSR1 was still running"));
    assert_non_null(strstr(r.err, "code 76"));
}

static void repeat_then_late_body(void) {
    dl_signals_reset();
    if (dl_signals_set_repeat_window(0.3) != DL_OK)
        _exit(90);
    raise(SIGTERM);
    raise(SIGTERM); /* the echo of the same request: survives */
    if (dl_signals_count() != 2)
        _exit(91);
    sleep_s(0.4);
    raise(SIGUSR1); /* a real second request: forces */
    _exit(92);
}

static void repeat_inside_window_is_not_forced(void **state) {
    (void)state;
    child_result r;
    run_child(repeat_then_late_body, 10, &r);
    expect_exit(&r, DL_EXIT_FORCED);
    assert_non_null(strstr(r.err, "SIGUSR1 arrived while the stop asked by SIGTERM"));
    assert_true(r.seconds >= 0.3);
}

static void grace_body(void) {
    dl_signals_reset();
    if (dl_signals_set_grace(1) != DL_OK)
        _exit(90);
    /* No signal yet: the deadline is not running. */
    sleep_s(1.3);
    raise(SIGUSR1);
    /* A trainer stuck in a collective: the alarm must end it. */
    for (int i = 0; i < 100; i++)
        sleep_s(0.1);
    _exit(92);
}

static void grace_deadline_forces_exit(void **state) {
    (void)state;
    child_result r;
    run_child(grace_body, 20, &r);
    expect_exit(&r, DL_EXIT_FORCED);
    assert_non_null(strstr(r.err, "the stop asked by SIGUSR1 did not finish within its grace period of 1 s"));
    /* 1.3 s before the signal, then at least most of the 1 s deadline (alarm rounds to whole seconds). */
    if (r.seconds < 2.0)
        DL_TEST_FAIL("forced exit after %.2f s: the deadline ran before the signal or too early", r.seconds);
}

static void grace_cancel_body(void) {
    dl_signals_reset();
    if (dl_signals_set_grace(1) != DL_OK)
        _exit(90);
    raise(SIGUSR1);
    /* The checkpoint is written; only a slow finalize is left: the trainer cancels the deadline. */
    if (dl_signals_set_grace(0) != DL_OK)
        _exit(91);
    sleep_s(1.5);
    _exit(0);
}

static void grace_can_be_cancelled(void **state) {
    (void)state;
    child_result r;
    run_child(grace_cancel_body, 20, &r);
    expect_exit(&r, 0);
    assert_string_equal(r.err, "");
}

static void bad_settings_are_refused(void **state) {
    (void)state;
    assert_int_equal(dl_signals_set_grace(-1), DL_ERR_INVALID);
    assert_non_null(strstr(dl_error_message(), "grace period -1 s is out of range"));
    assert_int_equal(dl_signals_set_grace(604801), DL_ERR_INVALID);
    assert_int_equal(dl_signals_set_repeat_window(-0.5), DL_ERR_INVALID);
    assert_int_equal(dl_signals_set_repeat_window(61), DL_ERR_INVALID);
    assert_int_equal(dl_signals_set_repeat_window(NAN), DL_ERR_INVALID);
    assert_non_null(strstr(dl_error_message(), "repeat window"));
    dl_error_clear();
    assert_int_equal(dl_signals_set_grace(604800), DL_OK);
    assert_int_equal(dl_signals_set_repeat_window(60), DL_OK);
    dl_signals_reset();
}

static void interrupted_status_means_requeue(void **state) {
    (void)state;
    assert_int_equal(DL_EXIT_REQUEUE, 75);
    assert_int_equal(dl_status_exit_code(DL_ERR_INTERRUPTED), DL_EXIT_REQUEUE);
    assert_true(DL_EXIT_FORCED != DL_EXIT_REQUEUE && DL_EXIT_FORCED > 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(first_signal_sets_flag_and_is_remembered, setup),
        cmocka_unit_test_setup(handlers_restart_system_calls, setup),
        cmocka_unit_test_setup(signal_on_another_thread_is_seen, setup),
        cmocka_unit_test_setup(second_signal_forces_exit, setup),
        cmocka_unit_test_setup(repeat_inside_window_is_not_forced, setup),
        cmocka_unit_test_setup(grace_deadline_forces_exit, setup),
        cmocka_unit_test_setup(grace_can_be_cancelled, setup),
        cmocka_unit_test_setup(bad_settings_are_refused, setup),
        cmocka_unit_test(interrupted_status_means_requeue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
