/* signals.c — the stop-signal handlers behind signals.h.
 *
 * The state is a handful of lock-free atomics rather than `volatile sig_atomic_t`: with OpenMP and MPI progress
 * threads a process-directed signal may run the handler on any thread, even on two threads at once, and
 * sig_atomic_t only promises atomicity against the thread it interrupts. The first signal is the one whose
 * fetch-add saw 0; it records which signal it was and when, and arms the grace alarm.
 *
 * The forced exit writes its line with write(2) from a stack buffer (no stdio, no malloc) and leaves with _exit:
 * no atexit handlers, no flushing of stdio buffers that another thread may hold locked. */
#include "core/signals.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "signal handlers need lock-free atomic int");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "signal handlers need lock-free atomic long long");

enum { DL_GRACE_MAX_S = 7 * 24 * 3600 };

static atomic_int stop_count;       /* stop signals received */
static atomic_int first_signal;     /* SIGUSR1, SIGTERM or SIGINT, 0 before any */
static atomic_llong first_ns;       /* CLOCK_MONOTONIC time of the first, 0 until recorded */
static atomic_int grace_s;          /* deadline after the first signal, 0 for none */
static atomic_llong window_ns = (long long)(DL_SIGNALS_REPEAT_WINDOW_S * 1e9);

static long long monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static const char *signal_name(int sig) {
    switch (sig) {
    case SIGUSR1: return "SIGUSR1";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    default: return "";
    }
}

/* Async-signal-safe string building into a fixed buffer (cut when full). */
typedef struct line_buf {
    char text[256];
    size_t len;
} line_buf;

static void put_str(line_buf *b, const char *s) {
    while (*s && b->len < sizeof b->text - 1)
        b->text[b->len++] = *s++;
}

static void put_uint(line_buf *b, unsigned v) {
    char digits[16];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < (int)sizeof digits);
    while (n > 0 && b->len < sizeof b->text - 1)
        b->text[b->len++] = digits[--n];
}

/* Writes the line and ends the process at once with DL_EXIT_FORCED. */
static void forced_exit(line_buf *b) {
    put_str(b, ": exiting now with code 76; this stop may have no checkpoint\n");
    size_t off = 0;
    while (off < b->len) {
        ssize_t n = write(STDERR_FILENO, b->text + off, b->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    _exit(DL_EXIT_FORCED);
}

static void on_stop_signal(int sig) {
    int saved_errno = errno;
    int before = atomic_fetch_add(&stop_count, 1);
    if (before == 0) {
        atomic_store(&first_signal, sig);
        atomic_store(&first_ns, monotonic_ns());
        int grace = atomic_load(&grace_s);
        if (grace > 0)
            alarm((unsigned)grace);
    } else {
        /* A repeat whose first has not finished recording is certainly inside the window. */
        long long t0 = atomic_load(&first_ns);
        if (t0 != 0 && monotonic_ns() - t0 >= atomic_load(&window_ns)) {
            line_buf b = {.len = 0};
            put_str(&b, "dealer: ");
            put_str(&b, signal_name(sig));
            put_str(&b, " arrived while the stop asked by ");
            put_str(&b, signal_name(atomic_load(&first_signal)));
            put_str(&b, " was still running");
            forced_exit(&b);
        }
    }
    errno = saved_errno;
}

static void on_grace_alarm(int sig) {
    (void)sig;
    if (atomic_load(&stop_count) == 0)
        return; /* an alarm left over from before a reset */
    line_buf b = {.len = 0};
    put_str(&b, "dealer: the stop asked by ");
    put_str(&b, signal_name(atomic_load(&first_signal)));
    put_str(&b, " did not finish within its grace period of ");
    put_uint(&b, (unsigned)atomic_load(&grace_s));
    put_str(&b, " s");
    forced_exit(&b);
}

static dl_status install_handler(int sig, void (*handler)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    /* One handler at a time per thread for all three, so the forced-exit line is never interleaved. */
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR1);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGALRM);
    if (sigaction(sig, &sa, NULL) != 0)
        return DL_FAIL(DL_ERR_RUNTIME, "installing the %s handler: %s", sig == SIGALRM ? "SIGALRM" : signal_name(sig),
                       strerror(errno));
    return DL_OK;
}

dl_status dl_signals_install(void) {
    DL_CHECK(install_handler(SIGUSR1, on_stop_signal));
    DL_CHECK(install_handler(SIGTERM, on_stop_signal));
    /* Ctrl-C on a run in a terminal: the same clean stop (under mpirun, mpirun turns it into SIGTERM anyway). */
    DL_CHECK(install_handler(SIGINT, on_stop_signal));
    return DL_OK;
}

bool dl_signals_stop_requested(void) {
    return atomic_load(&stop_count) > 0;
}

int dl_signals_which(void) {
    return atomic_load(&first_signal);
}

const char *dl_signals_which_name(void) {
    return signal_name(atomic_load(&first_signal));
}

int dl_signals_count(void) {
    return atomic_load(&stop_count);
}

dl_status dl_signals_set_grace(int seconds) {
    if (seconds < 0 || seconds > DL_GRACE_MAX_S) {
        DL_FAIL(DL_ERR_INVALID, "stop grace period %d s is out of range", seconds);
        dl_error_hint("use 0 (no deadline) to %d seconds", DL_GRACE_MAX_S);
        return DL_ERR_INVALID;
    }
    if (seconds > 0)
        DL_CHECK(install_handler(SIGALRM, on_grace_alarm));
    atomic_store(&grace_s, seconds);
    /* A stop already pending gets the new deadline from now; 0 cancels it. */
    if (atomic_load(&stop_count) > 0)
        alarm((unsigned)seconds);
    return DL_OK;
}

dl_status dl_signals_set_repeat_window(double seconds) {
    if (!(seconds >= 0.0 && seconds <= 60.0)) {
        DL_FAIL(DL_ERR_INVALID, "signal repeat window %g s is out of range", seconds);
        dl_error_hint("use 0 (every second signal forces the exit) to 60 seconds");
        return DL_ERR_INVALID;
    }
    atomic_store(&window_ns, (long long)llround(seconds * 1e9));
    return DL_OK;
}

void dl_signals_reset(void) {
    /* Keep this thread's handlers out while the state is half cleared. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    alarm(0);
    atomic_store(&grace_s, 0);
    atomic_store(&window_ns, (long long)(DL_SIGNALS_REPEAT_WINDOW_S * 1e9));
    atomic_store(&first_ns, 0);
    atomic_store(&first_signal, 0);
    atomic_store(&stop_count, 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
