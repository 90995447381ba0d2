/* fault.h — injected I/O failures, for tests of what dealer does when a disk fills or a file system fails.
 *
 * SQLite's habit: the failure paths are tested by making the OS "fail" on purpose at a chosen call. The environment
 * variable DEALER_FAULT (parsed here and only here) names the calls:
 *
 *     DEALER_FAULT=OP:RANK:NTH[+][,OP:RANK:NTH[+]...]
 *
 * OP is `write` (fails with ENOSPC, as a full disk does), `fsync` (EIO) or `rename` (EIO); RANK is an MPI rank or `*`
 * for every rank; NTH counts this process's calls of that kind from 1, and `NTH+` fails that call and every later
 * one (a disk that stays full). Dealer's own write paths ask dl_fault_hit before each real call: the atomic files
 * of core/fs.c (records, indexes, `latest`, config.yaml, exports), the checkpoint's dataset writes, flush and
 * rename, metrics.jsonl and TensorBoard events. A malformed value stops the process with exit 2 at the first check, naming the variable: a test hook
 * that silently did nothing would let a test pass for the wrong reason.
 *
 *     int err = dl_fault_hit(DL_FAULT_WRITE);
 *     if (err) { errno = err; ...handle it exactly like a failed write()... }
 */
#ifndef DL_CORE_FAULT_H
#define DL_CORE_FAULT_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dl_fault_op { DL_FAULT_WRITE = 0, DL_FAULT_FSYNC = 1, DL_FAULT_RENAME = 2 } dl_fault_op;

/* The rank faults are matched against (set by comm/world.c once MPI is up; 0 before). */
void dl_fault_set_rank(int rank);

/* Counts one call of kind `op` on this process; returns the errno to fail it with, or 0 to let it run. Without
 * DEALER_FAULT it costs one load and one branch. */
int dl_fault_hit(dl_fault_op op);

/* Forgets the parsed spec and the counters, so the next call reads DEALER_FAULT again (for unit tests). */
void dl_fault_reset(void);

#ifdef __cplusplus
}
#endif

#endif
