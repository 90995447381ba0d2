/* signals.h — preemption-safe stops: SIGUSR1/SIGTERM (and Ctrl-C's SIGINT) ask the trainer to checkpoint and exit.
 *
 * A cluster tells a job it is about to lose its nodes with a signal: Slurm sends SIGUSR1 some time before the time
 * limit (`#SBATCH --signal=B:USR1@120`, forwarded by launch/slurm/train.sbatch), and SIGTERM on preemption or
 * `scancel`. The handlers only record the request; the trainer polls it at each step boundary, all-reduces it so
 * every rank stops at the same step, writes a checkpoint and exits with DL_EXIT_REQUEUE (75). The batch script then
 * requeues the job, which resumes from `latest`.
 *
 *     dl_signals_install();                       // after MPI_Init, which may install handlers of its own
 *     dl_signals_set_grace(90);                   // a stop must finish within 90 s of the first signal
 *     for (step...) {
 *         ...
 *         int stop = dl_signals_stop_requested();
 *         MPI_Allreduce(MPI_IN_PLACE, &stop, 1, MPI_INT, MPI_MAX, comm);
 *         if (stop) { checkpoint(); DL_INFO("stopping on %s", dl_signals_which_name()); return DL_ERR_INTERRUPTED; }
 *     }
 *
 * When a stop cannot finish (a hung collective, a slow file system), two things end the process at once with
 * DL_EXIT_FORCED (76) and one line on stderr, without a checkpoint:
 *   - a second stop signal. A repeat that arrives within the repeat window (1 s by default) of the first counts as
 *     the same request: `scancel` reaches each task both from its own step and through srun, which forwards what
 *     it gets, and a stop must not be turned into a forced exit by that echo.
 *   - the grace deadline (dl_signals_set_grace), an alarm armed by the first signal.
 *
 * Everything the handlers touch is a lock-free C11 atomic (async-signal-safe, and safe when the signal lands on an
 * OpenMP or MPI progress thread); they call only write, clock_gettime, alarm and _exit. */
#ifndef DL_CORE_SIGNALS_H
#define DL_CORE_SIGNALS_H

#include <stdbool.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exit code of a run stopped by a signal after a clean checkpoint: "please requeue me" (EX_TEMPFAIL).
 * dl_status_exit_code(DL_ERR_INTERRUPTED) returns it. */
#define DL_EXIT_REQUEUE 75
/* Exit code of a run ended by a second signal or the grace deadline: no checkpoint was written for this stop. */
#define DL_EXIT_FORCED 76

/* The default repeat window: a second signal sooner than this after the first is the same request. */
#define DL_SIGNALS_REPEAT_WINDOW_S 1.0

/* Installs the SIGUSR1, SIGTERM and SIGINT handlers (SA_RESTART, so a signal never makes a blocking call fail with EINTR).
 * Call once at start-up, after MPI_Init. Installing again is harmless and keeps the recorded state. */
dl_status dl_signals_install(void);

/* True once a stop signal has arrived: the trainer should checkpoint at the next step boundary and exit. */
bool dl_signals_stop_requested(void);

/* The first stop signal received (SIGUSR1, SIGTERM or SIGINT), 0 when none. */
int dl_signals_which(void);

/* The name of the first stop signal ("SIGUSR1", "SIGTERM", "SIGINT"), "" when none: for the log line. */
const char *dl_signals_which_name(void);

/* How many stop signals have arrived, repeats inside the window included. */
int dl_signals_count(void);

/* After the first stop signal the process gets `seconds` to exit by itself; then it exits with DL_EXIT_FORCED.
 * 0 (the default) means no deadline. Called while a stop is already pending, it re-arms the deadline from now,
 * and 0 cancels it (e.g. when only MPI_Finalize is left). Whole seconds, 0 to 604800 (a week). */
dl_status dl_signals_set_grace(int seconds);

/* Sets the repeat window (seconds, 0 to 60): a signal within it of the first is counted but does not force the
 * exit. 0 makes every second signal force it. */
dl_status dl_signals_set_repeat_window(double seconds);

/* Forgets every signal received, cancels a pending deadline and restores the default grace (none) and window.
 * For tests, and for a program that handles a stop and carries on. The handlers stay installed. */
void dl_signals_reset(void);

#ifdef __cplusplus
}
#endif

#endif
